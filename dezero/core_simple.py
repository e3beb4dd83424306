"""The book's stage-2 core (steps 1-32): a small, readable engine kept for the book's programs.

Gradients are plain ndarrays (not Variables), so there is no graph of the backward pass and
no higher-order derivative; binary ops do not broadcast. The full engine is ``dezero.core``
(what ``import dezero`` uses; ``dezero.is_simple_core`` is False). Import this one directly::

    from dezero.core_simple import Variable, Function

>>> import numpy as np
>>> class Square(Function):
...     def forward(self, x):
...         return x ** 2
...     def backward(self, gy):
...         return 2 * self.inputs[0].data * gy
>>> x = Variable(np.array(3.0))
>>> y = Square()(x) + x
>>> y.backward()
>>> x.grad
array(7.)
"""

from __future__ import annotations

import contextlib
import heapq
import numbers
import weakref

import numpy as np

__all__ = [
    "Config",
    "Function",
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
    "using_config",
]


class Config:
    """``enable_backprop``: whether calls record the graph needed by ``backward``."""

    enable_backprop = True


@contextlib.contextmanager
def using_config(name: str, value):
    """Temporarily set ``Config.<name>`` to ``value`` inside a ``with`` block."""
    old_value = getattr(Config, name)
    setattr(Config, name, value)
    try:
        yield
    finally:
        setattr(Config, name, old_value)


def no_grad():
    """Context manager in which no graph is recorded."""
    return using_config("enable_backprop", False)


def as_array(x):
    """Return ``x`` as an ndarray: scalars (which NumPy ufuncs return for 0-d input) become 0-d."""
    if np.isscalar(x):
        return np.array(x)
    return x


class Variable:
    """An ndarray with a gradient (an ndarray too) and the Function that created it."""

    __array_priority__ = 200

    def __init__(self, data, name: str | None = None):
        if data is not None and not isinstance(data, np.ndarray):
            if isinstance(data, (numbers.Number, np.generic)):
                data = np.asarray(data)
            else:
                raise TypeError(
                    f"Variable data must be an ndarray or a number, not {type(data).__name__}"
                )
        self.data = data
        self.name = name
        self.grad = None
        self.creator = None
        self.generation = 0

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
        return "variable(" + str(self.data).replace("\n", "\n" + " " * 9) + ")"

    def set_creator(self, func: Function) -> None:
        self.creator = func
        self.generation = func.generation + 1

    def cleargrad(self) -> None:
        self.grad = None

    def backward(self, retain_grad: bool = False) -> None:
        """Accumulate d(self)/d(v) into ``v.grad`` for every Variable ``v`` upstream.

        Functions are visited from the latest generation to the earliest, so a Function runs
        only after every gradient flowing into its outputs has been summed (diamond graphs).
        Intermediate gradients are dropped unless ``retain_grad``.
        """
        if self.data is None:
            raise ValueError("backward() called on a Variable without data (data is None)")
        if self.grad is None:
            self.grad = np.ones_like(self.data)

        heap: list = []  # (-generation, insertion count, function): latest generation first
        seen: set = set()

        def add_func(f):
            if f not in seen:
                seen.add(f)
                heapq.heappush(heap, (-f.generation, len(seen), f))

        if self.creator is not None:
            add_func(self.creator)
        while heap:
            f = heapq.heappop(heap)[2]
            outputs = [ref() for ref in f.outputs]  # None: an unused output already freed
            gys = [None if y is None else y.grad for y in outputs]
            gxs = f.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx in zip(f.inputs, gxs):
                # never add in place: x.grad may be the very array held by another Variable.
                # as_array: NumPy turns 0-d results into scalars; grads stay ndarrays.
                x.grad = as_array(gx if x.grad is None else x.grad + gx)
                if x.creator is not None:
                    add_func(x.creator)
            if not retain_grad:
                for y in outputs:
                    if y is not None:
                        y.grad = None


def as_variable(obj) -> Variable:
    """Return ``obj`` if it is a Variable, else wrap it in one."""
    return obj if isinstance(obj, Variable) else Variable(obj)


class Function:
    """Base of every op: subclasses write ``forward`` and ``backward`` on ndarrays.

    Inside ``backward``, ``self.inputs`` are the input Variables (use ``.data``).
    """

    def __call__(self, *inputs):
        inputs = [as_variable(x) for x in inputs]
        ys = self.forward(*[x.data for x in inputs])
        if not isinstance(ys, tuple):
            ys = (ys,)
        outputs = [Variable(as_array(y)) for y in ys]
        if Config.enable_backprop:
            self.generation = max(x.generation for x in inputs)
            for output in outputs:
                output.set_creator(self)
            self.inputs = inputs
            self.outputs = [weakref.ref(output) for output in outputs]  # no reference cycle
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError


# =============================================================================
# Arithmetic (same shapes only: no broadcasting in this core)
# =============================================================================
def _constant(c, x: Variable):
    """Make the operand ``c`` meet ``x``: a float scalar takes ``x``'s float dtype (a Python
    float must not turn a float32 graph into float64)."""
    if isinstance(c, Variable):
        return c
    if isinstance(c, (numbers.Number, np.generic)):
        if x.data.dtype.kind == "f" and isinstance(c, (numbers.Real, np.floating, np.integer)):
            return np.asarray(c, dtype=x.data.dtype)
        return np.asarray(c)
    return c


class Add(Function):
    def forward(self, x0, x1):
        return x0 + x1

    def backward(self, gy):
        return gy, gy


class Mul(Function):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs
        return gy * x1.data, gy * x0.data


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Sub(Function):
    def forward(self, x0, x1):
        return x0 - x1

    def backward(self, gy):
        return gy, -gy


class Div(Function):
    def forward(self, x0, x1):
        return x0 / x1

    def backward(self, gy):
        x0, x1 = self.inputs
        gx0 = gy / x1.data
        return gx0, gx0 * (-x0.data / x1.data)


class Pow(Function):
    """``x ** c`` for a constant exponent ``c``."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x**self.c

    def backward(self, gy):
        x = self.inputs[0].data
        return self.c * x ** (self.c - 1) * gy


def add(x0, x1):
    x0 = as_variable(x0)
    return Add()(x0, _constant(x1, x0))


def mul(x0, x1):
    x0 = as_variable(x0)
    return Mul()(x0, _constant(x1, x0))


def neg(x):
    return Neg()(x)


def sub(x0, x1):
    x0 = as_variable(x0)
    return Sub()(x0, _constant(x1, x0))


def rsub(x0, x1):
    """``x1 - x0`` (for ``other - variable``)."""
    x0 = as_variable(x0)
    return Sub()(_constant(x1, x0), x0)


def div(x0, x1):
    x0 = as_variable(x0)
    return Div()(x0, _constant(x1, x0))


def rdiv(x0, x1):
    """``x1 / x0`` (for ``other / variable``)."""
    x0 = as_variable(x0)
    return Div()(_constant(x1, x0), x0)


def pow(x, c):
    """``x ** c`` with a constant (non-Variable) exponent ``c``."""
    if isinstance(c, Variable):
        raise TypeError("core_simple supports only constant exponents; use dezero.core")
    if isinstance(c, np.generic):
        c = c.item()  # a NumPy float64 exponent must not promote a float32 base
    return Pow(c)(x)


def setup_variable() -> None:
    """Install the operator overloads on Variable (done on import; calling again is harmless)."""
    Variable.__add__ = add
    Variable.__radd__ = add
    Variable.__mul__ = mul
    Variable.__rmul__ = mul
    Variable.__neg__ = neg
    Variable.__sub__ = sub
    Variable.__rsub__ = rsub
    Variable.__truediv__ = div
    Variable.__rtruediv__ = rdiv
    Variable.__pow__ = pow


setup_variable()
