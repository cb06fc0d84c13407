//! Training runs as a user meets them: the loss falls, a saved run resumes bit-identically, gradient
//! accumulation is the big batch's step, and a diverging run stops without touching its checkpoint.

use wgpt::data::{split_train_val, CharTokenizer};
use wgpt::dtype::Dtype;
use wgpt::model::{Gpt, GptConfig};
use wgpt::train::{resume, Event, Output, Schedule, Settings, Stop, Trainer};
use wgpt::{Error, Gpu};

fn corpus() -> (CharTokenizer, Vec<u32>) {
    let text = include_str!("../data/tinyshakespeare.txt");
    let text = &text[..200_000];
    let tokenizer = CharTokenizer::from_text(text);
    let ids = tokenizer.encode(text).unwrap();
    (tokenizer, ids)
}

fn small_config(vocab: usize) -> GptConfig {
    GptConfig {
        vocab_size: vocab,
        n_positions: 32,
        n_embd: 32,
        n_layer: 2,
        n_head: 2,
        n_kv_head: 2,
        n_inner: 128,
        dropout: 0.1,
        ..GptConfig::preset("baby").unwrap()
    }
}

fn settings(steps: u32) -> Settings {
    Settings {
        batch: 4,
        seq: 32,
        steps,
        warmup: 2,
        eval_every: 0,
        log_every: 1,
        ..Settings::default()
    }
}

fn losses(trainer: &mut Trainer) -> Vec<f32> {
    let mut out = Vec::new();
    trainer
        .run(|e| {
            if let Event::Step { loss, .. } = e {
                out.push(*loss);
            }
        })
        .unwrap();
    out
}

/// `--steps` counts all steps of a run, and a cosine schedule stretches over them, so a 4-step run and
/// the first half of an 8-step run differ in learning rate; with a constant schedule (after warmup)
/// they are the same run, which is what resuming must reproduce bit for bit, in f32 and keeping
/// activations in bf16 (a setting the checkpoint keeps).
#[test]
fn a_resumed_run_gives_bit_identical_losses() {
    let gpu = Gpu::new().expect("training tests need a GPU adapter");
    let (tokenizer, ids) = corpus();
    let (train, val) = split_train_val(&ids);
    let config = small_config(tokenizer.vocab_size());
    for precision in [Dtype::F32, Dtype::Bf16] {
        let constant = |steps| Settings {
            schedule: Schedule::Constant,
            precision,
            ..settings(steps)
        };

        let model = Gpt::init(&gpu, &config, 1).unwrap();
        let mut straight = Trainer::new(&gpu, model, constant(8), train, val, 0).unwrap();
        let all = losses(&mut straight);
        assert_eq!(all.len(), 8);

        let dir = std::env::temp_dir().join(format!("wgpt-resume-{}", std::process::id()));
        let model = Gpt::init(&gpu, &config, 1).unwrap();
        let mut first = Trainer::new(&gpu, model, constant(4), train, val, 0).unwrap();
        let mut halves = losses(&mut first);
        first.save(&dir, &[]).unwrap();
        drop(first);

        let (model, mut saved, step) = resume(&gpu, &dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((step, &saved), (4, &constant(4)));
        saved.steps = 8;
        let mut second = Trainer::new(&gpu, model, saved, train, val, step).unwrap();
        halves.extend(losses(&mut second));

        let bits = |v: &[f32]| v.iter().map(|l| l.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&halves),
            bits(&all),
            "{precision:?}: {halves:?} vs {all:?}"
        );
    }
}

#[test]
fn the_loss_falls_and_evaluation_reports_both_splits() {
    let gpu = Gpu::new().expect("training tests need a GPU adapter");
    let (tokenizer, ids) = corpus();
    let (train, val) = split_train_val(&ids);
    let model = Gpt::init(&gpu, &small_config(tokenizer.vocab_size()), 2).unwrap();
    let settings = Settings {
        lr: 3e-3,
        eval_every: 30,
        eval_steps: 4,
        log_every: 10,
        ..settings(30)
    };
    let mut trainer = Trainer::new(&gpu, model, settings, train, val, 0).unwrap();
    let mut events = Vec::new();
    trainer.run(|e| events.push(*e)).unwrap();
    let Some(Event::Step { loss: first, .. }) = events.first().copied() else {
        panic!("no step logged: {events:?}")
    };
    let Some(Event::Eval {
        train_loss,
        val_loss,
        ..
    }) = events.last().copied()
    else {
        panic!("no evaluation at the end: {events:?}")
    };
    // ln(vocab) ≈ 4.1 at the start; 30 steps of a small model learn the character frequencies.
    assert!(first > 3.8, "first loss {first}");
    assert!(
        train_loss < first - 0.4 && val_loss < first - 0.4,
        "{events:?}"
    );
}

/// The hot path: after the first step, a step creates no buffer, bind group or pipeline and submits one
/// command buffer per micro-batch (one without accumulation; the last micro-batch's also runs the
/// update), also when it reads the loss back.
#[test]
fn a_step_submits_once_per_micro_batch_and_creates_nothing() {
    let gpu = Gpu::new().expect("training tests need a GPU adapter");
    let (tokenizer, ids) = corpus();
    let (train, val) = split_train_val(&ids);
    for micros in [1, 3] {
        let model = Gpt::init(&gpu, &small_config(tokenizer.vocab_size()), 3).unwrap();
        let settings = Settings {
            grad_accum: micros,
            ..settings(10)
        };
        let mut trainer = Trainer::new(&gpu, model, settings, train, val, 0).unwrap();
        trainer.train_step(true).unwrap();
        let before = gpu.counts();
        for i in 0..5 {
            trainer.train_step(i % 2 == 0).unwrap();
        }
        let after = gpu.counts();
        assert_eq!(
            (after.buffers, after.bind_groups, after.pipelines),
            (before.buffers, before.bind_groups, before.pipelines),
            "objects created during steps of {micros} micro-batches"
        );
        let submits = after.submits - before.submits;
        assert_eq!(submits, 5 * micros as u64, "submits per step of {micros}");
    }
}

/// Four micro-batches of 3 rows are the rows of one batch of 12 (with the same dropout masks), their
/// gradients added on the GPU before one clip and AdamW step: the same run up to the order of f32
/// additions. Measured: losses within 3e-7 of each other over 8 steps; the bound is 2e-5 relative.
/// The same holds keeping activations and weights in bf16 (the working copy is packed by the first
/// micro-batch of each step only): measured within 6e-8 relative, the parameters within 4e-7.
#[test]
fn accumulating_four_micro_batches_of_three_rows_equals_one_batch_of_twelve() {
    let gpu = Gpu::new().expect("training tests need a GPU adapter");
    let (tokenizer, ids) = corpus();
    let (train, val) = split_train_val(&ids);
    let config = small_config(tokenizer.vocab_size());
    for precision in [Dtype::F32, Dtype::Bf16] {
        let run = |batch, grad_accum| {
            let model = Gpt::init(&gpu, &config, 5).unwrap();
            let settings = Settings {
                batch,
                grad_accum,
                precision,
                ..settings(6)
            };
            let mut trainer = Trainer::new(&gpu, model, settings, train, val, 0).unwrap();
            let losses = losses(&mut trainer);
            (losses, trainer.model.read_params(&gpu).unwrap())
        };
        let (big, big_params) = run(12, 1);
        let (micro, micro_params) = run(3, 4);
        assert_eq!(big.len(), 6);
        for (step, (a, b)) in big.iter().zip(&micro).enumerate() {
            assert!(
                (a - b).abs() <= 2e-5 * a.abs(),
                "{precision:?}, step {}: batch of 12 {a}, 4 x 3 {b}",
                step + 1
            );
        }
        let worst = (big_params.iter().flatten())
            .zip(micro_params.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-4,
            "{precision:?}: parameters differ by up to {worst}"
        );
    }
}

/// A run whose numbers turn NaN stops with an error naming the step, the last finite loss and what to
/// try, and the checkpoint saved before stays byte for byte as it was (the save after is refused).
#[test]
fn a_run_turning_nan_stops_and_leaves_the_last_checkpoint_alone() {
    let gpu = Gpu::new().expect("training tests need a GPU adapter");
    let (tokenizer, ids) = corpus();
    let (train, val) = split_train_val(&ids);
    let out = std::env::temp_dir().join(format!("wgpt-nan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let model = Gpt::init(&gpu, &small_config(tokenizer.vocab_size()), 6).unwrap();
    let mut trainer = Trainer::new(&gpu, model, settings(2), train, val, 0).unwrap();
    let mut output = Output::open(&out, "nan", 1, 0).unwrap();
    let stop = Stop::default();
    trainer.run_into(Some(&mut output), &stop, |_| {}).unwrap();
    let weights = out.join("model/model.safetensors");
    let good = std::fs::read(&weights).unwrap();

    // A NaN in AdamW's first moment of the token embedding: step 3's update spreads it to the weights.
    let [mut m, v] = trainer.model.read_moments(&gpu).unwrap();
    m[0][0] = f32::NAN;
    trainer.model.write_moments(&gpu, &[m, v]).unwrap();
    trainer.settings.steps = 6;
    let message = match trainer.run_into(Some(&mut output), &stop, |_| {}) {
        Err(Error::Diverged(message)) => message,
        other => panic!("expected a NaN to stop the run, got {other:?}"),
    };
    for expect in [
        "after step 3",
        "last finite loss",
        "at step 3",
        "learning rate",
    ] {
        assert!(message.contains(expect), "{expect:?} missing: {message}");
    }
    assert!(
        std::fs::read(&weights).unwrap() == good,
        "the checkpoint changed"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// A device lost mid-run (here destroyed, as a driver reset would) is one clear error at the next
/// step, and the checkpoint saved before stays whole and loads.
#[test]
fn a_lost_device_is_a_clear_error_and_leaves_the_checkpoint_whole() {
    let gpu = Gpu::new().expect("training tests need a GPU adapter");
    let (tokenizer, ids) = corpus();
    let (train, val) = split_train_val(&ids);
    let out = std::env::temp_dir().join(format!("wgpt-lost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let model = Gpt::init(&gpu, &small_config(tokenizer.vocab_size()), 8).unwrap();
    let mut trainer = Trainer::new(&gpu, model, settings(2), train, val, 0).unwrap();
    let mut output = Output::open(&out, "lost", 1, 0).unwrap();
    let stop = Stop::default();
    trainer.run_into(Some(&mut output), &stop, |_| {}).unwrap();
    let weights = std::fs::read(out.join("model/model.safetensors")).unwrap();

    gpu.device().destroy();
    trainer.settings.steps = 4;
    let err = trainer
        .run_into(Some(&mut output), &stop, |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::DeviceLost { .. }), "{err}");
    assert!(err.to_string().contains("device was lost"), "{err}");
    assert!(std::fs::read(out.join("model/model.safetensors")).unwrap() == weights);
    assert!(wgpt::checkpoint::load(&out.join("model")).is_ok());
    std::fs::remove_dir_all(&out).unwrap();
}
