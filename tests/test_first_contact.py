"""What a new user meets first: the license, the package's name, the README's install line,
the offline fallbacks of the examples, make gpu-check without a GPU, a sensible picture."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

from dezero import cuda, download
from dezero.download import OfflineError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def project_table():
    text = (ROOT / "pyproject.toml").read_text()
    return text[text.index("[project]"):text.index("[project.optional-dependencies]")]


def test_license_is_mit_as_pyproject_says():
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in license_text
    assert 'license = { text = "MIT" }' in project_table()


def test_distribution_name_is_our_own_and_the_import_name_is_dezero():
    name = re.search(r'^name = "([^"]+)"$', project_table(), re.M).group(1)
    # PyPI's "dezero" is the original DeZero 0.0.13; `pip index versions dezero-next`
    # found no such project when the name was chosen
    assert name == "dezero-next"
    assert 'include = ["dezero*"]' in (ROOT / "pyproject.toml").read_text()


def test_readme_installs_from_a_clone_with_extras():
    readme = (ROOT / "README.md").read_text()
    assert "git clone" in readme
    assert 'pip install -e ".[examples]"' in readme
    assert 'pip install ".[tensorboard]"' in readme or 'pip install -e ".[tensorboard]"' in readme
    assert "make train" in readme


@pytest.mark.slow
def test_wheel_ships_the_license(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "dezero", src / "dezero",
                    ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith("dezero_next-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        licenses = [n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n]
        assert licenses and zf.read(licenses[0]).decode().startswith("MIT License")
        assert "dezero/__init__.py" in names and "dezero/py.typed" in names
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert b"Name: dezero-next" in metadata


def _gpu_check(tmp_path, *args, python=sys.executable, **env):
    return subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), *args],
                          capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "PYTHON": python, "OUT": str(tmp_path / "out"),
                               **env})


def _summary(stdout):
    table = stdout[stdout.index("== summary"):].splitlines()[1:]
    return {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in table if line.startswith("| ") and "stage" not in line}


@pytest.mark.skipif(cuda.gpu_enable, reason="a GPU is present: make gpu-check runs for real")
def test_gpu_check_quick_on_a_cpu_runs_to_its_summary_and_passes(tmp_path):
    proc = _gpu_check(tmp_path, "--quick", GPU_DATA=str(tmp_path / "no-data"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = _summary(proc.stdout)
    assert summary["environment"] == "PASS"
    assert summary["GPU tests (a selection)"] == "SKIP"
    assert summary["jit tests on the GPU"] == "SKIP"  # the jit step table, on a GPU
    assert "no GPU (CuPy is missing or sees no CUDA device)" in proc.stdout
    assert "the GPU stages were skipped" in proc.stdout
    assert proc.stdout.count("== summary") == 1


@pytest.mark.skipif(cuda.gpu_enable, reason="a GPU is present: make gpu-check runs for real")
def test_gpu_check_full_without_a_gpu_fails_clearly(tmp_path):
    proc = _gpu_check(tmp_path, GPU_DATA=str(tmp_path / "no-data"))
    assert proc.returncode == 2
    assert "gpu-check: FAILED: no usable GPU" in proc.stderr
    assert "nothing on a GPU was checked" in proc.stderr
    assert set(_summary(proc.stdout).values()) == {"PASS", "SKIP"}


def test_gpu_check_exits_non_zero_when_a_stage_fails_or_time_runs_out(tmp_path):
    # a Python that claims a GPU: every GPU stage then runs, and fails on this machine
    fake = tmp_path / "python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'case "$*" in *"gpu_enable else"*) echo ok; exit 0;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    proc = _gpu_check(tmp_path, "--quick", python=str(fake), TOTAL="40",
                      GPU_DATA=str(tmp_path / "no-data"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = _summary(proc.stdout)
    assert summary["MNIST MLP --gpu"] == "FAIL"  # no data: says how to fill gpu_data
    assert "run make gpu-data" in proc.stdout
    assert "FAIL" in summary["profiler + anomaly"]
    assert "gpu-check: FAILED (see the table above)" in proc.stderr
    assert len(proc.stdout.split("== summary")) == 2


def test_gpu_data_is_git_ignored_and_small():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/gpu_data/" in ignored
    text = (ROOT / "tools" / "gpu_check.sh").read_text()
    assert "MAX_DATA_MIB=60" in text and "TOTAL=${TOTAL:-460}" in text
    assert "TOTAL=${TOTAL:-220}" in text  # --quick: under 4 minutes


def test_char_rnn_offline_falls_back_to_the_bundled_text(tmp_path, monkeypatch, capsys):
    def offline(url, path, *args, **kwargs):
        raise OfflineError(f"could not download {os.path.basename(path)!r} (test: offline)")

    monkeypatch.setattr(download, "_download", offline)
    monkeypatch.setenv("DEZERO_DATA_DIR", str(tmp_path / "cache"))
    result = load("char_rnn").main([
        "--steps", "20", "--hidden", "16", "--embed", "8", "--batch-size", "4", "--bptt", "10",
        "--sample-length", "20", "--no-progress", "--out", str(tmp_path / "sample.txt"),
    ])
    out = capsys.readouterr().out
    assert "Tiny Shakespeare is not available (OfflineError)" in out
    assert f"as {str(tmp_path / 'cache' / 'tinyshakespeare.txt')!r}" in out
    assert "or pass --text FILE" in out
    assert "Training on the bundled" in out and "sonnets.txt" in out
    assert "bundled sonnets: " in out
    bundled = (EXAMPLES / "data" / "sonnets.txt").read_text(encoding="utf-8")
    assert set(result["sample"]) <= set(bundled)


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_tanh_graph_default_picture_has_a_sensible_size(tmp_path, capsys):
    result = load("tanh_graph").main(["--out", str(tmp_path)])
    width, height = result["size"]
    assert result["picture"].endswith("tanh_gx4.png")
    assert max(width, height) <= 5000 and width * height <= 8_000_000  # order 6: 9513 x 9851
    PIL = pytest.importorskip("PIL.Image")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # DecompressionBombWarning included
        with PIL.open(result["picture"]) as image:
            assert image.size == (width, height)
    assert f"({width} x {height} pixels)" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# The new-user list of issue 21, one test each
# -----------------------------------------------------------------------------
import json  # noqa: E402
import signal  # noqa: E402

import numpy as np  # noqa: E402

import dezero  # noqa: E402
import dezero.layers as L  # noqa: E402
from dezero import optimizers  # noqa: E402
from dezero.models import MLP  # noqa: E402

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _mnist_dir():
    for folder in (os.environ.get("DEZERO_DATA_DIR"), str(ROOT.parent / "shared/data/mnist"),
                   "/work/shared/data/mnist"):
        if folder and all(os.path.exists(os.path.join(folder, f)) for f in MNIST_FILES):
            return folder
    pytest.skip("real MNIST files not found (set DEZERO_DATA_DIR)")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, and an empty cache folder: MNIST cannot be had."""

    def no_network(url, path, *args, **kwargs):
        raise OfflineError(f"could not download {os.path.basename(path)!r} (test: offline)")

    monkeypatch.setattr(download, "_download", no_network)
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    monkeypatch.setenv("DEZERO_DATA_DIR", str(empty))


def test_linear_in_pytorch_order_is_refused():
    with pytest.raises(TypeError, match=r"nobias must be a bool, got 10 \(int\).*PyTorch's "
                                        r"Linear\(784, 10\) write Linear\(10, in_size=784\)"):
        L.Linear(784, 10)
    assert L.Linear(10, nobias=True).b is None and L.Linear(10, np.bool_(False)).b is not None
    with pytest.raises(TypeError, match="Conv2d: nobias must be a bool"):
        L.Conv2d(8, 3, 1, 1, 1)


@pytest.mark.parametrize(
    ("make", "name", "hint"),
    [
        (lambda: MLP((3, 2)), "parameters", "params()"),
        (lambda: MLP((3, 2)), "zero_grad", "cleargrads()"),
        (lambda: MLP((3, 2)), "to", "to_gpu() or to_cpu()"),
        (lambda: MLP((3, 2)), "cuda", "to_gpu()"),
        (lambda: optimizers.SGD(), "step", "update()"),
        (lambda: optimizers.SGD(), "zero_grad", "model.cleargrads()"),
        (lambda: optimizers.StepLR(optimizers.SGD(), 2), "get_last_lr", "get_lr()"),
        (lambda: dezero.Variable(np.ones(2)), "numpy", ".data (the NumPy array itself"),
        (lambda: dezero.Variable(np.ones(2)), "detach", "Variable(x.data)"),
        (lambda: dezero.Variable(np.ones(2)), "cuda", "to_gpu()"),
    ],
)
def test_pytorch_names_get_a_did_you_mean(make, name, hint):
    obj = make()
    with pytest.raises(AttributeError, match=rf"object has no attribute '{name}'\. Did you mean "
                                             rf"{re.escape(hint)}"):
        getattr(obj, name)
    assert not hasattr(obj, name)  # a message only: no alias
    with pytest.raises(AttributeError, match=r"no attribute 'nonsense'$"):
        obj.nonsense


def test_optimizer_and_scheduler_reprs_say_what_they_are():
    model = MLP((3, 2))
    opt = optimizers.MomentumSGD(0.1).setup(model)
    assert repr(opt) == "MomentumSGD(lr=0.1, momentum=0.9; t=0, set up on MLP)"
    sched = optimizers.CosineAnnealingLR(opt, T_max=10)
    assert repr(sched) == ("CosineAnnealingLR(MomentumSGD, T_max=10, eta_min=0.0; base_lr=0.1, "
                           "step 0, lr=0.1)")
    assert "object at 0x" not in repr(optimizers.Adam()) + repr(optimizers.StepLR(opt, 3))


def test_summary_prints_once_and_returns_a_summary(capsys):
    model = MLP((10, 3))
    summary = model.summary(np.zeros((2, 4), np.float32))
    printed = capsys.readouterr().out
    assert printed.count("Trainable params") == 1 and printed.strip() == str(summary)
    assert isinstance(summary, str) and isinstance(summary, dezero.models.Summary)
    assert repr(summary) == "Summary(3 layers, 83 parameters)" and "\n" not in repr(summary)
    assert [r["name"] for r in summary.rows] == ["(model)", "l0", "l1"]
    assert summary.rows[1] == {"name": "l0", "type": "Linear", "output_shape": "(2, 10)",
                               "params": 50, "buffers": 0}
    assert summary.trainable_params == summary.total_params == 83


def test_save_weights_with_a_pytorch_extension_raises(tmp_path):
    with pytest.raises(ValueError, match=r"'m\.pt' has the extension '\.pt'.*\.npz \(NumPy\) "
                                         r"or \.safetensors"):
        MLP((3,)).save_weights("m.pt")
    assert not os.path.exists("m.pt")


@pytest.mark.skipif(cuda.gpu_enable, reason="a GPU is present: to_gpu works")
def test_to_gpu_without_cupy_names_the_extra():
    with pytest.raises(RuntimeError, match=r'pip install "dezero-next\[gpu\]" \(CUDA 12\) or '
                                           r'"dezero-next\[gpu-cuda13\]"'):
        L.Linear(3, in_size=2).to_gpu()
    with pytest.raises(RuntimeError, match=r"dezero-next\[gpu\]"):
        dezero.DataLoader([(np.zeros(2), 0)] * 4, 2, gpu=True).next()


def test_one_tiny_shakespeare_file_and_decode_checks(tmp_path, monkeypatch):
    import hashlib

    from dezero.datasets import Shakespear, TinyShakespeare, tiny_shakespeare_path

    text = "To be, or not to be, that is the question:\n" * 5
    digest = hashlib.sha256(text.encode()).hexdigest()
    monkeypatch.setattr(Shakespear, "sha256", digest)
    monkeypatch.setattr(TinyShakespeare, "sha256", digest)
    for name in ("tinyshakespeare.txt", "input.txt"):
        cache = tmp_path / name
        cache.mkdir()
        (cache / name).write_text(text, encoding="utf-8")
        monkeypatch.setenv("DEZERO_DATA_DIR", str(cache))
        assert tiny_shakespeare_path(sha256=digest) == str(cache / name)
        book, gpt = Shakespear(), TinyShakespeare(block_size=8)
        assert len(book) + 1 == len(text) and gpt.vocab_size == len(set(text))
        assert os.listdir(cache) == [name]  # both read the one file; nothing downloaded
    assert Shakespear.file_name == TinyShakespeare.file_name == "tinyshakespeare.txt"
    assert gpt.decode([1, 2]) == gpt.decode(np.array([1, 2])) == gpt.vocab[1] + gpt.vocab[2]
    assert gpt.decode([]) == ""
    with pytest.raises(ValueError, match=r"id -1 is out of range for a vocabulary of"):
        gpt.decode([-1])
    with pytest.raises(ValueError, match=rf"id {gpt.vocab_size} is out of range"):
        gpt.decode(np.array([0, gpt.vocab_size]))
    with pytest.raises(TypeError, match="ids must be integers"):
        gpt.decode([1.0])


@pytest.mark.parametrize("name", ["gpt", "char_rnn", "sin_rnn"])
def test_progress_bars_only_on_a_terminal(name, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    module = load(name)
    args = (range(3), 3, True) if name == "sin_rnn" else (3, True)
    assert not sys.stderr.isatty()
    bar = module._progress(*args)
    assert bar is None or isinstance(bar, range)  # no bar frames into a piped log
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = module._progress(*args)
    assert bar is not None and not isinstance(bar, range)
    bar.close()


def test_char_rnn_writes_into_a_folder_that_does_not_exist_yet(tmp_path, capsys):
    out = tmp_path / "runs" / "x" / "sample.txt"
    weights = tmp_path / "runs" / "w" / "char.npz"
    load("char_rnn").main([
        "--text", str(EXAMPLES / "data" / "sonnets.txt"), "--steps", "10", "--hidden", "8",
        "--embed", "4", "--batch-size", "2", "--bptt", "5", "--sample-length", "5",
        "--out", str(out), "--save", str(weights),
    ])
    assert out.exists() and weights.exists()
    assert "\r" not in capsys.readouterr().err  # no progress frames: stderr is not a terminal


def _spiral_main(out, *extra):
    return load("mnist").main(["--epochs", "1", "--out", str(out), "--no-progress", *extra])


def test_ctrl_c_in_training_saves_and_says_how_to_resume(tmp_path, offline, capsys,
                                                         monkeypatch):
    # offline: the 30-epoch Spiral run (10 batches per epoch); one uninterrupted reference
    straight = _spiral_main(tmp_path / "straight")
    capsys.readouterr()
    calls = [0]
    real = optimizers.MomentumSGD.update_one_array

    def ctrl_c_in_update(self, param, g, h):
        calls[0] += 1
        if calls[0] == 6 * 97 + 3:  # inside update() of batch 98 (epoch 10)
            os.kill(os.getpid(), signal.SIGINT)
        real(self, param, g, h)

    monkeypatch.setattr(optimizers.MomentumSGD, "update_one_array", ctrl_c_in_update)
    with pytest.raises(SystemExit) as info:
        _spiral_main(tmp_path / "run")
    assert info.value.code == 130
    lines = capsys.readouterr().out.splitlines()
    saved = tmp_path / "run" / "checkpoints" / "epoch-0009-iter-000098.ckpt"
    assert lines[-1].startswith(f"saved {saved}; continue with: python examples/mnist.py ")
    assert lines[-1].endswith("--resume  (make train ARGS=\"... --resume\")")
    assert "Traceback" not in "\n".join(lines)
    monkeypatch.setattr(optimizers.MomentumSGD, "update_one_array", real)
    resumed = _spiral_main(tmp_path / "run", "--resume")
    assert "resuming from " + str(saved) in capsys.readouterr().out

    def strip(history):
        return [{k: v for k, v in h.items() if k != "time"} for h in history]

    assert strip(resumed["history"]) == strip(straight["history"])
    a = np.load(straight["weights"])
    b = np.load(resumed["weights"])
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_resuming_with_more_epochs_continues_the_schedule(tmp_path, offline, capsys):
    _spiral_main(tmp_path / "run")
    longer = load("mnist").main(["--epochs", "2", "--out", str(tmp_path / "run"),
                                 "--no-progress", "--resume"])
    straight = load("mnist").main(["--epochs", "2", "--out", str(tmp_path / "straight"),
                                   "--no-progress"])
    # Spiral: 30 epochs per --epochs; epochs 31-60 follow the 60-epoch schedule
    assert [h["lr"] for h in longer["history"][30:]] == [h["lr"] for h in
                                                         straight["history"][30:]]
    assert "60 epochs" in capsys.readouterr().out


def test_one_epoch_is_not_said_as_1_epochs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEZERO_DATA_DIR", _mnist_dir())
    load("mnist").main(["--epochs", "1", "--limit", "200", "--hidden", "16", "--out",
                        str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert "; 1 epoch; " in out and "1 epochs" not in out


@pytest.mark.slow
def test_offline_then_online_then_resume_into_one_folder(tmp_path, monkeypatch, capsys):
    """make train offline (Spiral), then online (MNIST), then make train ARGS=--resume."""
    out = tmp_path / "mnist_out"

    def no_network(url, path, *args, **kwargs):
        raise OfflineError(f"could not download {os.path.basename(path)!r} (test: offline)")

    empty = tmp_path / "empty"
    empty.mkdir()
    with monkeypatch.context() as m:
        m.setattr(download, "_download", no_network)
        m.setenv("DEZERO_DATA_DIR", str(empty))
        spiral = _spiral_main(out)
    assert spiral["dataset"].startswith("Spiral")
    assert os.path.exists(out / "checkpoints" / "epoch-0030.ckpt")
    monkeypatch.setenv("DEZERO_DATA_DIR", _mnist_dir())
    online = _spiral_main(out, "--hidden", "64")
    assert online["dataset"] == "MNIST" and len(online["history"]) == 1
    assert sorted(os.listdir(out / "checkpoints")) == ["epoch-0001.ckpt", "epoch-0030.ckpt"]
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"skipping .*epoch-0030\.ckpt.*parameter 'l0/W' has "
                                         r"shape \(2, 100\) in the checkpoint but \(784, 64\)"):
        resumed = load("mnist").main(["--epochs", "2", "--hidden", "64", "--out", str(out),
                                      "--no-progress", "--resume"])
    assert f"resuming from {out / 'checkpoints' / 'epoch-0001.ckpt'}" in capsys.readouterr().out
    assert resumed["dataset"] == "MNIST" and [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"][0] == online["history"][0]
    saved = json.loads((out / "history.json").read_text())
    assert len(saved["history"]) == 2
