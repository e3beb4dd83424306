"""dezero.detect_anomaly: the first NaN/Inf of a forward or backward pass, named."""

import threading

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import Variable
from dezero.hooks import installed


def _line_of(marker):
    """The line number in this file of the source line containing ``marker``."""
    with open(__file__, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line and "_line_of" not in line)


def test_forward_log_of_zero_names_function_pass_shapes_and_line(xp):
    x = Variable(xp.array([1.0, 0.0], dtype=np.float32))
    with dezero.detect_anomaly(), pytest.raises(dezero.AnomalyError) as info:
        F.log(x)  # MARK-forward
    e = info.value
    msg = str(e)
    assert type(e.function).__name__ == "Log" and e.phase == "forward"
    assert "Log produced 1 Inf in output 0 during the forward pass" in msg
    assert "inputs [(2,) float32]" in msg
    assert f"test_anomaly.py:{_line_of('MARK-forward')}" in msg
    assert e.where.endswith(f"test_anomaly.py:{_line_of('MARK-forward')}")


def test_backward_sqrt_at_zero_is_reported_as_backward_of_sqrt(xp):
    x = Variable(xp.array([4.0, 0.0]))
    with dezero.detect_anomaly():
        y = F.sqrt(x)  # MARK-sqrt
        loss = F.sum(y)
        with pytest.raises(dezero.AnomalyError) as info:
            loss.backward()
    e = info.value
    assert type(e.function).__name__ == "Sqrt" and e.phase == "backward"
    assert "during the backward pass" in str(e)
    assert f"test_anomaly.py:{_line_of('MARK-sqrt')}" in str(e)


def test_nan_inside_the_ops_of_a_backward_is_that_functions_backward():
    # with create_graph the gradient of Sqrt is computed by dezero ops (a Div makes the
    # Inf): it is still reported as Sqrt's backward
    x = Variable(np.array([0.0]))
    with dezero.detect_anomaly():
        y = F.sqrt(x)
        with pytest.raises(dezero.AnomalyError) as info:
            y.backward(create_graph=True)
    assert type(info.value.function).__name__ == "Sqrt"
    assert info.value.phase == "backward"
    assert "inside its gradient computation" in str(info.value)


def test_function_created_outside_the_mode_says_so():
    x = Variable(np.array([0.0]))
    y = F.sqrt(x)  # created outside: no site recorded
    assert y.creator not in dezero.anomaly._created_at
    with dezero.detect_anomaly(), pytest.raises(dezero.AnomalyError, match="created outside"):
        y.backward()


def test_no_checks_and_nothing_recorded_outside_the_mode():
    assert installed() == ()
    with np.errstate(divide="ignore", invalid="ignore"):
        y = F.log(Variable(np.array([0.0, -1.0])))
    assert np.isinf(y.data[0]) and np.isnan(y.data[1])  # no error outside the mode
    assert y.creator not in dezero.anomaly._created_at
    with dezero.detect_anomaly():
        assert len(installed()) == 1
        z = F.exp(Variable(np.array([1.0])))
        line = _line_of("F.exp(Var")
        assert dezero.anomaly._created_at[z.creator].endswith(f"test_anomaly.py:{line}")
    assert installed() == ()


def test_finite_values_pass():
    x = Variable(np.array([1.0, 2.0]))
    with dezero.detect_anomaly():
        y = F.sum(F.log(x) * x)
        y.backward(create_graph=True)
    np.testing.assert_allclose(x.grad.data, np.log([1.0, 2.0]) + 1)


def test_mode_is_per_thread():
    results = {}

    def other():
        with np.errstate(divide="ignore"):
            results["y"] = F.log(Variable(np.array([0.0]))).data

    with dezero.detect_anomaly():
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert np.isinf(results["y"][0])


def test_training_step_with_model_stays_quiet():
    from dezero.models import MLP

    model = MLP((5, 2))
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    with dezero.detect_anomaly():
        loss = F.softmax_cross_entropy(model(x), np.array([0, 1, 1, 0]))
        loss.backward()
    assert all(p.grad is not None for p in model.params())
