"""Op table entries: dezero.functions.noise.

dropout takes a fixed keep-mask here (its ``mask`` argument), so that central differences,
the float32 run and the GPU run all see the same mask; the random path (statistics, seeding,
test mode) is tested in tests/test_functions_noise.py.
"""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, u


def _keep(rng, *shape, ratio):
    return rng.uniform(size=shape) > ratio


OPS = [
    OpInfo("dropout", lambda x, m, r: F.dropout(x, r, mask=m),
           lambda x, m, r: x * m / (1 - r), lambda rng: [
               Sample((u(rng, 3, 4), _keep(rng, 3, 4, ratio=0.4), 0.4), name="2d"),
               Sample((u(rng, 2, 3, 5), _keep(rng, 2, 3, 5, ratio=0.4), 0.4), name="3d"),
               Sample((u(rng, 4), np.ones(4, dtype=bool), 0.0), name="ratio=0"),
           ]),
]
