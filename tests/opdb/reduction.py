"""Op table entries: dezero.functions.reduction."""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, u


def _axis_grid(rng):
    x = u(rng, 2, 3, 4)
    samples = [Sample((u(rng, 3, 4),), name="all"), Sample((u(rng),), name="0d")]
    for axis in (None, 0, 1, -1, (0, 2), [1, 2]):
        for keepdims in (False, True):
            samples.append(Sample((x, axis, keepdims), name=f"axis={axis},keepdims={keepdims}"))
    return samples


OPS = [
    OpInfo("sum", F.sum,
           lambda x, axis=None, keepdims=False: np.sum(
               x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims),
           _axis_grid),
]
