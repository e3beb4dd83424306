"""A character-level LSTM language model: train it on any text, then let it write.

The model reads one character at a time: EmbedID(vocabulary, --embed) -> LSTM(--hidden)
-> Linear(vocabulary), and learns to predict the next character (softmax cross entropy).
The text is cut into --batch-size parallel streams (a SeqDataLoader); truncated
backpropagation through time runs every --bptt steps, with Adam. A progress bar shows the
loss; at the end the model samples --sample-length characters (starting from --prime,
with --temperature), prints them and saves them to --out.

    python examples/char_rnn.py [--text PATH] [--steps 3000] [--embed 64] [--hidden 256]
                                [--bptt 50] [--batch-size 32] [--lr 0.002]
                                [--sample-length 500] [--temperature 0.8] [--prime TEXT]
                                [--seed 0] [--out char_rnn_sample.txt] [--save WEIGHTS]
                                [--gpu]

Without --text it trains on Tiny Shakespeare (``dezero.datasets.Shakespear``, downloaded
into the cache folder the first time); offline and without it, the script says where to put
the file and trains on a few bundled sonnets (``examples/data/sonnets.txt``) instead.
--steps counts time steps (characters per stream); the loader starts a new epoch when the
text runs out.
"""

from __future__ import annotations

import argparse
import math
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
from dezero.datasets import Dataset
from dezero.models import Model


class TextFile(Dataset):
    """The characters of a UTF-8 text file as ids (in order of first appearance, like
    ``Shakespear``): ``data[i]`` is character i, ``label[i]`` character i + 1."""

    def __init__(self, path):
        self.path = os.fspath(path)
        super().__init__()

    def prepare(self):
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        if len(text) < 2:
            raise ValueError(f"{self.path!r} holds {len(text)} characters; need at least 2")
        self.char_to_id = {}
        for ch in text:
            if ch not in self.char_to_id:
                self.char_to_id[ch] = len(self.char_to_id)
        self.id_to_char = {i: ch for ch, i in self.char_to_id.items()}
        lookup = self.char_to_id
        ids = np.fromiter((lookup[ch] for ch in text), dtype=np.int32, count=len(text))
        self.data = ids[:-1]
        self.label = ids[1:]


class CharRNN(Model):
    def __init__(self, vocab_size, embed_size, hidden_size):
        super().__init__()
        self.embed = L.EmbedID(vocab_size, embed_size)
        self.rnn = L.LSTM(hidden_size, in_size=embed_size)
        self.fc = L.Linear(vocab_size, in_size=hidden_size)

    def reset_state(self):
        self.rnn.reset_state()

    def forward(self, ids):
        return self.fc(self.rnn(self.embed(ids)))


def _progress(total, enabled):
    if not enabled or not sys.stderr.isatty():  # a piped log gets no bar frames
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="training", unit="step", dynamic_ncols=True)


def train(model, dataset, steps, batch_size, bptt, lr, gpu=False, progress=True):
    """Truncated-BPTT training for ``steps`` time steps; returns the mean loss of each
    BPTT window (nats per character)."""
    loader = SeqDataLoader(dataset, batch_size=batch_size, gpu=gpu)
    optimizer = optimizers.Adam(alpha=lr).setup(model)
    optimizer.add_hook(optimizers.ClipGrad(5.0))  # LSTMs on text: the classic guard
    bar = _progress(steps, progress)
    losses = []
    loss, count, step = 0, 0, 0
    model.reset_state()
    while step < steps:
        for x, t in loader:
            loss = loss + F.softmax_cross_entropy(model(x), t)
            count += 1
            step += 1
            if count == bptt or step == steps:
                model.cleargrads()
                loss.backward()
                loss.unchain_backward()
                optimizer.update()
                losses.append(float(loss.data) / count)
                if bar is not None:
                    bar.update(count)
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
                loss, count = 0, 0
            if step == steps:
                break
        model.reset_state()  # a new epoch starts every stream afresh
    if bar is not None:
        bar.close()
    return losses


def sample(model, dataset, length, prime="", temperature=1.0, rng=None, xp=np):
    """Generate ``length`` characters after ``prime`` (unknown characters are skipped)."""
    rng = np.random.default_rng() if rng is None else rng
    ids = [dataset.char_to_id[ch] for ch in prime if ch in dataset.char_to_id]
    if not ids:
        ids = [int(dataset.data[0])]
    out = [dataset.id_to_char[i] for i in ids]
    model.reset_state()
    with dezero.no_grad(), dezero.test_mode():
        for i in ids[:-1]:
            model(xp.asarray(np.array([i], dtype=np.int32)))
        current = ids[-1]
        for _ in range(length):
            logits = cuda.as_numpy(model(xp.asarray(np.array([current], dtype=np.int32))).data)
            z = logits[0].astype(np.float64) / max(temperature, 1e-6)
            p = np.exp(z - z.max())
            p /= p.sum()
            current = int(rng.choice(len(p), p=p))
            out.append(dataset.id_to_char[current])
    return "".join(out)


BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sonnets.txt")


def load_shakespeare():
    """(dataset, name): Tiny Shakespeare, or the bundled sonnets when it cannot be had."""
    from dezero.datasets import Shakespear
    from dezero.utils import DownloadError, get_cache_dir

    try:
        return Shakespear(), "Tiny Shakespeare"
    except (DownloadError, OSError) as e:
        folder = os.path.join(get_cache_dir(), Shakespear.file_name)
        print(f"Tiny Shakespeare is not available ({type(e).__name__}).\n"
              f"To train on it, save {Shakespear.url} as {folder!r} (or set "
              f"DEZERO_DATA_DIR to a folder holding it), or pass --text FILE with any UTF-8 "
              f"text.\nTraining on the bundled {BUNDLED!r} instead (four sonnets: expect "
              f"a model that mostly memorises them).", flush=True)
        return TextFile(BUNDLED), "bundled sonnets"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--text", default=None, help="a UTF-8 text file (default: Shakespear)")
    parser.add_argument("--steps", type=int, default=3000, help="time steps to train")
    parser.add_argument("--embed", type=int, default=64, help="embedding size")
    parser.add_argument("--hidden", type=int, default=256, help="LSTM hidden size")
    parser.add_argument("--bptt", type=int, default=50, help="truncated BPTT length")
    parser.add_argument("--batch-size", type=int, default=32, help="parallel streams")
    parser.add_argument("--lr", type=float, default=0.002, help="Adam's alpha")
    parser.add_argument("--sample-length", type=int, default=500)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--prime", default="", help="text the sample starts from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="char_rnn_sample.txt", help="where the sample goes")
    parser.add_argument("--save", default=None, help="save the weights to this .npz file")
    parser.add_argument("--gpu", action="store_true", help="train on the GPU (CuPy)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gpu and not cuda.gpu_enable:
        parser.error("--gpu needs CuPy and a CUDA device, and none was found")
    np.random.seed(args.seed)  # noqa: NPY002  (dezero draws initial weights from it)
    # the folders of --out and --save exist before training, not only after it
    for path in (args.out, args.save):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    if args.text is None:
        dataset, source = load_shakespeare()
    else:
        dataset = TextFile(args.text)
        source = args.text
    vocab = len(dataset.char_to_id)
    model = CharRNN(vocab, args.embed, args.hidden)
    xp = np
    if args.gpu:
        model.to_gpu()
        xp = cuda.cupy
    print(f"{source}: {len(dataset) + 1} characters, vocabulary {vocab}; "
          f"EmbedID({vocab}, {args.embed}) -> LSTM({args.hidden}) -> Linear({vocab}); "
          f"{args.steps} steps x {args.batch_size} streams, BPTT {args.bptt}, "
          f"Adam(alpha={args.lr}) on {'GPU' if args.gpu else 'CPU'}")
    t0 = time.perf_counter()
    losses = train(model, dataset, args.steps, args.batch_size, args.bptt, args.lr,
                   gpu=args.gpu, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    tail = losses[-max(1, len(losses) // 10):]
    final = float(np.mean(tail)) if losses else float("nan")
    print(f"trained in {seconds:.1f} s; loss {losses[0]:.3f} -> {final:.3f} nats/char "
          f"(uniform guessing: {math.log(vocab):.3f})")

    text = sample(model, dataset, args.sample_length, args.prime, args.temperature,
                  rng=np.random.default_rng(args.seed), xp=xp)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"--- sample ({args.sample_length} characters, temperature {args.temperature}), "
          f"saved to {args.out} ---")
    print(text)
    if args.save:
        model.save_weights(args.save)
        print(f"weights saved to {args.save}")
    return {"losses": losses, "final_loss": final, "sample": text, "seconds": seconds}


if __name__ == "__main__":
    main()
