"""dezero.func against closed forms and central differences; composition; .grad untouched."""

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import Variable, func


def central_grad(f, x, eps=1e-6):
    """d f / d x of a NumPy function f (any output shape) by central differences:
    shape f(x).shape + x.shape."""
    x = np.asarray(x, dtype=np.float64)
    y0 = np.asarray(f(x))
    J = np.zeros(y0.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        J[(..., *idx)] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps)
    return J


def rosenbrock(x):  # non-quadratic
    return F.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_np(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_hessian(x):
    n = len(x)
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        H[i, i + 1] += -400 * x[i]
        H[i + 1, i] += -400 * x[i]
        H[i + 1, i + 1] += 200
    return H


X0 = np.array([-1.2, 1.0, 0.7, 1.5])


def test_grad_closed_form_and_central_differences():
    g = func.grad(rosenbrock)(X0)
    assert isinstance(g, np.ndarray) and g.shape == X0.shape
    np.testing.assert_allclose(g, central_grad(rosenbrock_np, X0), rtol=1e-6, atol=1e-6)
    x = np.array(0.7)
    np.testing.assert_allclose(func.grad(lambda v: F.sin(v) * F.exp(v))(x),
                               np.exp(x) * (np.sin(x) + np.cos(x)), rtol=1e-12)


def test_hessian_of_a_non_quadratic():
    H = func.hessian(rosenbrock)(X0)
    assert H.shape == (4, 4)
    np.testing.assert_allclose(H, rosenbrock_hessian(X0), rtol=1e-12)
    g_np = lambda x: func.grad(rosenbrock)(x)  # noqa: E731
    np.testing.assert_allclose(H, central_grad(g_np, X0), rtol=1e-5, atol=1e-4)


def test_jacobian_of_a_vector_function():
    def f(x):  # R^3 -> R^2
        return F.stack([x[0] * x[1] * x[2], F.sin(x[0]) + x[2] ** 2])

    def f_np(x):
        return np.array([x[0] * x[1] * x[2], np.sin(x[0]) + x[2] ** 2])

    x = np.array([0.5, -1.5, 2.0])
    J = func.jacobian(f)(x)
    expected = np.array([[x[1] * x[2], x[0] * x[2], x[0] * x[1]],
                         [np.cos(x[0]), 0.0, 2 * x[2]]])
    np.testing.assert_allclose(J, expected, rtol=1e-12)
    np.testing.assert_allclose(J, central_grad(f_np, x), rtol=1e-6, atol=1e-8)
    # matrix in, matrix out: shape out.shape + in.shape
    A = np.arange(6.0).reshape(2, 3)
    J2 = func.jacobian(lambda m: m * m)(A)
    assert J2.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(J2.reshape(6, 6), np.diag(2 * A.ravel()))


def test_grad_of_grad_any_order():
    f = lambda x: x**4 - 2 * x**2  # noqa: E731
    x = np.array(2.0)
    d1 = func.grad(f)
    d2 = func.grad(d1)
    d3 = func.grad(d2)
    d4 = func.grad(d3)
    assert float(d1(x)) == 4 * 8 - 4 * 2
    assert float(d2(x)) == 12 * 4 - 4
    assert float(d3(x)) == 24 * 2
    assert float(d4(x)) == 24
    # grad of grad of a vector input through a sum
    g2 = func.grad(lambda v: F.sum(func.grad(lambda u: F.sum(F.sin(u)))(v) ** 2))
    v = np.array([0.3, 1.1])
    np.testing.assert_allclose(g2(v), -2 * np.cos(v) * np.sin(v), rtol=1e-12)


def test_jacobian_of_grad_is_the_hessian():
    H = func.jacobian(func.grad(rosenbrock))(X0)
    np.testing.assert_allclose(H, rosenbrock_hessian(X0), rtol=1e-12)


def test_argnums_and_value_and_grad():
    f = lambda x, y, z: F.sum(x * x * y) + z  # noqa: E731
    x, y, z = np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array(5.0)
    gx, gy = func.grad(f, argnums=(0, 1))(x, y, z)
    np.testing.assert_allclose(gx, 2 * x * y)
    np.testing.assert_allclose(gy, x * x)
    np.testing.assert_allclose(func.grad(f, argnums=-1)(x, y, z), 1.0)
    value, g = func.value_and_grad(f, 1)(x, y, z)
    np.testing.assert_allclose(value, np.sum(x * x * y) + z)
    np.testing.assert_allclose(g, x * x)
    H = func.hessian(f, argnums=(0, 1))(x, y, z)
    np.testing.assert_allclose(H[0][1], np.diag(2 * x))
    np.testing.assert_allclose(H[1][0], np.diag(2 * x))
    np.testing.assert_allclose(H[1][1], np.zeros((2, 2)))


def test_vjp_jvp_hvp_match_the_jacobian():
    def f(x):
        return F.tanh(x) * F.sum(x**2)

    x = np.array([0.2, -0.4, 0.9])
    J = func.jacobian(f)(x)
    u = np.array([1.0, -2.0, 0.5])
    v = np.array([0.3, 0.1, -1.0])
    out, vjp_fn = func.vjp(f, x)
    np.testing.assert_allclose(out, np.tanh(x) * np.sum(x**2))
    (g,) = vjp_fn(u)
    np.testing.assert_allclose(g, u @ J, rtol=1e-12)
    np.testing.assert_allclose(vjp_fn(v)[0], v @ J, rtol=1e-12)  # called again
    out2, t = func.jvp(f, (x,), (v,))
    np.testing.assert_allclose(out2, out)
    np.testing.assert_allclose(t, J @ v, rtol=1e-12)
    H = rosenbrock_hessian(X0)
    np.testing.assert_allclose(func.hvp(rosenbrock, (X0,), (X0[::-1].copy(),)),
                               H @ X0[::-1], rtol=1e-12)


def test_jvp_and_hvp_with_two_primals():
    f = lambda a, b: a * F.exp(b)  # noqa: E731
    a, b = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    ta, tb = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    _, t = func.jvp(f, (a, b), (ta, tb))
    np.testing.assert_allclose(t, ta * np.exp(b) + a * np.exp(b) * tb)
    hs = func.hvp(lambda a, b: F.sum(a * a * b), (a, b), (ta, tb))
    # H = [[2b, 2a], [2a, 0]] blockwise diagonal
    np.testing.assert_allclose(hs[0], 2 * b * ta + 2 * a * tb)
    np.testing.assert_allclose(hs[1], 2 * a * ta)


def test_variables_in_variables_out_and_caller_grads_untouched():
    x = Variable(np.array([1.0, 2.0]))
    x.grad = Variable(np.array([100.0, 100.0]))
    layer = L.Linear(1, in_size=2)
    layer.W.grad = Variable(np.full((2, 1), 7.0, dtype=np.float32))

    def f(v):
        return F.sum(layer(v.reshape(1, 2)) ** 2)

    g = func.grad(f)(x)
    assert isinstance(g, Variable)
    np.testing.assert_array_equal(x.grad.data, [100.0, 100.0])
    np.testing.assert_array_equal(layer.W.grad.data, 7.0)
    assert layer.b.grad is None
    # the gradient is a function of x: differentiate it with the ordinary engine
    F.sum(g).backward()
    W = layer.W.data.astype(np.float64).ravel()
    np.testing.assert_allclose(x.grad.data, 100.0 + 2 * W * W.sum(), rtol=1e-6)


def test_intermediate_argument_stops_the_pass_there():
    w = Variable(np.array(3.0))
    h = w * 2  # the caller's graph: h depends on w
    g = func.grad(lambda v: v**3)(h)  # 3 h^2
    assert float(g.data) == 108.0
    assert w.grad is None and h.grad is None
    g.backward()  # d/dw 3 (2w)^2 = 24 w
    assert float(w.grad.data) == 72.0


def test_works_under_no_grad_and_returns_no_graph():
    x = Variable(np.array(2.0))
    with dezero.no_grad():
        g = func.grad(lambda v: v**3)(x)
    assert float(g.data) == 12.0 and g.creator is None


def test_float32_stays_float32():
    x = np.array([1.0, 2.0], dtype=np.float32)
    assert func.grad(lambda v: F.sum(v**2))(x).dtype == np.float32
    assert func.hessian(lambda v: F.sum(v**3))(x).dtype == np.float32


def test_function_that_ignores_an_argument_has_zero_gradient():
    gx, gy = func.grad(lambda x, y: x * 2, argnums=(0, 1))(np.array(1.0), np.array([1.0, 2.0]))
    assert float(gx) == 2.0
    np.testing.assert_array_equal(gy, [0.0, 0.0])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"grad: f must return a single value .* shape \(2,\)"):
        func.grad(lambda x: x * 2)(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="argnums=3 does not name one of the 2"):
        func.grad(lambda x, y: x * y, argnums=3)(1.0, 2.0)
    with pytest.raises(ValueError, match=r"the cotangent has shape \(3,\), f's output \(2,\)"):
        func.vjp(lambda x: x * 2, np.array([1.0, 2.0]))[1](np.ones(3))
    with pytest.raises(ValueError, match="jvp: 1 primal"):
        func.jvp(lambda x: x, (np.ones(2),), (np.ones(2), np.ones(2)))
    with pytest.raises(ValueError, match=r"jvp: a tangent has shape \(3,\), its primal \(2,\)"):
        func.jvp(lambda x: x, (np.ones(2),), (np.ones(3),))
    with pytest.raises(TypeError, match="f must return one Variable or array, not a tuple"):
        func.jacobian(lambda x: (x, x))(np.ones(2))


def test_on_the_device(xp):
    x = xp.asarray(X0)
    H = func.hessian(rosenbrock)(x)
    assert type(H) is type(x)
    np.testing.assert_allclose(dezero.cuda.as_numpy(H), rosenbrock_hessian(X0), rtol=1e-12)


def test_jvp_and_hvp_of_variables_compose_with_the_engine():
    x = Variable(np.array([0.5, 1.5]))
    v = np.array([1.0, 2.0])
    out, t = func.jvp(lambda a: a**3, (x,), (v,))
    assert isinstance(out, Variable) and isinstance(t, Variable)
    np.testing.assert_allclose(t.data, 3 * x.data**2 * v)
    assert x.grad is None
    F.sum(t).backward()  # d/dx sum(3 x^2 v) = 6 x v
    np.testing.assert_allclose(x.grad.data, 6 * x.data * v)
    x.cleargrad()
    hv = func.hvp(lambda a: F.sum(a**4), (x,), (v,))  # 12 x^2 v
    np.testing.assert_allclose(hv.data, 12 * x.data**2 * v)
    assert x.grad is None
    F.sum(hv).backward()  # 24 x v
    np.testing.assert_allclose(x.grad.data, 24 * x.data * v)


def test_argnums_twice_and_f_without_a_return_are_refused():
    from dezero import func

    def f(x, y):
        return (x * y).sum()

    with pytest.raises(ValueError, match=r"argnums=\(0, 0\) names argument 0 twice"):
        func.grad(f, argnums=(0, 0))(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"names argument 1 twice"):
        func.jacobian(f, argnums=(1, -1))(np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="argnums must be an int or a tuple of ints"):
        func.grad(f, argnums=0.5)(np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="argnums must be an int or a tuple of ints, got True"):
        func.grad(f, argnums=True)(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="does not name one of the 2"):
        func.grad(f, argnums=(0, 2))(np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="f returned None"):
        func.grad(lambda x: None)(np.ones(2))
    with pytest.raises(TypeError, match="f must return a number, a Variable or an array"):
        func.grad(lambda x: "x")(np.ones(2))
