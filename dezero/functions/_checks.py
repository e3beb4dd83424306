"""Argument checks that several op families share; every message names the op.

Only host-side checks of types, shapes and dtypes live here (they cost nothing on a GPU),
plus the one value check of class labels that the losses and ``accuracy`` share.
"""

from __future__ import annotations

import numbers

import numpy as np

from dezero import cuda


def axis_arg(name, axis):
    """``axis`` as the reductions take it: None, an int or a tuple of ints (lists become
    tuples). Anything else is a TypeError naming ``axis`` and the op."""
    if axis is None or type(axis) is int:
        return axis
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    for a in items:
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise TypeError(
                f"{name}: axis must be an int, a tuple/list of ints or None, not "
                f"{axis!r} ({type(axis).__name__})"
            )
    if isinstance(axis, (tuple, list)):
        return tuple(int(a) for a in axis)
    return int(axis)


def real(name, x) -> None:
    """Refuse complex input to an op that needs an ordering of its values (NumPy would
    order complex numbers lexicographically and return a silent wrong answer)."""
    dtype = getattr(x, "dtype", None)
    if (dtype is not None and dtype.kind == "c") or isinstance(x, complex):
        raise TypeError(
            f"{name}: complex input (dtype {dtype or 'complex'}) is not supported: the op "
            f"needs an ordering of the values"
        )


def class_labels(name, t, scores_shape, xp, check_range=None):
    """Check integer class labels against scores of shape (N, C, ...): dtype, batch size
    (``t.size`` must be ``N`` times the positions after the class axis) and range
    ``[0, C)``. Returns ``t`` as an array of ``xp``.

    The range needs the labels' values: by default it is checked here on a GPU (one host
    sync) and left to ``label_range`` in the Function's forward on the CPU, where a replayed
    step (``dezero.jit``) runs it for every batch."""
    if not isinstance(t, cuda.array_types):
        t = xp.asarray(t)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: integer labels are required (class indices), got labels of dtype "
            f"{t.dtype}; convert them with t.astype(int)"
        )
    N, C = scores_shape[0], scores_shape[1]
    expected = N
    for s in scores_shape[2:]:
        expected *= s
    if t.size != expected or (t.ndim and t.shape[0] != N):
        raise ValueError(
            f"{name}: {t.size} labels for a batch of {N} scores (labels of shape {t.shape}, "
            f"scores of shape {tuple(scores_shape)}); labels must have length {N}"
        )
    if N == 0:
        raise ValueError(f"{name}: empty batch (scores of shape {tuple(scores_shape)})")
    if check_range is None:
        check_range = xp is not np
    if check_range:
        label_range(name, t, C)
    return t


def label_range(name, t, C) -> None:
    """Raise for a label outside ``[0, C)`` (naming it)."""
    xp = cuda.get_array_module(t)
    if t.size == 0 or (xp is not np and not bool(((t < 0) | (t >= C)).any())):
        return  # one device sync per batch, not two: the common case on a GPU
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= C:
        raise ValueError(
            f"{name}: label {lo if lo < 0 else hi} is out of range for {C} classes (labels "
            f"must be in [0, {C - 1}])"
        )
