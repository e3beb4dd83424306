"""Op table entries: dezero.functions.math."""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, pos, u


def _unary(make):
    return lambda rng: [
        Sample((make(rng, 3, 4),), name="2d"),
        Sample((make(rng),), name="0d"),
        Sample((make(rng, 2, 1, 3),), name="3d"),
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
]
