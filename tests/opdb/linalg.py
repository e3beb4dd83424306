"""Op table entries: dezero.functions.linalg."""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, u

OPS = [
    OpInfo("matmul", F.matmul, np.matmul, lambda rng: [
        Sample((u(rng, 2, 3), u(rng, 3, 4)), name="2d"),
        Sample((u(rng, 5, 2, 3), u(rng, 5, 3, 4)), name="batched"),
        Sample((u(rng, 5, 2, 3), u(rng, 3, 4)), name="broadcast-W"),
        Sample((u(rng, 2, 3), u(rng, 4, 3, 2)), name="broadcast-x"),
        Sample((u(rng, 3), u(rng, 3, 4)), name="vector-matrix"),
        Sample((u(rng, 2, 3), u(rng, 3)), name="matrix-vector"),
        Sample((u(rng, 3), u(rng, 3)), name="vector-vector"),
    ]),
]
