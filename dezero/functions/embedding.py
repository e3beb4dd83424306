"""Embeddings: embed_id (row lookup ``W[x]``), with a scatter-add gradient of any order."""

from __future__ import annotations

from dezero import cuda
from dezero.core import Function, Variable, as_variable
from dezero.functions._ops import apply

__all__ = ["embed_id"]


def _check_ids(x, W):
    """Raise a clear error for non-integer ids (the wrapper: types are part of a trace's
    signature)."""
    if x.dtype.kind not in "iu":
        raise TypeError(
            f"embed_id: ids must be an integer array, got dtype {x.dtype} "
            "(convert them with .astype(np.int64))"
        )
    if W.ndim == 0:
        raise ValueError("embed_id: W must have at least one dimension (the vocabulary)")


def _check_range(x, W):
    """Raise a clear error for ids outside ``[0, len(W))`` (in forward: a replayed step,
    ``dezero.jit``, runs it for every batch)."""
    V = W.shape[0]
    if x.size == 0:
        return
    xp = cuda.get_array_module(x)
    lo, hi = xp.min(x), xp.max(x)
    if int(lo) < 0 or int(hi) >= V:
        bad = int(lo) if int(lo) < 0 else int(hi)
        raise IndexError(
            f"embed_id: index {bad} is out of range for a vocabulary of size {V} "
            f"(valid ids are 0..{V - 1}; W has shape {tuple(W.shape)})"
        )


def _scatter_add(x, gy, shape, dtype):
    """Return zeros(shape) with ``gy[k]`` added into row ``x[k]`` (repeated ids accumulate)."""
    xp = cuda.get_array_module(gy)
    gW = xp.zeros(shape, dtype=dtype)
    if xp is not cuda.cupy or hasattr(xp.add, "at"):
        xp.add.at(gW, x, gy)
    else:  # older CuPy: ufunc.at is missing, cupyx.scatter_add does the same
        cuda.cupyx.scatter_add(gW, x, gy)
    return gW


class EmbedID(Function):
    """``(W, ids) -> W[ids]``. The ids are an input (never differentiated), so a trace of the
    forward pass (``dezero.onnx``) sees where they came from."""

    def forward(self, W, ids):
        _check_range(ids, W)
        # backward scatters into the rows named by the ids: a copy (small ints), so that a
        # caller refilling its id buffer before backward() cannot change the gradient
        self.ids = ids.copy()
        return W[ids]

    def backward_array(self, xs, ys, gys):
        # the scatter is an op (any order of derivative); on arrays it runs directly
        return apply(EmbedIDGrad(self, xs[0].shape), gys[0]), None


class EmbedIDGrad(Function):
    """The adjoint of the lookup: scatter-add ``gy`` into the rows ``ids`` of a zero ``W``.

    It is linear in ``gy``, and its own adjoint is the lookup again, so
    ``d/dgy <ggW, scatter(gy)> = ggW[ids]``: every order of derivative follows. It reads the
    ids of ``lookup`` (the EmbedID it differentiates) when it runs, so that a replayed step
    (``dezero.jit``) scatters each batch's ids.
    """

    def __init__(self, lookup, W_shape):
        self.lookup = lookup
        self.W_shape = W_shape

    def forward(self, gy):
        return _scatter_add(self.lookup.ids, gy, self.W_shape, gy.dtype)

    def backward_array(self, xs, ys, gys):
        return gys[0][self.lookup.ids]  # the lookup again (its ids were checked by forward)


def embed_id(x, W):
    """Look up the rows of ``W`` named by the integer ids ``x`` (an embedding layer's op).

    Parameters
    ----------
    x : ndarray or Variable of ints, any shape
        Ids in ``[0, W.shape[0])``. They are not differentiated.
    W : Variable or ndarray, shape (V, ...)
        The embedding table, one row per id.

    Returns
    -------
    Variable of shape ``x.shape + W.shape[1:]`` equal to ``W[x]``.

    Raises
    ------
    IndexError
        When an id is negative or ``>= V`` (the message names the id and ``V``).
    TypeError
        When the ids are not integers.

    Notes
    -----
    ``y = W[x]``. The gradient is a scatter-add: ``gW[v] = sum_{k: x_k = v} gy[k]``, so
    repeated ids accumulate. The scatter-add is itself an op whose derivative is the lookup,
    hence derivatives of any order.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.arange(6.0).reshape(3, 2)
    >>> embed_id(np.array([2, 0, 2]), W)
    variable([[4. 5.]
              [0. 1.]
              [4. 5.]])
    """
    W = as_variable(W)
    if not isinstance(x, Variable):  # a Variable of ids stays one: its origin stays traceable
        x = cuda.get_array_module(x).asarray(x)
    _check_ids(x.data if isinstance(x, Variable) else x, W.data)
    return EmbedID()(W, x)
