"""PyTorch on the same CPU: the yardstick wgpt's training and decoding speed is judged by (developer-side only).

Trains the same GPT as wgpt's presets (nanoGPT's model: learned positions, pre-norm blocks, LayerNorm with
bias, tanh GELU, tied head, F.scaled_dot_product_attention) with AdamW on random token batches, and times
steps after a warm-up; or decodes with transformers' GPT2LMHeadModel (random weights, KV cache).

    python scripts/bench_pytorch.py train baby                  # B 12, T 64: tokens/s
    python scripts/bench_pytorch.py train shakespeare-char      # B 16, T 256, dropout 0.2
    python scripts/bench_pytorch.py train gpt2 --steps 2        # B 4, T 1024: seconds per step
    python scripts/bench_pytorch.py decode --prompt 16 --new 256
    python scripts/bench_pytorch.py ... --threads 2 --json

Run it in the same session as the wgpt figure it is compared with: machines differ, and so do runs.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: (layers, heads, width, context, vocabulary, batch, seq, dropout)
PRESETS = {
    "baby": (4, 4, 128, 64, 65, 12, 64, 0.0),
    "shakespeare-char": (6, 6, 384, 256, 65, 16, 256, 0.2),
    "gpt2": (12, 12, 768, 1024, 50257, 4, 1024, 0.0),
}


class Block(nn.Module):
    def __init__(self, c, heads, dropout):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.drop = nn.Dropout(dropout)

    def attention(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.drop(self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c)))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))


class GPT(nn.Module):
    def __init__(self, layers, heads, c, context, vocab, dropout):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(context, c)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(c, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(t)))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def train(args):
    layers, heads, c, context, vocab, batch, seq, dropout = PRESETS[args.preset]
    batch, seq = args.batch or batch, args.seq or seq
    torch.manual_seed(1337)
    model = GPT(layers, heads, c, context, vocab, dropout)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=1e-3,
        betas=(0.9, 0.99),
    )
    times = []
    for step in range(args.warmup + args.steps):
        x = torch.randint(vocab, (batch, seq))
        y = torch.randint(vocab, (batch, seq))
        start = time.perf_counter()
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    row = {
        "what": f"pytorch/train/{args.preset}",
        "batch": batch,
        "seq": seq,
        "threads": torch.get_num_threads(),
        "median_step_s": median,
        "tokens_per_s": batch * seq / median,
        "steps": len(times),
    }
    print(json.dumps(row) if args.json else
          f"{row['what']}: B {batch} x T {seq}, {row['threads']} threads: "
          f"{median * 1e3:.1f} ms/step (median of {len(times)}), {row['tokens_per_s']:.0f} tokens/s")


def decode(args):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1337)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    prompt = torch.randint(50257, (1, args.prompt))
    with torch.no_grad():
        # Prefill once, then time each new token with the KV cache, as `generate` does.
        out = model(prompt, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        times = []
        for _ in range(args.new):
            start = time.perf_counter()
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    row = {
        "what": "pytorch/decode/gpt2",
        "threads": torch.get_num_threads(),
        "prompt": args.prompt,
        "new_tokens": args.new,
        "median_ms_per_token": median * 1e3,
        "mean_ms_per_token": statistics.mean(times) * 1e3,
    }
    print(json.dumps(row) if args.json else
          f"{row['what']}: {row['threads']} threads, {args.prompt}-token prompt: "
          f"{row['median_ms_per_token']:.1f} ms/token (median of {args.new}), "
          f"{row['mean_ms_per_token']:.1f} mean")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("preset", choices=sorted(PRESETS))
    t.add_argument("--batch", type=int)
    t.add_argument("--seq", type=int)
    t.add_argument("--steps", type=int, default=30)
    t.add_argument("--warmup", type=int, default=3)
    d = sub.add_parser("decode")
    d.add_argument("--prompt", type=int, default=16)
    d.add_argument("--new", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train(args) if args.command == "train" else decode(args)


if __name__ == "__main__":
    main()
