"""The engine: Config, Variable, Parameter, Function, the backward pass and arithmetic.

Everything a graph needs lives here; the op library (``dezero.functions``) builds on it.
"""

from __future__ import annotations

import contextlib
import heapq
import numbers
import threading
import weakref
from typing import Any

import numpy as np

from dezero import cuda
from dezero.array_utils import sum_to

__all__ = [
    "Config",
    "Function",
    "FunctionHook",
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
class _PerThread(type):
    """Metaclass that turns the settings declared in a class body into per-thread values.

    The declared values become the defaults of a ``threading.local``; reading or assigning
    ``Cls.name`` then reads or assigns the calling thread's value.
    """

    def __new__(mcs, name, bases, namespace):
        defaults = {k: namespace.pop(k) for k in list(namespace) if not k.startswith("_")}
        cls = super().__new__(mcs, name, bases, namespace)
        type.__setattr__(cls, "_local", type("_Settings", (threading.local,), defaults)())
        return cls

    def __getattr__(cls, name):  # only called for names not found on the class: the settings
        return getattr(cls._local, name)

    def __setattr__(cls, name, value):
        if hasattr(type(cls._local), name):
            setattr(cls._local, name, value)
        else:
            type.__setattr__(cls, name, value)


class Config(metaclass=_PerThread):
    """Switches that ops read: ``enable_backprop`` (record graphs) and ``train`` (training mode).

    The class attributes are the defaults. Each thread has its own values: ``no_grad()``,
    ``test_mode()``, ``using_config`` and ``backward()`` in one thread never change what
    another thread records. ``Config.enable_backprop`` reads and assigns the calling
    thread's value, as in the book.
    """

    enable_backprop = True
    train = True


# The engine reads the calling thread's settings through this object (the fastest path);
# it also holds the thread's FunctionHooks (below).
_settings = Config._local
type(_settings).hooks = ()


@contextlib.contextmanager
def using_config(name: str, value: Any):
    """Temporarily set ``Config.<name>`` to ``value`` in this thread inside a ``with`` block."""
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
_NUMPY2 = int(np.__version__.split(".")[0]) >= 2


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
        if x.dtype.kind == "b":  # bool data follows NumPy's promotion: True + 1 == 2
            return xp.asarray(c)
        dtype = x.dtype
        if dtype.kind in "biu" and not isinstance(c, (numbers.Integral, np.integer, np.bool_)):
            dtype = np.result_type(dtype, np.float64 if isinstance(c, numbers.Real) else c)
        return xp.asarray(c, dtype=dtype)
    if isinstance(c, cuda.array_types):
        return c
    raise TypeError(f"unsupported operand type for a dezero op: {type(c).__name__}")


def _scalar_to_array(data):
    """A NumPy scalar or Python number as a 0-d array; anything else is a TypeError."""
    if isinstance(data, (np.generic, numbers.Number)):  # np.generic first: the cheap check
        array = np.asarray(data)
        if array.dtype.kind in "biufc":
            return array
    raise TypeError(
        f"Variable data must be a NumPy/CuPy ndarray, a NumPy scalar or a Python number, "
        f"not {type(data).__name__}"
    )


# =============================================================================
# Variable
# =============================================================================
_REPR_QUIET_DTYPES = ("float64", "int64", "bool")


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

    __slots__ = ("__weakref__", "creator", "data", "generation", "grad", "name", "requires_grad")
    __array_priority__ = 200

    def __init__(self, data=None, name: str | None = None):
        if data is not None and type(data) is not np.ndarray and not isinstance(
            data, cuda.array_types
        ):
            data = _scalar_to_array(data)
        self.data = data
        self.name = name
        self.grad = None
        self.creator = None
        self.generation = 0
        # False for constants (raw arrays wrapped by a Function, and what is computed from
        # constants only): the engine records no graph for them and skips their gradients.
        self.requires_grad = True

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
        if self.data.dtype.name not in _REPR_QUIET_DTYPES:  # as NumPy's repr does
            body += f", dtype={self.data.dtype.name}"
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
        Gradients of intermediate Variables are freed unless ``retain_grad``. With
        ``create_graph`` the backward pass runs each Function's ``backward`` on Variables and
        is itself recorded as a graph (for higher order derivatives); without it, Functions
        that define ``backward_array`` compute their gradients on plain arrays.

        Hooks registered with :meth:`register_hook` run once per pass, when their
        Variable's gradient is complete (see there).
        """
        if self.data is None:
            raise ValueError("backward() called on a Variable without data (data is None)")
        if self.grad is None:
            xp = cuda.get_array_module(self.data)
            self.grad = Variable(xp.ones_like(self.data))
        hooks = _settings.hooks
        var_hooks = None
        if _var_hooks:  # some Variable has hooks: they run as one more observer of the pass
            var_hooks = dezero.hooks.VariableHookRunner(self, create_graph)
            hooks = (*hooks, var_hooks)
        if self.creator is None:
            if var_hooks is not None:
                var_hooks.finish()
            return

        heap: list = []
        seen = set()
        counter = 0  # tie-breaker so that Functions themselves are never compared
        heappush, heappop = heapq.heappush, heapq.heappop
        f = self.creator
        seen.add(id(f))
        heappush(heap, (-f.generation, counter, f))
        old = _settings.enable_backprop
        _settings.enable_backprop = create_graph
        try:
            while heap:
                f = heappop(heap)[2]
                outputs = [ref() for ref in f.outputs]
                inputs = f.inputs
                if hooks:
                    for h in hooks:
                        h.backward_pre(f)
                if create_graph or f.backward_array is None:
                    gxs = _as_grads(f, f.backward(*[None if y is None else y.grad
                                                    for y in outputs]), create_graph)
                else:
                    if len(outputs) == 1:  # then alive: the pass reached f through it
                        g = outputs[0].grad
                        ys, gys = (outputs[0].data,), (None if g is None else g.data,)
                    else:
                        ys = [None if y is None else y.data for y in outputs]
                        gys = [None if y is None or y.grad is None else y.grad.data
                               for y in outputs]
                    gxs = f.backward_array([x.data for x in inputs], ys, gys)
                    if type(gxs) is not tuple:
                        gxs = tuple(gxs) if type(gxs) is list else (gxs,)
                    if len(gxs) != len(inputs):
                        _bad_count(f, gxs)
                if hooks:
                    for h in hooks:
                        h.backward_post(f, gxs)
                for x, gx in zip(inputs, gxs):
                    if gx is None or not x.requires_grad:
                        continue
                    xd = x.data
                    g = gx.data if create_graph else gx
                    if g.shape != xd.shape or (g.dtype != xd.dtype and xd.dtype.kind == "f"):
                        _bad_grad(f, g, xd)
                    if create_graph:
                        x.grad = gx if x.grad is None else x.grad + gx
                    else:
                        x.grad = Variable(gx if x.grad is None else x.grad.data + gx)
                    c = x.creator
                    if c is not None and id(c) not in seen:
                        seen.add(id(c))
                        counter += 1
                        heappush(heap, (-c.generation, counter, c))
                if not retain_grad:
                    for y in outputs:
                        if y is not None:
                            y.grad = None
            if var_hooks is not None:
                var_hooks.finish()  # the leaves' gradients are complete now
        finally:
            _settings.enable_backprop = old

    def register_hook(self, fn):
        """Call ``fn(grad)`` in every backward pass once this Variable's gradient is complete.

        ``grad`` is the gradient this pass computed for this Variable (a Variable; under
        ``create_graph`` one with a graph). ``fn`` may return a replacement (a Variable or an
        array of the same shape), which is what the pass stores and, for an intermediate
        Variable, what flows on to the Variables before it; None keeps ``grad``. A gradient
        left in ``.grad`` by an earlier pass is added after the hooks, as usual. Hooks run
        for leaves (at the end of the pass) and intermediate Variables (before the Function
        that made them propagates the gradient) alike, in the order they were registered.

        Returns a handle whose ``remove()`` unregisters ``fn``.

        >>> import numpy as np
        >>> x = Variable(np.array(3.0))
        >>> handle = x.register_hook(lambda g: g * 2)
        >>> (x * x).backward()
        >>> x.grad
        variable(12.0)
        >>> handle.remove()
        >>> x.cleargrad(); (x * x).backward(); x.grad
        variable(6.0)
        """
        return dezero.hooks.register_variable_hook(self, fn)

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

    # The common operators dispatch directly (they run for every op of every model).
    def __add__(self, other):
        if isinstance(other, Variable):
            return Add()(self, other)
        return AddConstant(_operand(other, self.data))(self)

    def __radd__(self, other):
        return AddConstant(_operand(other, self.data))(self)

    def __sub__(self, other):
        if isinstance(other, Variable):
            return Sub()(self, other)
        return AddConstant(-_operand(other, self.data))(self)

    def __rsub__(self, other):
        return ConstantMinus(_operand(other, self.data))(self)

    def __mul__(self, other):
        if isinstance(other, Variable):
            return Mul()(self, other)
        return MulConstant(_operand(other, self.data))(self)

    def __rmul__(self, other):
        return MulConstant(_operand(other, self.data))(self)

    def __truediv__(self, other):
        if isinstance(other, Variable):
            return Div()(self, other)
        return DivByConstant(_operand(other, self.data))(self)

    def __rtruediv__(self, other):
        return ConstantOver(_operand(other, self.data))(self)

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

    # --- reading the value into Python -------------------------------------------
    def item(self):
        """The value of a one-element Variable as a Python scalar."""
        if _settings.hooks:
            _value_read(self, "item()")
        return self.data.item()

    def __float__(self):
        if _settings.hooks:
            _value_read(self, "float()")
        return float(self.data)

    def __int__(self):
        if _settings.hooks:
            _value_read(self, "int()")
        return int(self.data)


# Variable hooks live here, not on the Variables: id(variable) -> (weakref, [fn, ...]). The
# dict is empty unless some Variable has a hook, and backward() checks that once per pass;
# the machinery that runs them is in dezero/hooks.py.
_var_hooks: dict[int, tuple] = {}


class Parameter(Variable):
    """A Variable that a Layer registers and an Optimizer updates.

    Its repr names the shape and dtype rather than printing the values (``p.data`` has them):

    >>> Parameter(np.zeros((784, 10), dtype=np.float32), name="W")
    parameter(W, shape=(784, 10), dtype=float32)
    """

    __slots__ = ()

    def __repr__(self):
        name = "" if self.name is None else f"{self.name}, "
        if self.data is None:
            return f"parameter({name}uninitialised)"
        return f"parameter({name}shape={tuple(self.data.shape)}, dtype={self.data.dtype.name})"


def as_variable(obj) -> Variable:
    """Return ``obj`` if it is a Variable, else wrap it (arrays and scalars) in one."""
    if isinstance(obj, Variable):
        return obj
    return Variable(obj)


# =============================================================================
# Function
# =============================================================================
class FunctionHook:
    """Observes every Function call (forward, and its part of a backward pass) in a thread.

    Subclass it and override what you need; install it with ``with hook:`` (for the calling
    thread only, nestable). Tools are built on it (``dezero.onnx``'s trace, the profiler,
    anomaly detection, ``dezero.jit``'s recorder); with no hook installed the engine pays
    one attribute read per call.

    - ``forward_pre(f, inputs)``: before ``f.forward`` (``inputs`` as passed to the call);
    - ``forward_post(f, xs, outputs)``: after it, with the input and output Variables;
    - ``backward_pre(f)`` / ``backward_post(f, gxs)``: around the gradient computation of
      ``f`` in ``Variable.backward`` (``gxs``: one gradient per input, arrays or Variables);
    - ``update_pre(optimizer)`` / ``update_post(optimizer)``: around ``Optimizer.update()``.
    - ``value_read(var, how)``: before a Variable's value is read into Python (``how``:
      ``"float()"``, ``"int()"``, ``"item()"``).
    """

    def forward_pre(self, f, inputs) -> None:
        pass

    def forward_post(self, f, xs, outputs) -> None:
        pass

    def backward_pre(self, f) -> None:
        pass

    def backward_post(self, f, gxs) -> None:
        pass

    def update_pre(self, optimizer) -> None:
        pass

    def update_post(self, optimizer) -> None:
        pass

    def value_read(self, var, how: str) -> None:
        pass

    def __enter__(self):
        _settings.hooks = (*_settings.hooks, self)
        return self

    def __exit__(self, *exc):
        _settings.hooks = tuple(h for h in _settings.hooks if h is not self)


class Function:
    """Base of every op: subclasses implement ``forward`` on arrays, ``backward`` on Variables.

    Calling a Function wraps its outputs in Variables and, when ``Config.enable_backprop``,
    records it as their creator (outputs are held weakly so that graphs free themselves).

    ``backward(*gys)`` is written with dezero functions, so that its own graph can be
    recorded (``create_graph=True``, derivatives of any order). A Function may also define
    ``backward_array(xs, ys, gys)``: the same gradients on plain arrays (``xs`` the input
    arrays, ``ys`` the output arrays, ``gys`` the output gradients, each a sequence; an
    entry is None where an output was freed or has no gradient), returning one array or a
    tuple with an entry per input (None: no gradient). The
    engine calls it whenever no graph of the backward pass is wanted; it may read
    ``self.inputs[i].requires_grad`` to skip gradients that nobody needs.
    """

    backward_array = None

    def __call__(self, *inputs):
        hooks = _settings.hooks
        if hooks:
            for h in hooks:
                h.forward_pre(self, inputs)
        # Raw arrays and scalars become constant Variables: nobody can ask for their grad.
        if len(inputs) == 1:
            x = inputs[0]
            if not isinstance(x, Variable):
                x = _constant(x)
            xs = (x,)
            need_grad = x.requires_grad
            ys = self.forward(x.data)
        elif len(inputs) == 2:
            x0, x1 = inputs
            if not isinstance(x0, Variable):
                x0 = _constant(x0)
            if not isinstance(x1, Variable):
                x1 = _constant(x1)
            xs = (x0, x1)
            need_grad = x0.requires_grad or x1.requires_grad
            ys = self.forward(x0.data, x1.data)
        else:
            need_grad = False
            xs = []
            for x in inputs:
                if isinstance(x, Variable):
                    need_grad = need_grad or x.requires_grad
                else:
                    x = _constant(x)
                xs.append(x)
            ys = self.forward(*[x.data for x in xs])
        if type(ys) is tuple or type(ys) is list:
            outputs = [Variable(y) for y in ys]
        else:
            outputs = [Variable(ys)]
        if _settings.enable_backprop:
            if need_grad:
                gen = xs[0].generation
                for x in xs:
                    if x.generation > gen:
                        gen = x.generation
                self.generation = gen
                gen += 1
                for y in outputs:
                    y.creator = self
                    y.generation = gen
                self.inputs = xs
                self.outputs = [weakref.ref(y) for y in outputs]
            else:  # a function of constants only is a constant (no graph to keep)
                for y in outputs:
                    y.requires_grad = False
        if hooks:
            for h in hooks:
                h.forward_post(self, xs, outputs)
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError


def _value_read(var, how: str) -> None:
    for h in _settings.hooks:
        h.value_read(var, how)


def _as_grads(f: Function, gxs, create_graph: bool):
    """What a Variable-level ``backward`` returned, as one gradient per input: Variables
    under ``create_graph``, arrays otherwise (None: no gradient)."""
    if type(gxs) is not tuple and type(gxs) is not list:
        gxs = (gxs,)
    if len(gxs) != len(f.inputs):
        _bad_count(f, gxs)
    if create_graph:
        return [gx if gx is None or isinstance(gx, Variable) else Variable(gx) for gx in gxs]
    return [gx.data if isinstance(gx, Variable) else gx for gx in gxs]


def _bad_count(f: Function, gxs) -> None:
    raise ValueError(
        f"{type(f).__name__}.backward returned {len(gxs)} gradient(s) for "
        f"{len(f.inputs)} input(s)"
    )


def _bad_grad(f: Function, g, x) -> None:
    """The engine's contract: a gradient has its input's shape, and a float input's dtype."""
    if g.shape != x.shape:
        raise ValueError(
            f"{type(f).__name__}.backward returned a gradient of shape {g.shape} for an "
            f"input of shape {x.shape}"
        )
    raise TypeError(
        f"{type(f).__name__}.backward returned a gradient of dtype {g.dtype} for an "
        f"input of dtype {x.dtype}"
    )


def unbroadcast(g, x):
    """Sum the gradient ``g`` back to the shape of the input ``x`` and cast it to ``x``'s
    float dtype: the one place where broadcast gradients are reduced.

    ``g`` is an array (array-level backward) or a Variable (graph-recording backward);
    ``x`` is anything with ``shape`` and ``dtype``. Returns ``g`` itself when it fits.
    """
    if g.shape != x.shape:
        if isinstance(g, Variable):
            g = dezero.functions.sum_to(g, x.shape)
        else:
            g = sum_to(g, x.shape)
    if g.dtype != x.dtype and x.dtype.kind == "f":
        if isinstance(g, Variable):
            g = dezero.functions.astype(g, x.dtype)
        else:
            g = g.astype(x.dtype)
    return g


# =============================================================================
# Arithmetic
# =============================================================================
class _Arithmetic(Function):
    """An op whose gradient formula uses only operators and ``unbroadcast``, so it holds
    for arrays and Variables alike: written once, as ``backward_array``, and applied to
    the input Variables when a graph of the backward pass is recorded."""

    def backward(self, *gys):
        return self.backward_array(self.inputs, None, gys)


class Add(_Arithmetic):
    def forward(self, x0, x1):
        return x0 + x1

    def backward_array(self, xs, ys, gys):
        # unbroadcast is called only where a shape or dtype differs: the common case of the
        # hottest ops pays no extra call (it counts in replayed steps, dezero.jit)
        (x0, x1), gy = xs, gys[0]
        s, d = gy.shape, gy.dtype
        return (gy if x0.shape == s and x0.dtype == d else unbroadcast(gy, x0),
                gy if x1.shape == s and x1.dtype == d else unbroadcast(gy, x1))


class Sub(_Arithmetic):
    def forward(self, x0, x1):
        return x0 - x1

    def backward_array(self, xs, ys, gys):
        return unbroadcast(gys[0], xs[0]), unbroadcast(-gys[0], xs[1])


class Mul(_Arithmetic):
    def forward(self, x0, x1):
        return x0 * x1

    def backward_array(self, xs, ys, gys):
        (x0, x1), (gy,) = xs, gys
        x0_, x1_ = self.inputs
        gx0 = gx1 = None
        if x0_.requires_grad:
            gx0 = gy * x1
            if gx0.shape != x0.shape or gx0.dtype != x0.dtype:
                gx0 = unbroadcast(gx0, x0)
        if x1_.requires_grad:
            gx1 = gy * x0
            if gx1.shape != x1.shape or gx1.dtype != x1.dtype:
                gx1 = unbroadcast(gx1, x1)
        return gx0, gx1


class Div(_Arithmetic):
    def forward(self, x0, x1):
        return x0 / x1

    def backward_array(self, xs, ys, gys):
        (x0, x1), (gy,) = xs, gys
        gx0 = gy / x1
        gx1 = -gx0 * x0 / x1 if self.inputs[1].requires_grad else None
        return unbroadcast(gx0, x0), None if gx1 is None else unbroadcast(gx1, x1)


# Ops with a constant operand (a scalar or an array that is not a Variable) are the common
# case (x * 2, x + 1e-8, ...). They get their own one-input Functions: no gradient is ever
# computed for the constant, and nothing is summed back when it is a scalar.
class _ConstantOp(_Arithmetic):
    def __init__(self, c):
        self.c = c


class AddConstant(_ConstantOp):
    """``x + c``."""

    def forward(self, x):
        return x + self.c

    def backward_array(self, xs, ys, gys):
        return unbroadcast(gys[0], xs[0])


class ConstantMinus(_ConstantOp):
    """``c - x``."""

    def forward(self, x):
        return self.c - x

    def backward_array(self, xs, ys, gys):
        return unbroadcast(-gys[0], xs[0])


class MulConstant(_ConstantOp):
    """``x * c``."""

    def forward(self, x):
        return x * self.c

    def backward_array(self, xs, ys, gys):
        return unbroadcast(gys[0] * self.c, xs[0])


class DivByConstant(_ConstantOp):
    """``x / c``."""

    def forward(self, x):
        return x / self.c

    def backward_array(self, xs, ys, gys):
        return unbroadcast(gys[0] / self.c, xs[0])


class ConstantOver(_ConstantOp):
    """``c / x``."""

    def forward(self, x):
        return self.c / x

    def backward_array(self, xs, ys, gys):
        (x,) = xs
        return unbroadcast(gys[0] * (-self.c) / (x * x), x)


class Neg(_Arithmetic):
    def forward(self, x):
        return -x

    def backward_array(self, xs, ys, gys):
        return -gys[0]


class Pow(Function):
    """``x ** c`` for a constant exponent ``c``."""

    def __init__(self, c):
        # a NumPy float64 scalar exponent must not promote a float32 base
        self.c = c.item() if isinstance(c, np.generic) else c

    def forward(self, x):
        c = self.c
        if c == 2:
            return x * x
        if x.dtype.kind == "f" and not float(c).is_integer() and x.size:
            xp = cuda.get_array_module(x)
            if bool(xp.any(x < 0)):
                raise ValueError(
                    f"pow: negative base with the non-integer exponent {c} has no real value"
                )
        return x**c

    def backward(self, gy):
        (x,) = self.inputs
        c = self.c
        if c == 2:
            return gy * x * 2
        return gy * (x ** (c - 1) * c)


class PowVar(Function):
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
        F = dezero.functions
        y = self.outputs[0]()
        gx0 = gy * x1 * x0 ** (x1 - 1)
        # d/dx1 needs log(x0); where x0 <= 0 the exponent must be an integer and the
        # gradient with respect to it is taken as 0, as in NumPy-based frameworks.
        positive = x0.data > 0
        safe = x0 if bool(positive.all()) else F.where(positive, x0, 1.0)
        gx1 = gy * y * F.log(safe)
        return unbroadcast(gx0, x0), unbroadcast(gx1, x1)


def _operand(c, x):
    """The constant operand of an arithmetic op with the array ``x``.

    A Python float/int meeting a floating array stays a Python scalar: NumPy never lets it
    change the array's dtype, and scalar arithmetic is the fastest path. (NumPy 1.x promotes
    a 0-d float32 array with a Python scalar to float64, so there 0-d arrays get a cast.)
    """
    t = type(c)
    if (t is float or t is int) and x.dtype.kind in "fc" and (_NUMPY2 or x.ndim):
        return c
    return _constant_like(c, x)


def _constant(x) -> Variable:
    """Wrap a raw array or scalar (not a Variable) as a constant input of a Function."""
    x = Variable(x)
    x.requires_grad = False
    return x


def _lhs(x):
    return x if isinstance(x, Variable) else _constant(x)


# The functions below are the operators' dispatch (Variable.__add__ and friends) for callers
# whose left operand may be a raw array or scalar.
def add(x0, x1):
    return _lhs(x0).__add__(x1)


def sub(x0, x1):
    return _lhs(x0).__sub__(x1)


def rsub(x0, x1):
    """``x1 - x0`` (the reflected form of ``-``)."""
    if isinstance(x1, Variable):
        return x1.__sub__(x0)
    return _lhs(x0).__rsub__(x1)


def mul(x0, x1):
    return _lhs(x0).__mul__(x1)


def div(x0, x1):
    return _lhs(x0).__truediv__(x1)


def rdiv(x0, x1):
    """``x1 / x0`` (the reflected form of ``/``)."""
    if isinstance(x1, Variable):
        return x1.__truediv__(x0)
    return _lhs(x0).__rtruediv__(x1)


def neg(x):
    return Neg()(x)


def pow(x, c):
    """``x ** c``: ``c`` a Python/NumPy scalar (constant) or a Variable/array (differentiable)."""
    x = _lhs(x)
    if isinstance(c, _SCALAR_TYPES):
        return Pow(c)(x)
    if isinstance(c, cuda.array_types) and c.ndim == 0:
        return Pow(c.item())(x)
    if isinstance(c, (Variable, *cuda.array_types)):
        return PowVar()(x, _constant_like(c, x.data))
    raise TypeError(f"unsupported exponent type for pow: {type(c).__name__}")


def rpow(x, c):
    """``c ** x`` (reflected): the base is a constant, the exponent the Variable ``x``."""
    x = _lhs(x)
    return PowVar()(_constant_like(c, x.data), x)


def setup_variable() -> None:
    """Kept for the book: operators are installed on Variable at class definition already."""


import dezero.functions  # noqa: E402  (cycle: functions build on this module)
import dezero.hooks  # noqa: E402  (cycle: the Variable-hook machinery builds on it too)
from dezero.hooks import HookHandle  # noqa: E402, F401  (re-exported)
