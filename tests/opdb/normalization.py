"""Op table entries: dezero.functions.normalization (batch_norm in train and test mode).

batch_norm updates its running mean/var arrays in place, so the table calls it on copies
(the generic tests check that inputs are not mutated); tests/test_batchnorm.py checks the
update itself.
"""

import numpy as np

import dezero
import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, pos, u


def _per_channel(a, ndim):
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def ref_batch_norm_train(x, gamma, beta, mean, var, decay=0.9, eps=2e-5):
    axes = (0, *range(2, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    sigma2 = x.var(axis=axes, keepdims=True)
    xhat = (x - mu) / np.sqrt(sigma2 + eps)
    return _per_channel(gamma, x.ndim) * xhat + _per_channel(beta, x.ndim)


def ref_batch_norm_test(x, gamma, beta, mean, var, decay=0.9, eps=2e-5):
    nd = x.ndim
    xhat = (x - _per_channel(mean, nd)) / np.sqrt(_per_channel(var, nd) + eps)
    return _per_channel(gamma, nd) * xhat + _per_channel(beta, nd)


def _data(a):
    return a.data if isinstance(a, dezero.Variable) else a


def _train(fn):
    def op(x, gamma, beta, mean, var, **kw):
        with dezero.using_config("train", True):
            return fn(x, gamma, beta, _data(mean).copy(), _data(var).copy(), **kw)
    return op


def _test(x, gamma, beta, mean, var, **kw):
    with dezero.test_mode():
        return F.batch_norm(x, gamma, beta, mean, var, **kw)


def _samples(rng):
    return [
        Sample((u(rng, 4, 3), pos(rng, 3), u(rng, 3), u(rng, 3), pos(rng, 3)),
               name="2d", diff=(0, 1, 2)),
        Sample((u(rng, 3, 2, 3, 3), pos(rng, 2), u(rng, 2), u(rng, 2), pos(rng, 2)),
               {"eps": 1e-3}, name="4d", diff=(0, 1, 2)),
    ]


OPS = [
    OpInfo("batch_norm", _train(F.batch_norm), ref_batch_norm_train, _samples),
    OpInfo("batch_norm[test-mode]", _test, ref_batch_norm_test, _samples),
    OpInfo("batch_nrom", _train(F.batch_nrom), ref_batch_norm_train,
           lambda rng: _samples(rng)[:1]),
]


def ref_layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps) * gamma + beta


OPS += [
    OpInfo("layer_norm", F.layer_norm, ref_layer_norm, lambda rng: [
        Sample((u(rng, 4, 3), pos(rng, 3), u(rng, 3)), name="2d"),
        Sample((u(rng, 2, 3, 5), pos(rng, 5), u(rng, 5)), {"eps": 1e-3}, name="3d"),
        Sample((u(rng, 6), u(rng, 6), u(rng, 6)), name="1d"),
    ]),
]
