"""Activations: sigmoid, relu, leaky_relu, softplus, gelu, softmax, log_softmax (and the
book's composites).

Each fused op computes its forward on arrays in a numerically stable way and writes its
backward with dezero functions, so derivatives of any order work. The composites
``sigmoid_simple`` and ``softmax_simple`` are the book's versions; they overflow for large
inputs and are kept as test oracles for the fused ops.
"""

from __future__ import annotations

import numpy as np

from dezero import array_utils, cuda
from dezero.core import Function, as_variable
from dezero.functions import _checks
from dezero.functions._ops import nograd, ops
from dezero.functions.math import exp, tanh
from dezero.functions.reduction import sum as _sum

__all__ = [
    "gelu",
    "leaky_relu",
    "log_softmax",
    "relu",
    "sigmoid",
    "sigmoid_simple",
    "softmax",
    "softmax_simple",
    "softplus",
]


def _check_axis(name, x, axis):
    """Raise a ValueError naming the op when ``axis`` is out of range for ``x``."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise ValueError(
                f"{name}: axis {axis} is out of range for an input of shape {x.shape}"
            )


# =============================================================================
# sigmoid
# =============================================================================
class Sigmoid(Function):
    def forward(self, x):
        xp = cuda.get_array_module(x)
        # 1 / (1 + exp(-x)) overflows in exp for x << 0. With e = exp(-|x|) <= 1 nothing
        # overflows, and e / (1 + e) keeps full relative precision in the left tail
        # (0.5 * tanh(x / 2) + 0.5, also stable, rounds sigmoid(-50) = 2e-22 to 0).
        e = xp.exp(-xp.abs(x))
        one = x.dtype.type(1)  # typed, so that a 0-d float32 stays float32 on NumPy 1.x
        return xp.where(x >= 0, one, e) / (one + e)

    def backward(self, gy):
        y = self.outputs[0]()
        if y is None:  # the output was dropped: rebuild it (only reached by exotic uses)
            y = sigmoid(self.inputs[0])
        return gy * y * (1 - y)


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed stably.

    Parameters
    ----------
    x : Variable or ndarray
        Input of any shape.

    Returns
    -------
    Variable
        ``sigmoid(x)`` elementwise, same shape and dtype as ``x``.

    Notes
    -----
    Computed as ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` for ``x < 0`` with
    ``e = exp(-|x|)``: nothing overflows (the direct form overflows in ``exp(-x)`` for
    large negative ``x``) and small outputs keep their relative precision.
    Derivative: ``d/dx sigmoid(x) = y (1 - y)`` with ``y = sigmoid(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid(np.array([0.0, 1e4, -1e4]))
    variable([0.5 1.  0. ])
    """
    _checks.real("sigmoid", x)
    return Sigmoid()(x)


def sigmoid_simple(x):
    """The book's composite sigmoid ``1 / (1 + exp(-x))``; overflows for ``x`` << 0.

    Kept as the oracle of :func:`sigmoid` (prefer that one).

    Parameters
    ----------
    x : Variable or ndarray

    Returns
    -------
    Variable

    Notes
    -----
    Built from exp, add and div, so its derivative ``y (1 - y)`` comes from the chain rule.

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid_simple(np.array([0.0]))
    variable([0.5])
    """
    x = as_variable(x)
    return 1 / (1 + exp(-x))


# =============================================================================
# relu, leaky_relu
# =============================================================================
class ReLU(Function):
    def forward(self, x):
        xp = cuda.get_array_module(x)
        return xp.maximum(x, x.dtype.type(0))

    def backward_array(self, xs, ys, gys):
        gy = gys[0]
        # the mask is a constant of the graph (relu'' = 0 away from the kink); cast, because
        # NumPy's mixed float * bool loop is slower than a cast and a same-dtype multiply
        return gy * nograd(lambda x: (x > 0).astype(gy.dtype), xs[0])


def relu(x):
    """Rectified linear unit ``max(x, 0)``.

    Parameters
    ----------
    x : Variable or ndarray

    Returns
    -------
    Variable
        Same shape and dtype as ``x``.

    Notes
    -----
    Derivative: 1 where ``x > 0``, else 0 (0 is used at the kink ``x = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> relu(np.array([-1.0, 2.0]))
    variable([0. 2.])
    """
    _checks.real("relu", x)
    return ReLU()(x)


class LeakyReLU(Function):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        xp = cuda.get_array_module(x)
        # a typed slope: NumPy 1.x turns a 0-d float32 times a Python float into float64
        return xp.where(x > 0, x, x * x.dtype.type(self.slope))

    def backward_array(self, xs, ys, gys):
        gy, slope = gys[0], self.slope
        # the slopes are a constant of the graph
        return gy * nograd(lambda x: ops(x).where(x > 0, 1.0, slope).astype(gy.dtype), xs[0])


def leaky_relu(x, slope: float = 0.2):
    """Leaky ReLU: ``x`` where ``x > 0``, else ``slope * x``.

    Parameters
    ----------
    x : Variable or ndarray
    slope : float
        Gradient for negative inputs (default 0.2, as in the book).

    Returns
    -------
    Variable
        Same shape and dtype as ``x``.

    Notes
    -----
    Derivative: 1 where ``x > 0``, else ``slope``.

    Examples
    --------
    >>> import numpy as np
    >>> leaky_relu(np.array([-1.0, 2.0]))
    variable([-0.2  2. ])
    """
    # a NumPy float64 slope would promote float32 data: keep it a Python float
    _checks.real("leaky_relu", x)
    return LeakyReLU(float(slope))(x)


# =============================================================================
# softplus, gelu
# =============================================================================
class Softplus(Function):
    def forward(self, x):
        if x.ndim == 0:  # in-place ufuncs need arrays; NumPy turns 0-d results into scalars
            return self.forward(x.reshape(1)).reshape(())
        xp = cuda.get_array_module(x)
        # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large |x|
        y = xp.abs(x)
        xp.negative(y, out=y)
        xp.exp(y, out=y)
        xp.log1p(y, out=y)
        y += xp.maximum(x, 0)
        return y

    def backward_array(self, xs, ys, gys):
        x, y = xs[0], ys[0]
        # sigmoid(x) = exp(x - softplus(x)); the exponent is <= 0, so this never overflows
        return gys[0] * ops(x).exp(x - y)


GELU_C = float(np.sqrt(2.0 / np.pi))
GELU_A = 0.044715


class GELU(Function):
    def forward(self, x):
        if x.ndim == 0:  # in-place ufuncs need arrays; NumPy turns 0-d results into scalars
            return self.forward(x.reshape(1)).reshape(())
        xp = cuda.get_array_module(x)
        c = GELU_C
        a = GELU_A
        t = x * x
        t *= a * c
        t += c
        t *= x  # c (x + a x^3)
        xp.tanh(t, out=t)
        self.th = t  # tanh(u), kept for the array backward (cheaper than a second tanh)
        y = t + 1
        y *= x
        y *= 0.5
        return y

    # both forms: the array form works in place on the tanh forward saved (memory, no 2nd tanh)
    def backward(self, gy):
        (x,) = self.inputs
        x2 = x * x
        t = tanh(x * (x2 * (GELU_A * GELU_C) + GELU_C))
        du = x2 * (3 * GELU_A * GELU_C) + GELU_C
        return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)

    def backward_array(self, xs, ys, gys):
        # the same formula in place, with the tanh saved by forward
        (x,), (gy,) = xs, gys
        if x.ndim == 0:  # in-place ufuncs need arrays (self.th is already 1-d then)
            return self.backward_array([x.reshape(1)], ys, [gy.reshape(1)]).reshape(())
        th = self.th
        xp = cuda.get_array_module(x)
        du = x * x
        du *= 3 * GELU_A * GELU_C
        du += GELU_C
        g = th * th
        xp.subtract(1, g, out=g)
        g *= x
        g *= du
        g += 1
        g += th
        g *= 0.5
        g *= gy
        return g


def softplus(x):
    """Elementwise softplus ``log(1 + exp(x))``, computed stably.

    Parameters
    ----------
    x : Variable or ndarray

    Returns
    -------
    Variable

    Notes
    -----
    Evaluated as ``max(x, 0) + log1p(exp(-|x|))``, finite for any finite ``x``.
    d/dx softplus(x) = sigmoid(x) = exp(x - softplus(x)).

    Examples
    --------
    >>> import numpy as np
    >>> softplus(np.array([0.0, 1000.0]))
    variable([6.93147181e-01 1.00000000e+03])
    """
    return Softplus()(x)


def gelu(x):
    """Elementwise GELU in its tanh form (erf-free), as in GPT-2 and BERT.

    Parameters
    ----------
    x : Variable or ndarray

    Returns
    -------
    Variable

    Notes
    -----
    gelu(x) = x/2 (1 + tanh(u)), u = c (x + a x^3), c = sqrt(2/pi), a = 0.044715.
    d/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) c (1 + 3 a x^2).

    Examples
    --------
    >>> import numpy as np
    >>> gelu(np.array([0.0, 1.0]))
    variable([0.         0.84119199])
    """
    return GELU()(x)


# =============================================================================
# softmax, log_softmax
# =============================================================================
class Softmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        _check_axis("softmax", x, self.axis)
        xp = cuda.get_array_module(x)
        y = x - x.max(axis=self.axis, keepdims=True)  # shift: exp never overflows
        xp.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)
        return y

    def backward_array(self, xs, ys, gys):
        y = ys[0]
        gx = y * gys[0]
        return gx - y * gx.sum(axis=self.axis, keepdims=True)


def softmax(x, axis=1):
    """Softmax along ``axis``: ``exp(x) / sum(exp(x), axis)``, computed stably.

    Parameters
    ----------
    x : Variable or ndarray
    axis : int or tuple of int
        Axis (or axes) to normalise over (default 1, the class axis of an ``(N, C)`` batch).

    Returns
    -------
    Variable
        Same shape and dtype as ``x``; sums to 1 along ``axis``.

    Notes
    -----
    The maximum along ``axis`` is subtracted before ``exp``, so no input overflows.
    Derivative (vector-Jacobian product): ``gx = y * gy - y * sum(y * gy, axis)``.

    Examples
    --------
    >>> import numpy as np
    >>> softmax(np.array([[0.0, 0.0], [1e4, 0.0]]))
    variable([[0.5 0.5]
              [1.  0. ]])
    """
    _checks.real("softmax", x)
    return Softmax(_checks.axis_arg("softmax", axis))(x)


def softmax_simple(x, axis=1):
    """The book's composite softmax ``exp(x) / sum(exp(x), axis)``; overflows for large x.

    Kept as the oracle of :func:`softmax` (prefer that one).

    Parameters
    ----------
    x : Variable or ndarray
    axis : int or tuple of int

    Returns
    -------
    Variable

    Notes
    -----
    Built from exp, sum and div; derivatives come from the chain rule.

    Examples
    --------
    >>> import numpy as np
    >>> softmax_simple(np.array([[0.0, 0.0]]))
    variable([[0.5 0.5]])
    """
    x = as_variable(x)
    _checks.real("softmax_simple", x)
    y = exp(x)
    return y / _sum(y, axis=_checks.axis_arg("softmax_simple", axis), keepdims=True)


class LogSoftmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        _check_axis("log_softmax", x, self.axis)
        return x - array_utils.logsumexp(x, axis=self.axis)

    def backward_array(self, xs, ys, gys):
        y, gy = ys[0], gys[0]
        return gy - ops(y).exp(y) * gy.sum(axis=self.axis, keepdims=True)


def log_softmax(x, axis=1):
    """Logarithm of the softmax along ``axis``, fused and stable: ``x - logsumexp(x, axis)``.

    Parameters
    ----------
    x : Variable or ndarray
    axis : int or tuple of int
        Axis (or axes) to normalise over (default 1).

    Returns
    -------
    Variable
        Same shape and dtype as ``x``.

    Notes
    -----
    ``logsumexp`` subtracts the maximum first, so the result is finite for any finite input
    (``log(softmax(x))`` gives ``-inf`` where the softmax underflows).
    Derivative: ``gx = gy - softmax(x) * sum(gy, axis)`` with ``softmax(x) = exp(y)``.

    Examples
    --------
    >>> import numpy as np
    >>> log_softmax(np.array([[0.0, 0.0], [1e4, 0.0]]))
    variable([[-6.93147181e-01 -6.93147181e-01]
              [ 0.00000000e+00 -1.00000000e+04]])
    """
    _checks.real("log_softmax", x)
    return LogSoftmax(_checks.axis_arg("log_softmax", axis))(x)
