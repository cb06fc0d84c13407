//! Timing GPU work: timestamp queries around a compute pass where the adapter has them, otherwise the
//! wall clock around submit-and-wait (which then includes the submission overhead).

use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The GPU's begin and end timestamps of up to `capacity` submitted passes (training steps), to see
/// whether it idles between them: a gap between one step's end and the next one's begin is time the
/// GPU waited for the CPU. Only where the adapter has timestamp queries.
pub struct Timeline {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: Readback,
    capacity: usize,
    used: AtomicUsize,
}

impl Timeline {
    /// At most `capacity` passes (WebGPU allows 4096 queries a set, so 2048); `None` without
    /// timestamp queries.
    pub fn new(gpu: &Gpu, capacity: usize) -> Option<Self> {
        if !gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let capacity = capacity.clamp(1, 2048);
        let bytes = 16 * capacity as u64;
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timeline"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * capacity as u32,
        });
        let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
        Some(Timeline {
            set,
            resolve: gpu.buffer("timeline", bytes, usage),
            readback: Readback::new(gpu, "timeline readback", bytes),
            capacity,
            used: AtomicUsize::new(0),
        })
    }

    /// Records `dispatches` in one pass with its begin and end written to the next free pair of slots
    /// (a plain pass once all are used).
    pub(crate) fn record(&self, encoder: &mut wgpu::CommandEncoder, lists: &[&[Dispatch]]) {
        let slot = self.used.fetch_add(1, Ordering::Relaxed);
        let timestamp_writes = (slot < self.capacity).then(|| wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * slot as u32),
            end_of_pass_write_index: Some(2 * slot as u32 + 1),
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("step"),
            timestamp_writes,
        });
        lists
            .iter()
            .flat_map(|l| l.iter())
            .for_each(|d| d.record(&mut pass));
    }

    /// Each recorded pass's `(begin, end)` in nanoseconds on the GPU's clock (waits for the GPU).
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<(f64, f64)>> {
        let passes = self.used.load(Ordering::Relaxed).min(self.capacity);
        if passes == 0 {
            return Ok(Vec::new());
        }
        gpu.run(|c| {
            let queries = 0..2 * passes as u32;
            c.encoder
                .resolve_query_set(&self.set, queries, &self.resolve, 0);
            self.readback.copy_bytes(&mut c.encoder, &self.resolve, 0);
        })?;
        let ticks: Vec<u64> = self.readback.read(gpu, "reading the timeline")?;
        let period = gpu.queue.get_timestamp_period() as f64;
        Ok((ticks.chunks_exact(2).take(passes))
            .map(|t| (t[0] as f64 * period, t[1] as f64 * period))
            .collect())
    }
}
