//! Finding adapters: the list of every adapter wgpu sees, the choice of one (wgpu's default as its
//! environment variables say, or one picked by index or name), and what a user wants to know about one.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Which adapter to open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdapterChoice {
    /// wgpu's choice, as `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF` say.
    #[default]
    Auto,
    /// The adapter at this index of [`adapters`]'s list (what `wgpt devices` shows).
    Index(usize),
    /// The first adapter of that list on this backend (`vulkan`, `gl`, `metal`, `dx12`), else the
    /// first whose name contains this, case-insensitively.
    Name(String),
}

/// A number is an index, anything else part of a name.
impl FromStr for AdapterChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.trim().parse::<usize>() {
            Ok(index) => AdapterChoice::Index(index),
            Err(_) => AdapterChoice::Name(s.to_string()),
        })
    }
}

/// What a user wants to know about an adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub subgroup_sizes: Option<(u32, u32)>,
    pub timestamps: bool,
}

impl AdapterSummary {
    /// The summary of an adapter with `features` (those wgpt would use).
    pub(crate) fn new(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: info.backend.to_string(),
            device_type: format!("{:?}", info.device_type),
            driver: [info.driver.as_str(), info.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
            subgroup_sizes: features
                .contains(wgpu::Features::SUBGROUP)
                .then_some((info.subgroup_min_size, info.subgroup_max_size)),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        if let Some((lo, hi)) = self.subgroup_sizes {
            write!(f, ", subgroups {lo}..={hi}")?;
        }
        write!(f, ")")
    }
}

/// Optional features wgpt uses when the adapter has them; nothing requires them.
pub(crate) const WANTED_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::PIPELINE_CACHE);

/// Every adapter of the backends `WGPU_BACKEND` allows (all when unset), in the order
/// [`AdapterChoice::Index`] counts, and the index of the one [`AdapterChoice::Auto`] opens.
pub fn adapters() -> (Vec<AdapterSummary>, Option<usize>) {
    pollster::block_on(async {
        let instance = instance();
        let adapters = instance.enumerate_adapters(backends()).await;
        let auto = pick(&instance, &AdapterChoice::Auto).await.ok();
        let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
        let default = auto.and_then(|a| infos.iter().position(|i| *i == a.get_info()));
        let list = adapters
            .iter()
            .zip(&infos)
            .map(|(a, info)| AdapterSummary::new(info, a.features() & WANTED_FEATURES))
            .collect();
        (list, default)
    })
}

/// A wgpu instance over the backends `WGPU_BACKEND` allows.
pub(crate) fn instance() -> wgpu::Instance {
    quiet_wayland_probe();
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

/// The adapter `choice` names. `WGPU_ADAPTER_NAME` picks by name when the choice is
/// [`AdapterChoice::Auto`]; an error (never wgpu's panic) lists the adapters when nothing matches.
pub(crate) async fn pick(
    instance: &wgpu::Instance,
    choice: &AdapterChoice,
) -> Result<wgpu::Adapter> {
    let (choice, what) = match (choice, std::env::var("WGPU_ADAPTER_NAME")) {
        (AdapterChoice::Auto, Err(_)) => return default_adapter(instance).await,
        (AdapterChoice::Auto, Ok(name)) => (
            AdapterChoice::Name(name.clone()),
            format!("WGPU_ADAPTER_NAME={name} matches none of the adapters"),
        ),
        (AdapterChoice::Index(i), _) => (choice.clone(), format!("there is no adapter #{i}")),
        (AdapterChoice::Name(name), _) => (
            choice.clone(),
            format!("no adapter's name or backend matches {name:?}"),
        ),
    };
    let mut adapters = instance.enumerate_adapters(backends()).await;
    if adapters.is_empty() {
        return Err(Error::NoAdapter(format!(
            "no GPU adapter found; {}",
            no_adapter_hint()
        )));
    }
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    let names: Vec<(&str, &str)> = (infos.iter())
        .map(|i| (i.name.as_str(), i.backend.to_str()))
        .collect();
    match find(&names, &choice) {
        Some(i) => Ok(adapters.swap_remove(i)),
        None => Err(Error::NoAdapter(format!(
            "{what}: {}; pick one by index or by part of its name (`wgpt devices` lists them)",
            listing(&infos)
        ))),
    }
}

/// The index `choice` picks among adapters of these (name, backend): the index itself when in range;
/// for a name, the first adapter on the backend of that name, else the first whose name contains it,
/// case-insensitively.
fn find(adapters: &[(&str, &str)], choice: &AdapterChoice) -> Option<usize> {
    match choice {
        AdapterChoice::Auto => None,
        AdapterChoice::Index(i) => (*i < adapters.len()).then_some(*i),
        AdapterChoice::Name(wanted) => {
            let wanted = wanted.to_lowercase();
            (adapters.iter().position(|(_, backend)| *backend == wanted)).or_else(|| {
                (adapters.iter()).position(|(name, _)| name.to_lowercase().contains(&wanted))
            })
        }
    }
}

/// wgpu's default adapter among `WGPU_BACKEND`'s backends, with `WGPU_POWER_PREF`'s preference.
async fn default_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoAdapter(format!("no GPU adapter found ({e}); {}", no_adapter_hint())))
}

/// `#0 name on backend, #1 ...`.
fn listing(infos: &[wgpu::AdapterInfo]) -> String {
    let items: Vec<String> = (infos.iter().enumerate())
        .map(|(i, info)| format!("#{i} {} on {}", info.name, info.backend))
        .collect();
    items.join(", ")
}

/// What to do when no adapter exists at all: widen `WGPU_BACKEND`, or install a driver.
fn no_adapter_hint() -> String {
    match std::env::var("WGPU_BACKEND") {
        Ok(backend) => format!(
            "searched only WGPU_BACKEND={backend}: unset it to search every backend"
        ),
        Err(_) => "on a machine without a GPU install Mesa's lavapipe (Debian/Ubuntu: apt-get install mesa-vulkan-drivers)".into(),
    }
}

/// Mesa's Vulkan device-selection layer asks Wayland for the default GPU while wgpu enumerates
/// adapters, and libwayland prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.`
/// when that variable is missing (a fresh machine, a container, CI), a line a user takes for wgpt's own.
/// When it is unset or not an absolute path, point it at a private directory (created mode 0700 under
/// the temporary directory), where the layer then finds no compositor and stays quiet. Done once, before
/// the first instance, so no other thread of ours reads the environment meanwhile.
fn quiet_wayland_probe() {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let set = std::env::var_os("XDG_RUNTIME_DIR")
                .is_some_and(|dir| std::path::Path::new(&dir).is_absolute());
            if !set {
                if let Some(dir) = private_runtime_dir() {
                    std::env::set_var("XDG_RUNTIME_DIR", dir);
                }
            }
        });
    }
}

/// `$TMPDIR/wgpt-runtime-<uid>`, created mode 0700 when missing; None when it exists but is not a
/// directory of ours.
#[cfg(all(unix, not(target_os = "macos")))]
fn private_runtime_dir() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let dir = std::env::temp_dir().join(format!("wgpt-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::{find, AdapterChoice};

    #[test]
    fn an_adapter_choice_is_an_index_when_it_is_a_number_and_a_name_otherwise() {
        assert_eq!("1".parse(), Ok(AdapterChoice::Index(1)));
        assert_eq!(
            "llvmpipe".parse(),
            Ok(AdapterChoice::Name("llvmpipe".into()))
        );
        assert_eq!(
            "rtx 4090".parse(),
            Ok(AdapterChoice::Name("rtx 4090".into()))
        );
    }

    #[test]
    fn a_name_picks_the_first_adapter_on_that_backend_or_containing_it_and_an_index_must_be_in_range(
    ) {
        let names = [
            ("llvmpipe (LLVM 15)", "vulkan"),
            ("NVIDIA GeForce RTX 4090", "vulkan"),
            ("llvmpipe (LLVM 15)", "gl"),
        ];
        let name = |s: &str| AdapterChoice::Name(s.into());
        assert_eq!(find(&names, &name("LLVMPIPE")), Some(0));
        assert_eq!(find(&names, &name("rtx")), Some(1));
        assert_eq!(find(&names, &name("gl")), Some(2));
        assert_eq!(find(&names, &name("radeon")), None);
        assert_eq!(find(&names, &AdapterChoice::Index(2)), Some(2));
        assert_eq!(find(&names, &AdapterChoice::Index(3)), None);
    }
}
