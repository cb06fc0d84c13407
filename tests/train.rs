//! Training runs as a user meets them: the loss falls, and a saved run resumes bit-identically.

use wgpt::data::{split_train_val, CharTokenizer};
use wgpt::model::{Gpt, GptConfig};
use wgpt::train::{resume, Event, Schedule, Settings, Trainer};
use wgpt::Gpu;

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
/// they are the same run, which is what resuming must reproduce bit for bit.
#[test]
fn a_resumed_run_gives_bit_identical_losses() {
    let gpu = Gpu::new().expect("training tests need a GPU adapter");
    let (tokenizer, ids) = corpus();
    let (train, val) = split_train_val(&ids);
    let config = small_config(tokenizer.vocab_size());
    let constant = |steps| Settings {
        schedule: Schedule::Constant,
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
    assert_eq!(bits(&halves), bits(&all), "{halves:?} vs {all:?}");
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
/// command buffer, also when it reads the loss back.
#[test]
fn a_step_submits_once_and_creates_nothing() {
    let gpu = Gpu::new().expect("training tests need a GPU adapter");
    let (tokenizer, ids) = corpus();
    let (train, val) = split_train_val(&ids);
    let model = Gpt::init(&gpu, &small_config(tokenizer.vocab_size()), 3).unwrap();
    let mut trainer = Trainer::new(&gpu, model, settings(10), train, val, 0).unwrap();
    trainer.train_step(true).unwrap();
    let before = gpu.counts();
    for i in 0..5 {
        trainer.train_step(i % 2 == 0).unwrap();
    }
    let after = gpu.counts();
    assert_eq!(
        (after.buffers, after.bind_groups, after.pipelines),
        (before.buffers, before.bind_groups, before.pipelines),
        "objects created during steps"
    );
    assert_eq!(after.submits - before.submits, 5, "submits per step");
}
