"""A character-level GPT on Tiny Shakespeare (nanoGPT's shakespeare_char, on dezero).

Trains ``dezero.models.GPT`` on random (batch, block) windows of Tiny Shakespeare to predict
the next character at every position. The defaults are nanoGPT's CPU "baby" recipe:
block 64, batch 12, 4 layers, 4 heads, width 128, dropout 0, 2000 iterations, AdamW
(lr 1e-3, betas 0.9/0.99, weight decay 0.1 on matrices only), gradient clipping at 1.0, a
linear warm-up of 100 iterations then a cosine decay to 1e-4. nanoGPT reports a validation
loss of 1.88 for it.

Every --eval-interval iterations it prints the train and validation loss (means over
--eval-iters random batches); a progress bar shows the training loss. At the end it
evaluates both splits on --final-eval-iters batches, samples --sample-length characters,
and saves the weights (and the sample) into --out.

    python examples/gpt.py [--iters 2000] [--block-size 64] [--batch-size 12]
                           [--n-layer 4] [--n-head 4] [--n-embd 128] [--dropout 0.0]
                           [--lr 1e-3] [--min-lr 1e-4] [--warmup 100] [--weight-decay 0.1]
                           [--grad-clip 1.0] [--eval-interval 250] [--eval-iters 20]
                           [--sample-length 500] [--temperature 0.8] [--top-k 40]
                           [--seed 1337] [--out gpt_out] [--gpu] [--no-progress]

The text comes from the cache folder (``DEZERO_DATA_DIR``, else ``~/.dezero``), downloaded
there with a checksum when missing; ``make gpt`` points the folder at the shared copy.
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
from dezero import allocator, cuda, optimizers
from dezero.dataloaders import DataLoader
from dezero.datasets import TinyShakespeare
from dezero.models import GPT


def batches(loader):
    """Endless random windows: a new epoch (a new shuffle) whenever one runs out."""
    while True:
        yield from loader


def loss_of(model, x, t):
    logits = model(x)
    V = logits.shape[-1]
    # F.reshape, not t.reshape: inside a dezero.jit step the labels must stay an input
    return F.softmax_cross_entropy(F.reshape(logits, (-1, V)), F.reshape(t, (-1,)))


def make_train_step(model, optimizer):
    """One training step (forward, backward, update) as a function of the batch."""

    def train_step(x, t):
        loss = loss_of(model, x, t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        return loss

    return train_step


def estimate_loss(model, stream, iters):
    """Mean loss over ``iters`` batches, in test mode and without a graph."""
    total = 0.0
    with dezero.no_grad(), dezero.test_mode():
        for _ in range(iters):
            x, t = next(stream)
            total += float(loss_of(model, x, t).data)
    return total / iters


def lr_at(it, lr, min_lr, warmup, iters):
    """Linear warm-up for ``warmup`` iterations, then a cosine decay to ``min_lr``."""
    if it < warmup:
        return lr * (it + 1) / warmup
    progress = min(1.0, (it - warmup) / max(1, iters - warmup))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def _progress(total, enabled):
    if not enabled or not sys.stderr.isatty():  # a piped log gets no bar frames
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="training", unit="it", dynamic_ncols=True)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    p.add_argument("--iters", type=int, default=2000, help="training iterations")
    p.add_argument("--block-size", type=int, default=64, help="context length")
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW alpha)")
    p.add_argument("--min-lr", type=float, default=1e-4, help="learning rate at the end")
    p.add_argument("--warmup", type=int, default=100, help="warm-up iterations")
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--weight-decay", type=float, default=0.1, help="on matrices only")
    p.add_argument("--grad-clip", type=float, default=1.0, help="0 disables clipping")
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=20, help="batches per periodic eval")
    p.add_argument("--final-eval-iters", type=int, default=200,
                   help="batches for the final train/val loss")
    p.add_argument("--sample-length", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40, help="0: sample from all characters")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default="gpt_out", help="folder for weights, sample and log")
    p.add_argument("--gpu", action="store_true", help="train on the GPU (CuPy)")
    p.add_argument("--jit", action="store_true",
                   help="record the training step once and replay it (dezero.jit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--release-memory", action="store_true",
                   help="keep glibc's default allocator thresholds (returns freed memory to "
                        "the system, at the cost of page faults every step)")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gpu and not cuda.gpu_enable:
        parser.error("--gpu needs CuPy and a CUDA device, and none was found")
    np.random.seed(args.seed)  # noqa: NPY002  (weights and batches come from it)
    if args.release_memory:  # importing dezero made freed memory stay for reuse
        allocator.return_freed_memory()

    train_set = TinyShakespeare(train=True, block_size=args.block_size)
    val_set = TinyShakespeare(train=False, block_size=args.block_size)
    model = GPT(train_set.vocab_size, args.block_size, args.n_layer, args.n_head,
                args.n_embd, args.dropout)
    if args.gpu:
        model.to_gpu()
        cuda.cupy.random.seed(args.seed)
    optimizer = optimizers.AdamW(alpha=args.lr, beta2=args.beta2,
                                 weight_decay=args.weight_decay)
    optimizer.setup(model.param_groups(args.weight_decay))
    if args.grad_clip > 0:
        optimizer.add_hook(optimizers.ClipGrad(args.grad_clip))
    n_params = sum(p.size for p in model.params())
    print(f"Tiny Shakespeare: {len(train_set.ids)} train / {len(val_set.ids)} val characters, "
          f"vocabulary {train_set.vocab_size}; GPT {args.n_layer} layers, {args.n_head} heads, "
          f"width {args.n_embd}, block {args.block_size}: {n_params / 1e6:.2f} M parameters; "
          f"{args.iters} iterations of batch {args.batch_size} on "
          f"{'GPU' if args.gpu else 'CPU'}")

    train_step = make_train_step(model, optimizer)
    if args.jit:
        train_step = dezero.jit(train_step)
    train_stream = batches(DataLoader(train_set, args.batch_size, gpu=args.gpu))
    train_eval = batches(DataLoader(train_set, args.batch_size, gpu=args.gpu))
    val_eval = batches(DataLoader(val_set, args.batch_size, gpu=args.gpu))
    os.makedirs(args.out, exist_ok=True)
    history = []
    bar = _progress(args.iters, not args.no_progress)
    t0 = time.perf_counter()
    for it in range(args.iters + 1):
        if it % args.eval_interval == 0 or it == args.iters:
            final = it == args.iters
            n = args.final_eval_iters if final else args.eval_iters
            losses = {"iter": it, "train": estimate_loss(model, train_eval, n),
                      "val": estimate_loss(model, val_eval, n),
                      "seconds": time.perf_counter() - t0}
            history.append(losses)
            line = (f"iter {it}: train loss {losses['train']:.4f}, val loss "
                    f"{losses['val']:.4f} ({losses['seconds']:.0f} s)")
            if bar is not None:
                bar.write(line)
            else:
                print(line, flush=True)
            if final:
                break
        optimizer.alpha = lr_at(it, args.lr, args.min_lr, args.warmup, args.iters)
        x, t = next(train_stream)
        loss = train_step(x, t)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.data):.3f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0

    start = np.zeros((1, 1), dtype=np.int64) + train_set.encode("\n")[0]
    if args.gpu:
        start = cuda.as_cupy(start)
    ids = model.generate(start, args.sample_length, temperature=args.temperature,
                         top_k=args.top_k or None)
    text = train_set.decode(ids[0])
    weights = os.path.join(args.out, "gpt.npz")
    model.save_weights(weights)
    with open(os.path.join(args.out, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(args.out, "history.json"), "w", encoding="utf-8") as f:
        json.dump({"args": vars(args), "history": history, "seconds": seconds}, f, indent=1)
    last = history[-1]
    print(f"trained in {seconds:.0f} s; final train loss {last['train']:.4f}, val loss "
          f"{last['val']:.4f}; weights saved to {weights}")
    print(f"--- sample ({args.sample_length} characters, temperature {args.temperature}, "
          f"top-k {args.top_k}) ---")
    print(text)
    return {"history": history, "sample": text, "seconds": seconds}


if __name__ == "__main__":
    main()
