"""Optimizer parameter groups: per-group hyperparameters (AdamW's weight decay on matrices
only), one learning rate for every group, names, state and errors."""

import numpy as np
import pytest

from dezero import Parameter, optimizers
from dezero.models import MLP


def _params():
    W = Parameter(np.ones((2, 2), dtype=np.float32), name="W")
    b = Parameter(np.ones(2, dtype=np.float32), name="b")
    for p in (W, b):
        p.grad = Parameter(np.zeros_like(p.data))  # zero gradient: only decay moves them
    return W, b


def test_adamw_decays_only_the_groups_that_ask_for_it():
    W, b = _params()
    opt = optimizers.AdamW(alpha=0.1, weight_decay=0.5)
    opt.setup([{"params": [W], "weight_decay": 0.5}, {"params": [b], "weight_decay": 0.0}])
    opt.update()
    np.testing.assert_allclose(W.data, 1 - 0.1 * 0.5)
    np.testing.assert_array_equal(b.data, 1.0)
    assert opt.weight_decay == 0.5  # the optimizer's own value is restored


def test_setting_the_learning_rate_applies_to_every_group():
    W, b = _params()
    opt = optimizers.AdamW(alpha=0.1, weight_decay=1.0)
    opt.setup([{"params": [W]}, {"params": [b], "weight_decay": 0.5}])
    opt.alpha = 0.2  # as a schedule does
    opt.update()
    np.testing.assert_allclose(W.data, 1 - 0.2 * 1.0)
    np.testing.assert_allclose(b.data, 1 - 0.2 * 0.5)
    sched = optimizers.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert opt.alpha == pytest.approx(0.1)


def test_groups_keep_names_state_and_match_plain_setup():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3)).astype(np.float32)

    def run(split):
        np.random.seed(0)  # noqa: NPY002
        model = MLP((5, 2))
        model(x)
        named = dict(model.named_params())
        opt = optimizers.Adam(alpha=0.01)
        if split:
            opt.setup([{"params": {k: v for k, v in named.items() if v.ndim == 2}},
                       {"params": {k: v for k, v in named.items() if v.ndim == 1}}])
        else:
            opt.setup(model)
        for _ in range(3):
            loss = (model(x) ** 2).sum()
            model.cleargrads()
            loss.backward()
            opt.update()
        return model, opt

    m1, o1 = run(False)
    m2, o2 = run(True)
    for p1, p2 in zip(m1.params(), m2.params()):
        np.testing.assert_array_equal(p1.data, p2.data)
    assert sorted(o1.state_dict()) == sorted(o2.state_dict())  # same keys: the names
    o2.load_state_dict(o1.state_dict())


def test_group_errors():
    W, b = _params()
    with pytest.raises(ValueError, match="the learning rate 'alpha' cannot be set per group"):
        optimizers.AdamW().setup([{"params": [W], "alpha": 0.1}])
    with pytest.raises(ValueError, match="'momentum' is not a hyperparameter of AdamW"):
        optimizers.AdamW().setup([{"params": [W], "momentum": 0.1}])
    with pytest.raises(ValueError, match="parameter group 1 has no 'params' entry"):
        optimizers.SGD().setup([{"params": [W]}, {"lr": 0.1}])
    with pytest.raises(ValueError, match="appears twice"):
        optimizers.SGD().setup([{"params": {"a": W}}, {"params": {"a": b}}])
    with pytest.raises(ValueError, match="appears twice"):
        optimizers.SGD().setup([{"params": {"a": W}}, {"params": {"b": W}}])
    with pytest.raises(TypeError, match="sequence of Parameters, got int"):
        optimizers.SGD().setup([{"params": [1]}])
