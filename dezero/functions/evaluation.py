"""Evaluation: accuracy (a metric, not differentiable)."""

from __future__ import annotations

from dezero import cuda
from dezero.core import Variable

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
    t = xp.asarray(t)
    if y.ndim < 2:
        raise ValueError(f"accuracy: scores must have shape (N, C), got shape {y.shape}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"accuracy: integer labels are required, got labels of dtype {t.dtype}")
    pred = y.argmax(axis=1)
    if t.shape != pred.shape:
        if t.size != pred.size:
            raise ValueError(
                f"accuracy: {t.size} labels (shape {t.shape}) for scores of shape {y.shape}; "
                f"expected {pred.size}"
            )
        t = t.reshape(pred.shape)
    if pred.size == 0:
        raise ValueError(f"accuracy: empty batch (scores of shape {y.shape})")
    dtype = y.dtype if y.dtype.kind == "f" else "float64"
    return Variable(xp.asarray((pred == t).mean(), dtype=dtype))
