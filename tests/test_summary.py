"""Model.summary: counts and shapes for an MLP, the MNIST CNN and an LSTM model."""

import importlib.util
from pathlib import Path

import numpy as np

import dezero.functions as F
import dezero.layers as L
from dezero.models import MLP, Model, Sequential

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _rows(table):
    lines = table.splitlines()
    return {line.split()[0]: line.split()[1:] for line in lines[2:lines.index(lines[1], 2)]}


def test_mlp(capsys):
    model = MLP((100, 10))
    table = model.summary(np.zeros((32, 784), dtype=np.float32))
    assert capsys.readouterr().out.strip() == table
    rows = _rows(table)
    assert rows["(model)"][:3] == ["MLP", "(32,", "10)"]
    assert rows["l0"] == ["Linear", "(32,", "100)", "78,500", "0"]
    assert rows["l1"] == ["Linear", "(32,", "10)", "1,010", "0"]
    assert "Trainable params: 79,510" in table
    assert "Buffers (not trained): 0" in table
    assert f"params {79510 * 4 / 1024:.2f} KB" in table


def test_mnist_cnn_with_batchnorm_buffers():
    spec = importlib.util.spec_from_file_location("example_mnist_cnn", EXAMPLES / "mnist_cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.CNN()
    table = model.summary(np.zeros((2, 1, 28, 28), dtype=np.float32))
    rows = _rows(table)
    assert rows["conv1"] == ["Conv2d", "(2,", "32,", "28,", "28)", f"{32 * 9 + 32:,}", "0"]
    assert rows["conv2"] == ["Conv2d", "(2,", "64,", "14,", "14)", f"{64 * 32 * 9 + 64:,}", "0"]
    assert rows["fc"] == ["Linear", "(2,", "10)", f"{64 * 7 * 7 * 10 + 10:,}", "0"]
    total = 32 * 9 + 32 + 64 * 32 * 9 + 64 + 64 * 7 * 7 * 10 + 10
    assert f"Trainable params: {total:,}" in table

    bn_model = Sequential(L.Conv2d(4, 3, pad=1), L.BatchNorm(), F.relu)
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 5)).astype(np.float32)
    table = bn_model.summary(x)
    rows = _rows(table)
    assert rows["layers/1"] == ["BatchNorm", "(3,", "4,", "5,", "5)", "8", "8"]
    assert "Buffers (not trained): 8" in table
    # no running statistic changed: the pass ran in test mode
    np.testing.assert_array_equal(bn_model.layers[1].avg_mean, np.zeros(4))


def test_lstm_model_keeps_its_state():
    class BetterRNN(Model):  # the book's step 60 model
        def __init__(self, hidden_size, out_size):
            super().__init__()
            self.rnn = L.LSTM(hidden_size)
            self.fc = L.Linear(out_size)

        def reset_state(self):
            self.rnn.reset_state()

        def forward(self, x):
            return self.fc(self.rnn(x))

    model = BetterRNN(20, 1)
    table = model.summary(np.zeros((4, 1), dtype=np.float32))
    rows = _rows(table)
    assert rows["rnn"] == ["LSTM", "(4,", "20)", f"{1 * 80 + 20 * 80 + 80:,}", "0"]
    assert rows["fc"] == ["Linear", "(4,", "1)", "21", "0"]
    assert model.rnn.h is None and model.rnn.c is None  # state as before
    y = model(np.ones((4, 1), dtype=np.float32))
    h = model.rnn.h
    model.summary(np.zeros((4, 1), dtype=np.float32))
    assert model.rnn.h is h  # an ongoing sequence is not disturbed
    assert y.shape == (4, 1)


def test_shared_and_repeated_layers():
    shared = L.Linear(5, in_size=5)
    model = Sequential(shared, F.relu, shared)
    table = model.summary(np.zeros((2, 5), dtype=np.float32))
    assert "(2, 5) x2" in table
    assert "Trainable params: 30" in table
