"""examples/mnist_cnn.py: a short run on real MNIST, its files, and its argument errors.

The full run (5 epochs, >= 99.0% test accuracy) is a demonstration run by hand; see the
example's docstring.
"""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import datasets, download, transforms
from dezero.utils import OfflineError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def load_example():
    spec = importlib.util.spec_from_file_location("example_mnist_cnn", EXAMPLES / "mnist_cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mnist_dir():
    for folder in (
        os.environ.get("DEZERO_DATA_DIR"),
        os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"),
        os.path.join(os.path.expanduser("~"), ".dezero"),
    ):
        if folder and all(os.path.exists(os.path.join(folder, f)) for f in MNIST_FILES):
            return os.path.abspath(folder)
    pytest.skip("real MNIST files not found (set DEZERO_DATA_DIR)")


@pytest.fixture
def no_download(monkeypatch):
    def offline(url, path, *args, **kwargs):
        raise OfflineError(f"could not download {os.path.basename(path)!r} (test: offline)")

    monkeypatch.setattr(download, "_download", offline)


@pytest.mark.slow
def test_mnist_cnn_short_run_learns_and_saves(tmp_path, monkeypatch, no_download, capsys):
    monkeypatch.setenv("DEZERO_DATA_DIR", _mnist_dir())
    out_dir = tmp_path / "out"
    result = load_example().main(["--epochs", "1", "--limit", "3000", "--out", str(out_dir),
                                  "--no-progress", "--lr", "0.003", "--schedule", "none"])
    history = result["history"]
    assert history[-1]["val_acc"] >= 0.7  # 30 updates on 3,000 images (chance: 0.1)
    text = capsys.readouterr().out
    assert "epoch 1/1  loss " in text and "time per epoch" in text
    assert "final test accuracy (MNIST, 3000 test samples)" in text
    assert (out_dir / "mnist_cnn_curves.png").read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((out_dir / "history.json").read_text())
    assert saved["history"] == history and saved["model"] == "cnn"
    # the saved weights give the reported accuracy in a fresh model
    model = load_example().CNN()
    model.load_weights(result["weights"])
    to_float = transforms.Compose([transforms.ToFloat(), transforms.Normalize(0.0, 255.0)])
    x, t = datasets.MNIST(train=False, transform=to_float).get_batch(np.arange(3000))
    with dezero.no_grad():
        acc = float(F.accuracy(model(x), t).data)
    assert acc == pytest.approx(history[-1]["val_acc"], abs=1e-6)


def test_mnist_cnn_offline_says_what_to_place_where(tmp_path, no_download):
    with pytest.raises(SystemExit, match=r"Missing from .*empty'?: train-images-idx3-ubyte.gz, "
                                         r"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                                         r"t10k-labels-idx1-ubyte.gz"):
        load_example().main(["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path)])


@pytest.mark.parametrize(("args", "message"), [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--channels", "8", "0"], "--channels must be positive"),
    (["--optimizer", "adadelta", "--lr", "0.1"], "adadelta has no learning rate"),
    (["--optimizer", "rmsprop"], "invalid choice"),
])
def test_mnist_cnn_argument_errors(args, message, capsys):
    with pytest.raises(SystemExit):
        load_example().main(args)
    assert message in capsys.readouterr().err
