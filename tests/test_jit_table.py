"""The jit step table: every pattern a training step may have, replay == eager.

Like the op table: one entry per pattern. Each builds the same state twice from one seed, runs
five calls eagerly on one copy and through ``dezero.jit`` on the other, and compares the
results and the whole state after every call (parameters, gradients, buffers, optimizer
state): bit for bit on the CPU, within 1e-6 on the GPU (same test bodies, ``gpu`` marker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import Variable, cuda, optimizers
from dezero.jit import CaptureError
from dezero.models import GPT, MLP
from tests.test_jit import _CNN, _bptt_step, _Seq, _train_step  # jit's own tests' steps

N_CALLS = 5


@dataclass
class Case:
    name: str
    make: Callable  # () -> state: a dict with "model" (a Layer or list), "opt" (or None)
    step: Callable  # (state) -> the step function
    batch: Callable  # (rng, call index) -> the arguments of one call
    between: Callable | None = None  # (state) -> None, run after each call (outside the step)


# =============================================================================
# steps
# =============================================================================
def _train(state, loss_fn=F.softmax_cross_entropy):
    return _train_step(state["model"], state["opt"], loss_fn)


def _mlp(opt_cls, activation=F.relu, **kw):
    def make():
        model = MLP((16, 16, 4), activation=activation)
        model(np.zeros((1, 6), np.float32))
        return {"model": model, "opt": opt_cls(**kw).setup(model)}

    return make


def _xt(shape, classes):
    return lambda rng, i: (rng.standard_normal(shape).astype(np.float32),
                           rng.integers(0, classes, shape[0]))


def _cnn():
    model = _CNN()
    model(np.zeros((2, 1, 8, 8), np.float32))
    return {"model": model, "opt": optimizers.MomentumSGD(0.05).setup(model)}


def _lstm():
    model = _Seq()
    model(np.zeros((3, 2), np.float32))
    model.reset_state()
    return {"model": model, "opt": optimizers.Adam(0.01).setup(model)}


def _bptt(state):
    return _bptt_step(state["model"], state["opt"])


def _hooked():
    state = _mlp(optimizers.MomentumSGD, lr=0.1)()
    model, opt = state["model"], state["opt"]
    opt.add_hook(optimizers.WeightDecay(1e-3))
    opt.add_hook(optimizers.ClipGrad(0.05))
    opt.add_hook(optimizers.FreezeParam(model.l0))

    def halve(params):  # the book's form of a hook: on the grad Variables
        for p in params:
            p.grad = p.grad * 0.5

    opt.add_hook(halve)
    return state


def _scheduled():
    state = _mlp(optimizers.Adam, alpha=0.01)()
    state["schedule"] = optimizers.CosineAnnealingLR(state["opt"], T_max=4)
    return state


def _groups():
    model = MLP((16, 4), activation=F.relu)
    model(np.zeros((1, 6), np.float32))
    groups = [{"params": [model.l0.W, model.l1.W], "weight_decay": 0.1},
              {"params": [model.l0.b, model.l1.b], "weight_decay": 0.0, "beta1": 0.8}]
    opt = optimizers.AdamW(0.01).setup(groups)
    return {"model": model, "opt": opt, "schedule": optimizers.CosineAnnealingLR(opt, 4)}


def _gpt():
    model = GPT(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.1)
    model(np.zeros((1, 8), np.int64))
    return {"model": model, "opt": optimizers.AdamW(3e-3).setup(model)}


def _gpt_step(state):
    model, opt = state["model"], state["opt"]

    def step(ids, targets):
        logits = model(ids)
        loss = F.softmax_cross_entropy(F.reshape(logits, (-1, logits.shape[-1])),
                                       F.reshape(targets, (-1,)))
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    return step


def _accumulating(state):
    model = state["model"]

    def step(x, t):  # no cleargrads: the gradients of every call add up
        loss = F.softmax_cross_entropy(model(x), t)
        loss.backward()
        return loss

    return step


def _penalty(state):
    model, opt = state["model"], state["opt"]

    def step(x, t):  # a gradient penalty: backward(create_graph=True) inside the step
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward(create_graph=True)
        penalty = sum(F.sum(p.grad * p.grad) for p in model.params())
        model.cleargrads()
        (loss + 0.1 * penalty).backward()
        opt.update()
        return loss, penalty

    return step


def _two_inputs(state):
    model, opt = state["model"], state["opt"]

    def step(x, t, x2):  # the first call passes the same array for x and x2
        x2 = Variable(x2)
        loss = F.softmax_cross_entropy(model(x), t) + F.sum(x2 * x2) * 0.01
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    return step


def _aliased_batch(rng, i):
    x = rng.standard_normal((8, 6)).astype(np.float32)
    t = rng.integers(0, 4, 8)
    return (x, t, x) if i == 0 else (x, t, rng.standard_normal((8, 6)).astype(np.float32))


def _nested(state):
    inner = dezero.jit(_train(state))  # a whole step, jitted on its own
    rng = np.random.default_rng(99)
    inner(rng.standard_normal((4, 6)).astype(np.float32), rng.integers(0, 4, 4))

    def step(x, t):  # two micro-batches through the inner step
        x, t = Variable(x), Variable(t)
        return inner(x[:4], t[:4]), inner(x[4:], t[4:])

    return step


def _two_models():
    a = MLP((8, 4), activation=F.relu)
    b = MLP((8, 4), activation=lambda h: F.dropout(F.relu(h), 0.3))
    for m in (a, b):
        m(np.zeros((1, 6), np.float32))
    return {"model": [a, b], "opt": None}


def _model_argument(state):
    def step(model, x):
        return F.sum(model(x))

    return step


def _model_batch(state_models):
    def batch(rng, i):
        a, b = state_models
        model = a if i % 2 == 0 else b
        model.train(i % 3 != 2)
        return (model, rng.standard_normal((5, 6)).astype(np.float32))

    return batch


CASES = [
    *[Case(f"mlp-{c.__name__}", _mlp(c), _train, _xt((8, 6), 4))
      for c in (optimizers.SGD, optimizers.MomentumSGD, optimizers.AdaGrad,
                optimizers.AdaDelta, optimizers.Adam, optimizers.AdamW)],
    Case("cnn-batchnorm", _cnn, _train, _xt((4, 1, 8, 8), 3)),
    Case("lstm-bptt", _lstm, _bptt,
         lambda rng, i: (rng.standard_normal((4, 3, 2)).astype(np.float32),
                         rng.standard_normal((4, 3, 1)).astype(np.float32))),
    Case("hooks", _hooked, _train, _xt((8, 6), 4)),
    Case("schedule", _scheduled, _train, _xt((8, 6), 4),
         between=lambda s: s["schedule"].step()),
    Case("parameter-groups", _groups, _train, _xt((8, 6), 4),
         between=lambda s: s["schedule"].step()),
    Case("gpt", _gpt, _gpt_step,
         lambda rng, i: (rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8)))),
    Case("accumulation-over-calls", _mlp(optimizers.SGD), _accumulating, _xt((8, 6), 4)),
    Case("create-graph-in-the-step", _mlp(optimizers.SGD, lr=0.1), _penalty, _xt((8, 6), 4)),
    Case("create-graph-through-a-cnn", _cnn, _penalty, _xt((4, 1, 8, 8), 3)),
    Case("same-array-for-two-arguments", _mlp(optimizers.SGD), _two_inputs, _aliased_batch),
    Case("nested-jit", _mlp(optimizers.Adam), _nested, _xt((8, 6), 4)),
]


# =============================================================================
# the generic test
# =============================================================================
def _to(xp, obj):
    if xp is np:
        return obj
    if isinstance(obj, np.ndarray):
        return xp.asarray(obj)
    return obj


def _snapshot(state) -> dict:
    out = {}
    models = state["model"] if isinstance(state["model"], list) else [state["model"]]
    for j, model in enumerate(models):
        for name, p in model.named_params():
            out[f"{j}/{name}"] = cuda.as_numpy(p.data).copy()
            out[f"{j}/{name}.grad"] = None if p.grad is None else cuda.as_numpy(
                p.grad.data).copy()
        for name, b in model.named_buffers():
            out[f"{j}/{name} (buffer)"] = None if b is None else cuda.as_numpy(b).copy()
    if state.get("opt") is not None:
        for k, v in state["opt"].state_dict().items():
            out[f"optimizer {k}"] = np.asarray(cuda.as_numpy(v)).copy()
    return out


def _assert_same(a, b, what, exact):
    assert a.keys() == b.keys(), what
    for k in a:
        x, y = a[k], b[k]
        assert (x is None) == (y is None), f"{what}: {k}"
        if x is None:
            continue
        if exact or x.dtype.kind not in "fc":
            assert np.array_equal(x, y), f"{what}: {k} differs"
        else:
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6, err_msg=f"{what}: {k}")


def _outputs(result):
    if isinstance(result, (tuple, list)):
        return [cuda.as_numpy(r.data if isinstance(r, Variable) else r) for r in result]
    return [cuda.as_numpy(result.data)]


def _run(case: Case, xp):
    states = []
    for _ in range(2):
        np.random.seed(0)  # noqa: NPY002
        state = case.make()
        if xp is not np:
            for m in state["model"] if isinstance(state["model"], list) else [state["model"]]:
                m.to_gpu()
        states.append(state)
    eager, jitted = case.step(states[0]), dezero.jit(case.step(states[1]))
    rng1, rng2 = np.random.default_rng(7), np.random.default_rng(7)
    batch1 = case.batch if case.name != "models-as-arguments" else _model_batch(
        states[0]["model"])
    batch2 = case.batch if case.name != "models-as-arguments" else _model_batch(
        states[1]["model"])
    exact = xp is np
    for i in range(N_CALLS):
        args1 = [_to(xp, a) for a in batch1(rng1, i)]
        args2 = [_to(xp, a) for a in batch2(rng2, i)]
        np.random.seed(100 + i)  # noqa: NPY002  (the same dropout masks in both)
        r1 = eager(*args1)
        np.random.seed(100 + i)  # noqa: NPY002
        r2 = jitted(*args2)
        _assert_same(dict(enumerate(_outputs(r1))), dict(enumerate(_outputs(r2))),
                     f"{case.name}, call {i}: the outputs", exact)
        _assert_same(_snapshot(states[0]), _snapshot(states[1]),
                     f"{case.name}, call {i}: the state", exact)
        if case.between is not None:
            case.between(states[0])
            case.between(states[1])
    return jitted


CASES.append(Case("models-as-arguments", _two_models, _model_argument, None))


def _device(request):
    if request.param == "cpu":
        return np
    if not cuda.gpu_enable:
        pytest.skip("needs CuPy and a CUDA device")
    return cuda.cupy


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def xp(request):
    return _device(request)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_replay_equals_eager(case, xp):
    step = _run(case, xp)
    stats = step.stats()
    assert stats["traces"] + stats["replays"] == N_CALLS
    assert stats["replays"] >= 1, stats


# =============================================================================
# what a replay must do besides the arithmetic
# =============================================================================
def test_checks_inside_ops_run_on_replay():
    emb = L.EmbedID(5, 3)

    @dezero.jit
    def step(ids):
        return F.sum(emb(ids))

    step(np.array([0, 1, 4]))
    step(np.array([2, 3, 4]))
    with pytest.raises(IndexError, match=r"embed_id: index 5 is out of range for a "
                                          r"vocabulary of size 5"):
        step(np.array([0, 5, 1]))  # a replay: the op's own check still runs


def test_an_exception_during_a_replay_restores_config():
    emb = L.EmbedID(5, 3)

    @dezero.jit
    def step(ids):
        with dezero.test_mode():
            h = emb(ids)
        return F.sum(h)

    step(np.array([0, 1]))
    step(np.array([1, 2]))
    with pytest.raises(IndexError, match="embed_id: index 9"):
        step(np.array([1, 9]))
    assert dezero.Config.train is True and dezero.Config.enable_backprop is True


def test_check_names_parameters_by_path_and_passes_with_two_layers_called_w():
    l1, l2 = L.Linear(3, in_size=4), L.Linear(2, in_size=3)
    opt = optimizers.SGD(0.1).setup([l1.W, l1.b, l2.W, l2.b])

    @dezero.jit(check=True)
    def step(x):
        loss = F.sum(l2(F.relu(l1(x))))
        l1.cleargrads()
        l2.cleargrads()
        loss.backward()
        opt.update()
        return loss

    for _ in range(3):
        step(np.ones((2, 4), np.float32))
    assert step.stats()["checks"] == 2


def test_label_range_is_checked_on_every_replay():
    model = MLP((3,))
    model(np.zeros((1, 4), np.float32))

    @dezero.jit
    def step(x, t):
        return F.softmax_cross_entropy(model(x), t)

    x = np.ones((2, 4), np.float32)
    step(x, np.array([0, 1]))
    step(x, np.array([2, 1]))
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(ValueError, match=r"softmax_cross_entropy: label -?\d is out of "
                                             r"range for 3 classes"):
            step(x, np.array(bad))


def test_a_returned_value_made_outside_functions_is_refused():
    model = MLP((3,))
    model(np.zeros((1, 4), np.float32))

    @dezero.jit
    def step(x, t):
        y = model(x)
        return F.softmax_cross_entropy(y, t), F.accuracy(y, t)  # accuracy: a plain value

    with pytest.raises(CaptureError, match=r"returns an array \(shape \(\)\) that no dezero "
                                           r"Function made"):
        step(np.ones((2, 4), np.float32), np.array([0, 1]))
