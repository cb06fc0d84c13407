//! The library's one error type. The CLI turns it into a single line and a non-zero exit.

/// Everything that can go wrong in wgpt, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the environment (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`), or none exists.
    #[error("no GPU adapter found ({0}); on a machine without a GPU install Mesa's lavapipe (Debian/Ubuntu: apt-get install mesa-vulkan-drivers)")]
    NoAdapter(String),

    /// The device could not be created.
    #[error("could not open the GPU device on {adapter}: {reason}")]
    Device { adapter: String, reason: String },

    /// A model or kernel needs more than the adapter allows.
    #[error("{what} needs {limit} = {needed}, but the adapter {adapter} allows only {allowed}")]
    Limit {
        what: String,
        limit: &'static str,
        needed: u64,
        allowed: u64,
        adapter: String,
    },

    /// A kernel variant was asked for on an adapter without the feature it needs.
    #[error("{what} needs the adapter feature {feature}, which {adapter} does not have")]
    MissingFeature {
        what: String,
        feature: &'static str,
        adapter: String,
    },

    /// Tensor shapes that do not fit together.
    #[error("shape mismatch in {what}: {detail}")]
    Shape { what: String, detail: String },

    /// The GPU reported an error (validation, out of memory, lost device, failed map).
    #[error("GPU error in {what}: {reason}")]
    Gpu { what: String, reason: String },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Input that is well-formed but not acceptable (bad flag value, bad file contents).
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Shape {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// What `map_err` needs to turn an I/O failure on `path` into [`Error::Io`].
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn gpu(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Gpu {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
