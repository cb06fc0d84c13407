//! `wgpt info`: the adapter wgpt would use and its limits; or a model's parameter table and the memory
//! plan of its training step. `wgpt devices`: every adapter.

use std::path::PathBuf;

use clap::Args;

use crate::checkpoint;
use crate::cli::values::{self, at_least_one, model_dir, RecomputeFlag};
use crate::cli::DeviceArgs;
use crate::dist::Collective;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::{adapters, Gpu};
use crate::model::{GptConfig, GraphOptions};

/// The flags of `wgpt info`.
#[derive(Args, Clone, Debug)]
pub struct InfoArgs {
    /// A model preset: gpt2, gpt2-medium, gpt2-large, gpt2-xl, shakespeare-char, baby, anatomy.
    #[arg(long, conflicts_with_all = ["model", "config"])]
    pub preset: Option<String>,
    /// A model directory, or a training output directory (its model/); only config.json is read.
    #[arg(long, value_parser = model_dir, conflicts_with = "config")]
    pub model: Option<PathBuf>,
    /// A config.json (Hugging Face GPT2Config keys, plus wgpt's optional ones).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Batch size of the memory plan shown for a model.
    #[arg(long, default_value_t = 8, value_parser = at_least_one::<usize>)]
    pub batch: usize,
    /// Sequence length of the memory plan [default: the model's context length]
    #[arg(long, value_parser = at_least_one::<usize>)]
    pub seq: Option<usize>,
    /// What the planned step's backward recomputes (as `wgpt train --recompute`)
    #[arg(long, value_enum, default_value_t)]
    pub recompute: RecomputeFlag,
    /// How the planned step stores the activations its backward keeps (as `wgpt train --precision`)
    #[arg(long, default_value = "f32", value_parser = values::dtype)]
    pub precision: Dtype,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `wgpt info`: the model's tables when one is named, else the adapter's.
pub fn info_command(args: &InfoArgs) -> Result<()> {
    let (name, config) = match (&args.preset, &args.model, &args.config) {
        (Some(name), _, _) => (name.clone(), GptConfig::preset(name)?),
        (None, Some(dir), _) => (dir.display().to_string(), checkpoint::load_config(dir)?),
        (None, None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
            let name = path.display().to_string();
            let config = GptConfig::from_json(&text, &name)?;
            (name, config)
        }
        (None, None, None) => return info(&Gpu::on(&args.device.choice())?),
    };
    let seq = args.seq.unwrap_or(config.n_positions);
    print_parameters(&name, &config);
    let options = GraphOptions {
        recompute: args.recompute.into(),
        precision: args.precision,
        ..GraphOptions::default()
    };
    print_memory_plan(&config, args.batch, seq, options)
}

/// `wgpt info` under `mpirun` (more than one rank): one line per rank, in rank order, with the
/// machine and the adapter it opens ([`DeviceArgs::for_local_rank`]).
pub fn ranks_info(ranks: &dyn Collective, device: &DeviceArgs) -> Result<()> {
    let device = device.for_local_rank(ranks.local_rank());
    let gpu = Gpu::on(&device.choice());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    for turn in 0..ranks.size() {
        if turn == ranks.rank() {
            let adapter = match &gpu {
                Ok(gpu) => gpu.summary().to_string(),
                Err(e) => format!("no adapter: {e}"),
            };
            println!(
                "rank {turn} of {} (local rank {} on {host}): {adapter}",
                ranks.size(),
                ranks.local_rank()
            );
        }
        // Take turns, so the lines come in rank order.
        ranks.gather_u64(0)?;
    }
    gpu.map(|_| ())
}

/// `wgpt devices`: every adapter with the index `--adapter` takes, its backend, type and driver; the
/// one wgpt uses without `--adapter` marked.
pub fn devices() -> Result<()> {
    let (list, default) = adapters();
    if list.is_empty() {
        return Gpu::new().map(|_| ());
    }
    println!(
        "  {:>2}  {:<7} {:<14} {:<36} driver",
        "#", "backend", "type", "name"
    );
    for (i, a) in list.iter().enumerate() {
        let mark = if Some(i) == default { "*" } else { " " };
        println!(
            "{mark} {i:>2}  {:<7} {:<14} {:<36} {}",
            a.backend, a.device_type, a.name, a.driver
        );
    }
    println!("* the default (wgpu's choice; WGPU_BACKEND, WGPU_ADAPTER_NAME, WGPU_POWER_PREF apply); pick another with --adapter INDEX|NAME");
    Ok(())
}

/// Prints the adapter `gpu` runs on and its limits.
pub fn info(gpu: &Gpu) -> Result<()> {
    let summary = gpu.summary();
    println!("adapter:    {}", summary.name);
    println!("backend:    {}", summary.backend);
    println!("type:       {}", summary.device_type);
    println!("driver:     {}", summary.driver);
    match summary.subgroup_sizes {
        Some((lo, hi)) => println!("subgroups:  {lo}..={hi}"),
        None => println!("subgroups:  not available"),
    }
    println!(
        "timestamps: {}",
        if summary.timestamps { "yes" } else { "no" }
    );
    let limits = gpu.adapter_limits();
    println!(
        "adapter limits: storage binding {} MiB, buffer {} MiB,",
        limits.max_storage_buffer_binding_size / (1 << 20),
        limits.max_buffer_size / (1 << 20),
    );
    println!(
        "  workgroup storage {} KiB, {} invocations",
        limits.max_compute_workgroup_storage_size / 1024,
        limits.max_compute_invocations_per_workgroup
    );
    println!("matmul variant: {}", crate::model::matmul_variant(gpu));
    Ok(())
}

/// The parameter table: one row per tensor, the blocks' tensors shown once as `h.*` with their layer count.
fn print_parameters(name: &str, config: &GptConfig) {
    let mut rows: Vec<(String, Vec<usize>, usize, usize)> = Vec::new();
    for p in config.params() {
        let generic = match p.name.strip_prefix("transformer.h.") {
            Some(rest) => format!(
                "transformer.h.*.{}",
                rest.split_once('.').map_or(rest, |(_, r)| r)
            ),
            None => p.name.clone(),
        };
        match rows.iter_mut().find(|r| r.0 == generic) {
            Some(row) => row.3 += 1,
            None => rows.push((generic, p.shape.clone(), p.len(), 1)),
        }
    }
    println!(
        "{name}: {} layers, {} heads ({} key/value), width {}, MLP {}",
        config.n_layer, config.n_head, config.n_kv_head, config.n_embd, config.n_inner,
    );
    println!(
        "  context {}, vocabulary {}, {:?}, bias {}",
        config.n_positions, config.vocab_size, config.norm, config.bias
    );
    // Columns sized to fit 80 characters with the longest names (GPT-2's, the modern model's).
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    println!(
        "{:<w$} {:>10} {:>5} {:>12}",
        "tensor", "shape", "count", "parameters"
    );
    for (tensor, shape, len, count) in &rows {
        let shape = shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        println!(
            "{tensor:<w$} {shape:>10} {count:>5} {:>12}",
            group(len * count)
        );
    }
    let total = config.parameter_count();
    println!("{:<w$} {:>10} {:>5} {:>12}", "total", "", "", group(total));
    println!("f32 size: {:.2} MiB", total as f64 * 4.0 / (1 << 20) as f64);
    if config.tie_word_embeddings {
        let untied = GptConfig {
            tie_word_embeddings: false,
            ..config.clone()
        };
        println!(
            "head tied to the token embedding; untied: {} parameters ({:.2} MiB)",
            group(untied.parameter_count()),
            untied.parameter_count() as f64 * 4.0 / (1 << 20) as f64
        );
    }
}

/// The training step's planned GPU memory per class, beside the analytical minimum, for a device with
/// WebGPU's default 128 MiB storage binding (the plan is made without a GPU).
fn print_memory_plan(
    config: &GptConfig,
    batch: usize,
    seq: usize,
    options: GraphOptions,
) -> Result<()> {
    let m = config.planned_memory(batch, seq, options)?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let flags = options.memory_flags();
    println!("memory plan of a training step at batch {batch} x {seq}{flags} (MiB),");
    println!(
        "  for WebGPU's default {} MiB storage binding:",
        crate::gpu::default_max_binding() >> 20
    );
    for (class, bytes) in [
        ("parameters", m.params),
        ("gradients", m.grads),
        ("AdamW moments", m.moments),
        ("16-bit weights", m.working),
        ("activations", m.activations),
        ("scratch", m.scratch),
    ] {
        // Only a mixed-precision step has a 16-bit working copy.
        if bytes > 0 || class != "16-bit weights" {
            println!("  {class:<14} {:>12.2}", mib(bytes));
        }
    }
    println!(
        "  {:<14} {:>12.2}   (ratio {:.3} to the analytical minimum {:.2},",
        "total",
        mib(m.total()),
        m.total() as f64 / m.minimum() as f64,
        mib(m.minimum()),
    );
    println!(
        "  {:<14} {:>12}    activations alive at once {:.2})",
        "",
        "",
        mib(m.activations_min),
    );
    Ok(())
}

/// `124439808` as `124,439,808`.
pub(crate) fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
