"""The engine's mechanisms: the array-level backward, per-thread Config, and its contracts."""

import threading

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import Config, Function, Variable, no_grad, test_mode, using_config
from dezero.core import unbroadcast

# --- one mechanism for backward without a graph -------------------------------------------
_calls: list = []


class _Twice(Function):
    """y = 2x, with both levels of backward instrumented."""

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        _calls.append("variables")
        return 2 * gy

    def backward_array(self, xs, ys, gys):
        _calls.append("arrays")
        assert isinstance(xs[0], np.ndarray) and isinstance(gys[0], np.ndarray)
        return 2 * gys[0]


def test_engine_calls_backward_array_without_a_graph_and_backward_with_one():
    _calls.clear()
    x = Variable(np.array([1.0, 2.0]))
    _Twice()(x).backward()
    assert _calls == ["arrays"]
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])
    assert x.grad.creator is None

    _calls.clear()
    x.cleargrad()
    _Twice()(x).backward(create_graph=True)
    assert _calls == ["variables"]
    assert x.grad.creator is not None  # a graph of the backward pass was recorded


def test_function_without_backward_array_uses_backward_on_variables():
    class Cube(Function):
        def forward(self, x):
            return x**3

        def backward(self, gy):
            (x,) = self.inputs
            return gy * 3 * x**2

    x = Variable(np.array(2.0))
    Cube()(x).backward()
    assert x.grad.data == 12.0
    assert x.grad.creator is None


def test_no_op_reads_config_to_choose_its_backward():
    import pathlib

    root = pathlib.Path(dezero.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.name in ("core.py", "core_simple.py"):
            continue
        src = path.read_text()
        for chunk in src.split("def backward")[1:]:
            body = chunk.split("\n    def ")[0]
            if "enable_backprop" in body:
                offenders.append(path.name)
    assert offenders == []


@pytest.mark.parametrize("make", [lambda a: a, Variable])
def test_unbroadcast_sums_back_and_casts_arrays_and_variables(make):
    g = make(np.ones((4, 2, 3), dtype=np.float64))
    x = np.zeros((2, 1), dtype=np.float32)
    out = unbroadcast(g, x)
    assert isinstance(out, Variable) == isinstance(g, Variable)
    data = out.data if isinstance(out, Variable) else out
    assert data.shape == (2, 1) and data.dtype == np.float32
    np.testing.assert_array_equal(data, np.full((2, 1), 12.0))
    same = make(np.ones((2, 1), dtype=np.float32))
    assert unbroadcast(same, x) is same


def test_array_and_graph_backward_agree_on_a_model():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    t = np.array([0, 1, 2, 1, 0])
    model = dezero.models.MLP((6, 3), activation=F.tanh)
    model.to_cpu()
    loss = F.softmax_cross_entropy(model(x), t)
    model.cleargrads()
    loss.backward()
    fast = [p.grad.data.copy() for p in model.params()]
    model.cleargrads()
    loss = F.softmax_cross_entropy(model(x), t)
    loss.backward(create_graph=True)
    for g, p in zip(fast, model.params()):
        np.testing.assert_allclose(g, p.grad.data, rtol=1e-6, atol=1e-7)


# --- contracts --------------------------------------------------------------------------
@pytest.mark.parametrize("create_graph", [False, True])
def test_wrong_number_of_gradients_names_the_function_and_both_counts(create_graph):
    class TooFew(Function):
        def forward(self, x0, x1):
            return x0 + x1

        def backward(self, gy):
            return gy

    x0, x1 = Variable(np.array(1.0)), Variable(np.array(2.0))
    with pytest.raises(ValueError, match=r"TooFew\.backward returned 1 gradient\(s\) for 2 "
                                         r"input\(s\)"):
        TooFew()(x0, x1).backward(create_graph=create_graph)


def test_wrong_number_of_array_gradients_is_caught_too():
    class TooMany(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            return gy

        def backward_array(self, xs, ys, gys):
            return gys[0], gys[0]

    with pytest.raises(ValueError, match=r"TooMany\.backward returned 2 gradient\(s\) for 1"):
        TooMany()(Variable(np.array(1.0))).backward()


def test_bool_arithmetic_follows_numpy_promotion():
    b = Variable(np.array([True, False]))
    np.testing.assert_array_equal((b + 1).data, np.array([True, False]) + 1)
    assert (b + 1).data.tolist() == [2, 1]
    assert (1 + b).data.tolist() == [2, 1]
    assert (b - 1).data.tolist() == [0, -1]
    assert (b * 2.5).data.tolist() == [2.5, 0.0]


# --- Config per thread --------------------------------------------------------------------
def test_config_reads_and_assigns_like_the_book():
    assert Config.enable_backprop is True and Config.train is True
    Config.train = False
    try:
        assert Config.train is False
    finally:
        Config.train = True
    with using_config("enable_backprop", False):
        assert Config.enable_backprop is False
    assert Config.enable_backprop is True


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_no_grad_and_test_mode_in_one_thread_do_not_leak_into_another():
    with no_grad(), test_mode():
        seen = _in_thread(lambda: (Config.enable_backprop, Config.train,
                                   F.square(Variable(np.array(2.0))).creator is not None))
        assert Config.enable_backprop is False and Config.train is False
    assert seen == (True, True, True)


def test_overlapping_no_grad_blocks_in_two_threads_restore_each_setting():
    a_entered, b_entered, a_may_exit = threading.Event(), threading.Event(), threading.Event()
    results = {}

    def thread_a():
        with no_grad():
            a_entered.set()
            b_entered.wait(5)
            a_may_exit.set()
        results["a"] = Config.enable_backprop

    def thread_b():
        a_entered.wait(5)
        with no_grad():
            b_entered.set()
            a_may_exit.wait(5)  # A leaves its block while B is still inside its own
        results["b"] = Config.enable_backprop

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {"a": True, "b": True}
    assert Config.enable_backprop is True
    x = Variable(np.array(3.0))
    F.square(x).backward()
    assert x.grad.data == 6.0  # training still works in the main thread


def test_concurrent_backward_calls_in_two_threads_leave_settings_alone():
    barrier = threading.Barrier(2)
    errors, grads = [], {}

    def work(name, value):
        try:
            for _ in range(50):
                barrier.wait(5)
                x = Variable(np.array(value))
                y = x
                for _ in range(20):
                    y = F.sin(y) * 1.5 + y
                y.backward()
                grads.setdefault(name, []).append(float(x.grad.data))
                assert Config.enable_backprop is True
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n, v)) for n, v in (("a", 0.3), ("b", 0.7))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(set(grads["a"])) == 1 and len(set(grads["b"])) == 1
    assert grads["a"][0] != 0.0 and grads["b"][0] != 0.0
    assert Config.enable_backprop is True


def test_a_new_thread_starts_from_the_defaults():
    Config.train = False
    try:
        assert _in_thread(lambda: Config.train) is True
    finally:
        Config.train = True


# --- FunctionHook --------------------------------------------------------------------------
class _Log(dezero.core.FunctionHook):
    def __init__(self):
        self.events = []

    def forward_pre(self, f, inputs):
        self.events.append(("forward_pre", type(f).__name__))

    def forward_post(self, f, xs, outputs):
        self.events.append(("forward_post", type(f).__name__, len(xs), len(outputs)))

    def backward_pre(self, f):
        self.events.append(("backward_pre", type(f).__name__))

    def backward_post(self, f, gxs):
        self.events.append(("backward_post", type(f).__name__, len(gxs)))


@pytest.mark.parametrize("create_graph", [False, True])
def test_function_hook_sees_forward_and_backward_in_its_thread_only(create_graph):
    log = _Log()
    x = Variable(np.array(2.0))
    with log:
        y = F.exp(x * 3.0)
        _in_thread(lambda: F.sin(Variable(np.array(1.0))))  # another thread: not seen
        y.backward(create_graph=create_graph)
    assert log.events[:4] == [
        ("forward_pre", "MulConstant"), ("forward_post", "MulConstant", 1, 1),
        ("forward_pre", "Exp"), ("forward_post", "Exp", 1, 1),
    ]
    assert ("backward_pre", "Exp") in log.events
    assert log.events[-1] == ("backward_post", "MulConstant", 1)
    assert all(e[1] != "Sin" for e in log.events)
    assert dezero.hooks.installed() == ()
    n = len(log.events)
    F.exp(x)
    assert len(log.events) == n  # removed on exit
