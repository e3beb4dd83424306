"""Attention: scaled_dot_product_attention, one fused op with a stable softmax."""

from __future__ import annotations

import math

import numpy as np

from dezero import cuda
from dezero.core import Config, Function, Variable, unbroadcast
from dezero.functions._ops import nograd
from dezero.functions.activation import softmax
from dezero.functions.array import transpose
from dezero.functions.linalg import matmul
from dezero.functions.reduction import sum as _sum

__all__ = ["scaled_dot_product_attention"]


_TRIL: dict = {}


def _causal_mask(xp, Tq, Tk):
    """Lower-triangular bool (Tq, Tk): query i may attend to keys 0..i (cached per shape)."""
    key = (xp.__name__, Tq, Tk)
    m = _TRIL.get(key)
    if m is None:
        if len(_TRIL) > 64:
            _TRIL.clear()
        m = _TRIL[key] = xp.tri(Tq, Tk, dtype=bool)
    return m


class ScaledDotProductAttention(Function):
    """``softmax(q k^T / sqrt(d) where allowed, else -inf) @ v``, fused.

    Forward keeps the (..., Tq, Tk) probabilities ``p`` (and, with dropout, the scaled keep
    mask): one (T, T) array of probabilities, never a second copy of it nor the scores.
    ``backward_array`` (the engine's path when no graph is recorded) runs on those arrays:
    ``gv = p'^T gy``, ``gp = gy v^T`` (times the dropout mask),
    ``gs = p (gp - sum(gp p)) / sqrt(d)``, ``gq = gs k``, ``gk = gs^T q``, where ``p'`` is
    ``p`` after dropout. With ``create_graph`` the same formulas are written with dezero ops
    on ``p`` recomputed from ``q`` and ``k``, so derivatives of any order follow.
    """

    def __init__(self, allowed, causal, dropout_ratio):
        self.allowed = allowed  # bool array broadcastable to (..., Tq, Tk), or None
        self.causal = causal
        self.dropout_ratio = dropout_ratio
        self.p = None
        self.keep = None

    def _mask(self, xp, Tq, Tk):
        """The bool mask (True = may attend) of this call, or None when all may attend."""
        allowed = self.allowed
        if self.causal:
            tril = _causal_mask(xp, Tq, Tk)
            allowed = tril if allowed is None else allowed & tril
        return allowed

    def _mask_arrays(self, s):
        """For scores ``s``: 1 where allowed (else 0); 0 where allowed, -inf where masked (0
        on a row with nothing allowed: a finite softmax, no NaN); 1 per row with something
        allowed (else 0, which zeroes that row's probabilities)."""
        xp = cuda.get_array_module(s)
        allowed = xp.broadcast_to(self._mask(xp, s.shape[-2], s.shape[-1]), s.shape)
        some = allowed.any(axis=-1, keepdims=True)
        fill = xp.where(allowed | ~some, 0.0, -np.inf).astype(s.dtype)
        return allowed.astype(s.dtype), fill, some.astype(s.dtype)

    def forward(self, q, k, v):
        xp = cuda.get_array_module(q)
        Tq, Tk = q.shape[-2], k.shape[-2]
        self.scale = scale = 1.0 / math.sqrt(q.shape[-1])
        # scale q, (Tq, d), rather than the scores, (Tq, Tk); a Python float keeps q's dtype
        s = (q * scale) @ k.swapaxes(-1, -2)
        allowed = self._mask(xp, Tq, Tk)
        if allowed is not None:
            if allowed.shape != s.shape:
                allowed = xp.broadcast_to(allowed, s.shape)
            xp.copyto(s, -xp.inf, where=~allowed)
        # Stable softmax over the keys: subtract the row maximum before exp.
        m = s.max(axis=-1, keepdims=True)
        if self.allowed is not None:
            # A row where nothing may be attended to is all -inf: give it a finite
            # maximum, so that its probabilities come out as zeros (not NaN).
            m[m == -xp.inf] = 0
        s -= m
        xp.exp(s, out=s)
        z = (s @ xp.ones(Tk, dtype=s.dtype))[..., None]  # row sums: a GEMV beats sum(-1)
        if self.allowed is not None:
            z[z == 0] = 1
        s /= z
        p = s
        self.p = p
        if self.dropout_ratio and Config.train:
            ratio = self.dropout_ratio
            keep = (xp.random.random_sample(p.shape) >= ratio).astype(p.dtype)
            keep *= 1.0 / (1.0 - ratio)
            self.keep = keep
            return (p * keep) @ v
        return p @ v

    # both forms: the array form reuses forward's probabilities, in place (memory: one (T, T))
    def backward(self, gy):
        q, k, v = self.inputs
        s = matmul(q, _swap(k)) * self.scale
        if self.allowed is not None or self.causal:
            # the mask as values of the graph (an op: a replayed step reads each call's)
            one, fill, rows = nograd(self._mask_arrays, s)
            p = softmax(s * one + fill, axis=-1) * rows
        else:
            p = softmax(s, axis=-1)
        pd = p if self.keep is None else p * self.keep
        gv = unbroadcast(matmul(_swap(pd), gy), v) if v.requires_grad else None
        gq = gk = None
        if q.requires_grad or k.requires_grad:
            gp = matmul(gy, _swap(v))
            if self.keep is not None:
                gp = gp * self.keep
            gs = p * (gp - _sum(gp * p, axis=-1, keepdims=True)) * self.scale
            gq = unbroadcast(matmul(gs, k), q) if q.requires_grad else None
            gk = unbroadcast(matmul(_swap(gs), q), k) if k.requires_grad else None
        return gq, gk, gv

    def backward_array(self, xs, ys, gys):
        (q, k, v), (y,), (g,) = xs, ys, gys
        xp = cuda.get_array_module(g)
        need_q, need_k, need_v = (x.requires_grad for x in self.inputs)
        p, keep = self.p, self.keep
        pd = p if keep is None else p * keep
        gv = unbroadcast(pd.swapaxes(-1, -2) @ g, v) if need_v else None
        gq = gk = None
        if need_q or need_k:
            gp = g @ v.swapaxes(-1, -2)
            if keep is not None:
                gp *= keep
            # softmax backward in place: gs = p (gp - sum(gp p)). The row sums equal
            # sum(gy * y) over the features: (Tq, d) products instead of (Tq, Tk).
            r = xp.einsum("...i,...i->...", g, y)[..., None]  # no (Tq, d) temporary
            gp -= r
            gp *= p
            scale = self.scale
            if need_q:
                gq = gp @ k
                gq *= scale
                gq = unbroadcast(gq, q)
            if need_k:
                gk = gp.swapaxes(-1, -2) @ q
                gk *= scale
                gk = unbroadcast(gk, k)
        return gq, gk, gv


def _swap(x):
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(x, axes)


def scaled_dot_product_attention(q, k, v, mask=None, causal: bool = False,
                                 dropout_ratio: float = 0.0) -> Variable:
    """Attention ``softmax(q k^T / sqrt(d)) v`` over the last two axes, fused and stable.

    Parameters
    ----------
    q : Variable or ndarray, shape (..., Tq, d)
        Queries.
    k : Variable or ndarray, shape (..., Tk, d)
        Keys.
    v : Variable or ndarray, shape (..., Tk, dv)
        Values. Leading axes broadcast between q, k and v (as in ``matmul``).
    mask : bool ndarray, optional
        Broadcastable to (..., Tq, Tk). True means the query may attend to the key
        (PyTorch's convention); False excludes the key.
    causal : bool
        Query ``i`` attends only to keys ``0..i`` (a lower-triangular mask, combined with
        ``mask`` by logical and).
    dropout_ratio : float
        Drop attention probabilities with this probability in training mode (inverted
        dropout, the mask drawn inside the op); ignored under ``dezero.test_mode()``.

    Returns
    -------
    Variable of shape (..., Tq, dv).

    Raises
    ------
    ValueError
        When the shapes do not fit, the mask is not boolean or does not broadcast, or
        ``dropout_ratio`` is outside [0, 1).

    Notes
    -----
    ``s = q k^T / sqrt(d)``, set to ``-inf`` where not allowed; ``p = softmax(s)`` along
    the keys, computed after subtracting each row's maximum; ``y = p v``. Gradients:
    ``gv = p^T gy``, ``gs = p * (gy v^T - sum(gy v^T * p))``, ``gq = gs k / sqrt(d)``,
    ``gk = gs^T q / sqrt(d)``. Only ``p`` is kept for the backward pass. Derivatives of any
    order are exact.

    A query row with no key it may attend to (its mask row all False) gets zero
    probabilities: its output is zeros, and no gradient flows through it (PyTorch returns
    NaN there).

    Examples
    --------
    >>> import numpy as np
    >>> q = k = np.zeros((1, 2, 4), dtype=np.float32)
    >>> v = np.array([[[1.0, 0.0], [3.0, 2.0]]], dtype=np.float32)
    >>> scaled_dot_product_attention(q, k, v)
    variable([[[2. 1.]
               [2. 1.]]], dtype=float32)
    >>> scaled_dot_product_attention(q, k, v, causal=True)
    variable([[[1. 0.]
               [2. 1.]]], dtype=float32)
    """
    qd, kd, vd = (x.data if isinstance(x, Variable) else x for x in (q, k, v))
    shapes = f"q {tuple(qd.shape)}, k {tuple(kd.shape)}, v {tuple(vd.shape)}"
    if qd.ndim < 2 or kd.ndim < 2 or vd.ndim < 2:
        raise ValueError(f"scaled_dot_product_attention: inputs must be at least 2-D "
                         f"(..., T, d); got {shapes}")
    if qd.shape[-1] != kd.shape[-1] or kd.shape[-2] != vd.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: q and k must share the feature size d and k and "
            f"v the number of keys; got {shapes}"
        )
    ratio = float(dropout_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(
            f"scaled_dot_product_attention: dropout_ratio must be in [0, 1), got "
            f"{dropout_ratio}"
        )
    allowed = None
    if mask is not None:
        allowed = mask.data if isinstance(mask, Variable) else mask
        xp = cuda.get_array_module(qd)
        allowed = xp.asarray(allowed)
        if allowed.dtype != np.bool_:
            raise ValueError(
                f"scaled_dot_product_attention: mask must be a bool array (True = may "
                f"attend), got dtype {allowed.dtype}"
            )
        scores = (*np.broadcast_shapes(qd.shape[:-2], kd.shape[:-2]), qd.shape[-2],
                  kd.shape[-2])
        try:
            fits = np.broadcast_shapes(allowed.shape, scores) == scores
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"scaled_dot_product_attention: mask of shape {tuple(allowed.shape)} does "
                f"not broadcast to the scores' shape {scores}"
            )
    return ScaledDotProductAttention(allowed, bool(causal), ratio)(q, k, v)
