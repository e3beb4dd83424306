"""Op table entries: dezero.functions.array (shape functions)."""

import numpy as np

import dezero.functions as F
from dezero import utils
from tests.opdb.base import OpInfo, Sample, u

OPS = [
    OpInfo("reshape", F.reshape, np.reshape, lambda rng: [
        Sample((u(rng, 2, 3), (3, 2))), Sample((u(rng, 2, 3), (-1,)), name="infer"),
        Sample((u(rng, 2, 3, 4), (4, 6)), name="3d"),
    ]),
    OpInfo("transpose", F.transpose, np.transpose, lambda rng: [
        Sample((u(rng, 2, 3),), name="default"),
        Sample((u(rng, 2, 3, 4), (1, 2, 0)), name="axes"),
        Sample((u(rng, 2, 3, 4), (-1, 0, 1)), name="negative-axes"),
    ]),
    OpInfo("broadcast_to", F.broadcast_to, np.broadcast_to, lambda rng: [
        Sample((u(rng, 3), (2, 3))), Sample((u(rng, 2, 1), (2, 4)), name="inner"),
        Sample((u(rng), (2, 2)), name="0d"),
    ]),
    OpInfo("sum_to", F.sum_to, utils.sum_to, lambda rng: [
        Sample((u(rng, 2, 3), (1, 3))), Sample((u(rng, 2, 3), (3,)), name="drop-lead"),
        Sample((u(rng, 2, 3, 4), (2, 1, 4)), name="middle"),
    ]),
    OpInfo("where", lambda c, a, b: F.where(c, a, b), np.where, lambda rng: [
        Sample((u(rng, 3, 4) > 0, u(rng, 3, 4), u(rng, 3, 4))),
        Sample((u(rng, 3, 4) > 0, u(rng, 3, 4), u(rng, 4)), name="broadcast"),
    ]),
]
