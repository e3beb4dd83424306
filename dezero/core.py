"""The engine: Config, Variable, Parameter, Function, the backward pass and arithmetic.

Everything a graph needs lives here; the op library (``dezero.functions``) builds on it.
"""

from __future__ import annotations

import contextlib
import heapq
import numbers
import weakref
from typing import Any

import numpy as np

from dezero import cuda

__all__ = [
    "Config",
    "Function",
    "Parameter",
    "Variable",
    "add",
    "as_array",
    "as_variable",
    "div",
    "mul",
    "neg",
    "no_grad",
    "pow",
    "rdiv",
    "rsub",
    "setup_variable",
    "sub",
    "test_mode",
    "using_config",
]


# =============================================================================
# Config
# =============================================================================
class Config:
    """Global switches. ``enable_backprop``: record graphs; ``train``: training mode."""

    enable_backprop = True
    train = True


@contextlib.contextmanager
def using_config(name: str, value: Any):
    """Temporarily set ``Config.<name>`` to ``value`` inside a ``with`` block."""
    old_value = getattr(Config, name)
    setattr(Config, name, value)
    try:
        yield
    finally:
        setattr(Config, name, old_value)


def no_grad():
    """Context manager in which no graph is recorded (inference, parameter updates)."""
    return using_config("enable_backprop", False)


def test_mode():
    """Context manager for evaluation: dropout is the identity, batch norm uses running stats."""
    return using_config("train", False)


test_mode.__test__ = False  # keep pytest from collecting it when imported into test modules


# =============================================================================
# Arrays
# =============================================================================
_SCALAR_TYPES = (numbers.Number, np.generic)


def as_array(x, array_module=np):
    """Return ``x`` as an array of ``array_module``; scalars become 0-d arrays."""
    if np.isscalar(x):
        return array_module.array(x)
    return x


def _constant_like(c, x):
    """Turn the scalar or array ``c`` into an array that can meet ``x``'s data in an op.

    Python and NumPy scalars take ``x``'s dtype where that loses nothing (a float scalar
    never promotes a float32 graph to float64; an int scalar never turns floats into ints).
    """
    if isinstance(c, Variable):
        return c
    xp = cuda.get_array_module(x)
    if isinstance(c, cuda.array_types) and c.ndim == 0 and c.dtype.kind == x.dtype.kind:
        c = c.item()  # a 0-d array of the same kind follows x's dtype, like a scalar
    if isinstance(c, _SCALAR_TYPES):
        dtype = x.dtype
        if dtype.kind in "biu" and not isinstance(c, (numbers.Integral, np.integer, np.bool_)):
            dtype = np.result_type(dtype, np.float64 if isinstance(c, numbers.Real) else c)
        return xp.asarray(c, dtype=dtype)
    if isinstance(c, cuda.array_types):
        return c
    raise TypeError(f"unsupported operand type for a dezero op: {type(c).__name__}")


# =============================================================================
# Variable
# =============================================================================
class Variable:
    """A node of the graph: an array (``data``), its gradient and the Function that made it.

    >>> import numpy as np
    >>> from dezero.functions import square, exp
    >>> x = Variable(np.array(0.5))
    >>> y = square(exp(square(x)))
    >>> y.backward()
    >>> x.grad
    variable(3.297442541400256)
    """

    __slots__ = ("__weakref__", "creator", "data", "generation", "grad", "name")
    __array_priority__ = 200

    def __init__(self, data=None, name: str | None = None):
        if data is not None and not isinstance(data, cuda.array_types):
            if isinstance(data, _SCALAR_TYPES) and np.asarray(data).dtype.kind in "biufc":
                data = np.asarray(data)
            else:
                raise TypeError(
                    f"Variable data must be a NumPy/CuPy ndarray, a NumPy scalar or a Python "
                    f"number, not {type(data).__name__}"
                )
        self.data = data
        self.name = name
        self.grad = None
        self.creator = None
        self.generation = 0

    # --- array-like properties -------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        if self.data is None:
            return "variable(None)"
        body = str(self.data).replace("\n", "\n" + " " * 9)
        return f"variable({body})"

    # --- graph -----------------------------------------------------------------
    def set_creator(self, func: Function) -> None:
        self.creator = func
        self.generation = func.generation + 1

    def cleargrad(self) -> None:
        self.grad = None

    def unchain(self) -> None:
        """Forget the creator: this Variable becomes a leaf."""
        self.creator = None

    def unchain_backward(self) -> None:
        """Cut the graph behind this Variable so that the past can be freed (truncated BPTT)."""
        if self.creator is None:
            return
        stack = [self.creator]
        seen = {id(self.creator)}
        while stack:
            f = stack.pop()
            for x in f.inputs:
                c = x.creator
                if c is not None:
                    x.unchain()
                    if id(c) not in seen:
                        seen.add(id(c))
                        stack.append(c)

    def backward(self, retain_grad: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``grad`` of every Variable upstream.

        Functions are visited in descending generation order (a heap), each exactly once.
        Gradients of intermediate Variables are freed unless ``retain_grad``; the backward
        computation itself is recorded as a graph only when ``create_graph`` (for higher
        order derivatives).
        """
        if self.data is None:
            raise ValueError("backward() called on a Variable without data (data is None)")
        if self.grad is None:
            xp = cuda.get_array_module(self.data)
            self.grad = Variable(xp.ones_like(self.data))
        if self.creator is None:
            return

        heap: list = []
        seen = set()
        counter = 0  # tie-breaker so that Functions themselves are never compared

        def push(f):
            nonlocal counter
            fid = id(f)
            if fid not in seen:
                seen.add(fid)
                counter += 1
                heapq.heappush(heap, (-f.generation, counter, f))

        push(self.creator)
        old = Config.enable_backprop
        Config.enable_backprop = create_graph
        try:
            while heap:
                f = heapq.heappop(heap)[2]
                outputs = [ref() for ref in f.outputs]
                gys = [None if y is None else y.grad for y in outputs]
                gxs = f.backward(*gys)
                if not isinstance(gxs, tuple):
                    gxs = (gxs,)
                for x, gx in zip(f.inputs, gxs):
                    if gx is None:
                        continue
                    if not isinstance(gx, Variable):
                        gx = Variable(gx)
                    if gx.data.shape != x.data.shape:
                        raise ValueError(
                            f"{type(f).__name__}.backward returned a gradient of shape "
                            f"{gx.data.shape} for an input of shape {x.data.shape}"
                        )
                    if gx.data.dtype != x.data.dtype and x.data.dtype.kind == "f":
                        raise TypeError(
                            f"{type(f).__name__}.backward returned a gradient of dtype "
                            f"{gx.data.dtype} for an input of dtype {x.data.dtype}"
                        )
                    x.grad = gx if x.grad is None else x.grad + gx
                    if x.creator is not None:
                        push(x.creator)
                if not retain_grad:
                    for y in outputs:
                        if y is not None:
                            y.grad = None
        finally:
            Config.enable_backprop = old

    # --- shape and reductions (delegate to dezero.functions) --------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return dezero.functions.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 0:
            axes = None
        elif len(axes) == 1 and (isinstance(axes[0], (tuple, list)) or axes[0] is None):
            axes = axes[0]
        return dezero.functions.transpose(self, axes)

    @property
    def T(self):
        return dezero.functions.transpose(self)

    def sum(self, axis=None, keepdims=False):
        return dezero.functions.sum(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return dezero.functions.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return dezero.functions.min(self, axis, keepdims)

    def matmul(self, W):
        return dezero.functions.matmul(self, W)

    def dot(self, W):
        return dezero.functions.matmul(self, W)

    # --- devices ----------------------------------------------------------------
    def to_cpu(self) -> None:
        if self.data is not None:
            self.data = cuda.as_numpy(self.data)

    def to_gpu(self) -> None:
        if self.data is not None:
            self.data = cuda.as_cupy(self.data)

    # --- operators ---------------------------------------------------------------
    def __neg__(self):
        return neg(self)

    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(self, other)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return rsub(self, other)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(self, other)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return rdiv(self, other)

    def __pow__(self, other):
        return pow(self, other)

    def __rpow__(self, other):
        return rpow(self, other)

    def __matmul__(self, other):
        return dezero.functions.matmul(self, other)

    def __rmatmul__(self, other):
        return dezero.functions.matmul(other, self)

    def __getitem__(self, slices):
        return dezero.functions.get_item(self, slices)



class Parameter(Variable):
    """A Variable that a Layer registers and an Optimizer updates."""

    __slots__ = ()


def as_variable(obj) -> Variable:
    """Return ``obj`` if it is a Variable, else wrap it (arrays and scalars) in one."""
    if isinstance(obj, Variable):
        return obj
    return Variable(obj)


# =============================================================================
# Function
# =============================================================================
class Function:
    """Base of every op: subclasses implement ``forward`` on arrays, ``backward`` on Variables.

    Calling a Function wraps its outputs in Variables and, when ``Config.enable_backprop``,
    records it as their creator (outputs are held weakly so that graphs free themselves).
    """

    def __call__(self, *inputs):
        inputs = [x if isinstance(x, Variable) else Variable(x) for x in inputs]
        ys = self.forward(*[x.data for x in inputs])
        if isinstance(ys, tuple):
            outputs = [Variable(y) for y in ys]
        else:
            outputs = [Variable(ys)]
        if Config.enable_backprop:
            gen = max([x.generation for x in inputs]) if len(inputs) > 1 else inputs[0].generation
            self.generation = gen
            gen += 1
            for y in outputs:
                y.creator = self
                y.generation = gen
            self.inputs = inputs
            self.outputs = [weakref.ref(y) for y in outputs]
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError


# =============================================================================
# Arithmetic
# =============================================================================
class BinaryFunction(Function):
    """Base of broadcasting binary ops: reduces (and casts) gradients back to each input.

    This is the one place where broadcast gradients are summed back with ``sum_to``.
    """

    def __call__(self, x0, x1):
        return super().__call__(x0, x1)

    def _reduce(self, gx0, gx1):
        x0, x1 = self.inputs
        if gx0 is not None:
            gx0 = _fit(gx0, x0)
        if gx1 is not None:
            gx1 = _fit(gx1, x1)
        return gx0, gx1


def _fit(gx: Variable, x: Variable) -> Variable:
    if gx.shape != x.shape:
        gx = dezero.functions.sum_to(gx, x.shape)
    if gx.dtype != x.dtype and x.dtype.kind == "f":
        gx = dezero.functions.astype(gx, x.dtype)
    return gx


class Add(BinaryFunction):
    def forward(self, x0, x1):
        return x0 + x1

    def backward(self, gy):
        return self._reduce(gy, gy)


class Sub(BinaryFunction):
    def forward(self, x0, x1):
        return x0 - x1

    def backward(self, gy):
        return self._reduce(gy, -gy)


class Mul(BinaryFunction):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return self._reduce(gy * x1, gy * x0)


class Div(BinaryFunction):
    def forward(self, x0, x1):
        return x0 / x1

    def backward(self, gy):
        x0, x1 = self.inputs
        gx0 = gy / x1
        return self._reduce(gx0, gx0 * (-x0 / x1))


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """``x ** c`` for a constant exponent ``c``."""

    def __init__(self, c):
        # a NumPy float64 scalar exponent must not promote a float32 base
        self.c = c.item() if isinstance(c, np.generic) else c

    def forward(self, x):
        c = self.c
        xp = cuda.get_array_module(x)
        if (
            x.dtype.kind == "f"
            and not float(c).is_integer()
            and x.size
            and bool(xp.any(x < 0))
        ):
            raise ValueError(
                f"pow: negative base with the non-integer exponent {c} has no real value"
            )
        return x**c

    def backward(self, gy):
        (x,) = self.inputs
        c = self.c
        return c * x ** (c - 1) * gy


class PowVar(BinaryFunction):
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
        if y is None:
            y = x0**x1
        gx0 = gy * x1 * x0 ** (x1 - 1)
        # d/dx1 needs log(x0); where x0 <= 0 the exponent gradient is taken as 0 (x1 integer)
        gx1 = gy * y * dezero.functions.log(dezero.functions.where(x0.data > 0, x0, 1.0))
        return self._reduce(gx0, gx1)


def _lhs(x):
    return x if isinstance(x, Variable) else Variable(as_array(x))


def add(x0, x1):
    x0 = _lhs(x0)
    return Add()(x0, _constant_like(x1, x0.data))


def sub(x0, x1):
    x0 = _lhs(x0)
    return Sub()(x0, _constant_like(x1, x0.data))


def rsub(x0, x1):
    x0 = _lhs(x0)
    return Sub()(_constant_like(x1, x0.data), x0)


def mul(x0, x1):
    x0 = _lhs(x0)
    return Mul()(x0, _constant_like(x1, x0.data))


def div(x0, x1):
    x0 = _lhs(x0)
    return Div()(x0, _constant_like(x1, x0.data))


def rdiv(x0, x1):
    x0 = _lhs(x0)
    return Div()(_constant_like(x1, x0.data), x0)


def neg(x):
    return Neg()(x)


def pow(x, c):
    """``x ** c``: ``c`` a Python/NumPy scalar (constant) or a Variable/array (differentiable)."""
    if isinstance(c, _SCALAR_TYPES):
        return Pow(c)(x)
    if isinstance(c, cuda.array_types) and c.ndim == 0:
        return Pow(c.item())(x)
    if isinstance(c, (Variable, *cuda.array_types)):
        x = as_variable(x)
        if not isinstance(c, Variable):
            c = _constant_like(c, x.data)
        return PowVar()(x, c)
    raise TypeError(f"unsupported exponent type for pow: {type(c).__name__}")


def rpow(x, c):
    """``c ** x`` (reflected): the base is a constant, the exponent the Variable ``x``."""
    x = _lhs(x)
    return PowVar()(_constant_like(c, x.data), x)


def setup_variable() -> None:
    """Kept for the book: operators are installed on Variable at class definition already."""


import dezero.functions  # noqa: E402  (cycle: functions build on this module)
