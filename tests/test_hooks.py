"""Variable.register_hook, Layer forward hooks, and Layer.train()/eval()."""

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import Variable, test_mode
from dezero.hooks import variable_hooks as _var_hooks
from dezero.models import VGG16, Model, Sequential


# =============================================================================
# Variable.register_hook
# =============================================================================
def test_leaf_hook_runs_once_and_replaces_the_gradient():
    x = Variable(np.array([1.0, 2.0]))
    calls = []

    def double(g):
        calls.append(g.data.copy())
        return g * 2

    handle = x.register_hook(double)
    y = F.sum(x * x) + F.sum(3 * x)  # x reaches the output by two paths
    y.backward()
    assert len(calls) == 1  # once, with the complete gradient
    np.testing.assert_allclose(calls[0], 2 * np.array([1.0, 2.0]) + 3)
    np.testing.assert_allclose(x.grad.data, 2 * (2 * np.array([1.0, 2.0]) + 3))
    handle.remove()
    x.cleargrad()
    F.sum(x * x).backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0])
    assert len(calls) == 1
    assert id(x) not in _var_hooks


def test_intermediate_hook_sees_its_complete_gradient_and_its_replacement_flows_on():
    x = Variable(np.array(2.0))
    h = x * x  # dh/dx = 4
    seen = []
    h.register_hook(lambda g: seen.append(float(g.data)) or g * 10)
    y = h * 3 + h  # dy/dh = 4, by two consumers
    y.backward()
    assert seen == [4.0]
    assert float(x.grad.data) == 4.0 * 10 * 4.0
    assert h.grad is None  # intermediate grads are still freed


def test_hook_returning_none_observes_only_and_hooks_run_in_order():
    x = Variable(np.array([3.0]))
    order = []
    x.register_hook(lambda g: order.append("a"))
    x.register_hook(lambda g: order.append("b") or g + 1)
    x.register_hook(lambda g: order.append(("c", float(g.data[0]))))
    (x * 2).backward()
    assert order == ["a", "b", ("c", 3.0)]
    assert float(x.grad.data[0]) == 3.0


def test_hook_sees_this_pass_only_and_old_grad_is_added_after():
    x = Variable(np.array(1.0))
    x.register_hook(lambda g: g * 2)
    (x * 3).backward()
    (x * 3).backward()  # accumulates: 6 + 6, not (6 + 3) * 2
    assert float(x.grad.data) == 12.0


def test_hook_with_create_graph_keeps_the_graph():
    x = Variable(np.array(2.0))
    x.register_hook(lambda g: g * x)  # a gradient that depends on x
    y = x**3
    y.backward(create_graph=True)
    gx = x.grad  # 3x^2 * x = 3x^3 = 24
    assert float(gx.data) == 24.0
    x.cleargrad()
    gx.backward()
    # d/dx (3x^3) = 9x^2 = 36, and the hook doubles once more by x: 36 * 2 = 72
    assert float(x.grad.data) == 72.0


def test_hook_on_the_output_itself_and_on_a_leaf_output():
    x = Variable(np.array([1.0, 2.0]))
    y = x * 2
    y.register_hook(lambda g: g * 5)
    y.backward()
    np.testing.assert_allclose(x.grad.data, [10.0, 10.0])
    z = Variable(np.array(1.0))
    z.register_hook(lambda g: g * 7)
    z.backward()
    assert float(z.grad.data) == 7.0


def test_hook_errors():
    x = Variable(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="register_hook takes a callable"):
        x.register_hook(3)
    x.register_hook(lambda g: np.zeros(3))
    with pytest.raises(ValueError, match=r"returned a gradient of shape \(3,\)"):
        (x * 2).backward()


def test_handle_is_a_context_manager_and_remove_is_idempotent():
    x = Variable(np.array(1.0))
    with x.register_hook(lambda g: g * 0) as handle:
        (x * 2).backward()
        assert float(x.grad.data) == 0.0
    handle.remove()
    x.cleargrad()
    (x * 2).backward()
    assert float(x.grad.data) == 2.0
    assert id(x) not in _var_hooks


def test_registry_forgets_dead_variables():
    x = Variable(np.array(1.0))
    x.register_hook(lambda g: None)
    key = id(x)
    assert key in _var_hooks
    del x
    assert key not in _var_hooks


# =============================================================================
# Layer hooks
# =============================================================================
def test_forward_pre_hook_and_forward_hook_run_replace_and_are_removed():
    layer = L.Linear(2, in_size=3)
    x = np.ones((4, 3), dtype=np.float32)
    log = []
    pre = layer.register_forward_pre_hook(lambda l, ins: log.append(("pre", ins[0].shape)))
    post = layer.register_forward_hook(lambda l, ins, out: log.append(("post", out.shape)))
    y = layer(x)
    assert log == [("pre", (4, 3)), ("post", (4, 2))]
    pre.remove()
    post.remove()
    assert layer(x).shape == (4, 2)
    assert len(log) == 2
    assert not layer._special  # back on the fast path

    double_in = layer.register_forward_pre_hook(lambda l, ins: (ins[0] * 2,))
    np.testing.assert_allclose(layer(x).data, layer.forward(x * 2).data, rtol=1e-6)
    double_in.remove()
    with layer.register_forward_hook(lambda l, ins, out: out * 0):
        assert np.all(layer(x).data == 0)
    np.testing.assert_allclose(layer(x).data, y.data)


def test_layer_hook_must_be_callable():
    with pytest.raises(TypeError, match="a layer hook must be callable"):
        L.Linear(2).register_forward_hook(None)


# =============================================================================
# train() / eval()
# =============================================================================
def _dropped(model, x):
    return np.mean(model(x).data == 0)


def test_eval_turns_dropout_off_and_train_back_on():
    model = Sequential(L.Linear(50, in_size=20), L.Dropout(0.5))
    x = np.ones((8, 20), dtype=np.float32)
    assert model.training and model[1].training
    assert _dropped(model, x) > 0.3
    assert model.eval() is model
    assert not model.training and not model[0].training and not model[1].training
    assert _dropped(model, x) == 0.0
    y1, y2 = model(x).data, model(x).data
    np.testing.assert_array_equal(y1, y2)
    model.train()
    assert model.training and model[1].training
    assert _dropped(model, x) > 0.3
    model.train(False)
    assert not model[1].training


def test_modes_combine_with_test_mode_by_or():
    drop = L.Dropout(0.5)
    x = np.ones(1000, dtype=np.float32)
    with test_mode():
        assert np.all(drop(x).data == 1)  # training layer under test_mode: test
    drop.eval()
    assert np.all(drop(x).data == 1)  # eval layer, Config.train True: test
    assert dezero.Config.train is True  # eval leaves the global setting alone afterwards
    drop.train()
    assert np.mean(drop(x).data == 0) > 0.3


def test_eval_covers_functional_dropout_and_batch_norm_in_a_book_style_forward():
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.fc = L.Linear(30, in_size=10)
            self.bn = L.BatchNorm()

        def forward(self, x):
            return F.dropout(self.bn(self.fc(x)), 0.5)  # functional dropout, as VGG16

    net = Net()
    x = np.random.default_rng(0).standard_normal((16, 10)).astype(np.float32)
    net(x)
    mean_before = net.bn.avg_mean.copy()
    net.eval()
    y = net(x).data
    assert np.all(y != 0)  # no dropout
    np.testing.assert_array_equal(net.bn.avg_mean, mean_before)  # running stats untouched
    with test_mode():
        net.train()
        np.testing.assert_array_equal(net(x).data, y)  # same as test_mode


@pytest.mark.slow
def test_vgg16_in_eval_mode_uses_no_dropout():
    model = VGG16()
    x = np.random.default_rng(0).random((1, 3, 32, 32)).astype(np.float32)
    model.eval()
    np.testing.assert_array_equal(model(x).data, model(x).data)


def test_eval_on_a_sublayer_only():
    outer = Sequential(L.Dropout(0.5), L.Dropout(0.5))
    outer[1].eval()
    assert outer.training and outer[0].training and not outer[1].training
    x = np.ones(1000, dtype=np.float32)
    assert np.mean(outer[1](x).data == 0) == 0.0
    assert np.mean(outer[0](x).data == 0) > 0.3


def test_assigning_training_by_hand_takes_effect():
    drop = L.Dropout(0.5)
    drop.training = False
    assert np.all(drop(np.ones(100, dtype=np.float32)).data == 1)
    drop.training = True
    assert np.mean(drop(np.ones(1000, dtype=np.float32)).data == 0) > 0.3
