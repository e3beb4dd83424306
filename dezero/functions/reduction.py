"""Reductions: sum."""

from __future__ import annotations

from dezero import utils
from dezero.core import Function

__all__ = ["sum"]


class Sum(Function):
    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.sum(axis=self.axis, keepdims=self.keepdims)
        except Exception as e:  # numpy.exceptions.AxisError
            if type(e).__name__ != "AxisError":
                raise
            raise ValueError(
                f"sum: axis {self.axis} is out of range for an input of shape {x.shape}"
            ) from None

    def backward(self, gy):
        from dezero.functions.array import broadcast_to, reshape

        gy = reshape(gy, utils.reshape_sum_backward(gy.shape, self.x_shape, self.axis,
                                                    self.keepdims))
        return broadcast_to(gy, self.x_shape)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None, an int, or a tuple/list of ints).

    >>> import numpy as np
    >>> sum(np.array([[1.0, 2.0], [3.0, 4.0]]), axis=0)
    variable([4. 6.])
    """
    if isinstance(axis, list):
        axis = tuple(axis)
    return Sum(axis, keepdims)(x)
