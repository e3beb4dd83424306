"""Predict a cosine with an LSTM trained on a noisy sine (the book's steps 59-60).

The model is step 60's: LSTM(100) -> Linear(1), fed the SinCurve data set (1000 points of
sin plus noise) through a SeqDataLoader of 30 parallel streams, trained with truncated
backpropagation through time (BPTT length 30: ``loss.unchain_backward()`` after every
update) and Adam, for 100 epochs. Each epoch prints the mean squared error per step; the
book ends near 0.014. The trained model then reads a clean cosine, one value at a time,
predicting the next value; the prediction and the cosine are plotted into ``--out``.

    python examples/sin_rnn.py [--epochs 100] [--hidden 100] [--bptt 30]
                               [--batch-size 30] [--lr 0.001] [--seed 0]
                               [--out sin_rnn.png] [--gpu]

Unlike the book's loop, the steps left over at the end of an epoch (fewer than --bptt)
are backpropagated too, instead of being dropped (the book's ``count == seqlen`` test never
fires with a SeqDataLoader).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import cuda, optimizers
from dezero.dataloaders import SeqDataLoader
from dezero.datasets import SinCurve
from dezero.models import Model


class BetterRNN(Model):
    """The book's step-60 model: an LSTM followed by a linear read-out."""

    def __init__(self, hidden_size, out_size):
        super().__init__()
        self.rnn = L.LSTM(hidden_size)
        self.fc = L.Linear(out_size)

    def reset_state(self):
        self.rnn.reset_state()

    def forward(self, x):
        return self.fc(self.rnn(x))


def _progress(iterable, total, enabled):
    if not enabled or not sys.stderr.isatty():  # a piped log gets no bar frames
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc="epochs", unit="epoch", dynamic_ncols=True)


def _say(bar, text):
    write = getattr(bar, "write", None)
    (write or print)(text)


def train(model, dataloader, epochs, bptt, lr, progress=True, verbose=True):
    """Truncated-BPTT training; returns the per-epoch mean squared error per step."""
    optimizer = optimizers.Adam(alpha=lr).setup(model)
    steps = len(dataloader)
    history = []
    bar = _progress(range(epochs), epochs, progress)
    for epoch in bar:
        model.reset_state()
        loss, count, total = 0, 0, 0.0
        for x, t in dataloader:
            y = model(x)
            loss = loss + F.mean_squared_error(y, t)
            count += 1
            if count % bptt == 0 or count == steps:
                model.cleargrads()
                loss.backward()
                loss.unchain_backward()  # truncate: the past is freed, the state carries on
                optimizer.update()
                total += float(loss.data)
                loss = 0
        avg = total / count
        history.append(avg)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{avg:.5f}")
        if verbose:
            _say(bar, f"| epoch {epoch + 1} | loss {avg:.6f}")
    return history


def predict_cos(model, n=1000, xp=np):
    """Feed cos(x) on [0, 4 pi] one value at a time; return the inputs and predictions."""
    xs = np.cos(np.linspace(0, 4 * np.pi, n)).astype(np.float32)
    model.reset_state()
    preds = []
    with dezero.no_grad():
        for x in xs:
            y = model(xp.asarray(x.reshape(1, 1)))
            preds.append(float(y.data[0, 0]))
    return xs, np.array(preds, dtype=np.float32)


def plot(xs, preds, path):
    """The cosine and the model's one-step-ahead predictions, into the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(np.arange(len(xs)), xs, label="y=cos(x)")
    ax.plot(np.arange(len(preds)), preds, label="predict")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=100, help="LSTM hidden size")
    parser.add_argument("--bptt", type=int, default=30, help="truncated BPTT length")
    parser.add_argument("--batch-size", type=int, default=30, help="parallel streams")
    parser.add_argument("--lr", type=float, default=0.001, help="Adam's alpha")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="sin_rnn.png", help="PNG of the cos prediction")
    parser.add_argument("--gpu", action="store_true", help="train on the GPU (CuPy)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gpu and not cuda.gpu_enable:
        parser.error("--gpu needs CuPy and a CUDA device, and none was found")
    np.random.seed(args.seed)  # noqa: NPY002  (dezero draws initial weights from it)

    train_set = SinCurve(train=True)
    dataloader = SeqDataLoader(train_set, batch_size=args.batch_size, gpu=args.gpu)
    model = BetterRNN(args.hidden, 1)
    xp = np
    if args.gpu:
        model.to_gpu()
        xp = cuda.cupy
    print(f"SinCurve: {len(train_set)} steps in {args.batch_size} streams "
          f"({len(dataloader)} steps per epoch), LSTM({args.hidden}) -> Linear(1), "
          f"BPTT {args.bptt}, Adam(alpha={args.lr}), {args.epochs} epochs on "
          f"{'GPU' if args.gpu else 'CPU'}")
    t0 = time.perf_counter()
    history = train(model, dataloader, args.epochs, args.bptt, args.lr,
                    progress=not args.no_progress)
    seconds = time.perf_counter() - t0

    xs, preds = predict_cos(model, xp=xp)
    cos_mse = float(np.mean((preds[:-1] - xs[1:]) ** 2))
    final = history[-1] if history else float("nan")
    print(f"final training loss {final:.6f} (the book: about 0.014) in {seconds:.1f} s; "
          f"cos one-step-ahead MSE {cos_mse:.6f}")
    try:
        plot(xs, preds, args.out)
        print(f"plot saved to {args.out}")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
    return {"history": history, "final_loss": final, "cos_mse": cos_mse, "seconds": seconds}


if __name__ == "__main__":
    main()
