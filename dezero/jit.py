"""dezero.jit: record a training step once, replay it as array operations.

``step = dezero.jit(fn)`` runs ``fn`` eagerly on its first call and records, through a
:class:`~dezero.core.FunctionHook`, the flat sequence of array operations it performs: each
Function's ``forward`` on input slots, each ``backward_array`` of the backward pass, the
engine's gradient accumulation, and the optimizer's array-level update (with its hooks).
The tape is compiled into one plain Python function over local variables. A later call
with the same input signature (shapes, dtypes and devices of the array arguments, the other
arguments' values, ``Config`` and the modes of the layers that ``fn`` refers to) replays
it: the new input arrays take the input slots, the same Functions' ``forward`` and
``backward_array`` run on them (so a Function that draws random numbers in ``forward``, as
dropout does, draws afresh, and BatchNorm updates its running statistics), and the
optimizer's ``step_hyper()`` is called again (the step count and a scheduled learning rate
are read at replay). No Variable, Function, heap or weakref is made for the graph.

What cannot be captured (the rules):

- reading a value into Python inside the step (``float(loss)``, ``loss.item()``,
  ``int(v)``) raises :class:`CaptureError` naming the op and your line; an ``if`` on an
  array's value (``if loss.data > 1``) and ``float(loss.data)`` cannot be seen: the branch
  taken at the first call is replayed forever;
- arrays computed outside Functions (NumPy on the inputs, ``np.random`` in the step) are
  frozen as constants: do such work with dezero functions or pass the result in;
- state carried between calls in Python attributes (an RNN's hidden state kept across
  steps) is not replayed: reset it inside the step (a Variable computed before the step and
  used in it raises :class:`CaptureError`);
- optimizer hooks need ``update_grads(params, grads)`` (the built-in ones have it);
  optimizers need ``update_one_array`` (the built-in ones have it).

``dezero.jit(fn, check=True)`` replays and also runs ``fn`` eagerly from the same state
(and the same NumPy random state) each call, and raises :class:`JitCheckError` naming the
first op or parameter where the two differ.

On a GPU (CuPy arrays) the replay is captured once into a CUDA graph (through CuPy's stream
capture, into a private memory pool, so that its buffers stay fixed) and each later call
copies the inputs into the graph's input buffers, writes the optimizer's scalars into a
device buffer, and launches the graph. A step that draws random numbers, or whose capture
fails (a host sync inside an op), falls back to the plain replay; ``stats()`` says which.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
from typing import Any, Callable

import numpy as np

from dezero import cuda
from dezero.core import FunctionHook, Parameter, Variable, _settings, _var_hooks

__all__ = ["CaptureError", "JitCheckError", "active_recorder", "jit"]


class CaptureError(RuntimeError):
    """A step does something that a replayed tape of array operations cannot reproduce."""


class JitCheckError(CaptureError):
    """``jit(fn, check=True)``: the replay and the eager run of a step differ."""


_local = threading.local()
_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def active_recorder():
    """The recorder of the ``dezero.jit`` trace running in this thread, or None."""
    return getattr(_local, "recorder", None)


def _user_line() -> str:
    """``file:line`` of the innermost frame outside the dezero package (the user's code)."""
    f = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if not os.path.abspath(name).startswith(_PKG_DIR):
            return f"{name}:{f.f_lineno}"
        f = f.f_back
    return "<unknown>"


def _graph_mode() -> bool:
    """Inside Variable.backward: True when the pass records a graph (create_graph)."""
    return _settings.enable_backprop


def _fname(f) -> str:
    return type(f).__name__


# =============================================================================
# Recording
# =============================================================================
class _Recorder(FunctionHook):
    """Builds the tape while ``fn`` runs eagerly: slots are numbered arrays, identified by
    ``id()`` (every array seen is kept alive while recording, so ids stay unique)."""

    def __init__(self):
        self.n = 0
        self.slot_of: dict[int, int] = {}
        self.keep: list = []
        self.steps: list[tuple] = []
        self.consts: dict[int, Any] = {}
        self.params: list[tuple] = []  # (param, slot): read param.data at replay
        self.grad_reads: list[tuple] = []  # (param, slot): read param.grad.data at replay
        self.seen_params: dict[int, tuple] = {}  # id -> (param, its grad when first seen)
        self.pending: list[tuple] = []  # (var, slot): bind var.grad.data once it exists
        self.functions: dict[int, Any] = {}
        self.random: list[str] = []
        self.opts: list = []
        self.bw = None
        self.raw = None

    # --- slots -----------------------------------------------------------------
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
        if s is None:
            base = getattr(a, "base", None)
            while base is not None:
                if id(base) in self.slot_of:
                    raise CaptureError(
                        f"{'an op' if f is None else _fname(f)} (at {_user_line()}) takes an "
                        f"array made with NumPy from an array of the dezero.jit step (a view: "
                        f"indexing or reshaping outside a Function); a replay would reuse the "
                        f"first call's array. Use dezero functions (x[i] on a Variable, "
                        f"F.reshape) for work on the step's arrays"
                    )
                base = getattr(base, "base", None)
            s = self.new(a)
            self.consts[s] = a
        return s

    def see_param(self, p) -> None:
        if id(p) not in self.seen_params:
            self.seen_params[id(p)] = (p, p.grad)

    def input_slot(self, x, f) -> int:
        a = x.data
        s = self.slot_of.get(id(a))
        if s is not None:
            return s
        if isinstance(x, Parameter):
            self.see_param(x)
            s = self.new(a)
            self.params.append((x, s))
            return s
        c = x.creator
        if c is not None and id(c) not in self.functions:
            raise CaptureError(
                f"{_fname(f)} (at {_user_line()}) takes a Variable computed before the "
                f"dezero.jit step (by {_fname(c)}): a replay cannot see state carried "
                f"between calls in Python attributes (an RNN's hidden state). Reset it "
                f"inside the step, or pass it in as an input"
            )
        return self.array_slot(a, f)

    def resolve(self) -> None:
        """Bind the gradients that the engine accumulated after the last backward_post."""
        for x, s in self.pending:
            g = x.grad
            if g is not None and g.data is not None and id(g.data) not in self.slot_of:
                self.slot_of[id(g.data)] = s
                self.keep.append(g.data)
        self.pending.clear()

    # --- the FunctionHook --------------------------------------------------------
    def forward_pre(self, f, inputs) -> None:
        if self.pending:
            self.resolve()
        fwd = f.forward

        def probe(*xs):  # sees what forward returns (a tuple? a NumPy scalar?)
            ys = fwd(*xs)
            self.raw = ys
            return ys

        f.forward = probe

    def forward_post(self, f, xs, outputs) -> None:
        del f.forward
        ys, self.raw = self.raw, None
        self.functions[id(f)] = f
        ins = [self.input_slot(x, f) for x in xs]
        outs = [self.new(y.data) for y in outputs]
        seq = type(ys) is tuple or type(ys) is list
        wrap = not seq and not isinstance(ys, cuda.array_types)
        self.steps.append(("fwd", f, ins, outs, seq, wrap, self.config(), _user_line()))
        if getattr(f, "draws_random", False):
            self.random.append(_fname(f))

    def backward_pre(self, f) -> None:
        if self.pending:
            self.resolve()
        self.bw = None
        if _graph_mode():  # create_graph: the backward is recorded Function calls
            return
        if id(f) not in self.functions:
            raise CaptureError(
                f"the backward pass of the dezero.jit step (at {_user_line()}) reaches "
                f"{_fname(f)}, which was called before the step: an input Variable still "
                f"holds its graph; pass its data (or an unchained Variable) instead"
            )
        if f.backward_array is None:  # the Variable-level backward: its ops are recorded
            return
        outs = [r() for r in f.outputs]
        xs = [self.array_slot(x.data) for x in f.inputs]
        if len(outs) == 1:
            g = outs[0].grad
            ys = [self.array_slot(outs[0].data)]
            gys = [None if g is None else self.array_slot(g.data)]
            multi = False
        else:
            ys = [None if y is None else self.array_slot(y.data) for y in outs]
            gys = [None if y is None or y.grad is None else self.array_slot(y.grad.data)
                   for y in outs]
            multi = True
        bwd = f.backward_array

        def probe(xs_, ys_, gys_):
            gxs = bwd(xs_, ys_, gys_)
            self.raw = gxs
            return gxs

        f.backward_array = probe
        self.bw = (f, xs, ys, gys, multi)

    def backward_post(self, f, gxs) -> None:
        if _graph_mode():
            return
        bw, self.bw = self.bw, None
        if bw is None:
            gslots = [None if g is None else self.array_slot(g) for g in gxs]
        else:
            del f.backward_array
            raw, self.raw = self.raw, None
            gslots = [None if g is None else self.new(g) for g in gxs]
            single = not (type(raw) is tuple or type(raw) is list)
            self.steps.append(("bwd", *bw, gslots, single, self.config(), None))
        # the engine's accumulation, mirrored: x.grad = gx, or x.grad.data + gx
        cur: dict[int, int] = {}
        for x, g, gs in zip(f.inputs, gxs, gslots):
            if g is None or not x.requires_grad:
                continue
            if _var_hooks and id(x) in _var_hooks:
                self.unsupported(
                    f"a Variable hook (register_hook) on an input of {_fname(f)} runs Python "
                    f"on its gradient, which a replay would skip; remove it inside dezero.jit"
                )
            if id(x) in cur:
                old = cur[id(x)]
            elif x.grad is None:
                old = None
            else:
                old = self.grad_slot(x)
            if old is None:
                new = gs
            else:
                new = self.new()
                self.steps.append(("acc", old, gs, new))
            cur[id(x)] = new
            self.pending.append((x, new))
            if isinstance(x, Parameter):
                self.see_param(x)

    @staticmethod
    def config():
        return (_settings.enable_backprop, _settings.train)

    def grad_slot(self, x) -> int:
        a = x.grad.data
        s = self.slot_of.get(id(a))
        if s is not None:
            return s
        if isinstance(x, Parameter):  # a gradient left from before the step
            self.see_param(x)
            s = self.new(a)
            self.grad_reads.append((x, s))
            return s
        return self.array_slot(a)

    def value_read(self, var, how: str) -> None:
        c = var.creator
        what = (f"the output of {_fname(c)}" if c is not None
                else "a Parameter" if isinstance(var, Parameter) else "a Variable")
        raise CaptureError(
            f"{how} reads the value of {what} (shape {var.shape}) into Python inside a "
            f"dezero.jit step, at {_user_line()}: a replay runs only array operations, so "
            f"the value (and any decision made on it) would be frozen at the first call. "
            f"Return the Variable from the step and read it after the call"
        )

    # --- called by dezero.optimizers ---------------------------------------------
    def optimizer_update(self, opt, params, grads) -> None:
        if self.pending:
            self.resolve()
        if type(opt).update_one_array.__qualname__ == "Optimizer.update_one_array":
            self.unsupported(
                f"{type(opt).__name__} has only a Variable-level update_one(param); give it "
                f"update_one_array(param, g, h) to use it in a dezero.jit step"
            )
        gslots = []
        for p, g in zip(params, grads):
            self.see_param(p)
            s = self.slot_of.get(id(g))
            gslots.append(self.grad_slot(p) if s is None else s)
        for p, s in zip(params, gslots):
            self.steps.append(("setgrad", p, s))
        self.steps.append(("upd", opt, list(params), gslots, _user_line()))
        if opt not in self.opts:
            self.opts.append(opt)

    def unsupported(self, message: str) -> None:
        raise CaptureError(f"{message} (at {_user_line()})")

    # --- the end of the step -----------------------------------------------------
    def finish(self, result):
        self.resolve()
        last = {}  # the gradient slot each parameter was last given (before an update)
        for st in self.steps:
            if st[0] == "setgrad":
                last[id(st[1])] = st[2]
        for p, g0 in self.seen_params.values():
            g = p.grad
            if g is g0:
                continue
            if g is None:
                self.steps.append(("nograd", p))
            else:
                s = self.slot_of.get(id(g.data))
                if s is not None and last.get(id(p)) != s:
                    self.steps.append(("setgrad", p, s))
        out_slots: list[int] = []
        spec = self.out_spec(result, out_slots)
        return spec, out_slots

    def out_spec(self, obj, out_slots):
        if isinstance(obj, Variable):
            s = self.slot_of.get(id(obj.data))
            if s is None:
                return ("const", obj)
            out_slots.append(s)
            return ("var", obj.name)
        if isinstance(obj, cuda.array_types):
            s = self.slot_of.get(id(obj))
            if s is None:
                return ("const", obj)
            out_slots.append(s)
            return ("arr",)
        if type(obj) in (tuple, list):
            return (type(obj), [self.out_spec(o, out_slots) for o in obj])
        if type(obj) is dict:
            return (dict, list(obj), [self.out_spec(o, out_slots) for o in obj.values()])
        return ("const", obj)


# =============================================================================
# The compiled tape
# =============================================================================
def _grad_or_zeros(p):
    g = p.grad
    if g is None:  # cleared outside the step: the eager step would start from nothing
        return cuda.get_array_module(p.data).zeros_like(p.data)
    return g.data


class _Tape:
    """One recorded signature: the replay function and what a check or a graph needs."""

    def __init__(self, rec: _Recorder, input_slots: list[int], spec, out_slots: list[int],
                 config):
        self.spec = spec
        self.random = rec.random
        self.opts = rec.opts
        self.functions = list(rec.functions.values())
        self.params = [p for p, _ in rec.seen_params.values()]
        self.ops = [(st[0], _fname(st[1]), st[-1]) for st in rec.steps
                    if st[0] in ("fwd", "bwd", "upd")]
        self.gpu_graph = None  # a _Graph once captured
        self.gpu_tried = False
        self.gpu_reason = "not a GPU step"
        self.source, ns = self._generate(rec, input_slots, out_slots, config)
        self._ns = ns
        exec(compile(self.source, "<dezero.jit replay>", "exec"), ns)
        self.replay = ns["_replay"]

    def _generate(self, rec: _Recorder, input_slots, out_slots, config):
        consts = rec.consts
        ns: dict[str, Any] = {"_np_asarray": np.asarray, "_gread": _grad_or_zeros,
                              "_S": _settings}
        own: dict[int, Variable] = {}  # the grad Variables this tape made, per parameter

        def setgrad(p, a):
            g = p.grad
            if g is not None and g.data is a:
                return
            if g is not None and own.get(id(p)) is g:
                g.data = a
            else:
                g = own[id(p)] = Variable(a)
                p.grad = g

        ns["_setgrad"] = setgrad

        def ref(s):
            if s is None:
                return "None"
            if s in consts:
                ns[f"c{s}"] = consts[s]
                return f"c{s}"
            return f"s{s}"

        # liveness: delete a slot after its last use (keeps memory like the eager step's)
        uses: dict[int, int] = {}
        body: list[tuple[list[int], list[int], str]] = []  # (reads, writes, line)
        # Config as each op saw it (the backward pass runs with enable_backprop False, and
        # ops may read it); the replay starts from the Config of the cache key
        current = [config]

        def switch(cfg):
            if cfg != current[0]:
                for name, old, new in zip(("enable_backprop", "train"), current[0], cfg):
                    if old != new:
                        body.append(([], [], f"_S.{name} = {new}"))
                current[0] = cfg
        for k, st in enumerate(rec.steps):
            kind = st[0]
            if kind == "fwd":
                _, f, ins, outs, seq, wrap, cfg, _ = st
                ns[f"f{k}"] = f.forward
                call = f"f{k}({', '.join(ref(s) for s in ins)})"
                if wrap:
                    call = f"_np_asarray({call})"
                if seq:
                    lhs = ", ".join(f"s{o}" for o in outs) + ("," if len(outs) == 1 else "")
                else:
                    lhs = f"s{outs[0]}"
                switch(cfg)
                body.append((ins, outs, f"{lhs} = {call}"))
            elif kind == "bwd":
                _, f, xs, ys, gys, multi, gslots, single, cfg, _ = st
                ns[f"b{k}"] = f.backward_array
                seqs = "[{}]" if multi else "({},)"
                call = (f"b{k}([{', '.join(ref(s) for s in xs)}], "
                        f"{seqs.format(', '.join(ref(s) for s in ys))}, "
                        f"{seqs.format(', '.join(ref(s) for s in gys))})")
                outs = [g for g in gslots if g is not None]
                if single:
                    lhs = f"s{gslots[0]}" if gslots[0] is not None else "_"
                else:
                    lhs = ", ".join("_" if g is None else f"s{g}" for g in gslots)
                    lhs += "," if len(gslots) == 1 else ""
                switch(cfg)
                body.append(([s for s in (*xs, *ys, *gys) if s is not None], outs,
                             f"{lhs} = {call}"))
            elif kind == "acc":
                _, old, gs, new = st
                body.append(([old, gs], [new], f"s{new} = {ref(old)} + {ref(gs)}"))
            elif kind == "upd":
                _, opt, params, gslots, _ = st
                ns[f"o{k}"], ns[f"P{k}"], ns[f"h{k}"] = opt.apply_update, params, opt.step_hyper
                body.append((gslots, [],
                             f"o{k}(P{k}, [{', '.join(ref(s) for s in gslots)}], h{k}())"))
            elif kind == "setgrad":
                _, p, s = st
                ns[f"g{k}"] = p
                body.append(([s], [], f"_setgrad(g{k}, {ref(s)})"))
            elif kind == "nograd":
                ns[f"g{k}"] = st[1]
                body.append(([], [], f"g{k}.grad = None"))
        for i, (reads, _, _) in enumerate(body):
            for s in reads:
                uses[s] = i
        keep = set(out_slots) | set(input_slots)
        lines = ["def _replay(_in):"]
        restore = current[0] != config
        if restore:  # put the caller's Config back even when an op raises
            lines += ["  try:"]
        if input_slots:
            lines.append(f"    {', '.join(f's{s}' for s in input_slots)}, = _in")
        for i, (p, s) in enumerate(rec.params):
            ns[f"p{i}"] = p
            lines.append(f"    s{s} = p{i}.data")
        for i, (p, s) in enumerate(rec.grad_reads):
            ns[f"q{i}"] = p
            lines.append(f"    s{s} = _gread(q{i})")
        for i, (reads, writes, line) in enumerate(body):
            lines.append("    " + line)
            dead = sorted({s for s in (*reads, *writes)
                           if uses.get(s, -1) <= i and s not in keep and s not in consts})
            if dead:
                lines.append(f"    del {', '.join(f's{s}' for s in dead)}")
        lines.append(f"    return ({''.join(ref(s) + ', ' for s in out_slots)})")
        if restore:
            lines += ["  finally:", f"    _S.enable_backprop, _S.train = {config}"]
        return "\n".join(lines) + "\n", ns

    def build(self, outs):
        it = iter(outs)
        return _build(self.spec, it)


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
class _Graph:
    """The replay of a tape captured into one CUDA graph, with its fixed buffers.

    Built on the first GPU replay of a tape: that call's step runs for real through the same
    code (on a private stream, allocating from a private memory pool, which it leaves
    holding exactly the blocks the step needs), then the replay is captured (nothing runs)
    into a graph whose buffers stay fixed: nothing outside the graph allocates from that
    pool. Each later call copies the inputs into the graph's input buffers, writes the
    optimizers' per-step scalars (``step_hyper()``) into a device buffer, and launches it.
    """

    def __init__(self, tape: _Tape, leaves):
        cp = cuda.cupy
        self.pool = cp.cuda.MemoryPool()
        self.stream = cp.cuda.Stream(non_blocking=True)
        ns = dict(tape._ns)
        self.hyper = []
        # the graph's stream does not wait for the caller's: finish what is queued there
        cp.cuda.get_current_stream().synchronize()
        with cp.cuda.using_allocator(self.pool.malloc), self.stream:
            self.inputs = [cp.empty(a.shape, dtype=a.dtype) for a in leaves]
            for key, value in tape._ns.items():
                if key.startswith("h") and key[1:].isdigit():  # an optimizer's step_hyper
                    opt = value.__self__
                    names = [(i, k) for i, h in enumerate(opt._group_hyper()) for k in h]
                    buf = cp.zeros(len(names), dtype=self._dtype(opt))
                    views: list[dict] = [{} for _ in opt._group_hyper()]
                    for j, (i, k) in enumerate(names):
                        views[i][k] = buf[j]  # 0-d views: read by the kernels at launch
                    self.hyper.append((opt, names, buf))
                    ns[key] = (lambda v=views: v)
            exec(compile(tape.source, "<dezero.jit graph>", "exec"), ns)
            replay = ns["_replay"]
            self.guards = [(p, p.data) for p in tape.params]
            self._load(leaves)
            outs = replay(self.inputs)  # this call's step, for real
            self.first = [cp.array(o, copy=True) for o in outs]
            del outs
            self.stream.synchronize()
            self.graph = self.error = None
            try:  # from here on a failure leaves this call's step done: plain replay next
                mode = getattr(cp.cuda.runtime, "streamCaptureModeRelaxed", None)
                if mode is None:
                    self.stream.begin_capture()
                else:
                    self.stream.begin_capture(mode)
                try:
                    self.outs = replay(self.inputs)
                finally:
                    graph = self.stream.end_capture()
                if hasattr(graph, "upload"):
                    graph.upload(self.stream)
                self.graph = graph
            except Exception as e:  # a host sync or an uncapturable call inside an op
                self.error = e

    @staticmethod
    def _dtype(opt):
        for _, p in opt._named_params():
            if p.data is not None and p.data.dtype.kind == "f":
                return p.data.dtype
        return np.float32

    def valid(self) -> bool:
        return all(p.data is a for p, a in self.guards)

    def _load(self, leaves) -> None:
        cp = cuda.cupy
        for buf, a in zip(self.inputs, leaves):
            if isinstance(a, np.ndarray):
                buf.set(np.ascontiguousarray(a), self.stream)
            else:
                cp.copyto(buf, a)
        for opt, names, buf in self.hyper:
            h = opt.step_hyper()
            buf.set(np.array([h[i][k] for i, k in names], dtype=buf.dtype), self.stream)

    def __call__(self, leaves):
        cuda.cupy.cuda.get_current_stream().synchronize()  # the caller's queued work first
        with self.stream:
            self._load(leaves)
            self.graph.launch(self.stream)
            outs = [o.copy() for o in self.outs]
        self.stream.synchronize()
        return outs


# =============================================================================
# The decorator
# =============================================================================
def _walk_layers(obj, out, seen) -> None:
    from dezero.layers import Layer

    if id(obj) in seen:
        return
    if isinstance(obj, Layer):
        seen.add(id(obj))
        out.append(obj)
        for name in obj._params:
            _walk_layers(obj.__dict__.get(name), out, seen)
    elif type(obj) in (list, tuple) and len(obj) <= 64:
        for o in obj:
            _walk_layers(o, out, seen)
    elif hasattr(obj, "_named_params") and hasattr(obj, "target"):  # an optimizer
        seen.add(id(obj))
        _walk_layers(obj.target, out, seen)


def _referenced_layers(fn, args) -> list:
    """The Layers that ``fn`` refers to (bound self, closure, globals it names, arguments),
    with their sub-layers: their modes (``training``) are part of the cache key."""
    roots = [getattr(fn, "__self__", None), *args]
    code = getattr(fn, "__code__", None)
    if code is not None:
        roots += [c.cell_contents for c in (fn.__closure__ or ()) if _has_contents(c)]
        g = getattr(fn, "__globals__", {})
        roots += [g[n] for n in code.co_names if n in g]
    out: list = []
    seen: set = set()
    for r in roots:
        _walk_layers(r, out, seen)
    return out


def _has_contents(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _flatten(obj, leaves, key) -> None:
    t = type(obj)
    if t is np.ndarray or isinstance(obj, cuda.array_types):
        leaves.append(obj)
        key.append((t, obj.shape, obj.dtype))
    elif isinstance(obj, Variable):
        leaves.append(obj.data)
        key.append((Variable, type(obj.data), obj.data.shape, obj.data.dtype))
    elif t is tuple or t is list:
        key.append((t, len(obj)))
        for o in obj:
            _flatten(o, leaves, key)
    elif t is dict:
        key.append((dict, tuple(obj)))
        for o in obj.values():
            _flatten(o, leaves, key)
    else:
        try:
            hash(obj)
            key.append(("value", t, obj))
        except TypeError:
            key.append(("object", id(obj)))


class _JitFunction:
    """What ``dezero.jit(fn)`` returns: call it like ``fn``."""

    def __init__(self, fn: Callable, check: bool, max_cache: int, gpu_graph: bool):
        self.fn = fn
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", "step")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.check = check
        self.max_cache = max_cache
        self.use_gpu_graph = gpu_graph
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._layers = None
        self._counts = {"traces": 0, "replays": 0, "retraces": 0, "checks": 0}
        self._last = None

    def __call__(self, *args, **kwargs):
        leaves: list = []
        key: list = [_settings.enable_backprop, _settings.train]
        _flatten(args, leaves, key)
        if kwargs:
            _flatten(kwargs, leaves, key)
        if self._layers is None:
            self._layers = _referenced_layers(self.fn, args)
        if self._layers:
            key.append(tuple([getattr(la, "training", True) for la in self._layers]))
        key = tuple(key)
        tape = self._cache.get(key)
        if tape is not None and tape.buffers:
            for layer, name, array in tape.buffers:
                if layer.__dict__.get(name) is not array:  # replaced (load_state_dict)
                    tape = None  # the Functions of the tape hold the old arrays: record anew
                    break
        if tape is None:
            return self._trace(key, leaves, args, kwargs)
        self._cache.move_to_end(key)
        self._last = tape
        if self.check:
            return self._check(tape, leaves, args, kwargs)
        self._counts["replays"] += 1
        if isinstance(leaves[0] if leaves else None, np.ndarray) or not leaves:
            return tape.build(tape.replay(leaves))
        return tape.build(self._gpu_replay(tape, leaves))

    def cache_clear(self) -> None:
        """Forget every recorded signature: the next call traces again."""
        self._cache.clear()
        self._last = None

    def stats(self) -> dict:
        """``traces``, ``replays``, ``retraces``, ``checks``, ``cache_size`` and, for the
        last signature used, ``gpu_graph`` (True when its replay is one CUDA graph) and
        ``gpu_graph_reason`` (why not, else None)."""
        last = self._last
        return {
            **self._counts,
            "cache_size": len(self._cache),
            "gpu_graph": last is not None and last.gpu_graph is not None,
            "gpu_graph_reason": None if last is None else last.gpu_reason,
        }

    def __repr__(self):
        return f"<dezero.jit of {self.__name__}>"

    # --- tracing -----------------------------------------------------------------
    def _record(self, leaves, args, kwargs):
        if active_recorder() is not None:
            raise CaptureError(
                f"{self.__name__}: a dezero.jit step called inside another step's trace "
                f"(at {_user_line()}); jit the outer step only"
            )
        rec = _Recorder()
        config = rec.config()
        input_slots = [rec.new(a) for a in leaves]
        _local.recorder = rec
        try:
            with rec:
                result = self.fn(*args, **kwargs)
            spec, out_slots = rec.finish(result)
        finally:
            _local.recorder = None
        return result, _Tape(rec, input_slots, spec, out_slots, config)

    def _trace(self, key, leaves, args, kwargs):
        result, tape = self._record(leaves, args, kwargs)
        # the layers' buffers (BatchNorm's running statistics), which Functions may hold
        tape.buffers = [(la, name, la.__dict__.get(name)) for la in self._layers or ()
                        for name in getattr(la, "_buffers", ())]
        self._counts["traces"] += 1
        if self._counts["traces"] > 1:
            self._counts["retraces"] += 1
        self._cache[key] = tape
        self._last = tape
        while len(self._cache) > self.max_cache:
            self._cache.popitem(last=False)
        return result

    # --- the GPU graph -------------------------------------------------------------
    def _gpu_replay(self, tape, leaves):
        graph = tape.gpu_graph
        if graph is not None and not graph.valid():  # parameters replaced (load_state_dict)
            graph = tape.gpu_graph = None
            tape.gpu_tried = False
        if graph is None and not tape.gpu_tried:
            tape.gpu_tried = True
            tape.gpu_reason, first = self._capture(tape, leaves)
            if first is not None:
                return first  # this call's step ran while the graph was built
        if graph is not None:
            return graph(leaves)
        return tape.replay(leaves)

    def _capture(self, tape, leaves):
        """(reason or None, this call's outputs if the step already ran, else None)."""
        if not self.use_gpu_graph:
            return "disabled (jit(fn, gpu_graph=False)): plain replay", None
        if tape.random:
            return (f"the step draws random numbers ({', '.join(sorted(set(tape.random)))}); "
                    f"a CUDA graph would replay one draw: plain replay"), None
        graph = _Graph(tape, leaves)  # an error in the step itself propagates
        if graph.graph is None:
            e = graph.error
            return f"capture failed ({type(e).__name__}: {e}): plain replay", graph.first
        tape.gpu_graph = graph
        return None, graph.first

    # --- checking ----------------------------------------------------------------------
    def _check(self, tape, leaves, args, kwargs):
        self._counts["checks"] += 1
        snap = _Snapshot(tape)
        outs = tape.replay(leaves)
        replayed = [cuda.as_numpy(o).copy() for o in outs]
        after = snap.state()
        snap.restore()
        result, fresh = self._record(leaves, args, kwargs)
        for i, (a, b) in enumerate(zip(tape.ops, fresh.ops)):
            if a[:2] != b[:2]:
                raise JitCheckError(
                    f"dezero.jit check: op {i} of the step differs from the recorded one: "
                    f"recorded {a[1]} ({a[0]}, at {a[2]}), now {b[1]} ({b[0]}, at {b[2]}); "
                    f"the step's operations depend on its data (a Python branch on a value)"
                )
        if len(tape.ops) != len(fresh.ops):
            raise JitCheckError(
                f"dezero.jit check: the step ran {len(fresh.ops)} ops, the recording has "
                f"{len(tape.ops)}; the step's operations depend on its data"
            )
        eager_outs: list = []
        _collect(result, eager_outs)
        for i, (a, b) in enumerate(zip(replayed, eager_outs)):
            _compare(a, b, f"output {i} of the step")
        for name, a in after.items():
            _compare(a, snap.current(name), name)
        return result


def _collect(obj, out) -> None:
    if isinstance(obj, Variable):
        out.append(cuda.as_numpy(obj.data))
    elif isinstance(obj, cuda.array_types):
        out.append(cuda.as_numpy(obj))
    elif type(obj) in (tuple, list):
        for o in obj:
            _collect(o, out)
    elif type(obj) is dict:
        for o in obj.values():
            _collect(o, out)


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
        f"Function (NumPy on the inputs, np.random in the step) or a Python scalar"
    )


class _Snapshot:
    """The state a step changes (parameters, gradients, optimizer state, arrays held by
    the tape's Functions such as running statistics, NumPy's random state), to run the
    same step twice from the same start."""

    def __init__(self, tape: _Tape):
        self.tape = tape
        self.names: dict[int, str] = {}
        for opt in tape.opts:
            for n, p in opt._named_params():
                self.names.setdefault(id(p), n)
        self.params = [(p, p.data.copy(), p.grad, None if p.grad is None else p.grad.data)
                       for p in tape.params]
        self.opts = [(opt, opt.t, {k: {s: v.copy() for s, v in d.items()}
                                   for k, d in opt._state.items()}) for opt in tape.opts]
        self.attrs = [(f, k, v, v.copy()) for f in tape.functions
                      for k, v in list(vars(f).items()) if isinstance(v, cuda.array_types)]
        self.rng = np.random.get_state()  # noqa: NPY002  (dezero draws from the global RNG)

    def _pname(self, i, p) -> str:
        return self.names.get(id(p), p.name or f"#{i}")

    def state(self) -> dict:
        """Copies of everything the step left, by name (call right after the replay)."""
        out = {}
        for i, (p, *_) in enumerate(self.params):
            out[f"parameter {self._pname(i, p)!r}"] = cuda.as_numpy(p.data).copy()
            if p.grad is not None:
                out[f"the gradient of parameter {self._pname(i, p)!r}"] = (
                    cuda.as_numpy(p.grad.data).copy())
        for j, (opt, _, _) in enumerate(self.opts):
            for k, d in opt._state.items():
                for s, v in d.items():
                    out[f"state {k}/{s} of optimizer {j}"] = cuda.as_numpy(v).copy()
        self.persistent = [(f, k, v) for f, k, v, _ in self.attrs if getattr(f, k) is v]
        for f, k, v in self.persistent:
            out[f"the array {k!r} of {_fname(f)}"] = cuda.as_numpy(v).copy()
        return out

    def current(self, name: str):
        for i, (p, *_) in enumerate(self.params):
            if name == f"parameter {self._pname(i, p)!r}":
                return p.data
            if name == f"the gradient of parameter {self._pname(i, p)!r}":
                return np.full((), np.nan) if p.grad is None else p.grad.data
        for j, (opt, _, _) in enumerate(self.opts):
            for k, d in opt._state.items():
                for s, v in d.items():
                    if name == f"state {k}/{s} of optimizer {j}":
                        return v
        for f, k, v in self.persistent:
            if name == f"the array {k!r} of {_fname(f)}":
                return v
        raise KeyError(name)

    def restore(self) -> None:
        for p, data, grad, gdata in self.params:
            p.data[...] = data
            p.grad = grad
            if grad is not None:
                grad.data = gdata
        for opt, t, state in self.opts:
            opt.t = t
            opt._state = state
        for f, k, v, saved in self.attrs:
            v[...] = saved
            setattr(f, k, v)
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
    if max_cache < 1:
        raise ValueError(f"jit: max_cache must be at least 1, got {max_cache}")
    return _JitFunction(fn, check, max_cache, gpu_graph)
