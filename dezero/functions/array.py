"""Shape functions: reshape, transpose, broadcast_to, sum_to, where."""

from __future__ import annotations

from dezero import cuda, utils
from dezero.core import Function, Variable, _constant_like, as_variable

__all__ = ["broadcast_to", "reshape", "sum_to", "transpose", "where"]


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape an array of shape {x.shape} (size {x.size}) "
                f"into shape {self.shape}"
            ) from None

    def backward(self, gy):
        return reshape(gy, self.x_shape)


def reshape(x, shape):
    """Give ``x`` a new shape with the same data (``-1`` infers one dimension).

    >>> import numpy as np
    >>> reshape(np.arange(6.0), (2, 3)).shape
    (2, 3)
    """
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(shape)
    if isinstance(x, Variable) and x.shape == shape:
        return x
    return Reshape(shape)(x)


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return transpose(gy)
        n = len(self.axes)
        inv = tuple(sorted(range(n), key=lambda i: self.axes[i] % n))
        return transpose(gy, inv)


def transpose(x, axes=None):
    """Permute the axes of ``x`` (reverse them when ``axes`` is None).

    >>> import numpy as np
    >>> transpose(np.zeros((2, 3, 4)), (1, 0, 2)).shape
    (3, 2, 4)
    """
    if axes is not None:
        axes = tuple(axes)
    return Transpose(axes)(x)


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        xp = cuda.get_array_module(x)
        try:
            return xp.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(
                f"broadcast_to: cannot broadcast an array of shape {x.shape} to shape "
                f"{self.shape}"
            ) from None

    def backward(self, gy):
        return sum_to(gy, self.x_shape)


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` like ``np.broadcast_to``; the gradient sums back.

    >>> import numpy as np
    >>> broadcast_to(np.array([1.0, 2.0]), (3, 2)).shape
    (3, 2)
    """
    shape = tuple(shape)
    if isinstance(x, Variable) and x.shape == shape:
        return x
    return BroadcastTo(shape)(x)


class SumTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return utils.sum_to(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.x_shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (the adjoint of ``broadcast_to``).

    >>> import numpy as np
    >>> sum_to(np.ones((3, 2)), (1, 2))
    variable([[3. 3.]])
    """
    shape = tuple(shape)
    if isinstance(x, Variable) and x.shape == shape:
        return x
    return SumTo(shape)(x)


class Where(Function):
    def __init__(self, condition):
        self.condition = condition

    def forward(self, x0, x1):
        xp = cuda.get_array_module(x0)
        return xp.where(self.condition, x0, x1)

    def backward(self, gy):
        x0, x1 = self.inputs
        zero = gy * 0
        gx0 = where(self.condition, gy, zero)
        gx1 = where(self.condition, zero, gy)
        return sum_to(gx0, x0.shape), sum_to(gx1, x1.shape)


def where(condition, x0, x1):
    """Elementwise ``x0 if condition else x1`` (``condition`` is a boolean array, not traced).

    >>> import numpy as np
    >>> where(np.array([True, False]), np.array([1.0, 2.0]), 0.0)
    variable([1. 0.])
    """
    condition = getattr(condition, "data", condition)
    if not isinstance(x0, Variable) and not isinstance(x1, Variable):
        x0 = as_variable(x0)
    if isinstance(x0, Variable):
        x1 = _constant_like(x1, x0.data)
    else:
        x0 = _constant_like(x0, x1.data)
    return Where(condition)(x0, x1)
