"""ErrorInput (one row of the error-input table) and the snapshot of what must not change.

A row gives a call with bad input, the exception it must raise, words its message must
contain, and a setup that builds the objects the call works on. The generic test
(tests/test_error_inputs.py) builds them, snapshots everything the call could touch, runs the
call, checks the exception and its message, and compares the snapshot again:

- parameters, buffers and their ``.grad``; layer modes;
- optimizer state (``state_dict()``: step count, hyperparameters, slots) and the learning
  rate a scheduler set; scheduler, loader, metric, callback and Trainer state;
- every file under the test's folder, byte for byte (so no temporary file is left either);
- ``dezero.Config`` (every per-thread setting, the FunctionHooks included).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import dezero
from dezero import cuda


class Ctx:
    """What a row's setup builds: ``ctx.tmp`` (a folder of its own) and any attributes."""

    def __init__(self, tmp: Path):
        self.tmp = tmp


@dataclass(frozen=True)
class ErrorInput:
    """One bad call of one public callable.

    target: the public callable, as ``module.name`` or ``module.Class.method``
        (``models.GPT.generate``); the coverage test lists these.
    call: ``call(ctx)`` makes the bad call.
    error: the exception type (or a tuple of them) it must raise.
    words: strings that must all appear in the message.
    setup: ``setup(ctx)`` builds the objects (attributes of ``ctx``) before the snapshot.
    needs: optional packages the row needs (skipped without them).
    name: a short id for the test report.
    """

    target: str
    call: Callable[[Ctx], Any]
    error: type | tuple
    words: tuple[str, ...]
    setup: Callable[[Ctx], None] | None = None
    needs: tuple[str, ...] = ()
    name: str = ""
    marks: tuple = field(default=())

    @property
    def id(self) -> str:
        return f"{self.target}:{self.name}" if self.name else self.target


def rows(target: str, setup=None, needs=(), **cases) -> list[ErrorInput]:
    """Several rows of one target sharing a setup: ``name=(call, error, words...)``."""
    out = []
    for name, (call, error, *words) in cases.items():
        out.append(ErrorInput(target, call, error, tuple(words), setup, tuple(needs), name))
    return out


# =============================================================================
# The snapshot
# =============================================================================
def _copy(a):
    return np.array(cuda.as_numpy(a), copy=True)


def _layer(layer) -> dict:
    state = {}
    for path, p in layer.named_params():
        state["param/" + path] = None if p.data is None else _copy(p.data)
        state["grad/" + path] = None if p.grad is None else _copy(p.grad.data)
    for path, b in layer.named_buffers():
        state["buffer/" + path] = None if b is None else _copy(b)
    state["modes"] = [(name, sub.training) for name, sub in layer.named_layers()]
    state["training"] = layer.training
    return state


def _plain(value):
    """A comparable copy of nested dicts/lists/tuples of arrays and scalars."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, cuda.array_types):
        return _copy(value)
    return value


def describe(obj) -> Any:
    """What of ``obj`` a failed call must leave alone (None: nothing to compare)."""
    from dezero.layers import Layer
    from dezero.metrics import Metric
    from dezero.optimizers import LRScheduler, Optimizer
    from dezero.training import Callback, Trainer

    if isinstance(obj, Layer):
        return ("layer", _layer(obj))
    if isinstance(obj, Optimizer):
        hyper = {h: getattr(obj, h) for h in obj.hyperparams}
        return ("optimizer", _plain(obj.state_dict()) if obj.target is not None else None,
                hyper, obj.t)
    if isinstance(obj, LRScheduler):
        return ("scheduler", obj.state_dict(), getattr(obj.optimizer, obj.attr))
    if isinstance(obj, Trainer):
        state = obj.state_dict()
        state.pop("rng")  # NumPy's global generator is not the Trainer's to keep
        return ("trainer", _plain(state), _layer(obj.model), describe(obj.optimizer))
    if isinstance(obj, (Metric, Callback)) or (
            hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")
            and not isinstance(obj, type)):
        return (type(obj).__name__, _plain(obj.state_dict()))
    if isinstance(obj, dezero.Variable):
        return ("variable", None if obj.data is None else _copy(obj.data),
                None if obj.grad is None else _copy(obj.grad.data))
    if isinstance(obj, cuda.array_types):
        return ("array", _copy(obj))
    if isinstance(obj, (list, tuple)) and obj and all(
            describe(v) is not None for v in obj):
        return [describe(v) for v in obj]
    return None


def files(folder: Path) -> dict[str, bytes]:
    out = {}
    for root, dirs, names in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder) + "/"] = b""
        for n in names:
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return dict(sorted(out.items()))


def config() -> dict:
    settings = type(dezero.Config._local)
    return {k: getattr(dezero.Config, k) for k in vars(settings) if not k.startswith("_")}


def snapshot(ctx: Ctx) -> dict:
    state = {"files": files(ctx.tmp), "config": config()}
    for name, obj in vars(ctx).items():
        if name != "tmp":
            d = describe(obj)
            if d is not None:
                state[name] = d
    return state


def assert_same(before, after, where="") -> None:
    """Equal, arrays by value and dtype (NaN equal to NaN)."""
    if isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray), where
        assert before.dtype == after.dtype and before.shape == after.shape, where
        assert np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"), where
    elif isinstance(before, dict):
        assert isinstance(after, dict), f"{where}: {after!r} is no longer a dict"
        assert list(before) == list(after), f"{where}: keys {list(before)} became {list(after)}"
        for k in before:
            assert_same(before[k], after[k], f"{where}/{k}")
    elif isinstance(before, (list, tuple)):
        assert type(before) is type(after) and len(before) == len(after), where
        for i, (a, b) in enumerate(zip(before, after)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(before, float) and math.isnan(before):
        assert isinstance(after, float) and math.isnan(after), where
    else:
        assert before == after, f"{where}: {before!r} became {after!r}"
