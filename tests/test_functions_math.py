"""Elementwise math: ties, bounds, extreme inputs and dtypes (what the op table cannot say)."""

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable, cuda


def _np(v):
    return cuda.as_numpy(v.data if isinstance(v, Variable) else v)


# --- maximum / minimum ----------------------------------------------------------
@pytest.mark.parametrize("fn", [F.maximum, F.minimum])
def test_ties_split_the_gradient_evenly(xp, fn):
    a = Variable(xp.asarray(np.array([1.0, 2.0, 3.0], dtype=np.float32)))
    b = Variable(xp.asarray(np.array([1.0, 0.0, 5.0], dtype=np.float32)))
    fn(a, b).backward()
    if fn is F.maximum:
        ga, gb = [0.5, 1.0, 0.0], [0.5, 0.0, 1.0]
    else:
        ga, gb = [0.5, 0.0, 1.0], [0.5, 1.0, 0.0]
    np.testing.assert_array_equal(_np(a.grad), ga)
    np.testing.assert_array_equal(_np(b.grad), gb)
    assert a.grad.dtype == np.float32


def test_maximum_of_a_variable_with_itself_has_gradient_one():
    x = Variable(np.array([1.0, -2.0]))
    F.maximum(x, x).backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 1.0])


def test_maximum_with_scalars_keeps_float32():
    x = Variable(np.array([-1.0, 2.0], dtype=np.float32))
    for y in (F.maximum(x, 0.0), F.maximum(np.float64(0.0), x), F.minimum(x, np.float64(1))):
        assert y.dtype == np.float32
    np.testing.assert_array_equal(F.maximum(0.0, x).data, [0.0, 2.0])


def test_maximum_broadcast_gradient_is_summed():
    x = Variable(np.array([[1.0, 5.0], [3.0, 0.0]]))
    b = Variable(np.array([2.0]))
    F.maximum(x, b).backward()
    np.testing.assert_array_equal(x.grad.data, [[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(b.grad.data, [2.0])


# --- abs / clip ------------------------------------------------------------------
def test_abs_gradient_is_sign_and_zero_at_zero():
    x = Variable(np.array([-2.0, 0.0, 3.0], dtype=np.float32))
    F.abs(x).backward()
    np.testing.assert_array_equal(x.grad.data, [-1.0, 0.0, 1.0])
    assert x.grad.dtype == np.float32


def test_clip_gradient_includes_the_bounds():
    x = Variable(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]))
    y = F.clip(x, 0.0, 1.0)
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.5, 1.0, 1.0])
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_clip_with_numpy_float64_bounds_keeps_float32():
    x = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
    assert F.clip(x, np.float64(0.0), np.float64(1.0)).dtype == np.float32


def test_clip_rejects_bad_bounds():
    with pytest.raises(ValueError, match="cannot both be None"):
        F.clip(np.zeros(2), None, None)
    with pytest.raises(ValueError, match=r"x_min \(2.0\) is larger than x_max \(1.0\)"):
        F.clip(np.zeros(2), 2.0, 1.0)


# --- softplus / gelu ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_is_finite_and_exact_for_extreme_inputs(xp, dtype):
    x = Variable(xp.asarray(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=dtype)))
    y = F.softplus(x)
    assert y.dtype == dtype
    expected = [0.0, np.exp(-50.0), np.log(2.0), 50.0, 1e4]
    np.testing.assert_allclose(_np(y), expected, rtol=1e-6, atol=0)
    y.backward()
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(_np(x.grad), [0.0, np.exp(-50.0), 0.5, 1.0, 1.0], rtol=1e-6)


def test_softplus_matches_the_naive_formula_on_ordinary_inputs():
    x = Variable(np.linspace(-5, 5, 11))
    naive = F.log(1 + F.exp(x))
    np.testing.assert_allclose(F.softplus(x).data, naive.data, rtol=1e-12)


def test_softplus_second_derivative_is_sigmoid_derivative():
    x = Variable(np.array([0.3]))
    F.softplus(x).backward(create_graph=True)
    g = x.grad
    x.cleargrad()
    g.backward()
    s = 1 / (1 + np.exp(-0.3))
    np.testing.assert_allclose(x.grad.data, [s * (1 - s)], rtol=1e-12)


def _gelu_composite(x):
    c = np.sqrt(2.0 / np.pi)
    return 0.5 * x * (1 + F.tanh(c * (x + 0.044715 * x**3)))


def test_gelu_matches_its_composite_values_and_gradients():
    data = np.linspace(-4, 4, 17)
    x1, x2 = Variable(data.copy()), Variable(data.copy())
    y1, y2 = F.gelu(x1), _gelu_composite(x2)
    np.testing.assert_allclose(y1.data, y2.data, rtol=1e-12, atol=1e-15)
    y1.backward(create_graph=True)
    y2.backward(create_graph=True)
    np.testing.assert_allclose(x1.grad.data, x2.grad.data, rtol=1e-12, atol=1e-15)
    g1, g2 = x1.grad, x2.grad
    x1.cleargrad()
    x2.cleargrad()
    F.sum(g1).backward()
    F.sum(g2).backward()
    np.testing.assert_allclose(x1.grad.data, x2.grad.data, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_extreme_inputs_and_dtype(xp, dtype):
    x = Variable(xp.asarray(np.array([-1e4, -10.0, 0.0, 10.0, 1e4], dtype=dtype)))
    y = F.gelu(x)
    assert y.dtype == dtype
    np.testing.assert_allclose(_np(y), [0.0, 0.0, 0.0, 10.0, 1e4], atol=1e-6)
    y.backward()
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(_np(x.grad), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
