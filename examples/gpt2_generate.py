"""Generate text with a pretrained GPT-2 (Hugging Face's weights) running on dezero.

Loads the model with ``GPT.from_pretrained`` and the tokenizer with
``dezero.text.GPT2Tokenizer.from_pretrained``, samples a completion of the prompt with the
KV cache, and prints it with the generation speed in tokens/s.

    python examples/gpt2_generate.py [--model gpt2] [--prompt "..."] [--max-new-tokens 50]
                                     [--temperature 0.8] [--top-k 40] [--greedy] [--seed 0]
                                     [--no-cache] [--cache-dir DIR]

``--model`` is a hub name (gpt2, gpt2-medium, gpt2-large, gpt2-xl), fetched once through
huggingface_hub (``pip install "dezero-next[hub,text,safetensors]"``) into its usual cache,
where transformers keeps the same files; or a folder holding config.json, model.safetensors,
vocab.json and merges.txt (what ``save_pretrained`` writes, e.g. examples/gpt2_finetune.py's
output). Offline without the files, it says which files to download and where to put them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dezero.download import DownloadError
from dezero.models import GPT
from dezero.text import GPT2Tokenizer

FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    p.add_argument("--model", default="gpt2",
                   help="hub name (gpt2, gpt2-medium, gpt2-large, gpt2-xl) or a folder")
    p.add_argument("--prompt", default="The meaning of life is",
                   help="text to complete ('' starts from <|endoftext|>)")
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40, help="0: sample from every token")
    p.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-cache", action="store_true",
                   help="recompute the whole context at every token (no KV cache)")
    p.add_argument("--cache-dir", default=None, help="huggingface_hub's cache folder")
    return p


def explain_missing(model: str, error: Exception) -> str:
    """What to do when the model's files cannot be had (offline, no extra installed...)."""
    if os.path.isdir(model):
        present = [f for f in FILES if os.path.exists(os.path.join(model, f))]
        return (f"cannot load the folder {model!r} ({error}).\nIt must hold "
                f"{', '.join(FILES)}; it has {', '.join(present) or 'none of them'}.")
    return (
        f"cannot load {model!r}: {error}\n\n"
        f"To run offline, download {', '.join(FILES)} from "
        f"https://huggingface.co/{model}/tree/main into one folder (for example "
        f"~/models/{model}) and run\n"
        f"    python examples/gpt2_generate.py --model ~/models/{model}\n"
        f"With network access, `pip install \"dezero-next[hub,text,safetensors]\"` lets "
        f"--model {model} fetch them into huggingface_hub's cache (~/.cache/huggingface/hub)."
    )


def main(argv=None):
    args = build_parser().parse_args(argv)
    np.random.seed(args.seed)  # noqa: NPY002  (generate samples from the global generator)
    try:
        model = GPT.from_pretrained(args.model, cache_dir=args.cache_dir)
        tokenizer = GPT2Tokenizer.from_pretrained(args.model, cache_dir=args.cache_dir)
    except (DownloadError, ImportError, OSError) as e:
        print(explain_missing(args.model, e), file=sys.stderr)
        return None
    if tokenizer.vocab_size > model.vocab_size:
        raise SystemExit(f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                         f"{model.vocab_size}: they do not belong together")
    ids = tokenizer.encode(args.prompt)
    if len(ids) == 0:
        ids = np.array([tokenizer.eos_id], dtype=np.int64)
    top_k = 1 if args.greedy else (args.top_k or None)
    t0 = time.perf_counter()
    out = model.generate(ids[None], args.max_new_tokens, temperature=args.temperature,
                         top_k=top_k, use_cache=not args.no_cache)
    seconds = time.perf_counter() - t0
    text = tokenizer.decode(out[0])
    speed = args.max_new_tokens / seconds if seconds > 0 else float("inf")
    n_params = sum(p.size for p in model.params())
    print(text)
    print(f"--- {args.max_new_tokens} new tokens in {seconds:.2f} s: {speed:.1f} tokens/s "
          f"({'no cache' if args.no_cache else 'KV cache'}; {args.model}, "
          f"{n_params / 1e6:.0f}M parameters)")
    return {"text": text, "ids": out[0], "tokens_per_s": speed}


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
