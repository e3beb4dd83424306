"""Op table entries: dezero.functions.linalg."""

import numpy as np

import dezero.functions as F
from dezero import as_variable
from tests.opdb.base import OpInfo, Sample, u


def _matmul_methods(x, W):
    x, W = as_variable(x), as_variable(W)
    return x.matmul(W) + x.dot(W) + x @ W + W.__rmatmul__(x)


def _linear_ref(x, W, b=None):
    y = x @ W
    return y if b is None else y + b


def _linear_samples(rng):
    return [
        Sample((u(rng, 4, 3), u(rng, 3, 2), u(rng, 2)), name="bias"),
        Sample((u(rng, 4, 3), u(rng, 3, 2)), name="no-bias"),
        Sample((u(rng, 2, 4, 3), u(rng, 3, 5), u(rng, 5)), name="3d-x"),
        Sample((u(rng, 1, 3), u(rng, 3, 1), u(rng, 1, 1)), name="1x1-bias"),
        Sample((u(rng, 4, 3), u(rng, 3, 2), u(rng, 2)), diff=(1, 2), name="data-batch-x"),
    ]


def _einsum_samples(rng):
    def s(spec, *shapes):
        return Sample((spec, *[u(rng, *sh) for sh in shapes]), name=spec)

    return [
        s("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
        s("bhqd,bhkd->bhqk", (2, 2, 3, 4), (2, 2, 5, 4)),
        s("bhqk,bhkd->bhqd", (2, 2, 3, 5), (2, 2, 5, 4)),
        s("ij->ji", (2, 3)),
        s("ii->i", (3, 3)),
        s("ij->", (2, 3)),
        s("ij,jk", (2, 3), (3, 4)),
        s("i,j->ij", (3,), (4,)),
        s("ij,j->i", (2, 3), (3,)),
        s("...ij,...jk->...ik", (2, 3, 4), (4, 5)),
        s("ij,jk,kl->il", (2, 3), (3, 4), (4, 2)),
        s("abc,bd->ad", (2, 3, 4), (3, 5)),
        s("bij,bjk->bik", (1, 3, 4), (2, 4, 5)),
        s("iij,jk->ik", (3, 3, 2), (2, 4)),
    ]


OPS = [
    OpInfo("matmul", F.matmul, np.matmul, lambda rng: [
        Sample((u(rng, 2, 3), u(rng, 3, 4)), name="2d"),
        Sample((u(rng, 5, 2, 3), u(rng, 5, 3, 4)), name="batched"),
        Sample((u(rng, 5, 2, 3), u(rng, 3, 4)), name="broadcast-W"),
        Sample((u(rng, 2, 3), u(rng, 4, 3, 2)), name="broadcast-x"),
        Sample((u(rng, 2, 1, 2, 3), u(rng, 3, 3, 4)), name="broadcast-both"),
        Sample((u(rng, 3), u(rng, 3, 4)), name="vector-matrix"),
        Sample((u(rng, 2, 3), u(rng, 3)), name="matrix-vector"),
        Sample((u(rng, 3), u(rng, 3)), name="vector-vector"),
        Sample((u(rng, 3), u(rng, 2, 3, 4)), name="vector-batched"),
        Sample((u(rng, 2, 3), u(rng, 3, 4)), diff=(1,), name="constant-x"),
    ]),
    OpInfo("variable-matmul-methods", _matmul_methods, lambda x, W: 4 * (x @ W),
           lambda rng: [Sample((u(rng, 2, 3), u(rng, 3, 4)))],
           note="Variable.matmul/dot/@ and the reflected @"),
    OpInfo("linear", F.linear, _linear_ref, _linear_samples),
    OpInfo("linear_simple", F.linear_simple, _linear_ref, _linear_samples),
    OpInfo("einsum", F.einsum, np.einsum, _einsum_samples),
]
