"""dezero.datasets and dezero.dataloaders."""

import hashlib

import numpy as np

from dezero import cuda, download
from dezero.dataloaders import DataLoader, SeqDataLoader
from dezero.datasets import (
    CIFAR10,
    CIFAR100,
    MNIST,
    Dataset,
    ImageNet,
    Shakespear,
    SinCurve,
    Spiral,
    TinyShakespeare,
    get_spiral,
    tiny_shakespeare_path,
)
from dezero.download import OfflineError
from tests.errdb.base import rows

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n" * 4


def _offline(ctx):
    """An empty cache folder and no network (the rows put the environment back)."""
    ctx.cache = ctx.tmp / "cache"
    ctx.cache.mkdir()


def _in_cache(ctx, fn):
    import os

    def offline(url, path, *args, **kwargs):
        raise OfflineError(f"could not download {os.path.basename(path)!r} (test: offline)")

    saved, env = download._download, os.environ.get("DEZERO_DATA_DIR")
    download._download = offline
    os.environ["DEZERO_DATA_DIR"] = str(ctx.cache)
    try:
        return fn()
    finally:
        download._download = saved
        if env is None:
            del os.environ["DEZERO_DATA_DIR"]
        else:
            os.environ["DEZERO_DATA_DIR"] = env


def _corrupt_test_split(ctx):
    _offline(ctx)
    (ctx.cache / "t10k-images-idx3-ubyte.gz").write_bytes(b"damaged")
    (ctx.cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")


def _text(ctx):
    _offline(ctx)
    (ctx.cache / "tinyshakespeare.txt").write_text(TEXT, encoding="utf-8")
    digest, known = hashlib.sha256(TEXT.encode()).hexdigest(), TinyShakespeare.sha256
    TinyShakespeare.sha256 = digest
    try:
        ctx.ts = _in_cache(ctx, lambda: TinyShakespeare(block_size=8))
    finally:
        TinyShakespeare.sha256 = known


def _spiral(ctx):
    ctx.ds = Spiral()
    ctx.loader = DataLoader(ctx.ds, 32)
    next(iter(ctx.loader))  # mid-epoch: a position that a refused load must keep
    ctx.seq = SeqDataLoader(SinCurve(), 3)


class _Squares(Dataset):
    def prepare(self):
        self.data = np.arange(5)
        self.label = self.data ** 2


ENTRIES = [
    *rows("datasets.Dataset",
          train=(lambda c: _Squares(train="yes"), TypeError, "train must be True"),
          transform=(lambda c: _Squares(transform="flatten"), TypeError,
                     "transform must be callable")),
    *rows("datasets.Dataset.__getitem__",
          too_far=(lambda c: _Squares()[5], IndexError, "index 5 is out of range",
                   "length 5"),
          negative=(lambda c: _Squares()[-6], IndexError, "index -6 is out of range"),
          float_index=(lambda c: _Squares()[1.0], TypeError, "indices must be integers")),
    *rows("datasets.Dataset.get_batch",
          too_far=(lambda c: _Squares().get_batch([0, 7]), IndexError, "index 7"),
          floats=(lambda c: _Squares().get_batch(np.array([0.5])), TypeError,
                  "indices must be integers, got dtype float64")),
    *rows("datasets.Spiral", train=(lambda c: Spiral(train=None), TypeError,
                                    "train must be True")),
    *rows("datasets.get_spiral",
          train=(lambda c: get_spiral(train="test"), TypeError, "train must be True")),
    *rows("datasets.SinCurve", transform=(lambda c: SinCurve(transform=3), TypeError,
                                          "transform must be callable")),
    *rows("datasets.MNIST", _offline,
          offline=(lambda c: _in_cache(c, lambda: MNIST()), OfflineError,
                   "MNIST cannot be downloaded", "Missing from", "train-images-idx3-ubyte.gz")),
    *rows("datasets.MNIST", _corrupt_test_split,
          corrupt_test_file=(lambda c: _in_cache(c, lambda: MNIST(train=False)), OfflineError,
                             "MNIST (test split) cannot be read",
                             "t10k-images-idx3-ubyte.gz' is corrupted")),
    *rows("datasets.CIFAR10", _offline,
          offline=(lambda c: _in_cache(c, lambda: CIFAR10()), OfflineError,
                   "cifar-10-binary.tar.gz")),
    *rows("datasets.CIFAR100", _offline,
          offline=(lambda c: _in_cache(c, lambda: CIFAR100()), OfflineError,
                   "cifar-100-binary.tar.gz"),
          label_type=(lambda c: CIFAR100.labels("medium"), ValueError,
                      "label_type must be 'fine' or 'coarse'")),
    *rows("datasets.Shakespear", _offline,
          offline=(lambda c: _in_cache(c, lambda: Shakespear()), OfflineError,
                   "tinyshakespeare.txt")),
    *rows("datasets.tiny_shakespeare_path", _offline,
          offline=(lambda c: _in_cache(c, tiny_shakespeare_path), OfflineError,
                   "tinyshakespeare.txt")),
    *rows("datasets.ImageNet",
          images=(lambda c: ImageNet(), NotImplementedError, "ImageNet.labels()")),
    *rows("datasets.TinyShakespeare", _text,
          block_size=(lambda c: TinyShakespeare(block_size=0), ValueError,
                      "block_size must be a positive int"),
          float_block=(lambda c: TinyShakespeare(block_size=2.5), ValueError,
                       "block_size must be a positive int, got 2.5")),
    *rows("datasets.TinyShakespeare.encode", _text,
          unknown=(lambda c: c.ts.encode("Zebra"), ValueError, "'Z' is not in the vocabulary"),
          not_text=(lambda c: c.ts.encode(b"ROMEO"), TypeError, "expected a str, got bytes")),
    *rows("datasets.TinyShakespeare.decode", _text,
          negative=(lambda c: c.ts.decode([-1]), ValueError, "id -1 is out of range for a "
                    "vocabulary of"),
          too_high=(lambda c: c.ts.decode(np.array([[0, 99]])), ValueError, "id 99"),
          floats=(lambda c: c.ts.decode([0.0, 1.0]), TypeError, "ids must be integers")),
    *rows("datasets.TinyShakespeare.__getitem__", _text,
          too_far=(lambda c: c.ts[len(c.ts)], IndexError, "is out of range"),
          array=(lambda c: c.ts[np.arange(2)], TypeError, "use get_batch")),
    *rows("datasets.TinyShakespeare.get_batch", _text,
          too_far=(lambda c: c.ts.get_batch([0, 10_000]), IndexError, "index 10000"),
          floats=(lambda c: c.ts.get_batch([0.0]), TypeError, "indices must be integers")),
    # --- dataloaders -----------------------------------------------------------------
    *rows("dataloaders.DataLoader", _spiral,
          zero=(lambda c: DataLoader(c.ds, 0), ValueError, "batch_size must be a positive int"),
          float_size=(lambda c: DataLoader(c.ds, 2.5), TypeError,
                      "batch_size must be an int, got float"),
          rng=(lambda c: DataLoader(c.ds, 2, rng="seed"), TypeError,
               "rng must be a numpy.random.Generator, an int seed or None")),
    *rows("dataloaders.DataLoader.load_state_dict", _spiral,
          other_data=(lambda c: c.loader.load_state_dict(DataLoader(list(range(10)), 2)
                                                         .state_dict()),
                      ValueError, "the saved order has shape (10,)", "same data set"),
          other_batch_mid_epoch=(lambda c: c.loader.load_state_dict(
              dict(c.loader.state_dict(), batch_size=64)), ValueError,
              "batch_size 64", "this loader has batch_size 32"),
          position=(lambda c: c.loader.load_state_dict(dict(c.loader.state_dict(),
                                                            iteration=99)),
                    ValueError, "position 99 is outside an epoch of 10 batches"),
          own_rng=(lambda c: c.loader.load_state_dict(DataLoader(c.ds, 32, rng=1).state_dict()),
                   ValueError, "a Generator of its own"),
          missing=(lambda c: c.loader.load_state_dict({"index": np.arange(300)}), ValueError,
                   "missing keys ['iteration', 'rng']"),
          not_a_dict=(lambda c: c.loader.load_state_dict([1]), ValueError, "expected a dict"),
          text_position=(lambda c: c.loader.load_state_dict(dict(c.loader.state_dict(),
                                                                 iteration="2")),
                         ValueError, "'iteration' must be an int")),
    *rows("dataloaders.SeqDataLoader",
          too_many=(lambda c: SeqDataLoader(_Squares(), 6), ValueError,
                    "batch_size 6 is larger than the data set (5 steps)"),
          zero=(lambda c: SeqDataLoader(_Squares(), 0), ValueError,
                "batch_size must be a positive int")),
]

if not cuda.gpu_enable:
    ENTRIES += rows("dataloaders.DataLoader.next", _spiral,
                    no_gpu=(lambda c: c.loader.to_gpu().next(), RuntimeError,
                            'pip install "dezero-next[gpu]"'))

EXEMPT = {
    "datasets.Dataset.prepare": "a hook subclasses fill in; the base does nothing",
    "datasets.Spiral.prepare": "called by the constructor (see datasets.Spiral)",
    "datasets.SinCurve.prepare": "called by the constructor (see datasets.SinCurve)",
    "datasets.MNIST.prepare": "called by the constructor (see datasets.MNIST)",
    "datasets.MNIST.show": "draws random images with matplotlib; takes sizes only",
    "datasets.MNIST.labels": "takes no argument",
    "datasets.CIFAR10.prepare": "called by the constructor (see datasets.CIFAR10)",
    "datasets.CIFAR10.labels": "takes no argument",
    "datasets.CIFAR100.prepare": "called by the constructor (see datasets.CIFAR100)",
    "datasets.CIFAR100.labels": "see datasets.CIFAR100 (label_type)",
    "datasets.ImageNet.labels": "takes no argument; a bad labels file: tests/test_datasets.py",
    "datasets.Shakespear.prepare": "called by the constructor (see datasets.Shakespear)",
    "datasets.Shakespeare": "the same class as Shakespear (the book's spelling is the name)",
    "datasets.Shakespeare.prepare": "the same class as Shakespear",
    "datasets.TinyShakespeare.prepare": "called by the constructor",
    "datasets.TinyShakespeare.vocab_size": "a property",
    "dataloaders.DataLoader.reset": "takes no argument and cannot fail",
    "dataloaders.DataLoader.state_dict": "takes no argument and cannot fail",
    "dataloaders.DataLoader.to_cpu": "takes no argument and cannot fail",
    "dataloaders.DataLoader.to_gpu": "takes no argument; without CuPy the next batch says "
                                     "which extra to install (dataloaders.DataLoader.next)",
    "dataloaders.DataLoader.next": "returns the next batch (without a GPU: see the row for "
                                   "to_gpu's batches)",
}
