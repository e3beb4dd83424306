"""Op table entries: dezero.functions.math."""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, away, pos, u


def _unary(make):
    return lambda rng: [
        Sample((make(rng, 3, 4),), name="2d"),
        Sample((make(rng),), name="0d"),
        Sample((make(rng, 2, 1, 3),), name="3d"),
    ]


def _away(rng, *shape):
    return np.asarray(away(rng, *shape))  # away() of no shape gives a NumPy scalar


def _wide(rng, *shape):
    return rng.uniform(-4.0, 4.0, size=shape)


def _distinct_pairs(rng):
    """Binary samples whose operands never tie (|x0 - x1| >= 0.1): no kink inside eps."""

    def apart(*shape, like):
        return like + away(rng, *shape)

    a = u(rng, 3, 4)
    b = u(rng, 4)
    c = u(rng, 3, 1)
    return [
        Sample((a, apart(3, 4, like=a)), name="same"),
        Sample((apart(3, 4, like=b), b), name="broadcast-row"),
        Sample((c, apart(3, 4, like=c)), name="broadcast-col"),
        Sample((u(rng, 2, 3), 0.05), name="python-scalar-rhs"),
    ]


def _gelu_ref(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _clip_samples(rng):
    x = away(rng, 3, 4, gap=0.05) * 1.5  # never within 0.05 of the bounds -0.5 / 0.5 ...
    x = np.where(np.abs(np.abs(x) - 0.5) < 0.05, x + 0.1, x)
    return [
        Sample((x, -0.5, 0.5), name="both"),
        Sample((x, None, 0.5), name="max-only"),
        Sample((x, -0.5, None), name="min-only"),
        Sample((u(rng, 2, 3), -2.0, 2.0), name="inside"),
    ]


OPS = [
    OpInfo("square", F.square, np.square, _unary(u)),
    OpInfo("exp", F.exp, np.exp, _unary(u)),
    OpInfo("log", F.log, np.log, _unary(pos)),
    OpInfo("sin", F.sin, np.sin, _unary(u)),
    OpInfo("cos", F.cos, np.cos, _unary(u)),
    OpInfo("tanh", F.tanh, np.tanh, _unary(u)),
    OpInfo("sqrt", F.sqrt, np.sqrt, _unary(pos)),
    OpInfo("astype", lambda x: F.astype(x * 1.0, np.float32) * 1.0,
           lambda x: x.astype(np.float32), _unary(u),
           atol=1e-6, grad=False, float32=False,
           note="rounds to float32, where central differences mean nothing; its gradient "
                "(cast back to the input dtype) is tested in tests/test_core.py"),
    OpInfo("abs", F.abs, np.abs, _unary(_away)),
    OpInfo("maximum", F.maximum, np.maximum, _distinct_pairs),
    OpInfo("minimum", F.minimum, np.minimum, _distinct_pairs),
    OpInfo("clip", F.clip, np.clip, _clip_samples),
    OpInfo("softplus", F.softplus, lambda x: np.log1p(np.exp(x)), _unary(_wide)),
    OpInfo("gelu", F.gelu, _gelu_ref, _unary(_wide)),
]
