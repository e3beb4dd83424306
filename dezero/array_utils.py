"""Array-level helpers (no Variables): what the engine and the op kernels share.

``dezero.core`` imports this module explicitly; ``dezero.utils`` re-exports its names, as
the book's programs import them from there.
"""

from __future__ import annotations

import numbers

import numpy as np

from dezero import cuda

__all__ = [
    "NUMPY2",
    "PLAIN_SCALARS",
    "as_array",
    "get_conv_outsize",
    "get_deconv_outsize",
    "logsumexp",
    "operand_like",
    "pair",
    "reshape_sum_backward",
    "scalar_to_array",
    "sum_to",
]


# =============================================================================
# Operands
# =============================================================================
NUMPY2 = int(np.__version__.split(".")[0]) >= 2
# Python numbers meet a float array in an op as they are: NumPy 2 never lets them change the
# array's dtype, and scalar arithmetic is the fastest path. (NumPy 1.x promotes a 0-d float32
# array with a Python scalar to float64: there every operand goes through operand_like.)
PLAIN_SCALARS = (float, int) if NUMPY2 else ()
_SCALAR_TYPES = (numbers.Number, np.generic)


def as_array(x, array_module=np):
    """Return ``x`` as an array of ``array_module``; scalars become 0-d arrays."""
    if np.isscalar(x):
        return array_module.array(x)
    return x


def operand_like(c, x):
    """Turn the scalar or array ``c`` into an operand that can meet the array ``x`` in an op.

    Python and NumPy scalars take ``x``'s dtype where that loses nothing (a float scalar
    never promotes a float32 graph to float64; an int scalar never turns floats into ints).
    """
    xp = cuda.get_array_module(x)
    if isinstance(c, cuda.array_types) and c.ndim == 0 and c.dtype.kind == x.dtype.kind:
        if c.dtype == x.dtype:
            return c  # itself (a replayed step, dezero.jit, finds it among the step's arrays)
        c = c.item()  # a 0-d array of the same kind follows x's dtype, like a scalar
    if isinstance(c, _SCALAR_TYPES):
        if x.dtype.kind == "b":  # bool data follows NumPy's promotion: True + 1 == 2
            return xp.asarray(c)
        dtype = x.dtype
        if dtype.kind in "biu" and not isinstance(c, (numbers.Integral, np.integer, np.bool_)):
            dtype = np.result_type(dtype, np.float64 if isinstance(c, numbers.Real) else c)
        return xp.asarray(c, dtype=dtype)
    if isinstance(c, cuda.array_types):
        return c
    raise TypeError(f"unsupported operand type for a dezero op: {type(c).__name__}")


def scalar_to_array(data):
    """A NumPy scalar or Python number as a 0-d array; anything else is a TypeError naming
    its type (what a Variable's data may be)."""
    if isinstance(data, (np.generic, numbers.Number)):  # np.generic first: the cheap check
        array = np.asarray(data)
        if array.dtype.kind in "biufc":
            return array
    raise TypeError(
        f"Variable data must be a NumPy/CuPy ndarray, a NumPy scalar or a Python number, "
        f"not {type(data).__name__}"
    )


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
    rows = max(1, _LSE_BLOCK // max(1, x.shape[-1])) if x.ndim == 2 else 0
    if xp is np and axis in (1, -1) and rows and x.shape[0] > rows:
        # large logits (a language model's (N, vocab)): row blocks, so that exp's temporary
        # stays in the cache; each row's result is the same as over the whole array
        s = np.empty_like(m)
        for i in range(0, x.shape[0], rows):
            y = x[i:i + rows] - m[i:i + rows]
            np.exp(y, out=y)
            np.sum(y, axis=1, keepdims=True, out=s[i:i + rows])
    else:
        y = x - m
        xp.exp(y, out=y)
        s = y.sum(axis=axis, keepdims=True)
    xp.log(s, out=s)
    m += s
    return m


_LSE_BLOCK = 1 << 16  # elements of logsumexp's temporary per row block


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
