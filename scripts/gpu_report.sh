#!/usr/bin/env bash
# The GPU report: what wgpt does on the adapter this machine has (wgpt picks it as WGPU_BACKEND and
# WGPU_ADAPTER_NAME say), each figure beside the command that reproduces it.
#
#   scripts/gpu_report.sh            matmul at 1024³ and GPT-2 124M's training shapes, attention at
#                                    T = 1024, copy bandwidth, shakespeare-char training over 200 steps,
#                                    GPT-2 124M decode (random weights); minutes on a datacenter GPU
#   scripts/gpu_report.sh --quick    small shapes and the baby model: a minute or two on lavapipe (CI)
#
# Prints a Markdown table on stdout; progress on stderr. Needs only cargo and the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wgpt=target/release/wgpt

say() { echo "gpu_report: $*" >&2; }
row() { printf '| %s | %s | `%s` |\n' "$1" "$2" "$3"; }
# The value of "key" in a JSON line (numbers only).
field() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

say "building"
cargo build --release --quiet --bin wgpt
adapter="$($wgpt info | sed -n 's/^adapter: *//p')"
backend="$($wgpt info | sed -n 's/^backend: *//p')"
variant="$($wgpt info | sed -n 's/^matmul variant: *//p')"

# Bench rows (GFLOP/s or GB/s, the median of the harness's samples).
bench_rows() {
    cargo bench --quiet --bench kernels -- --json "$@" 2>/dev/null | grep '^{' || true
}
report_bench() {
    local what="$1" unit="$2" id="$3" line value
    line="$(grep "\"id\":\"$id\"" "$work/bench.jsonl" || true)"
    value="$(echo "$line" | field "$unit")"
    local shown="not measured"
    [[ -n "$value" ]] && shown="$(printf '%.1f %s' "$value" "$([[ $unit == gflops ]] && echo GFLOP/s || echo GB/s)")"
    row "$what" "$shown" "cargo bench --bench kernels -- $id"
}

if ((quick)); then
    matmul_shapes=(256x256x256 768x128x384)
    attention_shape=b1h6d64t64
else
    matmul_shapes=(1024x1024x1024 4096x768x2304 4096x768x768 4096x768x3072 4096x3072x768)
    attention_shape=b1h6d64t1024
fi
ids=()
for s in "${matmul_shapes[@]}"; do ids+=("matmul/$variant/$s" "matmul/$variant/$s/dx" "matmul/$variant/$s/dw"); done
ids+=("attention/fused/forward/$attention_shape" "attention/fused/backward/$attention_shape" copy/16777216)
say "kernel rows: ${ids[*]}"
bench_rows "${ids[@]}" > "$work/bench.jsonl"

echo "## wgpt GPU report"
echo
echo "adapter: $adapter ($backend); matmul variant: $variant; $(date -u +%Y-%m-%d)"
echo
echo "| what | figure | command |"
echo "| --- | --- | --- |"
for s in "${matmul_shapes[@]}"; do
    for product in "" /dx /dw; do
        report_bench "matmul $s$product" gflops "matmul/$variant/$s$product"
    done
done
report_bench "attention forward $attention_shape" gflops "attention/fused/forward/$attention_shape"
report_bench "attention backward $attention_shape" gflops "attention/fused/backward/$attention_shape"
report_bench "copy, 64 MiB" gbps copy/16777216

# Training throughput: the median of the logged intervals after the first.
if ((quick)); then
    train=(--preset baby --steps 40 --log-every 10)
else
    train=(--preset shakespeare-char --batch 64 --steps 200 --log-every 20)
fi
cmd="wgpt train --data data/tinyshakespeare.txt ${train[*]} --eval-every 0 --json"
say "training: $cmd"
$wgpt train --data data/tinyshakespeare.txt "${train[@]}" --eval-every 0 --json 2>/dev/null \
    | grep '"tokens_per_s"' | tail -n +2 | field tokens_per_s | median > "$work/train"
row "training ${train[1]}, tokens/s" "$(printf '%.0f' "$(cat "$work/train")")" "$cmd"

# Decoding: a model with random weights (one training step from its initialization), 256 new tokens.
if ((quick)); then
    preset=baby
    $wgpt train --data data/tinyshakespeare.txt --preset baby --steps 1 --eval-every 0 \
        --save "$work/model" >/dev/null 2>&1
    new=64
else
    preset=gpt2
    $wgpt prepare --tokenizer gpt2 --data data/tinyshakespeare.txt --out "$work/tokens" >/dev/null
    $wgpt train --tokens "$work/tokens" --preset gpt2 --batch 1 --seq 16 --steps 1 --eval-every 0 \
        --save "$work/model" >/dev/null 2>&1
    new=256
fi
cmd="wgpt sample --model MODEL --prompt ROMEO: --max-new-tokens $new"
say "decoding: $cmd ($preset, random weights)"
per_token="$($wgpt sample --model "$work/model" --prompt "ROMEO:" --max-new-tokens $new 2>&1 >/dev/null \
    | sed -n 's/.* \([0-9.]*\) ms per token.*/\1/p')"
row "$preset decode, ms/token" "${per_token:-not measured}" "$cmd"
