"""Recurrent layers and cells: what the op table (tests/opdb/rnn.py) cannot say.

Fused gates vs the eight-product LSTM, multi-step BPTT gradients (first and second order),
the fused LSTM backward's two paths, the layers (any in_size, state, errors, save/load),
truncated BPTT memory, GRU/LSTM vs PyTorch, LayerNorm.
"""

from __future__ import annotations

import gc
import os
import sys
import weakref

import numpy as np
import pytest

import dezero.functions as F
import dezero.layers as L
from dezero import Variable, cuda, testing
from dezero.dataloaders import SeqDataLoader
from dezero.datasets import SinCurve
from dezero.models import Model
from dezero.optimizers import SGD


def _rand(rng, *shape, scale=1.0):
    return rng.uniform(-scale, scale, size=shape)


# =============================================================================
# Fused gates == the straightforward eight-product LSTM
# =============================================================================
def _eight_product_lstm(xs, Wx, Wh, b):
    """The book's LSTM: a separate x-product and h-product for each of the four gates."""
    H = Wh.shape[0]
    parts = [slice(k * H, (k + 1) * H) for k in range(4)]  # [i, f, g, o]
    Wxs = [Variable(Wx.data[:, s].copy()) for s in parts]
    Whs = [Variable(Wh.data[:, s].copy()) for s in parts]
    bs = [Variable(b.data[s].copy()) for s in parts]
    h = c = None
    hs = []
    for x in xs:
        pre = [F.matmul(x, Wxs[k]) + bs[k] for k in range(4)]
        if h is not None:
            pre = [pre[k] + F.matmul(h, Whs[k]) for k in range(4)]
        i, f, o = F.sigmoid(pre[0]), F.sigmoid(pre[1]), F.sigmoid(pre[3])
        g = F.tanh(pre[2])
        c = i * g if c is None else f * c + i * g
        h = o * F.tanh(c)
        hs.append(h)
    return hs, (Wxs, Whs, bs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_lstm_equals_eight_product_lstm(dtype):
    rng = np.random.default_rng(0)
    N, I, H, T = 3, 5, 4, 4  # in_size != hidden_size on purpose
    lstm = L.LSTM(H, in_size=I, dtype=dtype)
    lstm.b.data = _rand(rng, 4 * H).astype(dtype)  # a non-zero bias, so it is checked too
    xs = [Variable(_rand(rng, N, I).astype(dtype)) for _ in range(T)]
    hs = [lstm(x) for x in xs]
    ref, (Wxs, Whs, bs) = _eight_product_lstm(xs, lstm.Wx, lstm.Wh, lstm.b)
    tol = {"atol": 1e-12, "rtol": 1e-10} if dtype == np.float64 else {"atol": 1e-6}
    for h, r in zip(hs, ref):
        assert h.dtype == dtype
        np.testing.assert_allclose(h.data, r.data, **tol)

    weights = _rand(rng, N, H).astype(dtype)
    sum(F.sum(h * weights) for h in hs).backward()
    sum(F.sum(r * weights) for r in ref).backward()
    tol = {"atol": 1e-12, "rtol": 1e-10} if dtype == np.float64 else {"atol": 1e-5}
    np.testing.assert_allclose(lstm.Wx.grad.data,
                               np.concatenate([w.grad.data for w in Wxs], axis=1), **tol)
    np.testing.assert_allclose(lstm.Wh.grad.data,
                               np.concatenate([w.grad.data for w in Whs], axis=1), **tol)
    np.testing.assert_allclose(lstm.b.grad.data,
                               np.concatenate([v.grad.data for v in bs]), **tol)
    assert lstm.Wx.grad.dtype == dtype


def test_fused_lstm_records_two_functions_per_step():
    """A step after the first: the input product and the fused rest (hidden product and
    nonlinearity); the eight-product form records about 25 Functions."""
    lstm = L.LSTM(4, in_size=3)
    x = np.ones((2, 3), dtype=np.float32)
    h1 = lstm(x)
    c1 = lstm.c
    h2 = lstm(x)
    before = {id(f) for f in _functions_behind(h1) + _functions_behind(c1)}
    step = sorted(type(f).__name__ for f in _functions_behind(h2) if id(f) not in before)
    assert step == ["LSTMStep", "Linear"], step


# =============================================================================
# The fused LSTM backward: the array path == the graph path
# =============================================================================
def _lstm_step_grads(create_graph, with_h, seed=0):
    rng = np.random.default_rng(seed)
    c_prev = Variable(_rand(rng, 3, 4))
    z = Variable(_rand(rng, 3, 16, scale=3.0))
    extra = [Variable(_rand(rng, 3, 4)), Variable(_rand(rng, 4, 16))] if with_h else []
    c, h = F.rnn.lstm_activation(c_prev, z, *extra)
    loss = F.sum(c * _rand(rng, 3, 4)) + F.sum(h * _rand(rng, 3, 4))
    loss.backward(create_graph=create_graph)
    return [v.grad.data for v in [c_prev, z, *extra]]


@pytest.mark.parametrize("with_h", [False, True])
def test_lstm_step_array_backward_equals_graph_backward(with_h):
    fast = _lstm_step_grads(create_graph=False, with_h=with_h)
    graph = _lstm_step_grads(create_graph=True, with_h=with_h)
    assert len(fast) == (4 if with_h else 2)
    for a, b in zip(fast, graph):
        np.testing.assert_allclose(a, b, atol=1e-14, rtol=1e-12)


@pytest.mark.parametrize("with_h", [False, True])
@pytest.mark.parametrize("used", ["c", "h"])
def test_lstm_step_one_output_used(used, with_h):
    """Only c or only h reaches the loss: the other output's gradient is None inside."""
    rng = np.random.default_rng(1)
    args = [_rand(rng, 2, 3), _rand(rng, 2, 12)]
    if with_h:
        args += [_rand(rng, 2, 3), _rand(rng, 3, 12)]

    def f(*a):
        c, h = F.rnn.lstm_activation(*a)
        return c if used == "c" else h

    testing.check_backward(f, args, name=f"lstm step[{used}]")
    testing.check_double_backward(f, args, name=f"lstm step[{used}]")


def test_lstm_activation_third_order():
    """d^3/dz^3 of sum(h) at one element vs central differences of the second derivative."""
    rng = np.random.default_rng(2)
    c0 = _rand(rng, 1, 1)
    z0 = _rand(rng, 1, 4)

    def second(zv):
        z = Variable(zv)
        _, h = F.rnn.lstm_activation(c0, z)
        h.backward(create_graph=True)
        g = z.grad
        z.cleargrad()
        F.sum(g[:, 0]).backward(create_graph=True)
        return z.grad  # d/dz of dh/dz_i

    g2 = second(z0.copy())
    z = Variable(z0.copy())
    _, h = F.rnn.lstm_activation(c0, z)
    h.backward(create_graph=True)
    g1 = z.grad
    z.cleargrad()
    F.sum(g1[:, 0]).backward(create_graph=True)
    g2v = z.grad
    z.cleargrad()
    F.sum(g2v[:, 0]).backward()
    eps = 1e-5
    zp, zm = z0.copy(), z0.copy()
    zp[0, 0] += eps
    zm[0, 0] -= eps
    numerical = (second(zp).data[0, 0] - second(zm).data[0, 0]) / (2 * eps)
    np.testing.assert_allclose(g2.data, g2v.data, atol=1e-12)
    np.testing.assert_allclose(z.grad.data[0, 0], numerical, rtol=1e-5, atol=1e-8)


# =============================================================================
# Backprop through time: chains of cells, first and second order
# =============================================================================
def _chain(cell, T):
    def f(*args):
        xs, params = args[:T], args[T:]
        h = c = None
        outs = []
        for x in xs:
            if cell == "lstm":
                h, c = F.lstm_cell(x, h, c, *params)
            elif cell == "gru":
                h = F.gru_cell(x, h, *params)
            else:
                h = F.rnn_cell(x, h, *params)
            outs.append(h)
        return outs

    return f


@pytest.mark.parametrize("cell,gates,n_bias", [("rnn", 1, 1), ("lstm", 4, 1), ("gru", 3, 2)])
def test_bptt_through_three_steps(cell, gates, n_bias):
    rng = np.random.default_rng(3)
    N, I, H, T = 2, 3, 2, 3
    xs = [_rand(rng, N, I) for _ in range(T)]
    params = [_rand(rng, I, gates * H), _rand(rng, H, gates * H)]
    params += [_rand(rng, gates * H) for _ in range(n_bias)]
    f = _chain(cell, T)
    testing.check_backward(f, [*xs, *params], name=f"{cell} x{T}")
    testing.check_double_backward(f, [*xs, *params], name=f"{cell} x{T}")


# =============================================================================
# Layers
# =============================================================================
@pytest.mark.parametrize("cls,cell", [(L.RNN, "rnn"), (L.LSTM, "lstm"), (L.GRU, "gru")])
@pytest.mark.parametrize("in_size", [None, 1, 7])
def test_layer_equals_its_cell_for_any_in_size(cls, cell, in_size):
    H, N = 5, 3
    layer = cls(H, in_size=in_size)
    rng = np.random.default_rng(4)
    I = 1 if in_size is None else in_size
    xs = [_rand(rng, N, I).astype(np.float32) for _ in range(3)]
    hs = [layer(x) for x in xs]
    assert layer.in_size == I
    params = [p for p in layer.params()]
    assert [name for name, _ in layer.named_params()] == (
        ["Wx", "Wh", "bx", "bh"] if cls is L.GRU else ["Wx", "Wh", "b"]
    )
    ref = _chain(cell, 3)(*xs, *params)
    for h, r in zip(hs, ref):
        assert h.shape == (N, H) and h.dtype == np.float32
        np.testing.assert_allclose(h.data, r.data, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [L.RNN, L.LSTM, L.GRU])
def test_feature_size_change_after_first_step_is_a_clear_error(cls):
    layer = cls(4)
    layer(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"has 5 features, but the layer takes 3"):
        layer(np.zeros((2, 5), dtype=np.float32))
    layer.reset_state()  # the size belongs to the weights, not to the state
    with pytest.raises(ValueError, match=r"has 5 features, but the layer takes 3"):
        layer(np.zeros((2, 5), dtype=np.float32))
    fixed = cls(4, in_size=2)
    with pytest.raises(ValueError, match=r"has 3 features, but the layer takes 2"):
        fixed(np.zeros((2, 3), dtype=np.float32))


@pytest.mark.parametrize("cls", [L.RNN, L.LSTM, L.GRU])
def test_batch_size_change_needs_reset_state(cls):
    layer = cls(4)
    layer(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"batch has 5 rows, but the state has 2.*reset_state"):
        layer(np.zeros((5, 3), dtype=np.float32))
    layer.reset_state()
    assert layer(np.zeros((5, 3), dtype=np.float32)).shape == (5, 4)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"2-D batch \(batch_size, features\), got shape \(3,\)"):
        L.LSTM(4)(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="hidden_size must be positive"):
        L.GRU(0)
    Wx, Wh = np.zeros((3, 8)), np.zeros((2, 8))
    with pytest.raises(ValueError, match=r"x has 4 features but Wx expects 3"):
        F.lstm_cell(np.zeros((2, 4)), None, None, Wx, Wh)
    with pytest.raises(ValueError, match=r"h has shape \(3, 2\), expected \(2, 2\)"):
        F.lstm_cell(np.zeros((2, 3)), np.zeros((3, 2)), None, Wx, Wh)
    with pytest.raises(ValueError, match=r"4 x hidden_size columns, got shape \(2, 6\)"):
        F.lstm_cell(np.zeros((2, 3)), None, None, np.zeros((3, 6)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"gate pre-activations have shape \(2, 6\), expected"):
        F.rnn.lstm_activation(np.zeros((2, 2)), np.zeros((2, 6)))


def test_reset_state_starts_a_new_sequence():
    lstm = L.LSTM(3, in_size=2)
    x = _rand(np.random.default_rng(8), 4, 2).astype(np.float32)
    first = lstm(x).data.copy()
    second = lstm(x).data.copy()
    assert not np.allclose(first, second)  # the state carried over
    lstm.reset_state()
    assert lstm.h is None and lstm.c is None
    np.testing.assert_array_equal(lstm(x).data, first)


@pytest.mark.parametrize("cls", [L.RNN, L.LSTM, L.GRU])
def test_save_and_load_weights_round_trip(cls, tmp_path):
    layer = cls(4)
    x = _rand(np.random.default_rng(9), 2, 3).astype(np.float32)
    y = layer(x).data
    path = tmp_path / "rnn.npz"
    layer.save_weights(path)
    fresh = cls(4)  # lazy: Wx does not exist until loaded
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh(x).data, y)
    assert list(np.load(path).keys()) == [name for name, _ in layer.named_params()]


def test_embed_id_layer_feeds_an_lstm():
    class CharModel(Model):
        def __init__(self):
            super().__init__()
            self.embed = L.EmbedID(10, 6)
            self.lstm = L.LSTM(8)
            self.fc = L.Linear(10)

        def forward(self, ids):
            return self.fc(self.lstm(self.embed(ids)))

    model = CharModel()
    loss = 0
    ids = np.array([1, 4, 9, 0])
    for _ in range(3):
        y = model(ids)
        loss = loss + F.softmax_cross_entropy(y, (ids + 1) % 10)
        ids = (ids + 1) % 10
    model.cleargrads()
    loss.backward()
    assert [name for name, _ in model.named_params()] == [
        "embed/W", "lstm/Wx", "lstm/Wh", "lstm/b", "fc/W", "fc/b"]
    for p in model.params():
        assert p.grad is not None and p.grad.dtype == np.float32
    assert model.lstm.Wx.shape == (6, 32)


# =============================================================================
# Truncated BPTT: memory stays flat, the past is freed
# =============================================================================
def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _SinModel(Model):
    def __init__(self, hidden):
        super().__init__()
        self.rnn = L.LSTM(hidden)
        self.fc = L.Linear(1)

    def reset_state(self):
        self.rnn.reset_state()

    def forward(self, x):
        return self.fc(self.rnn(x))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_truncated_bptt_10000_steps_keeps_rss_flat():
    model = _SinModel(4)
    opt = SGD(lr=0.01).setup(model)
    xs = np.sin(np.linspace(0, 20, 10_001)).astype(np.float32).reshape(-1, 1, 1)
    bptt, loss = 30, 0
    rss = {}
    for step in range(10_000):
        y = model(xs[step])
        loss = loss + F.mean_squared_error(y, xs[step + 1])
        if (step + 1) % bptt == 0:
            model.cleargrads()
            loss.backward()
            loss.unchain_backward()
            opt.update()
            loss = 0
        if step + 1 in (1_000, 10_000):
            gc.collect()
            rss[step + 1] = _rss_bytes()
    growth = rss[10_000] - rss[1_000]
    # without unchain_backward 10,000 steps keep ~10 k Functions and their arrays alive
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 9,000 steps"


def test_unchain_backward_frees_the_past_without_the_garbage_collector():
    model = _SinModel(3)
    x = np.ones((2, 1), dtype=np.float32)
    gc.collect()
    gc.disable()  # reference counting alone must free the graph: no reference cycles
    try:
        loss = 0
        for _ in range(5):
            loss = loss + F.sum(model(x))
        refs = [weakref.ref(f) for f in _functions_behind(loss)]
        assert len(refs) > 20
        loss.backward()
        loss.unchain_backward()
        del loss
        alive = [r() for r in refs if r() is not None]
        # only the newest step's cell, which made the state c that the next step needs
        assert alive == [model.rnn.c.creator], [type(f).__name__ for f in alive]
        model.reset_state()
        del alive
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def _functions_behind(v):
    seen, out, stack = set(), [], [v.creator]
    while stack:
        f = stack.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        out.append(f)
        stack.extend(x.creator for x in f.inputs)
    return out


def test_seq_dataloader_batch_size_larger_than_the_data_raises():
    with pytest.raises(ValueError, match=r"batch_size 1000 is larger than the data set"):
        SeqDataLoader(SinCurve(), batch_size=1000)


def test_seq_dataloader_feeds_parallel_streams_to_an_lstm():
    loader = SeqDataLoader(SinCurve(), batch_size=30)
    model = _SinModel(5)
    for i, (x, t) in enumerate(loader):
        y = model(x)
        assert y.shape == (30, 1) and t.shape == (30, 1)
        if i == 2:
            break
    np.testing.assert_array_equal(x[:, 0], loader.dataset.data[np.arange(30) * 33 + 2, 0])


# =============================================================================
# PyTorch agreement (same gate layouts)
# =============================================================================
@pytest.mark.torch
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cells_match_pytorch(kind):
    torch = pytest.importorskip("torch")
    N, I, H, T = 3, 4, 5, 4
    layer = L.LSTM(H, in_size=I, dtype=np.float64) if kind == "lstm" else L.GRU(
        H, in_size=I, dtype=np.float64)
    rng = np.random.default_rng(5)
    for p in layer.params():
        p.data = _rand(rng, *p.shape)
    cell = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.GRUCell)(I, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(layer.Wx.data.T.copy()))
        cell.weight_hh.copy_(torch.from_numpy(layer.Wh.data.T.copy()))
        if kind == "lstm":
            cell.bias_ih.copy_(torch.from_numpy(layer.b.data))
            cell.bias_hh.zero_()
        else:
            cell.bias_ih.copy_(torch.from_numpy(layer.bx.data))
            cell.bias_hh.copy_(torch.from_numpy(layer.bh.data))
    xs = [_rand(rng, N, I) for _ in range(T)]
    state = None
    total_t = 0
    total = 0
    for x in xs:
        h = layer(x)
        xt = torch.from_numpy(x)
        state = cell(xt) if state is None else cell(xt, state)
        ht = state[0] if kind == "lstm" else state
        np.testing.assert_allclose(h.data, ht.detach().numpy(), atol=1e-12)
        total = total + F.sum(h * h)
        total_t = total_t + (ht * ht).sum()
    total.backward()
    total_t.backward()
    np.testing.assert_allclose(layer.Wx.grad.data, cell.weight_ih.grad.numpy().T, atol=1e-10)
    np.testing.assert_allclose(layer.Wh.grad.data, cell.weight_hh.grad.numpy().T, atol=1e-10)


# =============================================================================
# GPU: the layers on CuPy match NumPy
# =============================================================================
@pytest.mark.parametrize("cls", [L.RNN, L.LSTM, L.GRU])
def test_layers_on_both_devices(cls, xp):
    layer = cls(6, in_size=3)
    cpu = [p.data.copy() for p in layer.params()]
    if xp is not np:
        layer.to_gpu()
    rng = np.random.default_rng(6)
    xs = [_rand(rng, 4, 3).astype(np.float32) for _ in range(3)]
    loss = 0
    for x in xs:
        loss = loss + F.sum(layer(xp.asarray(x)) ** 2)
    loss.backward()
    ref = cls(6, in_size=3)
    for p, data in zip(ref.params(), cpu):
        p.data = data
    loss_ref = 0
    for x in xs:
        loss_ref = loss_ref + F.sum(ref(x) ** 2)
    loss_ref.backward()
    np.testing.assert_allclose(float(cuda.as_numpy(loss.data)), float(loss_ref.data), rtol=1e-5)
    for p, q in zip(layer.params(), ref.params()):
        assert cuda.get_array_module(p.grad.data) is xp
        np.testing.assert_allclose(cuda.as_numpy(p.grad.data), q.grad.data, rtol=1e-4,
                                   atol=1e-5)


# =============================================================================
# LayerNorm
# =============================================================================
def test_layer_norm_normalises_the_last_axis():
    ln = L.LayerNorm()
    x = _rand(np.random.default_rng(10), 4, 3, 7).astype(np.float32) * 5 + 3
    y = ln(x)
    assert y.dtype == np.float32 and ln.gamma.shape == (7,)
    np.testing.assert_allclose(y.data.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.data.var(axis=-1), 1, atol=1e-3)
    with pytest.raises(ValueError, match="last axis has 5 features, but the layer normalises 7"):
        ln(np.zeros((2, 5), dtype=np.float32))


def test_layer_norm_gradients():
    rng = np.random.default_rng(7)
    ln = L.LayerNorm(5, dtype=np.float64)
    ln.gamma.data = _rand(rng, 5) + 1.5
    ln.beta.data = _rand(rng, 5)
    x = _rand(rng, 3, 5)
    testing.check_backward(ln, [x], name="LayerNorm")
    testing.check_double_backward(ln, [x], name="LayerNorm")
    gy = _rand(rng, 3, 5)
    ln.cleargrads()
    F.sum(ln(x) * gy).backward()
    xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + ln.eps)
    np.testing.assert_allclose(ln.beta.grad.data, gy.sum(0), atol=1e-12)
    np.testing.assert_allclose(ln.gamma.grad.data, (gy * xhat).sum(0), atol=1e-12)


# =============================================================================
# Examples: examples/sin_rnn.py and examples/char_rnn.py
# =============================================================================
def _load_example(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sin_rnn_example_runs_and_saves_a_plot(tmp_path):
    out = tmp_path / "sin.png"
    result = _load_example("sin_rnn").main(
        ["--epochs", "4", "--hidden", "16", "--no-progress", "--out", str(out)])
    history = result["history"]
    assert len(history) == 4 and history[-1] < history[0]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_sin_rnn_example_reaches_the_books_loss(tmp_path):
    """Step 60's setup, 100 epochs: the book ends near 0.014."""
    result = _load_example("sin_rnn").main(["--no-progress", "--out", str(tmp_path / "s.png")])
    assert result["final_loss"] <= 0.014
    assert result["cos_mse"] < 0.01


def test_char_rnn_example_on_a_local_text_file(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("hello world, hello dezero.\n" * 40, encoding="utf-8")
    out = tmp_path / "sample.txt"
    weights = tmp_path / "char.npz"
    module = _load_example("char_rnn")
    result = module.main([
        "--text", str(text), "--steps", "120", "--hidden", "24", "--embed", "8",
        "--batch-size", "4", "--bptt", "10", "--lr", "0.01", "--sample-length", "40",
        "--prime", "hel", "--no-progress", "--out", str(out), "--save", str(weights),
    ])
    losses = result["losses"]
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < losses[0]
    sample = out.read_text(encoding="utf-8")
    assert sample == result["sample"] and sample.startswith("hel")
    assert len(sample) == 3 + 40 and set(sample) <= set(text.read_text(encoding="utf-8"))
    model = module.CharRNN(len(set(text.read_text(encoding="utf-8"))), 8, 24)
    model.load_weights(weights)  # the saved weights load into a fresh model
