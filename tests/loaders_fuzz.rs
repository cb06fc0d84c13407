//! Every loader against thousands of seeded mutations of a valid file (bit flips, truncations, splices,
//! huge declared lengths, deep nesting): each gives a clear error or a valid load, never a panic, a
//! hang or a huge allocation (lengths are checked against the file before anything is allocated; a
//! watching allocator checks that no single allocation exceeds 64 MiB).
//! Prints, per loader, the files it survived and the slowest one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use wgpt::data::Tokenizer;
use wgpt::model::GptConfig;
use wgpt::train::Settings;

const MUTATIONS: usize = 2000;

/// The largest single allocation a loader may make: far above what the valid files need (kilobytes),
/// far below what a declared length taken on trust would ask for.
const MAX_ALLOCATION: usize = 64 << 20;

/// The system allocator, remembering the largest allocation since [`LARGEST`] was reset.
struct Watching;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        LARGEST.fetch_max(size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// A mutation of `valid`, drawn from `rng`; `other` supplies spliced bytes.
fn mutate(rng: &mut impl Rng, valid: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    let at = |rng: &mut dyn rand::RngCore, len: usize| rng.random_range(0..len.max(1));
    match rng.random_range(0..6) {
        0 => {
            for _ in 0..rng.random_range(1..9) {
                let i = at(rng, bytes.len());
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => bytes.truncate(at(rng, bytes.len())),
        2 => {
            let (from, len) = (at(rng, other.len()), rng.random_range(1..64));
            let piece = &other[from.min(other.len())..(from + len).min(other.len())];
            let i = at(rng, bytes.len()).min(bytes.len());
            bytes.splice(i..(i + piece.len()).min(bytes.len()), piece.iter().copied());
        }
        3 => {
            // A huge length or number: a safetensors header size, a shape, an id, a count.
            let i = at(rng, bytes.len().saturating_sub(8));
            let huge = [u64::MAX, 1 << 40, u32::MAX as u64, 1 << 62][rng.random_range(0..4)];
            let text = huge.to_string();
            if rng.random_bool(0.5) && bytes.len() >= i + 8 {
                bytes[i..i + 8].copy_from_slice(&huge.to_le_bytes());
            } else if let Some(d) = bytes.iter().position(|b| b.is_ascii_digit()) {
                bytes.splice(d..d + 1, text.bytes());
            }
        }
        4 => {
            // Deep nesting.
            let depth = rng.random_range(100..100_000);
            let mut nested = "[".repeat(depth).into_bytes();
            nested.extend_from_slice(&bytes);
            nested.extend(std::iter::repeat_n(b']', depth));
            bytes = nested;
        }
        _ => {
            let i = at(rng, bytes.len()).min(bytes.len());
            let junk: Vec<u8> = (0..rng.random_range(1..32)).map(|_| rng.random()).collect();
            bytes.splice(i..i, junk);
        }
    }
    bytes
}

/// Runs `load` on `MUTATIONS` mutations of `valid`: no panic, each within a second; returns how many
/// loaded, and prints the count and the slowest.
fn survive(name: &str, seed: u64, valid: &[u8], load: impl Fn(&[u8]) -> bool) -> usize {
    assert!(load(valid), "{name}: the valid file does not load");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut loaded, mut slowest, mut biggest) = (0, Duration::ZERO, 0);
    let all = Instant::now();
    for i in 0..MUTATIONS {
        let bytes = mutate(&mut rng, valid, valid);
        LARGEST.store(0, Ordering::Relaxed);
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| load(&bytes)));
        let took = start.elapsed();
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest <= MAX_ALLOCATION,
            "{name}: mutation {i} allocated {largest} bytes at once"
        );
        let ok = result.unwrap_or_else(|_| panic!("{name}: mutation {i} (seed {seed}) panicked"));
        assert!(
            took < Duration::from_secs(1),
            "{name}: mutation {i} took {took:?}"
        );
        loaded += ok as usize;
        slowest = slowest.max(took);
        biggest = biggest.max(largest);
    }
    println!(
        "{name}: {MUTATIONS} mutated files, no panic ({loaded} still loaded), slowest {slowest:?}, all {:?}, largest allocation {biggest} bytes",
        all.elapsed()
    );
    loaded
}

fn tiny() -> GptConfig {
    GptConfig {
        vocab_size: 11,
        n_positions: 8,
        n_embd: 16,
        n_layer: 1,
        n_head: 2,
        n_kv_head: 2,
        n_inner: 32,
        ..GptConfig::preset("gpt2").unwrap()
    }
}

/// A checkpoint of the tiny model: every file a training checkpoint has.
fn checkpoint_files() -> Vec<(String, Vec<u8>)> {
    let config = tiny();
    let params: Vec<Vec<f32>> = (config.params().iter())
        .map(|p| (0..p.len()).map(|j| j as f32 * 1e-3).collect())
        .collect();
    let moments = [params.clone(), params.clone()];
    let tokenizer = Tokenizer::chars_of("abcdefghijk").to_json().into_bytes();
    let extra = [("tokenizer.json", tokenizer)];
    wgpt::train::checkpoint_files(&config, &params, &moments, 3, &Settings::default(), &extra)
        .unwrap()
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files.iter().find(|(n, _)| n == name).unwrap().1
}

/// Writes `files` into `dir`.
fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// The checkpoint in `dir` with file `name` replaced by `bytes` (the others as [`write_all`] left them).
fn dir_with(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    std::fs::write(dir.join(name), bytes).unwrap();
    dir.to_path_buf()
}

#[test]
fn every_loader_survives_thousands_of_mutated_files() {
    // A RAM disk where there is one: the loaders read files, and thousands of writes to a slow disk
    // would take most of the time.
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = root.join(format!("wgpt-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = checkpoint_files();
    let config = tiny();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let tokenizer = |b: &[u8]| Tokenizer::from_json(&text(b), "tokenizer.json").is_ok();

    survive("config.json", 1, file(&files, "config.json"), |b| {
        GptConfig::from_json(&text(b), "config.json").is_ok()
    });
    survive(
        "tokenizer.json (char)",
        4,
        file(&files, "tokenizer.json"),
        tokenizer,
    );
    let corpus = &include_str!("../data/tinyshakespeare.txt")[..20_000];
    let bpe = Tokenizer::train_bpe(corpus, 300, &["<|endoftext|>"], None).unwrap();
    survive(
        "tokenizer.json (BPE)",
        5,
        bpe.to_json().as_bytes(),
        tokenizer,
    );
    let tokens: Vec<u8> = (0..4000u16).flat_map(|t| (t % 65).to_le_bytes()).collect();
    survive("train.bin (read_tokens)", 6, &tokens, |b| {
        let path = dir.join("train.bin");
        std::fs::write(&path, b).unwrap();
        wgpt::data::read_tokens(&path).is_ok()
    });
    // Each checkpoint file mutated in place in an otherwise valid checkpoint.
    let in_checkpoint = [
        ("model.safetensors", 2),
        ("config.json", 3),
        ("trainer_state.json", 7),
        ("optimizer.safetensors", 8),
    ];
    for (name, seed) in in_checkpoint {
        write_all(&dir, &files);
        let loader = format!("{name} in a checkpoint");
        survive(&loader, seed, file(&files, name), |b| {
            let dir = dir_with(&dir, name, b);
            match name {
                "trainer_state.json" => wgpt::train::saved_state(&dir).is_ok(),
                "optimizer.safetensors" => wgpt::train::saved_moments(&dir, &config).is_ok(),
                _ => wgpt::checkpoint::load(&dir).is_ok(),
            }
        });
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
