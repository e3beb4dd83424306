"""Op table entries: dezero.functions.attention (scaled_dot_product_attention).

Besides the fused op, the table holds its composite twin (matmul, where, softmax, matmul:
``attention_composite``), the oracle that tests/test_attention.py compares the fused op's
values and first and second order gradients against. Dropout is random, so the table runs
with ``dropout_ratio=0``; tests/test_attention.py covers the dropout path.
"""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, u


def _allowed(shape, mask, causal):
    allowed = np.ones(shape, dtype=bool)
    if mask is not None:
        allowed = allowed & mask
    if causal:
        allowed = allowed & np.tri(shape[-2], shape[-1], dtype=bool)
    return allowed


def ref_attention(q, k, v, mask=None, causal=False, dropout_ratio=0.0):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    allowed = _allowed(s.shape, mask, causal)
    s = np.where(allowed, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    p = e / np.where(z == 0, 1.0, z)  # a row with nothing to attend to: zeros
    return p @ v


def attention_composite(q, k, v, mask=None, causal=False):
    """The fused op built from dezero ops: its oracle (rows with no allowed key -> zeros)."""
    s = F.matmul(q, F.transpose(k, (*range(k.ndim - 2), k.ndim - 1, k.ndim - 2)))
    s = s * (1.0 / np.sqrt(q.shape[-1]))
    allowed = _allowed(s.shape, mask, causal)
    empty = ~allowed.any(axis=-1, keepdims=True)
    fill = np.where(empty, 0.0, -np.inf).astype(s.dtype)
    p = F.softmax(F.where(allowed, s, fill), axis=-1)
    if empty.any():
        p = p * (~empty).astype(s.dtype)
    return F.matmul(p, v)


def _samples(rng):
    mask = rng.uniform(size=(4, 4)) > 0.4
    mask[:, 0] = True
    empty_row = mask.copy()
    empty_row[2] = False
    return [
        Sample((u(rng, 2, 4, 3), u(rng, 2, 4, 3), u(rng, 2, 4, 2)), name="3d"),
        Sample((u(rng, 2, 2, 3, 4), u(rng, 2, 2, 3, 4), u(rng, 2, 2, 3, 4)), name="heads"),
        Sample((u(rng, 2, 4, 3), u(rng, 2, 4, 3), u(rng, 2, 4, 3)), {"causal": True},
               name="causal"),
        Sample((u(rng, 2, 4, 3), u(rng, 2, 4, 3), u(rng, 2, 4, 3)), {"mask": mask},
               name="mask"),
        Sample((u(rng, 2, 4, 3), u(rng, 2, 4, 3), u(rng, 2, 4, 3)),
               {"mask": empty_row, "causal": True}, name="mask+causal-empty-row"),
        Sample((u(rng, 3, 2), u(rng, 5, 2), u(rng, 5, 3)), name="Tq!=Tk"),
        Sample((u(rng, 2, 1, 3), u(rng, 2, 1, 3), u(rng, 2, 1, 3)), name="one-token"),
        Sample((u(rng, 2, 4, 3), u(rng, 4, 3), u(rng, 4, 3)), name="broadcast-kv"),
    ]


OPS = [
    OpInfo("scaled_dot_product_attention", F.scaled_dot_product_attention, ref_attention,
           _samples),
    OpInfo("scaled_dot_product_attention[composite]", attention_composite, ref_attention,
           _samples),
]
