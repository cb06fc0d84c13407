#!/usr/bin/env python3
"""Cross-check wgpt's training step against PyTorch + Hugging Face transformers.

Developer-side check only (the crate never needs Python). What it does:

1. Builds a tiny seeded GPT-2 in transformers, saves it with `save_pretrained` (safetensors) into a
   temporary directory, and writes a deterministic uint16 token file.
2. Runs `wgpt train --init THAT_DIR ... --overfit-batch --steps 3 --json --save OUT` and collects the
   three logged losses. wgpt's JSON `step` counts steps done (1, 2, 3) and `loss` is the loss of the
   fixed batch computed by that step, i.e. *before* its update; so wgpt step s pairs with PyTorch
   iteration s-1.
3. Runs the same three steps in PyTorch from the same checkpoint: `GPT2LMHeadModel.from_pretrained`,
   float32 on the CPU, same fixed batch, `torch.optim.AdamW` with two parameter groups (weight decay on
   tensors with dim >= 2, none on the rest; the tied lm_head/wte counted once).
4. Loads wgpt's `OUT` with `GPT2LMHeadModel.from_pretrained` (interop: transformers reads what wgpt
   writes; the reverse direction, wgpt reading what `save_pretrained` wrote, happened in step 2 and is
   confirmed by the step-0 loss agreeing, since that loss is computed from the imported weights before
   any update) and compares every parameter with PyTorch's after three steps. It also compares the
   AdamW moments wgpt saves (`optimizer.safetensors`, `m.<name>`/`v.<name>`) with PyTorch's
   `exp_avg`/`exp_avg_sq`: the first moment is a fixed linear mix of the three gradients, so it checks
   the gradients themselves, where the parameters only see them through the normalizing update.
5. Prints a summary and exits non-zero when a loss differs by more than 1e-4 relative, or a parameter
   by more than the tolerance argued below.

Parameter tolerance. Both sides start from identical weights, so after 3 steps every element differs
from PyTorch's only by the difference of the 3 AdamW updates. An AdamW update is
lr * m_hat / (sqrt(v_hat) + eps): normalized, it is about lr in size per element whatever the size of
the gradient. For an element whose gradient is at f32 rounding-noise level (e.g. an exactly-cancelling
sum, or a token embedding row that the batch never touches except through noise) the *sign* of the
update is noise, so a single step can put the two sides up to 2*lr apart, and three steps up to
6*lr in the very worst case (with bias correction the step-1 update is exactly +-lr, later ones are
at most ~lr each). So the per-element bound we enforce is an absolute one:

    |p_wgpt - p_torch| <= 3 * STEPS * lr = 9e-3 (for lr = 1e-3, 3 steps)     [ATOL_PER_ELEMENT]

That bound alone is loose; a real bug (a wrong GELU, a transposed weight, an off-by-one in bias
correction or in the schedule, decay on the wrong tensors) shows up in the *typical* error of the
elements whose gradient is real. So we also bound the root-mean-square difference per tensor over the
"determined" elements, those whose gradient is not at noise level, taken as
sqrt(v_torch) >= 1e-3 * max sqrt(v_torch) over the tensor (v = PyTorch's exp_avg_sq). In this model
the undetermined ones are the attention's key biases (a key bias adds the same q.b_k to every score of
a query row, which softmax ignores: its gradient is exactly zero, in f32 a few ulps) and a few
c_attn.weight elements:

    rms over determined elements of (p_wgpt - p_torch) <= 2e-3 * lr = 2e-6      [RMS_TOL]

Why that number: two correct f32 implementations (different summation orders) measured here agree to
rms 1e-8 .. 2e-7 per tensor (an occasional element whose m_hat/sqrt(v_hat) is ill-conditioned, because
its gradients over the 3 steps nearly cancel, reaches ~3e-5 on its own, which is why the bound is on
the rms, not the max). The smallest effect we want to see is weight decay itself: lr * wd * |p| per
step, 3e-4 * |p| over 3 steps, rms ~6e-6 for N(0, 0.02) weights and ~3e-6 for the residual
projections. 2e-6 sits between, ~10x above the noise; everything else (schedule, bias correction,
GELU, layouts) moves the rms by 1e-5 .. 1e-3. `--mutants` demonstrates it: each deliberate mistake on
the PyTorch side must fail the comparison. The max relative difference (|d| / max(|p_torch|, 1e-3))
is reported too, for information.

Moment tolerance. For each tensor, max |m_wgpt - m_torch| / max |m_torch| <= 1e-3 (and the same for v).
Two correct f32 implementations agree on gradients to ~1e-5 of the tensor's scale (different
summation orders over B*T = 128 positions and 64..256-wide dot products); a wrong derivative, layout or
scaling is off by O(1) of it.

--modern runs the same check on wgpt's modern variant (RMSNorm, no biases, grouped-query attention),
against a plain PyTorch twin defined below (transformers has no such class; the interop check there is
that wgpt's saved safetensors load strictly into the twin). --mutants reruns the PyTorch side with
deliberate mistakes (erf GELU, a transposed weight, decay on the wrong tensors, bias-correction and
schedule off-by-ones, a different eps) and fails unless every one is caught.

Usage:
    python scripts/compare_pytorch.py [WGPT_BINARY] [--modern] [--mutants] [--keep]
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors.numpy import load_file
from safetensors.torch import load_file as load_torch_file
from safetensors.torch import save_file as save_torch_file
from transformers import GPT2Config, GPT2LMHeadModel

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

VOCAB = 97
N_POS = 32
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_KV_HEAD = 2  # --modern only: grouped-query attention, two query heads per key/value head
BATCH = 4
SEQ = 32
STEPS = 3
LR = 1e-3
WD = 0.1
BETA1, BETA2, EPS = 0.9, 0.95, 1e-8
LN_EPS = 1e-5
SEED = 1234

LOSS_RTOL = 1e-4
ATOL_PER_ELEMENT = 3 * STEPS * LR
RMS_TOL = 2e-3 * LR
DETERMINED = 1e-3  # sqrt(v) relative to the tensor's largest: below it a gradient is noise-level
MOMENT_RTOL = 1e-3


# ---------------------------------------------------------------------------------------------------
# Inputs: checkpoint directories and the token file


def make_gpt2_dir(path):
    torch.manual_seed(SEED)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=N_POS,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu_new",
    )
    GPT2LMHeadModel(config).save_pretrained(path, safe_serialization=True)


def make_tokens(path):
    # A deterministic, non-trivial sequence covering the vocabulary. wgpt splits a token file 90/10
    # into train and validation (the fixed batch comes from the start of the train part) and wants at
    # least SEQ+1 validation tokens, so write well over B*T+1 tokens.
    n = 4 * (BATCH * SEQ + 1)
    i = np.arange(n, dtype=np.int64)
    toks = ((i * 37 + (i * i) % 11 + 5) % VOCAB).astype("<u2")
    toks.tofile(path)
    return toks


def fixed_batch(toks):
    n = BATCH * SEQ
    x = torch.from_numpy(toks[:n].astype(np.int64)).view(BATCH, SEQ)
    y = torch.from_numpy(toks[1 : n + 1].astype(np.int64)).view(BATCH, SEQ)
    return x, y


# ---------------------------------------------------------------------------------------------------
# The modern variant (--modern): wgpt's GPT-2 with RMSNorm (gain only), no biases, grouped-query
# attention (qkv = q for H heads, then k and v for Hkv heads; query head h reads kv head h / (H/Hkv)),
# learned positions, gelu_new MLP, tied head. transformers has no such class, so this is a plain
# PyTorch model with wgpt's tensor names and Conv1D [in, out] layout, written from docs/architecture.md and the
# shader comments.


class RMSNorm(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(c))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + LN_EPS) * self.weight


class Linear(torch.nn.Module):  # Conv1D layout [in, out], no bias
    def __init__(self, i, o, std):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(i, o) * std)

    def forward(self, x):
        return x @ self.weight


class ModernBlock(torch.nn.Module):
    def __init__(self, std, residual_std):
        super().__init__()
        c, d = N_EMBD, N_EMBD // N_HEAD
        self.ln_1 = RMSNorm(c)
        self.attn = torch.nn.Module()
        self.attn.c_attn = Linear(c, (N_HEAD + 2 * N_KV_HEAD) * d, std)
        self.attn.c_proj = Linear(c, c, residual_std)
        self.ln_2 = RMSNorm(c)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc = Linear(c, 4 * c, std)
        self.mlp.c_proj = Linear(4 * c, c, residual_std)

    def forward(self, x):
        b, t, c = x.shape
        h, kv, d = N_HEAD, N_KV_HEAD, c // N_HEAD
        qkv = self.attn.c_attn(self.ln_1(x))
        q = qkv[..., : h * d].view(b, t, h, d).transpose(1, 2)
        k = qkv[..., h * d : (h + kv) * d].view(b, t, kv, d).transpose(1, 2)
        v = qkv[..., (h + kv) * d :].view(b, t, kv, d).transpose(1, 2)
        k = k.repeat_interleave(h // kv, dim=1)
        v = v.repeat_interleave(h // kv, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.attn.c_proj(o)
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class Modern(torch.nn.Module):
    def __init__(self):
        super().__init__()
        std, residual_std = 0.02, 0.02 / math.sqrt(2 * N_LAYER)
        self.transformer = torch.nn.Module()
        self.transformer.wte = torch.nn.Embedding(VOCAB, N_EMBD)
        self.transformer.wpe = torch.nn.Embedding(N_POS, N_EMBD)
        torch.nn.init.normal_(self.transformer.wte.weight, std=std)
        torch.nn.init.normal_(self.transformer.wpe.weight, std=std)
        self.transformer.h = torch.nn.ModuleList(ModernBlock(std, residual_std) for _ in range(N_LAYER))
        self.transformer.ln_f = RMSNorm(N_EMBD)

    def forward(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
        for block in tr.h:
            x = block(x)
        return tr.ln_f(x) @ tr.wte.weight.T  # tied head


def make_modern_dir(path):
    torch.manual_seed(SEED)
    model = Modern()
    os.makedirs(path, exist_ok=True)
    tensors = {n: p.detach().contiguous() for n, p in model.named_parameters()}
    save_torch_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    config = {
        "model_type": "gpt2",
        "vocab_size": VOCAB,
        "n_positions": N_POS,
        "n_embd": N_EMBD,
        "n_layer": N_LAYER,
        "n_head": N_HEAD,
        "layer_norm_epsilon": LN_EPS,
        "tie_word_embeddings": True,
        "activation_function": "gelu_new",
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "norm": "rmsnorm",
        "n_kv_head": N_KV_HEAD,
        "bias": False,
    }
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def load_modern(path):
    model = Modern()
    state = load_torch_file(os.path.join(path, "model.safetensors"))
    model.load_state_dict(state, strict=True)  # names and shapes must match exactly
    return model


# ---------------------------------------------------------------------------------------------------
# The two trainers


def run_wgpt(binary, init_dir, tokens, out_dir, extra=()):
    cmd = [
        binary, "train",
        "--init", init_dir,
        "--tokens", tokens,
        "--vocab-size", str(VOCAB),
        "--overfit-batch",
        "--batch", str(BATCH),
        "--seq", str(SEQ),
        "--steps", str(STEPS),
        "--lr", repr(LR),
        "--schedule", "constant",
        "--warmup", "0",
        "--weight-decay", repr(WD),
        "--beta1", repr(BETA1),
        "--beta2", repr(BETA2),
        "--eps", repr(EPS),
        "--grad-clip", "0",
        "--dropout", "0",
        "--eval-every", "0",
        "--log-every", "1",
        "--json",
        "--save", out_dir,
        # The run's output directory beside the saved model, in the temporary directory: never an
        # out/ under whatever directory the script runs from.
        "--out", out_dir + "-run",
        *extra,
    ]
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"wgpt train failed with exit status {proc.returncode}")
    losses = {}  # keyed by 0-based iteration: wgpt's "step" s is the loss computed in iteration s-1
    for line in proc.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        if "loss" in obj and "step" in obj:
            losses[int(obj["step"]) - 1] = (float(obj["loss"]), float(obj.get("lr", float("nan"))))
    return losses


# Deliberate mistakes for --mutants: the PyTorch side is run with each one, and the comparison must
# fail; this shows the tolerances above have teeth against the bugs they are meant to catch.
MUTANTS = {
    "gelu-erf": "exact erf GELU instead of the tanh approximation (gelu_new)",
    "c_proj-transposed": "attn.c_proj weights read as [out, in] (a square matrix, so shapes still match)",
    "decay-all": "weight decay on 1-D tensors (gains, biases) too",
    "no-decay": "no weight decay at all",
    "adam-step-from-0": "AdamW bias correction with step counted from 0 (t+1 used for step t)",
    "no-bias-correction": "AdamW without bias correction",
    "warmup-off-by-one": "first step at lr/2 (warmup formula with warmup=1)",
    "ln-eps-1e-6": "LayerNorm eps 1e-6 instead of the config's 1e-5",
}


def train_torch(model, forward, x, y, mutation=None):
    """Runs STEPS AdamW steps on the fixed batch; returns losses, {name: (exp_avg, exp_avg_sq)}."""
    # named_parameters() de-duplicates shared tensors, so a tied lm_head/wte appears once.
    params = dict(model.named_parameters())
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    if mutation == "decay-all":
        decay, no_decay = decay + no_decay, []
    wd = 0.0 if mutation == "no-decay" else WD
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    manual = mutation in ("adam-step-from-0", "no-bias-correction")
    opt = torch.optim.AdamW(groups, lr=LR, betas=(BETA1, BETA2), eps=EPS, foreach=False, fused=False)
    state = {}
    losses = []
    for it in range(STEPS):
        logits = forward(x)  # [B, T, V]
        # Mean cross-entropy over all B*T positions against y (not HF's internal label shift).
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = LR / 2 if (mutation == "warmup-off-by-one" and it == 0) else LR
        if not manual:
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
            continue
        with torch.no_grad():  # hand-written AdamW, used only to inject the bias-correction mutants
            t = it + 1 + (1 if mutation == "adam-step-from-0" else 0)
            for group in groups:
                for p in group["params"]:
                    m, v = state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p)))
                    m.mul_(BETA1).add_(p.grad, alpha=1 - BETA1)
                    v.mul_(BETA2).addcmul_(p.grad, p.grad, value=1 - BETA2)
                    p.mul_(1 - lr * group["weight_decay"])
                    if mutation == "no-bias-correction":
                        mh, vh = m, v
                    else:
                        mh, vh = m / (1 - BETA1**t), v / (1 - BETA2**t)
                    p.sub_(lr * mh / (vh.sqrt() + EPS))
    names = {id(p): n for n, p in params.items()}
    moments = {}
    for p in decay + no_decay:
        if manual:
            m, v = state[p]
        else:
            m, v = opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]
        moments[names[id(p)]] = (m.detach().double(), v.detach().double())
    return losses, moments


def torch_gpt2(init_dir, x, y, mutation=None):
    kwargs = {"activation_function": "gelu"} if mutation == "gelu-erf" else {}
    if mutation == "ln-eps-1e-6":
        kwargs["layer_norm_epsilon"] = 1e-6
    model = GPT2LMHeadModel.from_pretrained(init_dir, **kwargs).float()
    assert model.lm_head.weight is model.transformer.wte.weight, "expected a tied lm_head"
    if mutation == "c_proj-transposed":
        with torch.no_grad():
            for block in model.transformer.h:
                block.attn.c_proj.weight.copy_(block.attn.c_proj.weight.T.clone())
    model.train()  # dropout is 0 everywhere, so train and eval modes agree
    losses, moments = train_torch(model, lambda t: model(input_ids=t).logits, x, y, mutation)
    return losses, moments, dict(model.named_parameters())


def torch_modern(init_dir, x, y):
    model = load_modern(init_dir)
    losses, moments = train_torch(model, model, x, y)
    return losses, moments, dict(model.named_parameters())


# ---------------------------------------------------------------------------------------------------
# Comparison


def compare(wgpt_losses, wgpt_params, wgpt_moments, torch_losses, torch_params, torch_moments, verbose):
    """Returns a list of failures; prints the tables when verbose."""
    say = print if verbose else (lambda *a, **k: None)
    failures = []
    say()
    say("Losses (before each step's update; wgpt's JSON step s = iteration s-1)")
    say(f"  {'iter':>4}  {'wgpt':>12}  {'pytorch':>12}  {'rel diff':>10}  {'wgpt lr':>9}")
    for it in range(STEPS):
        tl = torch_losses[it]
        if it not in wgpt_losses:
            failures.append(f"wgpt logged no loss for iteration {it}")
            say(f"  {it:>4}  {'missing':>12}  {tl:12.7f}")
            continue
        wl, wlr = wgpt_losses[it]
        rel = abs(wl - tl) / abs(tl)
        flag = "" if rel <= LOSS_RTOL else "  <-- FAIL"
        say(f"  {it:>4}  {wl:12.7f}  {tl:12.7f}  {rel:10.2e}  {wlr:9.2e}{flag}")
        if rel > LOSS_RTOL:
            failures.append(f"iteration {it} loss: wgpt {wl} vs pytorch {tl:.7f} (rel {rel:.2e} > {LOSS_RTOL})")
        if not math.isnan(wlr) and abs(wlr - LR) > 1e-12 * LR:
            failures.append(f"iteration {it} lr: wgpt {wlr} vs {LR}")

    missing = sorted(set(torch_params) ^ set(wgpt_params))
    if missing:
        failures.append(f"parameter names differ between the two sides: {missing}")
    rows = []
    for name, p in torch_params.items():
        if name not in wgpt_params:
            continue
        q = wgpt_params[name]
        if tuple(q.shape) != tuple(p.shape):
            rows.append((name, tuple(p.shape), math.inf, math.inf, math.inf, 0.0, f"SHAPE {tuple(q.shape)}"))
            continue
        d = q.detach().double() - p.detach().double()
        rel = (d.abs() / p.detach().double().abs().clamp_min(1e-3)).max().item()
        sv = torch_moments[name][1].sqrt()
        determined = sv >= DETERMINED * sv.max()
        rms = d[determined].pow(2).mean().sqrt().item() if determined.any() else 0.0
        noise = 1.0 - determined.double().mean().item()
        rows.append((name, tuple(p.shape), d.abs().max().item(), rms, rel, noise, ""))
    say()
    say(f"Parameters after {STEPS} steps: wgpt's saved model vs PyTorch AdamW")
    say(f"  tolerances: max |diff| <= {ATOL_PER_ELEMENT:.1e} per element; rms diff over determined elements"
        f" <= {RMS_TOL:.1e} per tensor")
    say("  (noise = share of elements whose gradient is at rounding-noise level, left out of the rms)")
    w = max(len(r[0]) for r in rows)
    say(f"  {'tensor':<{w}}  {'shape':<12}  {'max |diff|':>10}  {'rms diff':>10}  {'max rel':>10}  {'noise':>5}")
    for name, shape, max_abs, rms, rel, noise, note in rows:
        bad = bool(note) or max_abs > ATOL_PER_ELEMENT or rms > RMS_TOL
        flag = ("  <-- FAIL " + note) if bad else ""
        say(f"  {name:<{w}}  {str(list(shape)):<12}  {max_abs:10.2e}  {rms:10.2e}  {rel:10.2e}  {noise:5.0%}{flag}")
        if bad:
            failures.append(f"{name}: max |diff| {max_abs:.2e}, rms {rms:.2e} {note}")
    worst_abs = max(rows, key=lambda r: r[2])
    worst_rms = max(rows, key=lambda r: r[3])
    say(f"  worst max |diff|: {worst_abs[2]:.2e} ({worst_abs[0]}); worst rms: {worst_rms[3]:.2e} ({worst_rms[0]})")

    if wgpt_moments is None:
        say("note: wgpt saved no optimizer.safetensors; moments not compared")
        return failures
    mrows = []
    for name, (m_t, v_t) in torch_moments.items():
        row = [name]
        for prefix, ref in (("m.", m_t), ("v.", v_t)):
            got = wgpt_moments.get(prefix + name)
            if got is None or tuple(got.shape) != tuple(ref.shape):
                row.append(math.inf)
                continue
            got = torch.from_numpy(got).double()
            row.append((got - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30))
        mrows.append(tuple(row))
    say()
    say(f"AdamW moments after {STEPS} steps: wgpt optimizer.safetensors vs PyTorch exp_avg / exp_avg_sq")
    say(f"  max |diff| / max |torch| per tensor, tolerance {MOMENT_RTOL:.0e}")
    for name, dm, dv in mrows:
        if dm > MOMENT_RTOL or dv > MOMENT_RTOL:
            say(f"  {name}: m {dm:.2e}, v {dv:.2e}  <-- FAIL")
            failures.append(f"moments of {name}: m {dm:.2e}, v {dv:.2e} (> {MOMENT_RTOL:.0e})")
    worst_m = max(mrows, key=lambda r: r[1])
    worst_v = max(mrows, key=lambda r: r[2])
    say(f"  worst m: {worst_m[1]:.2e} ({worst_m[0]}); worst v: {worst_v[2]:.2e} ({worst_v[0]}); {len(mrows)} tensors")
    return failures


def read_moments(out_dir):
    path = os.path.join(out_dir, "optimizer.safetensors")
    return load_file(path) if os.path.exists(path) else None


# ---------------------------------------------------------------------------------------------------
# The checks


def check_gpt2(binary, workdir, mutants):
    print("=== GPT-2 (transformers GPT2LMHeadModel) ===")
    init_dir, out_dir = os.path.join(workdir, "gpt2-init"), os.path.join(workdir, "gpt2-out")
    tok_path = os.path.join(workdir, "tokens.bin")
    make_gpt2_dir(init_dir)
    x, y = fixed_batch(make_tokens(tok_path))
    print(f"save_pretrained wrote {init_dir}: {', '.join(sorted(os.listdir(init_dir)))}")

    wgpt_losses = run_wgpt(binary, init_dir, tok_path, out_dir)
    torch_losses, torch_moments, torch_params = torch_gpt2(init_dir, x, y)

    failures = []
    print(f"wgpt wrote {out_dir}: {', '.join(sorted(os.listdir(out_dir)))}")
    try:
        loaded = GPT2LMHeadModel.from_pretrained(out_dir).float()
    except Exception as e:  # noqa: BLE001 - any load failure is the interop failure being checked
        return failures + [f"transformers could not load wgpt's saved directory: {e!r}"]
    print("  -> transformers GPT2LMHeadModel.from_pretrained loaded it "
          f"(lm_head tied to wte: {loaded.lm_head.weight is loaded.transformer.wte.weight})")
    wgpt_params = dict(loaded.named_parameters())
    failures += compare(wgpt_losses, wgpt_params, read_moments(out_dir), torch_losses, torch_params,
                        torch_moments, verbose=True)
    if 0 in wgpt_losses and abs(wgpt_losses[0][0] - torch_losses[0]) <= LOSS_RTOL * torch_losses[0]:
        print("  -> wgpt read the save_pretrained checkpoint correctly "
              "(its iteration-0 loss, before any update, matches)")

    if mutants:
        print()
        print("Self-test: the PyTorch side with deliberate mistakes must FAIL the same comparison")
        for name, what in MUTANTS.items():
            m_losses, m_moments, m_params = torch_gpt2(init_dir, x, y, mutation=name)
            m_fail = compare(wgpt_losses, wgpt_params, read_moments(out_dir), m_losses, m_params,
                             m_moments, verbose=False)
            verdict = f"caught ({len(m_fail)} failures; first: {m_fail[0]})" if m_fail else "NOT CAUGHT"
            print(f"  {name:<20} {what}\n  {'':<20} -> {verdict}")
            if not m_fail:
                failures.append(f"self-test: mutant {name} ({what}) passed the comparison")
    return failures


def check_modern(binary, workdir):
    print()
    print("=== modern variant (RMSNorm, no biases, grouped-query attention; plain PyTorch twin) ===")
    init_dir, out_dir = os.path.join(workdir, "modern-init"), os.path.join(workdir, "modern-out")
    tok_path = os.path.join(workdir, "tokens.bin")
    make_modern_dir(init_dir)
    x, y = fixed_batch(make_tokens(tok_path))
    wgpt_losses = run_wgpt(binary, init_dir, tok_path, out_dir)
    torch_losses, torch_moments, torch_params = torch_modern(init_dir, x, y)
    failures = []
    with open(os.path.join(out_dir, "config.json")) as f:
        saved = json.load(f)
    for key, want in (("norm", "rmsnorm"), ("n_kv_head", N_KV_HEAD), ("bias", False)):
        if saved.get(key) != want:
            failures.append(f"wgpt's config.json has {key}={saved.get(key)!r}, expected {want!r}")
    try:
        wgpt_params = dict(load_modern(out_dir).named_parameters())
    except Exception as e:  # noqa: BLE001
        return failures + [f"wgpt's modern model.safetensors does not load strictly: {e!r}"]
    print("  -> wgpt's saved model.safetensors loads strictly into the PyTorch twin; config keys kept")
    return failures + compare(wgpt_losses, wgpt_params, read_moments(out_dir), torch_losses, torch_params,
                              torch_moments, verbose=True)


def parse_args(description, add_flags=lambda ap: None):
    """The cross-check scripts' command line: the wgpt binary (positional), --keep and the flags
    `add_flags` adds. Returns the arguments and the binary's absolute path, which must exist."""
    ap = argparse.ArgumentParser(description=description.split("\n\n")[0])
    ap.add_argument("wgpt", nargs="?", default="target/release/wgpt", help="path of the wgpt binary")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    add_flags(ap)
    args = ap.parse_args()
    binary = os.path.abspath(args.wgpt)
    if not os.path.exists(binary):
        raise SystemExit(f"wgpt binary not found at {binary}; build it with `cargo build --release`")
    torch.set_num_threads(1)
    return args, binary


def main():
    def flags(ap):
        ap.add_argument("--modern", action="store_true", help="also check the modern variant")
        ap.add_argument("--mutants", action="store_true",
                        help="also check that deliberate mistakes on the PyTorch side fail the comparison")

    args, binary = parse_args(__doc__, flags)
    workdir = tempfile.mkdtemp(prefix="wgpt-pycheck-")
    try:
        failures = check_gpt2(binary, workdir, args.mutants)
        if args.modern:
            failures += check_modern(binary, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    if failures:
        print("FAIL")
        for f in failures:
            print("  - " + f)
        sys.exit(1)
    print(f"PASS: losses within {LOSS_RTOL:g} relative, parameters and AdamW moments within tolerance, "
          "checkpoints interoperate both ways" + (" (GPT-2 and modern)" if args.modern else ""))


if __name__ == "__main__":
    main()
