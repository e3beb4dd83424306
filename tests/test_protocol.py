"""The engine's pure grad() and its observer protocol (FunctionHook's events)."""

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import Variable
from dezero.core import current_pass
from dezero.hooks import FunctionHook


def _graph():
    x = Variable(np.array([1.0, 2.0, 3.0]))
    w = Variable(np.array([0.5, -1.0, 2.0]))
    y = F.sum(F.sin(x) * w + x * x)
    return x, w, y


# =============================================================================
# dezero.grad
# =============================================================================
@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_equals_backward_and_touches_no_grad(create_graph):
    x, w, y = _graph()
    old = Variable(np.array([7.0, 7.0, 7.0]))
    x.grad = old
    gx, gw = dezero.grad(y, [x, w], create_graph=create_graph)
    assert x.grad is old and w.grad is None and y.grad is None
    x.cleargrad()
    y.backward()
    assert np.array_equal(gx.data, x.grad.data) and np.array_equal(gw.data, w.grad.data)
    assert (gx.creator is not None) == create_graph


def test_grad_returns_none_for_an_input_not_reached_and_a_tuple_in_order():
    x, w, y = _graph()
    z = Variable(np.array(3.0))
    out = dezero.grad(y, (w, z, x))
    assert isinstance(out, tuple) and len(out) == 3 and out[1] is None
    assert np.allclose(out[0].data, np.sin([1.0, 2.0, 3.0]))


def test_grad_of_an_intermediate_variable_and_with_grad_outputs():
    x = Variable(np.array([1.0, 2.0]))
    h = x * 3.0
    y = h * h
    (gh,) = dezero.grad(y, h, grad_outputs=np.array([1.0, 10.0]))
    assert np.array_equal(gh.data, [6.0, 120.0])
    gy0, = dezero.grad([y, h], [x])  # the sum of both outputs' gradients
    assert np.array_equal(gy0.data, 2 * 9 * x.data + 3)


def test_grad_composes_to_higher_orders():
    x = Variable(np.array(2.0))
    y = x**4
    g = x
    values = []
    for _ in range(4):
        (g,) = dezero.grad(y if g is x else g, x, create_graph=True)
        values.append(float(g.data))
    assert values == [32.0, 48.0, 48.0, 24.0]
    assert x.grad is None


def test_grad_names_bad_arguments():
    x, _, y = _graph()
    with pytest.raises(TypeError, match="grad: inputs must be Variables, got ndarray"):
        dezero.grad(y, [np.ones(3)])
    with pytest.raises(ValueError, match=r"grad: a grad_output of shape \(2,\) for an output "
                                         r"of shape \(\)"):
        dezero.grad(y, x, grad_outputs=np.ones(2))
    with pytest.raises(ValueError, match="grad: 2 grad_outputs for 1 outputs"):
        dezero.grad(y, x, grad_outputs=[None, None])


def test_grad_runs_variable_hooks_on_its_own_gradients():
    x = Variable(np.array(3.0))
    with x.register_hook(lambda g: g * 10):
        (gx,) = dezero.grad(x * x, x)
    assert float(gx.data) == 60.0 and x.grad is None


# =============================================================================
# The events
# =============================================================================
class _Log(FunctionHook):
    def __init__(self):
        self.events = []

    def backward_post(self, f, gxs):
        self.events.append(("backward_post", type(f).__name__,
                            [type(g).__name__ for g in gxs if g is not None]))

    def accumulate(self, var, grad, added):
        p = current_pass()
        self.events.append(("accumulate", var.name, type(grad).__name__, added,
                            p.writes_grad(var)))

    def cleargrad(self, var):
        self.events.append(("cleargrad", var.name))


@pytest.mark.parametrize("create_graph", [False, True])
def test_accumulate_reports_every_stored_gradient_as_an_array(create_graph):
    x = Variable(np.array(2.0), name="x")
    x.grad = Variable(np.array(1.0))
    h = x * x
    h.name = "h"
    y = h + h + x
    y.name = "y"
    with _Log() as log:
        y.backward(create_graph=create_graph)
    acc = [e for e in log.events if e[0] == "accumulate"]
    assert ("accumulate", "y", "ndarray", False, False) in acc  # the seed, in the table
    assert [e[3] for e in acc if e[1] == "h"] == [False, True]  # h used twice: summed
    xs = [e for e in acc if e[1] == "x"]
    assert all(e[4] for e in xs) and xs[0][3] is True  # into x.grad, which held 1.0
    assert all(e[2] == "ndarray" for e in acc)  # arrays, under create_graph too
    assert all(t == "ndarray" for e in log.events if e[0] == "backward_post" for t in e[2])
    assert float(x.grad.data) == 1.0 + 4 * 2.0 + 1.0


def test_grad_reports_its_stores_as_kept_in_its_table():
    x = Variable(np.array(2.0), name="x")
    with _Log() as log:
        dezero.grad(x * x, x)
    acc = [e for e in log.events if e[0] == "accumulate" and e[1] == "x"]
    assert acc and not any(e[4] for e in acc)  # never into .grad


def test_cleargrad_is_an_event_and_layer_cleargrads_reports_each_parameter():
    import dezero.layers as L

    layer = L.Linear(2, in_size=3)
    with _Log() as log:
        layer.cleargrads()
    assert [e for e in log.events if e[0] == "cleargrad"] == [("cleargrad", "W"),
                                                              ("cleargrad", "b")]


def test_the_accumulation_rule_is_one_function():
    from dezero.core import accumulate_grad, add_grads

    v = Variable(np.array([1.0]))
    accumulate_grad(v, np.array([2.0]))
    accumulate_grad(v, np.array([3.0]))
    assert np.array_equal(v.grad.data, [5.0])
    assert add_grads(None, 4) == 4 and add_grads(1, 4) == 5


def test_no_pass_is_current_outside_a_backward_pass():
    assert current_pass() is None
    x = Variable(np.array(1.0))
    seen = []

    class Probe(FunctionHook):
        def backward_pre(self, f):
            seen.append((current_pass().create_graph, current_pass().into_grad))

    with Probe():
        (x * 2.0).backward(create_graph=True)
    assert seen == [(True, True)] and current_pass() is None
