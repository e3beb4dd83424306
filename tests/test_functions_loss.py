"""Losses: what the op table cannot say (extreme logits, fused vs composite, errors, dtypes).

The op table (tests/opdb/loss.py) checks values, gradients of first and second order,
dtypes and no_grad for every loss.
"""

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable, cuda


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _loss_and_grads(loss_fn, x, *args, order=1):
    """[loss, dloss/dx, d/dx sum(dloss/dx)] as arrays, through create_graph backprop."""
    v = Variable(x)
    y = loss_fn(v, *args)
    out = [y.data]
    g = y
    for _ in range(order):
        v.cleargrad()
        g.backward(create_graph=True)
        out.append(v.grad.data)
        g = F.sum(v.grad * v.grad)
    return out


# ---------------------------------------------------------------------------- softmax CE
def test_softmax_cross_entropy_agrees_with_composite_to_second_order(rng):
    x = rng.uniform(-3, 3, size=(6, 4))
    t = np.array([0, 3, 1, 2, 2, 0])
    fused = _loss_and_grads(F.softmax_cross_entropy, x, t, order=2)
    simple = _loss_and_grads(F.softmax_cross_entropy_simple, x, t, order=2)
    for a, b in zip(fused, simple):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_softmax_cross_entropy_fast_backward_matches_graph_backward(rng):
    # backward() without create_graph takes an array-only path: it must agree
    x = rng.standard_normal((5, 3)).astype(np.float32)
    t = np.array([2, 0, 1, 1, 0])
    a = Variable(x)
    F.softmax_cross_entropy(a, t).backward()
    b = Variable(x)
    F.softmax_cross_entropy(b, t).backward(create_graph=True)
    assert a.grad.dtype == b.grad.dtype == np.float32
    np.testing.assert_allclose(a.grad.data, b.grad.data, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_cross_entropy_extreme_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [5.0, 5.0, 5.0]], dtype=dtype)
    t = np.array([1, 1, 2])
    loss, g = _loss_and_grads(F.softmax_cross_entropy, x, t)
    assert loss.dtype == dtype and g.dtype == dtype
    # per row: -log_softmax[t] = 2e4, log 2, log 3
    np.testing.assert_allclose(loss, (2e4 + np.log(2) + np.log(3)) / 3, rtol=1e-6)
    expected = np.array([[1, -1, 0], [0, -0.5, 0.5], [1 / 3, 1 / 3, -2 / 3]]) / 3
    np.testing.assert_allclose(g, expected, atol=1e-6)

    with np.errstate(over="ignore", invalid="ignore"):
        composite = F.softmax_cross_entropy_simple(x, t).data
    assert not np.isfinite(composite) or not np.isclose(composite, loss, rtol=1e-3)


def test_softmax_cross_entropy_labels_n1_vs_n_and_variable_labels(rng):
    x = rng.standard_normal((4, 3))
    t = np.array([2, 0, 1, 2])
    ref = F.softmax_cross_entropy(x, t).data
    np.testing.assert_allclose(F.softmax_cross_entropy(x, t.reshape(4, 1)).data, ref)
    np.testing.assert_allclose(F.softmax_cross_entropy(x, Variable(t)).data, ref)
    np.testing.assert_allclose(F.softmax_cross_entropy(x, t.astype(np.int32)).data, ref)
    np.testing.assert_allclose(F.softmax_cross_entropy(x, [2, 0, 1, 2]).data, ref)
    np.testing.assert_allclose(F.softmax_cross_entropy_simple(x, t.reshape(4, 1)).data, ref)


def test_softmax_cross_entropy_graph_backward_stays_float32(rng):
    # the one-hot of the backward graph is built in x's dtype: no float64 anywhere
    x = Variable(rng.standard_normal((4, 3)).astype(np.float32))
    loss = F.softmax_cross_entropy(x, np.array([0, 1, 2, 0], dtype=np.int64))
    loss.backward(create_graph=True)
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    gx = x.grad
    x.cleargrad()
    F.sum(gx * gx).backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("f", [F.softmax_cross_entropy, F.softmax_cross_entropy_simple])
@pytest.mark.parametrize(("t", "err", "match"), [
    (np.array([0, 3, 1]), ValueError, r"label 3 is out of range for 3 classes"),
    (np.array([0, -1, 1]), ValueError, r"label -1 is out of range for 3 classes"),
    (np.array([0, 1]), ValueError, r"2 labels for a batch of 3 scores"),
    (np.array([0, 1, 2, 0]), ValueError, r"4 labels for a batch of 3 scores"),
    (np.array([0.0, 1.0, 2.0]), TypeError, r"integer labels are required.*float64"),
    (np.array([0.0, 1.0, 2.0], dtype=np.float32), TypeError, r"integer labels .*float32"),
    (np.zeros((3, 2), dtype=int), ValueError, r"labels must have shape \(N,\) or \(N, 1\)"),
])
def test_softmax_cross_entropy_bad_labels(f, t, err, match):
    with pytest.raises(err, match=match):
        f(np.zeros((3, 3)), t)


def test_softmax_cross_entropy_bad_scores():
    with pytest.raises(ValueError, match=r"scores must be 2-d \(N, C\), got shape \(3,\)"):
        F.softmax_cross_entropy(np.zeros(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="empty batch"):
        F.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int))


# ---------------------------------------------------------------------------- sigmoid CE
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_cross_entropy_extreme_logits(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype)
    t = np.array([1, 0, 0, 1, 1])
    loss, g = _loss_and_grads(F.sigmoid_cross_entropy, x, t)
    assert loss.dtype == dtype and g.dtype == dtype
    np.testing.assert_allclose(loss, (0 + 0 + 1e4 + 1e4 + np.log(2)) / 5, rtol=1e-6)
    np.testing.assert_allclose(g, np.array([0, 0, 1, -1, -0.5]) / 5, atol=1e-7)

    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        # the book's composite: sigmoid, then clipped logs; the gradient is lost (clip)
        _, g_simple = _loss_and_grads(
            lambda v, t: F.binary_cross_entropy(F.sigmoid_simple(v), t), x, t)
    assert not np.allclose(g_simple, g, atol=1e-3)


def test_sigmoid_cross_entropy_agrees_with_composite(rng):
    x = rng.uniform(-4, 4, size=(6, 1))
    t = np.array([1, 0, 0, 1, 1, 0])
    fused = _loss_and_grads(F.sigmoid_cross_entropy, x, t, order=2)
    composite = _loss_and_grads(
        lambda v, t: F.binary_cross_entropy(F.sigmoid_simple(v), t), x, t, order=2)
    for a, b in zip(fused, composite):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_sigmoid_cross_entropy_divides_by_batch_size_and_reshapes_targets(rng):
    x = rng.standard_normal((4, 1))
    t = np.array([1, 0, 1, 1])
    p = 1 / (1 + np.exp(-x[:, 0]))
    expected = -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)) / 4
    np.testing.assert_allclose(F.sigmoid_cross_entropy(x, t).data, expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"targets of shape \(3,\) do not match .*\(4, 1\)"):
        F.sigmoid_cross_entropy(x, np.array([1, 0, 1]))


def test_sigmoid_cross_entropy_soft_targets_get_gradients():
    x = Variable(np.array([0.5, -1.0], dtype=np.float32))
    t = Variable(np.array([0.2, 0.9], dtype=np.float32))
    F.sigmoid_cross_entropy(x, t).backward()
    np.testing.assert_allclose(t.grad.data, -x.data / 2, rtol=1e-6)
    assert x.grad.dtype == t.grad.dtype == np.float32


# ---------------------------------------------------------------------------- binary CE
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_saturated_probabilities_are_finite(dtype):
    x = Variable(np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype))
    p = F.sigmoid(x)  # exactly 1, 0, 1, 0
    t = np.array([1, 0, 0, 1])
    loss = F.binary_cross_entropy(p, t)
    loss.backward()
    assert loss.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(loss.data) and np.all(np.isfinite(x.grad.data))
    # right answers cost ~eps, wrong ones -log(eps) each (the clip bound)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(loss.data, -2 * np.log(eps) / 4, rtol=1e-3)

    q = Variable(np.array([1.0, 0.0, 0.5], dtype=dtype))
    F.binary_cross_entropy(q, np.array([1, 0, 1])).backward()
    assert np.all(np.isfinite(q.grad.data))
    np.testing.assert_allclose(q.grad.data[2], -2.0 / 3, rtol=1e-5)  # -t / (p N)


def test_binary_cross_entropy_rejects_integer_probabilities():
    with pytest.raises(TypeError, match="probabilities must be floats"):
        F.binary_cross_entropy(np.array([1, 0]), np.array([1, 0]))


# ---------------------------------------------------------------------------- MSE
def test_mean_squared_error_divides_by_batch_size_not_element_count():
    x0 = np.arange(6.0).reshape(3, 2)
    x1 = np.zeros((3, 2))
    assert F.mean_squared_error(x0, x1).data == pytest.approx(np.sum(x0**2) / 3)
    assert F.mean_squared_error_simple(x0, x1).data == pytest.approx(np.sum(x0**2) / 3)


def test_mean_squared_error_agrees_with_composite_to_second_order(rng):
    x0 = rng.standard_normal((5, 2))
    x1 = rng.standard_normal((5, 2))
    fused = _loss_and_grads(lambda v: F.mean_squared_error(v, x1), x0, order=2)
    simple = _loss_and_grads(lambda v: F.mean_squared_error_simple(v, x1), x0, order=2)
    for a, b in zip(fused, simple):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_mean_squared_error_float64_target_does_not_promote_float32_prediction(rng):
    x = Variable(rng.standard_normal((4, 1)).astype(np.float32))
    y = rng.standard_normal((4, 1))  # float64, as NumPy makes it
    loss = F.mean_squared_error(x, y)
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    loss = F.mean_squared_error(y, x)  # either order
    assert loss.dtype == np.float32


def test_mean_squared_error_extreme_values_finite():
    x0 = Variable(np.array([[1e4], [-1e4]], dtype=np.float32))
    loss = F.mean_squared_error(x0, np.zeros((2, 1)))
    loss.backward()
    np.testing.assert_allclose(loss.data, 1e8, rtol=1e-6)
    np.testing.assert_allclose(x0.grad.data, [[1e4], [-1e4]], rtol=1e-6)


def test_softmax_cross_entropy_bad_labels_are_caught_on_every_device(xp):
    # CuPy indexing does not raise on out-of-range indices: the check must not rely on it
    x = xp.zeros((3, 4), dtype=np.float32)
    for bad in ([0, 4, 1], [0, -1, 1]):
        with pytest.raises(ValueError, match="out of range for 4 classes"):
            F.softmax_cross_entropy(x, xp.asarray(bad))
    loss = F.softmax_cross_entropy(x, xp.asarray([0, 3, 1]))
    assert cuda.get_array_module(loss.data) is xp
    np.testing.assert_allclose(float(loss.data), np.log(4.0), rtol=1e-6)


def test_logsumexp_of_large_logits_in_row_blocks_equals_the_whole_array_formula():
    """Large (N, V) logits (a language model's) take row blocks; each row's result has the
    same bits as the formula over the whole array, the last short block included."""
    from dezero.array_utils import _LSE_BLOCK, logsumexp

    rng = np.random.default_rng(0)
    V = 5000
    x = rng.standard_normal((3 * (_LSE_BLOCK // V) + 2, V)).astype(np.float32)
    m = x.max(axis=1, keepdims=True)
    whole = np.log(np.exp(x - m).sum(axis=1, keepdims=True)) + m
    assert np.array_equal(logsumexp(x), whole)
    assert np.array_equal(logsumexp(x, axis=-1), whole)
