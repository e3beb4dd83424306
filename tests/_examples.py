"""Helpers for tests that run the example scripts in-process."""

import hashlib
import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name, module_name=None):
    """Import ``examples/<name>.py`` as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(module_name or f"example_{name}",
                                                  EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_shakespeare(tmp_path, monkeypatch, text):
    """Make ``TinyShakespeare`` read ``text`` from a cache folder under ``tmp_path``."""
    from dezero.datasets import TinyShakespeare

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "input.txt").write_text(text, encoding="utf-8")
    monkeypatch.setenv("DEZERO_DATA_DIR", str(cache))
    monkeypatch.setattr(TinyShakespeare, "sha256",
                        hashlib.sha256(text.encode("utf-8")).hexdigest())
