"""Fine-tune a pretrained GPT-2 on Tiny Shakespeare with dezero, then save it for transformers.

Loads GPT-2 (``GPT.from_pretrained``) and its tokenizer, splits Tiny Shakespeare as nanoGPT
does (first 90% of the characters to train, last 10% to validate), tokenizes both with
GPT-2's BPE and trains on random (batch, block) windows to predict the next token: AdamW
(betas 0.9/0.95, weight decay on matrices only), gradient clipping, a linear warm-up then a
cosine decay of the learning rate. Every --eval-interval iterations it prints the train and
validation loss (means over --eval-iters batches in test mode). It samples from the same
prompt before and after training, and writes the model with ``save_pretrained`` (loadable by
``transformers.GPT2LMHeadModel.from_pretrained``), the tokenizer files, both samples and the
loss history into --out.

    python examples/gpt2_finetune.py [--model gpt2] [--iters 200] [--block-size 128]
                                     [--batch-size 4] [--lr 6e-5] [--min-lr 6e-6]
                                     [--warmup 20] [--weight-decay 0.1] [--grad-clip 1.0]
                                     [--eval-interval 50] [--eval-iters 10]
                                     [--prompt "ROMEO:"] [--sample-length 80]
                                     [--temperature 0.8] [--top-k 40] [--seed 1337]
                                     [--out gpt2_shakespeare] [--cache-dir DIR]

``--model`` is a hub name or a folder, as for examples/gpt2_generate.py. The text comes from
the cache folder (``DEZERO_DATA_DIR``, else ``~/.dezero``), downloaded with a checksum when
missing; ``make gpt`` points the folder at the shared copy the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dezero
import dezero.functions as F
from dezero import optimizers
from dezero.datasets import TinyShakespeare
from dezero.models import GPT
from dezero.text import GPT2Tokenizer


def shakespeare_tokens(tokenizer):
    """Tiny Shakespeare's train and validation splits (nanoGPT's, by characters) as ids."""
    splits = []
    for train in (True, False):
        chars = TinyShakespeare(train=train, block_size=1)
        splits.append(tokenizer.encode(chars.decode(chars.ids)))
    return splits


def get_batch(ids, block_size, batch_size, rng):
    """Random windows (N, T) of ``ids`` and the same windows shifted by one token."""
    starts = rng.integers(0, len(ids) - block_size, size=batch_size)
    rows = starts[:, None] + np.arange(block_size)
    return ids[rows], ids[rows + 1]


def loss_of(model, x, t):
    logits = model(x)
    return F.softmax_cross_entropy(F.reshape(logits, (-1, logits.shape[-1])),
                                   F.reshape(t, (-1,)))


def estimate_loss(model, ids, args, rng):
    """Mean loss over --eval-iters random batches, in test mode and without a graph."""
    total = 0.0
    with dezero.no_grad(), dezero.test_mode():
        for _ in range(args.eval_iters):
            x, t = get_batch(ids, args.block_size, args.batch_size, rng)
            total += float(loss_of(model, x, t).data)
    return total / args.eval_iters


def lr_at(it, lr, min_lr, warmup, iters):
    """Linear warm-up for ``warmup`` iterations, then a cosine decay to ``min_lr``."""
    if it < warmup:
        return lr * (it + 1) / warmup
    progress = min(1.0, (it - warmup) / max(1, iters - warmup))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def sample(model, tokenizer, args):
    """A completion of --prompt, from the same seed each time (before/after compare)."""
    np.random.seed(args.seed)  # noqa: NPY002  (generate draws from the global generator)
    prompt = tokenizer.encode(args.prompt)
    if len(prompt) == 0:
        prompt = np.array([tokenizer.eos_id], dtype=np.int64)
    out = model.generate(prompt[None], args.sample_length, temperature=args.temperature,
                         top_k=args.top_k or None)
    return tokenizer.decode(out[0])


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    p.add_argument("--model", default="gpt2", help="hub name or folder (see gpt2_generate)")
    p.add_argument("--cache-dir", default=None, help="huggingface_hub's cache folder")
    p.add_argument("--iters", type=int, default=200, help="training iterations")
    p.add_argument("--block-size", type=int, default=128, help="tokens per window")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=6e-5, help="peak learning rate (AdamW alpha)")
    p.add_argument("--min-lr", type=float, default=6e-6, help="learning rate at the end")
    p.add_argument("--warmup", type=int, default=20, help="warm-up iterations")
    p.add_argument("--weight-decay", type=float, default=0.1, help="on matrices only")
    p.add_argument("--grad-clip", type=float, default=1.0, help="0 disables clipping")
    p.add_argument("--eval-interval", type=int, default=50)
    p.add_argument("--eval-iters", type=int, default=10, help="batches per evaluation")
    p.add_argument("--prompt", default="ROMEO:")
    p.add_argument("--sample-length", type=int, default=80, help="new tokens per sample")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40, help="0: sample from every token")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default="gpt2_shakespeare", help="folder for the fine-tuned model")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    model = GPT.from_pretrained(args.model, cache_dir=args.cache_dir)
    tokenizer = GPT2Tokenizer.from_pretrained(args.model, cache_dir=args.cache_dir)
    if args.block_size > model.block_size:
        parser.error(f"--block-size {args.block_size} exceeds the model's context "
                     f"({model.block_size})")
    train_ids, val_ids = shakespeare_tokens(tokenizer)
    rng = np.random.default_rng(args.seed)
    n_params = sum(p.size for p in model.params())
    print(f"{args.model}: {n_params / 1e6:.1f}M parameters; Tiny Shakespeare: "
          f"{len(train_ids)} train / {len(val_ids)} val tokens; {args.iters} iterations of "
          f"{args.batch_size} x {args.block_size} tokens", flush=True)

    before = sample(model, tokenizer, args)
    print(f"--- sample before fine-tuning ---\n{before}\n", flush=True)

    model.train()  # from_pretrained returns the model in eval mode, as transformers does
    optimizer = optimizers.AdamW(alpha=args.lr, beta1=0.9, beta2=0.95,
                                 weight_decay=args.weight_decay)
    optimizer.setup(model.param_groups(args.weight_decay))
    if args.grad_clip > 0:
        optimizer.add_hook(optimizers.ClipGrad(args.grad_clip))
    history = []
    t0 = time.perf_counter()
    for it in range(args.iters + 1):
        if it % args.eval_interval == 0 or it == args.iters:
            losses = {"iter": it, "train": estimate_loss(model, train_ids, args, rng),
                      "val": estimate_loss(model, val_ids, args, rng),
                      "seconds": time.perf_counter() - t0}
            history.append(losses)
            print(f"iter {it}: train loss {losses['train']:.4f}, val loss "
                  f"{losses['val']:.4f} ({losses['seconds']:.0f} s)", flush=True)
            if it == args.iters:
                break
        optimizer.alpha = lr_at(it, args.lr, args.min_lr, args.warmup, args.iters)
        x, t = get_batch(train_ids, args.block_size, args.batch_size, rng)
        loss = loss_of(model, x, t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
    seconds = time.perf_counter() - t0

    model.eval()
    after = sample(model, tokenizer, args)
    print(f"--- sample after fine-tuning ({seconds:.0f} s) ---\n{after}\n")
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    with open(os.path.join(args.out, "samples.txt"), "w", encoding="utf-8") as f:
        f.write(f"--- before ---\n{before}\n--- after ---\n{after}\n")
    with open(os.path.join(args.out, "history.json"), "w", encoding="utf-8") as f:
        json.dump({"args": vars(args), "history": history, "seconds": seconds}, f, indent=1)
    print(f"saved to {args.out} (config.json, model.safetensors, vocab.json, merges.txt); "
          f"load it with GPT.from_pretrained({args.out!r}) or transformers' "
          f"GPT2LMHeadModel.from_pretrained")
    return {"history": history, "before": before, "after": after, "seconds": seconds}


if __name__ == "__main__":
    main()
