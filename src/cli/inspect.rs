//! `wgpt inspect`: a model's anatomy on a prompt, as SVG figures and the JSON of the numbers behind them.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::cli::values::model_dir;
use crate::cli::{saved_tokenizer, DeviceArgs, DtypeArgs};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::inspect::{figures, Anatomy};

/// The flags of `wgpt inspect`.
#[derive(Args, Clone, Debug)]
pub struct InspectArgs {
    /// A model directory (config.json, model.safetensors and its tokenizer), or a training output
    /// directory (its model/).
    #[arg(long, value_parser = model_dir)]
    pub model: PathBuf,
    /// The text to run through the model (at most its context length in tokens).
    #[arg(long)]
    pub prompt: String,
    /// Where the figures and anatomy.json go (created if needed).
    #[arg(long, default_value = "out/inspect")]
    pub out: PathBuf,
    #[command(flatten)]
    pub weights: DtypeArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// The JSON file beside the figures.
pub const ANATOMY_FILE: &str = "anatomy.json";

/// Inspects the model on the prompt and writes the figures and [`ANATOMY_FILE`]; returns the anatomy
/// and the files written.
pub fn inspect(gpu: &Gpu, args: &InspectArgs) -> Result<(Anatomy, Vec<PathBuf>)> {
    let tokenizer = saved_tokenizer(&args.model)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no tokenizer.json, so the prompt cannot be encoded (save the model with its tokenizer)",
            args.model.display()
        ))
    })?;
    let model = args.weights.load(gpu, &args.model)?;
    let tokens = tokenizer.encode(&args.prompt)?;
    let anatomy = Anatomy::new(gpu, &model, &tokens, &|id| tokenizer.token_text(id))?;
    create_dir(&args.out)?;
    let name = args.model.display().to_string();
    let mut written = Vec::new();
    for (file, svg) in figures(&anatomy, &name)? {
        written.push(write(&args.out.join(file), svg.as_bytes())?);
    }
    written.push(write(
        &args.out.join(ANATOMY_FILE),
        anatomy.to_json()?.as_bytes(),
    )?);
    Ok((anatomy, written))
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))
}

fn write(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    std::fs::write(path, bytes).map_err(Error::io(path))?;
    Ok(path.to_path_buf())
}
