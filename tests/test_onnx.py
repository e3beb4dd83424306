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
        y = model(*[dezero.Variable(a) for a in arrays])
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


def test_export_of_a_model_on_the_device(xp, tmp_path):
    model = SeqModel(L.LSTM)
    cnn = CNN()
    x, t = randn(3, 3, 8, 8), ids(3)
    cnn(x)
    model(t)
    want_cnn, want_seq = reference(cnn, [x]), reference(model, [t])
    if xp is not np:
        cnn.to_gpu()
        model.to_gpu()
    donnx.export(cnn, xp.asarray(x), tmp_path / "cnn.onnx")
    donnx.export(model, xp.asarray(t), tmp_path / "seq.onnx")
    np.testing.assert_allclose(run_onnx(tmp_path / "cnn.onnx", [x])[0], want_cnn[0],
                               rtol=1e-4, atol=1e-5)
    got = run_onnx(tmp_path / "seq.onnx", [t])
    for g, w in zip(got, want_seq):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_export_leaves_the_recurrent_state_as_it_found_it(tmp_path):
    model = SeqModel(L.LSTM)
    model.rnn.reset_state()
    donnx.export(model, ids(2), None)
    assert model.rnn.h is None and model.rnn.c is None
    h = model.rnn(np.ones((2, 6), dtype=np.float32))
    donnx.export(model, ids(2), None)
    assert model.rnn.h is h


def test_gpt_attention_and_transformer_blocks(tmp_path):
    from dezero.models import GPT

    model = GPT(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16)
    proto = check_model(model, [ids(2, 6)], [ids(5, 6)], tmp_path)
    assert "tok_emb/W" in {i.name for i in proto.graph.initializer}


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


# =============================================================================
# Every exporter, on its own: (name, function of the inputs, inputs for a batch size n)
# =============================================================================
W34 = randn(3, 4)
W_CONV = randn(4, 2, 3, 3)
W_DECONV = randn(2, 3, 3, 3)
b4 = randn(4)
MASK44 = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1], [0, 1, 1, 1]], dtype=bool)


def pos(*shape):
    return (np.abs(randn(*shape)) + 0.5).astype(np.float32)


def x_(*tail):
    return lambda n: [randn(n, *tail)]


def xy(*tail):
    return lambda n: [randn(n, *tail), randn(n, *tail)]


OP_CASES = [
    ("add-sub-mul-div", lambda a, b: (a + b) * a - b / (a * a + 1), xy(3)),
    ("broadcast-binary", lambda a: a * b4 + (b4 - a) / (b4 * b4 + 1), x_(2, 4)),
    ("constants", lambda a: 2 - (a + 1) * 3 / 4 - 5 / (a * a + 1), x_(3)),
    ("neg-pow", lambda a: -(a ** 3) + (a * a + 1) ** 0.5 + a ** 2, x_(3)),
    ("pow-var", lambda a, b: (a * a + 1) ** b, xy(3)),
    ("math", lambda a: F.exp(a) + F.sin(a) * F.cos(a) - F.tanh(a) + F.abs(a)
     + F.square(a), x_(4)),
    ("log-sqrt", lambda a: F.log(a) + F.sqrt(a), lambda n: [pos(n, 3)]),
    ("maximum-minimum", lambda a, b: F.maximum(a, b) - F.minimum(a, 0.1), xy(3)),
    ("clip", lambda a: F.clip(a, -0.5, 0.7), x_(5)),
    ("softplus-gelu", lambda a: F.softplus(a) + F.gelu(a), x_(5)),
    ("astype", lambda a: F.astype(a, np.float64) * 2, x_(3)),
    ("sigmoid-relu-leaky", lambda a: F.sigmoid(a) + F.relu(a) + F.leaky_relu(a, 0.1), x_(4)),
    ("softmax-axes", lambda a: F.softmax(a, axis=0) + F.softmax(a) + F.softmax(a, axis=-1)
     + F.softmax(a, axis=(1, 2)), x_(3, 4)),
    ("log-softmax-axes", lambda a: F.log_softmax(a, axis=0) + F.log_softmax(a, axis=2)
     + F.log_softmax(a, axis=(1, 2)), x_(3, 4)),
    ("sum-mean", lambda a: F.sum(a, axis=1) + F.mean(a, axis=(1, 2))[:, None] + F.sum(a)
     + F.mean(a, axis=2, keepdims=True).sum(axis=1), x_(3, 4)),
    ("max-min", lambda a: F.max(a, axis=1) - F.min(a, axis=(1, 2), keepdims=True)[:, 0]
     + F.max(a), x_(3, 4)),
    ("logsumexp", lambda a: F.logsumexp(a, axis=1) + F.logsumexp(a, axis=(1, 2), keepdims=True)
     [:, :, 0], x_(3, 4)),
    ("reshape-flatten", lambda a: F.flatten(a) + F.reshape(a, (-1, 12)) + F.reshape(
        F.transpose(a, (0, 2, 1)), (a.shape[0], 12)), x_(3, 4)),
    ("transpose", lambda a: F.transpose(a) + a.T, x_(3, 2)),
    ("expand-squeeze", lambda a: F.squeeze(F.expand_dims(a, 1), 1), x_(3)),
    ("broadcast-sum-to", lambda a: F.sum_to(F.broadcast_to(a[:, None], (a.shape[0], 3, 4)),
                                            (a.shape[0], 1, 4)), x_(4)),
    ("sum-to-leading", lambda a: F.sum_to(a, (4,)), x_(4)),
    ("concat-stack", lambda a, b: F.concat([a, b], axis=1) + F.stack([a, b], axis=1)
     .reshape(a.shape[0], 6), xy(3)),
    ("stack-axis0", lambda a, b: F.stack([a, b]), xy(3)),
    ("split", lambda a: F.split(a, 3, axis=1)[1] * F.split(a, [1, 3], axis=1)[2][:, :2],
     x_(6)),
    ("pad", lambda a: F.pad(a, ((0, 0), (1, 2)), constant_values=0.5), x_(3)),
    ("where", lambda a, b: F.where(np.array([[True, False, True]]), a, b), xy(3)),
    ("get-item-basic", lambda a: a[:, 1:3] + a[:, ::2][:, :2] + a[..., -1:]
     + a[:, None, 0] + a[:, ::-1][:, :2], x_(4)),
    ("get-item-int", lambda a: a[:, -1] + a[:, 0], x_(4)),
    ("get-item-array", lambda a: a[:, np.array([0, 2, 2])] + a[:, [1, 1, 0]], x_(3)),
    ("get-item-arrays", lambda a: a[:, np.array([0, 1]), np.array([2, 2])], x_(3, 4)),
    ("get-item-int-array", lambda a: a[:, 1, np.array([0, 2])] + a[:, [0, 1], 3], x_(3, 4)),
    ("get-item-front", lambda a: a[np.array([1, 0, 1])], x_(3)),
    ("get-item-apart", lambda a: a[:, np.array([0, 1]), :, np.array([1, 0])], x_(2, 3, 2)),
    ("matmul", lambda a: F.matmul(a, W34) + a @ W34, x_(3)),
    ("matmul-batched", lambda a, b: F.matmul(a, F.transpose(b, (0, 2, 1))), xy(2, 3)),
    ("linear", lambda a: F.linear(a, W34, b4) + F.linear(a, W34), x_(3)),
    ("einsum", lambda a: F.einsum("nij,jk->nik", a, W34), x_(2, 3)),
    ("conv2d", lambda a: F.conv2d(a, W_CONV, stride=2, pad=1), x_(2, 7, 7)),
    ("deconv2d", lambda a: F.deconv2d(a, W_DECONV, b4[:3], stride=2, pad=1, outsize=(10, 10)),
     x_(2, 5, 5)),
    ("poolings", lambda a: F.pooling(a, 3, stride=2, pad=1) + F.average_pooling(
        a, 3, stride=2, pad=1), x_(2, 6, 6)),
    ("embed-id", lambda ids_: F.embed_id(ids_, W34.T), lambda n: [
        RNG.integers(0, 4, size=(n, 5)).astype(np.int32)]),
    ("int-ops-on-ids", lambda ids_: F.embed_id(ids_[:, ::-1] + 1, W34.T),
     lambda n: [RNG.integers(0, 3, size=(n, 2))]),
    ("attention", lambda a, b: F.scaled_dot_product_attention(a, b, b)
     + F.scaled_dot_product_attention(a, b, a, causal=True)
     + F.scaled_dot_product_attention(a, a, b, mask=MASK44), xy(2, 4, 3)),
    ("layer-norm", lambda a: F.layer_norm(a, b4, b4 * b4), x_(3, 4)),
    ("cells", lambda a: F.lstm_cell(a, None, None, W34, W34[:, :4].T @ W34)[0]
     + F.rnn_cell(a, a @ W34[:, :3].T @ W34[:, :3], W34[:, :3], W34[:, :3].T @ W34[:, :3])
     .sum() + F.gru_cell(a, None, W34[:, :3], W34[:1, :3])[:, :1], x_(3)),
]


@pytest.mark.parametrize(("fn", "make"), [c[1:] for c in OP_CASES],
                         ids=[c[0] for c in OP_CASES])
def test_exporter(tmp_path, fn, make):
    check_model(fn, make(3), make(5), tmp_path)


def test_every_exporter_has_a_case():
    from dezero.onnx._export import _trace
    from dezero.onnx._ops import EXPORTERS

    used = set()
    for _, fn, make in OP_CASES:
        used |= {type(r.f) for r in _trace(fn, make(2))[2]}
    missing = sorted(k.__name__ for k in EXPORTERS if k not in used)
    assert missing == []


def all_functions():
    """Every concrete Function subclass defined in dezero (abstract bases left out); every
    module that defines Functions is imported by now (dezero.models imports them all)."""
    out, stack = [], [dezero.Function]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("dezero.") and sub.forward is not dezero.Function.forward:
                out.append(sub)
    return sorted(set(out), key=lambda c: (c.__module__, c.__name__))


def test_coverage_every_function_has_an_exporter_or_a_reason():
    from dezero.onnx._ops import EXPORTERS, NOT_EXPORTED

    functions = all_functions()
    assert len(functions) > 50
    without = [f"{c.__module__}.{c.__name__}" for c in functions
               if c not in EXPORTERS and c not in NOT_EXPORTED]
    assert without == [], "Functions with neither an exporter nor a reason"
    assert not set(EXPORTERS) & set(NOT_EXPORTED)
    for cls, reason in NOT_EXPORTED.items():
        assert len(reason.strip()) > 20, f"{cls.__name__}: give a real reason"


# =============================================================================
# Names, options and errors
# =============================================================================
class Cube(dezero.Function):
    """An op a user wrote, without an exporter."""

    def forward(self, x):
        return x ** 3

    def backward(self, gy):
        return 3 * self.inputs[0] ** 2 * gy


def test_op_without_exporter_names_the_function_and_the_line():
    import inspect

    import dezero.hooks

    def model(x):
        return Cube()(F.relu(x))

    line = inspect.getsourcelines(model)[1] + 1
    with pytest.raises(donnx.ExportError,
                       match=rf"cannot export Cube \(called at .*test_onnx\.py:{line}\)"):
        donnx.export(model, randn(2, 3), None)
    assert dezero.hooks.installed() == ()  # the hook is off again


def test_layer_op_names_the_layers_line_and_the_reason():
    model = Model()
    model.fc = L.Linear(3)
    model.forward = lambda x: F.softmax_cross_entropy(model.fc(x), np.array([0, 1]))
    with pytest.raises(donnx.ExportError,
                       match=r"SoftmaxCrossEntropy \(called at .*test_onnx\.py:\d+\): a "
                             r"training loss"):
        donnx.export(model, randn(2, 4), None, dynamic_batch=False)


def test_parameters_and_buffers_are_named_initializers(tmp_path):
    model = CNN()
    proto = donnx.export(model, randn(2, 3, 8, 8), tmp_path / "m.onnx",
                         input_names=["image"], output_names=["logp"])
    names = {i.name for i in proto.graph.initializer}
    assert {"conv1/W", "conv1/b", "bn1/gamma", "bn2/beta", "fc/W", "fc/b", "bn1/avg_mean",
            "bn1/avg_var", "bn2/avg_mean", "bn2/avg_var"} <= names
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["logp"]
    assert proto.opset_import[0].version == donnx._export.newest_opset()


def test_static_shapes_and_an_explicit_opset(tmp_path):
    model = MLP([5, 2])
    proto = check_model(model, [randn(3, 4)], [randn(3, 4)], tmp_path, dynamic_batch=False,
                        opset=18)
    assert proto.opset_import[0].version == 18
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 4]
    with pytest.raises(ValueError, match="opset 18 or newer, got opset=13"):
        donnx.export(model, randn(3, 4), None, opset=13)


def test_batch_dependent_constants():
    def zeros_state(x):  # a repeated value: built at run time for any batch
        return x + np.zeros((x.shape[0], 1), dtype=np.float32)

    proto = donnx.export(zeros_state, randn(2, 3), None)
    got = run_onnx_proto(proto, [randn(6, 3)])
    assert got[0].shape == (6, 3)

    def ramp(x):  # different values per sample: cannot follow the batch
        return x + np.arange(x.shape[0], dtype=np.float32)[:, None]

    with pytest.raises(donnx.ExportError,
                       match=r"constant (c )?of shape \(2, 1\).*changes with the "
                             r"batch size.*dynamic_batch=False"):
        donnx.export(ramp, randn(2, 3), None)
    donnx.export(ramp, randn(2, 3), None, dynamic_batch=False)


def test_graph_that_changes_with_the_batch_size():
    def model(x):
        return F.relu(x) if x.shape[0] % 2 else F.tanh(F.relu(x))

    with pytest.raises(donnx.ExportError, match="different operations for batch sizes"):
        donnx.export(model, randn(2, 3), None)
    with pytest.raises(ValueError, match="0-d and has no batch axis"):
        donnx.export(F.relu, np.float32(1.0), None)


def test_missing_onnx_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ImportError, match=r'pip install "dezero-next\[onnx\]"'):
        donnx.export(F.relu, randn(2, 2), None)


def run_onnx_proto(proto, arrays):
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: a for i, a in zip(session.get_inputs(), arrays)})


def test_signature_is_the_one_api_md_pins():
    import inspect

    params = inspect.signature(donnx.export).parameters
    positional = [p for p in params.values() if p.kind is not p.KEYWORD_ONLY]
    assert [(p.name, p.default) for p in positional] == [
        ("model", inspect.Parameter.empty), ("args", inspect.Parameter.empty),
        ("path", inspect.Parameter.empty), ("input_names", None), ("output_names", None),
        ("dynamic_batch", True), ("opset", None)]
    # beyond API.md, keyword-only: what a value read during the trace does (issue 21)
    assert [(p.name, p.default) for p in params.values() if p.kind is p.KEYWORD_ONLY] == [
        ("value_reads", "error")]


def test_a_value_read_while_tracing_is_refused_or_warned():
    import warnings

    class Branchy(Model):
        def __init__(self):
            super().__init__()
            self.l = L.Linear(3, in_size=4)

        def forward(self, x):
            y = self.l(x)
            if float(y.sum()) > 0:  # a branch the graph would freeze
                return y * 2
            return y

    x = np.ones((2, 4), np.float32)
    with pytest.raises(donnx.ExportError, match=r"float\(\) reads the value of a Variable .* "
                                                r"while the model is traced, at .*test_onnx"):
        donnx.export(Branchy(), x, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        donnx.export(Branchy(), x, None, value_reads="warn")
    assert len(caught) == 1 and "one fixed branch" in str(caught[0].message)
    with pytest.raises(ValueError, match="value_reads must be 'error' or 'warn'"):
        donnx.export(Branchy(), x, None, value_reads="ignore")


def test_an_empty_sample_still_exports_a_dynamic_batch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    np.random.seed(0)  # noqa: NPY002  (dezero draws initial weights from it)
    model = MLP((5, 3))
    proto = donnx.export(model, np.zeros((0, 4), np.float32), tmp_path / "m.onnx")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 4]
    x = np.random.default_rng(0).random((7, 4), dtype=np.float32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x).data, rtol=1e-5, atol=1e-6)
