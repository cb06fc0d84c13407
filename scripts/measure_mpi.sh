#!/usr/bin/env bash
# The figures of docs/distributed.md: time per step of `baby` and `shakespeare-char` on 1 and 2 ranks
# (one lavapipe thread per rank), the 2-rank step split into compute and gradient exchange
# (`wgpt train --profile`), and a plain MPI all-reduce of the gradients' bytes. Needs
# `cargo build --release --features mpi --bin wgpt --example allreduce`. Runs alternate, so a busy
# machine slows both alike; each figure is a median.
set -euo pipefail
cd "$(dirname "$0")/.."
export LP_NUM_THREADS=1
mpirun="mpirun --oversubscribe --allow-run-as-root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
ms_per_step() { # median ms per step from --json lines (the first step, with compiles, left out)
    grep '"loss"' "$1" | tail -n +2 | sed 's/.*"tokens_per_s":\([0-9.]*\).*/\1/' |
        awk -v t="$2" '{ print 1000 * t / $1 }' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
for spec in "baby 8 64 40" "shakespeare-char 4 64 12"; do
    read -r preset batch seq steps <<<"$spec"
    flags="train --preset $preset --data data/tinyshakespeare.txt --steps $steps --batch $batch --seq $seq
           --log-every 1 --eval-every 0 --json"
    for round in 1 2; do
        target/release/wgpt $flags --out "$tmp/1-$round" >"$tmp/1.jsonl" 2>/dev/null
        $mpirun -n 2 target/release/wgpt $flags --profile --out "$tmp/2-$round" >"$tmp/2.jsonl" 2>"$tmp/2.err"
        echo "$preset batch $batch x $seq, round $round: 1 rank $(ms_per_step "$tmp/1.jsonl" $((batch * seq))) ms/step," \
            "2 ranks $(ms_per_step "$tmp/2.jsonl" $((batch * seq))) ms/step"
        grep "ranks, median" "$tmp/2.err"
    done
    bytes=$(target/release/wgpt info --preset "$preset" | awk '/^total/ { gsub(",", "", $2); print 4 * $2 }')
    $mpirun -n 2 target/release/examples/allreduce "$bytes"
done
