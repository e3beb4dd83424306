"""The engine: Config, Variable, Parameter, Function, the backward pass and arithmetic.

Everything a graph needs lives here; the op library (``dezero.functions``) builds on it.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
from typing import Any
from weakref import ref as _weakref

import numpy as np

from dezero import cuda, hints
from dezero.array_utils import PLAIN_SCALARS as _PLAIN
from dezero.array_utils import as_array, operand_like, scalar_to_array, sum_to
from dezero.array_utils import operand_like as _op
from dezero.hooks import (
    FunctionHook,
    HookHandle,
    has_variable_hooks,
    register_variable_hook,
    run_variable_hooks,
    variable_hooks,
)
from dezero.hooks import active as _active

__all__ = [
    "BackwardPass",
    "Config",
    "Function",
    "FunctionHook",
    "HookHandle",
    "Parameter",
    "Variable",
    "accumulate_grad",
    "add",
    "add_grads",
    "as_array",
    "as_variable",
    "constant",
    "constant_like",
    "current_pass",
    "div",
    "grad",
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
# it also holds the backward pass running in the thread (current_pass()).
_settings = Config._local
type(_settings).backward_pass = None


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
_ndarray = np.ndarray
_generic = np.generic


def constant_like(c, x):
    """Turn the scalar or array ``c`` into an operand that can meet ``x``'s data in an op (a
    Variable stays one): see ``dezero.array_utils.operand_like``."""
    return c if isinstance(c, Variable) else operand_like(c, x)


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
        if data is not None and type(data) is not _ndarray and not isinstance(
            data, cuda.array_types
        ):
            data = scalar_to_array(data)
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
        if _active.hooks:
            for h in _active.hooks:
                h.cleargrad(self)

    def unchain(self) -> None:
        """Forget the creator: this Variable becomes a leaf."""
        self.creator = None

    def unchain_backward(self) -> None:
        """Cut the graph behind this Variable so that the past can be freed (truncated BPTT)."""
        stack = [] if self.creator is None else [self.creator]
        while stack:  # each input is unchained when first met: nothing is visited twice
            for x in stack.pop().inputs:
                if x.creator is not None:
                    stack.append(x.creator)
                    x.unchain()

    def backward(self, retain_grad: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``grad`` of every Variable upstream.

        The pass is :func:`grad`'s, seeded with ``self.grad`` (ones when None), and stores
        what it computes into ``.grad``: each leaf's gradient is added to what its ``.grad``
        holds (PyTorch's and the book's accumulation); the gradients of intermediate
        Variables are freed as soon as they have been used, unless ``retain_grad``, which
        keeps them in ``.grad`` too. With ``create_graph`` the backward pass is itself
        recorded as a graph (Functions run their ``backward`` on Variables), for higher order
        derivatives; without it, Functions that define ``backward_array`` compute on arrays.

        Hooks registered with :meth:`register_hook` run once per pass, when their
        Variable's gradient is complete (see there).
        """
        if self.data is None:
            raise ValueError("backward() called on a Variable without data (data is None)")
        seed = self.grad
        if seed is None:
            seed = Variable(cuda.get_array_module(self.data).ones_like(self.data))
        self.grad = None  # the seed: the pass stores it back where it is kept
        _backprop((self,), (seed if create_graph else seed.data,),
                  BackwardPass(create_graph, retain_grad, True))

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
        return register_variable_hook(self, fn)

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
        return AddConstant(other if type(other) in _PLAIN else _op(other, self.data))(self)

    def __radd__(self, other):
        return AddConstant(other if type(other) in _PLAIN else _op(other, self.data))(self)

    def __sub__(self, other):
        if isinstance(other, Variable):
            return Sub()(self, other)
        if type(other) in _PLAIN:
            return AddConstant(-other)(self)
        return Sub()(self, _constant(_op(other, self.data)))  # the array as it is: an input

    def __rsub__(self, other):
        return ConstantMinus(other if type(other) in _PLAIN else _op(other, self.data))(self)

    def __mul__(self, other):
        if isinstance(other, Variable):
            return Mul()(self, other)
        return MulConstant(other if type(other) in _PLAIN else _op(other, self.data))(self)

    def __rmul__(self, other):
        return MulConstant(other if type(other) in _PLAIN else _op(other, self.data))(self)

    def __truediv__(self, other):
        if isinstance(other, Variable):
            return Div()(self, other)
        return DivByConstant(other if type(other) in _PLAIN else _op(other, self.data))(self)

    def __rtruediv__(self, other):
        return ConstantOver(other if type(other) in _PLAIN else _op(other, self.data))(self)

    # --- reading the value into Python -------------------------------------------
    def item(self):
        """The value of a one-element Variable as a Python scalar."""
        return _value_read(self, "item()").item()

    def __float__(self):
        return float(_value_read(self, "float()"))

    def __int__(self):
        return int(_value_read(self, "int()"))


hints.install(Variable)  # "did you mean" for x.numpy(), x.detach()...


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
class Function:
    """Base of every op: subclasses implement ``forward`` on arrays and their gradient once.

    Calling a Function wraps its outputs in Variables and, when ``Config.enable_backprop``,
    records it as their creator (outputs are held weakly so that graphs free themselves).

    The gradient, in one of two forms:

    - ``backward(*gys)`` (the book's form): written with dezero functions on Variables, so
      that its own graph can be recorded (``create_graph=True``, derivatives of any order);
    - ``backward_array(xs, ys, gys)``: ``xs`` the inputs, ``ys`` the outputs, ``gys`` the
      output gradients (sequences; an entry is None where an output was freed or has no
      gradient); returns one gradient or a tuple with an entry per input (None: no
      gradient); it may read ``self.inputs[i].requires_grad`` to skip gradients nobody
      needs. The engine calls it on arrays whenever no graph of the backward pass is
      wanted. Written with operators and names that arrays and Variables share (``ops(x)``
      in ``dezero.functions`` is ``xp`` for arrays and ``F`` for Variables), the same
      formula serves both: the default ``backward`` applies it to the input and output
      Variables. A Function whose array form cannot take Variables (it works in place, or
      calls array-only kernels) defines ``backward`` as well.
    """

    # slots for what the engine sets (faster than a dict); other attributes of subclasses
    # go to the instance dict as usual
    __slots__ = ("__dict__", "__weakref__", "generation", "inputs", "outputs")
    backward_array = None

    def __call__(self, *inputs):
        hooks = _active.hooks
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
            gen = x.generation
            ys = self.forward(x.data)
        else:
            xs = [x if isinstance(x, Variable) else _constant(x) for x in inputs]
            need_grad = False
            gen = 0
            for x in xs:
                need_grad = need_grad or x.requires_grad
                if x.generation > gen:
                    gen = x.generation
            ys = self.forward(*[x.data for x in xs])
        if type(ys) is tuple or type(ys) is list:
            outputs = [Variable(y) for y in ys]
        else:
            outputs = (Variable(ys),)
        if _settings.enable_backprop:
            if need_grad:
                self.generation = gen
                gen += 1
                for y in outputs:
                    y.creator = self
                    y.generation = gen
                self.inputs = xs
                self.outputs = [_weakref(y) for y in outputs] if len(outputs) > 1 else [
                    _weakref(outputs[0])]
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
        if self.backward_array is None:
            raise NotImplementedError(
                f"{type(self).__name__} defines neither backward nor backward_array")
        return self.backward_array(self.inputs, [ref() for ref in self.outputs], gys)


def _value_read(var, how: str):
    for h in _active.hooks:  # observers hear of it first (dezero.jit refuses it)
        h.value_read(var, how)
    return var.data


# =============================================================================
# The backward pass
# =============================================================================
class BackwardPass:
    """A backward pass: what :func:`grad` and ``Variable.backward`` run.

    ``current_pass()`` returns the one running in the calling thread, for observers
    (:class:`FunctionHook`): where it keeps a Variable's gradient (:meth:`writes_grad`) and
    what it holds (:meth:`gradient`). Its gradients are arrays, or Variables under
    ``create_graph``.
    """

    __slots__ = ("create_graph", "hooked", "into_grad", "retain_grad", "table")

    def __init__(self, create_graph: bool, retain_grad: bool, into_grad: bool):
        self.create_graph = create_graph
        self.retain_grad = retain_grad
        self.into_grad = into_grad  # True: backward() (into .grad); False: grad() (pure)
        self.table: dict[int, Any] = {}  # id(var) -> this pass's gradient of var
        self.hooked = bool(variable_hooks)  # some Variable has hooks: the careful path

    def writes_grad(self, var) -> bool:
        """True when this pass adds ``var``'s gradients into ``var.grad`` as they arrive
        (``backward()``: leaves, and every Variable under ``retain_grad``); False when it
        keeps them in its own table (intermediate Variables, :func:`grad`, and Variables
        with hooks until their gradient is complete)."""
        return (self.into_grad and (self.retain_grad or var.creator is None)
                and not (self.hooked and has_variable_hooks(var)))

    def gradient(self, var):
        """The gradient this pass holds for ``var`` now (None: none yet)."""
        g = var.grad if self.writes_grad(var) else self.table.get(id(var))
        return g.data if isinstance(g, Variable) else g

    def store(self, x, gx) -> None:
        """Add ``gx`` (an array, or a Variable under ``create_graph``) to ``x``'s gradient."""
        into = self.writes_grad(x)
        added = (x.grad if into else self.table.get(id(x))) is not None
        if into:
            accumulate_grad(x, gx)
        else:
            self.table[id(x)] = add_grads(self.table.get(id(x)), gx)
        for h in _active.hooks:
            h.accumulate(x, gx.data if self.create_graph else gx, added)

    def take(self, y, keep: bool):
        """``y``'s complete gradient, which its creator propagates now (its Variable hooks
        run on it first); dropped from the table unless ``keep``."""
        if y is None:
            return None
        if self.writes_grad(y):
            g = y.grad
            return g if g is None or self.create_graph else g.data
        g = self.table.get(id(y)) if keep else self.table.pop(id(y), None)
        if g is not None and self.hooked and has_variable_hooks(y):
            g = self.finish(y, g)
            if keep:
                self.table[id(y)] = g
        return g

    def finish(self, x, g):
        """Run ``x``'s hooks on its complete gradient ``g``; add the result to ``x.grad``
        where the pass keeps it there. Returns the result."""
        var = run_variable_hooks(x, g if isinstance(g, Variable) else Variable(g))
        g = var if self.create_graph else var.data
        if self.into_grad and (self.retain_grad or x.creator is None):
            accumulate_grad(x, g)
        return g


def current_pass() -> BackwardPass | None:
    """The backward pass running in the calling thread, or None."""
    return _settings.backward_pass


def add_grads(old, new):
    """The engine's accumulation rule: ``old + new`` (arrays, or Variables under
    ``create_graph``), ``new`` when there is nothing yet (``old`` is None). A sum of 0-d
    arrays stays an array (NumPy's own is a scalar)."""
    s = new if old is None else old + new
    return np.asarray(s) if isinstance(s, _generic) else s  # (isinstance: the cheap check)


def accumulate_grad(var, g) -> None:
    """Add the gradient ``g`` (an array, or a Variable) into ``var.grad``: what a backward
    pass does with each gradient it keeps in ``.grad``."""
    if isinstance(g, Variable):
        var.grad = add_grads(var.grad, g)
    else:
        var.grad = Variable(g if var.grad is None else add_grads(var.grad.data, g))


def _backprop(roots, seeds, p: BackwardPass, stop: int = 0, keep=()) -> None:
    """The pass: each Function reached from ``roots`` (seeded with ``seeds``) is visited once,
    in descending generation (a heap), when its outputs' gradients are complete; its input
    gradients go to ``p.store``. Functions below generation ``stop`` are not visited; the
    gradients of the Variables in ``keep`` (ids) stay in the table."""
    heap, seen, counter = [], set(), 0  # counter: Functions themselves are never compared
    for y in roots:
        f = y.creator
        if f is not None and id(f) not in seen and f.generation >= stop:
            seen.add(id(f))
            counter += 1
            heapq.heappush(heap, (-f.generation, counter, f))
    create_graph, hooks, into_grad, table = p.create_graph, _active.hooks, p.into_grad, p.table
    careful = p.retain_grad or p.hooked or bool(keep)
    slow_store = bool(hooks) or p.retain_grad or p.hooked  # events, or the careful rules
    push, pop, get = heapq.heappush, heapq.heappop, table.get
    saved = _settings.enable_backprop, _settings.backward_pass
    _settings.enable_backprop, _settings.backward_pass = create_graph, p
    try:
        for y, g in zip(roots, seeds):
            p.store(y, g)
        while heap:
            f = pop(heap)[2]
            refs, inputs = f.outputs, f.inputs
            if careful:
                outputs = [ref() for ref in refs]
                gys = [p.take(y, id(y) in keep) for y in outputs]
            elif len(refs) == 1:  # then alive: the pass reached f through it
                outputs = (refs[0](),)
                gys = (table.pop(id(outputs[0]), None),)
            else:
                outputs = [ref() for ref in refs]
                gys = [None if y is None else table.pop(id(y), None) for y in outputs]
            if hooks:
                for h in hooks:
                    h.backward_pre(f)
            bw = f.backward_array
            if create_graph or bw is None:
                gxs = _backward_variables(f, gys, create_graph)
            else:
                xs = (inputs[0].data,) if len(inputs) == 1 else [x.data for x in inputs]
                ys = (outputs[0].data,) if len(outputs) == 1 else [
                    None if y is None else y.data for y in outputs]
                gxs = bw(xs, ys, gys)
                if type(gxs) is not tuple:
                    gxs = tuple(gxs) if type(gxs) is list else (gxs,)
                if len(gxs) != len(inputs):
                    _bad_count(f, gxs)
            if hooks:  # observers get arrays (NumPy returns scalars from 0-d arithmetic)
                if create_graph:
                    arrays = [None if g is None else g.data for g in gxs]
                else:
                    gxs = arrays = tuple(np.asarray(g) if isinstance(g, _generic) else g
                                         for g in gxs)
                for h in hooks:
                    h.backward_post(f, arrays)
            for x, gx in zip(inputs, gxs):
                if gx is None or not x.requires_grad:
                    continue
                g = gx.data if create_graph else gx
                xd = x.data
                if g.shape != xd.shape or (g.dtype is not xd.dtype and g.dtype != xd.dtype
                                           and xd.dtype.kind == "f"):
                    _bad_grad(f, g, xd)
                c = x.creator
                if slow_store:
                    p.store(x, gx)
                elif c is None and into_grad:  # a leaf: into its .grad as gradients arrive
                    accumulate_grad(x, gx)
                else:
                    old = get(id(x))
                    table[id(x)] = gx if old is None else add_grads(old, gx)
                if c is not None and id(c) not in seen and c.generation >= stop:
                    seen.add(id(c))
                    counter += 1
                    push(heap, (-c.generation, counter, c))
        if p.hooked:  # the hooked Variables that no Function took (leaves) are complete now
            for key, g in list(p.table.items()):
                entry = variable_hooks.get(key)
                x = entry[0]() if entry is not None and entry[1] else None
                if x is not None and (x.creator is None or id(x.creator) not in seen):
                    p.table[key] = p.finish(x, g)
    finally:
        _settings.enable_backprop, _settings.backward_pass = saved


def _backward_variables(f: Function, gys, create_graph: bool):
    """``f.backward`` on Variables (the book's form): one gradient per input, Variables under
    ``create_graph`` (the pass records their graph), arrays otherwise (None: no gradient)."""
    gxs = f.backward(*[g if g is None or create_graph else Variable(g) for g in gys])
    if type(gxs) is not tuple and type(gxs) is not list:
        gxs = (gxs,)
    if len(gxs) != len(f.inputs):
        _bad_count(f, gxs)
    if create_graph:
        return [g if g is None or isinstance(g, Variable) else Variable(g) for g in gxs]
    return [g.data if isinstance(g, Variable) else g for g in gxs]


def grad(outputs, inputs, grad_outputs=None, create_graph: bool = False):
    """The gradients of ``outputs`` with respect to ``inputs``, changing no ``.grad``.

    Parameters
    ----------
    outputs : Variable or sequence of Variables
        What to differentiate (their gradients are summed: a vector-Jacobian product).
    inputs : Variable or sequence of Variables
        With respect to what.
    grad_outputs : array, Variable or sequence of them, optional
        The seed of each output (ones where None).
    create_graph : bool
        Record the backward pass as a graph, so that the gradients can be differentiated
        again.

    Returns
    -------
    tuple
        One Variable per input (None where an input is not reached), in the order of
        ``inputs``. ``.grad`` of every Variable is left as it was.

    Examples
    --------
    >>> import numpy as np
    >>> x = Variable(np.array(3.0))
    >>> y = x ** 3
    >>> (gx,) = grad(y, x, create_graph=True)
    >>> gx, grad(gx, x)[0], x.grad is None
    (variable(27.0), variable(18.0), True)
    """
    outputs, inputs = _variables(outputs, "outputs"), _variables(inputs, "inputs")
    if grad_outputs is None or not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    seeds = []
    for y, g in zip(outputs, grad_outputs):
        g = as_variable(cuda.get_array_module(y.data).ones_like(y.data) if g is None else g)
        if g.shape != y.shape:
            raise ValueError(f"grad: a grad_output of shape {g.shape} for an output of "
                             f"shape {y.shape}")
        seeds.append(g if create_graph else g.data)
    p = BackwardPass(create_graph, False, False)
    _backprop(outputs, seeds, p, min((x.generation for x in inputs), default=0),
              {id(x) for x in inputs})
    return tuple(None if g is None else as_variable(g) for g in map(p.table.get, map(id, inputs)))


def _variables(vs, name: str) -> list:
    vs = [vs] if isinstance(vs, Variable) else list(vs)
    for v in vs:
        if not isinstance(v, Variable):
            raise TypeError(f"grad: {name} must be Variables, got {type(v).__name__}")
    return vs


def _bad_count(f: Function, gxs) -> None:
    raise ValueError(f"{type(f).__name__}.backward returned {len(gxs)} gradient(s) for "
                     f"{len(f.inputs)} input(s)")


def _bad_grad(f: Function, g, x) -> None:
    """The engine's contract: a gradient has its input's shape, and a float input's dtype."""
    what = (("shape", g.shape, x.shape, ValueError) if g.shape != x.shape
            else ("dtype", g.dtype, x.dtype, TypeError))
    raise what[3](f"{type(f).__name__}.backward returned a gradient of {what[0]} {what[1]} "
                  f"for an input of {what[0]} {what[2]}")


def unbroadcast(g, x):
    """Sum the gradient ``g`` back to the shape of the input ``x`` and cast it to ``x``'s
    float dtype: the one place where broadcast gradients are reduced.

    ``g`` is an array (array-level backward) or a Variable (graph-recording backward);
    ``x`` is anything with ``shape`` and ``dtype``. Returns ``g`` itself when it fits.
    """
    if g.shape != x.shape:  # a Variable's sum_to is installed by dezero.functions
        g = g.sum_to(x.shape) if isinstance(g, Variable) else sum_to(g, x.shape)
    if g.dtype != x.dtype and x.dtype.kind == "f":
        g = g.astype(x.dtype)
    return g


# =============================================================================
# Arithmetic
# =============================================================================
# The arithmetic ops write their gradient once, with operators only: it holds for arrays and
# Variables alike (Function.backward applies it to Variables). They call unbroadcast only
# where a shape or dtype differs: the common case of the hottest ops pays no extra call.
class Add(Function):
    def forward(self, x0, x1):
        return x0 + x1

    def backward_array(self, xs, ys, gys):
        (x0, x1), gy = xs, gys[0]
        s, d = gy.shape, gy.dtype
        return (gy if x0.shape == s and x0.dtype == d else unbroadcast(gy, x0),
                gy if x1.shape == s and x1.dtype == d else unbroadcast(gy, x1))


class Sub(Function):
    def forward(self, x0, x1):
        return x0 - x1

    def backward_array(self, xs, ys, gys):
        (x0, x1), gy = xs, gys[0]
        s, d = gy.shape, gy.dtype
        gx1 = -gy
        return (gy if x0.shape == s and x0.dtype == d else unbroadcast(gy, x0),
                gx1 if x1.shape == s and x1.dtype == d else unbroadcast(gx1, x1))


class Mul(Function):
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


class Div(Function):
    def forward(self, x0, x1):
        return x0 / x1

    def backward_array(self, xs, ys, gys):
        (x0, x1), (gy,) = xs, gys
        gx0 = gy / x1
        gx1 = -gx0 * x0 / x1 if self.inputs[1].requires_grad else None
        if gx0.shape != x0.shape or gx0.dtype != x0.dtype:
            gx0 = unbroadcast(gx0, x0)
        if gx1 is not None and (gx1.shape != x1.shape or gx1.dtype != x1.dtype):
            gx1 = unbroadcast(gx1, x1)
        return gx0, gx1


# Ops with a constant operand (a scalar or an array that is not a Variable) are the common
# case (x * 2, x + 1e-8, ...). They get their own one-input Functions: no gradient is ever
# computed for the constant, and nothing is summed back when it is a scalar.
class _ConstantOp(Function):
    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c


class AddConstant(_ConstantOp):
    """``x + c``."""

    def forward(self, x):
        return x + self.c

    def backward_array(self, xs, ys, gys):
        g, x = gys[0], xs[0]
        return g if g.shape == x.shape and g.dtype == x.dtype else unbroadcast(g, x)


class ConstantMinus(_ConstantOp):
    """``c - x``."""

    def forward(self, x):
        return self.c - x

    def backward_array(self, xs, ys, gys):
        g, x = -gys[0], xs[0]
        return g if g.shape == x.shape and g.dtype == x.dtype else unbroadcast(g, x)


class MulConstant(_ConstantOp):
    """``x * c``."""

    def forward(self, x):
        return x * self.c

    def backward_array(self, xs, ys, gys):
        g, x = gys[0] * self.c, xs[0]
        return g if g.shape == x.shape and g.dtype == x.dtype else unbroadcast(g, x)


class DivByConstant(_ConstantOp):
    """``x / c``."""

    def forward(self, x):
        return x / self.c

    def backward_array(self, xs, ys, gys):
        g, x = gys[0] / self.c, xs[0]
        return g if g.shape == x.shape and g.dtype == x.dtype else unbroadcast(g, x)


class ConstantOver(_ConstantOp):
    """``c / x``."""

    def forward(self, x):
        return self.c / x

    def backward_array(self, xs, ys, gys):
        (x,) = xs
        return unbroadcast(gys[0] * (-self.c) / (x * x), x)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward_array(self, xs, ys, gys):
        return -gys[0]


def _constant(x) -> Variable:
    """Wrap a raw array or scalar (not a Variable) as a constant input of a Function."""
    x = Variable(x)
    x.requires_grad = False
    return x


def constant(x) -> Variable:
    """``x`` itself if it is a Variable, else ``x`` (an array or scalar) wrapped as a constant
    Variable: an input of a Function whose gradient nobody can ask for."""
    return x if isinstance(x, Variable) else _constant(x)


# The functions below are the operators' dispatch (Variable.__add__ and friends) for callers
# whose left operand may be a raw array or scalar.
def add(x0, x1):
    return constant(x0).__add__(x1)


def sub(x0, x1):
    return constant(x0).__sub__(x1)


def rsub(x0, x1):
    """``x1 - x0`` (the reflected form of ``-``)."""
    if isinstance(x1, Variable):
        return x1.__sub__(x0)
    return constant(x0).__rsub__(x1)


def mul(x0, x1):
    return constant(x0).__mul__(x1)


def div(x0, x1):
    return constant(x0).__truediv__(x1)


def rdiv(x0, x1):
    """``x1 / x0`` (the reflected form of ``/``)."""
    if isinstance(x1, Variable):
        return x1.__truediv__(x0)
    return constant(x0).__rtruediv__(x1)


def neg(x):
    return Neg()(x)


def pow(x, c):
    """``x ** c``: ``c`` a Python/NumPy scalar (constant) or a Variable/array (differentiable)."""
    return constant(x).__pow__(c)


def rpow(x, c):
    """``c ** x`` (reflected): the base is a constant, the exponent the Variable ``x``."""
    return constant(x).__rpow__(c)


def setup_variable() -> None:
    """Kept for the book. The operators are methods of Variable; those that need the op
    library (``**``, ``@``, indexing, ``reshape``, ``sum``, ...) are installed on Variable
    by ``dezero.functions`` when it is imported, as the book's ``setup_variable`` does."""
