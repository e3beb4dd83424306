"""dezero.jit: record a training step once, replay it as array operations.

``step = dezero.jit(fn)`` runs ``fn`` eagerly on its first call and observes the engine
through a :class:`~dezero.hooks.FunctionHook`: every Function's ``forward``, every
``backward_array`` of a backward pass, every gradient the pass stores (``accumulate``),
every ``cleargrad`` and every optimizer update. The events become a flat tape, compiled into
one plain Python function over local variables. A later call with the same signature
(shapes, dtypes and devices of the array arguments, which arguments are the same array, the
other arguments' values, ``Config``, and the modes of the layers that ``fn`` uses) replays
it: the same Functions' ``forward`` and ``backward_array`` run on the new arrays (so dropout
draws afresh and BatchNorm moves its running statistics), gradients are summed and stored
by the engine's own rules (``dezero.core.add_grads`` and ``accumulate_grad``), and each
optimizer's ``update()`` runs as it does eagerly (its step count, a scheduled learning rate
and its gradient hooks are live). No Variable, Function, heap or weakref is made for the
graph.

What cannot be replayed raises :class:`CaptureError` naming your line:

- reading a value into Python inside the step (``float(loss)``, ``loss.item()``,
  ``int(v)``); an ``if`` on an array's value (``if loss.data > 1``) cannot be seen: the branch
  taken at the first call is replayed (``check=True`` finds it);
- a NumPy view of a step input used in an op (do such work with dezero functions);
- a Variable computed before the step and used in it (state carried between calls, such as
  an RNN's hidden state: reset it inside the step or pass it in);
- Variable hooks (``register_hook``) inside the step.

``dezero.jit(fn, check=True)`` replays and also runs ``fn`` eagerly from the same state each
call, and raises :class:`JitCheckError` naming the first op or the parameter (by its path,
``'l1/W'``) where the two differ.

On a GPU (CuPy arrays) a step without optimizer updates or random draws is captured once into
a CUDA graph (CuPy's stream capture, into a private memory pool); later calls copy the inputs
into the graph's buffers and launch it. Otherwise, or when capture fails, it is replayed as
on the CPU; ``stats()`` says which and why.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Any, Callable

import numpy as np

from dezero import cuda
from dezero.callsite import user_location
from dezero.core import (
    Config,
    Parameter,
    Variable,
    accumulate_grad,
    add_grads,
    as_array,
    current_pass,
)
from dezero.hooks import FunctionHook, has_variable_hooks
from dezero.layers import Layer

__all__ = ["CaptureError", "JitCheckError", "active_recorder", "jit"]


class CaptureError(RuntimeError):
    """A step does something that a replayed tape of array operations cannot reproduce."""


class JitCheckError(CaptureError):
    """``jit(fn, check=True)``: the replay and the eager run of a step differ."""


_local = threading.local()


def active_recorder():
    """The recorder of the ``dezero.jit`` trace running in this thread, or None."""
    return getattr(_local, "recorder", None)


def _name(f) -> str:
    return type(f).__name__


def _config() -> tuple:
    return (bool(Config.enable_backprop), bool(Config.train))


# =============================================================================
# Recording: the events of one eager run become a tape of ops over numbered slots
# =============================================================================
class _Recorder(FunctionHook):
    """Slots are numbered arrays, found by ``id()`` (every array seen is kept alive while
    recording, so ids stay unique). Leaves made outside the step (parameters, argument
    Variables) are *targets*: the replay reads and writes their ``data`` and ``grad``."""

    def __init__(self, arg_vars: list):
        self.n, self.keep, self.ops, self.random, self.opts = 0, [], [], [], []
        self.slot_of: dict[int, int] = {}
        self.consts: dict[int, Any] = {}
        self.reads: list[tuple] = []  # (slot, target): the target's data at replay start
        # id(var) -> (var, its spec): the leaves made outside the step
        self.targets = {id(v): (v, ("arg", i)) for i, v in enumerate(arg_vars)}
        self.functions: dict[int, Any] = {}
        self.out_arrays: list = []  # the step's outputs, as out_spec finds them
        self.before: dict[int, list] = {}  # id(Function) -> its attributes before forward
        self.fwd_at: dict[int, int] = {}  # id(Function) -> the index of its forward op
        self.cur: dict[int, tuple] = {}  # id(var) -> (var, slot): the pass's gradient so far
        self.pending = None  # the backward op being recorded (backward_pre -> _post)
        self.in_backward = None  # the Function whose gradient the pass computes now

    # --- slots -------------------------------------------------------------------
    def new(self, a=None) -> int:
        s = self.n
        self.n += 1
        if a is not None:
            self.slot_of[id(a)] = s
            self.keep.append(a)
        return s

    def array_slot(self, a, f=None) -> int:
        """The slot of a known array; an unknown one becomes a constant of the tape."""
        s = self.slot_of.get(id(a))
        if s is not None:
            return s
        base = getattr(a, "base", None)
        while base is not None:
            if id(base) in self.slot_of:
                self.fail("takes an array made with NumPy from an array of the dezero.jit "
                          "step (a view: indexing or reshaping outside a Function); a replay "
                          "would reuse the first call's array. Use dezero functions (x[i] on "
                          "a Variable, F.reshape) for work on the step's arrays",
                          "an op" if f is None else _name(f))
            base = getattr(base, "base", None)
        s = self.new(a)
        self.consts[s] = a
        return s

    def read(self, a, spec, what: str) -> int:
        """A new slot for ``a``, read from the target at the start of a replay."""
        s = self.new(a)
        self.reads.append((s, spec, what))
        return s

    def target(self, var):
        """The spec of a leaf made outside the step, or None for one made inside it."""
        hit = self.targets.get(id(var))
        if hit is not None:
            return hit[1]
        if isinstance(var, Parameter):
            self.targets[id(var)] = (var, ("obj", var))
            return ("obj", var)
        return None

    def input_slot(self, x, f) -> int:
        s = self.slot_of.get(id(x.data))
        if s is not None:
            return s
        spec = self.target(x) if x.creator is None else None
        if spec is not None:  # a parameter: its data is read at replay
            return self.read(x.data, spec, "data")
        c = x.creator
        if c is not None and id(c) not in self.functions:
            self.fail(f"takes a Variable computed before the dezero.jit step (by "
                      f"{_name(c)}): a replay cannot see state carried between calls in "
                      f"Python attributes (an RNN's hidden state). Reset it inside the step, "
                      f"or pass it in as an input", _name(f))
        for var, spec in self.targets.values():  # an old .grad (an earlier call's) meets an op
            if var.grad is x:
                return self.read(x.data, spec, "grad")
        s = self.slot(x.data)
        return self.array_slot(x.data, f) if s is None else s

    # --- the events ----------------------------------------------------------------
    def forward_pre(self, f, inputs) -> None:
        self.before[id(f)] = _attrs(f)  # what forward found (forward may add its own)

    def forward_post(self, f, xs, outputs) -> None:
        self.functions[id(f)] = f
        attrs = self.before.pop(id(f), None) or _attrs(f)
        held = self.held(attrs)
        if current_pass() is not None:  # an op of a Variable-level backward
            self.frozen_arrays(f, attrs, xs)
        ins = [self.input_slot(x, f) for x in xs]
        outs = [self.new(y.data) for y in outputs]
        self.fwd_at[id(f)] = len(self.ops)
        self.ops.append(("fwd", f, ins, outs, _config(), held, user_location()))
        if getattr(f, "draws_random", False):
            self.random.append(_name(f))

    def slot(self, v):
        """The slot of one of the step's values (not a constant), or None. In a Variable-level
        backward, a value that the differentiated Function's forward kept on itself (GetItem's
        index copies) becomes a slot read from it at replay, after its forward ran again."""
        s = self.slot_of.get(id(v))
        if (s is not None and s not in self.consts) or current_pass() is None:
            return None if s in self.consts else s
        k = self.fwd_at.get(id(self.in_backward))
        for name, a in _attrs(self.in_backward) if k is not None else ():
            if a is v:  # (an array or a tuple: what the callers ask about)
                self.ops.append(("attr", k, name, s := self.new(v)))
                return s
        return None

    def held(self, attrs) -> list:
        """(name, slot) of the attributes of a Function (``attrs``, as its forward found
        them) that hold one of the step's values (``w * x`` for an array argument ``x``
        keeps ``x`` as MulConstant's ``c``): a replay sets them to that call's values
        before it runs the op."""
        return [(name, s) for name, v in attrs if (isinstance(v, cuda.array_types) or type(
            v) in (tuple, list)) and (s := self.slot(v)) is not None]

    def frozen_arrays(self, f, attrs, xs) -> None:
        """An op that a backward formula makes holds arrays (a constant operand, a mask) that
        are not the step's values: made from them with NumPy, they would be the first call's
        at every replay. Formulas must compute such arrays with Functions."""
        arrays = [a for _, v in attrs if type(v) in (tuple, list) and id(v) not in
                  self.slot_of for a in v]  # in a tuple not bound as a whole: even a slot
        arrays += [a for a in [v for _, v in attrs] + [x.data for x in xs if x.creator is None
                   and self.target(x) is None] if id(a) not in self.slot_of]
        for a in arrays:  # 0-d: a scalar factor (NumPy 1 makes 0-d arrays of Python numbers)
            if isinstance(a, cuda.array_types) and a.ndim:
                self.fail(f"the backward of {_name(self.in_backward)} makes an array of shape "
                          f"{a.shape} outside Functions and hands it to {_name(f)} as a "
                          f"constant; a replay would reuse the first call's values. The "
                          f"formula must compute it with dezero functions")

    def backward_pre(self, f) -> None:
        p = current_pass()
        self.in_backward = f
        self.pending = None
        if p.create_graph or f.backward_array is None:
            return  # the ops of its Variable-level backward are recorded as they run
        if id(f) not in self.functions:
            self.fail(f"the backward pass reaches {_name(f)}, which was called before the "
                      f"step: an input Variable still holds its graph; pass its data (or an "
                      f"unchained Variable) instead")
        xs = [self.array_slot(x.data, f) for x in f.inputs]
        ys = [ref() for ref in f.outputs]
        gys = [None if y is None or (h := self.cur.pop(id(y), None)) is None else h[1]
               for y in ys]
        ys = [None if y is None else self.array_slot(y.data, f) for y in ys]
        self.pending = (f, xs, ys, gys, _config())

    def backward_post(self, f, gxs) -> None:
        op, self.pending = self.pending, None
        if op is not None:
            self.ops.append(("bwd", *op, [None if g is None else self.new(g) for g in gxs]))

    def accumulate(self, var, grad, added: bool) -> None:
        p = current_pass()
        if has_variable_hooks(var):
            self.fail("a Variable hook (register_hook) runs Python on a gradient, which a "
                      "replay would skip; remove it inside dezero.jit")
        spec = self.target(var) if var.creator is None else None
        if p.create_graph:  # the sums were recorded as ops; a leaf's .grad is replaced
            if spec is not None and p.writes_grad(var):
                self.ops.append(("setgrad", spec, self.array_slot(var.grad.data)))
            return
        g = self.array_slot(grad)
        if spec is not None and p.writes_grad(var):  # replayed by the engine's own rule
            self.ops += [("store", spec, g), ("read", spec, self.new(var.grad.data))]
            return
        new = g
        if added:  # a sum within the pass (a Variable made in the step: none before it)
            new = self.new()
            self.ops.append(("acc", self.cur[id(var)][1], g, new))
        self.cur[id(var)] = (var, new)
        now = p.gradient(var)
        if now is not None and id(now) not in self.slot_of:
            self.slot_of[id(now)] = new
            self.keep.append(now)

    def cleargrad(self, var) -> None:
        spec = self.target(var) if var.creator is None else None
        if spec is not None:
            self.ops.append(("clear", spec))

    def update_pre(self, optimizer) -> None:
        self.ops.append(("update", optimizer, user_location()))
        if optimizer not in self.opts:
            self.opts.append(optimizer)

    def update_post(self, optimizer) -> None:
        # the update may have replaced gradients (its hooks): later reads see the new ones
        for var, spec in list(self.targets.values()):
            g = var.grad
            if g is not None and id(g.data) not in self.slot_of:
                self.ops.append(("read", spec, self.new(g.data)))

    def value_read(self, var, how: str) -> None:
        c = var.creator
        what = (f"the output of {_name(c)}" if c is not None
                else "a Parameter" if isinstance(var, Parameter) else "a Variable")
        raise CaptureError(
            f"{how} reads the value of {what} (shape {var.shape}) into Python inside a "
            f"dezero.jit step, at {user_location()}: a replay runs only array operations, so "
            f"the value (and any decision made on it) would be frozen at the first call. "
            f"Return the Variable from the step and read it after the call")

    def fail(self, message: str, who: str | None = None):
        if who is None:
            raise CaptureError(f"{message} (at {user_location()})")
        raise CaptureError(f"{who} (at {user_location()}) {message}")

    # --- the end of the step -----------------------------------------------------------
    def out_spec(self, obj, out_slots: list):
        if isinstance(obj, (Variable, *cuda.array_types)):
            a = obj.data if isinstance(obj, Variable) else obj
            s = self.slot_of.get(id(a))
            if s is None or s in self.consts:
                raise CaptureError(
                    f"the step returns an array (shape {a.shape}) that no dezero Function "
                    f"made (NumPy work on the step's values, or a helper such as F.accuracy "
                    f"that returns a plain value): a replay would return the first call's. "
                    f"Compute it with dezero functions, or after the step")
            out_slots.append(s)
            self.out_arrays.append(a)
            return ("var", obj.name) if isinstance(obj, Variable) else ("arr",)
        if type(obj) in (tuple, list):
            return (type(obj), [self.out_spec(o, out_slots) for o in obj])
        if type(obj) is dict:
            return (dict, list(obj), [self.out_spec(o, out_slots) for o in obj.values()])
        return ("const", obj)


# =============================================================================
# The compiled tape
# =============================================================================
class _Tape:
    """One recorded signature: the replay function and what a check or a graph needs."""

    def __init__(self, rec: _Recorder, input_slots: list, spec, out_slots: list, config,
                 buffers: list):
        self.spec, self.buffers = spec, buffers
        self.random, self.opts = rec.random, rec.opts
        self.functions = list(rec.functions.values())
        self.targets = [spec_ for _, spec_ in rec.targets.values()]
        self.ops = [(op[0], _name(op[1]), op[-1]) for op in rec.ops if op[0] in ("fwd", "bwd")]
        self.ops += [("update", _name(op[1]), op[2]) for op in rec.ops if op[0] == "update"]
        self.gpu_graph, self.gpu_tried, self.gpu_reason = None, False, "not a GPU step"
        self.source, self.ns = _generate(rec, input_slots, out_slots, config)
        exec(compile(self.source, "<dezero.jit replay>", "exec"), self.ns)
        self.replay = self.ns["_replay"]

    def build(self, outs):
        return _build(self.spec, iter(outs))


def _attrs(f):
    """(name, value) of each attribute of a Function but its inputs and outputs."""
    names = [n for c in type(f).__mro__ for n in getattr(c, "__slots__", ())
             if n not in ("__dict__", "__weakref__", "inputs", "outputs")]
    return [(n, getattr(f, n, None)) for n in names] + list(getattr(f, "__dict__", {}).items())


def _fix(y):
    """A forward's or backward's single result as the engine keeps it (an array)."""
    if type(y) is tuple or type(y) is list:
        (y,) = y
    return as_array(y) if np.isscalar(y) else y


def _generate(rec: _Recorder, input_slots, out_slots, config):
    """The replay as Python source: one line per op over local slots, each slot deleted after
    its last use (so a replay holds memory as the eager step does)."""
    ns: dict[str, Any] = {"_fix": _fix, "_add": add_grads, "_acc": accumulate_grad,
                          "_C": Config, "_A": tuple(cuda.array_types)}
    consts = rec.consts

    def ref(s):
        if s is None:
            return "None"
        if s in consts:
            ns[f"c{s}"] = consts[s]
            return f"c{s}"
        return f"s{s}"

    def tgt(spec, k):
        if spec[0] == "arg":
            return f"_v[{spec[1]}]"
        ns[f"t{k}"] = spec[1]
        return f"t{k}"

    body: list[tuple[list, list, str]] = []  # (slots read, slots written, line)
    reads_at: set[int] = set()
    current = [config]

    def switch(cfg):
        if cfg != current[0]:
            body.append(([], [], f"_C.enable_backprop, _C.train = {cfg}"))
            current[0] = cfg

    for k, op in enumerate(rec.ops):
        kind = op[0]
        if kind == "fwd":
            _, f, ins, outs, cfg, held, _ = op
            ns[f"f{k}"], ns[f"o{k}"] = f.forward, f
            for name, s in held:  # see _Recorder.held
                body.append(([s], [], f"o{k}.{name} = s{s}"))
            switch(cfg)
            o = f"s{outs[0]}"  # one output: an array (_fix: a scalar a forward returned)
            line = f"{', '.join(f's{o}' for o in outs)}, = f{k}({', '.join(map(ref, ins))},)"
            body.append((ins, outs, line.replace(", =", " =") + f"\n    if type({o}) not in "
                         f"_A: {o} = _fix({o})" if len(outs) == 1 else line))
        elif kind == "bwd":
            _, f, xs, ys, gys, cfg, outs = op
            ns[f"b{k}"] = f.backward_array
            call = (f"b{k}([{', '.join(ref(s) for s in xs)}], [{', '.join(ref(s) for s in ys)}"
                    f"], [{', '.join(ref(s) for s in gys)}])")
            switch(cfg)
            names = ", ".join("_" if g is None else f"s{g}" for g in outs)
            line = (f"{names} = {call}" if len(outs) > 1 else f"{names} = {call}\n    if "
                    f"type({names}) in (tuple, list): {names}, = {names}")
            reads = [s for s in (*xs, *ys, *gys) if s is not None]
            body.append((reads, [g for g in outs if g is not None], line))
        elif kind == "attr":  # a value a forward kept on its Function (_Recorder.slot)
            _, at, name, s = op
            body.append(([], [s], f"s{s} = o{at}.{name}"))
        elif kind == "acc":
            _, old, g, new = op
            body.append(([old, g], [new], f"s{new} = _add({ref(old)}, {ref(g)})"))
        elif kind in ("store", "setgrad"):
            _, spec, g = op
            t, ns["_V"] = tgt(spec, k), Variable
            body.append(([g], [], f"_acc({t}, {ref(g)})" if kind == "store"
                         else f"{t}.grad = _V({ref(g)})"))
        elif kind == "read":  # kept below only where the slot is used
            _, spec, s = op
            body.append(([], [s], f"s{s} = {tgt(spec, k)}.grad.data"))
            reads_at.add(len(body) - 1)
        elif kind == "clear":
            body.append(([], [], f"{tgt(op[1], k)}.cleargrad()"))
        elif kind == "update":
            ns[f"u{k}"] = op[1].update
            switch(config)
            body.append(([], [], f"u{k}()"))
    last: dict[int, int] = {}
    for i, (reads, writes, _) in enumerate(body):
        for s in (*reads, *writes):
            last[s] = i
    keep = set(out_slots) | set(input_slots) | set(consts)
    used = {s for reads, _, _ in body for s in reads} | set(out_slots)
    lines = ["def _replay(_in, _v):", "  _cfg = _C.enable_backprop, _C.train", "  try:"]
    if input_slots:
        lines.append(f"    {', '.join(f's{s}' for s in input_slots)}, = _in")
    for j, (s, spec, what) in enumerate(rec.reads):
        if s in used:
            lines.append(f"    s{s} = {tgt(spec, f'r{j}')}{'.grad' * (what == 'grad')}.data")
    for i, (reads, writes, line) in enumerate(body):
        if i in reads_at and writes[0] not in used:
            continue
        lines.append("    " + line)
        dead = sorted({s for s in (*reads, *writes) if last.get(s) == i and s not in keep})
        if dead:
            lines.append(f"    del {', '.join(f's{s}' for s in dead)}")
    lines.append(f"    return ({''.join(ref(s) + ', ' for s in out_slots)})")
    lines += ["  finally:", "    _C.enable_backprop, _C.train = _cfg"]  # even when an op raises
    return "\n".join(lines) + "\n", ns


def _build(spec, it):
    kind = spec[0]
    if kind == "var":
        return Variable(next(it), name=spec[1])
    if kind == "arr":
        return next(it)
    if kind == "const":
        return spec[1]
    if kind is dict:
        return dict(zip(spec[1], [_build(s, it) for s in spec[2]]))
    return kind(_build(s, it) for s in spec[1])


# =============================================================================
# CUDA graphs
# =============================================================================
@contextlib.contextmanager
def _all(contexts):
    with contextlib.ExitStack() as stack:
        for c in contexts:
            stack.enter_context(c)
        yield


# =============================================================================
# The decorator
# =============================================================================
def _flatten(obj, leaves, key, arg_vars) -> None:
    t = type(obj)
    if t is np.ndarray or isinstance(obj, cuda.array_types):
        leaves.append(obj)
        key.append((t, obj.shape, obj.dtype))
    elif isinstance(obj, Variable):
        leaves.append(obj.data)
        arg_vars.append(obj)
        key.append((type(obj), type(obj.data), obj.data.shape, obj.data.dtype,
                    obj.requires_grad, obj.grad is None))
    elif t is tuple or t is list or t is dict:
        key.append((t, tuple(obj) if t is dict else len(obj)))
        for o in obj.values() if t is dict else obj:
            _flatten(o, leaves, key, arg_vars)
    else:
        try:
            hash(obj)
            key.append(("value", t, obj))
        except TypeError:
            key.append(("object", id(obj)))


def _roots(fn, args) -> list:
    """``(name, layer)`` for the Layers that ``fn`` refers to: its bound self, closure
    variables, the globals it names, its arguments (an optimizer counts through its
    target)."""
    found: list = []
    code = getattr(fn, "__code__", None)
    named = [("self", getattr(fn, "__self__", None))]
    if code is not None:
        cells = fn.__closure__ or ()
        for name, cell in zip(code.co_freevars, cells):
            with contextlib.suppress(ValueError):  # an empty cell
                named.append((name, cell.cell_contents))
        g = getattr(fn, "__globals__", {})
        named += [(n, g[n]) for n in code.co_names if n in g]
    named += [(f"argument {i}", a) for i, a in enumerate(args)]
    seen: set = set()

    def visit(name, obj, depth=0):
        if isinstance(obj, Layer):
            if id(obj) not in seen:
                seen.add(id(obj))
                found.append((name, obj))
        elif type(obj) in (list, tuple) and len(obj) <= 64 and depth < 2:
            for i, o in enumerate(obj):
                visit(f"{name}[{i}]", o, depth + 1)
        elif isinstance(getattr(obj, "target", None), Layer) and callable(
                getattr(obj, "update", None)):  # an optimizer
            visit(name, obj.target, depth)

    for name, obj in named:
        visit(name, obj)
    return found


def _layers_of(roots) -> list:
    out, seen = [], set()
    for _, root in roots:
        for layer in (root, *(la for _, la in root.named_layers())):
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
    return out


class _JitFunction:
    """What ``dezero.jit(fn)`` returns: call it like ``fn``."""

    def __init__(self, fn: Callable, check: bool, max_cache: int, gpu_graph: bool):
        self.fn = fn
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", "step")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.check, self.max_cache, self.use_gpu_graph = check, max_cache, gpu_graph
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._static = None  # the roots found outside the arguments (found once)
        self._counts = {"traces": 0, "replays": 0, "retraces": 0, "checks": 0}
        self._last = None

    def __call__(self, *args, **kwargs):
        if active_recorder() is not None:  # inside another step's trace: run, be recorded
            return self.fn(*args, **kwargs)
        leaves: list = []
        arg_vars: list = []
        key: list = [_config()]
        _flatten(args, leaves, key, arg_vars)
        if kwargs:
            _flatten(kwargs, leaves, key, arg_vars)
        ids = [id(a) for a in leaves]
        if len(set(ids)) != len(ids):  # the same array for two arguments
            key.append(("alias", tuple(ids.index(i) for i in ids)))
        if self._static is None:
            self._static = _roots(self.fn, ())
        roots = self._static + [r for r in _roots(None, args) if r not in self._static]
        layers = _layers_of(roots)
        key.append(tuple(la.training for la in layers))
        key = tuple(key)
        tape = self._cache.get(key)
        if tape is not None and tape.buffers and any(
                dict(root.named_buffers()).get(path) is not a for root, path, a in tape.buffers):
            tape = None  # buffers replaced (load_state_dict): its Functions hold the old ones
        if tape is None:
            return self._trace(key, leaves, arg_vars, args, kwargs, roots)
        self._cache.move_to_end(key)
        self._last = tape
        if self.check:
            return self._check(tape, leaves, arg_vars, args, kwargs, roots)
        self._counts["replays"] += 1
        if not leaves or isinstance(leaves[0], np.ndarray):
            return tape.build(tape.replay(leaves, arg_vars))
        return tape.build(self._gpu_replay(tape, leaves, arg_vars))

    def cache_clear(self) -> None:
        """Forget every recorded signature: the next call traces again."""
        self._cache.clear()
        self._last = None

    def stats(self) -> dict:
        """``traces``, ``replays``, ``retraces``, ``checks``, ``cache_size`` and, for the
        last signature used, ``gpu_graph`` (True when its replay is one CUDA graph) and
        ``gpu_graph_reason`` (why not, else None)."""
        last = self._last
        return {**self._counts, "cache_size": len(self._cache),
                "gpu_graph": last is not None and last.gpu_graph is not None,
                "gpu_graph_reason": None if last is None else last.gpu_reason}

    def __repr__(self):
        return f"<dezero.jit of {self.__name__}>"

    # --- tracing -----------------------------------------------------------------
    def _record(self, leaves, arg_vars, args, kwargs, roots):
        rec = _Recorder(arg_vars)
        config = _config()
        input_slots = [rec.slot_of[id(a)] if id(a) in rec.slot_of else rec.new(a)
                       for a in leaves]
        _local.recorder = rec
        try:
            with rec:
                result = self.fn(*args, **kwargs)
        finally:
            _local.recorder = None
        out_slots: list = []
        spec = rec.out_spec(result, out_slots)
        buffers = [(root, path, a) for _, root in roots for path, a in root.named_buffers()]
        return (result, _Tape(rec, input_slots, spec, out_slots, config, buffers),
                rec.out_arrays)

    def _trace(self, key, leaves, arg_vars, args, kwargs, roots):
        result, tape, _ = self._record(leaves, arg_vars, args, kwargs, roots)
        self._counts["traces"] += 1
        if self._counts["traces"] > 1:
            self._counts["retraces"] += 1
        self._cache[key] = tape
        self._last = tape
        while len(self._cache) > self.max_cache:
            self._cache.popitem(last=False)
        return result

    # --- the GPU graph -------------------------------------------------------------
    def _gpu_replay(self, tape, leaves, arg_vars):
        graph = tape.gpu_graph
        if graph is not None and any(v.data is not a for v, a in graph.guards):
            # parameters replaced (load_state_dict): capture again
            graph = tape.gpu_graph = None
            tape.gpu_tried = False
        if graph is None and not tape.gpu_tried:
            tape.gpu_tried = True
            tape.gpu_reason, first = self._capture(tape, leaves, arg_vars)
            if first is not None:
                return first  # this call's step ran while the graph was built
        if graph is not None:
            return graph(leaves)
        return tape.replay(leaves, arg_vars)

    def _capture(self, tape, leaves, arg_vars):
        """(reason or None, this call's outputs if the step already ran, else None)."""
        if not self.use_gpu_graph:
            return "disabled (jit(fn, gpu_graph=False)): plain replay", None
        if tape.random:
            return (f"the step draws random numbers ({', '.join(sorted(set(tape.random)))}); "
                    f"a CUDA graph would replay one draw: plain replay"), None
        if any(spec[0] == "arg" for spec in tape.targets):
            return "the step writes the gradients of its argument Variables: plain replay", None
        # optimizers in graph mode: a step's scalars come from a device buffer of theirs
        # (made now, not while capturing) that advance_graph_step() fills before a launch
        opts = tape.opts
        modes = [opt.graph_mode() for opt in opts]
        graph = cuda.CudaGraph(lambda ins: tape.replay(ins, arg_vars), leaves,
                               capture_context=lambda: _all(modes),
                               before_launch=lambda: [o.advance_graph_step() for o in opts])
        if graph.graph is None:
            e = graph.error
            return f"capture failed ({type(e).__name__}: {e}): plain replay", graph.first
        graph.guards = [(v, v.data) for v in (spec[1] for spec in tape.targets)]
        tape.gpu_graph = graph
        return None, graph.first

    # --- checking ----------------------------------------------------------------------
    def _check(self, tape, leaves, arg_vars, args, kwargs, roots):
        self._counts["checks"] += 1
        snap = _Snapshot(roots, tape.opts, arg_vars)
        replayed = [cuda.as_numpy(o).copy() for o in tape.replay(leaves, arg_vars)]
        after = snap.state()
        snap.restore()
        result, fresh, eager = self._record(leaves, arg_vars, args, kwargs, roots)
        for i, (a, b) in enumerate(zip(tape.ops, fresh.ops)):
            if a[:2] != b[:2]:
                raise JitCheckError(
                    f"dezero.jit check: op {i} of the step differs from the recorded one: "
                    f"recorded {a[1]} ({a[0]}, at {a[2]}), now {b[1]} ({b[0]}, at {b[2]}); "
                    f"the step's operations depend on its data (a Python branch on a value)")
        if len(tape.ops) != len(fresh.ops):
            raise JitCheckError(
                f"dezero.jit check: the step ran {len(fresh.ops)} ops, the recording has "
                f"{len(tape.ops)}; the step's operations depend on its data")
        for i, (a, b) in enumerate(zip(replayed, eager)):
            _compare(a, b, f"output {i} of the step")
        now = snap.state()
        for name, a in after.items():
            _compare(a, now.get(name, np.full((), np.nan)), name)
        return result


def _compare(a, b, what: str) -> None:
    b = cuda.as_numpy(b)
    if a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
        return
    if a.shape != b.shape:
        detail = f"shape {a.shape} vs {b.shape}"
    else:
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        detail = f"max abs difference {np.nanmax(diff):.3g}"
    raise JitCheckError(
        f"dezero.jit check: {what} differs between the replay and the eager run ({detail}); "
        f"the tape froze a value that changes per call: an array computed outside a "
        f"Function (NumPy on the inputs, np.random in the step) or a Python scalar")


class _Snapshot:
    """What a step changes (parameters and their gradients, buffers, optimizer state,
    NumPy's random state), by name, to run the same step twice from the same start."""

    def __init__(self, roots, opts, arg_vars):
        self.params, names = [], set()
        for rname, root in roots:
            for path, p in root.named_params():
                if all(p is not q for _, q in self.params):
                    name = path if rname in ("self", "") else f"{rname}/{path}"
                    while name in names:  # two roots with the same paths: keep them apart
                        name += "'"
                    names.add(name)
                    self.params.append((name, p))
        self.params += [(f"argument Variable {i}", v) for i, v in enumerate(arg_vars)]
        self.saved = [(p, cuda.as_numpy(p.data).copy(), p.grad) for _, p in self.params]
        self.buffers = [(f"buffer {path!r}", a, cuda.as_numpy(a).copy())
                        for _, root in roots for path, a in root.named_buffers()
                        if a is not None]
        self.opts = [(opt, opt.state_dict()) for opt in opts]
        self.rng = np.random.get_state()  # noqa: NPY002  (dezero draws from the global RNG)

    def state(self) -> dict:
        out = {f"parameter {n!r}": p.data for n, p in self.params}
        out.update({f"the gradient of parameter {n!r}": p.grad.data for n, p in self.params
                    if p.grad is not None})
        out.update({name: a for name, a, _ in self.buffers})
        out.update({f"optimizer {j} {k}": v for j, (opt, _) in enumerate(self.opts)
                    for k, v in opt.state_dict().items()})
        return {k: np.array(cuda.as_numpy(v)) for k, v in out.items()}  # copies

    def restore(self) -> None:
        for p, data, grad in self.saved:
            p.data[...] = cuda.as_cupy(data) if not isinstance(p.data, np.ndarray) else data
            p.grad = grad
        for _, a, saved in self.buffers:
            a[...] = saved if isinstance(a, np.ndarray) else cuda.as_cupy(saved)
        for opt, state in self.opts:
            opt.load_state_dict(state)
        np.random.set_state(self.rng)  # noqa: NPY002


def jit(fn: Callable | None = None, *, check: bool = False, max_cache: int = 8,
        gpu_graph: bool = True):
    """Record a step function (forward, backward, optimizer update) once; replay it after.

    Parameters
    ----------
    fn : callable
        The step. Its array and Variable arguments are its inputs; everything else it
        reads (parameters, optimizer state, per-step scalars) is read at each replay.
    check : bool
        Replay and also run ``fn`` eagerly from the same state each call, and raise
        :class:`JitCheckError` where they differ (a debugging aid: it costs both runs).
    max_cache : int
        Signatures kept (least recently used first out).
    gpu_graph : bool
        Capture the replay of a GPU step into one CUDA graph.

    Returns
    -------
    callable
        Called like ``fn``, returning what it returns (Variables hold the new arrays),
        with ``cache_clear()`` and ``stats()``.

    Examples
    --------
    >>> import numpy as np
    >>> import dezero
    >>> import dezero.functions as F
    >>> from dezero import optimizers
    >>> from dezero.models import MLP
    >>> model = MLP((8, 3))
    >>> opt = optimizers.Adam().setup(model)
    >>> @dezero.jit
    ... def step(x, t):
    ...     loss = F.softmax_cross_entropy(model(x), t)
    ...     model.cleargrads()
    ...     loss.backward()
    ...     opt.update()
    ...     return loss
    >>> x, t = np.ones((4, 5), dtype=np.float32), np.array([0, 1, 2, 0])
    >>> losses = [float(step(x, t)) for _ in range(3)]
    >>> step.stats()["traces"], step.stats()["replays"]
    (1, 2)
    """
    if fn is None:
        return lambda f: jit(f, check=check, max_cache=max_cache, gpu_graph=gpu_graph)
    if not callable(fn):
        raise TypeError(f"jit takes a callable, not {type(fn).__name__}")
    if not isinstance(max_cache, int) or max_cache < 1:
        raise ValueError(f"jit: max_cache must be at least 1, got {max_cache!r}")
    for name, flag in (("check", check), ("gpu_graph", gpu_graph)):
        if not isinstance(flag, bool):
            raise TypeError(f"jit: {name} must be True or False, got {flag!r}")
    return _JitFunction(fn, check, max_cache, gpu_graph)
