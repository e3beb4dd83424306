"""Op table entries: dezero.functions.reduction."""

import numpy as np

import dezero.functions as F
from dezero import as_variable
from tests.opdb.base import OpInfo, Sample, u

_AXES = (None, 0, 1, -1, (0, 2), [1, 2], (-1, 0))


def _ax(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _axis_grid(make=u):
    def samples(rng):
        out = [Sample((make(rng, 3, 4),), name="all"), Sample((make(rng),), name="0d")]
        x = make(rng, 2, 3, 4)
        for axis in _AXES:
            for keepdims in (False, True):
                out.append(Sample((x, axis, keepdims), name=f"axis={axis},keepdims={keepdims}"))
        return out

    return samples


def _distinct(rng, *shape):
    """Values in [-1, 1] whose pairwise gaps exceed eps (no ties, so max/min are smooth)."""
    n = int(np.prod(shape, dtype=np.int64))
    return (rng.permutation(n) / max(n, 1) * 2 - 1 + 0.01).reshape(shape)


def _var_samples(rng):
    x = u(rng, 2, 3, 4)
    out = [Sample((x, axis, keepdims), name=f"axis={axis},keepdims={keepdims}")
           for axis in _AXES for keepdims in (False, True)]
    out.append(Sample((x, 1, False), {"ddof": 1}, name="ddof=1"))
    return out


def _std_samples(rng):
    return _var_samples(rng)


def _lse_ref(x, axis=1, keepdims=False):
    axis = _ax(axis)
    m = np.max(x, axis=axis, keepdims=True)
    y = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return y if keepdims else np.squeeze(y, axis=axis) if axis is not None else y.reshape(())


def _lse_samples(rng):
    out = [Sample((u(rng, 3, 4),), name="default-axis"),
           Sample((u(rng, 3, 4) * 5,), {"keepdims": True}, name="keepdims")]
    x = u(rng, 2, 3, 4) * 3
    for axis in (None, 0, -1, (0, 2), [1, 2]):
        for keepdims in (False, True):
            out.append(Sample((x, axis, keepdims), name=f"axis={axis},keepdims={keepdims}"))
    return out


OPS = [
    OpInfo("sum", F.sum,
           lambda x, axis=None, keepdims=False: np.sum(x, axis=_ax(axis), keepdims=keepdims),
           _axis_grid()),
    OpInfo("average", F.average,
           lambda x, axis=None, keepdims=False: np.mean(x, axis=_ax(axis), keepdims=keepdims),
           _axis_grid()),
    OpInfo("mean", F.mean,
           lambda x, axis=None, keepdims=False: np.mean(x, axis=_ax(axis), keepdims=keepdims),
           _axis_grid()),
    OpInfo("var", F.var,
           lambda x, axis=None, keepdims=False, ddof=0: np.var(
               x, axis=_ax(axis), keepdims=keepdims, ddof=ddof),
           _var_samples),
    OpInfo("std", F.std,
           lambda x, axis=None, keepdims=False, ddof=0: np.std(
               x, axis=_ax(axis), keepdims=keepdims, ddof=ddof),
           _std_samples),
    OpInfo("max", F.max,
           lambda x, axis=None, keepdims=False: np.max(x, axis=_ax(axis), keepdims=keepdims),
           _axis_grid(_distinct)),
    OpInfo("min", F.min,
           lambda x, axis=None, keepdims=False: np.min(x, axis=_ax(axis), keepdims=keepdims),
           _axis_grid(_distinct)),
    OpInfo("logsumexp", F.logsumexp, _lse_ref, _lse_samples),
    OpInfo("variable-methods",
           lambda x: (lambda v: v.sum(axis=1) + v.max(0).sum() - v.min(keepdims=True))(
               as_variable(x)),
           lambda x: x.sum(axis=1) + x.max(0).sum() - x.min(keepdims=True),
           lambda rng: [Sample((_distinct(rng, 3, 4),))],
           note="Variable.sum/max/min delegate to the functions above"),
]
