//! The library's one error type. The CLI turns it into a single line and a non-zero exit.

/// Everything that can go wrong in wgpt, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter exists (on `WGPU_BACKEND`'s backends), or none is the one asked for; the message says
    /// what was searched and what to do.
    #[error("{0}")]
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

    /// A JSON file or value that does not parse as what it should be (config.json, tokenizer.json,
    /// trainer_state.json), or a value that would not serialize.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// A safetensors file that does not parse, or a tensor in it that cannot be read.
    #[error("{what}: {source}")]
    Safetensors {
        what: String,
        #[source]
        source: safetensors::SafeTensorError,
    },

    /// A model configuration whose keys contradict each other or the kernels' limits.
    #[error("{0}")]
    Config(String),

    /// Something wgpt does not implement (erf GELU, a tokenizer normalizer, vocabularies past uint16).
    #[error("{0}")]
    Unsupported(String),

    /// A token id outside the vocabulary it is used with.
    #[error(
        "{what}: token id {id} at position {position} is outside the vocabulary of {vocab} tokens"
    )]
    TokenId {
        what: String,
        id: u32,
        position: usize,
        vocab: usize,
    },

    /// Input that is well-formed but not acceptable (bad flag value, bad file contents).
    #[error("{0}")]
    Invalid(String),

    /// Training stopped on a signal after its current step, having saved (`saved` says where).
    #[error("stopped by {} after step {step}; {saved}", signal_name(*.signal))]
    Interrupted {
        signal: i32,
        step: u32,
        saved: String,
    },

    /// The loss or the gradient norm became NaN or infinite: training stopped, nothing more was saved.
    #[error("{0}")]
    Diverged(String),

    /// The GPU could not allocate what a plan needs.
    #[error("out of GPU memory on {adapter}: {what} needs {planned_mib:.1} MiB{hint}")]
    OutOfMemory {
        what: String,
        planned_mib: f64,
        adapter: String,
        /// What would fit, when known (", try --batch 4").
        hint: String,
    },

    /// Processes training together disagree (their parameters differ) or cannot work together (the
    /// batch does not split over them, MPI failed).
    #[error("{0}")]
    Distributed(String),

    /// The GPU device was lost (driver reset, GPU removed): nothing more runs on it.
    #[error("the GPU device was lost ({reason}) during {what}; files written before stay whole")]
    DeviceLost { what: String, reason: String },
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
fn signal_name(signal: i32) -> String {
    match signal {
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// ` (did you mean "gpt2"?)` when one of `known` is close to `wanted` (Jaro-Winkler similarity above
/// 0.7, as clap judges misspelled flags), else nothing.
pub fn did_you_mean(wanted: &str, known: &[&str]) -> String {
    let best = (known.iter())
        .map(|k| (strsim::jaro_winkler(wanted, k), *k))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    best.map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

impl Error {
    /// The exit status a command ends with on this error: `128 + signal` when a signal stopped it
    /// (130 for Ctrl-C, 143 for SIGTERM, as shells report them), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { signal, .. } => 128 + signal,
            _ => 1,
        }
    }

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

    /// What `map_err` needs to turn a JSON error about `what` into [`Error::Json`].
    pub fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.into();
        move |source| Error::Json { what, source }
    }

    /// What `map_err` needs to turn a safetensors error about `what` into [`Error::Safetensors`].
    pub(crate) fn safetensors(
        what: impl Into<String>,
    ) -> impl FnOnce(safetensors::SafeTensorError) -> Error {
        let what = what.into();
        move |source| Error::Safetensors { what, source }
    }

    pub(crate) fn gpu(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Gpu {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn a_close_name_is_suggested_and_a_far_one_is_not() {
        let presets = ["gpt2", "gpt2-medium", "shakespeare-char", "baby"];
        assert_eq!(did_you_mean("gtp2", &presets), " (did you mean \"gpt2\"?)");
        assert_eq!(
            did_you_mean("shakespeare", &presets),
            " (did you mean \"shakespeare-char\"?)"
        );
        assert_eq!(did_you_mean("llama", &presets), "");
    }
}
