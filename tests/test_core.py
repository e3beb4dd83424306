"""The engine: Variable, Function, backward order, memory, configuration and errors."""

import gc
import weakref

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import Function, Parameter, Variable, as_array, as_variable, no_grad, test_mode


def test_seed_example_matches_the_book():
    x = Variable(np.array(0.5))
    y = F.square(F.exp(F.square(x)))
    y.backward()
    assert x.grad.data == 3.297442541400256
    assert repr(x.grad) == "variable(3.297442541400256)"


def test_fourth_derivative_of_sin_through_create_graph():
    x = Variable(np.array(1.0))
    y = F.sin(x)
    y.backward(create_graph=True)
    for _ in range(3):
        gx = x.grad
        x.cleargrad()
        gx.backward(create_graph=True)
    assert abs(x.grad.data - np.sin(1.0)) < 1e-12


def test_second_derivative_of_polynomial():
    x = Variable(np.array(2.0))
    y = x**4 - 2 * x**2
    y.backward(create_graph=True)
    assert x.grad.data == 24.0  # 4x^3 - 4x
    gx = x.grad
    x.cleargrad()
    gx.backward()
    assert x.grad.data == 44.0  # 12x^2 - 4


def test_diamond_graph_visits_each_function_once():
    x = Variable(np.array(2.0))
    a = F.square(x)
    y = F.square(a) + F.square(a)  # 2 x^4
    y.backward()
    assert y.data == 32.0
    assert x.grad.data == 64.0  # 8 x^3


def test_same_variable_used_twice_accumulates():
    x = Variable(np.array(3.0))
    y = x + x
    y.backward()
    assert x.grad.data == 2.0
    y = x + x + x
    y.backward()  # without cleargrad the gradient accumulates
    assert x.grad.data == 5.0
    x.cleargrad()
    (x * x).backward()
    assert x.grad.data == 6.0


def test_generation_order_on_a_deep_chain_without_recursion_error():
    x = Variable(np.array(1.0))
    y = x
    for _ in range(10_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.data == 1.0
    assert y.generation == 20_000


def test_generation_order_with_branches_of_different_depth():
    x = Variable(np.array(1.5))
    a = F.sin(x)
    deep = a
    for _ in range(50):
        deep = deep * 1.0
    y = deep * a  # a is needed by two paths of very different depth
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * np.sin(1.5) * np.cos(1.5))


def test_graph_is_freed_by_reference_counting_alone():
    gc.collect()
    gc.disable()
    try:
        x = Variable(np.ones(3))
        y = F.exp(F.sin(x) * 2.0)
        f_ref = weakref.ref(y.creator)
        inner_ref = weakref.ref(y.creator.inputs[0].creator)
        y.backward()
        del y
        assert f_ref() is None, "a reference cycle keeps the graph alive"
        assert inner_ref() is None
    finally:
        gc.enable()


def test_deep_graph_is_freed_without_crashing():
    x = Variable(np.array(1.0))
    y = x
    for _ in range(10_000):
        y = F.sin(y)
    ref = weakref.ref(y.creator)
    del y
    assert ref() is None


def test_backward_frees_intermediate_grads_unless_retain_grad():
    x = Variable(np.array(2.0))
    a = F.square(x)
    y = F.exp(a)
    y.backward()
    # as in the book, every output's grad is freed, the root's too; leaves keep theirs
    assert a.grad is None and y.grad is None and x.grad is not None
    x.cleargrad()
    y.cleargrad()
    y = F.exp(F.square(x))
    a = y.creator.inputs[0]
    y.backward(retain_grad=True)
    np.testing.assert_allclose(a.grad.data, np.exp(4.0))


def test_gradients_carry_no_graph_without_create_graph():
    x = Variable(np.array(2.0))
    y = x**3
    y.backward()
    assert x.grad.creator is None
    x.cleargrad()
    y = x**3
    y.backward(create_graph=True)
    assert x.grad.creator is not None


def test_no_grad_records_nothing_and_restores():
    x = Variable(np.array(2.0))
    with no_grad():
        y = F.square(x)
        assert dezero.Config.enable_backprop is False
    assert y.creator is None
    assert dezero.Config.enable_backprop is True
    assert F.square(x).creator is not None


def test_test_mode_switches_train_flag():
    assert dezero.Config.train is True
    with test_mode():
        assert dezero.Config.train is False
    assert dezero.Config.train is True


def test_using_config_restores_on_error():
    with pytest.raises(RuntimeError), dezero.using_config("train", False):
        raise RuntimeError("boom")
    assert dezero.Config.train is True


def test_unchain_backward_cuts_the_past():
    x = Variable(np.array(1.0))
    a = F.sin(x)
    b = F.cos(a)
    y = b * 2.0
    y.unchain_backward()
    assert a.creator is None and b.creator is None and y.creator is not None
    y.backward()
    assert b.grad is not None  # b still feeds y's creator
    assert x.grad is None and a.grad is None


def test_variable_properties_and_repr():
    x = Variable(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), name="x")
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == np.float64
    assert len(x) == 2
    assert repr(x) == "variable([[1. 2. 3.]\n          [4. 5. 6.]])"
    assert repr(Variable(None)) == "variable(None)"
    assert x.T.shape == (3, 2)


def test_variable_accepts_numbers_and_numpy_scalars():
    assert Variable(1.5).data.dtype == np.float64
    assert Variable(np.float32(1.5)).data.dtype == np.float32
    assert Variable(3).data.ndim == 0
    assert isinstance(as_variable(np.ones(2)), Variable)
    assert as_array(2.0).ndim == 0


@pytest.mark.parametrize("bad", [[1.0, 2.0], "1.0", {"a": 1}, (1, 2), np.str_("a")])
def test_variable_rejects_unsupported_types(bad):
    with pytest.raises(TypeError, match=f"not {type(bad).__name__}"):
        Variable(bad)


def test_backward_without_data_raises():
    with pytest.raises(ValueError, match="without data"):
        Variable(None).backward()


def test_wrong_gradient_shape_names_the_function():
    class BadShape(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return F.sum(gy)

    x = Variable(np.ones(3))
    y = BadShape()(x)
    with pytest.raises(ValueError, match=r"BadShape\.backward returned a gradient of shape \(\)"):
        y.backward()


def test_wrong_gradient_dtype_names_the_function():
    class BadDtype(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return F.astype(gy, np.float64)

    x = Variable(np.ones(3, np.float32))
    y = BadDtype()(x)
    with pytest.raises(TypeError, match=r"BadDtype\.backward returned a gradient of dtype float64"):
        y.backward()


def test_pow_negative_base_with_fractional_exponent_raises():
    with pytest.raises(ValueError, match="negative base"):
        Variable(np.array([-1.0, 2.0])) ** 0.5
    with pytest.raises(ValueError, match="negative base"):
        Variable(np.array([-1.0, 2.0])) ** Variable(np.array([0.5, 1.0]))
    # integer exponents are fine with negative bases
    y = Variable(np.array([-2.0])) ** 3
    assert y.data[0] == -8.0
    y = Variable(np.array([-2.0])) ** Variable(np.array([2.0]))
    assert y.data[0] == 4.0


@pytest.mark.parametrize("scalar", [2.0, np.float64(2.0), np.float32(2.0), 2, np.int64(2),
                                    np.array(2.0)])
def test_float32_graph_stays_float32_with_scalars(scalar):
    x = Variable(np.ones((2, 2), np.float32))
    ys = [x + scalar, scalar + x, x - scalar, scalar - x, x * scalar, scalar * x,
          x / scalar, scalar / x, x**scalar, scalar**x]
    for y in ys:
        assert y.dtype == np.float32, f"{y.creator} gave {y.dtype}"
    total = ys[0]
    for y in ys[1:]:
        total = total + y
    total.backward()
    assert x.grad.dtype == np.float32


def test_mixed_precision_gradient_is_cast_back():
    x32 = Variable(np.ones(3, np.float32))
    x64 = Variable(np.ones(3, np.float64))
    y = x32 * x64
    assert y.dtype == np.float64
    y.backward()
    assert x32.grad.dtype == np.float32 and x64.grad.dtype == np.float64


def test_astype_gradient_is_cast_back():
    x = Variable(np.ones(3, np.float64))
    y = F.astype(x, np.float32) * 2.0
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0, 2.0])


def test_operators_with_ndarrays_on_either_side():
    a = np.array([1.0, 2.0])
    x = Variable(np.array([3.0, 4.0]))
    for y in (a + x, a - x, a * x, a / x, x + a, a**x, a @ x, x @ a):
        assert isinstance(y, Variable)
    np.testing.assert_allclose((a - x).data, [-2.0, -2.0])
    np.testing.assert_allclose((a @ x).data, 11.0)


def test_integer_variables_work_like_the_book():
    x = Variable(np.array([[1, 2, 3], [4, 5, 6]]))
    y = F.sum(x)
    y.backward()
    np.testing.assert_array_equal(x.grad.data, np.ones((2, 3)))
    x = Variable(np.array([1, 2]))
    assert (x * 2.5).dtype == np.float64


def test_parameter_is_a_variable():
    p = Parameter(np.ones(2))
    assert isinstance(p, Variable)
    assert isinstance(p * 2, Variable) and not isinstance(p * 2, Parameter)


def test_setup_variable_and_simple_core_flag():
    dezero.setup_variable()
    assert dezero.is_simple_core is False


def test_import_dezero_is_light():
    import subprocess
    import sys

    code = (
        "import sys, dezero; "
        "bad = [m for m in ('matplotlib', 'PIL', 'cupy', 'tqdm', 'torch') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
