"""One exporter per Function type, in one table (``EXPORTERS``), and the written reasons why
the others have none (``NOT_EXPORTED``).

An exporter ``fn(g, op)`` writes nodes into the graph ``g`` (``dezero.onnx._export.Graph``)
that compute ``op.outs`` (the ONNX names of the Function's outputs) from ``op.ins`` (those of
its inputs); ``op.f`` is the Function with its attributes, ``op.xs``/``op.ys`` its input and
output Variables (for shapes and dtypes). Shapes that follow the batch go through
``g.shape(v)``, never through ``v.shape`` alone. This module does not import onnx itself:
everything goes through ``g``.
"""

from __future__ import annotations

import numpy as np

from dezero import core, cuda
from dezero.functions import (
    NoGrad,
    activation,
    array,
    attention,
    conv,
    embedding,
    linalg,
    loss,
    math,
    noise,
    normalization,
    reduction,
    rnn,
)
from dezero.functions import math as fmath

EXPORTERS: dict = {}
NOT_EXPORTED: dict = {}


def exporter(*kinds):
    def register(fn):
        for kind in kinds:
            EXPORTERS[kind] = fn
        return fn

    return register


def _same_type(g, op, names=None, xs=None, dtype=None):
    """The input names cast to the output's dtype (ONNX ops want one element type)."""
    dtype = op.ys[0].dtype if dtype is None else dtype
    names = op.ins if names is None else names
    xs = op.xs if xs is None else xs
    return [g.cast(n, x.dtype, dtype) for n, x in zip(names, xs)]


def _axes(axis, ndim):
    if axis is None:
        return list(range(ndim))
    axis = axis if isinstance(axis, (tuple, list)) else (axis,)
    return [int(a) % ndim if ndim else int(a) for a in axis]


# =============================================================================
# Elementwise
# =============================================================================
_UNARY = {
    core.Neg: "Neg",
    math.Exp: "Exp",
    math.Log: "Log",
    math.Sin: "Sin",
    math.Cos: "Cos",
    math.Tanh: "Tanh",
    math.Sqrt: "Sqrt",
    math.Abs: "Abs",
    activation.Softplus: "Softplus",
    activation.Sigmoid: "Sigmoid",
    activation.ReLU: "Relu",
}


@exporter(*_UNARY)
def _unary(g, op):
    g.node(_UNARY[type(op.f)], _same_type(g, op), op.outs)


_BINARY = {
    core.Add: "Add",
    core.Sub: "Sub",
    core.Mul: "Mul",
    core.Div: "Div",
    fmath.PowVar: "Pow",
    math.Maximum: "Max",
    math.Minimum: "Min",
}


@exporter(*_BINARY)
def _binary(g, op):
    kind = type(op.f)
    names = op.ins if kind is fmath.PowVar else _same_type(g, op)
    if kind is fmath.PowVar:
        names = [g.cast(op.ins[0], op.xs[0].dtype, op.ys[0].dtype), op.ins[1]]
    g.node(_BINARY[kind], names, op.outs)


@exporter(math.Square)
def _square(g, op):
    (x,) = _same_type(g, op)
    g.node("Mul", [x, x], op.outs)


# x + c, c - x, x * c, x / c, c / x with a constant c
_CONSTANT = {
    core.AddConstant: ("Add", False),
    core.ConstantMinus: ("Sub", True),
    core.MulConstant: ("Mul", False),
    core.DivByConstant: ("Div", False),
    core.ConstantOver: ("Div", True),
}


def _attr_const(g, op, value, value2, dtype, hint):
    """An initializer for an array attribute; one that follows the batch is expanded."""
    value = np.asarray(cuda.as_numpy(value))
    value2 = np.asarray(cuda.as_numpy(value2))
    if value.shape == value2.shape or g.n_batch is None:
        return g.const(value, dtype=dtype, hint=hint)
    from dezero.onnx._export import ExportError, _dims

    flat = value.reshape(-1)
    if flat.size == 0 or not np.all(flat == flat[0]):
        raise ExportError(
            f"its constant {hint} of shape {value.shape} changes with the batch size but "
            f"is not one repeated value; compute it from the inputs, or export with "
            f"dynamic_batch=False"
        )
    dims = _dims(value.shape, value2.shape, g.n_batch)
    return g.node("Expand", [g.const(flat[:1].reshape(()), dtype=dtype, hint=hint),
                             g.shape(dims=dims)])


@exporter(*_CONSTANT)
def _constant_op(g, op):
    kind, reflected = _CONSTANT[type(op.f)]
    dtype = op.ys[0].dtype
    c = _attr_const(g, op, op.f.c, g.twin(op.f).c, dtype, "c")
    (x,) = _same_type(g, op)
    g.node(kind, [c, x] if reflected else [x, c], op.outs)


@exporter(fmath.Pow)
def _pow(g, op):
    (x,) = _same_type(g, op)
    g.node("Pow", [x, g.const(op.f.c, dtype=op.ys[0].dtype, hint="exponent")], op.outs)


@exporter(math.AsType)
def _astype(g, op):
    g.node("Cast", op.ins, op.outs, to=g.tensor_type(op.ys[0].dtype))


@exporter(math.Clip)
def _clip(g, op):
    dtype = op.ys[0].dtype
    (x,) = _same_type(g, op)
    lo = "" if op.f.x_min is None else g.const(op.f.x_min, dtype=dtype, hint="min")
    hi = "" if op.f.x_max is None else g.const(op.f.x_max, dtype=dtype, hint="max")
    g.node("Clip", [x, lo, hi], op.outs)


@exporter(activation.GELU)
def _gelu(g, op):
    # the tanh form that dezero computes: 0.5 x (1 + tanh(c (x + a x^3)))
    dtype = op.ys[0].dtype
    (x,) = _same_type(g, op)
    x3 = g.node("Mul", [g.node("Mul", [x, x]), x])
    inner = g.node("Add", [x, g.node("Mul", [x3, g.const(activation.GELU_A, dtype=dtype)])])
    t = g.node("Tanh", [g.node("Mul", [inner, g.const(activation.GELU_C, dtype=dtype)])])
    one_plus = g.node("Add", [t, g.const(1.0, dtype=dtype)])
    half_x = g.node("Mul", [x, g.const(0.5, dtype=dtype)])
    g.node("Mul", [half_x, one_plus], op.outs)


@exporter(activation.LeakyReLU)
def _leaky_relu(g, op):
    g.node("LeakyRelu", _same_type(g, op), op.outs, alpha=float(op.f.slope))


def _softmax_like(g, op, log):
    (x,) = _same_type(g, op)
    ndim = op.xs[0].ndim
    axes = _axes(op.f.axis, ndim)
    if len(axes) == 1:
        g.node("LogSoftmax" if log else "Softmax", [x], op.outs, axis=axes[0])
        return
    # several axes: the stable composite (max shift, exp, sum)
    m = g.node("ReduceMax", [x, g.ints(axes)], keepdims=1)
    d = g.node("Sub", [x, m])
    s = g.node("ReduceSum", [g.node("Exp", [d]), g.ints(axes)], keepdims=1)
    if log:
        g.node("Sub", [d, g.node("Log", [s])], op.outs)
    else:
        g.node("Div", [g.node("Exp", [d]), s], op.outs)


@exporter(activation.Softmax)
def _softmax(g, op):
    _softmax_like(g, op, log=False)


@exporter(activation.LogSoftmax)
def _log_softmax(g, op):
    _softmax_like(g, op, log=True)


# =============================================================================
# Reductions
# =============================================================================
_REDUCE = {
    reduction.Sum: "ReduceSum",
    reduction.Mean: "ReduceMean",
    reduction.Max: "ReduceMax",
    reduction.Min: "ReduceMin",
}


def _reduce(g, kind, x, axis, ndim, keepdims, out=None):
    inputs = [x] if axis is None else [x, g.ints(_axes(axis, ndim))]
    return g.node(kind, inputs, out, keepdims=int(bool(keepdims)))


@exporter(*_REDUCE)
def _reduction(g, op):
    (x,) = _same_type(g, op)
    _reduce(g, _REDUCE[type(op.f)], x, op.f.axis, op.xs[0].ndim, op.f.keepdims, op.outs)


@exporter(reduction.LogSumExp)
def _logsumexp(g, op):
    (x,) = _same_type(g, op)
    ndim = op.xs[0].ndim
    m = _reduce(g, "ReduceMax", x, op.f.axis, ndim, True)
    s = _reduce(g, "ReduceSum", g.node("Exp", [g.node("Sub", [x, m])]), op.f.axis, ndim, True)
    y = g.node("Add", [g.node("Log", [s]), m])
    if op.f.keepdims:
        g.node("Identity", [y], op.outs)
    else:
        g.node("Reshape", [y, g.shape(op.ys[0])], op.outs)


# =============================================================================
# Shapes and indexing
# =============================================================================
@exporter(array.Reshape)
def _reshape(g, op):
    g.node("Reshape", [op.ins[0], g.shape(op.ys[0])], op.outs)


@exporter(array.Transpose)
def _transpose(g, op):
    ndim = op.xs[0].ndim
    axes = op.f.axes
    perm = list(range(ndim))[::-1] if axes is None else [int(a) % ndim for a in axes]
    g.node("Transpose", op.ins, op.outs, perm=perm)


@exporter(array.BroadcastTo)
def _broadcast_to(g, op):
    g.node("Expand", [op.ins[0], g.shape(op.ys[0])], op.outs)


@exporter(array.SumTo)
def _sum_to(g, op):
    xd, yd = g.dims(op.xs[0]), g.dims(op.ys[0])
    lead = len(xd) - len(yd)
    axes = list(range(lead)) + [
        i + lead for i, d in enumerate(yd) if d == 1 and xd[i + lead] != 1
    ]
    y = g.node("ReduceSum", [op.ins[0], g.ints(axes)], keepdims=1) if axes else op.ins[0]
    g.node("Reshape", [y, g.shape(op.ys[0])], op.outs)


@exporter(array.Concat)
def _concat(g, op):
    axis = int(op.f.axis) % op.xs[0].ndim
    g.node("Concat", _same_type(g, op), op.outs, axis=axis)


@exporter(array.Stack)
def _stack(g, op):
    axis = int(op.f.axis) % op.ys[0].ndim
    parts = [g.node("Unsqueeze", [x, g.ints([axis])]) for x in _same_type(g, op)]
    g.node("Concat", parts, op.outs, axis=axis)


@exporter(array.Split)
def _split(g, op):
    axis = op.f.axis
    sizes = [y.shape[axis] for y in op.ys]
    if any(not isinstance(g.dims(y)[axis], int) for y in op.ys):
        from dezero.onnx._export import ExportError

        raise ExportError("splitting along the batch axis has no fixed sizes")
    g.node("Split", [op.ins[0], g.ints(sizes)], op.outs, axis=axis)


@exporter(array.Pad)
def _pad(g, op):
    pw = op.f.pad_width
    pads = [b for b, _ in pw] + [a for _, a in pw]
    value = g.const(op.f.constant_values, dtype=op.ys[0].dtype, hint="pad_value")
    g.node("Pad", [op.ins[0], g.ints(pads), value], op.outs, mode="constant")


@exporter(array.Where)
def _where(g, op):
    f = op.f
    cond = _attr_const(g, op, f.condition, g.twin(f).condition, np.bool_, "condition")
    g.node("Where", [cond, *_same_type(g, op)], op.outs)


_BIG = np.iinfo(np.int64).max


def _slice_bounds(s):
    step = 1 if s.step is None else int(s.step)
    if step > 0:
        start = 0 if s.start is None else int(s.start)
        stop = _BIG if s.stop is None else int(s.stop)
    else:
        start = -1 if s.start is None else int(s.start)
        stop = -_BIG - 1 if s.stop is None else int(s.stop)
    return start, stop, step


@exporter(array.GetItem)
def _get_item(g, op):
    from dezero.onnx._export import ExportError

    x = op.xs[0]
    template = op.f.template
    items = list(template) if isinstance(template, tuple) else [template]
    n_used = sum(1 for s in items if s is not None and s is not Ellipsis)
    fill = [slice(None)] * (x.ndim - n_used)
    ellipsis = [i for i, s in enumerate(items) if s is Ellipsis]
    if ellipsis:
        i = ellipsis[0]
        items = items[:i] + fill + items[i + 1:]
    else:
        items = items + fill

    # walk the index: x's axis of each item, slices and ints (an int i as i:i+1)
    starts, ends, steps, axes = [], [], [], []
    int_axes, array_axes, none_out = [], {}, []
    axis = out_pos = 0
    for s in items:
        if s is None:
            none_out.append(out_pos)
            out_pos += 1
            continue
        if isinstance(s, array.IndexSlot):
            v = op.xs[1 + s.k]
            if v.dtype.kind == "b":
                raise ExportError("boolean masks select a data-dependent number of elements")
            array_axes[axis] = g.cast(op.ins[1 + s.k], v.dtype, np.int64)
        elif isinstance(s, slice):
            if s != slice(None):
                start, stop, step = _slice_bounds(s)
                starts.append(start), ends.append(stop), steps.append(step), axes.append(axis)
            out_pos += 1
        else:
            i = int(s)
            starts.append(i), ends.append(_BIG if i == -1 else i + 1), steps.append(1)
            axes.append(axis)
            int_axes.append(axis)
        axis += 1
    name = op.ins[0]
    if axes:
        name = g.node("Slice", [name, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    if not array_axes:  # basic indexing: squeeze the ints, insert the Nones
        if int_axes:
            name = g.node("Squeeze", [name, g.ints(int_axes)])
        if none_out:
            name = g.node("Unsqueeze", [name, g.ints(none_out)])
        g.node("Identity", [name], op.outs)
        return
    if none_out:
        raise ExportError("indexing with both index arrays and None is not supported")
    # advanced indexing; the ints are index arrays too, as NumPy broadcasts them together
    zero = g.const(np.int64(0), hint="zero")  # the int itself was sliced to i:i+1 above
    index = {**array_axes, **{a: zero for a in int_axes}}
    adv = sorted(index)
    if len(adv) == 1:
        g.node("Gather", [name, index[adv[0]]], op.outs, axis=adv[0])
        return
    # several: their axes to the front, one GatherND on the broadcast indices
    y = op.ys[0]
    rest = [a for a in range(x.ndim) if a not in index]
    if adv != list(range(len(adv))):
        name = g.node("Transpose", [name], perm=adv + rest)
    n_b = y.ndim - len(rest)  # rank of the broadcast index shape
    contiguous = adv == list(range(adv[0], adv[0] + len(adv)))
    first = adv[0] if contiguous else 0  # NumPy puts those dims there, else in front
    bshape = g.shape(dims=g.dims(y)[first:first + n_b])
    parts = [g.node("Unsqueeze", [g.node("Expand", [index[a], bshape]), g.ints([-1])])
             for a in adv]
    idx = g.node("Concat", parts, axis=-1)
    if first == 0:
        g.node("GatherND", [name, idx], op.outs)
        return
    gathered = g.node("GatherND", [name, idx])
    perm = [*range(n_b, n_b + first), *range(n_b), *range(n_b + first, y.ndim)]
    g.node("Transpose", [gathered], op.outs, perm=perm)


@exporter(embedding.EmbedID)
def _embed_id(g, op):
    g.node("Gather", op.ins, op.outs, axis=0)


# =============================================================================
# Linear algebra
# =============================================================================
@exporter(linalg.MatMul)
def _matmul(g, op):
    g.node("MatMul", _same_type(g, op), op.outs)


@exporter(linalg.Linear)
def _linear(g, op):
    names = _same_type(g, op)
    if len(names) == 2:
        g.node("MatMul", names, op.outs)
    else:
        g.node("Add", [g.node("MatMul", names[:2]), names[2]], op.outs)


@exporter(linalg.Einsum)
def _einsum(g, op):
    equation = ",".join(op.f.terms) + "->" + op.f.out
    g.node("Einsum", _same_type(g, op), op.outs, equation=equation)


@exporter(attention.ScaledDotProductAttention)
def _attention(g, op):
    # softmax(q k^T * scale, masked) v; export traces test mode, so no dropout
    dtype = op.ys[0].dtype
    q, k, v = _same_type(g, op)
    nk = op.xs[1].ndim
    kt = g.node("Transpose", [k], perm=[*range(nk - 2), nk - 1, nk - 2])
    s = g.node("Mul", [g.node("MatMul", [q, kt]), g.const(op.f.scale, dtype=dtype)])
    allowed = None if op.f.allowed is None else np.asarray(cuda.as_numpy(op.f.allowed))
    if op.f.causal:
        tril = np.tri(op.xs[0].shape[-2], op.xs[1].shape[-2], dtype=bool)
        allowed = tril if allowed is None else allowed & tril
    if allowed is None:
        p = g.node("Softmax", [s], axis=-1)
    else:
        empty = ~allowed.any(axis=-1, keepdims=True)  # rows with nothing to attend to: zeros
        fill = np.where(empty, 0.0, -np.inf).astype(dtype)
        p = g.node("Softmax", [g.node("Where", [g.const(allowed), s, g.const(fill)])], axis=-1)
        if empty.any():
            p = g.node("Mul", [p, g.const((~empty).astype(dtype))])
    g.node("MatMul", [p, v], op.outs)


@exporter(normalization.LayerNorm)
def _layer_norm(g, op):
    dtype = op.ys[0].dtype
    x, gamma, beta = _same_type(g, op)
    ndim = op.xs[0].ndim
    mu = _reduce(g, "ReduceMean", x, -1, ndim, True)
    d = g.node("Sub", [x, mu])
    var = _reduce(g, "ReduceMean", g.node("Mul", [d, d]), -1, ndim, True)
    std = g.node("Sqrt", [g.node("Add", [var, g.const(op.f.eps, dtype=dtype)])])
    g.node("Add", [g.node("Mul", [g.node("Div", [d, std]), gamma]), beta], op.outs)


# =============================================================================
# Convolution and pooling (NCHW, as ONNX)
# =============================================================================
def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


@exporter(conv.Conv2d)
def _conv2d(g, op):
    W = op.xs[1]
    ph, pw = _pair(op.f.pad)
    g.node("Conv", _same_type(g, op), op.outs, kernel_shape=list(W.shape[2:]),
           strides=list(_pair(op.f.stride)), pads=[ph, pw, ph, pw])


@exporter(conv.Deconv2d)
def _deconv2d(g, op):
    x, W, y = op.xs[0], op.xs[1], op.ys[0]
    (sh, sw), (ph, pw) = _pair(op.f.stride), _pair(op.f.pad)
    KH, KW = W.shape[2:]
    # ONNX: out = stride * (in - 1) + output_padding + kernel - 2 * pad
    oph = y.shape[2] - (sh * (x.shape[2] - 1) + KH - 2 * ph)
    opw = y.shape[3] - (sw * (x.shape[3] - 1) + KW - 2 * pw)
    g.node("ConvTranspose", _same_type(g, op), op.outs, kernel_shape=[KH, KW],
           strides=[sh, sw], pads=[ph, pw, ph, pw], output_padding=[oph, opw])


def _pool_attrs(f):
    ph, pw = _pair(f.pad)
    return {"kernel_shape": list(_pair(f.ksize)), "strides": list(_pair(f.stride)),
            "pads": [ph, pw, ph, pw]}


@exporter(conv.Pooling)
def _max_pool(g, op):
    g.node("MaxPool", op.ins, op.outs, **_pool_attrs(op.f))


@exporter(conv.AveragePooling)
def _average_pool(g, op):
    # dezero divides by KH * KW also where the window covers padding
    g.node("AveragePool", op.ins, op.outs, count_include_pad=1, **_pool_attrs(op.f))


# =============================================================================
# Recurrent cells
# =============================================================================
@exporter(rnn.LSTMStep)
def _lstm_step(g, op):
    names = _same_type(g, op, dtype=op.xs[1].dtype)
    c_prev, z = names[0], names[1]
    if len(names) == 4:
        z = g.node("Add", [z, g.node("MatMul", [names[2], names[3]])])
    H = op.xs[0].shape[1]
    i, f, gg, o = g.node("Split", [z, g.ints([H] * 4)], n_out=4, axis=1)
    i, f, o = (g.node("Sigmoid", [v]) for v in (i, f, o))
    gg = g.node("Tanh", [gg])
    c = g.node("Add", [g.node("Mul", [f, c_prev]), g.node("Mul", [i, gg])], op.outs[0])
    g.node("Mul", [o, g.node("Tanh", [c])], op.outs[1])


# =============================================================================
# Functions without an exporter, and why
# =============================================================================
_BACKWARD_ONLY = "appears only in gradient graphs; export traces a forward pass"
NOT_EXPORTED.update({
    array.GetItemGrad: _BACKWARD_ONLY,
    embedding.EmbedIDGrad: _BACKWARD_ONLY,
    loss.OneHotLabels: _BACKWARD_ONLY,
    conv.Conv2dGradW: _BACKWARD_ONLY,
    conv.PoolScatter: _BACKWARD_ONLY,
    conv.PoolGather: _BACKWARD_ONLY,
    conv.AvgPoolGrad: _BACKWARD_ONLY,
    NoGrad: _BACKWARD_ONLY + " (masks of higher-order gradients)",
    conv.Im2col: "the patch layout of the book's conv2d_simple has no ONNX op; use "
                 "F.conv2d / L.Conv2d, which export as Conv",
    conv.Col2im: "the adjoint of im2col (the book's deconvolution by hand) has no ONNX op; "
                 "use F.deconv2d / L.Deconv2d, which export as ConvTranspose",
    normalization.BatchNorm: "batch statistics of training mode; export traces test mode, "
                             "where batch_norm is an affine map of the running statistics",
    noise.Dropout: "a training-mode mask; export traces test mode, where dropout is the "
                   "identity",
    loss.MeanSquaredError: "a training loss; export the model that makes the predictions",
    loss.SoftmaxCrossEntropy: "a training loss whose labels are data, not an input; export "
                              "the logits (and F.softmax for probabilities)",
    loss.SigmoidCrossEntropy: "a training loss; export the logits (and F.sigmoid)",
    array.Identity: "dezero.func's starting point of a derivative; export traces a model's "
                    "forward pass, where it does not occur",
})
