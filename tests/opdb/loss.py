"""Op table entries: dezero.functions.loss."""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, u


def _mse(a, b):
    d = a - b
    return np.sum(d * d) / (len(d) if d.ndim else 1)


def _mse_samples(rng):
    return [
        Sample((u(rng, 4, 1), u(rng, 4, 1)), name="column"),
        Sample((u(rng, 3, 2), u(rng, 3, 2)), name="2d"),
        Sample((u(rng, 5), u(rng, 5)), name="1d"),
        Sample((u(rng, 3, 2), u(rng, 2)), name="broadcast"),
        Sample((u(rng, 3, 2), u(rng, 3, 2)), diff=(0,), name="constant-target"),
    ]


def _softmax_ce(x, t):
    t = t.reshape(-1)
    z = x - x.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(x)), t].sum() / len(x)


def _labels(rng, n, c, shape=None):
    t = rng.integers(0, c, size=n)
    return t if shape is None else t.reshape(shape)


def _softmax_ce_samples(rng):
    return [
        Sample((u(rng, 4, 3, low=-3, high=3), _labels(rng, 4, 3)), name="labels-(N,)"),
        Sample((u(rng, 4, 3, low=-3, high=3), _labels(rng, 4, 3, (4, 1))), name="labels-(N,1)"),
        Sample((u(rng, 1, 5, low=-3, high=3), _labels(rng, 1, 5).astype(np.int32)),
               name="int32-one-row"),
        Sample((u(rng, 6, 2, low=-3, high=3), _labels(rng, 6, 2).astype(np.uint8)),
               name="uint8-two-classes"),
    ]


def _sigmoid_ce(x, t):
    t = t.reshape(x.shape)
    p = 1 / (1 + np.exp(-x))
    return -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)) / len(x)


def _bce(p, t):
    t = t.reshape(p.shape)
    return -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)) / len(p)


def _binary_samples(make):
    return lambda rng: [
        Sample((make(rng, 5), rng.integers(0, 2, size=5)), name="int-labels"),
        Sample((make(rng, 4, 1), rng.integers(0, 2, size=4)), name="(N,1)-vs-(N,)"),
        Sample((make(rng, 3, 2), rng.uniform(0.1, 0.9, size=(3, 2))), name="soft-targets"),
    ]


OPS = [
    OpInfo("mean_squared_error", F.mean_squared_error, _mse, _mse_samples),
    OpInfo("mean_squared_error_simple", F.mean_squared_error_simple, _mse, _mse_samples),
    OpInfo("softmax_cross_entropy", F.softmax_cross_entropy, _softmax_ce, _softmax_ce_samples),
    OpInfo("softmax_cross_entropy_simple", F.softmax_cross_entropy_simple, _softmax_ce,
           _softmax_ce_samples),
    OpInfo("sigmoid_cross_entropy", F.sigmoid_cross_entropy, _sigmoid_ce,
           _binary_samples(lambda rng, *s: u(rng, *s, low=-3, high=3))),
    OpInfo("binary_cross_entropy", F.binary_cross_entropy, _bce,
           _binary_samples(lambda rng, *s: rng.uniform(0.1, 0.9, size=s))),
]
