"""Elementwise math: square, exp, log, sin, cos, tanh, sqrt, astype (any order of derivative)."""

from __future__ import annotations

import numpy as np

from dezero import cuda
from dezero.core import Function, Variable

__all__ = ["astype", "cos", "exp", "log", "sin", "sqrt", "square", "tanh"]


class Square(Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        (x,) = self.inputs
        return gy * x * 2


class Exp(Function):
    def forward(self, x):
        return cuda.get_array_module(x).exp(x)

    def backward(self, gy):
        return gy * self.outputs[0]()


class Log(Function):
    def forward(self, x):
        return cuda.get_array_module(x).log(x)

    def backward(self, gy):
        (x,) = self.inputs
        return gy / x


class Sin(Function):
    def forward(self, x):
        return cuda.get_array_module(x).sin(x)

    def backward(self, gy):
        (x,) = self.inputs
        return gy * cos(x)


class Cos(Function):
    def forward(self, x):
        return cuda.get_array_module(x).cos(x)

    def backward(self, gy):
        (x,) = self.inputs
        return gy * -sin(x)


class Tanh(Function):
    def forward(self, x):
        return cuda.get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * (1 - y * y)


class Sqrt(Function):
    def forward(self, x):
        return cuda.get_array_module(x).sqrt(x)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy / (y * 2)


class AsType(Function):
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward(self, gy):
        return astype(gy, self.in_dtype)


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
