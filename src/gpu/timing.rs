//! Timing GPU work: timestamp queries around a compute pass where the adapter has them, otherwise the
//! wall clock around submit-and-wait (which then includes the submission overhead).

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Readback};

/// Reusable timing resources; make one per benchmark run, not per sample.
pub struct GpuTimer {
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, Readback)>,
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
                let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
                let resolve = gpu.buffer("timer", 16, usage);
                (set, resolve, Readback::new(gpu, "timer readback", 16))
            });
        GpuTimer { queries }
    }

    /// Whether samples come from GPU timestamps (true) or the wall clock (false).
    pub fn uses_timestamps(&self) -> bool {
        self.queries.is_some()
    }

    /// Runs `dispatches` `repeat` times in one compute pass and returns the time of one repetition.
    pub fn time(&self, gpu: &Gpu, dispatches: &[Dispatch], repeat: usize) -> Result<Duration> {
        let mut commands = gpu.commands("timed");
        let encoder = &mut commands.encoder;
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
            staging.copy_bytes(encoder, resolve, 0);
        }
        let start = Instant::now();
        gpu.submit(commands);
        gpu.wait()?;
        let wall = start.elapsed();
        let Some((_, _, staging)) = &self.queries else {
            return Ok(wall / repeat.max(1) as u32);
        };
        let ticks: Vec<u64> = staging.read(gpu, "reading timestamps")?;
        let nanos =
            ticks[1].saturating_sub(ticks[0]) as f64 * gpu.queue.get_timestamp_period() as f64;
        Ok(Duration::from_nanos(nanos as u64) / repeat.max(1) as u32)
    }
}
