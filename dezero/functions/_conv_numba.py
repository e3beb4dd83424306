"""Compiled kernels for the convolution family (numba, extra ``fast``): the "numba" path.

Used automatically when numba can be imported (``pip install "dezero-next[fast]"``);
without it the NumPy paths run and nothing here is compiled. Only this module imports
numba, lazily, on first use. The kernels release the GIL and are split over the batch on
the package's one worker-thread pool (:mod:`dezero.parallel`), not on numba's own threads.

What is compiled is what NumPy can only do in several whole-array passes. Tiled 2x2 max
pooling with its two masks (forward) is one pass instead of six (two maxima, two
comparisons, two casts). Its scatter (backward) is one pass instead of four. Both do the
same arithmetic as the NumPy kernels they replace (``_pool2x2`` and
``_pool2x2_scatter`` in ``_conv_kernels``), so their results are identical, bit for bit.
The op table checks them as a path of their own.

Measured on the MNIST CNN training step (instructions, callgrind, 1 thread), the step runs
about 10% fewer instructions than on the NumPy channel-major path. Loading numba and
the kernels costs about 110 MiB of resident memory, once per process. That trade is why
this is an extra and not a default dependency.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from dezero import parallel

AVAILABLE = importlib.util.find_spec("numba") is not None
_kernels: dict = {}


def _compile():
    if _kernels:
        return _kernels
    import numba

    @numba.njit(nogil=True, cache=True)
    def pool_fwd(x, y, col, row, lo, hi):
        # NaN-propagating maxima (np.maximum) and strict '>' masks (np.greater), as
        # _pool2x2 computes them
        C, OH, OW = x.shape[1], y.shape[2], y.shape[3]
        for n in range(lo, hi):
            for c in range(C):
                for i in range(OH):
                    for j in range(OW):
                        a0 = x[n, c, 2 * i, 2 * j]
                        b0 = x[n, c, 2 * i, 2 * j + 1]
                        a1 = x[n, c, 2 * i + 1, 2 * j]
                        b1 = x[n, c, 2 * i + 1, 2 * j + 1]
                        m0 = b0 if (b0 > a0 or b0 != b0) else a0
                        m1 = b1 if (b1 > a1 or b1 != b1) else a1
                        col[n, c, 2 * i, j] = 1.0 if b0 > a0 else 0.0
                        col[n, c, 2 * i + 1, j] = 1.0 if b1 > a1 else 0.0
                        row[n, c, i, j] = 1.0 if m1 > m0 else 0.0
                        y[n, c, i, j] = m1 if (m1 > m0 or m1 != m1) else m0

    @numba.njit(nogil=True, cache=True)
    def pool_bwd(gy, col, row, gx, lo, hi):
        # out1 = g * mask, out0 = g - out1 (the arithmetic of _pair_scatter), rows first
        C, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
        for n in range(lo, hi):
            for c in range(C):
                for i in range(OH):
                    for j in range(OW):
                        g = gy[n, c, i, j]
                        g1 = g * row[n, c, i, j]
                        g0 = g - g1
                        t = g0 * col[n, c, 2 * i, j]
                        gx[n, c, 2 * i, 2 * j + 1] = t
                        gx[n, c, 2 * i, 2 * j] = g0 - t
                        t = g1 * col[n, c, 2 * i + 1, j]
                        gx[n, c, 2 * i + 1, 2 * j + 1] = t
                        gx[n, c, 2 * i + 1, 2 * j] = g1 - t

    _kernels.update(pool_fwd=pool_fwd, pool_bwd=pool_bwd)
    return _kernels


def supports(*arrays) -> bool:
    """Whether these NumPy arrays can go through the compiled kernels (float32/float64)."""
    return AVAILABLE and all(
        type(a) is np.ndarray and a.dtype in (np.float32, np.float64) for a in arrays) and (
        len({a.dtype for a in arrays}) == 1)


def _like(a, shape):
    """An uninitialised array of ``shape`` in ``a``'s memory order (channel-major stays)."""
    if a.ndim == 4 and a.shape[0] > 1 and a.shape[1] > 1 and a.strides[1] > a.strides[0]:
        N, C = shape[:2]
        return np.empty((C, N, *shape[2:]), dtype=a.dtype).swapaxes(0, 1)
    return np.empty(shape, dtype=a.dtype)


def pool2x2(x, record):
    """Tiled 2x2 max pooling: ``(y, (col, row))`` as ``_conv_kernels._pool2x2`` returns."""
    k = _compile()
    N, C, H, W = x.shape
    y = _like(x, (N, C, H // 2, W // 2))
    col = _like(x, (N, C, H, W // 2))
    row = _like(x, (N, C, H // 2, W // 2))
    parallel.parallel_for(lambda lo, hi: k["pool_fwd"](x, y, col, row, lo, hi), N,
                          x.size * 2)
    return y, ((col, row) if record else None)


def pool2x2_scatter(gy, masks):
    """The backward of :func:`pool2x2`, in the layout of the forward's input."""
    k = _compile()
    col, row = masks
    N, C, OH, OW = gy.shape
    gx = _like(col, (N, C, 2 * OH, 2 * OW))
    parallel.parallel_for(lambda lo, hi: k["pool_bwd"](gy, col, row, gx, lo, hi), N,
                          gy.size * 6)
    return gx
