"""Op table entries: the core arithmetic (dezero.core) and its operators."""

import numpy as np

from dezero.core import add, div, mul, neg, pow, rdiv, rsub, sub
from tests.opdb.base import OpInfo, Sample, pos, u


def _binary(rng):
    return [
        Sample((u(rng, 3, 4), u(rng, 3, 4)), name="same"),
        Sample((u(rng, 3, 4), u(rng, 4)), name="broadcast-row"),
        Sample((u(rng, 3, 1), u(rng, 1, 4)), name="broadcast-outer"),
        Sample((u(rng, 2, 3), u(rng)), name="0d-rhs"),
        Sample((u(rng), u(rng, 2, 3)), name="0d-lhs"),
    ]


def _div_samples(rng):
    return [
        Sample((u(rng, 3, 4), pos(rng, 3, 4)), name="same"),
        Sample((u(rng, 3, 4), pos(rng, 4)), name="broadcast-row"),
        Sample((pos(rng, 2, 1), pos(rng, 1, 3)), name="broadcast-outer"),
    ]


def _scalar_rhs(rng):
    return [Sample((u(rng, 3, 4), 2.5), name="python-float"),
            Sample((u(rng, 2), np.float64(-1.5)), name="numpy-float")]


OPS = [
    OpInfo("add", add, np.add, _binary),
    OpInfo("sub", sub, np.subtract, _binary),
    OpInfo("rsub", rsub, lambda a, b: b - a, _scalar_rhs),
    OpInfo("mul", mul, np.multiply, _binary),
    OpInfo("div", div, np.divide, _div_samples),
    OpInfo("rdiv", rdiv, lambda a, b: b / a,
           lambda rng: [Sample((pos(rng, 3, 4), 2.0), name="python-float")]),
    OpInfo("neg", neg, np.negative, lambda rng: [Sample((u(rng, 3, 4),))]),
    OpInfo("pow", pow, np.power, lambda rng: [
        Sample((pos(rng, 3, 4), 3), name="int-exponent"),
        Sample((pos(rng, 3, 4), 0.5), name="float-exponent"),
        Sample((u(rng, 3, 4), 2.0), name="negative-base-even"),
        Sample((pos(rng, 3, 4), pos(rng, 3, 4)), name="variable-exponent"),
        Sample((pos(rng, 3, 4), u(rng, 4)), name="variable-exponent-broadcast"),
    ]),
    OpInfo("operators", lambda a, b: (a + 1) * b - a / (b + 3) + (-a) ** 2 + 2 ** b - 1 / (b + 3),
           lambda a, b: (a + 1) * b - a / (b + 3) + (-a) ** 2 + 2**b - 1 / (b + 3),
           lambda rng: [Sample((u(rng, 2, 3), pos(rng, 2, 3)))]),
    OpInfo("matmul-operator", lambda a, b: a @ b, np.matmul,
           lambda rng: [Sample((u(rng, 2, 3), u(rng, 3, 4)))]),
]
