"""dezero.core_simple: the book's stage-2 core (ndarray gradients, no broadcasting)."""

import gc
import weakref

import numpy as np
import pytest

import dezero
from dezero.core_simple import (
    Config,
    Function,
    Variable,
    as_array,
    as_variable,
    no_grad,
    setup_variable,
    using_config,
)


# Users subclass Function as in the book's steps 1-22; the core does not ship these.
class Square(Function):
    def forward(self, x):
        return x**2

    def backward(self, gy):
        return 2 * self.inputs[0].data * gy


class Exp(Function):
    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return np.exp(self.inputs[0].data) * gy


class SplitHalves(Function):
    """Two outputs: the first and second half of a 1-D array."""

    def forward(self, x):
        n = len(x) // 2
        return x[:n], x[n:]

    def backward(self, gy0, gy1):
        n = len(self.inputs[0].data) // 2
        gx = np.zeros_like(self.inputs[0].data)
        if gy0 is not None:
            gx[:n] = gy0
        if gy1 is not None:
            gx[n:] = gy1
        return gx


def square(x):
    return Square()(x)


def exp(x):
    return Exp()(x)


def test_package_uses_the_full_core():
    assert dezero.is_simple_core is False
    assert dezero.Variable is dezero.core.Variable
    assert Variable is not dezero.Variable
    assert dezero.core_simple.Variable is Variable


def test_seed_example_as_printed_in_the_book():
    x = Variable(np.array(0.5))
    y = square(exp(square(x)))
    y.backward()
    assert type(x.grad) is np.ndarray  # grads are arrays here, not Variables
    assert x.grad.shape == ()
    assert float(x.grad) == 3.297442541400256
    assert float(y.data) == float(np.exp(0.25) ** 2)


def test_diamond_graph_visits_each_function_once_after_all_its_gradients():
    x = Variable(np.array(2.0))
    a = square(x)
    y = square(a) + square(a)  # y = 2 x^4
    y.backward()
    assert float(y.data) == 32.0
    assert float(x.grad) == 64.0  # 8 x^3


def test_generation_order_on_a_wider_diamond():
    x = Variable(np.array(3.0))
    a = square(x)
    b = a * 2.0
    c = a + x  # mixes a deep and a shallow path into x
    y = b * c  # 2x^2 (x^2 + x) = 2x^4 + 2x^3
    y.backward()
    assert float(x.grad) == pytest.approx(8 * 27 + 6 * 9)


def test_same_input_twice_accumulates_and_does_not_alias():
    x = Variable(np.array(3.0))
    y = x + x
    y.backward()
    assert float(x.grad) == 2.0
    x.cleargrad()
    y = x + x + x
    y.backward()
    assert float(x.grad) == 3.0


def test_grads_accumulate_across_calls_until_cleargrad():
    x = Variable(np.array(3.0))
    square(x).backward()
    square(x).backward()
    assert float(x.grad) == 12.0
    x.cleargrad()
    assert x.grad is None
    square(x).backward()
    assert float(x.grad) == 6.0


def test_no_in_place_update_of_a_shared_gradient_array():
    # Add hands the same gy array to both inputs; accumulating into one must not touch the other
    x = Variable(np.array([1.0, 2.0]))
    a = x + 0.0
    y = a + x
    y.backward(retain_grad=True)
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    np.testing.assert_array_equal(a.grad, [1.0, 1.0])
    np.testing.assert_array_equal(y.grad, [1.0, 1.0])


def test_operators_values_and_gradients():
    a = Variable(np.array(3.0))
    b = Variable(np.array(2.0))
    c = Variable(np.array(1.0))
    y = a * b + c
    y.backward()
    assert float(y.data) == 7.0
    assert (float(a.grad), float(b.grad), float(c.grad)) == (2.0, 3.0, 1.0)

    cases = [
        (lambda x: x + 2.0, 5.0, 1.0),
        (lambda x: 2.0 + x, 5.0, 1.0),
        (lambda x: x * 2, 6.0, 2.0),
        (lambda x: 2 * x, 6.0, 2.0),
        (lambda x: -x, -3.0, -1.0),
        (lambda x: x - 1.0, 2.0, 1.0),
        (lambda x: 1.0 - x, -2.0, -1.0),
        (lambda x: x / 2.0, 1.5, 0.5),
        (lambda x: 6.0 / x, 2.0, -6.0 / 9.0),
        (lambda x: x**3, 27.0, 27.0),
        (lambda x: np.array(2.0) * x, 6.0, 2.0),
        (lambda x: np.array(1.0) - x, -2.0, -1.0),
        (lambda x: np.array(6.0) / x, 2.0, -6.0 / 9.0),
        (lambda x: x / x, 1.0, 0.0),
    ]
    for f, value, grad in cases:
        x = Variable(np.array(3.0))
        y = f(x)
        assert isinstance(y, Variable)
        y.backward()
        assert float(y.data) == pytest.approx(value)
        assert float(x.grad) == pytest.approx(grad)


def test_ndarray_on_the_left_gives_a_variable():
    x = Variable(np.array([1.0, 2.0]))
    y = np.array([3.0, 4.0]) + x
    assert isinstance(y, Variable)
    np.testing.assert_array_equal(y.data, [4.0, 6.0])


def test_float_scalars_keep_float32():
    x = Variable(np.array([1.0, 2.0], dtype=np.float32))
    y = (x * 2.5 + np.float64(1.0)) / 3.0 - 0.5
    y = 1.0 - y
    y = y ** np.float64(2.0)
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_function_with_two_outputs():
    x = Variable(np.array([1.0, 2.0, 3.0, 4.0]))
    a, b = SplitHalves()(x)
    y = a * b  # [1*3, 2*4]
    y.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0, 1.0, 2.0])


def test_unused_output_of_a_multi_output_function_is_tolerated():
    x = Variable(np.array([1.0, 2.0, 3.0, 4.0]))
    a, _ = SplitHalves()(x)
    del _
    (a * 2.0).backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 0.0, 0.0])


def test_retain_grad():
    x = Variable(np.array(2.0))
    a = square(x)
    y = a * 3.0
    y.backward()
    assert y.grad is None and a.grad is None
    assert float(x.grad) == 12.0
    x.cleargrad()
    y = square(x) * 3.0
    a = y.creator.inputs[0]
    y.backward(retain_grad=True)
    assert float(y.grad) == 1.0
    assert float(a.grad) == 3.0


def test_no_grad_records_nothing_and_restores():
    x = Variable(np.array(2.0))
    with no_grad():
        assert Config.enable_backprop is False
        y = square(x) + x
    assert Config.enable_backprop is True
    assert y.creator is None
    assert float(y.data) == 6.0
    with using_config("enable_backprop", False):
        assert square(x).creator is None
    assert square(x).creator is not None


def test_using_config_restores_after_an_exception():
    with pytest.raises(RuntimeError), no_grad():
        raise RuntimeError("boom")
    assert Config.enable_backprop is True


def test_graph_is_freed_without_the_garbage_collector():
    gc.disable()
    try:
        x = Variable(np.linspace(0.0, 1.0, 100))
        y = square(square(x))
        ref = weakref.ref(y.creator)
        del y
        assert ref() is None
    finally:
        gc.enable()


def test_deep_chain_without_recursion():
    x = Variable(np.array(1.0))
    y = x
    for _ in range(10_000):
        y = y + 0.0
    y.backward()
    assert float(x.grad) == 1.0


def test_variable_properties_and_repr():
    x = Variable(np.array([[1, 2, 3], [4, 5, 6]]), name="x")
    assert x.name == "x"
    assert x.shape == (2, 3)
    assert (x.ndim, x.size, len(x)) == (2, 6, 2)
    assert x.dtype == np.array([1]).dtype
    assert repr(x) == "variable([[1 2 3]\n          [4 5 6]])"
    assert repr(Variable(None)) == "variable(None)"
    assert repr(Variable(np.array(1.5))) == "variable(1.5)"


def test_variable_data_types():
    assert Variable(np.float32(1.5)).data.dtype == np.float32
    assert Variable(2.0).data.shape == ()
    with pytest.raises(TypeError, match="not list"):
        Variable([1.0, 2.0])
    with pytest.raises(TypeError, match="not str"):
        Variable("1.0")
    v = Variable(np.array(1.0))
    assert as_variable(v) is v
    assert isinstance(as_variable(np.array(1.0)), Variable)
    assert isinstance(as_array(1.0), np.ndarray)
    a = np.array([1.0])
    assert as_array(a) is a


def test_backward_on_a_variable_without_data():
    with pytest.raises(ValueError, match="without data"):
        Variable(None).backward()


def test_variable_exponent_is_rejected_with_a_clear_message():
    with pytest.raises(TypeError, match="constant exponents"):
        Variable(np.array(2.0)) ** Variable(np.array(2.0))


def test_setup_variable_is_idempotent():
    setup_variable()
    x = Variable(np.array(2.0))
    assert float((x * x).data) == 4.0


def test_leaf_backward_seeds_ones():
    x = Variable(np.array([1.0, 2.0]))
    x.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def _goldstein(x, y):
    return (1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2)) * (
        30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2)
    )


@pytest.mark.parametrize(
    "f, expected",
    [
        (lambda x, y: x**2 + y**2, (2.0, 2.0)),
        (lambda x, y: 0.26 * (x**2 + y**2) - 0.48 * x * y, (0.040000000000000036,) * 2),
        (_goldstein, (-5376.0, 8064.0)),
    ],
    ids=["sphere", "matyas", "goldstein"],
)
def test_book_step24_functions_written_with_operators(f, expected):
    x = Variable(np.array(1.0))
    y = Variable(np.array(1.0))
    f(x, y).backward()
    assert (float(x.grad), float(y.grad)) == pytest.approx(expected, rel=1e-15)


def test_book_step27_user_written_sin():
    class Sin(Function):
        def forward(self, x):
            return np.sin(x)

        def backward(self, gy):
            return gy * np.cos(self.inputs[0].data)

    x = Variable(np.array(np.pi / 4))
    Sin()(x).backward()
    assert float(x.grad) == pytest.approx(np.cos(np.pi / 4), rel=1e-15)
