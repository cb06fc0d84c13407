//! The driver's compiled pipelines kept on disk between runs, through wgpu's pipeline cache (Vulkan
//! only): `<cache>/wgpt/pipelines-<adapter>-<backend>.bin`, read when a context opens and written when
//! it closes if the driver added to it.
//!
//! What this saves depends on the driver. Drivers with a disk cache of their own (Mesa's, NVIDIA's)
//! already skip most recompiles; Mesa 22's lavapipe returns an empty cache (a 32-byte header), so
//! there it saves nothing.
//!
//! The file is `MAGIC`, the [`AdapterKey`] as one JSON line, the FNV-1a hash of the payload in hex on a
//! line, then the payload: the bytes `wgpu::PipelineCache::get_data` returned. wgpu checks its own
//! header in the payload but not the driver data after it, so the hash is what rejects a damaged file.

use std::path::{Path, PathBuf};

use crate::gpu::user_cache::{self, AdapterKey};

const MAGIC: &[u8] = b"wgpt pipeline cache 1\n";

/// A pipeline cache the device compiles through, and the file it came from.
pub(crate) struct DriverCache {
    cache: wgpu::PipelineCache,
    key: AdapterKey,
    path: PathBuf,
    /// The payload as read, so that an unchanged cache is not written again.
    loaded: Vec<u8>,
}

impl DriverCache {
    /// The cache of `device` in `dir`: `None` when the device has no pipeline cache (not Vulkan, or the
    /// feature was not enabled) or there is no cache directory. A stale or corrupt file is reported
    /// with [`user_cache::warn`] and an empty cache is used instead.
    pub(crate) fn open(
        device: &wgpu::Device,
        info: &wgpu::AdapterInfo,
        dir: Option<&Path>,
    ) -> Option<Self> {
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let key = AdapterKey::of(info);
        let path = dir?.join(key.file_name("pipelines", "bin"));
        let loaded = match std::fs::read(&path) {
            Ok(bytes) => decode(&bytes, &key).unwrap_or_else(|problem| {
                user_cache::warn(&path, &format!("{problem}; ignored, compiling afresh"));
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        // SAFETY: wgpu requires data that `PipelineCache::get_data` returned; `decode` gives back only
        // bytes that `encode` wrote with a matching hash, and `encode` is only given `get_data`'s.
        // (`fallback: true`: data wgpu or the driver rejects gives an empty cache, not an error.)
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("wgpt pipelines"),
                data: (!loaded.is_empty()).then_some(&loaded[..]),
                fallback: true,
            })
        };
        Some(DriverCache {
            cache,
            key,
            path,
            loaded,
        })
    }

    pub(crate) fn cache(&self) -> &wgpu::PipelineCache {
        &self.cache
    }

    /// Writes the cache when the driver has added to it since it was read; a failure is a warning.
    pub(crate) fn save(&self) {
        let Some(data) = self.cache.get_data() else {
            return;
        };
        if data == self.loaded {
            return;
        }
        if let Err(e) = user_cache::write_atomically(&self.path, &encode(&self.key, &data)) {
            user_cache::warn(&self.path, &format!("not saved: {e}"));
        }
    }
}

/// FNV-1a, 64 bits: enough to notice a damaged file, and the same on every platform and Rust version.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn encode(key: &AdapterKey, payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(serde_json::to_vec(key).unwrap_or_default());
    out.extend(format!("\n{:016x}\n", fnv1a(payload)).bytes());
    out.extend(payload);
    out
}

/// The payload of a file `encode` wrote for `key`, or why it cannot be used.
fn decode(bytes: &[u8], key: &AdapterKey) -> Result<Vec<u8>, String> {
    let corrupt = |what: &str| format!("corrupt pipeline cache ({what})");
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("not a wgpt pipeline cache"))?;
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let (Some(made_for), Some(hash), Some(payload)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(corrupt("truncated"));
    };
    let made_for: AdapterKey =
        serde_json::from_slice(made_for).map_err(|_| corrupt("unreadable key"))?;
    if let Some(why) = made_for.stale_for(key) {
        return Err(format!("stale pipeline cache ({why})"));
    }
    if hash != format!("{:016x}", fnv1a(payload)).as_bytes() {
        return Err(corrupt("hash mismatch"));
    }
    Ok(payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::user_cache::WGPU_VERSION;

    fn key() -> AdapterKey {
        AdapterKey {
            adapter: "Some GPU".into(),
            backend: "vulkan".into(),
            driver: "driver 1.2".into(),
            wgpu: WGPU_VERSION.into(),
        }
    }

    #[test]
    fn a_pipeline_cache_round_trips() {
        let payload: Vec<u8> = (0..=255).chain([b'\n', 0, b'\n']).collect();
        assert_eq!(decode(&encode(&key(), &payload), &key()), Ok(payload));
    }

    #[test]
    fn a_damaged_or_truncated_pipeline_cache_is_corrupt() {
        let mut file = encode(&key(), b"compiled pipelines");
        let last = file.len() - 1;
        file[last] ^= 1;
        assert!(decode(&file, &key()).unwrap_err().contains("hash mismatch"));
        let file = encode(&key(), b"compiled pipelines");
        let cut = decode(&file[..MAGIC.len() + 5], &key()).unwrap_err();
        assert!(cut.contains("corrupt"), "{cut}");
        assert!(decode(b"garbage", &key()).unwrap_err().contains("corrupt"));
    }

    #[test]
    fn a_pipeline_cache_of_another_driver_is_stale() {
        let file = encode(&key(), b"compiled pipelines");
        let updated = AdapterKey {
            driver: "driver 1.3".into(),
            ..key()
        };
        let why = decode(&file, &updated).unwrap_err();
        assert!(why.starts_with("stale") && why.contains("1.3"), "{why}");
    }
}
