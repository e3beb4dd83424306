"""batch_norm / BatchNorm: train vs test mode, running statistics as buffers, the fused
backward vs its composite twin, second order, dtypes and errors (the op table checks the
gradients of both modes against central differences)."""

from __future__ import annotations

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
import dezero.optimizers as O
from dezero import Variable, cuda, test_mode, testing


def _stats_axes(x):
    return (0, *range(2, x.ndim))


@pytest.fixture(params=["2d", "4d"])
def x(request):
    rng = np.random.default_rng(0)
    if request.param == "2d":
        return rng.normal(3.0, 2.0, (16, 5)).astype(np.float32)
    return rng.normal(-1.0, 0.5, (4, 3, 5, 6)).astype(np.float32)


# =============================================================================
# The function
# =============================================================================
def test_train_mode_normalises_with_batch_statistics_and_updates_running_ones(x):
    C = x.shape[1]
    gamma, beta = np.full(C, 2.0, np.float32), np.full(C, 0.5, np.float32)
    mean, var = np.full(C, 0.3, np.float32), np.full(C, 1.5, np.float32)
    y = F.batch_norm(x, gamma, beta, mean, var, decay=0.8, eps=1e-5)
    axes = _stats_axes(x)
    z = (y.data - 0.5) / 2.0
    np.testing.assert_allclose(z.mean(axis=axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.var(axis=axes), 1.0, rtol=1e-3)
    m = x.size // C
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, 0.8 * 0.3 + 0.2 * x64.mean(axis=axes), rtol=1e-5)
    unbiased = x64.var(axis=axes) * m / (m - 1)
    np.testing.assert_allclose(var, 0.8 * 1.5 + 0.2 * unbiased, rtol=1e-5)
    assert mean.dtype == var.dtype == y.dtype == np.float32


def test_test_mode_uses_running_statistics_and_leaves_them_alone(x):
    C = x.shape[1]
    rng = np.random.default_rng(1)
    gamma = rng.uniform(0.5, 2, C).astype(np.float32)
    beta = rng.uniform(-1, 1, C).astype(np.float32)
    mean, var = rng.uniform(-1, 1, C), rng.uniform(0.5, 2, C)  # float64 statistics
    before = mean.copy(), var.copy()
    with test_mode():
        y = F.batch_norm(x, gamma, beta, mean, var, eps=1e-3)
    shape = (1, C) + (1,) * (x.ndim - 2)
    expected = (gamma.reshape(shape) * (x - mean.reshape(shape))
                / np.sqrt(var.reshape(shape) + 1e-3) + beta.reshape(shape))
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mean, before[0])
    np.testing.assert_array_equal(var, before[1])
    assert y.dtype == np.float32  # float64 statistics do not promote float32 data


def test_test_mode_gradient_is_that_of_an_affine_map():
    rng = np.random.default_rng(2)
    x = Variable(rng.normal(size=(6, 4)))
    gamma, beta = Variable(rng.uniform(0.5, 2, 4)), Variable(rng.uniform(-1, 1, 4))
    mean, var = rng.uniform(-1, 1, 4), rng.uniform(0.5, 2, 4)
    with test_mode():
        y = F.batch_norm(x, gamma, beta, mean, var, eps=0.0)
    gy = rng.normal(size=y.shape)
    y.grad = Variable(gy)
    y.backward()
    np.testing.assert_allclose(x.grad.data, gy * gamma.data / np.sqrt(var), rtol=1e-12)
    np.testing.assert_allclose(beta.grad.data, gy.sum(0), rtol=1e-12)
    np.testing.assert_allclose(gamma.grad.data, (gy * (x.data - mean) / np.sqrt(var)).sum(0),
                               rtol=1e-12)


def _composite_batch_norm(x, gamma, beta, eps):
    """batch norm written with plain dezero ops: the oracle for the fused Function."""
    axes = _stats_axes(x)
    m = x.size // x.shape[1]
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mu = F.sum(x, axis=axes, keepdims=True) / m
    xc = x - mu
    var = F.sum(xc * xc, axis=axes, keepdims=True) / m
    return F.reshape(gamma, shape) * xc / (var + eps) ** 0.5 + F.reshape(beta, shape)


@pytest.mark.parametrize("create_graph", [False, True])
def test_fused_backward_agrees_with_the_composite(x, create_graph):
    x = x.astype(np.float64)
    C = x.shape[1]
    rng = np.random.default_rng(3)
    gamma0, beta0 = rng.uniform(0.5, 2, C), rng.uniform(-1, 1, C)
    gy = rng.normal(size=x.shape)
    results = []
    for fused in (True, False):
        xv, g, b = Variable(x.copy()), Variable(gamma0.copy()), Variable(beta0.copy())
        if fused:
            y = F.batch_norm(xv, g, b, np.zeros(C), np.ones(C), eps=1e-3)
        else:
            y = _composite_batch_norm(xv, g, b, 1e-3)
        y.grad = Variable(gy)
        y.backward(create_graph=create_graph)
        results.append([y.data, xv.grad.data, g.grad.data, b.grad.data])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_train_mode_second_order_matches_numerical_and_the_composite(x):
    x = x.astype(np.float64)[:4]
    C = x.shape[1]
    rng = np.random.default_rng(4)
    args = [x, rng.uniform(0.5, 2, C), rng.uniform(-1, 1, C)]

    def f(x, gamma, beta):
        return F.batch_norm(x, gamma, beta, np.zeros(C), np.ones(C), eps=1e-2)

    testing.check_double_backward(f, args, name="batch_norm train", atol=1e-5, rtol=1e-4)
    # d/dx of sum(grad_x^2): fused and composite give the same
    outs = []
    for fn in (f, lambda a, g, b: _composite_batch_norm(a, g, b, 1e-2)):
        xv, g, b = (Variable(a.copy()) for a in args)
        y = fn(xv, g, b)
        y.grad = Variable(rng.normal(size=y.shape) if not outs else outs[0][1])
        gy0 = y.grad.data
        y.backward(create_graph=True)
        gx = xv.grad
        xv.cleargrad()
        g.cleargrad()
        F.sum(gx * gx).backward()
        outs.append((xv.grad.data, gy0, g.grad.data))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(outs[0][2], outs[1][2], rtol=1e-8, atol=1e-10)


def test_batch_of_one_row_is_finite():
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    y = F.batch_norm(np.ones((1, 3), np.float32), np.ones(3, np.float32),
                     np.zeros(3, np.float32), mean, var)
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(var))


def test_book_spelling_is_the_same_function():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5, 2))
    args = (np.ones(2), np.zeros(2))
    m1, v1, m2, v2 = np.zeros(2), np.ones(2), np.zeros(2), np.ones(2)
    np.testing.assert_array_equal(F.batch_nrom(x, *args, m1, v1).data,
                                  F.batch_norm(x, *args, m2, v2).data)
    np.testing.assert_array_equal(v1, v2)


def test_errors_name_the_shapes():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\) .* got \(2,\)"):
        F.batch_norm(x, np.ones(2), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"var must have shape \(3,\)"):
        F.batch_norm(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match=r"expected an input of shape \(N, C\)"):
        F.batch_norm(np.zeros(3), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))


# =============================================================================
# The layer
# =============================================================================
def test_layer_creates_its_state_from_the_first_input(x):
    bn = L.BatchNorm()
    assert [n for n, _ in bn.named_params()] == ["gamma", "beta"]
    bn(x)
    C = x.shape[1]
    for a in (bn.gamma.data, bn.beta.data, bn.avg_mean, bn.avg_var):
        assert a.shape == (C,) and a.dtype == np.float32


def test_running_statistics_are_buffers_saved_but_not_trained(tmp_path):
    rng = np.random.default_rng(6)
    bn = L.BatchNorm()
    opt = O.SGD(lr=0.1).setup(bn)
    for _ in range(3):
        x = rng.normal(2.0, 3.0, (8, 4)).astype(np.float32)
        bn.cleargrads()
        F.sum(bn(x) * np.arange(4, dtype=np.float32)).backward()
        mean_before = bn.avg_mean.copy()
        opt.update()
        np.testing.assert_array_equal(bn.avg_mean, mean_before)  # not touched by the step
    params = list(bn.params())
    assert len(params) == 2 and all(p is not bn.avg_mean for p in params)
    state = bn.state_dict()
    assert list(state) == ["gamma", "beta", "avg_mean", "avg_var"]
    assert not np.allclose(state["avg_mean"], 0.0)  # the running mean moved towards 2

    path = tmp_path / "bn.npz"
    bn.save_weights(path)
    bn2 = L.BatchNorm()
    bn2.load_weights(path)
    for name in state:
        a = getattr(bn2, name)
        np.testing.assert_array_equal(getattr(a, "data", a), state[name])
    x = rng.normal(size=(5, 4)).astype(np.float32)
    with test_mode():
        np.testing.assert_array_equal(bn(x).data, bn2(x).data)


def test_layer_train_and_test_mode_differ_and_test_mode_does_not_update():
    rng = np.random.default_rng(7)
    bn = L.BatchNorm(decay=0.5)
    x = rng.normal(5.0, 1.0, (32, 3, 2, 2)).astype(np.float32)
    y_train = bn(x)
    np.testing.assert_allclose(y_train.data.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    mean = bn.avg_mean.copy()
    with test_mode():
        y_test = bn(x)
    np.testing.assert_array_equal(bn.avg_mean, mean)
    # running mean is halfway to the data's mean: test-mode output is far from centred
    assert np.all(y_test.data.mean(axis=(0, 2, 3)) > 0.5)
    assert dezero.Config.train


@pytest.mark.gpu
def test_layer_on_the_gpu_matches_numpy(xp):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 3, 4, 4)).astype(np.float32)
    outs = []
    for mod in (np, xp):
        bn = L.BatchNorm()
        xv = Variable(mod.asarray(x))
        F.sum(bn(xv) ** 3).backward()
        with test_mode():
            yt = bn(xv)
        outs.append([cuda.as_numpy(a) for a in (xv.grad.data, bn.gamma.grad.data,
                                                 bn.avg_mean, bn.avg_var, yt.data)])
        if mod is not np:
            bn.to_cpu()
            assert isinstance(bn.avg_var, np.ndarray)
            bn.to_gpu()
            assert not isinstance(bn.avg_var, np.ndarray)
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
