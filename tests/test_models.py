"""Model, Sequential, MLP: composition, parameter names, plotting, saving."""

import shutil

import numpy as np
import pytest

import dezero.functions as F
import dezero.layers as L
from dezero import Variable
from dezero.models import MLP, Model, Sequential


class TwoLayerNet(Model):
    """The book's step-45 model, unchanged."""

    def __init__(self, hidden_size, out_size):
        super().__init__()
        self.l1 = L.Linear(hidden_size)
        self.l2 = L.Linear(out_size)

    def forward(self, x):
        y = F.sigmoid(self.l1(x))
        return self.l2(y)


def test_book_two_layer_net():
    x = Variable(np.random.default_rng(0).standard_normal((5, 10)))
    model = TwoLayerNet(100, 10)
    y = model(x)
    assert y.shape == (5, 10)
    assert [n for n, _ in model.named_params()] == ["l1/W", "l1/b", "l2/W", "l2/b"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz dot")
def test_model_plot_writes_a_png(tmp_path):
    model = TwoLayerNet(4, 2)
    x = Variable(np.ones((3, 5), dtype=np.float32), name="x")
    out = tmp_path / "sub" / "model.png"
    model.plot(x, to_file=str(out))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_mlp_structure_and_names():
    model = MLP((10, 20, 3))
    y = model(np.zeros((4, 7), dtype=np.float32))
    assert y.shape == (4, 3) and y.dtype == np.float32
    assert [n for n, _ in model.named_params()] == [
        "l0/W", "l0/b", "l1/W", "l1/b", "l2/W", "l2/b"
    ]
    assert [layer.W.shape for layer in model.layers] == [(7, 10), (10, 20), (20, 3)]


def test_mlp_activation_is_applied_between_layers_only():
    model = MLP((3, 2), activation=F.relu)
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    y = model(x)
    l0, l1 = model.layers
    h = np.maximum(x @ l0.W.data + l0.b.data, 0)
    np.testing.assert_allclose(y.data, h @ l1.W.data + l1.b.data, rtol=1e-6)


def test_mlp_trains_through_backward():
    model = MLP((5, 1))
    x = np.random.default_rng(2).standard_normal((8, 3)).astype(np.float32)
    loss = F.sum(model(x) ** 2)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.params())


def test_sequential_accepts_any_callable():
    model = Sequential(L.Linear(4), F.relu, lambda h: h * 2, L.Linear(2))
    x = np.random.default_rng(3).standard_normal((3, 5)).astype(np.float32)
    y = model(x)
    assert y.shape == (3, 2)
    assert len(model) == 4 and model[1] is F.relu
    assert [n for n, _ in model.named_params()] == [
        "layers/0/W", "layers/0/b", "layers/3/W", "layers/3/b"
    ]
    l0, l3 = model[0], model[3]
    expected = (np.maximum(x @ l0.W.data + l0.b.data, 0) * 2) @ l3.W.data + l3.b.data
    np.testing.assert_allclose(y.data, expected, rtol=1e-5)


def test_sequential_nested_and_saved(tmp_path):
    inner = Sequential(L.Linear(3), F.tanh)
    model = Sequential(inner, L.Linear(1))
    x = np.ones((2, 4), dtype=np.float32)
    y = model(x)
    path = tmp_path / "seq.npz"
    model.save_weights(path)
    other = Sequential(Sequential(L.Linear(3), F.tanh), L.Linear(1))
    other.load_weights(path)
    np.testing.assert_array_equal(other(x).data, y.data)
    assert list(other.state_dict()) == [
        "layers/0/layers/0/W", "layers/0/layers/0/b", "layers/1/W", "layers/1/b"
    ]


def test_sequential_rejects_non_callables():
    with pytest.raises(TypeError, match="Sequential: item 1 is a int, which is not callable"):
        Sequential(L.Linear(2), 3)


def test_mlp_save_load_round_trip(tmp_path):
    model = MLP((6, 2))
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    y = model(x)
    path = tmp_path / "mlp.npz"
    model.save_weights(path)
    fresh = MLP((6, 2))  # lazy: loading initialises the weights
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh(x).data, y.data)
