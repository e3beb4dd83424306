"""Linear algebra: matmul (batched, broadcasting like np.matmul)."""

from __future__ import annotations

from dezero.core import Function, as_variable

__all__ = ["matmul"]


def _swap_last(x):
    from dezero.functions.array import transpose

    if x.ndim < 2:
        return x
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(x, axes)


def _shape_str(shape):
    return "(" + "x".join(str(s) for s in shape) + ")"


class MatMul(Function):
    def forward(self, x, W):
        if x.shape[-1] != W.shape[-2]:
            raise ValueError(
                f"matmul: shapes {_shape_str(x.shape)} and {_shape_str(W.shape)} are "
                f"incompatible (inner dimensions {x.shape[-1]} != {W.shape[-2]})"
            )
        return x @ W

    def backward(self, gy):
        from dezero.functions.array import sum_to

        x, W = self.inputs
        gx = matmul(gy, _swap_last(W))
        gW = matmul(_swap_last(x), gy)
        if gx.shape != x.shape:
            gx = sum_to(gx, x.shape)
        if gW.shape != W.shape:
            gW = sum_to(gW, W.shape)
        return gx, gW


def matmul(x, W):
    """Matrix product ``x @ W``; batched and broadcasting like ``np.matmul``.

    Raises ValueError naming both shapes when the inner dimensions differ.

    >>> import numpy as np
    >>> matmul(np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    """
    from dezero.functions.array import reshape

    x, W = as_variable(x), as_variable(W)
    if x.ndim == 0 or W.ndim == 0:
        raise ValueError("matmul: operands must have at least one dimension (use * for scalars)")
    if x.ndim == 1 and W.ndim == 1:
        return reshape(MatMul()(reshape(x, (1, -1)), reshape(W, (-1, 1))), ())
    if x.ndim == 1:
        y = MatMul()(reshape(x, (1, -1)), W)
        return reshape(y, y.shape[:-2] + y.shape[-1:])
    if W.ndim == 1:
        y = MatMul()(x, reshape(W, (-1, 1)))
        return reshape(y, y.shape[:-1])
    return MatMul()(x, W)
