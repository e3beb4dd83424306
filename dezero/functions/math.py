"""Elementwise math: square, exp, log, sin, cos, tanh, sqrt, abs, maximum, minimum, clip,
softplus, gelu, astype (any order of derivative)."""

from __future__ import annotations

import numbers

import numpy as np

from dezero import cuda
from dezero.core import (
    Function,
    Variable,
    constant,
    constant_like,
    unbroadcast,
)
from dezero.functions import _checks
from dezero.functions._ops import nograd, ops
from dezero.functions.array import where

__all__ = [
    "abs",
    "astype",
    "clip",
    "cos",
    "exp",
    "log",
    "maximum",
    "minimum",
    "sin",
    "sqrt",
    "square",
    "tanh",
]


# Each gradient is written once, as ``backward_array``: operators and names that arrays and
# Variables share (see _ops.py), so the same formula runs on arrays (no graph) and on
# Variables (create_graph: any order of derivative).
class Square(Function):
    def forward(self, x):
        return x * x

    def backward_array(self, xs, ys, gys):
        x = xs[0]
        return gys[0] * (x + x)  # not x * 2: NumPy 1.x promotes a 0-d float32 times an int


class Exp(Function):
    def forward(self, x):
        return cuda.get_array_module(x).exp(x)

    def backward_array(self, xs, ys, gys):
        return gys[0] * ys[0]


class Log(Function):
    def forward(self, x):
        return cuda.get_array_module(x).log(x)

    def backward_array(self, xs, ys, gys):
        return gys[0] / xs[0]


class Sin(Function):
    def forward(self, x):
        return cuda.get_array_module(x).sin(x)

    def backward_array(self, xs, ys, gys):
        x = xs[0]
        return gys[0] * ops(x).cos(x)


class Cos(Function):
    def forward(self, x):
        return cuda.get_array_module(x).cos(x)

    def backward_array(self, xs, ys, gys):
        x = xs[0]
        return -gys[0] * ops(x).sin(x)


class Tanh(Function):
    def forward(self, x):
        return cuda.get_array_module(x).tanh(x)

    def backward_array(self, xs, ys, gys):
        y = ys[0]
        # the book's formula (its graph is the book's picture of tanh's derivatives);
        # unbroadcast casts back where NumPy 1.x promotes a 0-d float32 minus a Python int
        return unbroadcast(gys[0] * (1 - y * y), y)


class Sqrt(Function):
    def forward(self, x):
        return cuda.get_array_module(x).sqrt(x)

    def backward_array(self, xs, ys, gys):
        y = ys[0]
        return gys[0] / (y + y)


class AsType(Function):
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward_array(self, xs, ys, gys):
        return gys[0].astype(self.in_dtype)


def square(x):
    """Elementwise square ``x * x``.

    Notes: d/dx x^2 = 2x.

    >>> import numpy as np
    >>> square(np.array([1.0, 2.0]))
    variable([1. 4.])
    """
    return Square()(x)


def exp(x):
    """Elementwise ``e ** x``; d/dx e^x = e^x.

    >>> import numpy as np
    >>> exp(np.array(0.0))
    variable(1.0)
    """
    return Exp()(x)


def log(x):
    """Elementwise natural logarithm; d/dx log x = 1 / x.

    >>> import numpy as np
    >>> log(np.array(1.0))
    variable(0.0)
    """
    return Log()(x)


def sin(x):
    """Elementwise sine; d/dx sin x = cos x.

    >>> import numpy as np
    >>> sin(np.array(0.0))
    variable(0.0)
    """
    return Sin()(x)


def cos(x):
    """Elementwise cosine; d/dx cos x = -sin x.

    >>> import numpy as np
    >>> cos(np.array(0.0))
    variable(1.0)
    """
    return Cos()(x)


def tanh(x):
    """Elementwise hyperbolic tangent; d/dx tanh x = 1 - tanh(x)^2.

    >>> import numpy as np
    >>> tanh(np.array(0.0))
    variable(0.0)
    """
    return Tanh()(x)


def sqrt(x):
    """Elementwise square root; d/dx sqrt x = 1 / (2 sqrt x).

    >>> import numpy as np
    >>> sqrt(np.array(4.0))
    variable(2.0)
    """
    return Sqrt()(x)


def astype(x, dtype):
    """Cast to ``dtype``; the gradient is cast back to the input's dtype.

    >>> import numpy as np
    >>> astype(np.array([1.0]), np.float32).dtype
    dtype('float32')
    """
    if isinstance(x, Variable) and x.dtype == dtype:
        return x
    return AsType(dtype)(x)


# =============================================================================
# Piecewise ops: abs, maximum, minimum, clip
# =============================================================================
class Abs(Function):
    def forward(self, x):
        return cuda.get_array_module(x).abs(x)

    def backward_array(self, xs, ys, gys):
        # sign(x) is a constant of the graph: |x| is piecewise linear (gradient 0 at x == 0)
        return gys[0] * nograd(lambda x: ops(x).sign(x), xs[0])


class Maximum(Function):
    def forward(self, x0, x1):
        return cuda.get_array_module(x0).maximum(x0, x1)

    def backward_array(self, xs, ys, gys):
        (x0, x1), gy = xs, gys[0]
        w0 = nograd(lambda a, b: _select_weights(a > b, a == b, gy.dtype), x0, x1)
        return unbroadcast(gy * w0, x0), unbroadcast(gy * (1 - w0), x1)


class Minimum(Function):
    def forward(self, x0, x1):
        return cuda.get_array_module(x0).minimum(x0, x1)

    def backward_array(self, xs, ys, gys):
        (x0, x1), gy = xs, gys[0]
        w0 = nograd(lambda a, b: _select_weights(a < b, a == b, gy.dtype), x0, x1)
        return unbroadcast(gy * w0, x0), unbroadcast(gy * (1 - w0), x1)


def _select_weights(wins, ties, dtype):
    """Share of the gradient that goes to the first operand: 1 where it wins, 1/2 on ties
    (a constant of the graph)."""
    w = wins.astype(dtype)
    w += ties.astype(dtype) * 0.5
    return w


class Clip(Function):
    def __init__(self, x_min, x_max):
        self.x_min = x_min
        self.x_max = x_max

    def forward(self, x):
        return cuda.get_array_module(x).clip(x, self.x_min, self.x_max)

    def backward_array(self, xs, ys, gys):
        gy = gys[0]
        return gy * nograd(lambda x: self._inside(x).astype(gy.dtype), xs[0])

    def _inside(self, x):
        """Where the gradient passes (a constant of the graph)."""
        if self.x_min is None:
            return x <= self.x_max
        if self.x_max is None:
            return x >= self.x_min
        return (x >= self.x_min) & (x <= self.x_max)


def abs(x):
    """Elementwise absolute value ``|x|``.

    Parameters
    ----------
    x : Variable or ndarray

    Returns
    -------
    Variable
        ``|x|``, same shape and dtype.

    Notes
    -----
    d/dx |x| = sign(x), taken as 0 at x = 0.

    Examples
    --------
    >>> import numpy as np
    >>> abs(np.array([-1.5, 2.0]))
    variable([1.5 2. ])
    """
    return Abs()(x)


def maximum(x0, x1):
    """Elementwise maximum of ``x0`` and ``x1`` (broadcasting like ``np.maximum``).

    Parameters
    ----------
    x0, x1 : Variable, ndarray or scalar
        Python/NumPy scalars take the other operand's dtype.

    Returns
    -------
    Variable

    Notes
    -----
    The gradient flows to the larger operand; where both are equal it is split evenly
    (1/2 each), so that ``maximum(x, x)`` has gradient 1 with respect to ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> maximum(np.array([1.0, -2.0]), 0.0)
    variable([1. 0.])
    """
    x0, x1 = _pair("maximum", x0, x1)
    return Maximum()(x0, x1)


def minimum(x0, x1):
    """Elementwise minimum of ``x0`` and ``x1`` (broadcasting like ``np.minimum``).

    Parameters
    ----------
    x0, x1 : Variable, ndarray or scalar
        Python/NumPy scalars take the other operand's dtype.

    Returns
    -------
    Variable

    Notes
    -----
    The gradient flows to the smaller operand; ties split it evenly (1/2 each).

    Examples
    --------
    >>> import numpy as np
    >>> minimum(np.array([1.0, -2.0]), 0.0)
    variable([ 0. -2.])
    """
    x0, x1 = _pair("minimum", x0, x1)
    return Minimum()(x0, x1)


class Pow(Function):
    """``x ** c`` for a constant exponent ``c``."""

    def __init__(self, c):
        # a NumPy float64 scalar exponent must not promote a float32 base
        self.c = c.item() if isinstance(c, np.generic) else c

    def forward(self, x):
        c = self.c
        if c == 2:
            return x * x
        if x.dtype.kind == "f" and not float(c).is_integer() and x.size:
            xp = cuda.get_array_module(x)
            if bool(xp.any(x < 0)):
                raise ValueError(
                    f"pow: negative base with the non-integer exponent {c} has no real value"
                )
        return x**c

    def backward_array(self, xs, ys, gys):
        (x,), gy, c = xs, gys[0], self.c
        if c == 2:
            return gy * (x + x)
        # unbroadcast casts back where NumPy 1.x promotes a 0-d float32 with the scalars
        return unbroadcast(gy * (x ** (c - 1) * c), x)


class PowVar(Function):
    """``x0 ** x1`` with a differentiable exponent: d/dx1 = x0 ** x1 * log(x0)."""

    def forward(self, x0, x1):
        xp = cuda.get_array_module(x0)
        if x0.dtype.kind == "f" and x0.size and bool(xp.any(x0 < 0)):
            x1b = xp.broadcast_to(x1, xp.broadcast_shapes(x0.shape, x1.shape))
            x0b = xp.broadcast_to(x0, x1b.shape)
            if bool(xp.any((x0b < 0) & (x1b != xp.round(x1b)))):
                raise ValueError(
                    "pow: negative base with a non-integer exponent has no real value"
                )
        return x0**x1

    def backward(self, gy):
        x0, x1 = self.inputs
        y = self.outputs[0]()
        gx0 = gy * x1 * x0 ** (x1 - 1)
        # d/dx1 needs log(x0); where x0 <= 0 the exponent must be an integer and the
        # gradient with respect to it is taken as 0, as in NumPy-based frameworks.
        positive = x0.data > 0
        safe = x0 if bool(positive.all()) else where(positive, x0, 1.0)
        gx1 = gy * y * log(safe)
        return unbroadcast(gx0, x0), unbroadcast(gx1, x1)


def _power(x, c):
    """``x ** c`` (installed as ``Variable.__pow__``): a scalar exponent is a constant, a
    Variable or array exponent is differentiable."""
    if isinstance(c, (numbers.Number, np.generic)):
        return Pow(c)(x)
    if isinstance(c, cuda.array_types) and c.ndim == 0:
        return Pow(c.item())(x)
    if isinstance(c, (Variable, *cuda.array_types)):
        return PowVar()(x, constant_like(c, x.data))
    raise TypeError(f"unsupported exponent type for pow: {type(c).__name__}")


def _rpower(x, c):
    """``c ** x`` (installed as ``Variable.__rpow__``): the base ``c`` is a constant."""
    return PowVar()(constant_like(c, x.data), x)


def _pair(name, x0, x1):
    """The operands of an elementwise comparison, scalars in the other operand's dtype."""
    _checks.real(name, x0)
    _checks.real(name, x1)
    if not isinstance(x0, Variable) and isinstance(x1, Variable):
        return constant_like(x0, x1.data), x1
    x0 = constant(x0)
    return x0, constant_like(x1, x0.data)


def clip(x, x_min, x_max):
    """Clip ``x`` elementwise to ``[x_min, x_max]`` (either bound may be None).

    Parameters
    ----------
    x : Variable or ndarray
    x_min, x_max : float or None
        Bounds (scalars); they never change ``x``'s dtype.

    Returns
    -------
    Variable

    Notes
    -----
    The gradient is ``gy`` where ``x_min <= x <= x_max`` (bounds included, as in the book)
    and 0 outside.

    Examples
    --------
    >>> import numpy as np
    >>> clip(np.array([-2.0, 0.5, 3.0]), 0.0, 1.0)
    variable([0.  0.5 1. ])
    """
    _checks.real("clip", x)
    if x_min is None and x_max is None:
        raise ValueError("clip: x_min and x_max cannot both be None")
    # NumPy scalars would promote a float32 array under NumPy 2; Python scalars do not
    if isinstance(x_min, np.generic):
        x_min = x_min.item()
    if isinstance(x_max, np.generic):
        x_max = x_max.item()
    if x_min is not None and x_max is not None and x_min > x_max:
        raise ValueError(f"clip: x_min ({x_min}) is larger than x_max ({x_max})")
    return Clip(x_min, x_max)(x)


_MOVED = ("GELU", "Softplus", "GELU_A", "GELU_C", "gelu", "softplus")


def __getattr__(name):
    # softplus and gelu moved to dezero.functions.activation; their old import path still
    # works (imported here lazily: activation imports this module)
    if name in _MOVED:
        from dezero.functions import activation

        return getattr(activation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
