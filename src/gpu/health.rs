//! What can go wrong with the device itself, turned into errors instead of wgpu's panics: allocations
//! it refuses (built inside out-of-memory and validation error scopes, [`Gpu::allocating`]), a device
//! lost (driver reset, GPU removed, `destroy`), and any other error it reports outside a scope.
//!
//! Test hook: `WGPT_TEST_DEVICE_MEMORY=BYTES` makes [`Gpu::allocating`] refuse a build that creates more
//! than BYTES of buffers, as a GPU with that much memory would. Read once when the device opens; it
//! costs nothing per step.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// The test hook's environment variable.
pub const TEST_DEVICE_MEMORY: &str = "WGPT_TEST_DEVICE_MEMORY";

/// What the device's callbacks report, read by [`Gpu::check`].
#[derive(Default)]
pub(crate) struct Health {
    lost: Mutex<Option<String>>,
    error: Mutex<Option<String>>,
}

impl Health {
    /// Installs the device-lost callback and the handler of errors outside any scope.
    pub(crate) fn watch(device: &wgpu::Device) -> Arc<Health> {
        let health = Arc::new(Health::default());
        let lost = Arc::clone(&health);
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = lost.lost.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(format!("{reason:?}: {message}"));
        });
        let errors = Arc::clone(&health);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            let mut slot = errors.error.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(error.to_string());
        }));
        health
    }
}

/// The test hook's cap, if set.
pub(crate) fn test_memory_cap() -> Option<u64> {
    std::env::var(TEST_DEVICE_MEMORY).ok()?.parse().ok()
}

impl Gpu {
    /// An error when the device was lost or reported an error since it opened (`what` names the
    /// operation for the message).
    pub fn check(&self, what: &str) -> Result<()> {
        if let Some(reason) = self.health.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::DeviceLost {
                what: what.into(),
                reason,
            });
        }
        match self.health.error.lock().ok().and_then(|e| e.clone()) {
            Some(reason) => Err(Error::gpu(what, reason)),
            None => Ok(()),
        }
    }

    /// Runs `build` (creating buffers, pipelines, bind groups) inside out-of-memory and validation
    /// error scopes: an allocation the device refuses is [`Error::OutOfMemory`] naming `what` and the
    /// bytes the build asked for, instead of wgpu's panic.
    pub fn allocating<T>(&self, what: &str, build: impl FnOnce() -> Result<T>) -> Result<T> {
        let before = self.created.bytes.load(Ordering::Relaxed);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let invalid = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = build();
        let invalid = pollster::block_on(invalid.pop());
        let oom = pollster::block_on(oom.pop());
        let bytes = self.created.bytes.load(Ordering::Relaxed) - before;
        let refused = oom.map(|e| e.to_string()).or_else(|| {
            (self.memory_cap.is_some_and(|cap| bytes > cap)).then(|| {
                format!(
                    "{TEST_DEVICE_MEMORY} allows {} bytes",
                    self.memory_cap.unwrap_or(0)
                )
            })
        });
        if let Some(reason) = refused {
            return Err(Error::OutOfMemory {
                what: what.into(),
                planned_mib: bytes as f64 / (1 << 20) as f64,
                adapter: format!("{} ({reason})", self.info().name),
                hint: String::new(),
            });
        }
        match invalid {
            Some(e) => Err(Error::gpu(what, e)),
            None => result,
        }
    }
}
