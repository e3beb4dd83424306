"""Noise: dropout (inverted: scaled at training time, the identity under ``test_mode``)."""

from __future__ import annotations

from dezero import cuda
from dezero.core import Config, Function, Variable, as_variable

__all__ = ["dropout"]


class Dropout(Function):
    """``x * mask`` with a constant mask (0 or ``1 / (1 - ratio)``) in ``x``'s dtype."""

    def __init__(self, mask):
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def dropout(x, dropout_ratio: float = 0.5, *, mask=None):
    """Inverted dropout: zero each element with probability ``dropout_ratio`` (training only).

    Parameters
    ----------
    x : Variable or ndarray
    dropout_ratio : float
        Probability of dropping an element, in ``[0, 1)``.
    mask : ndarray of bool, optional
        Keep-mask of ``x``'s shape (True keeps) to use instead of a random one, for
        reproducible tests; by default a fresh mask is drawn from ``xp.random``
        (NumPy's or CuPy's global generator, seeded with ``xp.random.seed``).

    Returns
    -------
    Variable
        In training mode ``x * keep / (1 - dropout_ratio)``; under :func:`dezero.test_mode`
        ``x`` itself, unchanged.

    Notes
    -----
    Scaling at training time keeps the expectation: ``E[y] = x``, so nothing changes at
    test time. The mask is built in ``x``'s dtype. Derivative: the same mask,
    ``gx = gy * keep / (1 - dropout_ratio)``.

    Examples
    --------
    >>> import numpy as np
    >>> import dezero
    >>> x = np.ones(4, dtype=np.float32)
    >>> dropout(x, 0.5, mask=np.array([True, False, True, False]))
    variable([2. 0. 2. 0.])
    >>> with dezero.test_mode():
    ...     dropout(x, 0.5)
    variable([1. 1. 1. 1.])
    """
    x = as_variable(x)
    ratio = float(dropout_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"dropout: dropout_ratio must be in [0, 1), got {dropout_ratio}")
    if not Config.train:
        return x
    xp = cuda.get_array_module(x.data)
    if mask is None:
        if ratio == 0.0:
            return x
        keep = xp.random.random_sample(x.shape) > ratio
    else:
        keep = xp.asarray(mask.data if isinstance(mask, Variable) else mask)
        if keep.shape != x.shape:
            raise ValueError(
                f"dropout: mask of shape {keep.shape} does not match input of shape {x.shape}"
            )
    dtype = x.dtype if x.dtype.kind == "f" else None
    scale_mask = keep.astype(dtype or "float64")
    scale_mask *= 1.0 / (1.0 - ratio)
    return Dropout(scale_mask)(x)
