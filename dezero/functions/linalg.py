"""Linear algebra: matmul (batched, broadcasting like np.matmul), linear, linear_simple, einsum."""

from __future__ import annotations

import functools
import string

import numpy as np

from dezero import cuda
from dezero.core import Function, Variable, constant, unbroadcast
from dezero.functions._ops import apply, nograd, ops
from dezero.functions.array import reshape

__all__ = ["einsum", "linear", "linear_simple", "matmul"]


def _swap_last(x):
    """``x`` (an array or a Variable) with its last two axes swapped."""
    if x.ndim == 2:
        return x.T
    if x.ndim < 2:
        return x
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return x.transpose(axes)


def _shape_str(shape):
    return "(" + "x".join(str(s) for s in shape) + ")"


# =============================================================================
# matmul
# =============================================================================
class MatMul(Function):
    def forward(self, x, W):
        if x.shape[-1] != W.shape[-2]:
            raise ValueError(
                f"matmul: shapes {_shape_str(x.shape)} and {_shape_str(W.shape)} are "
                f"incompatible (inner dimensions {x.shape[-1]} != {W.shape[-2]})"
            )
        return x @ W

    def backward_array(self, xs, ys, gys):
        # No gradient is computed for an operand that needs none (a plain ndarray such as a
        # data batch).
        (x, W), (gy,) = xs, gys
        gx = unbroadcast(gy @ _swap_last(W), x) if self.inputs[0].requires_grad else None
        gW = unbroadcast(_swap_last(x) @ gy, W) if self.inputs[1].requires_grad else None
        return gx, gW


def matmul(x, W):
    """Matrix product ``x @ W``; batched and broadcasting like ``np.matmul``.

    Parameters
    ----------
    x, W : Variable or ndarray
        At least 1-D. 1-D operands are treated as a row (``x``) or a column (``W``) vector
        whose extra axis is dropped from the result, as in NumPy.

    Returns
    -------
    Variable

    Raises
    ------
    ValueError
        When the inner dimensions differ; the message shows both shapes, like
        ``(2x3) and (4x5)``.

    Notes
    -----
    gx = gy @ W^T and gW = x^T @ gy (summed over broadcast batch axes). A plain ndarray
    operand gets no gradient, and none is computed for it.

    Examples
    --------
    >>> import numpy as np
    >>> matmul(np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    """
    f = MatMul()
    x, W = constant(x), constant(W)
    if x.ndim == 0 or W.ndim == 0:
        raise ValueError("matmul: operands must have at least one dimension (use * for scalars)")
    if x.ndim == 1 and W.ndim == 1:
        return reshape(f(reshape(x, (1, -1)), reshape(W, (-1, 1))), ())
    if x.ndim == 1:
        y = f(reshape(x, (1, -1)), W)
        return reshape(y, y.shape[:-2] + y.shape[-1:])
    if W.ndim == 1:
        y = f(x, reshape(W, (-1, 1)))
        return reshape(y, y.shape[:-1])
    return f(x, W)


# =============================================================================
# linear
# =============================================================================
class Linear(Function):
    """``x @ W + b`` in one op (no intermediate Variable, bias added in place)."""

    def forward(self, x, W, b=None):
        y = x @ W
        if b is not None:
            y += b  # in place: a float64 bias does not promote a float32 product
        return y

    def backward_array(self, xs, ys, gys):
        x, W = xs[:2]
        gy = gys[0]
        need = [v.requires_grad for v in self.inputs]
        gx = unbroadcast(gy @ W.T, x) if need[0] else None
        gW = unbroadcast(x.T @ gy, W) if need[1] else None
        if len(xs) == 2:
            return gx, gW
        return gx, gW, (unbroadcast(gy, xs[2]) if need[2] else None)


def linear(x, W, b=None):
    """Affine map ``x @ W + b`` (a fully connected layer), fused into one op.

    Parameters
    ----------
    x : Variable or ndarray
        Shape ``(N, in)``; more leading axes are flattened into the batch and restored.
    W : Variable or ndarray
        Shape ``(in, out)`` (the book's layout).
    b : Variable, ndarray or None
        Shape ``(out,)`` (anything that broadcasts against ``(N, out)``).

    Returns
    -------
    Variable
        Shape ``(N, out)``.

    Raises
    ------
    ValueError
        When ``x``'s last axis does not match ``W``'s first (the message shows both shapes,
        like ``(2x3) and (4x5)``), when ``W`` is not 2-D, or when ``b`` does not fit.

    Notes
    -----
    gx = gy W^T, gW = x^T gy, gb = gy summed over the batch. When ``x`` is a plain
    ndarray (a data batch), its gradient is not computed at all. ``linear_simple`` is the
    book's composite version of the same function.

    Examples
    --------
    >>> import numpy as np
    >>> linear(np.ones((2, 3)), np.ones((3, 4)), np.ones(4))
    variable([[4. 4. 4. 4.]
              [4. 4. 4. 4.]])
    """
    x_shape = x.shape
    W_shape = W.shape
    if len(W_shape) != 2:
        raise ValueError(f"linear: W must be 2-D (in, out), got shape {_shape_str(W_shape)}")
    if len(x_shape) == 0 or x_shape[-1] != W_shape[0]:
        raise ValueError(
            f"linear: shapes {_shape_str(x_shape)} and {_shape_str(W_shape)} are incompatible "
            f"(x's last dimension must equal W's first)"
        )
    if b is not None:
        b_shape = np.shape(b.data if isinstance(b, Variable) else b)
        if len(b_shape) > 2 or (b_shape and b_shape[-1] not in (1, W_shape[1])) or (
            len(b_shape) == 2 and b_shape[0] != 1
        ):
            raise ValueError(
                f"linear: bias of shape {b_shape} does not fit an output of shape "
                f"(N, {W_shape[1]})"
            )
    if len(x_shape) == 2:
        f = Linear()
        return f(x, W) if b is None else f(x, W, b)
    x2 = reshape(x, (-1, x_shape[-1]))
    f = Linear()
    y = f(x2, W) if b is None else f(x2, W, b)
    return reshape(y, (*x_shape[:-1], W_shape[1]))


def linear_simple(x, W, b=None):
    """The book's composite ``linear``: ``matmul(x, W) + b`` (two ops).

    Parameters
    ----------
    x, W, b : as in ``linear``.

    Returns
    -------
    Variable

    Notes
    -----
    Kept as the test oracle of the fused ``linear``. Unlike the book, the intermediate
    ``x @ W`` keeps its data: ``+`` reads its input shapes to reduce broadcast gradients.

    Examples
    --------
    >>> import numpy as np
    >>> linear_simple(np.ones((1, 2)), np.ones((2, 3)), np.zeros(3))
    variable([[2. 2. 2.]])
    """
    t = matmul(x, W)
    if b is None:
        return t
    return t + b


# =============================================================================
# einsum
# =============================================================================
@functools.lru_cache(maxsize=512)
def _parse_einsum(subscripts, shapes):
    """Normalize ``subscripts`` to explicit form with letters only (ellipses expanded).

    Returns ``(in_terms, out_term)``.
    """
    s = subscripts.replace(" ", "")
    if "->" in s:
        ins, out = s.split("->")
        if "->" in out:
            raise ValueError(f"einsum: subscripts {subscripts!r} contain '->' twice")
    else:
        ins, out = s, None
    terms = ins.split(",")
    if len(terms) != len(shapes):
        raise ValueError(
            f"einsum: subscripts {subscripts!r} name {len(terms)} operands, "
            f"got {len(shapes)}"
        )
    for ch in s.replace("...", "").replace("->", "").replace(",", ""):
        if ch not in string.ascii_letters:
            raise ValueError(f"einsum: invalid character {ch!r} in subscripts {subscripts!r}")
    used = set(s)
    spare = [c for c in string.ascii_letters if c not in used]
    n_ell = 0
    for t, shape in zip(terms, shapes):
        n_named = len(t.replace("...", ""))
        if "..." in t:
            if len(shape) < n_named:
                raise ValueError(
                    f"einsum: term {t!r} names {n_named} axes, but the operand has shape "
                    f"{shape}"
                )
            n_ell = max(n_ell, len(shape) - n_named)
        elif n_named != len(shape):
            raise ValueError(
                f"einsum: term {t!r} names {n_named} axes, but the operand has shape {shape}"
            )
    ell = "".join(spare[:n_ell])
    terms = tuple(
        t.replace("...", ell[n_ell - (len(shape) - len(t) + 3):] if "..." in t else "")
        for t, shape in zip(terms, shapes)
    )
    if out is None:
        letters = "".join(terms)
        out = ell + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell)
        )
    else:
        out = out.replace("...", ell)
        for c in out:
            if out.count(c) > 1:
                raise ValueError(f"einsum: output subscript {c!r} appears more than once")
            if not any(c in t for t in terms):
                raise ValueError(f"einsum: output subscript {c!r} appears in no input term")
    sizes = {}
    for t, shape in zip(terms, shapes):
        for c, n in zip(t, shape):
            m = sizes.setdefault(c, n)
            if m != n and 1 not in (m, n):
                raise ValueError(
                    f"einsum: subscript {c!r} has sizes {m} and {n} in operands of shapes "
                    f"{', '.join(str(sh) for sh in shapes)}"
                )
            sizes[c] = max(m, n)
    return terms, out


_PLANS: dict = {}


def _plan2(ta, tb, out, sa, sb):
    """How to compute a two-operand einsum as one (batched) matmul, or None."""
    if len(set(ta)) != len(ta) or len(set(tb)) != len(tb):
        return None  # diagonals: leave them to einsum
    size = dict(zip(ta, sa))
    for c, n in zip(tb, sb):
        if size.setdefault(c, n) != n:
            return None  # broadcasting size-1 axes: leave it to einsum
    batch = [c for c in out if c in ta and c in tb]
    a_free = [c for c in ta if c in out and c not in tb]
    b_free = [c for c in tb if c in out and c not in ta]
    contract = [c for c in ta if c in tb and c not in out]
    a_sum = tuple(i for i, c in enumerate(ta) if c not in tb and c not in out)
    b_sum = tuple(i for i, c in enumerate(tb) if c not in ta and c not in out)
    ta_left = [c for c in ta if c in tb or c in out]
    tb_left = [c for c in tb if c in ta or c in out]
    perm_a = tuple(ta_left.index(c) for c in batch + a_free + contract)
    perm_b = tuple(tb_left.index(c) for c in batch + contract + b_free)
    batch_shape = tuple(size[c] for c in batch)
    M = int(np.prod([size[c] for c in a_free], dtype=np.int64))
    N = int(np.prod([size[c] for c in b_free], dtype=np.int64))
    K = int(np.prod([size[c] for c in contract], dtype=np.int64))
    mid = batch + a_free + b_free
    perm_out = tuple(mid.index(c) for c in out)
    mid_shape = batch_shape + tuple(size[c] for c in a_free + b_free)
    return (a_sum, b_sum, perm_a, perm_b, (*batch_shape, M, K), (*batch_shape, K, N),
            mid_shape, perm_out)


def _einsum2(a, b, ta, tb, out):
    key = (ta, tb, out, a.shape, b.shape)
    plan = _PLANS.get(key, False)
    if plan is False:
        plan = _plan2(ta, tb, out, a.shape, b.shape)
        if len(_PLANS) > 1024:
            _PLANS.clear()
        _PLANS[key] = plan
    if plan is None:
        return None
    a_sum, b_sum, perm_a, perm_b, shape_a, shape_b, mid_shape, perm_out = plan
    if a_sum:
        a = a.sum(axis=a_sum)
    if b_sum:
        b = b.sum(axis=b_sum)
    y = a.transpose(perm_a).reshape(shape_a) @ b.transpose(perm_b).reshape(shape_b)
    return y.reshape(mid_shape).transpose(perm_out)


class Einsum(Function):
    def __init__(self, terms, out):
        self.terms = terms
        self.out = out

    def forward(self, *xs):
        xp = cuda.get_array_module(xs[0])
        if len(xs) == 2:
            y = _einsum2(xs[0], xs[1], self.terms[0], self.terms[1], self.out)
            if y is not None:
                return y
        spec = ",".join(self.terms) + "->" + self.out
        return xp.einsum(spec, *xs, optimize=len(xs) > 2)

    def backward_array(self, xs, ys, gys):
        gy = gys[0]
        gxs = []
        for i, (x, t) in enumerate(zip(xs, self.terms)):
            if not self.inputs[i].requires_grad:
                gxs.append(None)
                continue
            others = [(xs[j], self.terms[j]) for j in range(len(xs)) if j != i]
            avail = set(self.out).union(*[set(tj) for _, tj in others])
            uniq = "".join(dict.fromkeys(t))
            target = "".join(c for c in uniq if c in avail)
            g = apply(Einsum([self.out, *[tj for _, tj in others]], target),
                      gy, *[xj for xj, _ in others])
            # axes where x had length 1 but was broadcast against the other operands
            size = dict(zip(t, x.shape))
            red = tuple(k for k, c in enumerate(target) if size[c] == 1 and g.shape[k] != 1)
            if red:
                g = g.sum(axis=red, keepdims=True)
            # letters only x carries (summed out in the forward): broadcast them back
            first = {c: t.index(c) for c in uniq}
            gsize = dict(zip(target, g.shape))
            shape = tuple(
                gsize.get(c, 1) if first[c] == k else 1 for k, c in enumerate(t)
            )
            g = g.reshape(shape)
            if len(uniq) != len(t):  # the diagonal's mask is a constant of the graph
                g = ops(g).broadcast_to(g, x.shape) * nograd(
                    lambda a, t=t: _diagonal_mask(t, a.shape, a), x)
            elif g.shape != x.shape:
                g = ops(g).broadcast_to(g, x.shape)
            gxs.append(g)
        return tuple(gxs)


def _diagonal_mask(term, shape, like):
    """1 where every repeated subscript of ``term`` takes equal indices, else 0."""
    xp = cuda.get_array_module(like)
    mask = xp.ones(shape, dtype=like.dtype)
    ndim = len(term)
    for k, c in enumerate(term):
        j = term.index(c)
        if j != k:
            ak = xp.arange(shape[k]).reshape([-1 if d == k else 1 for d in range(ndim)])
            aj = xp.arange(shape[j]).reshape([-1 if d == j else 1 for d in range(ndim)])
            mask = mask * (ak == aj)
    return mask


def einsum(subscripts, *operands):
    """Einstein summation over the operands (like ``np.einsum``), differentiable.

    Parameters
    ----------
    subscripts : str
        As ``np.einsum``: explicit (``"bij,bjk->bik"``) or implicit (``"ij,jk"``), with
        ellipses (``"...ij,...jk->...ik"``) and repeated subscripts (``"ii->i"``).
    *operands : Variable or ndarray

    Returns
    -------
    Variable

    Raises
    ------
    ValueError
        When a term does not match its operand's dimensions or sizes disagree.

    Notes
    -----
    Two-operand contractions (``"bhqd,bhkd->bhqk"`` and the like) run as one batched
    matmul. The gradient of operand ``i`` is an einsum of ``gy`` with the other operands
    onto ``i``'s subscripts; subscripts only ``i`` carries are broadcast back and repeated
    ones (diagonals) masked.

    Examples
    --------
    >>> import numpy as np
    >>> einsum("ij,jk->ik", np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    >>> einsum("ii->i", np.arange(4.0).reshape(2, 2))
    variable([0. 3.])
    """
    if not operands:
        raise ValueError("einsum: needs at least one operand")
    shapes = tuple(tuple(x.shape if hasattr(x, "shape") else np.shape(x)) for x in operands)
    terms, out = _parse_einsum(subscripts, shapes)
    return Einsum(terms, out)(*operands)
