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


@pytest.mark.skipif(cuda.gpu_enable, reason="a GPU is present: make gpu-check runs for real")
def test_gpu_check_fails_clearly_without_a_gpu():
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh")], capture_output=True,
                          text=True, check=False, env={**os.environ, "PYTHON": sys.executable,
                                                       "OUT": "/nonexistent/gpu_out"})
    assert proc.returncode == 2
    assert "gpu-check: FAILED: no usable GPU" in proc.stderr
    assert "nothing was checked" in proc.stderr
    assert "== GPU tests" not in proc.stdout


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
    assert f"as {str(tmp_path / 'cache' / 'shakespear.txt')!r}" in out
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
