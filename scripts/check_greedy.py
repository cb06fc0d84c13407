"""wgpt's greedy decoding against transformers' (developer-side only).

Saves a random GPT2LMHeadModel (float32) with save_pretrained, has transformers' generate(do_sample=False)
continue a random prompt, and requires `wgpt sample --temperature 0` and `wgpt sample --top-k 1` (both
greedy: the most likely token, the lowest id on ties) to give exactly the same token ids, given the same
prompt ids with --prompt-ids. Both stop at <|endoftext|> (50256), which ends the ids it is part of.

Greedy decoding follows the argmax, so two f32 implementations agree as long as no step's top two
logits are closer than their rounding differences; the script prints the smallest such margin along the
path and, on a mismatch, the margin where the paths part.

    python scripts/check_greedy.py                         # GPT-2-shaped, 2 layers (about 10 s)
    python scripts/check_greedy.py --layers 12             # GPT-2 124M's shape (a minute or two)
    python scripts/check_greedy.py --init-range 0.2        # larger weights: a path of many tokens
    python scripts/check_greedy.py path/to/wgpt --new 64 --prompt 16 --seed 1

Exits non-zero on any difference.
"""

import argparse
import json
import subprocess
import sys
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def transformers_greedy(model, prompt, new):
    """transformers' greedy continuation of `prompt` and the top-1 minus top-2 logit at each step."""
    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=new,
        pad_token_id=model.config.eos_token_id,
        output_scores=True,
        return_dict_in_generate=True,
    )
    tokens = out.sequences[0, len(prompt):].tolist()
    margins = []
    for scores in out.scores:
        top = torch.topk(scores[0], 2).values
        margins.append(float(top[0] - top[1]))
    return tokens, margins


def wgpt_greedy(wgpt, model_dir, prompt, new, flags):
    cmd = [wgpt, "sample", "--model", model_dir, "--prompt-ids", ",".join(map(str, prompt)),
           "--max-new-tokens", str(new), "--json", *flags]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"wgpt failed: {run.stderr}")
    sample = json.loads(run.stdout.splitlines()[0])
    assert sample["prompt_ids"] == prompt, sample["prompt_ids"]
    timing = [line for line in run.stderr.splitlines() if line.startswith(("prefill", "decode"))]
    return sample["ids"], timing


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wgpt", nargs="?", default="target/release/wgpt")
    parser.add_argument("--layers", type=int, default=2, help="GPT-2 124M has 12")
    parser.add_argument("--prompt", type=int, default=16, help="prompt tokens")
    parser.add_argument("--new", type=int, default=64, help="new tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-range", type=float, default=0.02,
                        help="std of the random weights (GPT-2's 0.02 repeats a token or two; 0.2 wanders)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    config = GPT2Config(n_layer=args.layers, initializer_range=args.init_range)
    model = GPT2LMHeadModel(config).float().eval()
    prompt = torch.randint(0, config.vocab_size - 1, (args.prompt,)).tolist()
    ok = True
    with tempfile.TemporaryDirectory() as model_dir:
        model.save_pretrained(model_dir)
        with torch.no_grad():
            want, margins = transformers_greedy(model, prompt, args.new)
        print(f"GPT-2-shaped, {args.layers} layers, weights std {args.init_range}, prompt {args.prompt} "
              f"tokens, {len(want)} new ({len(set(want))} distinct)")
        print(f"transformers: {want}")
        print(f"smallest top-1 − top-2 logit margin on the path: {min(margins):.3g}")
        for name, flags in [("--temperature 0", ["--temperature", "0"]),
                            ("--top-k 1", ["--top-k", "1", "--temperature", "1"])]:
            got, timing = wgpt_greedy(args.wgpt, model_dir, prompt, args.new, flags)
            same = got == want
            ok &= same
            print(f"wgpt {name}: {'same ids' if same else 'DIFFERENT ids'} ({'; '.join(timing)})")
            if not same:
                part = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                margin = margins[part] if part < len(margins) else float("nan")
                print(f"  wgpt: {got}\n  paths part at new token {part}, where the margin is {margin:.3g}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
