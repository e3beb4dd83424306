"""Op table entries: dezero.functions.embedding."""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, u


def _ids(rng, *shape, vocab):
    return rng.integers(0, vocab, size=shape)


OPS = [
    OpInfo("embed_id", F.embed_id, lambda x, W: W[x], lambda rng: [
        Sample((np.array([3, 0, 4]), u(rng, 5, 3)), name="1d-ids"),
        Sample((np.array([[1, 1, 2], [0, 1, 1]]), u(rng, 4, 2)), name="repeated-ids"),
        Sample((_ids(rng, 2, 3, vocab=6), u(rng, 6, 2, 2)), name="3d-table"),
        Sample((np.array(2), u(rng, 3, 4)), name="scalar-id"),
        Sample((np.array([1, 2], dtype=np.int32), u(rng, 3, 2)), name="int32-ids"),
    ]),
]
