"""embed_id and EmbedID: what the op table (tests/opdb/embedding.py) cannot say."""

from __future__ import annotations

import numpy as np
import pytest

import dezero.functions as F
import dezero.layers as L
from dezero import Variable, cuda, testing


def test_out_of_range_id_names_the_id_and_the_vocabulary_size():
    W = np.zeros((5, 3))
    with pytest.raises(IndexError, match=r"index 7 is out of range for a vocabulary of size 5"):
        F.embed_id(np.array([1, 7, 2]), W)
    with pytest.raises(IndexError, match=r"index -1 is out of range for a vocabulary of size 5"):
        F.embed_id(np.array([[0, -1]]), W)
    with pytest.raises(IndexError, match=r"index 5 .* size 5 \(valid ids are 0\.\.4"):
        L.EmbedID(5, 3)(np.array([5]))


def test_non_integer_ids_are_rejected():
    with pytest.raises(TypeError, match=r"ids must be an integer array, got dtype float64"):
        F.embed_id(np.array([1.0, 2.0]), np.zeros((3, 2)))
    with pytest.raises(TypeError, match=r"got dtype bool"):
        F.embed_id(np.array([True, False]), np.zeros((3, 2)))


def test_repeated_ids_accumulate_in_the_gradient():
    W = Variable(np.arange(12.0).reshape(4, 3))
    ids = np.array([[2, 0], [2, 2]])
    gy = np.random.default_rng(0).normal(size=(2, 2, 3))
    F.sum(F.embed_id(ids, W) * gy).backward()
    expected = np.zeros((4, 3))
    np.add.at(expected, ids, gy)
    np.testing.assert_allclose(W.grad.data, expected)
    np.testing.assert_array_equal(W.grad.data[[1, 3]], 0)


def test_scatter_add_gradient_is_itself_differentiable():
    """f(W) = sum(W[ids]^3): the second derivative runs through the scatter-add's backward."""
    ids = np.array([1, 1, 3, 0])
    W = np.random.default_rng(1).uniform(-1, 1, size=(4, 2))
    testing.check_double_backward(lambda w: F.embed_id(ids, w) ** 3, [W], name="embed_id^3")
    # and explicitly: d/dW sum(gW * M) with gW = scatter(3 W[ids]^2) is scatter(6 W[ids] M[ids])
    Wv = Variable(W.copy())
    F.sum(F.embed_id(ids, Wv) ** 3).backward(create_graph=True)
    gW = Wv.grad
    Wv.cleargrad()
    M = np.random.default_rng(2).normal(size=W.shape)
    F.sum(gW * M).backward()
    expected = np.zeros_like(W)
    np.add.at(expected, ids, 6 * W[ids] * M[ids])
    np.testing.assert_allclose(Wv.grad.data, expected, atol=1e-12)


def test_ids_as_a_variable_and_no_gradient_for_them():
    ids = Variable(np.array([0, 2]))
    W = Variable(np.ones((3, 2), dtype=np.float32))
    y = F.embed_id(ids, W)
    F.sum(y).backward()
    assert ids.grad is None
    assert W.grad.dtype == np.float32


def test_embed_id_layer():
    emb = L.EmbedID(7, 4)
    assert [name for name, _ in emb.named_params()] == ["W"]
    assert emb.W.shape == (7, 4) and emb.W.dtype == np.float32
    y = emb(np.array([[6, 0, 6]]))
    assert y.shape == (1, 3, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(y.data[0, 0], emb.W.data[6])
    F.sum(y).backward()
    np.testing.assert_array_equal(emb.W.grad.data[6], 2)
    np.testing.assert_array_equal(emb.W.grad.data[1], 0)


def test_embed_id_on_both_devices(xp):
    W = Variable(xp.asarray(np.arange(8.0, dtype=np.float32).reshape(4, 2)))
    ids = xp.asarray(np.array([3, 3, 1]))
    y = F.embed_id(ids, W)
    F.sum(y * y).backward()
    expected = np.zeros((4, 2), dtype=np.float32)
    np.add.at(expected, [3, 3, 1], 2 * np.arange(8.0, dtype=np.float32).reshape(4, 2)[[3, 3, 1]])
    assert cuda.get_array_module(W.grad.data) is xp
    np.testing.assert_allclose(cuda.as_numpy(W.grad.data), expected)
    with pytest.raises(IndexError, match="index 4"):
        F.embed_id(xp.asarray(np.array([4])), W)
