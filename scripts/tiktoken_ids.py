"""Writes the expected GPT-2 token ids that tests/tokenizer.rs compares wgpt's tokenizer against.

tiktoken downloads its tables at run time, which fails offline, so the encoding is built here from the
table the repository ships (data/gpt2.tiktoken, the same file as tiktoken's r50k_base) with tiktoken's own
r50k pattern and <|endoftext|> = 50256, exactly as tiktoken_ext.openai_public.gpt2() builds it.

Writes tests/data/tokenizer_corpus.gpt2.json:
  {"corpus_ids": [...]}            the ids of tests/data/tokenizer_corpus.txt
  {"tinyshakespeare": {"tokens": n, "sha256": "..."}}  length and sha256 of the ids of
                                   data/tinyshakespeare.txt as little-endian uint16
Special tokens in the text are encoded as their id (allowed_special="all").

Run from the repository root: python scripts/tiktoken_ids.py
"""

import base64
import hashlib
import json
import struct

import tiktoken
from tiktoken_ext.openai_public import r50k_pat_str


def gpt2():
    ranks = {}
    with open("data/gpt2.tiktoken", "rb") as f:
        for line in f.read().splitlines():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name="gpt2-offline",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def main():
    enc = gpt2()
    corpus = open("tests/data/tokenizer_corpus.txt", encoding="utf-8", newline="").read()
    ids = enc.encode(corpus, allowed_special="all")
    assert enc.decode(ids) == corpus
    shakespeare = open("data/tinyshakespeare.txt", encoding="utf-8", newline="").read()
    full = enc.encode(shakespeare, allowed_special="all")
    packed = struct.pack(f"<{len(full)}H", *full)
    out = {
        "corpus_ids": ids,
        "tinyshakespeare": {"tokens": len(full), "sha256": hashlib.sha256(packed).hexdigest()},
    }
    with open("tests/data/tokenizer_corpus.gpt2.json", "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"corpus: {len(corpus)} chars -> {len(ids)} ids; tinyshakespeare: {len(full)} ids")


if __name__ == "__main__":
    main()
