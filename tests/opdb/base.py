"""The op table's record types. One OpInfo per public function; see tests/opdb/__init__.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Sample:
    """One call of an op: positional ``args`` (float64 arrays are differentiable inputs,
    anything else is passed through as is), ``kwargs``, and a readable ``name``.

    ``diff`` lists the indices of the args to check gradients for (default: every
    floating-point ndarray).
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    name: str = ""
    diff: tuple | None = None

    def diff_indices(self) -> list[int]:
        if self.diff is not None:
            return list(self.diff)
        return [i for i, a in enumerate(self.args)
                if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


@dataclass
class OpInfo:
    """How to test one public function of ``dezero.functions``.

    name: the public name (the coverage test matches it against ``dezero.functions``).
    op: callable taking the sample's args/kwargs (Variables or arrays) -> Variable(s).
    ref: NumPy reference on float64 arrays with the same signature, or None.
    samples: ``rng -> list[Sample]``; values must keep away from kinks and singularities.
    grad / double_grad: whether first / second order gradients are checked.
    atol / rtol: float64 tolerances for forward; gradient checks use grad_atol / grad_rtol.
    f32_atol / f32_rtol: float32 run vs float64 run.
    float32: whether the float32-in -> float32-out contract applies.
    paths: for ops with several implementations, name -> a context manager factory that
        routes the op (forward and every backward) through that implementation; the first
        is the reference. tests/test_ops.py checks every path against it (1e-12 relative
        in float64, 1e-5 in float32) and against numerical gradients, first and second order.
    """

    name: str
    op: Callable[..., Any]
    ref: Callable[..., Any] | None
    samples: Callable[[np.random.Generator], list]
    grad: bool = True
    double_grad: bool = True
    atol: float = 1e-10
    rtol: float = 1e-7
    grad_atol: float = 1e-6
    grad_rtol: float = 1e-5
    f32_atol: float = 1e-4
    f32_rtol: float = 1e-4
    float32: bool = True
    note: str = ""
    paths: dict = field(default_factory=dict)


def u(rng, *shape, low=-1.0, high=1.0):
    """Uniform float64 sample of ``shape`` in ``[low, high)``."""
    return rng.uniform(low, high, size=shape)


def pos(rng, *shape, low=0.5, high=2.0):
    """Positive float64 sample (for log, sqrt, division, ...)."""
    return rng.uniform(low, high, size=shape)


def away(rng, *shape, gap=0.1):
    """Sample in [-1, 1] that keeps ``gap`` away from 0 (for kinks at zero: abs, relu...)."""
    x = rng.uniform(gap, 1.0, size=shape)
    return np.asarray(x * rng.choice([-1.0, 1.0], size=shape))  # 0-d stays an array
