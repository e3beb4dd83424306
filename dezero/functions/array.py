"""Shape functions: reshape, transpose, get_item, expand_dims, flatten, squeeze, broadcast_to,
sum_to, concat, stack, split, pad, where (any order of derivative)."""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from dezero import array_utils, cuda
from dezero.core import Function, Variable, as_variable, constant_like, unbroadcast
from dezero.functions._ops import apply, nograd, ops

__all__ = [
    "broadcast_to",
    "concat",
    "expand_dims",
    "flatten",
    "get_item",
    "pad",
    "reshape",
    "split",
    "squeeze",
    "stack",
    "sum_to",
    "transpose",
    "where",
]


def _shape_of(x):
    return x.shape if isinstance(x, (Variable, *cuda.array_types)) else np.shape(x)


def _norm_axis(axis, ndim, name):
    if not isinstance(axis, (numbers.Integral, np.integer)):
        raise TypeError(f"{name}: axis must be an int, not {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for {ndim} dimensions")
    return int(axis) % ndim


class Identity(Function):
    """``y = x`` (no copy), an op: where ``dezero.func`` starts a derivative (its input
    connects the result to the caller's graph)."""

    def forward(self, x):
        return x

    def backward_array(self, xs, ys, gys):
        return gys[0]


# =============================================================================
# reshape, transpose, expand_dims, flatten, squeeze
# =============================================================================
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

    def backward_array(self, xs, ys, gys):
        return gys[0].reshape(self.x_shape)


def reshape(x, shape):
    """Give ``x`` a new shape with the same data (``-1`` infers one dimension).

    Parameters
    ----------
    x : Variable or ndarray
    shape : int or tuple of ints

    Returns
    -------
    Variable
        A view of ``x``'s data where NumPy can make one.

    Raises
    ------
    ValueError
        When the sizes differ; the message names both shapes.

    Notes
    -----
    The gradient is ``gy`` reshaped back to ``x.shape``.

    Examples
    --------
    >>> import numpy as np
    >>> reshape(np.arange(6.0), (2, 3)).shape
    (2, 3)
    """
    if isinstance(shape, (numbers.Integral, np.integer)):
        shape = (int(shape),)
    shape = tuple(shape)
    if isinstance(x, Variable) and x.shape == shape:
        return x
    return Reshape(shape)(x)


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        try:
            return x.transpose(self.axes)
        except ValueError:
            raise ValueError(
                f"transpose: axes {self.axes} are not a permutation of the {x.ndim} axes of "
                f"an input of shape {x.shape}"
            ) from None

    def backward_array(self, xs, ys, gys):
        gy, axes = gys[0], self.axes
        if axes is None:
            return gy.transpose()
        n = len(axes)
        return gy.transpose(tuple(sorted(range(n), key=lambda i: axes[i] % n)))  # the inverse


def transpose(x, axes=None):
    """Permute the axes of ``x`` (reverse them when ``axes`` is None).

    Parameters
    ----------
    x : Variable or ndarray
    axes : sequence of ints or None
        A permutation of ``range(x.ndim)``; negative values count from the end.

    Returns
    -------
    Variable

    Notes
    -----
    The gradient is ``gy`` transposed by the inverse permutation.

    Examples
    --------
    >>> import numpy as np
    >>> transpose(np.zeros((2, 3, 4)), (1, 0, 2)).shape
    (3, 2, 4)
    """
    if axes is not None:
        axes = tuple(axes)
    return Transpose(axes)(x)


def expand_dims(x, axis):
    """Insert axes of length 1 at ``axis`` (an int or a tuple), like ``np.expand_dims``.

    Parameters
    ----------
    x : Variable or ndarray
    axis : int or tuple of ints
        Positions in the result; negative values count from the end.

    Returns
    -------
    Variable

    Notes
    -----
    A reshape: the gradient is ``gy`` reshaped back.

    Examples
    --------
    >>> import numpy as np
    >>> expand_dims(np.zeros((2, 3)), -1).shape
    (2, 3, 1)
    """
    shape = _shape_of(x)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    ndim = len(shape) + len(axes)
    axes = [_norm_axis(a, ndim, "expand_dims") for a in axes]
    if len(set(axes)) != len(axes):
        raise ValueError(f"expand_dims: repeated axis in {axis}")
    it = iter(shape)
    new_shape = tuple(1 if i in axes else next(it) for i in range(ndim))
    return reshape(x, new_shape)


def flatten(x):
    """Flatten every axis but the first (the batch axis), as the book's ``flatten``.

    Parameters
    ----------
    x : Variable or ndarray
        At least 1-D.

    Returns
    -------
    Variable
        Shape ``(x.shape[0], prod(x.shape[1:]))``.

    Examples
    --------
    >>> import numpy as np
    >>> flatten(np.zeros((2, 3, 4))).shape
    (2, 12)
    """
    shape = _shape_of(x)
    if len(shape) == 0:
        raise ValueError("flatten: the input must have at least one dimension (a batch axis)")
    return reshape(x, (shape[0], -1))


def squeeze(x, axis=None):
    """Remove axes of length 1 (all of them, or those in ``axis``).

    Parameters
    ----------
    x : Variable or ndarray
    axis : None, int or tuple of ints

    Returns
    -------
    Variable

    Raises
    ------
    ValueError
        When a selected axis does not have length 1.

    Examples
    --------
    >>> import numpy as np
    >>> squeeze(np.zeros((2, 1, 3, 1)), 1).shape
    (2, 3, 1)
    """
    shape = _shape_of(x)
    if axis is None:
        axes = {i for i, s in enumerate(shape) if s == 1}
    else:
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        axes = {_norm_axis(a, len(shape), "squeeze") for a in axes}
        for a in sorted(axes):
            if shape[a] != 1:
                raise ValueError(
                    f"squeeze: axis {a} of an input of shape {shape} has length {shape[a]}, "
                    f"not 1"
                )
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in axes))


# =============================================================================
# get_item (indexing)
# =============================================================================
def _is_advanced_int(s):
    """True for an index item that selects with integers and may repeat (int arrays/lists)."""
    if isinstance(s, (list, *cuda.array_types)):
        a = np.asarray(s) if isinstance(s, list) else s
        return a.dtype.kind != "b"
    return False


def _short(slices):
    """A readable, bounded description of an index for error messages."""
    items = slices if isinstance(slices, tuple) else (slices,)
    out = []
    for s in items:
        if isinstance(s, cuda.array_types):
            out.append(f"array(shape={s.shape}, dtype={s.dtype})")
        elif isinstance(s, list) and len(s) > 8:
            out.append(f"list(len={len(s)})")
        else:
            out.append(repr(s))
    return out[0] if not isinstance(slices, tuple) else "(" + ", ".join(out) + ")"


class IndexSlot:
    """Where the k-th index array of a GetItem goes in its index (see ``_split_index``)."""

    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k

    def __repr__(self):
        return f"<index input {self.k}>"


def _split_index(slices, xp):
    """Split ``slices`` into a template and its index arrays.

    Every array, list or Variable in the index becomes an input of GetItem (a ``IndexSlot`` marks
    its place in the template), so that a trace of the forward pass (``dezero.onnx``) sees
    where the indices came from; ints, slices, None and Ellipsis stay in the template.
    """
    arrays = []

    def one(s):
        if isinstance(s, list):
            s = xp.asarray(s)
        elif isinstance(s, cuda.array_types):
            if xp is not np:
                s = xp.asarray(s)  # NumPy indices for CuPy data move to the device
        elif not isinstance(s, Variable):
            return s
        arrays.append(s)
        return IndexSlot(len(arrays) - 1)

    if isinstance(slices, tuple):
        return tuple(one(s) for s in slices), arrays
    return one(slices), arrays


def _fill_index(template, arrays):
    if isinstance(template, tuple):
        return tuple(arrays[s.k] if type(s) is IndexSlot else s for s in template)
    return arrays[template.k] if type(template) is IndexSlot else template


class GetItem(Function):
    """``(x, *index_arrays) -> x[index]``; ``template`` is the index with each array replaced
    by a ``IndexSlot`` naming its input (the arrays are inputs, never differentiated)."""

    def __init__(self, template):
        self.template = template
        self.slices = template

    def forward(self, x, *arrays):
        if arrays:
            # backward scatters through these indices: copies (small int arrays or masks),
            # so that a caller refilling its index buffer cannot change the gradient
            xp = cuda.get_array_module(x)
            self.slices = _fill_index(self.template, [xp.array(a) for a in arrays])
        try:
            return x[self.slices]
        except IndexError as e:
            raise IndexError(
                f"get_item: index {_short(self.slices)} does not fit an input of shape "
                f"{x.shape}: {e}"
            ) from None

    # Only a Variable form (an op): dezero.jit records it even where the slice was taken
    # before a jitted step (a step called on x[:4]); an array form there, it refuses.
    def backward(self, gy):
        gx = GetItemGrad(self.slices, self.inputs[0].shape)(gy)
        n = len(self.inputs)
        return gx if n == 1 else (gx,) + (None,) * (n - 1)


class GetItemGrad(Function):
    """Scatter ``gy`` into zeros of the input shape (the adjoint of ``get_item``)."""

    def __init__(self, slices, in_shape):
        self.slices = slices
        self.in_shape = in_shape
        items = slices if isinstance(slices, tuple) else (slices,)
        self.scatter = any(_is_advanced_int(s) for s in items)

    def forward(self, gy):
        xp = cuda.get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        if self.scatter:
            # integer arrays may repeat an index: those gradients must add up
            cuda.scatter_add(gx, self.slices, gy)
        else:
            gx[self.slices] = gy  # slices and boolean masks select each element once
        return gx

    def backward_array(self, xs, ys, gys):
        return gys[0][self.slices]


def get_item(x, slices):
    """``x[slices]``: basic slices, integer arrays and boolean masks, like NumPy.

    Parameters
    ----------
    x : Variable or ndarray
    slices : int, slice, None, Ellipsis, list/ndarray of ints or bools, or a tuple of these
        Array indices may also be Variables (their data is used, never differentiated).

    Returns
    -------
    Variable

    Raises
    ------
    IndexError
        When an index is out of bounds; the message names the index and the shape.

    Notes
    -----
    The gradient scatters ``gy`` into zeros shaped like ``x``; an element selected several
    times (repeated integer indices) receives the sum of its gradients. The scatter's own
    gradient is ``get_item`` again, so every order of derivative works.

    Examples
    --------
    >>> import numpy as np
    >>> from dezero import Variable
    >>> x = Variable(np.array([1.0, 2.0, 3.0]))
    >>> y = get_item(x, np.array([0, 0, 2]))
    >>> y.backward()
    >>> x.grad
    variable([2. 0. 1.])
    """
    template, arrays = _split_index(slices, cuda.get_array_module(x))
    return GetItem(template)(x, *arrays)


# =============================================================================
# broadcast_to, sum_to
# =============================================================================
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

    def backward_array(self, xs, ys, gys):
        return unbroadcast(gys[0], xs[0])


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` like ``np.broadcast_to``; the gradient sums back.

    Parameters
    ----------
    x : Variable or ndarray
    shape : tuple of ints

    Returns
    -------
    Variable
        A read-only broadcast view.

    Raises
    ------
    ValueError
        When ``x.shape`` cannot be broadcast to ``shape``; the message names both.

    Notes
    -----
    The gradient is ``sum_to(gy, x.shape)``.

    Examples
    --------
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
        return array_utils.sum_to(x, self.shape)

    def backward_array(self, xs, ys, gys):
        gy = gys[0]
        return gy if gy.shape == self.x_shape else ops(gy).broadcast_to(gy, self.x_shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (the adjoint of ``broadcast_to``).

    Parameters
    ----------
    x : Variable or ndarray
    shape : tuple of ints
        A shape that broadcasts to ``x.shape``.

    Returns
    -------
    Variable

    Notes
    -----
    The gradient is ``broadcast_to(gy, x.shape)``.

    Examples
    --------
    >>> import numpy as np
    >>> sum_to(np.ones((3, 2)), (1, 2))
    variable([[3. 3.]])
    """
    shape = tuple(shape)
    if isinstance(x, Variable) and x.shape == shape:
        return x
    return SumTo(shape)(x)


# =============================================================================
# concat, stack, split
# =============================================================================
class Concat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        xp = cuda.get_array_module(xs[0])
        ndim = xs[0].ndim
        axis = _norm_axis(self.axis, ndim, "concat")
        ref = xs[0].shape
        for x in xs[1:]:
            if x.ndim != ndim or x.shape[:axis] + x.shape[axis + 1:] != (
                ref[:axis] + ref[axis + 1:]
            ):
                shapes = ", ".join(str(y.shape) for y in xs)
                raise ValueError(
                    f"concat: shapes {shapes} do not match outside axis {self.axis}"
                )
        self.axis = axis
        self.sizes = [x.shape[axis] for x in xs]
        return xp.concatenate(xs, axis=axis)

    def backward_array(self, xs, ys, gys):
        gy = gys[0]
        indices = list(itertools.accumulate(self.sizes[:-1]))
        return tuple(ops(gy).split(gy, indices, axis=self.axis))


def concat(xs, axis=0):
    """Join a sequence of arrays along an existing axis (like ``np.concatenate``).

    Parameters
    ----------
    xs : sequence of Variables or ndarrays
        Same shape except along ``axis``; at least 1-D.
    axis : int
        Default 0 (NumPy's and PyTorch's convention; Chainer used 1).

    Returns
    -------
    Variable

    Raises
    ------
    ValueError
        When the shapes do not match outside ``axis``; the message lists them.

    Notes
    -----
    The gradient of each input is its slice of ``gy`` (``split`` along ``axis``).

    Examples
    --------
    >>> import numpy as np
    >>> concat([np.zeros((2, 3)), np.ones((1, 3))]).shape
    (3, 3)
    """
    xs = list(xs)
    if not xs:
        raise ValueError("concat: needs at least one array")
    if any(len(_shape_of(x)) == 0 for x in xs):
        raise ValueError("concat: zero-dimensional arrays cannot be concatenated (use stack)")
    return Concat(axis)(*xs)


class Stack(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        xp = cuda.get_array_module(xs[0])
        self.axis = _norm_axis(self.axis, xs[0].ndim + 1, "stack")
        shape = xs[0].shape
        if any(x.shape != shape for x in xs[1:]):
            shapes = ", ".join(str(x.shape) for x in xs)
            raise ValueError(f"stack: all inputs must have the same shape, got {shapes}")
        return xp.stack(xs, axis=self.axis)

    def backward_array(self, xs, ys, gys):
        gy, axis = gys[0], self.axis
        shape = gy.shape[:axis] + gy.shape[axis + 1:]
        return tuple(g.reshape(shape) for g in ops(gy).split(gy, gy.shape[axis], axis=axis))


def stack(xs, axis=0):
    """Join a sequence of same-shaped arrays along a new axis (like ``np.stack``).

    Parameters
    ----------
    xs : sequence of Variables or ndarrays
    axis : int
        Position of the new axis in the result.

    Returns
    -------
    Variable

    Raises
    ------
    ValueError
        When the shapes differ; the message lists them.

    Notes
    -----
    The gradient of input ``i`` is ``gy`` indexed at ``i`` along ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> stack([np.zeros(3), np.ones(3)], axis=1).shape
    (3, 2)
    """
    xs = list(xs)
    if not xs:
        raise ValueError("stack: needs at least one array")
    return Stack(axis)(*xs)


class Split(Function):
    def __init__(self, indices_or_sections, axis):
        self.indices_or_sections = indices_or_sections
        self.axis = axis

    def forward(self, x):
        xp = cuda.get_array_module(x)
        if x.ndim == 0:
            raise ValueError("split: cannot split a zero-dimensional array")
        self.axis = _norm_axis(self.axis, x.ndim, "split")
        n = x.shape[self.axis]
        ios = self.indices_or_sections
        if isinstance(ios, (numbers.Integral, np.integer)) and (ios <= 0 or n % ios):
            raise ValueError(
                f"split: axis {self.axis} of an input of shape {x.shape} (length {n}) "
                f"cannot be split into {ios} equal sections"
            )
        ys = tuple(xp.split(x, ios, axis=self.axis))
        self.shapes = [y.shape for y in ys]
        return ys

    def backward_array(self, xs, ys, gys):
        if all(g is None for g in gys):
            return None
        like = next(g for g in gys if g is not None)
        # outputs nobody used have no gradient: they contribute zeros
        parts = [nograd(lambda a, s=shape: cuda.get_array_module(a).zeros(s, a.dtype), like)
                 if g is None else g for g, shape in zip(gys, self.shapes)]
        return apply(Concat(self.axis), *parts)


def split(x, indices_or_sections, axis=0):
    """Split ``x`` along ``axis`` into a list of pieces (like ``np.split``).

    Parameters
    ----------
    x : Variable or ndarray
    indices_or_sections : int or sequence of ints
        A number of equal sections, or the indices at which to cut.
    axis : int

    Returns
    -------
    list of Variable
        Always a list, also for a single piece.

    Raises
    ------
    ValueError
        When an int does not divide the axis length evenly.

    Notes
    -----
    The gradient concatenates the pieces' gradients; pieces that were not used contribute
    zeros.

    Examples
    --------
    >>> import numpy as np
    >>> [p.shape for p in split(np.zeros((4, 3)), [1], axis=0)]
    [(1, 3), (3, 3)]
    """
    if not isinstance(indices_or_sections, (numbers.Integral, np.integer)):
        indices_or_sections = tuple(int(i) for i in indices_or_sections)
    ys = Split(indices_or_sections, axis)(x)
    return ys if isinstance(ys, list) else [ys]


# =============================================================================
# pad
# =============================================================================
class Pad(Function):
    def __init__(self, pad_width, constant_values):
        self.pad_width = pad_width
        self.constant_values = constant_values

    def forward(self, x):
        xp = cuda.get_array_module(x)
        pw = self.pad_width
        shape = tuple(s + b + a for s, (b, a) in zip(x.shape, pw))
        c = self.constant_values
        y = xp.zeros(shape, dtype=x.dtype) if c == 0 else xp.full(shape, c, dtype=x.dtype)
        y[self._inner(x.shape)] = x
        return y

    def _inner(self, x_shape):
        return tuple(slice(b, b + s) for s, (b, _) in zip(x_shape, self.pad_width))

    def backward_array(self, xs, ys, gys):
        return gys[0][self._inner(xs[0].shape)]


def pad(x, pad_width, mode="constant", constant_values=0):
    """Pad ``x`` with a constant (like ``np.pad(..., mode="constant")``).

    Parameters
    ----------
    x : Variable or ndarray
    pad_width : int, (before, after), or one (before, after) pair per axis
        As ``np.pad``.
    mode : str
        Only ``"constant"`` is supported.
    constant_values : scalar
        The fill value.

    Returns
    -------
    Variable

    Notes
    -----
    The gradient is the inner (unpadded) block of ``gy``.

    Examples
    --------
    >>> import numpy as np
    >>> pad(np.ones((2, 2)), 1).shape
    (4, 4)
    >>> pad(np.array([1.0, 2.0]), (1, 0), constant_values=-1.0)
    variable([-1.  1.  2.])
    """
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, not {mode!r}")
    ndim = len(_shape_of(x))
    try:
        pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (ndim, 2))
    except ValueError:
        raise ValueError(
            f"pad: pad_width {pad_width!r} does not fit an input with {ndim} dimensions"
        ) from None
    if (pw < 0).any():
        raise ValueError(f"pad: pad_width {pad_width!r} has negative entries")
    if isinstance(constant_values, np.generic):
        constant_values = constant_values.item()
    if not isinstance(constant_values, numbers.Number):
        raise TypeError("pad: constant_values must be a scalar")
    return Pad(tuple((int(b), int(a)) for b, a in pw), constant_values)(x)


# =============================================================================
# where
# =============================================================================
class Where(Function):
    """``condition ? x0 : x1``; forward keeps a copy of the condition for backward (a caller
    refilling its mask cannot change the gradient; see get_item)."""

    def __init__(self, condition):
        self.condition = condition

    def forward(self, x0, x1):
        xp = cuda.get_array_module(x0)
        c = self.condition
        self.kept = c.copy() if isinstance(c, cuda.array_types) else c
        return xp.where(self.kept, x0, x1)

    def backward_array(self, xs, ys, gys):
        (x0, x1), gy, c = xs, gys[0], self.kept
        pick = ops(gy).where
        need0, need1 = (x.requires_grad for x in self.inputs)
        # unbroadcast sums broadcast axes (and casts back where NumPy 1.x promotes a 0-d
        # float32 with the Python 0)
        return (unbroadcast(pick(c, gy, 0), x0) if need0 else None,
                unbroadcast(pick(c, 0, gy), x1) if need1 else None)


def where(condition, x0, x1):
    """Elementwise ``x0 if condition else x1`` (``condition`` is a boolean array, not traced).

    Parameters
    ----------
    condition : bool ndarray (or a Variable holding one)
    x0, x1 : Variable, ndarray or scalar
        Broadcast against each other and ``condition``; scalars take the other's dtype.

    Returns
    -------
    Variable

    Notes
    -----
    The gradient goes to ``x0`` where ``condition`` holds and to ``x1`` elsewhere (summed
    back over broadcast axes).

    Examples
    --------
    >>> import numpy as np
    >>> where(np.array([True, False]), np.array([1.0, 2.0]), 0.0)
    variable([1. 0.])
    """
    if isinstance(condition, Variable):  # not getattr(.., "data"): CuPy arrays have .data too
        condition = condition.data
    if not isinstance(x0, Variable) and not isinstance(x1, Variable):
        x0 = as_variable(x0)
    if isinstance(x0, Variable):
        x1 = constant_like(x1, x0.data)
    else:
        x0 = constant_like(x0, x1.data)
    return Where(condition)(x0, x1)
