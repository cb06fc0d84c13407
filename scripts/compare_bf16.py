#!/usr/bin/env python3
"""Cross-check wgpt's bf16 training (`wgpt train --precision bf16`) against PyTorch's bf16 autocast.

Developer-side check only. It trains the tiny seeded GPT-2 of compare_pytorch.py for three AdamW steps
on one fixed batch four times, from the same `save_pretrained` checkpoint: wgpt in f32 and in bf16, and
PyTorch in f32 and under `torch.autocast("cpu", dtype=torch.bfloat16)`. It then compares, for every
pair, the three losses and the gradients. The first AdamW moment (`m`, saved by wgpt in
`optimizer.safetensors`, `exp_avg` in PyTorch) is a fixed linear mix of the three steps' gradients, so
it is the gradient check.

The two bf16 runs round different tensors:
- wgpt rounds the activations its backward keeps (the block's input, the norms' outputs, q/k/v, the
  attention output, the MLP's pre-activation and GELU) and the weights its products read (a 16-bit
  working copy of the f32 master weights); everything else is f32.
- Autocast rounds every matmul's inputs (weights too) and outputs to bf16, and keeps the norms,
  softmax and loss in f32.

So neither run is the other's reference. The claim checked is that each is a bf16-sized perturbation
of the same f32 run, and that they agree with each other to that size.

Tolerance, derived:
- A bf16 rounding moves a value by at most 2^-9 relative (half an ulp of 8 significand bits).
- This model's gradients pass through about 30 rounded tensors on either side (2 layers; about 12
  rounded matmul operands per layer under autocast, 8 kept tensors per layer in wgpt, and the head).
  So a gradient element is off by at most about 30 * 2^-9 ~ 2^-4 of its tensor's scale. Rounding
  errors of different elements are independent, so the typical error is sqrt(30) * 2^-9 ~ 1e-2.
- MOMENT_TOL = 2^-4. For every tensor, max |m_a - m_b| / max |m_b| <= MOMENT_TOL for each bf16 run
  against its f32 twin, and for wgpt bf16 against torch bf16.
- The loss is a mean over 128 positions whose rounding errors are independent. LOSS_TOL = 2^-8
  relative bounds it with room to spare.
- The check also has to see something: wgpt's bf16 gradients must differ from its f32 gradients by more
  than f32 noise (MIN_EFFECT = 1e-5, about 10x the agreement of the two f32 runs). Otherwise the flag
  changed nothing.

Usage:
    python scripts/compare_bf16.py [WGPT_BINARY] [--keep]
"""

import os
import shutil
import sys
import tempfile

import torch
from transformers import GPT2LMHeadModel

import compare_pytorch as base

MOMENT_TOL = 2.0**-4
LOSS_TOL = 2.0**-8
MIN_EFFECT = 1e-5


def torch_run(init_dir, x, y, autocast):
    model = GPT2LMHeadModel.from_pretrained(init_dir).float()
    model.train()  # dropout is 0 everywhere

    def forward(tokens):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=tokens).logits
        return logits.float()

    losses, moments = base.train_torch(model, forward, x, y)
    return losses, {name: m for name, (m, _) in moments.items()}


def wgpt_run(binary, init_dir, tokens, out_dir, precision):
    losses = base.run_wgpt(binary, init_dir, tokens, out_dir, ["--precision", precision])
    saved = base.read_moments(out_dir)
    moments = {k[2:]: torch.from_numpy(v).double() for k, v in saved.items() if k.startswith("m.")}
    return [losses[it][0] for it in range(base.STEPS)], moments


def moment_error(a, b):
    """The worst tensor's max |a - b| / max |b|, and its name."""
    worst = max(((a[n] - b[n]).abs().max().item() / max(b[n].abs().max().item(), 1e-30), n) for n in b)
    return worst


def main():
    args, binary = base.parse_args(__doc__)
    workdir = tempfile.mkdtemp(prefix="wgpt-bf16check-")
    try:
        init_dir, tokens = os.path.join(workdir, "init"), os.path.join(workdir, "tokens.bin")
        base.make_gpt2_dir(init_dir)
        x, y = base.fixed_batch(base.make_tokens(tokens))
        runs = {
            "wgpt f32": wgpt_run(binary, init_dir, tokens, os.path.join(workdir, "f32"), "f32"),
            "wgpt bf16": wgpt_run(binary, init_dir, tokens, os.path.join(workdir, "bf16"), "bf16"),
            "torch f32": torch_run(init_dir, x, y, autocast=False),
            "torch bf16": torch_run(init_dir, x, y, autocast=True),
        }
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print("Losses before each step's update")
    print(f"  {'iter':>4}" + "".join(f"  {name:>12}" for name in runs))
    for it in range(base.STEPS):
        print(f"  {it:>4}" + "".join(f"  {run[0][it]:12.7f}" for run in runs.values()))
    print()
    print(f"Pairs: worst loss difference (relative, tolerance {LOSS_TOL:.1e}) and worst gradient difference")
    print(f"(first AdamW moment, max |diff| / max |b| over each tensor, tolerance {MOMENT_TOL:.1e})")
    failures = []
    for a, b, tol in (
        ("wgpt bf16", "torch bf16", MOMENT_TOL),
        ("wgpt bf16", "wgpt f32", MOMENT_TOL),
        ("torch bf16", "torch f32", MOMENT_TOL),
        ("wgpt f32", "torch f32", base.MOMENT_RTOL),
    ):
        (la, ma), (lb, mb) = runs[a], runs[b]
        loss = max(abs(p - q) / abs(q) for p, q in zip(la, lb))
        loss_tol = LOSS_TOL if tol == MOMENT_TOL else base.LOSS_RTOL
        grad, name = moment_error(ma, mb)
        bad = loss > loss_tol or grad > tol
        print(f"  {a:>10} vs {b:<10}  loss {loss:9.2e} (<= {loss_tol:.1e})  gradients {grad:9.2e} "
              f"(<= {tol:.1e}, {name}){'  <-- FAIL' if bad else ''}")
        if bad:
            failures.append(f"{a} vs {b}: loss {loss:.2e}, gradients {grad:.2e} ({name})")
    effect, _ = moment_error(runs["wgpt bf16"][1], runs["wgpt f32"][1])
    if effect <= MIN_EFFECT:
        failures.append(f"--precision bf16 moved wgpt's gradients by only {effect:.1e}: nothing was rounded")
    print()
    if failures:
        print("FAIL")
        for f in failures:
            print("  - " + f)
        sys.exit(1)
    print("PASS: wgpt's bf16 steps agree with PyTorch's bf16 autocast as closely as bf16 rounding allows")


if __name__ == "__main__":
    main()
