"""Evaluation: accuracy (a metric, not differentiable)."""

from __future__ import annotations

from dezero import cuda
from dezero.core import Variable
from dezero.functions import _checks

__all__ = ["accuracy"]


def accuracy(y, t) -> Variable:
    """Fraction of rows of ``y`` whose highest score is at the label in ``t``.

    Parameters
    ----------
    y : Variable or ndarray
        Scores of shape ``(N, C)`` (or ``(N, C, ...)``: the class axis is 1).
    t : Variable or ndarray of int
        Labels of shape ``(N,)`` (or ``(N, ...)``; any shape with ``N`` entries per class
        position, e.g. ``(N, 1)``).

    Returns
    -------
    Variable
        0-d, in ``y``'s float dtype. Not part of any graph: accuracy has no gradient.

    Raises
    ------
    TypeError
        If the labels are not integers, or the scores are complex.
    ValueError
        If the labels do not have ``N`` entries per position, or one is outside ``[0, C)``
        (the checks of :func:`softmax_cross_entropy`).

    Notes
    -----
    ``mean(argmax(y, axis=1) == t)``. Ties in ``y`` go to the lowest class index.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    >>> accuracy(y, np.array([1, 0, 0]))
    variable(0.66666667)
    """
    # not getattr(., "data"): a CuPy ndarray has a .data attribute of its own (a pointer)
    y = y.data if isinstance(y, Variable) else y
    t = t.data if isinstance(t, Variable) else t
    xp = cuda.get_array_module(y)
    y = xp.asarray(y)
    _checks.real("accuracy", y)
    if y.ndim < 2:
        raise ValueError(f"accuracy: scores must have shape (N, C), got shape {y.shape}")
    # the same label checks as softmax_cross_entropy: dtype, batch size, range [0, C)
    t = _checks.class_labels("accuracy", t, y.shape, xp, check_range=True)
    pred = y.argmax(axis=1)
    dtype = y.dtype if y.dtype.kind == "f" else "float64"
    return Variable(xp.asarray((pred == t.reshape(pred.shape)).mean(), dtype=dtype))
