"""Checks that Hugging Face `tokenizers` loads the tokenizer.json files wgpt writes and encodes exactly as
wgpt does: GPT-2's built-in tokenizer and a byte-level BPE trained by `wgpt tokenizer train`.

For each tokenizer, `wgpt prepare` encodes tests/data/tokenizer_corpus.txt (train.bin followed by
val.bin is the whole encoding); `tokenizers.Tokenizer.from_file` loads the tokenizer.json it wrote and
must give the same ids and decode them back to the text. Then tokenizers saves the file in its own form
and wgpt must encode the same with that. Exits non-zero on any difference.

Run from the repository root after `cargo build --release`:
    python scripts/check_hf_tokenizer.py [path/to/wgpt]
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

CORPUS = Path("tests/data/tokenizer_corpus.txt")


def wgpt(binary, *args):
    subprocess.run([binary, *args], check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def check(binary, name, spec, out):
    wgpt(binary, "prepare", "--tokenizer", spec, "--data", str(CORPUS), "--out", str(out))
    ours = np.concatenate([np.fromfile(out / f, dtype="<u2") for f in ("train.bin", "val.bin")]).tolist()
    hf = Tokenizer.from_file(str(out / "tokenizer.json"))
    text = open(CORPUS, encoding="utf-8", newline="").read()
    theirs = hf.encode(text).ids
    if theirs != ours:
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        print(f"{name}: MISMATCH at {at}: wgpt {ours[at:at + 5]} tokenizers {theirs[at:at + 5]}")
        return False
    if hf.decode(theirs, skip_special_tokens=False) != text:
        print(f"{name}: tokenizers does not decode the ids back to the text")
        return False
    # tokenizers writes the file its own way (merges as [a, b] pairs since 0.20); wgpt must read that too.
    resaved = out / "resaved.json"
    hf.save(str(resaved))
    wgpt(binary, "prepare", "--tokenizer", str(resaved), "--data", str(CORPUS), "--out", str(out / "again"))
    again = np.concatenate([np.fromfile(out / "again" / f, dtype="<u2") for f in ("train.bin", "val.bin")])
    if again.tolist() != ours:
        print(f"{name}: wgpt encodes differently with the file tokenizers saved")
        return False
    print(f"{name}: tokenizers {hf.get_vocab_size()} tokens, {len(ours)} ids identical to wgpt's "
          "(and wgpt reads tokenizers' own save of it)")
    return True


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/wgpt"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trained = tmp / "trained.json"
        wgpt(binary, "tokenizer", "train", "data/tinyshakespeare.txt", "--vocab-size", "8192",
             "--special-tokens", "<|startoftext|>,<|endoftext|>", "--out", str(trained))
        ok = check(binary, "gpt2", "gpt2", tmp / "gpt2")
        ok &= check(binary, "trained 8192", str(trained), tmp / "trained")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
