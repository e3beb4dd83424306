"""examples/export_onnx.py: train (or load), export, run in onnxruntime over MNIST's test set."""

import importlib.util
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "export_onnx.py"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def mnist_dir():
    for folder in (os.environ.get("DEZERO_DATA_DIR"),
                   Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
                   Path.home() / ".dezero"):
        if folder and all(os.path.exists(os.path.join(folder, f)) for f in MNIST_FILES):
            return str(folder)
    pytest.skip("real MNIST files not found (set DEZERO_DATA_DIR)")


def load():
    spec = importlib.util.spec_from_file_location("example_export_onnx", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_onnx_example_trains_exports_and_matches(tmp_path, capsys):
    data = mnist_dir()
    example = load()
    out = tmp_path / "out"
    common = ["--data-dir", data, "--limit", "400", "--hidden", "32", "--eval-batch", "128",
              "--out", str(out)]
    assert example.main(["--epochs", "3", "--batch-size", "20", *common]) == 0
    text = capsys.readouterr().out
    diff = float(re.search(r"largest difference between onnxruntime and dezero: (\S+)",
                           text).group(1))
    assert diff < 1e-4
    acc = float(re.search(r"onnxruntime test accuracy: ([\d.]+)% \(400 test images\)",
                          text).group(1))
    assert acc > 50  # 3 epochs on 400 images: far above chance (10%)
    assert (out / "mnist_mlp.onnx").exists() and (out / "mnist_mlp.safetensors").exists()

    # the saved weights load back: the same model, the same accuracy
    weights = tmp_path / "w.safetensors"
    os.replace(out / "mnist_mlp.safetensors", weights)
    assert example.main(["--weights", str(weights), *common]) == 0
    again = capsys.readouterr().out
    assert f"loaded {weights}" in again
    assert f"test accuracy: {acc:.2f}%" in again
