"""Array-level helpers (no Variables): what the engine and the op kernels share.

``dezero.core`` imports this module explicitly; ``dezero.utils`` re-exports its names, as
the book's programs import them from there.
"""

from __future__ import annotations

import numpy as np

from dezero import cuda

__all__ = [
    "get_conv_outsize",
    "get_deconv_outsize",
    "logsumexp",
    "pair",
    "reshape_sum_backward",
    "sum_to",
]


# =============================================================================
# Shape helpers
# =============================================================================
def sum_to(x, shape):
    """Sum the array ``x`` down to ``shape`` (array level; see ``functions.sum_to``).

    >>> sum_to(np.ones((2, 3)), (1, 3))
    array([[2., 2., 2.]])
    """
    shape = tuple(shape)
    if x.shape == shape:
        return x
    ndim = len(shape)
    lead = x.ndim - ndim
    if lead < 0:
        raise ValueError(f"sum_to: cannot sum an array of shape {x.shape} to shape {shape}")
    lead_axis = tuple(range(lead))
    axis = tuple(i + lead for i, sx in enumerate(shape) if sx == 1 and x.shape[i + lead] != 1)
    for i, sx in enumerate(shape):
        if sx != 1 and sx != x.shape[i + lead]:
            raise ValueError(f"sum_to: cannot sum an array of shape {x.shape} to shape {shape}")
    y = x.sum(lead_axis + axis, keepdims=True)
    if lead > 0:
        y = y.squeeze(lead_axis)
    return y


def reshape_sum_backward(gy, x_shape, axis, keepdims):
    """Shape that lets the gradient of ``sum(x, axis, keepdims)`` broadcast back to ``x``.

    >>> reshape_sum_backward((3,), (2, 3), 0, False)
    (1, 3)
    """
    gy_shape = gy if isinstance(gy, tuple) else gy.shape
    ndim = len(x_shape)
    if axis is None:
        tupled_axis = None
    elif not isinstance(axis, (tuple, list)):
        tupled_axis = (axis,)
    else:
        tupled_axis = axis
    if not (ndim == 0 or tupled_axis is None or keepdims):
        actual_axis = sorted(a if a >= 0 else a + ndim for a in tupled_axis)
        shape = list(gy_shape)
        for a in actual_axis:
            shape.insert(a, 1)
    elif tupled_axis is None and not keepdims:
        shape = [1] * ndim
    else:
        shape = list(gy_shape)
    return tuple(shape)


def logsumexp(x, axis=1):
    """Stable ``log(sum(exp(x), axis, keepdims=True))`` on arrays.

    >>> float(logsumexp(np.array([[0.0, 0.0]]))[0, 0]) == float(np.log(2.0))
    True
    """
    xp = cuda.get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    y = x - m
    xp.exp(y, out=y)
    s = y.sum(axis=axis, keepdims=True)
    xp.log(s, out=s)
    m += s
    return m


def pair(x):
    """``x`` as a pair: an int becomes ``(x, x)``; a pair passes through.

    >>> pair(3), pair((1, 2))
    ((3, 3), (1, 2))
    """
    if isinstance(x, (int, np.integer)):
        return (int(x), int(x))
    if isinstance(x, tuple) and len(x) == 2:
        return x
    if isinstance(x, list) and len(x) == 2:
        return tuple(x)
    raise ValueError(f"expected an int or a pair of ints, got {x!r}")


def get_conv_outsize(input_size, kernel_size, stride, pad):
    """Output length of a convolution: ``(input + 2 pad - kernel) // stride + 1``.

    >>> get_conv_outsize(28, 3, 1, 1)
    28
    """
    return (input_size + pad * 2 - kernel_size) // stride + 1


def get_deconv_outsize(size, k, s, p):
    """Output length of a transposed convolution: ``s (size - 1) + k - 2 p``.

    >>> get_deconv_outsize(14, 4, 2, 1)
    28
    """
    return s * (size - 1) + k - 2 * p
