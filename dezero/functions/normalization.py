"""Normalization: batch_norm (and the book's spelling batch_nrom), layer_norm."""

from __future__ import annotations

import numpy as np

from dezero import cuda
from dezero.core import Config, Function, Variable, as_variable, constant, unbroadcast
from dezero.functions.array import reshape
from dezero.functions.math import sqrt
from dezero.functions.reduction import mean as _mean
from dezero.functions.reduction import sum as _sum

__all__ = ["batch_norm", "batch_nrom", "layer_norm"]


def _bn_axes(ndim):
    """Reduction axes (all but the channel axis 1) and the shape that broadcasts per channel."""
    axes = (0, *range(2, ndim))
    return axes


def _per_channel(a, ndim):
    """(C,) -> (1, C, 1, ...) so that it broadcasts over an ndim-D input."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


class BatchNorm(Function):
    """Training-mode batch normalization with batch statistics.

    Updates the running ``mean``/``var`` arrays in place (unbiased variance for the running
    estimate). backward: a fused formula on the saved x_hat when no graph of the backward is
    needed; otherwise the same formula written with dezero ops, recomputing x_hat from x,
    so that derivatives of any order are exact.
    """

    def __init__(self, mean, var, decay, eps):
        self.avg_mean = mean
        self.avg_var = var
        self.decay = decay
        self.eps = eps

    def forward(self, x, gamma, beta):
        xp = cuda.get_array_module(x)
        nd = x.ndim
        axes = _bn_axes(nd)
        m = x.size // x.shape[1]
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=axes, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = xc * inv_std
        y = xhat * _per_channel(gamma, nd) + _per_channel(beta, nd)

        decay = self.decay
        adjust = m / max(m - 1, 1)  # unbiased estimate for the running variance
        self.avg_mean *= decay
        self.avg_mean += (1 - decay) * mu.reshape(-1)
        self.avg_var *= decay
        self.avg_var += ((1 - decay) * adjust) * var.reshape(-1)

        self.xhat = xhat
        self.inv_std = inv_std
        self.m = m
        return y

    # both forms: the array form reuses forward's x_hat and 1/std; the Variable one recomputes
    def backward(self, gy):
        x, gamma, _ = self.inputs
        nd = x.ndim
        axes = _bn_axes(nd)
        m = self.m
        # the fused formula again, differentiable in x and gamma (recomputed from x)
        mu = _sum(x, axis=axes, keepdims=True) / m
        xc = x - mu
        var = _sum(xc * xc, axis=axes, keepdims=True) / m
        inv_std = (var + self.eps) ** -0.5
        xhat = xc * inv_std
        gbeta = _sum(gy, axis=axes)
        ggamma = _sum(gy * xhat, axis=axes)
        shape = (1, -1) + (1,) * (nd - 2)
        gx = (reshape(gamma, shape) * inv_std) * (
            gy - (reshape(gbeta, shape) + xhat * reshape(ggamma, shape)) / m
        )
        return gx, ggamma, gbeta

    def backward_array(self, xs, ys, gys):
        # first order: the fused formula on the arrays saved by forward
        x, gamma = xs[:2]
        g = gys[0]
        nd = x.ndim
        axes = _bn_axes(nd)
        xhat = self.xhat
        gbeta = g.sum(axis=axes)
        ggamma = (g * xhat).sum(axis=axes)
        scale = _per_channel(gamma, nd) * self.inv_std
        gx = scale * (g - (_per_channel(gbeta, nd) + xhat * _per_channel(ggamma, nd))
                      * (1.0 / self.m))
        return gx, ggamma, gbeta


def _check_bn(x, gamma, beta, mean, var):
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm: expected an input of shape (N, C) or (N, C, H, W), got {x.shape}"
        )
    C = x.shape[1]
    for name, a in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        if tuple(a.shape) != (C,):
            raise ValueError(
                f"batch_norm: {name} must have shape ({C},) for an input with {C} channels "
                f"(x.shape = {x.shape}), got {tuple(a.shape)}"
            )


def batch_norm(x, gamma, beta, mean, var, decay=0.9, eps=2e-5) -> Variable:
    """Batch normalization over every axis but the channel axis 1.

    Parameters
    ----------
    x : Variable or ndarray, shape (N, C) or (N, C, H, W)
    gamma, beta : Variable or ndarray, shape (C,)
        Scale and shift.
    mean, var : ndarray (or a Variable holding one), shape (C,)
        Running statistics, never differentiated. In training mode
        (``dezero.Config.train``) they are updated in place:
        ``mean = decay mean + (1 - decay) mu`` and the same for ``var`` with the unbiased
        batch variance. In test mode they normalize x and are left untouched.
    decay : float
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    Variable of x's shape.

    Notes
    -----
    Train: y = gamma x_hat + beta, x_hat = (x - mu) / sqrt(sigma^2 + eps) with the batch's
    mean mu and biased variance sigma^2 (over N, H, W);
    dx = gamma / sqrt(sigma^2 + eps) (gy - mean(gy) - x_hat mean(gy x_hat)),
    dgamma = sum(gy x_hat), dbeta = sum(gy). Any order of derivative is exact.
    Test: y = gamma (x - mean) / sqrt(var + eps) + beta, an affine map of x whose
    gradients are exact too.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> mean, var = np.zeros(2), np.ones(2)
    >>> batch_norm(x, np.ones(2), np.zeros(2), mean, var, eps=0.0)
    variable([[-1. -1.]
              [ 1.  1.]])
    >>> mean
    array([0.2, 2. ])
    """
    x = as_variable(x)
    mean = mean.data if isinstance(mean, Variable) else mean
    var = var.data if isinstance(var, Variable) else var
    _check_bn(x, gamma, beta, mean, var)
    if Config.train:
        return BatchNorm(mean, var, decay, eps)(x, gamma, beta)

    # test mode: an affine map of x built from dezero ops (exact gradients, any order). The
    # statistics enter as constant Variables, so that a trace (dezero.onnx) sees the buffers.
    xp = cuda.get_array_module(x.data)
    dtype = x.dtype
    mean = constant(xp.asarray(mean, dtype=dtype))
    inv_std = 1.0 / sqrt(constant(xp.asarray(var, dtype=dtype)) + eps)
    gamma, beta = as_variable(gamma), as_variable(beta)
    scale = gamma * inv_std
    shift = beta - scale * mean
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * reshape(scale, shape) + reshape(shift, shape)


def batch_nrom(x, gamma, beta, mean, var, decay=0.9, eps=2e-5) -> Variable:
    """The book's spelling of :func:`batch_norm` (same function).

    >>> import numpy as np
    >>> batch_nrom(np.ones((2, 3)), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)).shape
    (2, 3)
    """
    return batch_norm(x, gamma, beta, mean, var, decay, eps)


class LayerNorm(Function):
    """Layer normalization over the last axis, fused (see :func:`layer_norm`).

    Forward keeps x_hat and 1/sqrt(var + eps). backward: a fused formula on them when no
    graph of the backward is needed; otherwise the same formula with dezero ops,
    recomputing x_hat from x, so that derivatives of any order are exact.
    """

    def __init__(self, eps):
        self.eps = eps

    def forward(self, x, gamma, beta):
        xp = cuda.get_array_module(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
        C = x.shape[-1]
        # means over the features as a GEMV and a row-wise dot: far faster than mean(-1)
        mu = (x @ xp.full(C, 1.0 / C, dtype=x.dtype))[..., None]
        xc = x - mu
        var = xp.einsum("...i,...i->...", xc, xc)[..., None]
        var *= 1.0 / C
        var += self.eps
        inv_std = xp.sqrt(var, out=var)
        xp.reciprocal(inv_std, out=inv_std)
        xc *= inv_std
        self.xhat = xc
        self.inv_std = inv_std
        y = xc * gamma
        y += beta
        return y

    # both forms: the array form reuses forward's x_hat, 1/std, in place; the Variable recomputes
    def backward(self, gy):
        x, gamma, beta = self.inputs
        lead = tuple(range(x.ndim - 1))
        mu = _mean(x, axis=-1, keepdims=True)
        xc = x - mu
        inv_std = (_mean(xc * xc, axis=-1, keepdims=True) + self.eps) ** -0.5
        xhat = xc * inv_std
        gbeta = unbroadcast(_sum(gy, axis=lead), beta) if beta.requires_grad else None
        ggamma = (unbroadcast(_sum(gy * xhat, axis=lead), gamma) if gamma.requires_grad
                  else None)
        gxhat = gy * gamma
        gx = inv_std * (gxhat - _mean(gxhat, axis=-1, keepdims=True)
                        - xhat * _mean(gxhat * xhat, axis=-1, keepdims=True))
        return unbroadcast(gx, x), ggamma, gbeta

    def backward_array(self, xs, ys, gys):
        (x, gamma, beta), (g,) = xs, gys
        need_x, need_gamma, need_beta = (v.requires_grad for v in self.inputs)
        C = x.shape[-1]
        xhat = self.xhat
        gbeta = unbroadcast(g.reshape(-1, C).sum(axis=0), beta) if need_beta else None
        g_xhat = g * xhat
        ggamma = unbroadcast(g_xhat.reshape(-1, C).sum(axis=0), gamma) if need_gamma else None
        gx = None
        if need_x:
            # mean(g gamma) and mean(g gamma xhat) over the features as matrix-vector
            # products: no (N, C) temporaries
            a = (g @ gamma)[..., None]
            a *= 1.0 / C
            b = (g_xhat @ gamma)[..., None]
            b *= 1.0 / C
            gx = g * gamma
            gx -= a
            xp = cuda.get_array_module(g)
            gx -= xp.multiply(xhat, b, out=g_xhat)  # g_xhat is not needed any more
            gx *= self.inv_std
            gx = unbroadcast(gx, x)
        return gx, ggamma, gbeta


def layer_norm(x, gamma, beta, eps: float = 1e-5) -> Variable:
    """Layer normalization over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``.

    Parameters
    ----------
    x : Variable or ndarray, shape (..., C)
    gamma, beta : Variable or ndarray, shape (C,)
        Scale and shift.
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    Variable of x's shape.

    Raises
    ------
    ValueError
        When gamma or beta do not have shape (C,).

    Notes
    -----
    Mean and (biased) variance are taken over the last axis of each row; the same in
    training and test mode. With x_hat = (x - mu) / sqrt(sigma^2 + eps):
    dx = (gx_hat - mean(gx_hat) - x_hat mean(gx_hat x_hat)) / sqrt(sigma^2 + eps) with
    gx_hat = gy gamma, dgamma = sum(gy x_hat), dbeta = sum(gy) (over the leading axes).
    One fused op; any order of derivative is exact.

    Examples
    --------
    >>> import numpy as np
    >>> y = layer_norm(np.array([[1.0, 2.0, 3.0]]), np.ones(3), np.zeros(3), eps=0.0)
    >>> np.round(y.data, 4)
    array([[-1.2247,  0.    ,  1.2247]])
    """
    x = as_variable(x)
    C = x.shape[-1] if x.ndim else None
    for name, a in (("gamma", gamma), ("beta", beta)):
        if C is None or tuple(a.shape) != (C,):
            raise ValueError(
                f"layer_norm: {name} must have shape ({C},) for an input of shape "
                f"{tuple(x.shape)}, got {tuple(a.shape)}"
            )
    return LayerNorm(float(eps))(x, gamma, beta)
