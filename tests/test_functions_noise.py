"""dropout: statistics of the random mask, seeding, test mode, dtypes, errors.

The op table (tests/opdb/noise.py) checks values and gradients with a fixed mask.
"""

# ruff: noqa: NPY002  (dropout draws from the global generator, as the book's does)

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import Variable


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.8])
def test_dropout_statistics(xp, ratio):
    x = xp.ones((400, 500), dtype=np.float32)
    y = F.dropout(x, ratio).data
    kept = y != 0
    frac_dropped = 1.0 - float(kept.mean())
    # 200000 Bernoulli draws: the standard error is < 0.0012
    assert abs(frac_dropped - ratio) < 0.01
    # inverted dropout: survivors are scaled so that the expectation is unchanged
    np.testing.assert_allclose(dezero.cuda.as_numpy(y[kept]), 1.0 / (1.0 - ratio), rtol=1e-6)
    assert abs(float(y.mean()) - 1.0) < 0.03


def test_dropout_is_identity_in_test_mode(xp):
    x = Variable(xp.asarray(np.random.randn(3, 4).astype(np.float32)))
    with dezero.test_mode():
        y = F.dropout(x, 0.5)
    assert y is x
    with dezero.test_mode():
        y = F.dropout(x.data, 0.9)
    np.testing.assert_array_equal(dezero.cuda.as_numpy(y.data), dezero.cuda.as_numpy(x.data))
    assert F.dropout(x, 0.5) is not x  # training mode is back after the block


def test_dropout_gradient_is_the_mask_and_dtype_is_kept(xp):
    x = Variable(xp.asarray(np.random.uniform(1, 2, size=(50, 40)).astype(np.float32)))
    y = F.dropout(x, 0.3)
    F.sum(y).backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    mask = dezero.cuda.as_numpy(y.data / x.data)  # 0 or 1/0.7 per element
    np.testing.assert_allclose(dezero.cuda.as_numpy(x.grad.data), mask, rtol=1e-6)
    grad = dezero.cuda.as_numpy(x.grad.data)
    np.testing.assert_allclose(np.unique(grad), [0.0, 1 / 0.7], rtol=1e-6)


def test_dropout_draws_from_the_global_generator():
    x = np.ones((8, 8))
    np.random.seed(3)
    a = F.dropout(x).data
    b = F.dropout(x).data
    np.random.seed(3)
    np.testing.assert_array_equal(F.dropout(x).data, a)  # same seed, same mask
    assert not np.array_equal(a, b)  # a fresh mask on every call
    np.random.seed(3)
    keep = np.random.rand(8, 8) > 0.5  # the book's draw: same stream, same mask
    np.testing.assert_array_equal(a != 0, keep)


def test_dropout_second_order_is_zero_and_graph_is_recorded():
    x = Variable(np.random.randn(4, 5))
    y = F.dropout(x, 0.5)
    assert y.creator is not None
    F.sum(y * y).backward(create_graph=True)
    g = x.grad
    x.cleargrad()
    F.sum(g).backward()
    m = y.data / x.data
    np.testing.assert_allclose(x.grad.data, 2 * m * m, rtol=1e-12)


def test_dropout_ratio_zero_and_errors():
    x = Variable(np.ones(3))
    assert F.dropout(x, 0.0) is x
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"dropout_ratio must be in \[0, 1\)"):
            F.dropout(x, bad)
    with pytest.raises(ValueError, match=r"mask of shape \(2,\) does not match .*\(3,\)"):
        F.dropout(x, 0.5, mask=np.array([True, False]))
