"""The tracer and the graph builder behind ``dezero.onnx.export``."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dezero import core, cuda
from dezero.callsite import user_location
from dezero.core import Parameter, Variable, no_grad, test_mode
from dezero.hooks import installed
from dezero.layers import Layer
from dezero.version import __version__

MIN_OPSET = 18  # ReduceMean/ReduceMax take their axes as an input from opset 18 on



class ExportError(ValueError):
    """A model that cannot be written as ONNX (names the Function and where it was called)."""


def _require_onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            'exporting to ONNX needs the onnx package: pip install "dezero-next[onnx]"'
        ) from e
    return onnx


# =============================================================================
# Tracing
# =============================================================================
class _Record:
    __slots__ = ("f", "inputs", "outputs", "where")

    def __init__(self, f, inputs, outputs, where):
        self.f, self.inputs, self.outputs, self.where = f, inputs, outputs, where


def _states(model) -> list:
    """Attributes that may hold recurrent state: None, Variables or arrays that are neither
    parameters nor buffers (an RNN's ``h``)."""
    out = []
    layers = [model]
    seen = set()
    while layers:
        layer = layers.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        buffers = getattr(layer, "_buffers", {})
        for name, value in vars(layer).items():
            if isinstance(value, Layer):
                layers.append(value)
            elif isinstance(value, (list, tuple)):
                layers.extend(v for v in value if isinstance(v, Layer))
            elif (value is None or isinstance(value, (Variable, *cuda.array_types))) and (
                    not isinstance(value, Parameter) and name not in buffers):
                out.append((layer, name, value))
    return out


class _Tracer(core.FunctionHook):
    """Records every Function call of the tracing thread, also those on constants only.

    A value read into Python while tracing (``float(v)``, ``v.item()``, ``int(v)``) would
    freeze whatever the model decides on it as one fixed branch of the graph: refused
    (``value_reads="error"``), or a warning (``"warn"``), as ``dezero.jit`` refuses it.
    """

    def __init__(self, value_reads: str = "error", warned: set | None = None):
        self.records: list[_Record] = []
        self.value_reads = value_reads
        self.warned = set() if warned is None else warned

    def value_read(self, var, how: str) -> None:
        where = user_location(stop_at=__file__)
        message = (
            f"{how} reads the value of a Variable (shape {var.shape}) into Python while the "
            f"model is traced, at {where}: the exported graph would hold one fixed branch of "
            f"whatever the model decides on that value. Keep the decision in array "
            f"operations (F.where, F.clip...), or pass value_reads='warn' to export anyway"
        )
        if self.value_reads == "error":
            raise ExportError(message)
        if where not in self.warned:  # the second trace (dynamic_batch) warns no more
            self.warned.add(where)
            import warnings

            warnings.warn(message, UserWarning, stacklevel=2)

    def forward_post(self, f, xs, outputs):
        self.records.append(_Record(f, tuple(xs), tuple(outputs), user_location(stop_at=__file__)))


def _trace(model, arrays, value_reads="error", warned=None):
    """Run ``model`` on Variables of ``arrays`` in test mode; return (inputs, output, records)."""
    if any(isinstance(h, _Tracer) for h in installed()):
        raise RuntimeError("dezero.onnx.export: already tracing (export is not reentrant)")
    xs = [Variable(a) for a in arrays]
    states = _states(model)
    tracer = _Tracer(value_reads, warned)
    try:
        with tracer, test_mode(), no_grad():
            y = model(*xs)
    finally:
        for layer, name, value in states:  # export leaves the state as it found it
            now = getattr(layer, name, None)
            if now is not value and isinstance(now, (Variable, *cuda.array_types)):
                object.__setattr__(layer, name, value)
    records = tracer.records
    ys = list(y) if isinstance(y, (tuple, list)) else [y]
    for v in ys:
        if not isinstance(v, Variable):
            raise ExportError(
                f"the model returned a {type(v).__name__}; export needs Variables "
                f"(or a tuple/list of them)"
            )
    return xs, ys, records


def _batch_plus_one(a):
    xp = cuda.get_array_module(a)
    return xp.concatenate([a, a[:1]], axis=0)


# =============================================================================
# Opset
# =============================================================================
@functools.cache
def newest_opset() -> int:
    """The newest opset that both the onnx package and the installed onnxruntime handle."""
    onnx = _require_onnx()
    from onnx import helper

    top = onnx.defs.onnx_opset_version()
    try:
        import onnxruntime as ort
    except ImportError:
        return top
    # a probe of the ops whose newest versions are the most recent (their kernels too)
    float_in = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])
    float_out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])
    shape = helper.make_tensor("s", onnx.TensorProto.INT64, [3], [1, 2, 1])
    axes = helper.make_tensor("a", onnx.TensorProto.INT64, [1], [0])
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Reshape", ["c", "s"], ["r"]),
        helper.make_node("Squeeze", ["r", "a"], ["q"]),
        helper.make_node("Unsqueeze", ["q", "a"], ["u"]),
        helper.make_node("Squeeze", ["u", "a"], ["v"]),
        helper.make_node("Transpose", ["v"], ["y"], perm=[1, 0]),
    ]
    for version in range(top, MIN_OPSET - 1, -1):
        graph = helper.make_graph(nodes, "probe", [float_in], [float_out],
                                  initializer=[shape, axes])
        opsets = [helper.make_opsetid("", version)]
        model = helper.make_model(graph, opset_imports=opsets)
        model.ir_version = helper.find_min_ir_version_for(opsets)
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: a failed probe is expected
            session = ort.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
            session.run(None, {"x": np.ones((1, 2), dtype=np.float32)})
        except Exception:  # this onnxruntime does not run the opset (or the IR version)
            continue
        return version
    raise ExportError(f"the installed onnxruntime runs no opset >= {MIN_OPSET}")


# =============================================================================
# The graph builder (what exporters see)
# =============================================================================
class Graph:
    """The ONNX graph under construction; exporters call ``node``, ``const``, ``shape``."""

    def __init__(self, onnx, opset, n_batch, batch_of, twins):
        self.onnx = onnx
        self.helper = onnx.helper
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._names: dict[int, str] = {}
        self._used: set[str] = set()
        self._const_ids: dict[int, str] = {}
        self.n_batch = n_batch  # the traced batch size (None: static shapes)
        self._batch_of = batch_of  # id(Variable) -> its shape in the second trace
        self._twins = twins  # id(Function) -> the same call in the second trace
        self._batch_name = None
        self.batch_source = None  # the graph input whose first axis is the batch

    # --- names ------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        hint = hint.replace(" ", "_") or "t"
        name, k = hint, 0
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._used.add(name)
        return name

    def name(self, v: Variable) -> str:
        return self._names[id(v)]

    def bind(self, v: Variable, name: str) -> None:
        self._names[id(v)] = name

    def has(self, v: Variable) -> bool:
        return id(v) in self._names

    # --- nodes and constants ----------------------------------------------------
    def node(self, op_type: str, inputs, outputs=None, n_out: int = 1, **attrs):
        """Add a node; returns its output name (a list when ``n_out > 1``)."""
        if outputs is None:
            outputs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        elif isinstance(outputs, str):
            outputs = [outputs]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), list(outputs), **attrs))
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def const(self, value, dtype=None, hint: str = "const") -> str:
        """An initializer holding ``value`` (cast to ``dtype`` when given)."""
        array = np.asarray(cuda.as_numpy(value))
        if dtype is not None:
            array = array.astype(dtype, copy=False)
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array),
                                                                  name))
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint="ints")

    def cast(self, name: str, from_dtype, to_dtype) -> str:
        if np.dtype(from_dtype) == np.dtype(to_dtype):
            return name
        return self.node("Cast", [name], to=self.tensor_type(to_dtype))

    def tensor_type(self, dtype) -> int:
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    # --- shapes that follow the batch ----------------------------------------
    def twin(self, f):
        """The same call in the trace at batch n + 1 (``f`` itself without dynamic_batch)."""
        return self._twins.get(id(f), f)

    def dims(self, v: Variable, shape2=None) -> list:
        """``v``'s shape: ints, or ``(k, b)`` for a size ``k * batch + b``."""
        shape = tuple(v.shape)
        if shape2 is None:
            shape2 = self._batch_of.get(id(v), shape)
        return _dims(shape, shape2, self.n_batch)

    def is_dynamic(self, v: Variable) -> bool:
        return any(not isinstance(d, int) for d in self.dims(v))

    def batch(self) -> str:
        """A 1-element int64 tensor holding the run-time batch size."""
        if self._batch_name is None:
            self._batch_name = self.node("Shape", [self.batch_source], start=0, end=1)
        return self._batch_name

    def shape(self, v: Variable = None, dims=None) -> str:
        """An int64 tensor with ``v``'s run-time shape (a constant when it is static)."""
        if dims is None:
            dims = self.dims(v)
        if all(isinstance(d, int) for d in dims):
            return self.ints(dims)
        parts, static = [], []
        for d in dims:
            if isinstance(d, int):
                static.append(d)
                continue
            if static:
                parts.append(self.ints(static))
                static = []
            k, b = d
            size = self.batch()
            if k != 1:
                size = self.node("Mul", [size, self.ints([k])])
            if b:
                size = self.node("Add", [size, self.ints([b])])
            parts.append(size)
        if static:
            parts.append(self.ints(static))
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, axis=0)


def _dims(shape, shape2, n):
    if n is None or len(shape) != len(shape2):
        return list(shape)
    out = []
    for d1, d2 in zip(shape, shape2):
        if d1 == d2:
            out.append(int(d1))
        else:  # d = k * batch + b, from the two traces (batch n and n + 1)
            k = d2 - d1
            out.append((int(k), int(d1 - k * n)))
    return out


def _dim_param(d):
    if isinstance(d, int):
        return d
    k, b = d
    text = "batch" if k == 1 else f"{k}*batch"
    return text if not b else f"{text}+{b}" if b > 0 else f"{text}-{-b}"


# =============================================================================
# export
# =============================================================================
def export(model, args, path, input_names=None, output_names=None, dynamic_batch=True,
           opset=None, *, value_reads="error"):
    """Trace ``model(*args)`` in test mode and write it to ``path`` as an ONNX model.

    Parameters
    ----------
    model : callable (a Layer/Model, or any function of Variables)
    args : array, Variable, or a tuple/list of them
        Example inputs. Integer inputs (token ids) are fine.
    path : str or os.PathLike
        Where to write the model (atomically); None writes nothing.
    input_names, output_names : list of str, optional
        Defaults ``input``/``output`` (``input0``, ``input1``... when there are several).
    dynamic_batch : bool
        Make the first axis of the inputs and outputs symbolic (``batch``).
    opset : int, optional
        The ONNX opset; None means the newest that the installed onnxruntime runs
        (at least 18).
    value_reads : {"error", "warn"}
        What a value read into Python during the trace (``float(v)``, ``v.item()``,
        ``int(v)``: a branch the graph would freeze) does: raise ExportError naming the
        line (the default, as ``dezero.jit`` does), or warn once per line and export.

    With ``dynamic_batch``, a sample whose batch is empty is traced as a batch of one (zeros
    of its dtype and other sizes), so that the batch axis stays symbolic.

    Returns
    -------
    onnx.ModelProto, also written to ``path``.

    Raises
    ------
    ExportError
        For a Function without an exporter (naming it and the line that called it) or a
        graph that depends on the batch size in a way ONNX cannot express.
    ImportError
        When the ``onnx`` package is missing (``pip install "dezero-next[onnx]"``).
    """
    onnx = _require_onnx()
    from dezero.onnx._ops import EXPORTERS, NOT_EXPORTED

    opset = newest_opset() if opset is None else int(opset)
    if opset < MIN_OPSET:
        raise ValueError(f"dezero.onnx exports opset {MIN_OPSET} or newer, got opset={opset}")
    if isinstance(args, (tuple, list)):
        args = tuple(args)
    else:
        args = (args,)
    arrays = []
    for a in args:
        if isinstance(a, Variable):
            a = a.data
        elif not isinstance(a, cuda.array_types):
            a = np.asarray(a)
        arrays.append(a)
    if value_reads not in ("error", "warn"):
        raise ValueError(f"export: value_reads must be 'error' or 'warn', got {value_reads!r}")
    if dynamic_batch:
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(
                    f"export: input {i} is 0-d and has no batch axis; pass dynamic_batch=False"
                )
        if any(a.shape[0] == 0 for a in arrays):
            # an empty sample would trace a static batch of 0: trace a batch of one instead
            arrays = [cuda.get_array_module(a).zeros((1, *a.shape[1:]), dtype=a.dtype)
                      for a in arrays]

    warned: set = set()
    xs, ys, records = _trace(model, arrays, value_reads, warned)
    shapes2: dict[int, tuple] = {}
    twins: dict[int, Any] = {}
    n_batch = None
    if dynamic_batch:
        n_batch = int(arrays[0].shape[0])
        xs2, ys2, records2 = _trace(model, [_batch_plus_one(a) for a in arrays], value_reads,
                                    warned)
        _align(xs, ys, records, xs2, ys2, records2, shapes2, twins)

    g = Graph(onnx, opset, n_batch, shapes2, twins)
    helper = onnx.helper
    n_in, n_out = len(xs), len(ys)
    input_names = _names(input_names, n_in, "input")
    output_names = _names(output_names, n_out, "output")
    graph_inputs = []
    for x, name in zip(xs, input_names):
        g.fresh(name)
        g.bind(x, name)
        dims = [_dim_param(d) for d in g.dims(x)]
        graph_inputs.append(helper.make_tensor_value_info(name, g.tensor_type(x.dtype), dims))
    for name in output_names:
        if name in input_names:
            raise ValueError(f"export: {name!r} names both an input and an output")
        g._used.add(name)
    if dynamic_batch:
        g.batch_source = input_names[0]

    # parameters and buffers, by their path in the model
    param_names: dict[int, str] = {}
    if isinstance(model, Layer):
        for where, p in model.named_params():
            param_names.setdefault(id(p), where)
        for where, value in model.named_buffers():
            if value is not None:
                param_names.setdefault(id(value), where)

    # keep only the calls that lead to the outputs
    producer = {}
    for i, r in enumerate(records):
        for y in r.outputs:
            producer[id(y)] = i
    needed = set()
    stack = [y for y in ys]
    seen = set()
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        i = producer.get(id(v))
        if i is not None and i not in needed and not g.has(v):
            needed.add(i)
            stack.extend(records[i].inputs)

    for i in sorted(needed):
        r = records[i]
        kind = type(r.f)
        exporter = EXPORTERS.get(kind)
        if exporter is None:
            reason = NOT_EXPORTED.get(kind, "no exporter is registered for it")
            raise ExportError(
                f"cannot export {kind.__name__} (called at {r.where}): {reason}"
            )
        ins = [_leaf(g, v, r, param_names) if not g.has(v) else g.name(v) for v in r.inputs]
        outs = []
        for y in r.outputs:
            name = g.fresh(kind.__name__.lower())
            g.bind(y, name)
            outs.append(name)
        try:
            exporter(g, _Op(r.f, r.inputs, r.outputs, ins, outs, r.where))
        except ExportError as e:
            raise ExportError(f"cannot export {kind.__name__} (called at {r.where}): {e}") from None

    graph_outputs = []
    for y, name in zip(ys, output_names):
        src = g.name(y) if g.has(y) else _leaf(g, y, None, param_names)
        g.node("Identity", [src], [name])
        dims = [_dim_param(d) for d in g.dims(y)]
        graph_outputs.append(helper.make_tensor_value_info(name, g.tensor_type(y.dtype), dims))

    graph = helper.make_graph(g.nodes, type(model).__name__, graph_inputs, graph_outputs,
                              initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="dezero",
                              producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    data = proto.SerializeToString()  # once: it is the slow part for big models
    onnx.checker.check_model(data)
    if path is not None:
        from dezero.serialization import atomic_write

        with atomic_write(path) as f:
            f.write(data)
    return proto


class _Op:
    """One call to export: the Function, its input/output Variables and ONNX names."""

    __slots__ = ("f", "ins", "outs", "where", "xs", "ys")

    def __init__(self, f, xs, ys, ins, outs, where):
        self.f, self.xs, self.ys, self.ins, self.outs, self.where = f, xs, ys, ins, outs, where


def _names(names, n, base):
    if names is None:
        return [base] if n == 1 else [f"{base}{i}" for i in range(n)]
    names = list(names)
    if len(names) != n or len(set(names)) != n:
        raise ValueError(f"export: expected {n} distinct {base} names, got {names}")
    return names


def _leaf(g: Graph, v: Variable, record, param_names) -> str:
    """An initializer (or a node) for a Variable that no traced call produced."""
    data = v.data
    key = id(v) if isinstance(v, Parameter) else id(data)
    name = param_names.get(id(v)) or param_names.get(id(data))
    if key in g._const_ids:
        name = g._const_ids[key]
    elif g.is_dynamic(v):
        # a constant whose shape follows the batch (an RNN's zero initial state): it must be
        # one value repeated, built at run time for the actual batch
        flat = cuda.as_numpy(data).reshape(-1)
        if flat.size == 0 or not np.all(flat == flat[0]):
            where = f" (used at {record.where})" if record is not None else ""
            raise ExportError(
                f"a constant of shape {tuple(v.shape)}{where} changes with the batch size "
                f"but is not one repeated value; compute it from the inputs, or export "
                f"with dynamic_batch=False"
            )
        value = g.onnx.numpy_helper.from_array(flat[:1].copy(), "value")
        name = g.node("ConstantOfShape", [g.shape(v)], value=value)
        g.bind(v, name)
        return name
    else:
        if isinstance(v, Parameter) and name is None:
            name = v.name or "param"
        name = g.const(data, hint=name or "const")
        g._const_ids[key] = name
    g.bind(v, name)
    return name


def _align(xs, ys, records, xs2, ys2, records2, shapes2, twins):
    """Pair the Variables of the two traces; record each one's shape at batch n + 1."""
    same = len(records) == len(records2) and all(
        type(a.f) is type(b.f) and len(a.inputs) == len(b.inputs)
        and len(a.outputs) == len(b.outputs) for a, b in zip(records, records2)
    ) and len(ys) == len(ys2)
    if not same:
        raise ExportError(
            "the model runs different operations for batch sizes n and n + 1, so its graph "
            "cannot have a symbolic batch axis; export with dynamic_batch=False"
        )
    for a, b in zip(xs, xs2):
        shapes2[id(a)] = tuple(b.shape)
    for ra, rb in zip(records, records2):
        for a, b in zip(ra.inputs + ra.outputs, rb.inputs + rb.outputs):
            shapes2.setdefault(id(a), tuple(b.shape))
        twins[id(ra.f)] = rb.f
    for a, b in zip(ys, ys2):
        shapes2.setdefault(id(a), tuple(b.shape))

