"""Activations: what the op table cannot say (extreme inputs, fused vs composite, kinks).

The op table (tests/opdb/activation.py) checks values, gradients of first and second
order, dtypes and no_grad for every activation.
"""

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable


@pytest.fixture
def rng():
    return np.random.default_rng(0)

EXTREME = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]])


def _grads(f, x, order=1):
    """Return the list [f(x), f'(x) . 1, ...] up to ``order`` (sum over outputs each time)."""
    v = Variable(x)
    y = f(v)
    out = [y.data]
    g = F.sum(y)
    for _ in range(order):
        v.cleargrad()
        g.backward(create_graph=True)
        gx = v.grad
        out.append(gx.data)
        g = F.sum(gx)
    return out


# ---------------------------------------------------------------------------- sigmoid
def test_sigmoid_agrees_with_composite_to_second_order(rng):
    x = rng.uniform(-4, 4, size=(3, 5))
    for a, b in zip(_grads(F.sigmoid, x, order=2), _grads(F.sigmoid_simple, x, order=2)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_extreme_inputs_finite_and_exact(dtype):
    x = EXTREME.astype(dtype)
    y, g1, g2 = _grads(F.sigmoid, x, order=2)
    assert y.dtype == dtype and g1.dtype == dtype and g2.dtype == dtype
    for a in (y, g1, g2):
        assert np.all(np.isfinite(a))
    s = np.exp(-np.logaddexp(0.0, -EXTREME))  # float64 reference, no overflow
    np.testing.assert_allclose(y, s, rtol=1e-6, atol=0)  # relative precision in the tails
    np.testing.assert_allclose(g1, s * (1 - s), rtol=1e-5, atol=1e-15)
    np.testing.assert_allclose(g2, s * (1 - s) * (1 - 2 * s), rtol=1e-5, atol=1e-15)
    np.testing.assert_allclose(g1[0, :2], (s * (1 - s))[0, :2], rtol=1e-5, atol=0)
    assert y[0, 0] == 0 and y[0, -1] == 1 and y[0, 2] == 0.5


def test_sigmoid_simple_overflows_where_fused_does_not():
    x = np.array([-1e4])
    with np.errstate(over="ignore", invalid="ignore"):
        _, g = _grads(F.sigmoid_simple, x)
    assert not np.all(np.isfinite(g))  # exp(1e4) = inf: the composite's gradient is nan
    _, g = _grads(F.sigmoid, x)
    assert g[0] == 0.0


# ---------------------------------------------------------------------------- relu
def test_relu_and_leaky_relu_at_the_kink():
    x = Variable(np.array([-1.0, 0.0, 2.0]))
    F.sum(F.relu(x)).backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 1.0])  # 0 at the kink
    x.cleargrad()
    F.sum(F.leaky_relu(x, slope=0.1)).backward()
    np.testing.assert_array_equal(x.grad.data, [0.1, 0.1, 1.0])  # slope at the kink


def test_leaky_relu_default_slope_is_the_books():
    np.testing.assert_allclose(F.leaky_relu(np.array([-1.0, 3.0])).data, [-0.2, 3.0])


@pytest.mark.parametrize("f", [F.relu, F.leaky_relu])
def test_relu_keeps_float32_with_numpy_scalars(f):
    x = Variable(np.array([-2.0, 3.0], dtype=np.float32))
    y = f(x) * np.float64(2.0)
    F.sum(y).backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


# ---------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("axis", [1, 0, -1, (0, 1)])
def test_softmax_and_log_softmax_agree_with_composites(axis, rng):
    x = rng.uniform(-3, 3, size=(4, 5))
    for a, b in zip(_grads(lambda v: F.softmax(v, axis) * np.arange(5.0), x, order=2),
                    _grads(lambda v: F.softmax_simple(v, axis) * np.arange(5.0), x, order=2)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(
        _grads(lambda v: F.log_softmax(v, axis) * np.arange(5.0), x, order=2),
        _grads(lambda v: F.log(F.softmax_simple(v, axis)) * np.arange(5.0), x, order=2),
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_extreme_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype)
    w = np.array([1.0, 2.0, 3.0], dtype=dtype)
    v = Variable(x)
    y = F.softmax(v)
    F.sum(y * w).backward()
    assert y.dtype == dtype and v.grad.dtype == dtype
    np.testing.assert_allclose(y.data, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    # gx = y * (w - sum(y w)): row 0 is saturated (gradient 0), row 1 is uniform
    np.testing.assert_allclose(v.grad.data, [[0, 0, 0], [-1 / 3, 0, 1 / 3]], atol=1e-6)

    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(F.softmax_simple(x).data).any()  # inf / inf in the composite


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_extreme_logits_finite_and_correct(dtype):
    x = np.array([[1e4, -1e4, 0.0]], dtype=dtype)
    v = Variable(x)
    y = F.log_softmax(v)
    gy = np.array([[1.0, 2.0, 3.0]], dtype=dtype)
    F.sum(y * gy).backward(create_graph=True)
    assert y.dtype == dtype and v.grad.dtype == dtype
    np.testing.assert_allclose(y.data, [[0.0, -2e4, -1e4]], rtol=1e-6)
    # gx = gy - softmax(x) * sum(gy) = [1, 2, 3] - [1, 0, 0] * 6
    np.testing.assert_allclose(v.grad.data, [[-5.0, 2.0, 3.0]], rtol=1e-6)
    g = v.grad
    v.cleargrad()
    F.sum(g * g).backward()
    assert np.all(np.isfinite(v.grad.data))

    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        composite = F.log(F.softmax_simple(x)).data
    assert not np.all(np.isfinite(composite))


def test_log_softmax_3d_over_every_axis_normalises(rng):
    x = rng.standard_normal((2, 3, 4))
    for axis in (0, 1, 2, -1, (1, 2)):
        y = F.log_softmax(x, axis=axis).data
        np.testing.assert_allclose(np.exp(y).sum(axis=axis), 1.0, rtol=1e-12)


@pytest.mark.parametrize("f", [F.softmax, F.log_softmax])
def test_softmax_axis_out_of_range_names_axis_and_shape(f):
    with pytest.raises(ValueError, match=r"axis 2 is out of range .*shape \(3, 4\)"):
        f(np.zeros((3, 4)), axis=2)
