"""dezero.jit: replayed steps equal eager steps bit for bit; retracing; randomness; errors."""

import re

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import Variable, optimizers
from dezero.jit import CaptureError, JitCheckError
from dezero.models import MLP, Model
from tests._examples import load_example, tiny_shakespeare


# =============================================================================
# helpers
# =============================================================================
def _twins(make, seed=0):
    """Two identical (model, optimizer) pairs: the same draws initialise both."""
    pairs = []
    for _ in range(2):
        np.random.seed(seed)  # noqa: NPY002
        pairs.append(make())
    return pairs


def _train_step(model, opt, loss_fn=F.softmax_cross_entropy):
    def step(x, t):
        loss = loss_fn(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    return step


def _batches(n, shape, classes, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape).astype(np.float32),
             rng.integers(0, classes, shape[0])) for _ in range(n)]


def _assert_same_models(m1, m2, opt1=None, opt2=None):
    for (n1, p1), (n2, p2) in zip(m1.named_params(), m2.named_params(), strict=True):
        assert n1 == n2
        assert p1.data.dtype == p2.data.dtype
        assert np.array_equal(p1.data, p2.data), n1
        assert (p1.grad is None) == (p2.grad is None), n1
        if p1.grad is not None:
            assert np.array_equal(p1.grad.data, p2.grad.data), n1
    for (n1, b1), (_, b2) in zip(m1.named_buffers(), m2.named_buffers(), strict=True):
        assert np.array_equal(b1, b2), n1
    if opt1 is not None:
        s1, s2 = opt1.state_dict(), opt2.state_dict()
        assert list(s1) == list(s2)
        for k in s1:
            assert np.array_equal(s1[k], s2[k]), k


def _run_both(make, batches, n_steps=None, step=_train_step):
    (m1, o1), (m2, o2) = _twins(make)
    eager, jitted = step(m1, o1), dezero.jit(step(m2, o2))
    for x, t in batches[:n_steps]:
        l1, l2 = eager(x, t), jitted(x, t)
        assert isinstance(l2, Variable)
        assert l1.data.dtype == l2.data.dtype
        assert np.array_equal(l1.data, l2.data)
    _assert_same_models(m1, m2, o1, o2)
    return jitted


def _mlp(opt_cls, **kw):
    def make():
        model = MLP((32, 32, 4), activation=F.relu)
        model(np.zeros((1, 10), np.float32))  # initialise the lazy weights now
        return model, opt_cls(**kw).setup(model)

    return make


# =============================================================================
# equivalence: jit == eager, bit for bit
# =============================================================================
@pytest.mark.parametrize("opt_cls", [optimizers.SGD, optimizers.MomentumSGD, optimizers.Adam,
                                     optimizers.AdamW, optimizers.AdaGrad])
def test_mlp_steps_equal_eager_bit_for_bit(opt_cls):
    step = _run_both(_mlp(opt_cls), _batches(6, (16, 10), 4))
    s = step.stats()
    assert (s["traces"], s["replays"], s["retraces"]) == (1, 5, 0)
    assert s["gpu_graph"] is False


class _CNN(Model):
    """The MNIST CNN's shape, small: conv-BN-relu-pool, conv-relu-avgpool, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = L.Conv2d(4, kernel_size=3, stride=1, pad=1)
        self.bn = L.BatchNorm()
        self.conv2 = L.Conv2d(6, kernel_size=3, stride=1, pad=1)
        self.fc = L.Linear(5)

    def forward(self, x):
        x = F.pooling(F.relu(self.bn(self.conv1(x))), 2, 2)
        x = F.average_pooling(F.relu(self.conv2(x)), 2, 2)
        return self.fc(F.reshape(x, (x.shape[0], -1)))


def _cnn_make():
    model = _CNN()
    model(np.zeros((2, 1, 12, 12), np.float32))
    return model, optimizers.MomentumSGD(0.05).setup(model)


def test_cnn_with_batchnorm_equals_eager_and_updates_running_stats():
    step = _run_both(_cnn_make, _batches(4, (6, 1, 12, 12), 5))  # running stats compared
    assert step.stats()["replays"] == 3


def test_batchnorm_running_stats_move_on_every_replay():
    model, opt = _cnn_make()
    step = dezero.jit(_train_step(model, opt))
    seen = []
    for x, t in _batches(4, (6, 1, 12, 12), 5):
        step(x, t)
        seen.append(model.bn.avg_mean.copy())
    assert all(not np.array_equal(a, b) for a, b in zip(seen, seen[1:]))


class _Seq(Model):
    def __init__(self):
        super().__init__()
        self.rnn = L.LSTM(8)
        self.fc = L.Linear(1)

    def reset_state(self):
        self.rnn.reset_state()

    def forward(self, x):
        return self.fc(self.rnn(x))


def _bptt_step(model, opt):
    def step(xs, ts):
        xs, ts = Variable(xs), Variable(ts)  # xs[i]: a GetItem Function, replayed
        model.reset_state()  # the state lives inside the step
        loss = 0
        for i in range(xs.shape[0]):
            loss = loss + F.mean_squared_error(model(xs[i]), ts[i])
        model.cleargrads()
        loss.backward()
        loss.unchain_backward()
        opt.update()
        return loss

    return step


def test_lstm_bptt_step_equals_eager():
    def make():
        model = _Seq()
        model(np.zeros((3, 2), np.float32))
        model.reset_state()
        return model, optimizers.Adam(0.01).setup(model)

    rng = np.random.default_rng(3)
    batches = [(rng.standard_normal((5, 3, 2)).astype(np.float32),
                rng.standard_normal((5, 3, 1)).astype(np.float32)) for _ in range(4)]
    _run_both(make, batches, step=_bptt_step)


def test_weight_decay_clip_grad_and_freeze_hooks_equal_eager():
    def make():
        model, opt = _mlp(optimizers.MomentumSGD, lr=0.1)()
        opt.add_hook(optimizers.WeightDecay(1e-3))
        opt.add_hook(optimizers.ClipGrad(0.05))  # small: the clip is active
        opt.add_hook(optimizers.FreezeParam(model.l1))
        return model, opt

    (m, _), _ = _twins(make)
    frozen = m.l1.W.data.copy()
    _run_both(make, _batches(5, (16, 10), 4))
    # the frozen layer stays as it was in the eager twin (compared above): here too
    (m1, o1), _ = _twins(make)
    step = dezero.jit(_train_step(m1, o1))
    for x, t in _batches(3, (16, 10), 4):
        step(x, t)
    assert np.array_equal(m1.l1.W.data, frozen)


def test_clip_grad_factor_is_computed_without_reading_values():
    p = dezero.Parameter(np.array([3.0, 4.0], dtype=np.float32))
    (g,) = optimizers.ClipGrad(1.0).update_grads([p], [np.array([3.0, 4.0], np.float32)])
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [0.6, 0.8], rtol=1e-5)
    (g,) = optimizers.ClipGrad(10.0).update_grads([p], [np.array([3.0, 4.0], np.float32)])
    assert np.array_equal(g, [3.0, 4.0])


def test_dropout_draws_fresh_masks_and_matches_eager_from_the_same_seed():
    def make():
        model = MLP((64, 4), activation=lambda h: F.dropout(F.relu(h), 0.5))
        model(np.zeros((1, 10), np.float32))
        return model, optimizers.SGD(0.0).setup(model)  # lr 0: only the masks change

    (m, o), _ = _twins(make)
    step = dezero.jit(_train_step(m, o))
    x, t = _batches(1, (16, 10), 4)[0]
    losses = {float(step(x, t).data) for _ in range(4)}
    assert len(losses) == 4  # a fresh mask each replay
    # from the same global random state, jit and eager draw the same masks
    (m1, o1), (m2, o2) = _twins(make)
    eager, jitted = _train_step(m1, o1), dezero.jit(_train_step(m2, o2))
    for i, (x, t) in enumerate(_batches(4, (16, 10), 4)):
        np.random.seed(i)  # noqa: NPY002
        l1 = eager(x, t)
        np.random.seed(i)  # noqa: NPY002
        assert np.array_equal(l1.data, jitted(x, t).data)
    _assert_same_models(m1, m2, o1, o2)


def test_numpy_indexing_of_a_step_input_raises():
    @dezero.jit
    def f(xs):
        return F.sum(F.tanh(xs[0]))  # NumPy indexing of the input array, outside Functions

    with pytest.raises(CaptureError, match=r"Tanh \(at .*test_jit\.py:\d+\) takes an array "
                       r"made with NumPy from an array of the dezero\.jit step"):
        f(np.ones((2, 3)))


def test_scheduled_learning_rate_and_adam_step_count_are_read_at_replay():
    def make():
        model, opt = _mlp(optimizers.Adam, alpha=0.01)()
        return model, opt

    (m1, o1), (m2, o2) = _twins(make)
    s1, s2 = optimizers.ExponentialLR(o1, 0.5), optimizers.ExponentialLR(o2, 0.5)
    eager, step = _train_step(m1, o1), dezero.jit(_train_step(m2, o2))
    for x, t in _batches(5, (16, 10), 4):
        eager(x, t)
        step(x, t)
        s1.step()
        s2.step()
    assert o2.t == 5
    _assert_same_models(m1, m2, o1, o2)


def test_parameters_replaced_by_load_state_dict_are_read_at_replay():
    (m1, o1), (m2, o2) = _twins(_mlp(optimizers.SGD, lr=0.1))
    eager, step = _train_step(m1, o1), dezero.jit(_train_step(m2, o2))
    batches = _batches(4, (16, 10), 4)
    for x, t in batches[:2]:
        eager(x, t)
        step(x, t)
    state = MLP((32, 32, 4), activation=F.relu)
    state(np.zeros((1, 10), np.float32))
    m1.load_state_dict(state.state_dict())
    m2.load_state_dict(state.state_dict())
    for x, t in batches[2:]:
        eager(x, t)
        step(x, t)
    _assert_same_models(m1, m2)
    assert step.stats()["traces"] == 1


def test_return_structure_is_kept():
    model, opt = _mlp(optimizers.SGD)()

    @dezero.jit
    def step(x, t):
        y = model(x)
        loss = F.softmax_cross_entropy(y, t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return {"loss": loss, "parts": (y, F.sum(y)), "tag": "train"}

    for x, t in _batches(3, (16, 10), 4):
        out = step(x, t)
    assert set(out) == {"loss", "parts", "tag"} and out["tag"] == "train"
    y, acc = out["parts"]
    assert isinstance(y, Variable) and y.shape == (16, 4)
    assert acc.data.shape == ()
    assert np.array_equal(acc.data, F.sum(y).data)


# =============================================================================
# retracing and the cache
# =============================================================================
def test_new_batch_size_retraces_and_the_cache_is_bounded():
    model, opt = _mlp(optimizers.SGD)()
    step = dezero.jit(_train_step(model, opt), max_cache=2)
    for n in (8, 8, 16, 16, 8, 4, 8):
        step(*_batches(1, (n, 10), 4)[0])
    s = step.stats()
    # 8: trace, replay; 16: trace, replay; 8: replay; 4: trace (evicts 16); 8: replay
    assert (s["traces"], s["retraces"], s["replays"], s["cache_size"]) == (3, 2, 4, 2)
    step(*_batches(1, (16, 10), 4)[0])  # evicted: traces again
    assert step.stats()["traces"] == 4
    step.cache_clear()
    assert step.stats()["cache_size"] == 0
    step(*_batches(1, (16, 10), 4)[0])
    assert step.stats()["traces"] == 5


def test_dtype_config_and_layer_mode_are_part_of_the_key():
    model, _ = _mlp(optimizers.SGD)()

    @dezero.jit
    def predict(x):
        return F.dropout(model(x), 0.5)

    x = np.ones((2, 10), np.float32)
    predict(x)
    predict(x.astype(np.float64))
    assert predict.stats()["traces"] == 2
    with dezero.test_mode():
        y = predict(x)
        assert np.array_equal(y.data, model(x).data)  # no dropout in test mode
    assert predict.stats()["traces"] == 3
    if hasattr(model, "eval"):
        model.eval()
        predict(x)
        assert predict.stats()["traces"] == 4


def test_python_arguments_are_part_of_the_key():
    @dezero.jit
    def scale(x, k):
        return Variable(x) * k

    assert np.array_equal(scale(np.ones(3), 2).data, [2, 2, 2])
    assert np.array_equal(scale(np.ones(3), 3).data, [3, 3, 3])
    assert np.array_equal(scale(np.full(3, 2.0), 3).data, [6, 6, 6])
    assert scale.stats()["traces"] == 2


# =============================================================================
# what cannot be captured: errors that name the op and the line
# =============================================================================
@pytest.mark.parametrize("how", ["float()", "item()", "int()"])
def test_reading_a_value_inside_the_step_raises(how):
    model, _ = _mlp(optimizers.SGD)()

    @dezero.jit
    def step(x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        read = {"float()": float, "item()": lambda v: v.item(), "int()": int}[how]
        if read(loss) > 100:
            return None
        return loss

    with pytest.raises(CaptureError, match=re.escape(how) + r" reads the value of the output "
                       r"of SoftmaxCrossEntropy .* at .*test_jit\.py:\d+"):
        step(*_batches(1, (4, 10), 4)[0])
    assert step.stats()["traces"] == 0  # nothing half-recorded is kept


def test_state_carried_between_steps_raises():
    model = _Seq()
    opt = optimizers.SGD().setup(model)

    @dezero.jit
    def step(x, t):  # forgets model.reset_state(): the hidden state comes from before
        loss = F.mean_squared_error(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    x, t = np.ones((3, 2), np.float32), np.ones((3, 1), np.float32)
    model(x)  # an eager call leaves a hidden state behind
    with pytest.raises(CaptureError, match=r"MatMul|Linear|LSTM|Add"):
        step(x, t)
    with pytest.raises(CaptureError, match=r"computed before the dezero\.jit step"):
        step(x, t)


def test_variable_level_optimizer_hook_runs_in_the_replayed_update():
    def make():
        model, opt = _mlp(optimizers.SGD)()

        def my_hook(params):  # the book's form: on the parameters' grad Variables
            for p in params:
                p.grad = p.grad * 0.5

        opt.add_hook(my_hook)
        return model, opt

    _run_both(make, _batches(4, (8, 10), 4))


def test_check_finds_a_data_dependent_branch():
    model, opt = _mlp(optimizers.SGD)()

    @dezero.jit(check=True)
    def step(x, t):
        y = model(x)
        if x.sum() > 0:  # a Python branch on the data: frozen in the tape
            y = y * 2.0
        loss = F.softmax_cross_entropy(y, t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    x, t = np.ones((4, 10), np.float32), np.array([0, 1, 2, 3])
    step(x, t)
    step(x, t)  # same branch: the check passes
    assert step.stats()["checks"] == 1
    with pytest.raises(JitCheckError, match=r"op \d+ of the step differs from the recorded "
                       r"one: recorded MulConstant .*test_jit\.py:\d+.*depend on its data"):
        step(-x, t)


def test_check_finds_an_array_frozen_as_a_constant():
    w = Variable(np.ones(3, np.float32))

    @dezero.jit(check=True)
    def f(x):
        shifted = x - x.mean()  # NumPy outside any Function: frozen at the first call
        return F.sum(w * shifted * shifted)

    f(np.arange(3, dtype=np.float32))
    assert f(np.arange(3, dtype=np.float32)).data == 2
    with pytest.raises(JitCheckError, match=r"output 0 of the step differs between the replay "
                       r"and the eager run \(max abs difference .*NumPy on the inputs"):
        f(np.array([1, 5, 0], dtype=np.float32))


def test_check_passes_for_a_capturable_step_and_returns_eager_results():
    (m1, o1), (m2, o2) = _twins(_cnn_make)
    eager, checked = _train_step(m1, o1), dezero.jit(_train_step(m2, o2), check=True)
    for x, t in _batches(3, (6, 1, 12, 12), 5):
        assert np.array_equal(eager(x, t).data, checked(x, t).data)
    _assert_same_models(m1, m2, o1, o2)
    assert checked.stats()["checks"] == 2


def test_nested_jit_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="max_cache must be at least 1"):
        dezero.jit(lambda x: x, max_cache=0)
    with pytest.raises(TypeError, match="jit takes a callable, not int"):
        dezero.jit(3)


def test_replay_makes_no_variables_or_functions_for_the_graph():
    import gc

    model, opt = _mlp(optimizers.Adam)()
    step = dezero.jit(_train_step(model, opt))
    batches = _batches(3, (16, 10), 4)
    step(*batches[0])
    step(*batches[1])
    gc.collect()

    def count():
        return sum(isinstance(o, (Variable, dezero.Function)) for o in gc.get_objects())

    before = count()
    step(*batches[2])
    gc.collect()
    assert count() - before <= 1  # the returned loss Variable


# =============================================================================
# GPU
# =============================================================================
@pytest.mark.gpu
def test_gpu_step_runs_as_one_cuda_graph_and_matches_eager():
    from dezero import cuda

    cp = cuda.cupy
    (m1, o1), (m2, o2) = _twins(_mlp(optimizers.Adam, alpha=0.01))
    m1.to_gpu()
    m2.to_gpu()
    eager, step = _train_step(m1, o1), dezero.jit(_train_step(m2, o2))
    for x, t in _batches(5, (16, 10), 4):
        l1 = eager(cp.asarray(x), cp.asarray(t))
        l2 = step(cp.asarray(x), cp.asarray(t))
        np.testing.assert_allclose(cuda.as_numpy(l1.data), cuda.as_numpy(l2.data), rtol=1e-5)
    s = step.stats()
    assert s["gpu_graph"] is True, s["gpu_graph_reason"]
    for p1, p2 in zip(m1.params(), m2.params()):
        np.testing.assert_allclose(cuda.as_numpy(p1.data), cuda.as_numpy(p2.data),
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_gpu_step_with_dropout_falls_back_and_says_why():
    from dezero import cuda

    cp = cuda.cupy
    model = MLP((16, 4), activation=lambda h: F.dropout(h, 0.5))
    model.to_gpu()
    x = cp.ones((4, 10), dtype=cp.float32)
    step = dezero.jit(lambda x: F.sum(model(x)))
    outs = [float(step(x).data) for _ in range(3)]
    s = step.stats()
    assert s["gpu_graph"] is False
    assert "Dropout" in s["gpu_graph_reason"]
    assert len(set(outs)) == 3


def test_parameter_groups_with_scheduled_alpha_equal_eager():
    def make():
        model = MLP((32, 4), activation=F.relu)
        model(np.zeros((1, 10), np.float32))
        groups = [{"params": [model.l0.W, model.l1.W], "weight_decay": 0.1},
                  {"params": [model.l0.b, model.l1.b], "weight_decay": 0.0, "beta1": 0.8}]
        return model, optimizers.AdamW(0.01).setup(groups)

    (m1, o1), (m2, o2) = _twins(make)
    s1, s2 = optimizers.CosineAnnealingLR(o1, 4), optimizers.CosineAnnealingLR(o2, 4)
    eager, step = _train_step(m1, o1), dezero.jit(_train_step(m2, o2))
    for x, t in _batches(4, (16, 10), 4):
        assert np.array_equal(eager(x, t).data, step(x, t).data)
        s1.step()
        s2.step()
    _assert_same_models(m1, m2, o1, o2)


def test_gpt_example_with_jit_trains_exactly_as_without(tmp_path, monkeypatch, capsys):
    text = "ROMEO:\nBut soft, what light through yonder window breaks?\n" * 20
    tiny_shakespeare(tmp_path, monkeypatch, text)
    module = load_example("gpt", "example_gpt_jit")
    args = ["--iters", "4", "--block-size", "8", "--batch-size", "2", "--n-layer", "1",
            "--n-head", "2", "--n-embd", "8", "--dropout", "0.1", "--eval-interval", "2",
            "--eval-iters", "1", "--final-eval-iters", "2", "--sample-length", "5",
            "--warmup", "2", "--no-progress"]
    plain = module.main([*args, "--out", str(tmp_path / "a")])
    jitted = module.main([*args, "--out", str(tmp_path / "b"), "--jit"])
    assert [(h["train"], h["val"]) for h in plain["history"]] == [
        (h["train"], h["val"]) for h in jitted["history"]]
    assert plain["sample"] == jitted["sample"]
    capsys.readouterr()


def test_trainer_with_jit_trains_exactly_as_without():
    from dezero.dataloaders import DataLoader
    from dezero.datasets import Spiral
    from dezero.training import Trainer

    def train(jit):
        np.random.seed(0)  # noqa: NPY002
        model = MLP((16, 3), activation=F.relu)
        model(np.zeros((1, 2), np.float32))
        opt = optimizers.MomentumSGD(0.1).setup(model)
        opt.add_hook(optimizers.WeightDecay(1e-4))
        trainer = Trainer(model, opt, F.softmax_cross_entropy, DataLoader(Spiral(), 32),
                          DataLoader(Spiral(train=False), 100, shuffle=False),
                          scheduler=optimizers.CosineAnnealingLR(opt, 20), verbose=False,
                          progress=False, jit=jit)
        history = trainer.fit(2)
        return history, [p.data.copy() for p in model.params()], trainer.jit_stats

    (h1, p1, s1), (h2, p2, s2) = train(False), train(True)
    assert s1 is None and s2["traces"] == 2  # batches of 32, and the last one of 12
    assert s2["replays"] == 2 * 10 - 2
    assert [{k: v for k, v in h.items() if k != "time"} for h in h1] == [
        {k: v for k, v in h.items() if k != "time"} for h in h2]
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2))


def test_running_statistics_replaced_by_load_state_dict_retrace():
    (m1, o1), (m2, o2) = _twins(_cnn_make)
    eager, step = _train_step(m1, o1), dezero.jit(_train_step(m2, o2))
    batches = _batches(4, (6, 1, 12, 12), 5)
    for x, t in batches[:2]:
        eager(x, t)
        step(x, t)
    other, _ = _cnn_make()  # another model's weights and running statistics
    m1.load_state_dict(other.state_dict())
    m2.load_state_dict(other.state_dict())
    for x, t in batches[2:]:
        eager(x, t)
        step(x, t)
    _assert_same_models(m1, m2, o1, o2)
    assert step.stats()["traces"] == 2  # the new buffers: recorded again


@pytest.mark.gpu
def test_gpu_cnn_step_with_batchnorm_runs_as_one_cuda_graph():
    from dezero import cuda

    cp = cuda.cupy
    (m1, o1), (m2, o2) = _twins(_cnn_make)
    m1.to_gpu()
    m2.to_gpu()
    eager, step = _train_step(m1, o1), dezero.jit(_train_step(m2, o2))
    for x, t in _batches(5, (6, 1, 12, 12), 5):
        l1 = eager(cp.asarray(x), cp.asarray(t))
        l2 = step(cp.asarray(x), cp.asarray(t))
        np.testing.assert_allclose(cuda.as_numpy(l1.data), cuda.as_numpy(l2.data), rtol=1e-4)
    s = step.stats()
    assert s["gpu_graph"] is True, s["gpu_graph_reason"]
    np.testing.assert_allclose(cuda.as_numpy(m1.bn.avg_mean), cuda.as_numpy(m2.bn.avg_mean),
                               rtol=1e-4, atol=1e-6)


class _MaskedSquare(dezero.Function):
    """A Variable-level backward that bakes an array of the data into an op (wrong for jit)."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        (x,) = self.inputs
        return gy * (2 * x.data)  # an ndarray made outside Functions


def test_a_backward_formula_that_bakes_an_array_is_refused():
    w = dezero.Parameter(np.ones(3))

    @dezero.jit
    def step(x):
        w.cleargrad()
        loss = F.sum(_MaskedSquare()(w * x))
        loss.backward()
        return loss

    with pytest.raises(CaptureError, match=r"the backward of _MaskedSquare makes an array of "
                       r"shape \(3,\) outside Functions and hands it to \w+ as a constant"):
        step(np.arange(3.0))
    # Python numbers in a formula are constants, on NumPy 1 (0-d arrays there) as on NumPy 2:
    # sigmoid's Variable-level backward is gy * y * (1 - y)
    @dezero.jit
    def sigmoid_step(x):
        w.cleargrad()
        loss = F.sum(F.sigmoid(w * x))
        loss.backward()
        return loss

    for x in (np.arange(3.0), np.array([0.5, -1.0, 2.0])):
        assert np.isclose(sigmoid_step(x).data, np.sum(1 / (1 + np.exp(-x))))
        s = 1 / (1 + np.exp(-x))
        assert np.allclose(w.grad.data, x * s * (1 - s))
