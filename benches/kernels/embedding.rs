//! embedding rows: forward and backward for a B = 12, T = 64 batch at V = 65 (C = 128 and 768) and
//! V = 50257 (C = 128; at C = 768 GPT-2's wte is 154 MB, past WebGPU's default 128 MiB binding limit),
//! beside the CPU reference. The backward's token bucketing is CPU work done when a batch is prepared,
//! not part of the row. More rows: the decode step's forward of one token at a GPU-held position, with
//! wte and wpe in each dtype (`embedding/forward_at/<dtype>/..` for f16 and bf16).

use wgpt::dtype::Dtype;
use wgpt::kernels::embedding::{self, TokenBuckets, Weights};
use wgpt::reference::embedding as reference;

use crate::copy::{fill, memory_row};
use crate::harness::Bench;

/// (V, C) at B = 12, T = 64 (= ctx).
const SHAPES: [(usize, usize); 3] = [(65, 128), (65, 768), (50257, 128)];
const B: usize = 12;
const T: usize = 64;

pub fn run(bench: &mut Bench) {
    for dtype in Dtype::ALL {
        decode_row(bench, dtype);
    }
    for (i, &(vocab, c)) in SHAPES.iter().enumerate() {
        let rows = B * T;
        let shape = format!("{B}x{T}x{c}/V{vocab}");
        let (fwd_id, bwd_id) = (
            format!("embedding/forward/{shape}"),
            format!("embedding/backward/{shape}"),
        );
        if !bench.wants(&fwd_id) && !bench.wants(&bwd_id) {
            continue;
        }
        let gpu = &bench.gpu;
        // Token ids spread over the vocabulary, with the repeats of text.
        let tokens: Vec<u32> = (0..rows)
            .map(|i| ((i * 7919) % vocab.min(rows / 3)) as u32)
            .collect();
        let tt = gpu.upload("tokens", &[B, T], &tokens).unwrap();
        let (wte, wtet) = fill(gpu, &[vocab, c]);
        let (wpe, wpet) = fill(gpu, &[T, c]);
        let (dx, dxt) = fill(gpu, &[B, T, c]);
        let out = gpu.zeros("out", &[B, T, c]).unwrap();
        let prepared = TokenBuckets::new(&tokens, vocab).unwrap();
        let positions = gpu
            .upload("positions", &[rows], &prepared.positions)
            .unwrap();
        let buckets = gpu
            .upload("buckets", &[rows, 3], &prepared.buckets)
            .unwrap();
        let distinct = prepared.buckets.chunks(3).filter(|b| b[1] > 0).count();

        if bench.wants(&fwd_id) {
            let build = || embedding::forward(&bench.gpu, &tt, &wtet, &wpet, &out).unwrap();
            let d = if i == 0 {
                bench.compile("embedding/forward", build)
            } else {
                build()
            };
            let cpu = bench.time_cpu(|| {
                std::hint::black_box(reference::forward(&tokens, &wte, &wpe, T, c));
            });
            // Token ids, the rows of wte and wpe read, the output written.
            let bytes = 4 * (rows + distinct * c + T * c + rows * c);
            memory_row(bench, fwd_id, &[d], bytes, cpu);
        }
        if bench.wants(&bwd_id) {
            let build = || {
                embedding::backward(&bench.gpu, &dxt, &positions, &buckets, &wtet, &wpet).unwrap()
            };
            let d = if i == 0 {
                bench.compile("embedding/backward", build)
            } else {
                build()
            };
            let cpu = bench.time_cpu(|| {
                std::hint::black_box(reference::backward(&tokens, &dx, (vocab, T), T, c));
            });
            // dx, the bucket arrays, and the touched rows of dwte and dwpe read and written.
            let bytes = 4 * (rows * c + 4 * rows + 2 * distinct * c + 2 * T * c);
            memory_row(bench, bwd_id, &[d], bytes, cpu);
        }
    }
}

/// `embedding/forward_at`: one token at position T - 1, C = 768, V = 65, wte and wpe in `dtype`.
fn decode_row(bench: &mut Bench, dtype: Dtype) {
    let (vocab, c, start) = (65, 768, T - 1);
    // The f32 row keeps its id; the others name their dtype.
    let suffix = match dtype {
        Dtype::F32 => String::new(),
        _ => format!("/{}", dtype.name()),
    };
    let id = format!("embedding/forward_at{suffix}/1x1x{c}/V{vocab}");
    if !bench.wants(&id) {
        return;
    }
    let gpu = &bench.gpu;
    let tokens = [7u32];
    let tt = gpu.upload("tokens", &[1, 1], &tokens).unwrap();
    let st = gpu.upload("start", &[1], &[start as u32]).unwrap();
    let (wte, _) = fill(gpu, &[vocab, c]);
    let (wpe, _) = fill(gpu, &[T, c]);
    let (te_words, pe_words) = (dtype.pack(&wte), dtype.pack(&wpe));
    let wtet = gpu.upload("wte", &[te_words.len()], &te_words).unwrap();
    let wpet = gpu.upload("wpe", &[pe_words.len()], &pe_words).unwrap();
    let out = gpu.zeros("out", &[1, 1, c]).unwrap();
    let d = bench.compile(&format!("embedding/forward_at{}", suffix), || {
        let te = Weights::packed(&wtet, dtype, vocab, c).unwrap();
        let pe = Weights::packed(&wpet, dtype, T, c).unwrap();
        embedding::forward_piece(&bench.gpu, &tt, Some(&st), te, 0, pe, &out).unwrap()
    });
    let cpu = bench.time_cpu(|| {
        std::hint::black_box(reference::forward_at(&tokens, &wte, &wpe, start, 1, c));
    });
    // The token and start, one row of wte and of wpe read as stored, the output written.
    let bytes = 8 + 2 * c * dtype.bits() / 8 + 4 * c;
    memory_row(bench, id, &[d], bytes, cpu);
}
