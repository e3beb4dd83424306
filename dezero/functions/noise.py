"""Noise: dropout (inverted: scaled at training time, the identity under ``test_mode``)."""

from __future__ import annotations

from dezero import cuda
from dezero.core import Config, Function, Variable, as_variable

__all__ = ["dropout"]


class Dropout(Function):
    """``x * mask``, the mask (0 or ``1 / (1 - ratio)``, in ``x``'s dtype) drawn in forward.

    The draw happens inside ``forward`` so that a replayed step (``dezero.jit``) draws a fresh
    mask each time; ``keep`` (a fixed bool keep-mask) replaces the draw.
    """

    draws_random = True  # dezero.jit: a CUDA graph would replay one draw forever

    def __init__(self, ratio: float, keep=None):
        self.ratio = ratio
        self.keep = keep

    def forward(self, x):
        xp = cuda.get_array_module(x)
        keep = self.keep
        if keep is None:
            keep = xp.random.random_sample(x.shape) > self.ratio
        mask = keep.astype(x.dtype if x.dtype.kind == "f" else "float64")
        mask *= 1.0 / (1.0 - self.ratio)
        self.mask = mask
        return x * mask

    def backward_array(self, xs, ys, gys):
        return gys[0] * self.mask


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
    variable([2. 0. 2. 0.], dtype=float32)
    >>> with dezero.test_mode():
    ...     dropout(x, 0.5)
    variable([1. 1. 1. 1.], dtype=float32)
    """
    x = as_variable(x)
    ratio = float(dropout_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"dropout: dropout_ratio must be in [0, 1), got {dropout_ratio}")
    if not Config.train:
        return x
    if mask is None:
        if ratio == 0.0:
            return x
        return Dropout(ratio)(x)
    xp = cuda.get_array_module(x.data)
    keep = xp.asarray(mask.data if isinstance(mask, Variable) else mask)
    if keep.shape != x.shape:
        raise ValueError(
            f"dropout: mask of shape {keep.shape} does not match input of shape {x.shape}"
        )
    return Dropout(ratio, keep)(x)
