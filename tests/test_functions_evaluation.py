"""accuracy: values, label shapes, dtypes, no graph, errors (it is exempt from the op table)."""

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_accuracy_value_and_label_shapes(xp):
    y = xp.asarray(np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0, 1, 0]]))
    t = xp.asarray(np.array([1, 0, 1, 1]))
    for labels in (t, t.reshape(4, 1), Variable(t)):
        acc = F.accuracy(Variable(y), labels)
        assert isinstance(acc, Variable)
        assert float(acc.data) == pytest.approx(0.75)


def test_accuracy_dtype_and_no_graph(rng):
    y = Variable(rng.standard_normal((10, 4)).astype(np.float32))
    acc = F.accuracy(y, rng.integers(0, 4, size=10))
    assert acc.dtype == np.float32 and acc.shape == ()
    assert acc.creator is None


def test_accuracy_matches_argmax_on_random_data(rng):
    y = rng.standard_normal((100, 10))
    t = rng.integers(0, 10, size=100)
    assert float(F.accuracy(y, t).data) == pytest.approx(np.mean(y.argmax(1) == t))


def test_accuracy_errors():
    with pytest.raises(TypeError, match="integer labels are required"):
        F.accuracy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"3 labels for a batch of 2 scores"):
        F.accuracy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"scores must have shape \(N, C\)"):
        F.accuracy(np.zeros(3), np.array([0, 1, 2]))
