"""Reductions: what the op table cannot say (errors, ties, extreme inputs, fused vs composite)."""

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable, cuda


def _np(v):
    return cuda.as_numpy(v.data if isinstance(v, Variable) else v)


# --- errors ----------------------------------------------------------------------
@pytest.mark.parametrize("fn", [F.sum, F.mean, F.average, F.max, F.min, F.logsumexp])
def test_axis_out_of_range_names_axis_and_shape(fn):
    name = {"average": "mean"}.get(fn.__name__, fn.__name__)
    with pytest.raises(ValueError, match=rf"{name}: axis 2 is out of range for an input of "
                                         r"shape \(2, 3\)"):
        fn(np.zeros((2, 3)), axis=2)
    with pytest.raises(ValueError, match=r"axis \(0, -3\) is out of range .* \(2, 3\)"):
        fn(np.zeros((2, 3)), axis=(0, -3))


def test_var_with_too_large_ddof():
    with pytest.raises(ValueError, match="ddof=3 leaves no degrees of freedom for 3 elements"):
        F.var(np.zeros(3), ddof=3)


# --- max / min ties ------------------------------------------------------------------
def test_max_ties_share_the_gradient_evenly(xp):
    x = Variable(xp.asarray(np.array([[3.0, 1.0, 3.0, 3.0], [0.0, 2.0, -1.0, 2.0]])))
    y = F.max(x, axis=1)
    np.testing.assert_array_equal(_np(y), [3.0, 2.0])
    F.sum(y * xp.asarray([3.0, 10.0])).backward()
    np.testing.assert_allclose(_np(x.grad), [[1.0, 0.0, 1.0, 1.0], [0.0, 5.0, 0.0, 5.0]])


def test_min_ties_share_the_gradient_evenly_over_everything(xp):
    x = Variable(xp.asarray(np.array([[1.0, 4.0], [1.0, 1.0]], dtype=np.float32)))
    F.min(x).backward()
    np.testing.assert_allclose(_np(x.grad), [[1 / 3, 0.0], [1 / 3, 1 / 3]], rtol=1e-6)
    assert x.grad.dtype == np.float32


def test_max_gradient_sums_to_upstream_with_keepdims_and_tuple_axis():
    x = Variable(np.ones((2, 3, 4)))
    y = F.max(x, axis=(0, 2), keepdims=True)
    assert y.shape == (1, 3, 1)
    y.backward()
    np.testing.assert_allclose(x.grad.data.sum(axis=(0, 2)), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(x.grad.data, 1 / 8)


def test_max_second_derivative_is_zero_and_flows_to_gy():
    x = Variable(np.array([1.0, 5.0, 2.0]))
    y = F.max(x) ** 2
    y.backward(create_graph=True)
    gx = x.grad
    np.testing.assert_allclose(gx.data, [0.0, 10.0, 0.0])
    x.cleargrad()
    F.sum(gx).backward()
    np.testing.assert_allclose(x.grad.data, [0.0, 2.0, 0.0])


def test_variable_max_min_methods():
    x = Variable(np.array([[1.0, 5.0], [7.0, 2.0]]))
    np.testing.assert_array_equal(x.max(axis=0).data, [7.0, 5.0])
    np.testing.assert_array_equal(x.min(axis=1, keepdims=True).data, [[1.0], [2.0]])
    assert float(x.sum().data) == 15.0


# --- logsumexp -----------------------------------------------------------------------
def _lse_composite(x, axis):
    return F.log(F.sum(F.exp(x), axis=axis))


def test_logsumexp_matches_its_composite_on_ordinary_inputs():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4, 5))
    x1, x2 = Variable(data.copy()), Variable(data.copy())
    y1, y2 = F.logsumexp(x1, axis=1), _lse_composite(x2, axis=1)
    np.testing.assert_allclose(y1.data, y2.data, rtol=1e-12)
    F.sum(y1).backward()
    F.sum(y2).backward()
    np.testing.assert_allclose(x1.grad.data, x2.grad.data, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_is_finite_where_the_composite_overflows(xp, dtype):
    data = xp.asarray(np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4]], dtype=dtype))
    x = Variable(data)
    y = F.logsumexp(x, axis=1)
    assert y.dtype == dtype
    e = np.log1p(np.exp(-1.0))
    np.testing.assert_allclose(_np(y), [1e4 + e, -1e4 + np.log(3.0)], rtol=1e-6)
    F.sum(y).backward()
    g = _np(x.grad)
    assert np.isfinite(g).all()
    p = 1 / (1 + np.exp(-1.0))
    # the gradient is exp(x - y): in float32, y ~ 1e4 carries an absolute error of ~1e-3
    tol = 1e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(g, [[p, 1 - p, 0.0], [1 / 3] * 3], rtol=tol, atol=1e-6)
    with np.errstate(over="ignore", divide="ignore"):
        assert not np.isfinite(_np(_lse_composite(Variable(data), axis=1))).all()


def test_logsumexp_of_an_all_minus_inf_row_is_minus_inf_without_nan():
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    with np.errstate(divide="ignore"):
        y = F.logsumexp(x, axis=1).data
    assert y[0] == -np.inf
    assert y[1] == 0.0


def test_logsumexp_third_order_matches_softmax_derivatives():
    # d/dx lse = softmax; check d3/dx0^3 numerically through the second derivative
    x = Variable(np.array([0.3, -0.2]))
    y = F.logsumexp(x, axis=0)
    y.backward(create_graph=True)
    g1 = x.grad
    x.cleargrad()
    g1[0].backward(create_graph=True)  # d softmax_0 / dx = s0 (e_0 - s)
    g2 = x.grad
    x.cleargrad()
    g2[0].backward()  # d/dx0 of s0 (1 - s0) = s0 (1 - s0)(1 - 2 s0)
    s0 = 1 / (1 + np.exp(-0.5))
    np.testing.assert_allclose(x.grad.data[0], s0 * (1 - s0) * (1 - 2 * s0), rtol=1e-10)


# --- mean / var / std ----------------------------------------------------------------
def test_mean_is_average():
    assert F.mean is F.average


def test_mean_and_var_keep_float32(xp):
    x = Variable(xp.asarray(np.random.default_rng(0).random((3, 4)).astype(np.float32)))
    for y in (F.mean(x, axis=0), F.var(x, axis=1), F.std(x), F.var(x, ddof=1)):
        assert y.dtype == np.float32
        F.sum(y).backward()
        assert x.grad.dtype == np.float32
        x.cleargrad()


def test_std_with_ddof_matches_numpy():
    data = np.random.default_rng(0).random((5, 3))
    np.testing.assert_allclose(F.std(data, axis=0, ddof=1).data, data.std(axis=0, ddof=1))
    np.testing.assert_allclose(F.var(data, axis=[0, 1], keepdims=True).data,
                               data.var(keepdims=True))
