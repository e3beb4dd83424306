"""dezero.onnx: a table of models exported, checked by onnx.checker and run by onnxruntime."""

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import test_mode
from dezero.models import MLP, VGG16, Model, ResNet50

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from dezero import onnx as donnx  # noqa: E402  (after the skips: needs onnx)


def run_onnx(path, arrays):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: a for i, a in zip(session.get_inputs(), arrays)}
    return session.run(None, feeds)


def reference(model, arrays):
    with test_mode(), dezero.no_grad():
        y = model(*arrays)
    ys = y if isinstance(y, (tuple, list)) else [y]
    return [v.data for v in ys]


def check_model(model, arrays, other, tmp_path, **kwargs):
    """Export at the example batch size, then compare at that and at another batch size."""
    path = tmp_path / "model.onnx"
    proto = donnx.export(model, tuple(arrays), path, **kwargs)
    onnx.checker.check_model(str(path))
    for batch in (arrays, other):
        want = reference(model, batch)
        got = run_onnx(path, batch)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    return proto


RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# =============================================================================
# The models
# =============================================================================
class CNN(Model):
    """Conv (stride, pad), BatchNorm with running statistics, max and average pooling."""

    def __init__(self):
        super().__init__()
        self.conv1 = L.Conv2d(6, 3, stride=1, pad=1)
        self.bn1 = L.BatchNorm()
        self.conv2 = L.Conv2d(8, 3, stride=2, pad=1)
        self.bn2 = L.BatchNorm()
        self.fc = L.Linear(5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.pooling(x, 2, 2)
        x = F.leaky_relu(self.bn2(self.conv2(x)))
        x = F.average_pooling(x, 3, stride=1, pad=1)
        x = F.reshape(x, (x.shape[0], -1))
        return F.log_softmax(F.dropout(self.fc(x)))


class DeconvNet(Model):
    """Deconv2d with stride and pad, LayerNorm over the last axis."""

    def __init__(self):
        super().__init__()
        self.up = L.Deconv2d(4, 4, stride=2, pad=1)
        self.ln = L.LayerNorm()
        self.up2 = L.Deconv2d(2, 3, stride=1, pad=0)

    def forward(self, x):
        y = F.tanh(self.ln(self.up(x)))
        return F.sigmoid(self.up2(y))


class SeqModel(Model):
    """EmbedID over int64 ids, a recurrent layer unrolled over 5 steps, a Linear head."""

    def __init__(self, cell):
        super().__init__()
        self.embed = L.EmbedID(20, 6)
        self.rnn = cell(7)
        self.fc = L.Linear(3)

    def forward(self, ids):
        self.rnn.reset_state()
        hs = [self.rnn(self.embed(ids[:, t])) for t in range(ids.shape[1])]
        h = F.stack(hs, axis=1)  # (N, T, H)
        return F.softmax(self.fc(h[:, -1]), axis=1), F.sum(h, axis=(1, 2))


def ids(n, t=5):
    return RNG.integers(0, 20, size=(n, t)).astype(np.int64)


def bn_stats(model):
    """Running statistics that are not the defaults (so that test mode really uses them)."""
    for name, value in model.named_buffers():
        if name.endswith("avg_mean"):
            value[...] = RNG.standard_normal(value.shape) * 0.1
        elif name.endswith("avg_var"):
            value[...] = RNG.uniform(0.5, 1.5, size=value.shape)


def test_mlp(tmp_path):
    check_model(MLP([16, 8, 3]), [randn(4, 10)], [randn(7, 10)], tmp_path)


def test_cnn_with_batchnorm_and_both_poolings(tmp_path):
    model = CNN()
    model(randn(2, 3, 12, 12))  # create the weights and statistics
    bn_stats(model)
    proto = check_model(model, [randn(4, 3, 12, 12)], [randn(1, 3, 12, 12)], tmp_path)
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "MaxPool", "AveragePool", "LeakyRelu", "LogSoftmax"} <= ops
    assert "Dropout" not in ops


def test_deconv_with_layernorm(tmp_path):
    check_model(DeconvNet(), [randn(3, 2, 5, 5)], [randn(5, 2, 5, 5)], tmp_path)


@pytest.mark.parametrize("cell", [L.RNN, L.LSTM, L.GRU])
def test_recurrent_over_embed_id(tmp_path, cell):
    model = SeqModel(cell)
    proto = check_model(model, [ids(4)], [ids(9)], tmp_path)
    inp = proto.graph.input[0]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_export_leaves_the_recurrent_state_as_it_found_it(tmp_path):
    model = SeqModel(L.LSTM)
    model.rnn.reset_state()
    donnx.export(model, ids(2), None)
    assert model.rnn.h is None and model.rnn.c is None
    h = model.rnn(np.ones((2, 6), dtype=np.float32))
    donnx.export(model, ids(2), None)
    assert model.rnn.h is h


@pytest.mark.slow
def test_vgg16_small_input(tmp_path):
    model = VGG16()
    check_model(model, [randn(2, 3, 32, 32)], [randn(1, 3, 32, 32)], tmp_path)


@pytest.mark.slow
def test_resnet50_small_input(tmp_path):
    model = ResNet50()
    model(randn(1, 3, 32, 32))
    bn_stats(model)
    check_model(model, [randn(2, 3, 32, 32)], [randn(3, 3, 32, 32)], tmp_path)
