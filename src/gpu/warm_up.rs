//! Warming pipelines up where the driver compiles a pipeline's machine code at its first dispatch, not
//! when it is created: lavapipe makes its LLVM code there, on its queue's one thread, so a plan's first
//! step compiled every pipeline one after another (most of a cold first step). Inside
//! [`Gpu::build_parallel`], a worker that has created a pipeline dispatches it at once over no
//! workgroups, with spare bindings: the queue's thread compiles it while the workers create the next.

use std::sync::atomic::Ordering;

use crate::gpu::Gpu;

/// One spare buffer per storage binding slot, distinct so that any mix of read-only and writable slots
/// binds, and a spare uniform: enough for every kernel's bindings (at most WebGPU's default count of
/// storage buffers per stage, runtime-sized arrays, a uniform of at most `SPARE_BYTES`).
pub(crate) struct Spares {
    storage: Vec<wgpu::Buffer>,
    uniform: wgpu::Buffer,
}

const SPARE_BYTES: u64 = 256;

impl Spares {
    fn new(gpu: &Gpu) -> Self {
        let slots = wgpu::Limits::default().max_storage_buffers_per_shader_stage;
        let storage = (0..slots)
            .map(|_| gpu.buffer("warm-up", SPARE_BYTES, wgpu::BufferUsages::STORAGE))
            .collect();
        let uniform = gpu.buffer("warm-up", SPARE_BYTES, wgpu::BufferUsages::UNIFORM);
        Spares { storage, uniform }
    }
}

impl Gpu {
    /// Whether pipelines compile at their first dispatch rather than when created: lavapipe's (a CPU
    /// adapter on Vulkan), whose pipelines [`Gpu::build_parallel`] warms up.
    pub fn compiles_at_first_dispatch(&self) -> bool {
        self.is_cpu() && self.info().backend == wgpu::Backend::Vulkan
    }

    /// Submits a dispatch of `pipeline` over no workgroups, its `storage` slots and uniform bound to
    /// spares, so that the driver compiles it now. Nothing is submitted when that dispatch would be
    /// invalid (spares that do not fit): warming up only moves work earlier.
    pub(crate) fn warm_up(
        &self,
        pipeline: &wgpu::ComputePipeline,
        layout: &wgpu::BindGroupLayout,
        storage: usize,
    ) {
        let spares = self.spares.get_or_init(|| Spares::new(self));
        let Some(buffers) = spares.storage.get(..storage) else {
            return;
        };
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let entries: Vec<_> = (buffers.iter().chain([&spares.uniform]).enumerate())
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("warm-up"),
            layout,
            entries: &entries,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(0, 0, 0);
        }
        let commands = encoder.finish();
        if pollster::block_on(scope.pop()).is_some() {
            return;
        }
        self.created.bind_groups.fetch_add(1, Ordering::Relaxed);
        self.created.submits.fetch_add(1, Ordering::Relaxed);
        self.queue.submit([commands]);
    }
}
