//! The device on the chosen adapter (see [`crate::gpu::adapter`]) with WebGPU's default limits raised
//! only on request, and submit/wait helpers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::adapter::{self, AdapterChoice, AdapterSummary, WANTED_FEATURES};
use crate::gpu::compile::PipelineCache;
use crate::gpu::driver_cache::DriverCache;
use crate::gpu::health::{test_memory_cap, Health};
use crate::gpu::warm_up::Spares;
use crate::gpu::{user_cache, Commands, Submission, Tensor, Tuner};

/// The one GPU context of a program: adapter, device, queue and the pipeline cache.
pub struct Gpu {
    pub(crate) adapter: wgpu::Adapter,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) pipelines: PipelineCache,
    /// The driver's compiled pipelines from earlier runs, where the backend keeps them (Vulkan).
    pub(crate) driver_cache: Option<DriverCache>,
    pub(crate) created: Created,
    /// Kernel variant choices: off unless [`Gpu::autotuned`] or [`Gpu::set_tuner`] turn it on.
    pub(crate) tuner: Tuner,
    pub(crate) health: Arc<Health>,
    /// The test hook's memory cap ([`crate::gpu::TEST_DEVICE_MEMORY`]).
    pub(crate) memory_cap: Option<u64>,
    /// The buffer behind [`Gpu::unused`], made on first use.
    pub(crate) unused: std::sync::OnceLock<Tensor>,
    /// The bindings of pipeline warm-ups (see `warm_up.rs`), made on first use.
    pub(crate) spares: std::sync::OnceLock<Spares>,
    info: wgpu::AdapterInfo,
    features: wgpu::Features,
    limits: wgpu::Limits,
}

/// How many GPU objects this context has created and command buffers it has submitted, so tests can
/// check that a training step creates nothing and submits once.
#[derive(Default)]
pub(crate) struct Created {
    pub(crate) buffers: AtomicU64,
    pub(crate) bind_groups: AtomicU64,
    pub(crate) pipelines: AtomicU64,
    pub(crate) submits: AtomicU64,
    /// Bytes of the buffers created.
    pub(crate) bytes: AtomicU64,
}

/// A snapshot of [`Gpu::counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub buffers: u64,
    pub bind_groups: u64,
    pub pipelines: u64,
    pub submits: u64,
}

/// `base` with `max_storage_buffer_binding_size` raised to `bytes` where `allowed` permits (else to the
/// adapter's most), and `max_buffer_size` at least as large; never lowered.
pub fn binding_room(base: wgpu::Limits, allowed: &wgpu::Limits, bytes: u64) -> wgpu::Limits {
    let binding = bytes
        .min(allowed.max_storage_buffer_binding_size)
        .max(base.max_storage_buffer_binding_size);
    let buffer = binding
        .min(allowed.max_buffer_size)
        .max(base.max_buffer_size);
    wgpu::Limits {
        max_storage_buffer_binding_size: binding,
        max_buffer_size: buffer,
        ..base
    }
}

impl Gpu {
    /// Opens the adapter chosen by `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` / `WGPU_POWER_PREF` with
    /// WebGPU's default limits.
    pub fn new() -> Result<Self> {
        Self::on(&AdapterChoice::Auto)
    }

    /// Opens the adapter `choice` names with WebGPU's default limits.
    pub fn on(choice: &AdapterChoice) -> Result<Self> {
        pollster::block_on(Self::open(choice, |_| wgpu::Limits::default()))
    }

    /// Like [`Gpu::new`], with limits raised to `required` (each checked against the adapter first, so a
    /// shortfall is an error naming the limit rather than a failed device request).
    pub fn with_limits(required: wgpu::Limits) -> Result<Self> {
        pollster::block_on(Self::open(&AdapterChoice::Auto, |_| required))
    }

    /// Like [`Gpu::on`], with the storage binding (and buffer) limit raised toward `bytes`, the largest
    /// tensor a model would like in one binding, as far as the adapter allows ([`binding_room`]). A
    /// model splits what still does not fit.
    pub fn with_binding_room(choice: &AdapterChoice, bytes: u64) -> Result<Self> {
        pollster::block_on(Self::open(choice, |allowed| {
            binding_room(wgpu::Limits::default(), allowed, bytes)
        }))
    }

    /// Opens the chosen adapter with the limits `required` makes of the adapter's.
    async fn open(
        choice: &AdapterChoice,
        required: impl FnOnce(&wgpu::Limits) -> wgpu::Limits,
    ) -> Result<Self> {
        let instance = adapter::instance();
        let adapter = adapter::pick(&instance, choice).await?;
        let info = adapter.get_info();
        let allowed = adapter.limits();
        let required = required(&allowed);
        let mut shortfall = None;
        required.check_limits_with_fail_fn(&allowed, true, |name, needed, allowed| {
            shortfall.get_or_insert((name, needed, allowed));
        });
        if let Some((limit, needed, allowed)) = shortfall {
            return Err(Error::Limit {
                what: "this program".into(),
                limit,
                needed,
                allowed,
                adapter: info.name.clone(),
            });
        }
        let features = adapter.features() & WANTED_FEATURES;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpt"),
                required_features: features,
                required_limits: required.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Device {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        let driver_cache = DriverCache::open(&device, &info, user_cache::dir().as_deref());
        Ok(Gpu {
            health: Health::watch(&device),
            memory_cap: test_memory_cap(),
            unused: Default::default(),
            spares: Default::default(),
            adapter,
            device,
            queue,
            pipelines: PipelineCache::default(),
            driver_cache,
            created: Created::default(),
            tuner: Tuner::off(),
            info,
            features,
            limits: required,
        })
    }

    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    pub fn features(&self) -> wgpu::Features {
        self.features
    }

    /// The limits the device was created with (what kernels may rely on).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The limits the adapter could give if asked (what a caller may raise to).
    pub fn adapter_limits(&self) -> wgpu::Limits {
        self.adapter.limits()
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// True for software rasterizers such as lavapipe and llvmpipe, where kernels tuned for CPUs win.
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Subgroup operations are usable, with their size range, when the adapter has the feature.
    pub fn subgroup_sizes(&self) -> Option<(u32, u32)> {
        self.features
            .contains(wgpu::Features::SUBGROUP)
            .then_some((self.info.subgroup_min_size, self.info.subgroup_max_size))
    }

    pub fn summary(&self) -> AdapterSummary {
        AdapterSummary::new(&self.info, self.features)
    }

    /// Checks that one buffer binding of `bytes` fits the device's limits, naming `what` when not.
    pub fn check_binding_size(&self, what: &str, bytes: u64) -> Result<()> {
        let allowed = self.limits.max_storage_buffer_binding_size;
        if bytes > allowed {
            return Err(Error::Limit {
                what: what.into(),
                limit: "max_storage_buffer_binding_size",
                needed: bytes,
                allowed,
                adapter: self.info.name.clone(),
            });
        }
        Ok(())
    }

    /// Buffers, bind groups and pipelines created and command buffers submitted so far.
    pub fn counts(&self) -> Counts {
        let c = &self.created;
        Counts {
            buffers: c.buffers.load(Ordering::Relaxed),
            bind_groups: c.bind_groups.load(Ordering::Relaxed),
            pipelines: c.pipelines.load(Ordering::Relaxed),
            submits: c.submits.load(Ordering::Relaxed),
        }
    }

    /// Creates a buffer (every buffer wgpt makes goes through here, so [`Gpu::counts`] sees it).
    pub fn buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.created.buffers.fetch_add(1, Ordering::Relaxed);
        self.created.bytes.fetch_add(size, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Submits one command buffer (counted by [`Gpu::counts`]).
    pub fn submit(&self, commands: Commands) -> Submission {
        self.capture_run(&commands);
        self.created.submits.fetch_add(1, Ordering::Relaxed);
        Submission(self.queue.submit([commands.encoder.finish()]))
    }

    /// Blocks until `submission` has finished (work submitted after it may still run).
    pub fn wait_for(&self, submission: &Submission) -> Result<()> {
        let poll = wgpu::PollType::Wait {
            submission_index: Some(submission.0.clone()),
            timeout: None,
        };
        // A lost device makes the poll fail too (its submissions never ran): run the callbacks that say
        // so, and report that first.
        let polled = self.device.poll(poll);
        if polled.is_err() {
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
        self.check("waiting for the GPU")?;
        polled.map_err(|e| Error::gpu("waiting for the GPU", e))?;
        Ok(())
    }

    /// Records with `record` into fresh commands, submits them and waits until the GPU is done.
    pub fn run(&self, record: impl FnOnce(&mut Commands)) -> Result<()> {
        let mut commands = self.commands("run");
        record(&mut commands);
        self.submit(commands);
        self.wait()
    }

    /// Blocks until every submitted command has finished.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu("waiting for the GPU", e))?;
        self.check("waiting for the GPU")
    }
}

impl Drop for Gpu {
    /// Keeps what the driver compiled for the next run.
    fn drop(&mut self) {
        if let Some(cache) = &self.driver_cache {
            cache.save();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::binding_room;

    #[test]
    fn binding_room_raises_to_the_need_within_what_the_adapter_allows() {
        let base = wgpu::Limits::default();
        let (mib, gib) = (1u64 << 20, 1u64 << 30);
        let big = wgpu::Limits {
            max_storage_buffer_binding_size: 2 * gib,
            max_buffer_size: 4 * gib,
            ..base.clone()
        };
        // Small models keep WebGPU's defaults.
        assert_eq!(binding_room(base.clone(), &big, mib), base);
        // GPT-2's 154 MB embedding on an adapter that allows it: raised to the need, buffers too.
        let raised = binding_room(base.clone(), &big, 154 * mib);
        assert_eq!(raised.max_storage_buffer_binding_size, 154 * mib);
        assert_eq!(raised.max_buffer_size, base.max_buffer_size.max(154 * mib));
        // More than the adapter allows: its most (the model splits the rest).
        let capped = binding_room(base.clone(), &big, 8 * gib);
        assert_eq!(capped.max_storage_buffer_binding_size, 2 * gib);
        // An adapter at the defaults (lavapipe's 128 MiB): nothing changes.
        assert_eq!(binding_room(base.clone(), &base, 154 * mib), base);
    }
}
