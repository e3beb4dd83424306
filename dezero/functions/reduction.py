"""Reductions: sum, average/mean, var, std, max, min, logsumexp (any order of derivative)."""

from __future__ import annotations

import numpy as np

from dezero import array_utils, cuda
from dezero.core import Function, as_variable, unbroadcast
from dezero.functions import _checks
from dezero.functions._ops import nograd, ops
from dezero.functions.math import sqrt

__all__ = ["average", "logsumexp", "max", "mean", "min", "std", "sum", "var"]


def _reduce(name, method, x, axis, keepdims):
    """Call ``x.<method>(axis, keepdims)`` and turn an out-of-range axis into a clear error."""
    try:
        return method(axis=axis, keepdims=keepdims)
    except (ValueError, IndexError, TypeError) as e:  # AxisError is a ValueError/IndexError
        if type(e).__name__ == "AxisError" or "axis" in str(e):
            raise ValueError(
                f"{name}: axis {axis} is out of range for an input of shape {x.shape} "
                f"(ndim {x.ndim})"
            ) from None
        raise


def _expand_like(gy, x_shape, axis, keepdims):
    """Broadcast the gradient of a reduction over ``axis`` back to the input shape (an array
    or a Variable)."""
    gy = gy.reshape(array_utils.reshape_sum_backward(gy.shape, x_shape, axis, keepdims))
    return gy if gy.shape == x_shape else ops(gy).broadcast_to(gy, x_shape)


def _count(x_shape, axis):
    """Number of elements a reduction over ``axis`` folds into each output element."""
    if axis is None:
        return int(np.prod(x_shape, dtype=np.int64))
    if not isinstance(axis, tuple):
        axis = (axis,)
    n = 1
    for a in axis:
        n *= x_shape[a]
    return n


class _Reduction(Function):
    """A reduction over ``axis`` (None or a tuple of ints), keeping dims when ``keepdims``."""

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims


# =============================================================================
# sum, average / mean
# =============================================================================
class Sum(_Reduction):
    def forward(self, x):
        self.x_shape = x.shape
        return _reduce("sum", x.sum, x, self.axis, self.keepdims)

    def backward_array(self, xs, ys, gys):
        return _expand_like(gys[0], self.x_shape, self.axis, self.keepdims)


def sum(x, axis=None, keepdims=False):
    """Sum of the elements of ``x`` over ``axis``.

    Parameters
    ----------
    x : Variable or ndarray
    axis : None, int, or tuple/list of ints
        Axes to sum over (negative values count from the end); None sums everything.
    keepdims : bool
        Keep the reduced axes with length 1.

    Returns
    -------
    Variable

    Raises
    ------
    ValueError
        When an axis is out of range; the message names the axis and the shape.

    Notes
    -----
    The gradient broadcasts ``gy`` back to the shape of ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> sum(np.array([[1.0, 2.0], [3.0, 4.0]]), axis=0)
    variable([4. 6.])
    """
    return Sum(_checks.axis_arg("sum", axis), keepdims)(x)


class Mean(_Reduction):
    def forward(self, x):
        self.x_shape = x.shape
        return _reduce("mean", x.mean, x, self.axis, self.keepdims)

    def backward_array(self, xs, ys, gys):
        n = _count(self.x_shape, self.axis)
        gx = _expand_like(gys[0] * (1.0 / n), self.x_shape, self.axis, self.keepdims)
        # unbroadcast casts back where NumPy 1.x promotes a 0-d float32 times a Python float
        return unbroadcast(gx, xs[0])


def average(x, axis=None, keepdims=False):
    """Arithmetic mean of ``x`` over ``axis`` (``mean`` is the same function).

    Parameters
    ----------
    x : Variable or ndarray
    axis : None, int, or tuple/list of ints
    keepdims : bool

    Returns
    -------
    Variable

    Notes
    -----
    The gradient is ``gy / n`` broadcast back to ``x``, ``n`` the number of averaged
    elements.

    Examples
    --------
    >>> import numpy as np
    >>> average(np.array([[1.0, 2.0], [3.0, 4.0]]), axis=1)
    variable([1.5 3.5])
    """
    return Mean(_checks.axis_arg("average", axis), keepdims)(x)


mean = average


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance of ``x`` over ``axis``: ``mean((x - mean(x))**2)``.

    Parameters
    ----------
    x : Variable or ndarray
    axis : None, int, or tuple/list of ints
    keepdims : bool
    ddof : int
        Delta degrees of freedom: the sum of squares is divided by ``n - ddof``.

    Returns
    -------
    Variable

    Notes
    -----
    d var / dx_i = 2 (x_i - mean) / (n - ddof). Built from dezero ops, so any order works.

    Examples
    --------
    >>> import numpy as np
    >>> var(np.array([1.0, 2.0, 3.0, 4.0]))
    variable(1.25)
    """
    axis = _checks.axis_arg("var", axis)
    x = as_variable(x)
    d = x - average(x, axis, keepdims=True)
    if ddof == 0:
        return average(d * d, axis, keepdims)
    n = _count(x.shape, axis)
    if n - ddof <= 0:
        raise ValueError(f"var: ddof={ddof} leaves no degrees of freedom for {n} elements")
    return sum(d * d, axis, keepdims) * (1.0 / (n - ddof))


def std(x, axis=None, keepdims=False, ddof=0):
    """Standard deviation of ``x`` over ``axis``: ``sqrt(var(x, axis, keepdims, ddof))``.

    Parameters
    ----------
    x : Variable or ndarray
    axis : None, int, or tuple/list of ints
    keepdims : bool
    ddof : int

    Returns
    -------
    Variable

    Notes
    -----
    d std / dx_i = (x_i - mean) / ((n - ddof) std); infinite where std = 0 (constant input).

    Examples
    --------
    >>> import numpy as np
    >>> std(np.array([1.0, 3.0]))
    variable(1.0)
    """
    return sqrt(var(x, _checks.axis_arg("std", axis), keepdims, ddof))


# =============================================================================
# max, min
# =============================================================================
class Max(_Reduction):
    _name = "max"

    def _forward(self, x):
        return x.max

    def forward(self, x):
        return _reduce(self._name, self._forward(x), x, self.axis, self.keepdims)

    def backward_array(self, xs, ys, gys):
        (x,), y, gy = xs, ys[0], gys[0]
        shape = array_utils.reshape_sum_backward(y.shape, x.shape, self.axis, self.keepdims)
        # which elements attain the extremum (a constant of the graph); ties share evenly
        return gy.reshape(shape) * nograd(lambda x, y: self._winners(x, y, shape, gy.dtype),
                                          x, y)

    def _winners(self, x, y, shape, dtype):
        mask = (x == y.reshape(shape)).astype(dtype)
        mask /= mask.sum(axis=self.axis, keepdims=True)
        return mask


class Min(Max):
    _name = "min"

    def _forward(self, x):
        return x.min


def max(x, axis=None, keepdims=False):
    """Maximum of ``x`` over ``axis``.

    Parameters
    ----------
    x : Variable or ndarray
    axis : None, int, or tuple/list of ints
    keepdims : bool

    Returns
    -------
    Variable

    Notes
    -----
    The gradient goes to the elements that attain the maximum; when several do (ties),
    they share it evenly, so the gradient always sums to ``gy``.

    Examples
    --------
    >>> import numpy as np
    >>> max(np.array([[1.0, 5.0], [7.0, 2.0]]), axis=1)
    variable([5. 7.])
    """
    _checks.real("max", x)
    return Max(_checks.axis_arg("max", axis), keepdims)(x)


def min(x, axis=None, keepdims=False):
    """Minimum of ``x`` over ``axis``; ties share the gradient evenly (see ``max``).

    Parameters
    ----------
    x : Variable or ndarray
    axis : None, int, or tuple/list of ints
    keepdims : bool

    Returns
    -------
    Variable

    Examples
    --------
    >>> import numpy as np
    >>> min(np.array([[1.0, 5.0], [7.0, 2.0]]), axis=1)
    variable([1. 2.])
    """
    _checks.real("min", x)
    return Min(_checks.axis_arg("min", axis), keepdims)(x)


# =============================================================================
# logsumexp
# =============================================================================
class LogSumExp(_Reduction):
    def forward(self, x):
        if x.ndim == 0:  # in-place ufuncs need arrays; NumPy turns 0-d results into scalars
            return x.copy()
        xp = cuda.get_array_module(x)
        m = _reduce("logsumexp", x.max, x, self.axis, True)
        # an all -inf slice would give -inf - -inf = nan; shifting by 0 there is exact
        m = xp.where(xp.isfinite(m), m, 0).astype(x.dtype, copy=False)
        y = x - m
        xp.exp(y, out=y)
        s = y.sum(axis=self.axis, keepdims=True)
        xp.log(s, out=s)
        s += m
        if self.keepdims:
            return s
        return s.reshape(()) if self.axis is None else s.squeeze(self.axis)

    def backward_array(self, xs, ys, gys):
        (x,), y, gy = xs, ys[0], gys[0]
        shape = array_utils.reshape_sum_backward(y.shape, x.shape, self.axis, self.keepdims)
        # d/dx logsumexp(x) = softmax(x) = exp(x - y); the exponent is <= 0 (no overflow)
        return gy.reshape(shape) * ops(x).exp(x - y.reshape(shape))


def logsumexp(x, axis=1, keepdims=False):
    """``log(sum(exp(x), axis))`` computed stably (no overflow for large ``x``).

    Parameters
    ----------
    x : Variable or ndarray
    axis : None, int, or tuple/list of ints
        Default 1 (the class axis of a batch of logits), as ``dezero.utils.logsumexp``.
    keepdims : bool
        Keep the reduced axes (``dezero.utils.logsumexp`` always keeps them).

    Returns
    -------
    Variable

    Notes
    -----
    Evaluated as ``m + log(sum(exp(x - m)))`` with ``m = max(x, axis)``.
    d/dx logsumexp(x) = softmax(x) = exp(x - logsumexp(x)).

    Examples
    --------
    >>> import numpy as np
    >>> logsumexp(np.array([[1000.0, 1000.0]]))
    variable([1000.69314718])
    """
    _checks.real("logsumexp", x)
    return LogSumExp(_checks.axis_arg("logsumexp", axis), keepdims)(x)
