"""The training examples: examples/spiral.py (book steps 48-50) and examples/mnist.py."""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

import dezero.functions as F
from dezero import datasets, download
from dezero.models import MLP
from dezero.utils import OfflineError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
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
    """get_file's transfers fail as they do offline (files already present still load)."""

    def offline(url, path, *args, **kwargs):
        raise OfflineError(
            f"could not download {os.path.basename(path)!r} from {url} (test: offline); "
            f"save it as {path!r}"
        )

    monkeypatch.setattr(download, "_download", offline)


@pytest.mark.slow  # over 5 s; test_spiral_short_run_learns is the quick version
def test_spiral_reaches_096_on_the_test_split(tmp_path, capsys):
    history = load("spiral").main(["--out", str(tmp_path)])
    assert history["test_acc"][-1] >= 0.96
    assert len(history["test_acc"]) == 1000
    out = capsys.readouterr().out
    assert "final test accuracy on Spiral(train=False): 0.9" in out
    assert (tmp_path / "spiral.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "spiral_mlp.npz").exists()


def test_spiral_short_run_learns():
    _, history = load("spiral").train(epochs=30, verbose=False)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert all(0.0 <= a <= 1.0 for a in history["test_acc"])


@pytest.mark.slow
def test_mnist_one_epoch_on_a_subset(tmp_path, monkeypatch, no_download, capsys):
    monkeypatch.setenv("DEZERO_DATA_DIR", _mnist_dir())
    out_dir = tmp_path / "out"
    result = load("mnist").main(
        ["--epochs", "1", "--limit", "5000", "--out", str(out_dir), "--no-progress"]
    )
    assert result["dataset"] == "MNIST"
    history = result["history"]
    assert history[-1]["val_acc"] >= 0.8  # 50 updates on 5,000 images
    text = capsys.readouterr().out
    assert "epoch 1/1  loss " in text and " val_loss " in text
    assert "final test accuracy (MNIST, 5000 test samples)" in text
    assert (out_dir / "mnist_curves.png").read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((out_dir / "history.json").read_text())
    assert saved["history"] == history and saved["dataset"] == "MNIST"
    assert (out_dir / "history.csv").read_text().startswith("epoch,iteration,loss,acc,")
    assert sorted(os.listdir(out_dir / "checkpoints")) == ["epoch-0001.ckpt"]
    # The saved weights load into a fresh model and give the reported test accuracy.
    model = MLP((1000, 1000, 10), activation=F.relu)
    model.load_weights(result["weights"])
    test = datasets.MNIST(train=False)
    x, t = test.get_batch(np.arange(5000))
    acc = float(F.accuracy(model(x), t).data)
    assert acc == pytest.approx(history[-1]["val_acc"], abs=1e-6)


def test_mnist_falls_back_to_spiral_offline(tmp_path, no_download, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DEZERO_DATA_DIR", str(empty))
    out_dir = tmp_path / "out"
    result = load("mnist").main(["--epochs", "2", "--out", str(out_dir), "--no-progress"])
    text = capsys.readouterr().out
    assert "MNIST is not available" in text
    assert (f"Missing from {str(empty)!r}: train-images-idx3-ubyte.gz, "
            f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz") in text
    assert "Training on the built-in Spiral data instead" in text
    assert result["dataset"].startswith("Spiral")
    assert len(result["history"]) == 60
    assert result["history"][-1]["val_acc"] >= 0.9
    assert (out_dir / "spiral_curves.png").read_bytes()[:8] == PNG_MAGIC
    assert (out_dir / "spiral_mlp.npz").exists()
    # non-TTY output: one line per epoch, no progress bars
    assert sum(line.startswith("epoch ") for line in text.splitlines()) == 60


def test_mnist_explicit_data_dir_without_the_files_is_an_error(tmp_path, no_download):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as info:
        load("mnist").main(["--data-dir", str(empty), "--out", str(tmp_path / "out")])
    message = str(info.value.code)
    assert message.startswith(f"error: --data-dir {str(empty)!r} does not hold MNIST")
    assert "t10k-labels-idx1-ubyte.gz" in message and "train-images-idx3-ubyte.gz" in message
    assert not (tmp_path / "out").exists()


def test_mnist_resume_continues_an_interrupted_run_bit_for_bit(tmp_path, no_download, capsys,
                                                               monkeypatch):
    from dezero.training import Trainer

    monkeypatch.setenv("DEZERO_DATA_DIR", str(tmp_path))  # no MNIST: the quick Spiral run
    whole = load("mnist").main(["--epochs", "2", "--hidden", "10", "--no-progress",
                                "--out", str(tmp_path / "whole")])
    args = ["--epochs", "2", "--hidden", "10", "--no-progress", "--out", str(tmp_path / "out")]
    fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, epochs, resume=None: fit(self, 31, resume))
    load("mnist").main(args)  # interrupted after 31 of the 60 Spiral epochs
    monkeypatch.setattr(Trainer, "fit", fit)
    resumed = load("mnist").main([*args, "--resume"])
    assert "resuming from " + str(tmp_path / "out" / "checkpoints" / "epoch-0031.ckpt") in (
        capsys.readouterr().out)

    def strip(history):
        return [{k: v for k, v in h.items() if k != "time"} for h in history]

    assert strip(resumed["history"]) == strip(whole["history"])
    a, b = np.load(whole["weights"]), np.load(resumed["weights"])
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_mnist_rejects_unknown_optimizer(capsys):
    with pytest.raises(SystemExit) as info:
        load("mnist").main(["--optimizer", "rmsprop"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'rmsprop'" in err
    for name in ("sgd", "momentum", "adagrad", "adadelta", "adam", "adamw"):
        assert f"'{name}'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--optimizer", "adadelta", "--lr", "0.1"], "adadelta has no learning rate"),
    ],
)
def test_mnist_argument_errors(args, message, capsys):
    with pytest.raises(SystemExit):
        load("mnist").main(args)
    assert message in capsys.readouterr().err


def test_mnist_gpu_flag_without_gpu(capsys):
    from dezero import cuda

    if cuda.gpu_enable:
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit):
        load("mnist").main(["--gpu"])
    assert "--gpu needs CuPy and a CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "adadelta", "adam", "adamw"])
def test_mnist_every_optimizer_trains(name, tmp_path, no_download, monkeypatch):
    """Each optimizer choice runs end to end (on the Spiral fallback, which is quick)."""
    monkeypatch.setenv("DEZERO_DATA_DIR", str(tmp_path))
    result = load("mnist").main(
        ["--optimizer", name, "--epochs", "1", "--hidden", "20",
         "--out", str(tmp_path / "out"), "--no-progress"]
    )
    losses = [h["loss"] for h in result["history"]]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
