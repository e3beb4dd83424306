"""The small names users bring from NumPy and PyTorch: item(), float(), int(), reprs."""
# ruff: noqa: NPY002  (dezero draws from the global RNG, as the book does; seeding it is the point)

import numpy as np
import pytest

import dezero.functions as F
import dezero.layers as L
from dezero import Parameter, Variable
from dezero.models import MLP, Model, Sequential


def test_item_float_int():
    loss = F.sum(Variable(np.array([1.5, 2.25], dtype=np.float32)))
    assert loss.item() == 3.75 and type(loss.item()) is float
    assert float(loss) == 3.75 and int(loss) == 3
    assert Variable(np.array([[7]])).item() == 7 and type(Variable(np.array([[7]])).item()) is int
    assert float(Variable(np.float64(0.1))) == 0.1
    assert f"{float(Variable(np.array(2.0))):.1f}" == "2.0"
    with pytest.raises(ValueError, match="size 1"):  # as NumPy says it
        Variable(np.zeros(2)).item()


def test_variable_repr_names_the_dtype_as_numpy_does():
    assert repr(Variable(np.array([1.0, 2.0]))) == "variable([1. 2.])"
    assert repr(Variable(np.array([1, 2]))) == "variable([1 2])"
    assert repr(Variable(np.array([True]))) == "variable([ True])"
    assert repr(Variable(np.array([1.0, 2.0], dtype=np.float32))) == (
        "variable([1. 2.], dtype=float32)")
    assert repr(Variable(np.float32(0.5))) == "variable(0.5, dtype=float32)"
    assert repr(Variable(np.array([[1, 2], [3, 4]], dtype=np.int32))) == (
        "variable([[1 2]\n          [3 4]], dtype=int32)")
    assert repr(np.array([1.0], dtype=np.float32)).endswith("dtype=float32)")  # the model


def test_parameter_repr_has_shape_and_dtype_not_values():
    p = Parameter(np.random.randn(784, 1000).astype(np.float32), name="W")
    assert repr(p) == "parameter(W, shape=(784, 1000), dtype=float32)"
    assert str(p) == repr(p)
    assert repr(Parameter(None, name="W")) == "parameter(W, uninitialised)"
    assert repr(Parameter(np.zeros(3))) == "parameter(shape=(3,), dtype=float64)"


def test_model_repr_is_a_tree_with_shapes_once_initialised():
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.body = Sequential(L.Linear(8), F.relu, L.Linear(3))
            self.norm = L.BatchNorm()
            self.head = L.Linear(2, nobias=True)

        def forward(self, x):
            return self.head(self.norm(self.body(x)))

    net = Net()
    before = repr(net)
    assert "W uninitialised" in before
    net(np.zeros((4, 5), dtype=np.float32))
    lines = repr(net).splitlines()
    assert lines[0] == "Net(" and lines[-1] == ")"
    assert lines[1] == "  body: Sequential("
    assert lines[2].strip().endswith("Linear(W (5, 8) float32, b (8,) float32)")
    assert "W (8, 3) float32" in lines[3]
    assert lines[5] == ("  norm: BatchNorm(gamma (3,) float32, beta (3,) float32, "
                        "avg_mean (3,) float32, avg_var (3,) float32)")
    assert lines[6] == "  head: Linear(W (3, 2) float32)"
    mlp = MLP((10, 3))
    assert repr(mlp) == ("MLP(\n  l0: Linear(W uninitialised, b (10,) float32)\n"
                         "  l1: Linear(W uninitialised, b (3,) float32)\n)")
