"""Op table entries: dezero.functions.array (shape functions)."""

import numpy as np

import dezero.functions as F
from dezero import as_variable, utils
from tests.opdb.base import OpInfo, Sample, u


def _getitem_samples(rng):
    x = u(rng, 4, 5)
    mask = u(rng, 4, 5) > 0
    mask[0, 0] = True
    return [
        Sample((x, 1), name="int"),
        Sample((x, -1), name="negative-int"),
        Sample((x, (slice(1, 3), slice(None, None, 2))), name="slices"),
        Sample((x, (Ellipsis, None, 2)), name="ellipsis-newaxis"),
        Sample((x, np.array([0, 2, 0, 3])), name="int-array-repeated"),
        Sample((x, [3, 1, 1]), name="list"),
        Sample((x, (np.array([0, 1, 1]), np.array([4, 0, 0]))), name="int-arrays-pair"),
        Sample((x, (slice(None), np.array([[1, 1], [2, 0]]))), name="slice+2d-int-array"),
        Sample((x, mask), name="bool-mask"),
        Sample((x, (mask[:, 0], slice(1, None))), name="bool-row-mask"),
        Sample((u(rng, 2, 3, 4), (1, slice(None), np.array([3, 3]))), name="3d-mixed"),
    ]


def _shape_methods(x):
    return (x.reshape(4, 3).T + x.reshape((4, 3)).transpose(1, 0)
            + x.transpose().reshape(3, 4) + x.reshape([2, 6]).transpose((1, 0)).T.reshape(-1, 4))


def _pad_ref(x, pad_width, mode="constant", constant_values=0):
    return np.pad(x, pad_width, mode=mode, constant_values=constant_values)


def _split_ref(x, ios, axis=0):
    return np.split(x, ios, axis=axis)


def _expand_ref(x, axis):
    return np.expand_dims(x, axis)


def _squeeze_ref(x, axis=None):
    return np.squeeze(x, axis=axis)


def _flatten_ref(x):
    return x.reshape(x.shape[0], -1)


OPS = [
    OpInfo("reshape", F.reshape, np.reshape, lambda rng: [
        Sample((u(rng, 2, 3), (3, 2))), Sample((u(rng, 2, 3), (-1,)), name="infer"),
        Sample((u(rng, 2, 3, 4), (4, 6)), name="3d"),
        Sample((u(rng, 2, 3), 6), name="int-shape"),
        Sample((u(rng, 1, 1), ()), name="to-0d"),
    ]),
    OpInfo("transpose", F.transpose, np.transpose, lambda rng: [
        Sample((u(rng, 2, 3),), name="default"),
        Sample((u(rng, 2, 3, 4), (1, 2, 0)), name="axes"),
        Sample((u(rng, 2, 3, 4), (-1, 0, 1)), name="negative-axes"),
        Sample((u(rng, 2, 3, 4, 5), [2, 0, 3, 1]), name="4d-list"),
    ]),
    OpInfo("get_item", F.get_item, lambda x, s: x[s], _getitem_samples),
    OpInfo("indexing-operator",
           lambda x: (lambda v: v[1:, ::-1][np.array([0, 0])] + v[..., 1])(as_variable(x)),
           lambda x: x[1:, ::-1][np.array([0, 0])] + x[..., 1],
           lambda rng: [Sample((u(rng, 3, 3),))], note="Variable.__getitem__"),
    OpInfo("expand_dims", F.expand_dims, _expand_ref, lambda rng: [
        Sample((u(rng, 2, 3), 0)), Sample((u(rng, 2, 3), -1), name="negative"),
        Sample((u(rng, 2, 3), (0, 3)), name="tuple"), Sample((u(rng), 0), name="0d"),
    ]),
    OpInfo("flatten", F.flatten, _flatten_ref, lambda rng: [
        Sample((u(rng, 2, 3, 4),)), Sample((u(rng, 3, 2, 1, 2),), name="4d"),
    ]),
    OpInfo("squeeze", F.squeeze, _squeeze_ref, lambda rng: [
        Sample((u(rng, 2, 1, 3, 1),), name="all"),
        Sample((u(rng, 2, 1, 3, 1), 1), name="axis"),
        Sample((u(rng, 2, 1, 3, 1), (-1, 1)), name="negative-tuple"),
    ]),
    OpInfo("broadcast_to", F.broadcast_to, np.broadcast_to, lambda rng: [
        Sample((u(rng, 3), (2, 3))), Sample((u(rng, 2, 1), (2, 4)), name="inner"),
        Sample((u(rng), (2, 2)), name="0d"),
        Sample((u(rng, 1, 3, 1), (2, 2, 3, 4)), name="lead+inner"),
    ]),
    OpInfo("sum_to", F.sum_to, utils.sum_to, lambda rng: [
        Sample((u(rng, 2, 3), (1, 3))), Sample((u(rng, 2, 3), (3,)), name="drop-lead"),
        Sample((u(rng, 2, 3, 4), (2, 1, 4)), name="middle"),
        Sample((u(rng, 2, 3), ()), name="to-0d"),
    ]),
    OpInfo("concat", lambda *xs, axis=0: F.concat(xs, axis=axis),
           lambda *xs, axis=0: np.concatenate(xs, axis=axis), lambda rng: [
        Sample((u(rng, 2, 3), u(rng, 1, 3)), name="axis0"),
        Sample((u(rng, 2, 3), u(rng, 2, 1), u(rng, 2, 2)), {"axis": 1}, name="axis1-three"),
        Sample((u(rng, 2, 3, 2), u(rng, 2, 3, 1)), {"axis": -1}, name="negative-axis"),
        Sample((u(rng, 2, 3),), name="single"),
    ]),
    OpInfo("stack", lambda *xs, axis=0: F.stack(xs, axis=axis),
           lambda *xs, axis=0: np.stack(xs, axis=axis), lambda rng: [
        Sample((u(rng, 2, 3), u(rng, 2, 3)), name="axis0"),
        Sample((u(rng, 2, 3), u(rng, 2, 3), u(rng, 2, 3)), {"axis": 2}, name="last"),
        Sample((u(rng, 2, 3), u(rng, 2, 3)), {"axis": -2}, name="negative-axis"),
        Sample((u(rng), u(rng)), name="0d"),
    ]),
    OpInfo("split", F.split, _split_ref, lambda rng: [
        Sample((u(rng, 4, 3), 2), name="sections"),
        Sample((u(rng, 4, 3), [1, 3]), name="indices"),
        Sample((u(rng, 2, 6), 3, -1), name="negative-axis"),
        Sample((u(rng, 2, 5), (2,), 1), name="indices-axis1"),
        Sample((u(rng, 3, 2), 1), name="one-piece"),
    ]),
    OpInfo("split-unused-outputs", lambda x: F.split(x, 3, axis=1)[1] * 2,
           lambda x: np.split(x, 3, axis=1)[1] * 2,
           lambda rng: [Sample((u(rng, 2, 6),))],
           note="only one piece used: the others' gradients are None in Split.backward"),
    OpInfo("pad", F.pad, _pad_ref, lambda rng: [
        Sample((u(rng, 2, 3), 1), name="int"),
        Sample((u(rng, 2, 3), ((0, 1), (2, 0))), name="per-axis"),
        Sample((u(rng, 2, 3), (1, 2)), {"constant_values": -1.5}, name="value"),
        Sample((u(rng, 1, 2, 3, 3), ((0, 0), (0, 0), (1, 1), (1, 1))), name="nchw"),
    ]),
    OpInfo("where", lambda c, a, b: F.where(c, a, b), np.where, lambda rng: [
        Sample((u(rng, 3, 4) > 0, u(rng, 3, 4), u(rng, 3, 4))),
        Sample((u(rng, 3, 4) > 0, u(rng, 3, 4), u(rng, 4)), name="broadcast"),
    ]),
    OpInfo("variable-shape-methods", lambda x: _shape_methods(as_variable(x)), _shape_methods,
           lambda rng: [Sample((u(rng, 3, 4),))],
           note="Variable.reshape/transpose/T delegate to the functions above"),
]
