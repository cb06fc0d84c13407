//! Timing GPU work: timestamp queries around a compute pass where the adapter has them, otherwise the
//! wall clock around submit-and-wait (which then includes the submission overhead).

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu};

/// Reusable timing resources; make one per benchmark run, not per sample.
pub struct GpuTimer {
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

impl GpuTimer {
    pub fn new(gpu: &Gpu) -> Self {
        let queries = gpu
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| {
                let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("timer"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                });
                let buffer = |usage| gpu.buffer("timer", 16, usage);
                let resolve =
                    buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
                let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
                (set, resolve, staging)
            });
        GpuTimer { queries }
    }

    /// Whether samples come from GPU timestamps (true) or the wall clock (false).
    pub fn uses_timestamps(&self) -> bool {
        self.queries.is_some()
    }

    /// Runs `dispatches` `repeat` times in one compute pass and returns the time of one repetition.
    pub fn time(&self, gpu: &Gpu, dispatches: &[Dispatch], repeat: usize) -> Result<Duration> {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let timestamp_writes =
                self.queries
                    .as_ref()
                    .map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                        query_set: set,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed"),
                timestamp_writes,
            });
            for _ in 0..repeat {
                for d in dispatches {
                    d.record(&mut pass);
                }
            }
        }
        if let Some((set, resolve, staging)) = &self.queries {
            encoder.resolve_query_set(set, 0..2, resolve, 0);
            encoder.copy_buffer_to_buffer(resolve, 0, staging, 0, 16);
        }
        let start = Instant::now();
        gpu.submit(encoder);
        gpu.wait()?;
        let wall = start.elapsed();
        let Some((_, _, staging)) = &self.queries else {
            return Ok(wall / repeat.max(1) as u32);
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = sender.send(r);
        });
        gpu.wait()?;
        receiver
            .recv()
            .map_err(|e| Error::gpu("reading timestamps", e))?
            .map_err(|e| Error::gpu("reading timestamps", e))?;
        let ticks: [u64; 2] = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::gpu("reading timestamps", e))?;
            bytemuck::pod_read_unaligned(&view)
        };
        staging.unmap();
        let nanos =
            ticks[1].saturating_sub(ticks[0]) as f64 * gpu.queue.get_timestamp_period() as f64;
        Ok(Duration::from_nanos(nanos as u64) / repeat.max(1) as u32)
    }
}
