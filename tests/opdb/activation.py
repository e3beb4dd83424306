"""Op table entries: dezero.functions.activation."""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, away, u


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x, axis=1):
    axis = tuple(axis) if isinstance(axis, list) else axis
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis=1):
    return np.log(_softmax(x, axis))


def _away(rng, *shape):
    return np.asarray(away(rng, *shape))  # away() of shape () returns a NumPy scalar


def _wide(rng, *shape):
    return u(rng, *shape, low=-3.0, high=3.0)


def _elementwise(make):
    return lambda rng: [
        Sample((make(rng, 3, 4),), name="2d"),
        Sample((make(rng),), name="0d"),
        Sample((make(rng, 2, 1, 3),), name="3d"),
    ]


def _softmax_samples(rng):
    return [
        Sample((_wide(rng, 3, 4),), name="default-axis"),
        Sample((_wide(rng, 3, 4), 0), name="axis=0"),
        Sample((_wide(rng, 2, 3, 4), -1), name="axis=-1"),
        Sample((_wide(rng, 2, 3, 4), 1), name="3d-axis=1"),
        Sample((_wide(rng, 2, 3, 4), (1, 2)), name="axis=(1,2)"),
        Sample((_wide(rng, 1, 5),), name="single-row"),
    ]


OPS = [
    OpInfo("sigmoid", F.sigmoid, _sigmoid, _elementwise(_wide)),
    OpInfo("sigmoid_simple", F.sigmoid_simple, _sigmoid, _elementwise(_wide)),
    OpInfo("relu", F.relu, lambda x: np.maximum(x, 0), _elementwise(_away)),
    OpInfo("leaky_relu", F.leaky_relu, lambda x, slope=0.2: np.where(x > 0, x, slope * x),
           lambda rng: [
               *_elementwise(_away)(rng),
               Sample((_away(rng, 3, 4),), {"slope": 0.01}, name="slope=0.01"),
               Sample((_away(rng, 3, 4), np.float64(0.3)), name="numpy-slope"),
           ]),
    OpInfo("softmax", F.softmax, _softmax, _softmax_samples),
    OpInfo("softmax_simple", F.softmax_simple, _softmax, _softmax_samples),
    OpInfo("log_softmax", F.log_softmax, _log_softmax, _softmax_samples),
]
