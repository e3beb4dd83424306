"""Optimizers, hooks, schedules and optimizer state: formulas, dtypes, errors, save/restore."""

import math

import numpy as np
import pytest

import dezero.functions as F
import dezero.layers as L
import dezero.optimizers as O
from dezero import Parameter, Variable, cuda
from dezero.layers import CheckpointError
from dezero.models import MLP

STEPS = 5


def grads(shape=(3, 2)):
    rng = np.random.default_rng(7)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(STEPS)]


def start(shape=(3, 2)):
    return np.random.default_rng(8).standard_normal(shape).astype(np.float32)


# NumPy float64 references of each rule, written from the formulas
def ref_sgd(p, gs, lr=0.01):
    for g in gs:
        p = p - lr * g
    return p


def ref_momentum(p, gs, lr=0.01, momentum=0.9):
    v = np.zeros_like(p)
    for g in gs:
        v = momentum * v - lr * g
        p = p + v
    return p


def ref_adagrad(p, gs, lr=0.001, eps=1e-8):
    h = np.zeros_like(p)
    for g in gs:
        h = h + g * g
        p = p - lr * g / (np.sqrt(h) + eps)
    return p


def ref_adadelta(p, gs, rho=0.95, eps=1e-6):
    msg, msdx = np.zeros_like(p), np.zeros_like(p)
    for g in gs:
        msg = rho * msg + (1 - rho) * g * g
        dx = np.sqrt((msdx + eps) / (msg + eps)) * g
        msdx = rho * msdx + (1 - rho) * dx * dx
        p = p - dx
    return p


def ref_adam(p, gs, alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, start=1):
        p = p * (1 - alpha * weight_decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        lr = alpha * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        p = p - lr * m / (np.sqrt(v) + eps)
    return p


CASES = [
    (lambda: O.SGD(), ref_sgd),
    (lambda: O.SGD(lr=0.5), lambda p, gs: ref_sgd(p, gs, lr=0.5)),
    (lambda: O.MomentumSGD(), ref_momentum),
    (lambda: O.MomentumSGD(lr=0.1, momentum=0.5),
     lambda p, gs: ref_momentum(p, gs, 0.1, 0.5)),
    (lambda: O.AdaGrad(), ref_adagrad),
    (lambda: O.AdaGrad(lr=0.1), lambda p, gs: ref_adagrad(p, gs, lr=0.1)),
    (lambda: O.AdaDelta(), ref_adadelta),
    (lambda: O.Adam(), ref_adam),
    (lambda: O.Adam(alpha=0.01, beta1=0.8), lambda p, gs: ref_adam(p, gs, 0.01, 0.8)),
    (lambda: O.AdamW(), lambda p, gs: ref_adam(p, gs, weight_decay=0.01)),
    (lambda: O.AdamW(alpha=0.1, weight_decay=0.5),
     lambda p, gs: ref_adam(p, gs, alpha=0.1, weight_decay=0.5)),
]


@pytest.mark.parametrize(("make", "ref"), CASES)
def test_update_rules_match_the_formulas(make, ref):
    p = Parameter(start(), name="p")
    opt = make().setup([p])
    for g in grads():
        p.grad = Variable(g)
        opt.update()
    assert p.data.dtype == np.float32
    expected = ref(start().astype(np.float64), [g.astype(np.float64) for g in grads()])
    np.testing.assert_allclose(p.data, expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize(("make", "ref"), CASES)
def test_updates_stay_float32_with_numpy_float64_hyperparameters(make, ref):
    model = MLP((4, 2))
    model(np.ones((3, 5), dtype=np.float32))
    opt = make().setup(model)
    for name in ("lr", "alpha", "momentum", "eps", "rho", "beta1", "beta2", "weight_decay"):
        if name in type(opt).hyperparams:
            setattr(opt, name, np.float64(getattr(opt, name)))
    opt.add_hook(O.WeightDecay(np.float64(1e-4)))
    opt.add_hook(O.ClipGrad(np.float64(1.0)))
    for _ in range(3):
        model.cleargrads()
        F.sum(model(np.ones((3, 5), dtype=np.float32))).backward()
        opt.update()
    assert all(p.data.dtype == np.float32 for p in model.params())
    for slots in opt._state.values():
        assert all(v.dtype == np.float32 for v in slots.values())


def test_updates_are_in_place_and_skip_params_without_grad():
    model = MLP((3, 1))
    model(np.ones((2, 2), dtype=np.float32))
    W = model.l0.W.data
    b_before = model.l1.b.data.copy()
    model.l0.W.grad = Variable(np.ones_like(W))
    O.SGD(lr=0.1).setup(model).update()
    assert model.l0.W.data is W  # same buffer, updated in place
    np.testing.assert_array_equal(model.l1.b.data, b_before)


def test_update_without_setup_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"call optimizer.setup\(model\) before update"):
        O.Adam().update()
    with pytest.raises(RuntimeError, match="setup"):
        O.SGD().load_state_dict({})


def test_setup_returns_self_and_rejects_bad_targets():
    model = MLP((2,))
    opt = O.MomentumSGD()
    assert opt.setup(model) is opt
    with pytest.raises(TypeError, match="sequence of Parameters, got int"):
        O.SGD().setup([1, 2])


def test_update_one_with_a_foreign_parameter():
    opt = O.MomentumSGD().setup(MLP((2,)))
    stranger = Parameter(np.ones(2, dtype=np.float32), name="stranger")
    stranger.grad = Variable(np.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match=r"'stranger' .* not part of this optimizer's target"):
        opt.update_one(stranger)


def test_book_style_custom_optimizer():
    class MySGD(O.Optimizer):
        def __init__(self, lr=0.1):
            super().__init__()
            self.lr = lr

        def update_one(self, param):
            param.data -= self.lr * param.grad.data

    p = Parameter(np.ones(2, dtype=np.float32))
    p.grad = Variable(np.ones(2, dtype=np.float32))
    MySGD().setup([p]).update()
    np.testing.assert_allclose(p.data, 0.9)


def test_all_optimizers_reduce_a_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    t = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    for make in (lambda: O.SGD(0.5), lambda: O.MomentumSGD(0.1), lambda: O.AdaGrad(0.1),
                 O.AdaDelta, lambda: O.Adam(0.05), lambda: O.AdamW(0.05)):
        np.random.seed(0)  # noqa: NPY002  (weights come from the global RNG)
        model = MLP((16, 2), activation=F.relu)
        opt = make().setup(model)
        losses = []
        for _ in range(60):
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            opt.update()
            losses.append(float(loss.data))
        assert losses[-1] < 0.8 * losses[0], type(opt).__name__


# =============================================================================
# Hooks
# =============================================================================
def test_weight_decay_and_clip_grad_values():
    p = Parameter(np.array([1.0, -2.0], dtype=np.float32))
    p.grad = Variable(np.array([3.0, 4.0], dtype=np.float32))
    O.WeightDecay(0.5)([p])
    np.testing.assert_allclose(p.grad.data, [3.5, 3.0])
    q = Parameter(np.zeros(1, dtype=np.float32))
    p.grad = Variable(np.array([3.0, 4.0], dtype=np.float32))
    q.grad = Variable(np.array([12.0], dtype=np.float32))  # global norm 13
    O.ClipGrad(1.3)([p, q])
    np.testing.assert_allclose(p.grad.data, [0.3, 0.4], rtol=1e-5)
    np.testing.assert_allclose(q.grad.data, [1.2], rtol=1e-5)
    O.ClipGrad(100.0)([p, q])  # already within the bound: unchanged
    np.testing.assert_allclose(q.grad.data, [1.2], rtol=1e-5)
    assert p.grad.dtype == np.float32


def test_hooks_do_not_apply_twice_to_a_shared_gradient():
    a = Parameter(np.ones(2, dtype=np.float32))
    b = Parameter(np.ones(2, dtype=np.float32))
    F.sum(a + b).backward()  # the engine may give a and b the very same gradient Variable
    opt = O.SGD(lr=1.0).setup([a, b])
    opt.add_hook(O.ClipGrad(0.5))
    opt.add_hook(O.WeightDecay(0.1))
    opt.update()
    clipped = 0.5 / (2.0 + 1e-6)
    np.testing.assert_allclose(a.data, 1 - (clipped + 0.1), rtol=1e-5)
    np.testing.assert_allclose(b.data, 1 - (clipped + 0.1), rtol=1e-5)


@pytest.mark.parametrize("make", [lambda: O.SGD(0.1), O.MomentumSGD, O.Adam, O.AdamW])
def test_freeze_param_keeps_frozen_layers_fixed(make):
    model = MLP((4, 3, 2))
    x = np.ones((5, 3), dtype=np.float32)
    model(x)
    frozen_before = [p.data.copy() for p in model.l0.params()]
    other_before = [p.data.copy() for p in model.l1.params()]
    opt = make().setup(model)
    opt.add_hook(O.FreezeParam(model.l0, model.l2.W))
    W2 = model.l2.W.data.copy()
    for _ in range(3):
        model.cleargrads()
        F.sum(model(x) ** 2).backward()
        opt.update()
    for before, p in zip(frozen_before, model.l0.params()):
        np.testing.assert_array_equal(p.data, before)
    np.testing.assert_array_equal(model.l2.W.data, W2)
    assert any(not np.array_equal(b, p.data) for b, p in zip(other_before, model.l1.params()))
    assert not np.array_equal(model.l2.b.data, 0)


def test_freeze_param_rejects_other_things():
    with pytest.raises(TypeError, match="FreezeParam takes Layers or Parameters, not str"):
        O.FreezeParam("l0")


# =============================================================================
# Optimizer state
# =============================================================================
def trained(make, steps=3):
    np.random.seed(1)  # noqa: NPY002
    model = MLP((4, 2))
    x = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)
    opt = make().setup(model)
    for _ in range(steps):
        model.cleargrads()
        F.sum(model(x) ** 2).backward()
        opt.update()
    return model, opt, x


def test_state_is_keyed_by_parameter_path():
    model, opt, _ = trained(O.Adam)
    state = opt.state_dict()
    assert str(state["class"]) == "Adam" and int(state["t"]) == 3
    assert list(state) == [
        "class", "t", "hyper/alpha", "hyper/beta1", "hyper/beta2", "hyper/eps",
        "state/l0/W/m", "state/l0/W/v", "state/l0/b/m", "state/l0/b/v",
        "state/l1/W/m", "state/l1/W/v", "state/l1/b/m", "state/l1/b/v",
    ]
    assert state["state/l0/W/m"].shape == model.l0.W.shape


@pytest.mark.parametrize("make", [O.SGD, O.MomentumSGD, O.AdaGrad, O.AdaDelta, O.Adam,
                                  O.AdamW])
def test_state_dict_restores_the_continuation_exactly(make):
    model, opt, x = trained(make)
    saved_model, saved_opt = model.state_dict(), opt.state_dict()
    # keep going with the original
    for _ in range(3):
        model.cleargrads()
        F.sum(model(x) ** 2).backward()
        opt.update()
    # a fresh model and optimizer restored from the saved states reach the same weights
    model2 = MLP((4, 2))
    model2.load_state_dict(saved_model)
    opt2 = make().setup(model2)
    opt2.load_state_dict(saved_opt)
    for _ in range(3):
        model2.cleargrads()
        F.sum(model2(x) ** 2).backward()
        opt2.update()
    for (n, a), (_, b) in zip(model.named_params(), model2.named_params()):
        assert np.array_equal(a.data, b.data), n


def test_load_state_dict_restores_hyperparameters():
    _, opt, _ = trained(lambda: O.MomentumSGD(lr=0.3, momentum=0.7))
    model2 = MLP((4, 2))
    opt2 = O.MomentumSGD().setup(model2)
    opt2.load_state_dict(opt.state_dict())
    assert (opt2.lr, opt2.momentum, opt2.t) == (0.3, 0.7, 3)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.__setitem__("class", np.array("SGD")),
         "the state belongs to 'SGD', not 'Adam'"),
        (lambda s: s.pop("t"), "missing key 't'"),
        (lambda s: s.pop("hyper/beta2"), "missing key 'hyper/beta2'"),
        (lambda s: s.__setitem__("hyper/lr", np.array(0.1)), "unexpected key 'hyper/lr'"),
        (lambda s: s.__setitem__("state/l9/W/m", np.ones(2)),
         "state for 'l9/W', which the model does not have"),
        (lambda s: s.__setitem__("state/l0/W/m", np.ones((2, 2), dtype=np.float32)),
         r"shape mismatch for 'state/l0/W/m': got \(2, 2\), the parameter has \(3, 4\)"),
        (lambda s: s.__setitem__("junk", np.ones(1)), "unexpected key 'junk'"),
    ],
)
def test_load_state_dict_errors(edit, match):
    _, opt, _ = trained(O.Adam)
    state = opt.state_dict()
    edit(state)
    t_before = opt.t
    with pytest.raises(CheckpointError, match=match):
        opt.load_state_dict(state)
    assert opt.t == t_before


def test_setup_resets_state():
    model, opt, _ = trained(O.Adam)
    opt.setup(model)
    assert opt.t == 0 and opt.state_dict().keys() == {
        "class", "t", "hyper/alpha", "hyper/beta1", "hyper/beta2", "hyper/eps"
    }


@pytest.mark.gpu
def test_state_lives_on_the_parameter_device_and_saves_to_numpy():
    cp = cuda.cupy
    model, opt, x = trained(O.Adam)
    model.to_gpu()
    model.cleargrads()
    F.sum(model(cp.asarray(x)) ** 2).backward()
    opt.update()
    assert all(isinstance(v, cp.ndarray) for s in opt._state.values() for v in s.values())
    state = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    opt2 = O.Adam().setup(model)
    opt2.load_state_dict(state)
    assert all(isinstance(v, cp.ndarray) for s in opt2._state.values() for v in s.values())


# =============================================================================
# Schedules
# =============================================================================
def lrs(sched, n):
    out = [sched.get_lr()]
    for _ in range(n):
        sched.step()
        out.append(getattr(sched.optimizer, sched.attr))
    return out


def test_step_and_exponential_schedules():
    opt = O.SGD(lr=1.0)
    np.testing.assert_allclose(lrs(O.StepLR(opt, step_size=2, gamma=0.5), 5),
                               [1, 1, 0.5, 0.5, 0.25, 0.25])
    opt = O.MomentumSGD(lr=0.1)
    np.testing.assert_allclose(lrs(O.ExponentialLR(opt, gamma=0.9), 3),
                               [0.1, 0.09, 0.081, 0.0729])


def test_cosine_schedule_sets_adam_alpha():
    opt = O.Adam(alpha=0.2)
    sched = O.CosineAnnealingLR(opt, T_max=4, eta_min=0.0)
    assert sched.attr == "alpha"
    got = lrs(sched, 6)
    expected = [0.1 * (1 + math.cos(math.pi * min(s, 4) / 4)) for s in range(7)]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert type(opt.alpha) is float


def test_warmup_then_cosine():
    opt = O.SGD(lr=0.4)
    after = O.CosineAnnealingLR(opt, T_max=2)
    sched = O.WarmupLR(opt, warmup_steps=4, after=after)
    np.testing.assert_allclose(lrs(sched, 7), [0.1, 0.2, 0.3, 0.4, 0.4, 0.2, 0.0, 0.0],
                               atol=1e-12)
    plain = O.WarmupLR(O.SGD(lr=1.0), warmup_steps=2)
    np.testing.assert_allclose(lrs(plain, 3), [0.5, 1.0, 1.0, 1.0])


def test_schedule_state_round_trip_and_errors():
    opt = O.SGD(lr=1.0)
    sched = O.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    sched.step()
    opt2 = O.SGD(lr=1.0)
    sched2 = O.StepLR(opt2, step_size=1, gamma=0.5)
    sched2.load_state_dict(sched.state_dict())
    assert opt2.lr == opt.lr == 0.25
    with pytest.raises(TypeError, match="AdaDelta has no learning rate"):
        O.StepLR(O.AdaDelta(), step_size=1)
    with pytest.raises(ValueError, match="step_size must be positive, got 0"):
        O.StepLR(O.SGD(), step_size=0)
    with pytest.raises(ValueError, match="T_max must be positive"):
        O.CosineAnnealingLR(O.SGD(), T_max=0)
    with pytest.raises(ValueError, match="warmup_steps must be positive"):
        O.WarmupLR(O.SGD(), warmup_steps=0)


def test_schedule_drives_training_lr():
    layer = L.Linear(1, in_size=1, nobias=True)
    layer.W.data[...] = 0
    opt = O.SGD(lr=1.0).setup(layer)
    sched = O.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        layer.W.grad = Variable(np.ones((1, 1), dtype=np.float32))
        opt.update()
        sched.step()
    np.testing.assert_allclose(layer.W.data, -(1 + 0.5 + 0.25))


@pytest.mark.parametrize("make", [
    lambda groups: O.Adam(0.01).setup(groups),
    lambda groups: O.AdamW(0.01, weight_decay=0.1).setup(
        [{"params": groups[:2], "weight_decay": 0.0}, {"params": groups[2:]}]),
])
def test_the_multi_tensor_adam_step_equals_the_per_parameter_step_bit_for_bit(make):
    """foreach=True (one pass over all parameters, block by block) and foreach=False (each
    parameter on its own) give the same bits, over parameters smaller than a block, one
    block, and several blocks with a remainder."""
    from dezero.optimizers import _BLOCK

    rng = np.random.default_rng(0)
    sizes = [(3,), (5, 2), (2 * _BLOCK + 7,), (_BLOCK,)]
    data = [rng.standard_normal(s).astype(np.float32) for s in sizes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in sizes] for _ in range(3)]
    runs = []
    for foreach in (True, False):
        params = [Parameter(d.copy()) for d in data]
        opt = make(params)
        opt.foreach = foreach
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = Variable(g.copy())
            opt.update()
        runs.append(([p.data for p in params], opt.state_dict()))
    (p1, s1), (p2, s2) = runs
    for a, b in zip(p1, p2):
        assert np.array_equal(a, b)
    assert s1.keys() == s2.keys()
    for k in s1:
        assert np.array_equal(s1[k], s2[k]), k
