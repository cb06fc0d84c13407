//! Files under the user's cache directory (`<cache>/wgpt/`, e.g. `~/.cache/wgpt` on Linux, or
//! `WGPT_CACHE_DIR`), which a user may delete at any time: kernel autotuning choices and the driver's compiled pipelines. Each file holds
//! the [`AdapterKey`] it was made on; a file whose key differs (another driver or wgpu version) is stale,
//! and one that does not parse is corrupt: either is ignored with a one-line warning and rewritten.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The major version of wgpu wgpt is built with (`wgpu = "30"` in Cargo.toml): its shader translation
/// shapes what the driver compiles, so a cache made under another one is stale.
pub const WGPU_VERSION: &str = "30";

/// What a cache file was made on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterKey {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub wgpu: String,
}

impl AdapterKey {
    pub fn of(info: &wgpu::AdapterInfo) -> Self {
        AdapterKey {
            adapter: info.name.clone(),
            backend: info.backend.to_string(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            wgpu: WGPU_VERSION.into(),
        }
    }

    /// `<kind>-<adapter>-<backend>.<ext>`, the adapter's name reduced to lowercase letters, digits and
    /// dashes: one file per adapter, so two adapters of one machine do not overwrite each other's.
    pub fn file_name(&self, kind: &str, ext: &str) -> String {
        let mut adapter = String::new();
        for c in self.adapter.to_lowercase().chars() {
            let c = if c.is_ascii_alphanumeric() { c } else { '-' };
            if !(c == '-' && adapter.ends_with('-')) {
                adapter.push(c);
            }
        }
        let adapter = adapter.trim_matches('-');
        format!("{kind}-{adapter}-{}.{ext}", self.backend.to_lowercase())
    }

    /// Why a file made on `self` does not serve `current`, when it does not.
    pub fn stale_for(&self, current: &AdapterKey) -> Option<String> {
        let differs = |what: &str, was: &str, now: &str| {
            (was != now).then(|| format!("made for {what} {was:?}, this is {now:?}"))
        };
        differs("adapter", &self.adapter, &current.adapter)
            .or_else(|| differs("backend", &self.backend, &current.backend))
            .or_else(|| differs("driver", &self.driver, &current.driver))
            .or_else(|| differs("wgpu", &self.wgpu, &current.wgpu))
    }
}

/// `WGPT_CACHE_DIR` when set, else `<the platform's cache directory>/wgpt`; `None` where the platform
/// has none.
pub fn dir() -> Option<PathBuf> {
    match std::env::var_os("WGPT_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => Some(dir.into()),
        _ => dirs::cache_dir().map(|d| d.join("wgpt")),
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it, so that a reader (another wgpt
/// process) sees the old file or the new one, never part of one. Creates the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let temp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
    std::fs::write(&temp, bytes).map_err(Error::io(&temp))?;
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io(path)(e)
    })
}

/// Prints a cache problem as the one line a user sees: caches only save time, so nothing fails.
pub fn warn(path: &Path, problem: &str) {
    eprintln!("warning: {}: {problem}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn key() -> AdapterKey {
        AdapterKey {
            adapter: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            backend: "vulkan".into(),
            driver: "llvmpipe Mesa 22.3.6".into(),
            wgpu: WGPU_VERSION.into(),
        }
    }

    #[test]
    fn file_names_keep_only_plain_characters_of_the_adapter() {
        assert_eq!(
            key().file_name("autotune", "json"),
            "autotune-llvmpipe-llvm-15-0-6-256-bits-vulkan.json"
        );
    }

    #[test]
    fn another_driver_or_wgpu_version_is_stale() {
        assert_eq!(key().stale_for(&key()), None);
        let newer = AdapterKey {
            driver: "llvmpipe Mesa 24.0".into(),
            ..key()
        };
        let why = key().stale_for(&newer).unwrap();
        assert!(why.contains("driver") && why.contains("24.0"), "{why}");
        let wgpu = AdapterKey {
            wgpu: "31".into(),
            ..key()
        };
        assert!(key().stale_for(&wgpu).unwrap().contains("wgpu"));
    }

    #[test]
    fn the_wgpu_version_is_the_one_cargo_toml_asks_for() {
        let manifest = include_str!("../../Cargo.toml");
        let wanted = format!("wgpu = \"{WGPU_VERSION}\"");
        assert!(manifest.contains(&wanted), "Cargo.toml has no {wanted}");
    }

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("wgpt-user-cache-{}", std::process::id()));
        let path = dir.join("x.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
