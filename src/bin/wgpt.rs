//! The `wgpt` command line. Each subcommand is a thin layer over the library; errors print one line and
//! exit non-zero.

use clap::{Parser, Subcommand};
use wgpt::cli::{EvalArgs, InspectArgs, PrepareArgs, SampleArgs, TokenizerCommand, TrainArgs};

#[derive(Parser)]
#[command(
    name = "wgpt",
    version,
    about = "Train and run GPT models on any GPU through wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the GPU adapter wgpt would use (WGPU_BACKEND / WGPU_ADAPTER_NAME choose it) and its limits,
    /// or with --preset the model's parameter table.
    Info {
        /// A model preset (gpt2, gpt2-medium, gpt2-large, gpt2-xl, shakespeare-char, baby, anatomy).
        #[arg(long)]
        preset: Option<String>,
        /// Batch size of the memory plan shown with --preset.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Sequence length of the memory plan (default: the context length).
        #[arg(long)]
        seq: Option<usize>,
    },
    /// Train a model (a preset, a config.json, or a checkpoint) on text or token files.
    Train(Box<TrainArgs>),
    /// Mean loss and perplexity of a saved model on held-out data.
    Eval(EvalArgs),
    /// Generate text from a saved model, streaming it as it comes.
    Sample(SampleArgs),
    /// Encode a text file into train.bin/val.bin (uint16, split 90/10) plus its tokenizer.json.
    Prepare(PrepareArgs),
    /// Look inside a model on a prompt: attention maps, activations across depth, embeddings,
    /// parameter and gradient histograms and the next-token distribution, as SVG figures and JSON.
    Inspect(InspectArgs),
    /// Train a byte-level BPE tokenizer, or encode and decode with one.
    Tokenizer {
        #[command(subcommand)]
        command: TokenizerCommand,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { preset: None, .. } => info(),
        Command::Info {
            preset: Some(name),
            batch,
            seq,
        } => wgpt::model::GptConfig::preset(&name).and_then(|c| {
            print_parameters(&name, &c);
            print_memory_plan(&c, batch, seq.unwrap_or(c.n_positions))
        }),
        Command::Train(args) => wgpt::cli::gpu_for_training(&args, "baby")
            .and_then(|gpu| wgpt::cli::train(&gpu, &args, Default::default(), "baby"))
            .map(|_| ()),
        Command::Eval(args) => eval(&args),
        Command::Sample(args) => wgpt::cli::gpu_for_model(&args.model)
            .and_then(|gpu| wgpt::cli::sample(&gpu, &args, &mut std::io::stdout().lock())),
        Command::Prepare(args) => wgpt::cli::prepare(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Tokenizer { command } => wgpt::cli::tokenizer_command(&command),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn inspect(args: &InspectArgs) -> wgpt::Result<()> {
    let gpu = wgpt::cli::gpu_for_model(&args.model)?;
    let (anatomy, files) = wgpt::cli::inspect(&gpu, args)?;
    println!("prompt: {} tokens", anatomy.prompt.len());
    println!("next token: {}", anatomy.next_token_summary(5));
    for file in files {
        println!("wrote {}", file.display());
    }
    Ok(())
}

fn eval(args: &EvalArgs) -> wgpt::Result<()> {
    let gpu = wgpt::cli::gpu_for_model(&args.model)?;
    let loss = wgpt::cli::eval(&gpu, args)?;
    if args.json {
        println!("{{\"val_loss\":{loss}}}");
    } else {
        println!("val loss {loss:.4}, perplexity {:.2}", loss.exp());
    }
    Ok(())
}

fn info() -> wgpt::Result<()> {
    let gpu = wgpt::Gpu::new()?;
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
        "adapter limits: storage binding {} MiB, buffer {} MiB, workgroup storage {} KiB, {} invocations",
        limits.max_storage_buffer_binding_size / (1 << 20),
        limits.max_buffer_size / (1 << 20),
        limits.max_compute_workgroup_storage_size / 1024,
        limits.max_compute_invocations_per_workgroup
    );
    println!("matmul variant: {}", wgpt::model::matmul_variant(&gpu));
    Ok(())
}

/// The parameter table: one row per tensor, the blocks' tensors shown once as `h.*` with their layer count.
fn print_parameters(name: &str, config: &wgpt::model::GptConfig) {
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
        "{name}: {} layers, {} heads ({} key/value), width {}, MLP {}, context {}, vocabulary {}, {:?}, bias {}",
        config.n_layer,
        config.n_head,
        config.n_kv_head,
        config.n_embd,
        config.n_inner,
        config.n_positions,
        config.vocab_size,
        config.norm,
        config.bias
    );
    println!(
        "{:<40} {:>14} {:>8} {:>16}",
        "tensor", "shape", "count", "parameters"
    );
    for (tensor, shape, len, count) in &rows {
        let shape = shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        println!(
            "{tensor:<40} {shape:>14} {count:>8} {:>16}",
            group(len * count)
        );
    }
    let total = config.parameter_count();
    println!("{:<40} {:>14} {:>8} {:>16}", "total", "", "", group(total));
    println!("f32 size: {:.2} MiB", total as f64 * 4.0 / (1 << 20) as f64);
    if config.tie_word_embeddings {
        let untied = wgpt::model::GptConfig {
            tie_word_embeddings: false,
            ..config.clone()
        };
        println!(
            "head tied to the token embedding; untied it would be {} parameters ({:.2} MiB)",
            group(untied.parameter_count()),
            untied.parameter_count() as f64 * 4.0 / (1 << 20) as f64
        );
    }
}

/// The training step's planned GPU memory per class, beside the analytical minimum, for a device with
/// WebGPU's default 128 MiB storage binding (the plan is made without a GPU).
fn print_memory_plan(
    config: &wgpt::model::GptConfig,
    batch: usize,
    seq: usize,
) -> wgpt::Result<()> {
    let m = config.planned_memory(batch, seq)?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "memory plan of a training step at batch {batch} x {seq} (MiB), for WebGPU's default {} MiB \
         storage binding:",
        wgpt::gpu::default_max_binding() >> 20
    );
    for (class, bytes) in [
        ("parameters", m.params),
        ("gradients", m.grads),
        ("AdamW moments", m.moments),
        ("activations", m.activations),
        ("scratch", m.scratch),
    ] {
        println!("  {class:<14} {:>12.2}", mib(bytes));
    }
    println!(
        "  {:<14} {:>12.2}   (analytical minimum {:.2}: activations alive at once {:.2}; ratio {:.3})",
        "total",
        mib(m.total()),
        mib(m.minimum()),
        mib(m.activations_min),
        m.total() as f64 / m.minimum() as f64
    );
    Ok(())
}

/// `124439808` as `124,439,808`.
fn group(n: usize) -> String {
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
