"""Linear algebra: errors, fused linear vs its composite, einsum semantics and speed paths."""

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable, cuda
from dezero.functions import linalg


def _np(v):
    return cuda.as_numpy(v.data if isinstance(v, Variable) else v)


# --- errors ----------------------------------------------------------------------
def test_matmul_incompatible_shapes_show_both():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2x3\) and \(4x5\) are incompatible"):
        F.matmul(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\(2x3\) and \(4x5\)"):
        Variable(np.zeros((2, 3))) @ np.zeros((4, 5))


def test_linear_incompatible_shapes_show_both():
    with pytest.raises(ValueError, match=r"linear: shapes \(2x3\) and \(4x5\) are incompatible"):
        F.linear(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"W must be 2-D \(in, out\), got shape \(3x4x5\)"):
        F.linear(np.zeros((2, 3)), np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"bias of shape \(3,\) does not fit an output of "
                                         r"shape \(N, 5\)"):
        F.linear(np.zeros((2, 4)), np.zeros((4, 5)), np.zeros(3))


def test_einsum_errors_name_terms_and_shapes():
    with pytest.raises(ValueError, match=r"term 'ij' names 2 axes, but the operand has shape "
                                         r"\(2, 3, 4\)"):
        F.einsum("ij,jk->ik", np.zeros((2, 3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"subscript 'j' has sizes 3 and 4"):
        F.einsum("ij,jk->ik", np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="name 2 operands, got 1"):
        F.einsum("ij,jk->ik", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="output subscript 'z' appears in no input"):
        F.einsum("ij->z", np.zeros((2, 3)))


# --- fused linear vs composite -----------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_matches_linear_simple(xp, dtype):
    rng = np.random.default_rng(0)
    data = [xp.asarray(rng.standard_normal(s).astype(dtype)) for s in ((5, 4), (4, 3), (3,))]
    v1 = [Variable(d.copy()) for d in data]
    v2 = [Variable(d.copy()) for d in data]
    y1, y2 = F.linear(*v1), F.linear_simple(*v2)
    assert y1.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(_np(y1), _np(y2), rtol=tol, atol=tol)
    gy = xp.asarray(rng.standard_normal((5, 3)).astype(dtype))
    F.sum(y1 * gy).backward()
    F.sum(y2 * gy).backward()
    for a, b in zip(v1, v2):
        assert a.grad.dtype == dtype
        np.testing.assert_allclose(_np(a.grad), _np(b.grad), rtol=tol, atol=tol)


def test_linear_matches_composite_on_large_values():
    x = np.full((2, 3), 1e150)
    W = np.full((3, 2), 1e150)
    y1, y2 = F.linear(x, W, np.ones(2)), F.linear_simple(x, W, np.ones(2))
    np.testing.assert_array_equal(y1.data, y2.data)  # both 3e300: the fusion adds no error


def test_linear_skips_the_gradient_of_a_data_batch():
    x = np.ones((4, 3), dtype=np.float32)
    W = Variable(np.ones((3, 2), dtype=np.float32))
    b = Variable(np.zeros(2, dtype=np.float32))
    y = F.linear(x, W, b)
    f = y.creator
    assert f.inputs[0].requires_grad is False
    F.sum(y).backward()
    assert f.inputs[0].grad is None  # nobody can read it, so it was never computed
    np.testing.assert_array_equal(W.grad.data, np.full((3, 2), 4.0))
    np.testing.assert_array_equal(b.grad.data, [4.0, 4.0])


def test_matmul_skips_the_gradient_of_a_constant_operand():
    W = Variable(np.ones((3, 2)))
    y = F.matmul(np.ones((4, 3)), W)
    F.sum(y).backward()
    assert y.creator.inputs[0].grad is None
    np.testing.assert_array_equal(W.grad.data, np.full((3, 2), 4.0))


def test_linear_keeps_the_bias_dtype_of_a_float32_graph():
    x = Variable(np.ones((2, 3), dtype=np.float32))
    W = Variable(np.ones((3, 4), dtype=np.float32))
    y = F.linear(x, W, np.float64(0.5) * np.ones(4, dtype=np.float32))
    assert y.dtype == np.float32


def test_linear_on_3d_input_flattens_the_batch():
    x = Variable(np.random.default_rng(0).random((2, 5, 3)))
    W = Variable(np.random.default_rng(0).random((3, 4)))
    y = F.linear(x, W)
    assert y.shape == (2, 5, 4)
    np.testing.assert_allclose(y.data, x.data @ W.data)


def test_linear_forward_adds_the_bias_without_a_second_array():
    # one fused op in the graph: the output's creator is Linear itself
    y = F.linear(Variable(np.ones((2, 3))), Variable(np.ones((3, 4))), Variable(np.ones(4)))
    assert type(y.creator).__name__ == "Linear"
    assert len(y.creator.inputs) == 3


# --- matmul ----------------------------------------------------------------------
def test_ndarray_matmul_variable_uses_the_reflected_operator():
    W = Variable(np.eye(3) * 2)
    y = np.ones((2, 3)) @ W
    assert isinstance(y, Variable)
    np.testing.assert_array_equal(y.data, np.full((2, 3), 2.0))
    y.backward()
    np.testing.assert_array_equal(W.grad.data, np.full((3, 3), 2.0))


def test_variable_dot_and_matmul_methods():
    x = Variable(np.arange(6.0).reshape(2, 3))
    W = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(x.dot(W).data, x.data @ W)
    np.testing.assert_array_equal(x.matmul(W).data, x.data @ W)


# --- einsum ----------------------------------------------------------------------
def test_einsum_attention_matches_matmul_composite(xp):
    rng = np.random.default_rng(0)
    q, k, v = (xp.asarray(rng.standard_normal((2, 3, 4, 5)).astype(np.float32))
               for _ in range(3))
    vq1, vk1, vv1 = Variable(q), Variable(k), Variable(v)
    vq2, vk2, vv2 = Variable(q), Variable(k), Variable(v)
    s1 = F.einsum("bhqd,bhkd->bhqk", vq1, vk1)
    o1 = F.einsum("bhqk,bhkd->bhqd", s1, vv1)
    s2 = F.matmul(vq2, F.transpose(vk2, (0, 1, 3, 2)))
    o2 = F.matmul(s2, vv2)
    assert o1.dtype == np.float32
    np.testing.assert_allclose(_np(o1), _np(o2), rtol=1e-5, atol=1e-5)
    F.sum(o1 * o1).backward()
    F.sum(o2 * o2).backward()
    for a, b in ((vq1, vq2), (vk1, vk2), (vv1, vv2)):
        assert a.grad.dtype == np.float32
        np.testing.assert_allclose(_np(a.grad), _np(b.grad), rtol=1e-4, atol=1e-4)


def test_einsum_two_operand_contractions_run_as_matmul():
    assert linalg._plan2("bhqd", "bhkd", "bhqk", (2, 3, 4, 5), (2, 3, 6, 5)) is not None
    assert linalg._plan2("bij", "bjk", "bik", (2, 3, 4), (2, 4, 5)) is not None
    assert linalg._plan2("ii", "ij", "ij", (3, 3), (3, 2)) is None  # diagonal: einsum


def test_einsum_diagonal_gradient_is_masked():
    x = Variable(np.arange(9.0).reshape(3, 3))
    y = F.einsum("ii->i", x)
    np.testing.assert_array_equal(y.data, [0.0, 4.0, 8.0])
    F.sum(y * np.array([1.0, 2.0, 3.0])).backward()
    np.testing.assert_array_equal(x.grad.data, np.diag([1.0, 2.0, 3.0]))


def test_einsum_implicit_output_and_ellipsis_follow_numpy():
    a, b = np.random.default_rng(0).random((2, 3)), np.random.default_rng(0).random((3, 4))
    np.testing.assert_allclose(F.einsum("ij,jk", a, b).data, np.einsum("ij,jk", a, b))
    np.testing.assert_allclose(F.einsum("ba", a).data, np.einsum("ba", a))
    c = np.random.default_rng(0).random((5, 2, 3))
    np.testing.assert_allclose(F.einsum("...ij,jk->...ik", c, b).data,
                               np.einsum("...ij,jk->...ik", c, b))
    np.testing.assert_allclose(F.einsum("i...->...", c).data, np.einsum("i...->...", c))


def test_einsum_third_order():
    # y = sum_i (x_i x_i x_i) as einsum("i,i,i->", x, x, x): d3y/dx_i^3 = 6
    x = Variable(np.array([0.5, -1.0]))
    y = F.einsum("i,i,i->", x, x, x)
    y.backward(create_graph=True)
    g1 = x.grad
    x.cleargrad()
    F.sum(g1).backward(create_graph=True)
    g2 = x.grad
    x.cleargrad()
    F.sum(g2).backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 6.0])


@pytest.mark.parametrize("create_graph", [False, True])
def test_linear_mixed_precision_gradients_take_each_input_dtype(create_graph):
    x = Variable(np.ones((2, 3), dtype=np.float64))
    W = Variable(np.ones((3, 4), dtype=np.float32))
    b = Variable(np.zeros(4, dtype=np.float32))
    y = F.linear(x, W, b)
    assert y.dtype == np.float64
    F.sum(y).backward(create_graph=create_graph)
    assert x.grad.dtype == np.float64
    assert W.grad.dtype == np.float32 and b.grad.dtype == np.float32
    np.testing.assert_array_equal(W.grad.data, np.full((3, 4), 2.0))
