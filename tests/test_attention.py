"""Attention: the fused scaled_dot_product_attention against its composite twin and closed
cases; MultiHeadAttention, TransformerBlock and LayerNorm. The op table (tests/opdb/
attention.py) checks first and second order gradients against central differences."""

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import Variable
from tests.opdb.attention import attention_composite, ref_attention


def _qkv(rng, *shape, dtype=np.float64):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(3)]


def _grads(fn, arrays, create_graph=False):
    """Values and gradients of sum(y * w) (w fixed) w.r.t. every input; with
    ``create_graph`` also the gradients of sum(grad^2) (second order)."""
    xs = [Variable(a.copy()) for a in arrays]
    y = fn(*xs)
    w = np.random.default_rng(7).standard_normal(y.shape)
    loss = F.sum(y * w)
    loss.backward(create_graph=create_graph)
    first = [x.grad.data.copy() for x in xs]
    second = None
    if create_graph:
        gs = [x.grad for x in xs]
        for x in xs:
            x.cleargrad()
        total = F.sum(gs[0] * gs[0]) + F.sum(gs[1] * gs[1]) + F.sum(gs[2] * gs[2])
        total.backward()
        second = [x.grad.data for x in xs]
    return y.data, first, second


@pytest.mark.parametrize("kw", [
    {}, {"causal": True}, {"mask": "random"}, {"mask": "random", "causal": True},
    {"mask": "empty-row"},
], ids=["plain", "causal", "mask", "mask+causal", "empty-row"])
def test_fused_matches_composite_to_second_order(kw):
    rng = np.random.default_rng(0)
    kw = dict(kw)
    if "mask" in kw:
        m = rng.uniform(size=(6, 6)) > 0.5
        m[:, 0] = True
        if kw["mask"] == "empty-row":
            m[3] = False
        kw["mask"] = m
    arrays = _qkv(rng, 2, 3, 6, 4)
    y1, g1, h1 = _grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw),
                        arrays, create_graph=True)
    y2, g2, h2 = _grads(lambda q, k, v: attention_composite(q, k, v, **kw), arrays,
                        create_graph=True)
    np.testing.assert_allclose(y1, y2, atol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, atol=1e-11)
    for a, b in zip(h1, h2):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_causal_equals_an_explicit_lower_triangular_mask():
    rng = np.random.default_rng(1)
    arrays = _qkv(rng, 2, 5, 3)
    y1, g1, _ = _grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True),
                       arrays)
    tril = np.tril(np.ones((5, 5), dtype=bool))
    y2, g2, _ = _grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask=tril),
                       arrays)
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, atol=1e-14)
    # the first query sees only the first value; the last one attends to all
    np.testing.assert_allclose(y1[:, 0], arrays[2][:, 0], atol=1e-14)


def test_uniform_mask_and_equal_scores_average_the_values():
    rng = np.random.default_rng(2)
    q, k, v = _qkv(rng, 2, 4, 3)
    all_true = np.ones((4, 4), dtype=bool)
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v, mask=all_true).data,
                               F.scaled_dot_product_attention(q, k, v).data, atol=1e-15)
    # equal scores (zero queries): every query gets the mean of the values
    y = F.scaled_dot_product_attention(np.zeros_like(q), k, v)
    np.testing.assert_allclose(y.data, np.broadcast_to(v.mean(axis=1, keepdims=True), y.shape),
                               atol=1e-14)
    # a mask keeping keys {0, 2}: the mean of those two values
    keep = np.array([True, False, True, False])
    y = F.scaled_dot_product_attention(np.zeros_like(q), k, v, mask=keep)
    np.testing.assert_allclose(y.data[:, 1], (v[:, 0] + v[:, 2]) / 2, atol=1e-14)


def test_one_token_sequences_return_the_value():
    rng = np.random.default_rng(3)
    q, k, v = _qkv(rng, 3, 1, 4)
    for causal in (False, True):
        y = F.scaled_dot_product_attention(q, k, v, causal=causal)
        np.testing.assert_allclose(y.data, v, atol=1e-15)


def test_fully_masked_row_gives_zeros_and_zero_gradients():
    rng = np.random.default_rng(4)
    q, k, v = _qkv(rng, 2, 4, 3)
    mask = np.ones((4, 4), dtype=bool)
    mask[1] = False
    xs = [Variable(a) for a in (q, k, v)]
    y = F.scaled_dot_product_attention(*xs, mask=mask)
    assert np.isfinite(y.data).all()
    np.testing.assert_array_equal(y.data[:, 1], 0.0)
    F.sum(y).backward()
    assert all(np.isfinite(x.grad.data).all() for x in xs)
    np.testing.assert_array_equal(xs[0].grad.data[:, 1], 0.0)  # that query has no effect
    np.testing.assert_allclose(y.data, ref_attention(q, k, v, mask=mask), atol=1e-14)


def test_extreme_scores_are_stable_and_float32_stays_float32():
    q = np.full((1, 3, 2), 300.0, dtype=np.float32)
    k = np.array([[[300.0, 300.0], [-300.0, -300.0], [0.0, 0.0]]], dtype=np.float32)
    v = np.eye(3, dtype=np.float32)[None]
    xs = [Variable(a) for a in (q, k, v)]
    y = F.scaled_dot_product_attention(*xs)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, np.broadcast_to([1.0, 0.0, 0.0], (1, 3, 3)), atol=1e-6)
    F.sum(y * y).backward()
    for x in xs:
        assert x.grad.dtype == np.float32 and np.isfinite(x.grad.data).all()


def test_backward_keeps_one_copy_of_the_probabilities():
    rng = np.random.default_rng(5)
    q, k, v = (Variable(a) for a in _qkv(rng, 2, 5, 3, dtype=np.float32))
    y = F.scaled_dot_product_attention(q, k, v, causal=True)
    f = y.creator
    square = [name for name, a in vars(f).items()
              if isinstance(a, np.ndarray) and a.shape[-2:] == (5, 5) and a.dtype.kind == "f"]
    assert square == ["p"]  # the probabilities, once; no scores, no second copy
    np.testing.assert_allclose(f.p.sum(axis=-1), 1.0, rtol=1e-6)


def test_dropout_uses_one_mask_for_forward_and_backward():
    rng = np.random.default_rng(6)
    arrays = _qkv(rng, 2, 5, 3)
    xs = [Variable(a.copy()) for a in arrays]
    np.random.seed(3)  # noqa: NPY002
    y = F.scaled_dot_product_attention(*xs, causal=True, dropout_ratio=0.5)
    f = y.creator
    keep = f.keep
    assert set(np.unique(keep)) <= {0.0, 2.0} and (keep == 0).any()
    np.testing.assert_allclose(y.data, (f.p * keep) @ arrays[2], atol=1e-14)
    w = rng.standard_normal(y.shape)
    F.sum(y * w).backward()

    # the composite with the same keep mask gives the same gradients
    ys = [Variable(a.copy()) for a in arrays]
    s = F.matmul(ys[0], F.transpose(ys[1], (0, 2, 1))) * (1 / np.sqrt(3))
    s = F.where(np.tri(5, dtype=bool), s, -np.inf)
    y2 = F.matmul(F.softmax(s, axis=-1) * keep, ys[2])
    F.sum(y2 * w).backward()
    for a, b in zip(xs, ys):
        np.testing.assert_allclose(a.grad.data, b.grad.data, atol=1e-12)
    # test mode: no dropout at all
    with dezero.test_mode():
        y3 = F.scaled_dot_product_attention(*arrays, causal=True, dropout_ratio=0.5)
    np.testing.assert_allclose(y3.data, ref_attention(*arrays, causal=True), atol=1e-14)


def test_attention_errors_name_the_problem():
    q = k = v = np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match="mask must be a bool array"):
        F.scaled_dot_product_attention(q, k, v, mask=np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\) does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, mask=np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="share the feature size"):
        F.scaled_dot_product_attention(q, np.zeros((2, 4, 5)), v)
    with pytest.raises(ValueError, match=r"dropout_ratio must be in \[0, 1\)"):
        F.scaled_dot_product_attention(q, k, v, dropout_ratio=1.0)
    with pytest.raises(ValueError, match="at least 2-D"):
        F.scaled_dot_product_attention(np.zeros(3), k, v)


# -----------------------------------------------------------------------------
# Layers
# -----------------------------------------------------------------------------
def test_multi_head_attention_equals_per_head_attention():
    np.random.seed(0)  # noqa: NPY002
    mha = L.MultiHeadAttention(8, 2)
    x = np.random.default_rng(0).standard_normal((3, 5, 8)).astype(np.float32)
    y = mha(x)
    # by hand: project, attend per head, join, project
    qkv = x @ mha.qkv.W.data + mha.qkv.b.data
    heads = []
    for h in range(2):
        q, k, v = (qkv[..., i * 8 + h * 4:i * 8 + (h + 1) * 4] for i in range(3))
        heads.append(ref_attention(q.astype(np.float64), k.astype(np.float64),
                                   v.astype(np.float64)))
    expected = np.concatenate(heads, axis=-1) @ mha.proj.W.data + mha.proj.b.data
    assert y.dtype == np.float32 and y.shape == (3, 5, 8)
    np.testing.assert_allclose(y.data, expected, atol=1e-5)


def test_multi_head_attention_permuting_the_batch_permutes_the_output():
    mha = L.MultiHeadAttention(16, 4, causal=True)
    x = np.random.default_rng(1).standard_normal((5, 7, 16)).astype(np.float32)
    perm = np.array([3, 0, 4, 1, 2])
    np.testing.assert_allclose(mha(x[perm]).data, mha(x).data[perm], atol=1e-6)


@pytest.mark.parametrize("layer", ["mha", "block"])
def test_causality_future_tokens_do_not_change_earlier_outputs(layer):
    if layer == "mha":
        net = L.MultiHeadAttention(16, 4, causal=True)
    else:
        net = L.TransformerBlock(16, 4)  # causal by default
    x = np.random.default_rng(2).standard_normal((2, 6, 16)).astype(np.float32)
    x2 = x.copy()
    x2[:, 4:] = 100.0  # change the future
    y, y2 = net(x).data, net(x2).data
    np.testing.assert_allclose(y[:, :4], y2[:, :4], atol=1e-6)
    assert not np.allclose(y[:, 4:], y2[:, 4:])
    if layer == "mha":  # without causal, the past sees the future
        full = L.MultiHeadAttention(16, 4)
        assert not np.allclose(full(x).data[:, :4], full(x2).data[:, :4])


def test_transformer_block_structure_and_gradients():
    block = L.TransformerBlock(8, 2)
    names = [n for n, _ in block.named_params()]
    assert names == ["ln1/gamma", "ln1/beta", "attn/qkv/W", "attn/qkv/b", "attn/proj/W",
                     "attn/proj/b", "ln2/gamma", "ln2/beta", "fc/W", "fc/b", "proj/W", "proj/b"]
    assert block.fc.W.shape == (8, 32)
    x = Variable(np.random.default_rng(3).standard_normal((2, 3, 8)).astype(np.float32))
    y = block(x)
    F.sum(y * y).backward()
    assert x.grad.dtype == np.float32
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in block.params())


def test_layer_errors():
    with pytest.raises(ValueError, match=r"n_embd \(10\) must be a positive multiple of "
                                         r"n_head \(4\)"):
        L.MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match=r"expected an input of shape \(N, T, 8\)"):
        L.MultiHeadAttention(8, 2)(np.zeros((2, 3, 6), dtype=np.float32))


def test_layer_norm_layer_matches_the_composite_formula():
    ln = L.LayerNorm()
    x = np.random.default_rng(4).standard_normal((2, 3, 5)).astype(np.float32)
    ln(x)
    ln.gamma.data[...] = np.arange(5, dtype=np.float32)
    ln.beta.data[...] = 1.0
    xv = Variable(x)
    y = ln(xv)
    mu = x.mean(-1, keepdims=True)
    expected = (x - mu) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * ln.gamma.data + 1.0
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, expected, atol=1e-5)
    F.sum(y * y).backward()
    assert xv.grad.dtype == np.float32 and ln.gamma.grad.dtype == np.float32
