"""Convolution family: what the op table cannot say.

Forward results on a grid of shapes against the direct-loop references of tests/opdb/conv.py,
adjointness (deconv2d vs conv2d, col2im vs im2col), fused vs composite twins, ties in max
pooling, derivatives of third order through the weight gradient, dtypes, memory layout,
reuse of work buffers, and error messages.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable, cuda, no_grad, parallel
from dezero.functions import _conv_kernels as conv_module
from dezero.utils import get_conv_outsize, pair
from tests.opdb.conv import (
    ref_average_pooling,
    ref_col2im,
    ref_conv2d,
    ref_deconv2d,
    ref_im2col,
    ref_pooling,
)

KERNELS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (1, 3), (3, 2), (5, 2), (2, 4)]
STRIDES = [1, 2, (1, 2), 3]
PADS = [0, 1, (2, 1)]
# (N, C, OC, H, W): batch 1 and more, one channel and several, square and not
SHAPES = [(1, 1, 1, 7, 7), (3, 3, 2, 8, 6), (2, 4, 5, 5, 9), (1, 2, 3, 6, 6)]


def _grid():
    cases = []
    for i, (k, s, p) in enumerate(itertools.product(KERNELS, STRIDES, PADS)):
        N, C, OC, H, W = SHAPES[i % len(SHAPES)]
        (KH, KW), (PH, PW) = k, pair(p)
        if KH > H + 2 * PH or KW > W + 2 * PW:
            continue
        cases.append(pytest.param(N, C, OC, H, W, k, s, p, id=f"k{KH}x{KW}-s{s}-p{p}-{N}x{C}"))
    return cases


GRID = _grid()


def _rand(rng, *shape, dtype=np.float64):
    return rng.uniform(-1, 1, size=shape).astype(dtype)


# =============================================================================
# Forward against direct loops
# =============================================================================
@pytest.mark.parametrize(("N", "C", "OC", "H", "W", "k", "s", "p"), GRID)
def test_conv2d_matches_loop_reference(N, C, OC, H, W, k, s, p):
    rng = np.random.default_rng(0)
    x, Wt, b = _rand(rng, N, C, H, W), _rand(rng, OC, C, *k), _rand(rng, OC)
    expected = ref_conv2d(x, Wt, b, s, p)
    y64 = F.conv2d(x, Wt, b, stride=s, pad=p)
    np.testing.assert_allclose(y64.data, expected, rtol=1e-12, atol=1e-12)
    y32 = F.conv2d(x.astype(np.float32), Wt.astype(np.float32), b.astype(np.float32), s, p)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.data, expected, rtol=1e-5, atol=1e-5)
    # no bias: the same minus b
    y_nb = F.conv2d(x, Wt, None, s, p)
    np.testing.assert_allclose(y_nb.data, expected - b.reshape(1, -1, 1, 1), atol=1e-12)


@pytest.mark.parametrize(("N", "C", "OC", "H", "W", "k", "s", "p"), GRID[::3])
def test_deconv2d_matches_loop_reference(N, C, OC, H, W, k, s, p):
    rng = np.random.default_rng(1)
    x, Wt, b = _rand(rng, N, C, H, W), _rand(rng, C, OC, *k), _rand(rng, OC)
    (SY, SX), (PH, PW) = pair(s), pair(p)
    OH, OW = SY * (H - 1) + k[0] - 2 * PH, SX * (W - 1) + k[1] - 2 * PW
    if OH < 1 or OW < 1:
        pytest.skip("padding larger than the transposed output")
    y = F.deconv2d(x, Wt, b, stride=s, pad=p)
    np.testing.assert_allclose(y.data, ref_deconv2d(x, Wt, b, s, p), rtol=1e-12, atol=1e-12)
    # the other output sizes that a conv2d maps back onto (H, W)
    for extra in range(1, SY):
        y = F.deconv2d(x, Wt, b, stride=s, pad=p, outsize=(OH + extra, OW))
        np.testing.assert_allclose(y.data, ref_deconv2d(x, Wt, b, s, p, (OH + extra, OW)),
                                   atol=1e-12)


@pytest.mark.parametrize(("k", "s", "p"), [((2, 2), 2, 0), ((3, 3), 2, 1), ((3, 3), 1, 1),
                                           ((2, 3), (1, 2), (1, 0)), ((4, 4), 3, 0),
                                           ((5, 5), 1, 2)])
def test_pooling_matches_loop_reference(k, s, p):
    rng = np.random.default_rng(2)
    x = _rand(rng, 2, 3, 9, 8)
    np.testing.assert_array_equal(F.pooling(x, k, s, p).data, ref_pooling(x, k, s, p))
    np.testing.assert_allclose(F.average_pooling(x, k, s, p).data,
                               ref_average_pooling(x, k, s, p), atol=1e-14)
    np.testing.assert_array_equal(F.pooling_simple(x, k, s, p).data, ref_pooling(x, k, s, p))


@pytest.mark.parametrize("to_matrix", [True, False])
@pytest.mark.parametrize(("k", "s", "p"), [(3, 1, 1), ((2, 3), (2, 1), (0, 2)), (1, 1, 0),
                                           (4, 3, 1)])
def test_im2col_col2im_match_loop_reference(k, s, p, to_matrix):
    rng = np.random.default_rng(3)
    x = _rand(rng, 2, 3, 7, 6)
    col = F.im2col(x, k, s, p, to_matrix=to_matrix)
    np.testing.assert_array_equal(col.data, ref_im2col(x, k, s, p, to_matrix))
    c = _rand(rng, *col.shape)
    np.testing.assert_allclose(F.col2im(c, x.shape, k, s, p, to_matrix).data,
                               ref_col2im(c, x.shape, k, s, p, to_matrix), atol=1e-13)


# =============================================================================
# Adjointness and round trips
# =============================================================================
@pytest.mark.parametrize(("C", "OC", "H", "W", "k", "s", "p"), [
    (3, 4, 7, 7, (3, 3), 1, 1),
    (2, 3, 8, 5, (3, 2), (2, 1), (1, 0)),
    (1, 2, 6, 6, (3, 3), 2, 0),  # the last input row is never read: outsize matters
    (4, 2, 9, 9, (5, 5), 3, 2),
    (3, 3, 4, 4, (1, 1), 1, 0),
])
def test_deconv2d_is_the_adjoint_of_conv2d(C, OC, H, W, k, s, p):
    rng = np.random.default_rng(4)
    x, Wt = _rand(rng, 2, C, H, W), _rand(rng, OC, C, *k)
    y = F.conv2d(x, Wt, stride=s, pad=p)
    r = _rand(rng, *y.shape)
    lhs = np.sum(y.data * r)
    rhs = np.sum(x * F.deconv2d(r, Wt, stride=s, pad=p, outsize=(H, W)).data)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.parametrize("to_matrix", [True, False])
@pytest.mark.parametrize(("k", "s", "p"), [(3, 1, 1), (2, 2, 0), ((3, 2), (2, 3), (1, 1)),
                                           (3, 2, 0)])
def test_col2im_is_the_adjoint_of_im2col(k, s, p, to_matrix):
    rng = np.random.default_rng(5)
    a = _rand(rng, 2, 3, 7, 8)
    col = F.im2col(a, k, s, p, to_matrix=to_matrix)
    b = _rand(rng, *col.shape)
    lhs = np.sum(col.data * b)
    rhs = np.sum(a * F.col2im(b, a.shape, k, s, p, to_matrix).data)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.parametrize(("k", "s", "p"), [(3, 1, 1), (2, 2, 0), (3, 2, 1), (1, 1, 0)])
def test_col2im_of_im2col_counts_the_windows(k, s, p):
    rng = np.random.default_rng(6)
    x = _rand(rng, 2, 2, 6, 8)
    back = F.col2im(F.im2col(x, k, s, p), x.shape, k, s, p).data
    coverage = F.col2im(F.im2col(np.ones_like(x), k, s, p), x.shape, k, s, p).data
    np.testing.assert_allclose(back, x * coverage, atol=1e-13)
    if pair(s) == pair(k) and pair(p) == (0, 0):  # tiling windows: an exact round trip
        np.testing.assert_array_equal(back, x)


# =============================================================================
# Fused vs composite
# =============================================================================
@pytest.mark.parametrize(("k", "s", "p"), [(3, 1, 1), ((2, 3), 2, (1, 0)), (1, 1, 0)])
def test_conv2d_agrees_with_conv2d_simple_forward_and_backward(k, s, p):
    rng = np.random.default_rng(7)
    args = [_rand(rng, 3, 2, 6, 7), _rand(rng, 4, 2, *pair(k)), _rand(rng, 4)]
    grads = []
    for fn in (F.conv2d, F.conv2d_simple):
        vs = [Variable(a.copy()) for a in args]
        y = fn(*vs, stride=s, pad=p)
        F.sum(y * y).backward()
        grads.append((y.data, *[v.grad.data for v in vs]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_pooling_agrees_with_pooling_simple_backward():
    rng = np.random.default_rng(8)
    x = _rand(rng, 2, 3, 7, 7)
    grads = []
    for fn in (F.pooling, F.pooling_simple):
        v = Variable(x.copy())
        y = fn(v, 3, 2, 1)
        F.sum(y * y).backward()
        grads.append(v.grad.data)
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-14)


# =============================================================================
# Pooling specifics
# =============================================================================
def test_pooling_ties_send_the_gradient_to_the_first_maximum():
    x = Variable(np.array([[[[1.0, 1.0], [1.0, 0.0]]]]))
    F.pooling(x, 2, 2).backward()
    np.testing.assert_array_equal(x.grad.data, [[[[1.0, 0.0], [0.0, 0.0]]]])
    # overlapping windows: each output's gradient goes to its own winner
    x = Variable(np.array([[[[0.0, 5.0, 5.0, 0.0]]]]))
    y = F.pooling(x, (1, 2), 1)
    np.testing.assert_array_equal(y.data, [[[[5.0, 5.0, 5.0]]]])
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [[[[0.0, 2.0, 1.0, 0.0]]]])


def test_pooling_pads_with_minus_infinity():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all negative: zero padding would win
    y = F.pooling(x, 2, 2, pad=1)
    np.testing.assert_array_equal(y.data, [[[[-1.0, -2.0], [-4.0, -5.0]]]])
    assert np.all(np.isfinite(F.pooling(x, 3, 1, pad=2).data))


def test_pooling_second_order_is_a_gather():
    rng = np.random.default_rng(9)
    x = Variable(rng.uniform(-1, 1, (2, 2, 4, 4)))
    y = F.pooling(x, 2, 2)
    gy = Variable(rng.uniform(-1, 1, y.shape))
    y.grad = gy
    y.backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    r = rng.uniform(-1, 1, x.shape)
    F.sum(gx * r).backward()
    # d<gx, r>/dgy = r read at each window's winner; d/dx = 0 (piecewise linear)
    np.testing.assert_allclose(gy.grad.data, _gather(x.data, r), atol=1e-14)
    assert x.grad is None or np.all(x.grad.data == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_2x2_fast_path_matches_the_reference_with_ties(dtype):
    # tiled 2x2 windows take a two-stage path (columns, then rows): on data full of ties
    # (ReLU-like zeros, small integers) it must still pick the row-major first maximum
    rng = np.random.default_rng(10)
    x = np.maximum(rng.integers(-1, 3, (3, 4, 6, 8)), 0).astype(dtype)
    x[0, 0, :2, :2] = [[1, 5], [5, 0]]  # the first row's maximum beats an earlier column
    v = Variable(x.copy())
    y = F.pooling(v, 2, 2)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.data, ref_pooling(x, 2, 2))
    gy = Variable(rng.uniform(-1, 1, y.shape).astype(dtype))
    y.grad = gy
    y.backward(create_graph=True)
    N, C, H, W = x.shape
    win = x.reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        N, C, H // 2, W // 2, 4)
    onehot = np.eye(4, dtype=dtype)[win.argmax(-1)] * gy.data[..., None]
    expected = onehot.reshape(N, C, H // 2, W // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    np.testing.assert_array_equal(v.grad.data, expected.reshape(x.shape))
    assert v.grad.dtype == dtype
    np.testing.assert_array_equal(v.grad.data[0, 0, :2, :2], [[0, gy.data[0, 0, 0, 0]], [0, 0]])
    # second order: the gather reads the same winners
    gx = v.grad
    r = rng.uniform(-1, 1, x.shape).astype(dtype)
    F.sum(gx * r).backward()
    np.testing.assert_array_equal(gy.grad.data, _gather(x, r))


def _gather(x, r):
    """r at the argmax of each 2x2 window of x (reference for the gather)."""
    N, C, H, W = x.shape
    win = x.reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        N, C, H // 2, W // 2, 4)
    rw = r.reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        N, C, H // 2, W // 2, 4)
    return np.take_along_axis(rw, win.argmax(-1)[..., None], -1)[..., 0]


def test_average_pooling_counts_padding_as_zeros():
    y = F.average_pooling(np.ones((1, 1, 2, 2)), 2, 2, pad=1)
    np.testing.assert_array_equal(y.data, np.full((1, 1, 2, 2), 0.25))


# =============================================================================
# Higher order through the weight gradient (the original crashes here)
# =============================================================================
def _third_order_value(x, W):
    """s(x, W) = sum(g2^2), g2 = d sum(g1^2)/dx, g1 = d sum(conv2d(x, W)^2)/dW."""
    x, W = Variable(x), Variable(W)
    y = F.conv2d(x, W, stride=2, pad=1)
    F.sum(y * y).backward(create_graph=True)
    g1 = W.grad
    assert type(g1.creator).__name__ == "Conv2dGradW"  # a recorded, differentiable op
    x.cleargrad()
    W.cleargrad()
    F.sum(g1 * g1).backward(create_graph=True)
    g2 = x.grad
    s = F.sum(g2 * g2)
    return x, W, s


def test_conv2d_weight_gradient_is_differentiable_to_third_order():
    rng = np.random.default_rng(10)
    x0, W0 = rng.uniform(-1, 1, (2, 2, 5, 5)), rng.uniform(-1, 1, (3, 2, 3, 3))
    x, W, s = _third_order_value(x0, W0)
    x.cleargrad()
    W.cleargrad()
    s.backward()
    eps = 1e-6
    for idx in [(0, 0, 1, 1), (2, 1, 0, 2), (1, 0, 2, 2)]:
        Wp, Wm = W0.copy(), W0.copy()
        Wp[idx] += eps
        Wm[idx] -= eps
        num = (_third_order_value(x0, Wp)[2].data - _third_order_value(x0, Wm)[2].data) / (
            2 * eps)
        np.testing.assert_allclose(W.grad.data[idx], num, rtol=1e-5, atol=1e-6)


# =============================================================================
# dtypes, layout, gradients nobody asked for, reused buffers
# =============================================================================
def test_float32_stays_float32_through_every_gradient():
    rng = np.random.default_rng(11)
    x = Variable(rng.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32))
    W = Variable(rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32))
    b = Variable(np.zeros(4, np.float32))
    Wd = Variable(rng.uniform(-1, 1, (4, 2, 2, 2)).astype(np.float32))
    h = F.conv2d(x, W, b, 1, 1)
    h = F.pooling(h, 2, 2) + F.average_pooling(h, 2, 2)
    h = F.deconv2d(h, Wd, None, 2, 0)
    y = F.sum(F.im2col(h, 3, 1, 1) * 1.5)
    assert h.dtype == np.float32 and y.dtype == np.float32
    y.backward(create_graph=True)
    for v in (x, W, b, Wd):
        assert v.grad.dtype == np.float32
    gW = W.grad
    x.cleargrad()
    F.sum(gW * gW).backward()
    assert x.grad.dtype == np.float32


def test_output_layouts_of_the_two_paths():
    """The reference path hands out contiguous NCHW arrays; the channel-major path (the
    default on NumPy) hands out NCHW arrays stored channel-major, (C, N, H, W), as its
    GEMM makes them, and keeps that layout through ReLU, pooling and their backward."""
    rng = np.random.default_rng(12)
    x0 = rng.uniform(-1, 1, (3, 2, 8, 8)).astype(np.float32)
    W = Variable(rng.uniform(-1, 1, (4, 2, 3, 3)).astype(np.float32))
    b = Variable(rng.uniform(-1, 1, 4).astype(np.float32))
    results = {}
    for path in conv_module.PATHS:
        with conv_module.use_path(path):
            x = Variable(x0.copy())
            y = F.conv2d(x, W, b, 1, 1)
            h = F.pooling(F.relu(y), 2, 2)
            F.sum(F.conv2d(h, W[:, :, :2, :2].transpose(1, 0, 2, 3)[:2], None, 1, 0)).backward()
            if path == "reference":
                assert y.data.flags.c_contiguous
                assert x.grad.data.flags.c_contiguous
                assert F.deconv2d(y, W.data, None, 1, 1).data.flags.c_contiguous
            else:
                assert conv_module._cn_order(y.data) and conv_module._cn_order(h.data)
                assert y.data.transpose(1, 0, 2, 3).flags.c_contiguous
            results[path] = [a.copy() for a in (y.data, h.data, x.grad.data)]
            W.cleargrad()
            b.cleargrad()
    for a, c in zip(results["channel_major"], results["reference"]):
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-6)


def test_use_path_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown path 'fast'"):
        conv_module.use_path("fast")


def test_no_input_gradient_for_a_plain_array_but_weights_are_right():
    rng = np.random.default_rng(13)
    x = rng.uniform(-1, 1, (2, 2, 5, 5))
    W, b = Variable(rng.uniform(-1, 1, (3, 2, 3, 3))), Variable(rng.uniform(-1, 1, 3))
    F.sum(F.conv2d(x, W, b, 1, 1)).backward()
    W2, b2 = Variable(W.data.copy()), Variable(b.data.copy())
    xv = Variable(x)
    F.sum(F.conv2d(xv, W2, b2, 1, 1)).backward()
    np.testing.assert_allclose(W.grad.data, W2.grad.data, atol=1e-12)
    np.testing.assert_allclose(b.grad.data, b2.grad.data, atol=1e-12)
    assert xv.grad is not None  # a Variable input does get its gradient


def test_two_backward_passes_and_reused_buffers_give_the_same_gradients():
    rng = np.random.default_rng(14)
    x = Variable(rng.uniform(-1, 1, (4, 8, 16, 16)).astype(np.float32))  # buffers > 1 MiB
    W = Variable(rng.uniform(-1, 1, (16, 8, 3, 3)).astype(np.float32))
    y = F.conv2d(x, W, None, 1, 1)
    loss = F.sum(y * y)
    loss.backward()
    g1 = W.grad.data.copy()
    gx1 = x.grad.data.copy()
    with no_grad():  # another conv in between reuses the work buffers
        F.conv2d(rng.uniform(-1, 1, (4, 8, 16, 16)).astype(np.float32), W, None, 1, 1)
    loss.backward()  # the same graph again: gradients accumulate
    np.testing.assert_allclose(W.grad.data, 2 * g1, rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, 2 * gx1, rtol=1e-6)
    W2 = Variable(W.data.copy())
    F.sum(F.conv2d(x.data, W2, None, 1, 1) ** 2).backward()
    np.testing.assert_allclose(W2.grad.data, g1, rtol=1e-6)


def test_workspace_keeps_a_bounded_amount():
    ws = conv_module._Workspace()
    ws.max_bytes = 3 << 20
    arrays = [np.empty(1 << 18, np.float32) for _ in range(4)]  # 1 MiB each
    for a in arrays:
        ws.give(a)
    assert ws.nbytes <= ws.max_bytes
    assert ws.take(np, (1 << 18,), np.float32) is arrays[-1]  # the most recent comes back
    ws.give(arrays[0][:10])  # views are never kept
    ws.give(np.empty(10))  # nor small arrays
    assert ws.nbytes == 2 << 20


@pytest.mark.gpu
def test_conv_family_on_the_gpu_matches_numpy(xp):
    rng = np.random.default_rng(15)
    x = rng.uniform(-1, 1, (2, 3, 9, 9)).astype(np.float32)
    W = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    results = []
    for mod in (np, xp):
        xv, Wv = Variable(mod.asarray(x)), Variable(mod.asarray(W))
        h = F.pooling(F.conv2d(xv, Wv, None, 2, 1), 3, 1, 1)
        y = F.sum(F.deconv2d(h, Wv, None, 2, 1, outsize=(9, 9)) ** 2)
        y.backward()
        results.append([cuda.as_numpy(a) for a in (y.data, xv.grad.data, Wv.grad.data)])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


# =============================================================================
# Errors
# =============================================================================
def test_channel_mismatch_names_both_shapes():
    x, W = np.zeros((1, 3, 5, 5)), np.zeros((2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"x has 3 input channels .*W expects 4"):
        F.conv2d(x, W)
    with pytest.raises(ValueError, match=r"x has 3 input channels .*W expects 2"):
        F.deconv2d(x, W)
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\).*\(2, 4, 3, 3\)"):
        F.conv2d(x, W)


def test_kernel_larger_than_the_padded_input():
    with pytest.raises(ValueError, match=r"kernel 5x5 is larger than the padded input 4x4"):
        F.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 5, 5)), pad=1)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.pooling(np.zeros((1, 1, 2, 2)), 3)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.im2col(np.zeros((1, 1, 2, 2)), (1, 4))


def test_non_4d_input():
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input .* shape \(3, 5, 5\)"):
        F.conv2d(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="4-D weight"):
        F.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="pooling: expected a 4-D input"):
        F.pooling(np.zeros((5, 5)), 2)


@pytest.mark.parametrize("fn", [
    lambda s: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=s),
    lambda s: F.deconv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=s),
    lambda s: F.pooling(np.zeros((1, 1, 5, 5)), 2, stride=s),
    lambda s: F.average_pooling(np.zeros((1, 1, 5, 5)), 2, stride=s),
    lambda s: F.im2col(np.zeros((1, 1, 5, 5)), 2, stride=s),
])
@pytest.mark.parametrize("stride", [0, (1, 0), -1])
def test_stride_must_be_positive(fn, stride):
    with pytest.raises(ValueError, match="stride must be positive"):
        fn(stride)


def test_other_bad_arguments():
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError, match="pad must be non-negative"):
        F.conv2d(x, np.zeros((1, 2, 3, 3)), pad=-1)
    with pytest.raises(ValueError, match=r"stride must be an int or a pair of ints"):
        F.conv2d(x, np.zeros((1, 2, 3, 3)), stride=1.5)
    with pytest.raises(ValueError, match=r"bias b must have shape \(3,\)"):
        F.conv2d(x, np.zeros((3, 2, 3, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"output size .* does not match the input size"):
        F.deconv2d(x, np.zeros((2, 1, 3, 3)), stride=2, outsize=(20, 20))
    with pytest.raises(ValueError, match=r"pad .* must be smaller than kernel_size"):
        F.pooling(x, 2, pad=2)
    with pytest.raises(ValueError, match="do not fit input_shape"):
        F.col2im(np.zeros((10, 18)), (1, 2, 5, 5), 3)


def test_conv_outsize_helpers_agree_with_the_ops():
    y = F.conv2d(np.zeros((1, 1, 11, 9)), np.zeros((1, 1, 4, 3)), stride=(3, 2), pad=(1, 2))
    assert y.shape[2:] == (get_conv_outsize(11, 4, 3, 1), get_conv_outsize(9, 3, 2, 2))


def test_work_split_over_threads_gives_the_same_results(monkeypatch):
    rng = np.random.default_rng(16)
    x0 = rng.uniform(-1, 1, (5, 3, 9, 8)).astype(np.float32)
    W0 = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    b0 = rng.uniform(-1, 1, 4).astype(np.float32)

    def run():
        x, W, b = Variable(x0.copy()), Variable(W0.copy()), Variable(b0.copy())
        h = F.conv2d(x, W, b, 1, 1)
        h = F.pooling(h, 2, 2) + F.pooling(h, 3, 2, 1)[:, :, :4, :4]
        y = F.sum(F.deconv2d(h, W, None, 2, 0, outsize=(10, 10)) ** 2)
        y.backward()
        return [a.copy() for a in (y.data, x.grad.data, W.grad.data, b.grad.data)]

    try:
        parallel.set_num_threads(1)
        serial = run()
        parallel.set_num_threads(3)
        monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0)  # split even tiny arrays
        threaded = run()
    finally:
        parallel.set_num_threads(None)
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


# =============================================================================
# The wide stride-1 transposed convolution and the sliced long products (CPU paths)
# =============================================================================
def _count_wide_calls(monkeypatch):
    calls = []
    wide = conv_module._deconv2d_wide

    def spy(*args):
        calls.append(args[0].shape)
        return wide(*args)

    monkeypatch.setattr(conv_module, "_deconv2d_wide", spy)
    return calls


def _deconv_both_ways(monkeypatch, x, Wt, b, p, slice_bytes):
    """deconv2d at stride 1 through the plain path, then through the wide one."""
    calls = _count_wide_calls(monkeypatch)
    monkeypatch.setattr(conv_module, "_WIDE_MAX_EXCESS", -1.0)  # never wide
    plain = F.deconv2d(x, Wt, b, 1, p).data
    assert not calls
    monkeypatch.setattr(conv_module, "_WIDE_MAX_EXCESS", float("inf"))  # always wide
    monkeypatch.setattr(conv_module, "_WIDE_SLICE_BYTES", slice_bytes)
    wide = F.deconv2d(x, Wt, b, 1, p).data
    assert calls == [x.shape]
    return plain, wide


@pytest.mark.parametrize("slice_bytes", [1, 4 << 20])  # an image per slice; one slice
@pytest.mark.parametrize(("N", "C", "OC", "H", "W", "k", "p"), [
    (3, 4, 2, 6, 5, (3, 3), 1),
    (1, 2, 3, 7, 7, (3, 3), 0),
    (2, 3, 4, 5, 8, (2, 4), (1, 2)),
    (4, 1, 2, 4, 4, (5, 5), 2),
    (2, 2, 3, 6, 3, (1, 3), (0, 1)),
    (2, 2, 1, 3, 6, (3, 1), (1, 0)),
])
def test_wide_stride1_deconv2d_equals_the_plain_path_and_the_loops(
        monkeypatch, N, C, OC, H, W, k, p, slice_bytes):
    rng = np.random.default_rng(20)
    x, Wt, b = _rand(rng, N, C, H, W), _rand(rng, C, OC, *k), _rand(rng, OC)
    plain, wide = _deconv_both_ways(monkeypatch, x, Wt, b, p, slice_bytes)
    np.testing.assert_allclose(wide, plain, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(wide, ref_deconv2d(x, Wt, b, 1, p), rtol=1e-12, atol=1e-12)
    # the default (channel-major) path keeps the GEMM's channel-major order
    assert wide.transpose(1, 0, 2, 3).flags.c_contiguous
    # float32 stays float32; no bias; mixed precision takes the wider dtype as before
    x32, W32 = x.astype(np.float32), Wt.astype(np.float32)
    plain32, wide32 = _deconv_both_ways(monkeypatch, x32, W32, None, p, slice_bytes)
    assert wide32.dtype == plain32.dtype == np.float32
    np.testing.assert_allclose(wide32, plain32, rtol=1e-5, atol=1e-5)
    plain_mix, wide_mix = _deconv_both_ways(monkeypatch, x32, Wt, b.astype(np.float32), p,
                                            slice_bytes)
    assert wide_mix.dtype == plain_mix.dtype
    np.testing.assert_allclose(wide_mix, plain_mix, rtol=1e-6, atol=1e-6)


def test_wide_path_gives_conv2d_the_same_input_gradient_to_second_order(monkeypatch):
    rng = np.random.default_rng(21)
    x0, W0 = _rand(rng, 3, 4, 7, 6), _rand(rng, 5, 4, 3, 3)

    def grads():
        x, W = Variable(x0.copy()), Variable(W0.copy())
        F.sum(F.conv2d(x, W, None, 1, 1) ** 2).backward(create_graph=True)
        gx = x.grad
        W.cleargrad()
        F.sum(gx * gx).backward()  # second order through the transposed convolution
        return gx.data.copy(), W.grad.data.copy()

    calls = _count_wide_calls(monkeypatch)
    monkeypatch.setattr(conv_module, "_WIDE_MAX_EXCESS", -1.0)
    plain = grads()
    monkeypatch.setattr(conv_module, "_WIDE_MAX_EXCESS", float("inf"))
    monkeypatch.setattr(conv_module, "_WIDE_SLICE_BYTES", 1)
    wide = grads()
    assert calls  # the input gradient went through the wide path
    for a, b in zip(plain, wide):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_wide_path_is_taken_only_where_it_applies():
    pays = conv_module._wide_deconv_pays
    assert pays(np, (100, 32, 14, 14), (3, 3), (1, 1))  # the MNIST CNN's second layer
    assert not pays(np, (100, 32, 14, 14), (3, 3), (2, 2))  # stride 2
    assert not pays(np, (100, 32, 14, 14), (1, 1), (1, 1))  # nothing to fold
    assert not pays(np, (8, 512, 14, 14), (3, 3), (1, 1))  # the GEMM dominates
    assert pays(np, (8, 64, 224, 224), (3, 3), (1, 1))  # large images: little excess
    assert not pays(object(), (100, 32, 14, 14), (3, 3), (1, 1))  # not NumPy (CuPy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("M", "N", "K", "work"), [(9, 16, 5000, 1000), (3, 2, 7, 1),
                                                    (5, 4, 999, 64), (9, 16, 100, 1 << 19)])
def test_long_product_in_slices_equals_one_product(monkeypatch, dtype, M, N, K, work):
    rng = np.random.default_rng(22)
    a, b = _rand(rng, M, K, dtype=dtype), _rand(rng, N, K, dtype=dtype)
    monkeypatch.setattr(conv_module, "_SLICE_WORK", work)
    out = conv_module._long_product(np, a, b)
    assert out.dtype == dtype and out.shape == (M, N)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64).T,
                               rtol=tol, atol=tol)
    # mixed precision: the product's dtype, as a @ b.T gives it
    mixed = conv_module._long_product(np, a.astype(np.float32), b.astype(np.float64))
    assert mixed.dtype == np.float64


def test_first_layer_weight_gradient_in_slices_matches_the_loops(monkeypatch):
    rng = np.random.default_rng(23)
    x = rng.uniform(0, 1, (6, 1, 12, 12)).astype(np.float32)
    W0 = rng.uniform(-1, 1, (8, 1, 3, 3)).astype(np.float32)
    r = rng.uniform(-1, 1, (6, 8, 12, 12)).astype(np.float32)
    monkeypatch.setattr(conv_module, "_SLICE_WORK", 500)  # several slices of K = 864
    W = Variable(W0.copy())
    F.sum(F.conv2d(x, W, None, 1, 1) * r).backward()
    assert W.grad.dtype == np.float32
    # d sum(conv(x, W) * r) / dW[o, c, k, l] = sum over n, i, j of r[n, o, i, j] x_pad[...]
    expected = np.einsum("noij,nklij->okl", r.astype(np.float64),
                         ref_im2col(x.astype(np.float64), 3, 1, 1, False)[:, 0])
    np.testing.assert_allclose(W.grad.data[:, 0], expected, rtol=1e-4, atol=1e-4)


def test_weight_gradient_without_the_kept_im2col_matrix(monkeypatch):
    """Above KEEP_COL_BYTES the forward does not keep im2col for the backward (memory of
    deep networks): the backward rebuilds it, with the same gradients, bias included."""
    from dezero.functions import conv as conv_functions

    rng = np.random.default_rng(30)
    x0, W0, b0 = _rand(rng, 3, 2, 6, 5), _rand(rng, 4, 2, 3, 3), _rand(rng, 4)

    def grads():
        x, W, b = Variable(x0.copy()), Variable(W0.copy()), Variable(b0.copy())
        y = F.conv2d(x, W, b, 1, 1)
        kept = y.creator._col is not None
        F.sum(y * y).backward()
        return kept, [v.grad.data.copy() for v in (x, W, b)]

    kept, want = grads()
    assert kept
    monkeypatch.setattr(conv_functions, "KEEP_COL_BYTES", 0)
    kept, got = grads()
    assert not kept
    for a, c in zip(got, want):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not conv_module._conv_numba.AVAILABLE, reason="needs numba (extra fast)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channel_major", [False, True])
def test_compiled_2x2_pooling_equals_the_numpy_kernels_bit_for_bit(dtype, channel_major):
    rng = np.random.default_rng(31)
    x = rng.integers(-3, 3, (3, 4, 6, 8)).astype(dtype)  # many ties
    x[0, 0, 0, 1] = np.nan  # NaN in a window's second column, and in a first one
    x[1, 2, 3, 2] = np.nan
    if channel_major:
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    gy = rng.uniform(-1, 1, (3, 4, 3, 4)).astype(dtype)
    y_np, masks_np = conv_module._pool2x2(np, x, True)
    y_nb, masks_nb = conv_module._conv_numba.pool2x2(x, True)
    np.testing.assert_array_equal(y_nb, y_np)  # NaN where NumPy has NaN
    for a, b in zip(masks_nb, masks_np):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)
    with conv_module.use_path("channel_major"):
        gx_np = conv_module._pool2x2_scatter(np, gy, masks_np)
    gx_nb = conv_module._conv_numba.pool2x2_scatter(gy, masks_nb)
    np.testing.assert_array_equal(gx_nb, gx_np)
    assert conv_module._cn_order(gx_nb) == channel_major == conv_module._cn_order(y_nb)
