"""The book's stage-3/4 programs run unchanged: linear regression (step 42) and a 2-layer
network fitting a sine curve with hand-written parameters (step 43).

The numbers the book prints for these programs (same seeds, same RNG stream) are reproduced;
the fits are also checked against what they should converge to (least squares, the curve).
Also here: the fused ``linear``/``sigmoid`` of step 43 against the book's composites.
"""

# ruff: noqa: NPY002  (the book's programs draw from the legacy global generator: same
# seeds, same stream, same printed numbers)

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable


def _regression_data():
    np.random.seed(0)
    x = np.random.rand(100, 1)
    y = 5 + 2 * x + np.random.rand(100, 1)
    return x, y


@pytest.mark.parametrize("mse", [F.mean_squared_error, F.mean_squared_error_simple])
def test_step42_linear_regression(mse):
    x, y = _regression_data()
    x, y = Variable(x), Variable(y)
    W = Variable(np.zeros((1, 1)))
    b = Variable(np.zeros(1))

    def predict(x):
        return F.matmul(x, W) + b

    lr = 0.1
    losses = []
    for _ in range(100):
        y_pred = predict(x)
        loss = mse(y, y_pred)
        W.cleargrad()
        b.cleargrad()
        loss.backward()
        W.data -= lr * W.grad.data
        b.data -= lr * b.grad.data
        losses.append(float(loss.data))

    # the values the book prints after 100 iterations
    np.testing.assert_allclose(W.data, [[2.11807369]], rtol=1e-7)
    np.testing.assert_allclose(b.data, [5.46608905], rtol=1e-7)
    assert losses[-1] == pytest.approx(0.07908606512411756, rel=1e-7)
    assert all(a >= b for a, b in zip(losses, losses[1:]))  # gradient descent on a quadratic

    # and it is heading to the least-squares solution (y = 5.5 + 2x, noise mean 0.5)
    A = np.hstack([x.data, np.ones((100, 1))])
    (w_ls,), (b_ls,) = np.linalg.lstsq(A, y.data, rcond=None)[0]
    assert abs(W.data[0, 0] - w_ls) < 0.2 and abs(b.data[0] - b_ls) < 0.1
    assert losses[-1] < 1.05 * float(np.mean((A @ [[w_ls], [b_ls]] - y.data) ** 2))


def test_step43_two_layer_network_fits_a_sine_curve():
    np.random.seed(0)
    x = np.random.rand(100, 1)
    y = np.sin(2 * np.pi * x) + np.random.rand(100, 1)

    I, H, O = 1, 10, 1
    W1 = Variable(0.01 * np.random.randn(I, H))
    b1 = Variable(np.zeros(H))
    W2 = Variable(0.01 * np.random.randn(H, O))
    b2 = Variable(np.zeros(O))

    def predict(x):
        y = F.linear(x, W1, b1)
        y = F.sigmoid(y)
        y = F.linear(y, W2, b2)
        return y

    lr = 0.2
    iters = 10000
    printed = {}
    for i in range(iters):
        y_pred = predict(x)
        loss = F.mean_squared_error(y, y_pred)
        W1.cleargrad()
        b1.cleargrad()
        W2.cleargrad()
        b2.cleargrad()
        loss.backward()
        W1.data -= lr * W1.grad.data
        b1.data -= lr * b1.grad.data
        W2.data -= lr * W2.grad.data
        b2.data -= lr * b2.grad.data
        if i % 1000 == 0:
            printed[i] = float(loss.data)

    # the losses the book prints every 1000 iterations (plateau, then the curve is found)
    book = {0: 0.8473695850105871, 1000: 0.2514286285183607, 3000: 0.23786120447054812,
            5000: 0.16742181117834, 7000: 0.07849528290602335, 9000: 0.07722132399559317}
    for i, value in book.items():
        assert printed[i] == pytest.approx(value, rel=1e-6), f"iteration {i}"

    # the fit: noise is uniform [0, 1) (variance 1/12), so the best possible loss is ~0.083
    assert float(loss.data) < 0.08
    grid = np.linspace(0.05, 0.95, 19).reshape(-1, 1)
    fitted = predict(grid).data
    np.testing.assert_allclose(fitted, np.sin(2 * np.pi * grid) + 0.5, atol=0.2)


def test_step43_fused_ops_agree_with_book_composites():
    x = np.random.randn(7, 3)
    W = np.random.randn(3, 4)
    b = np.random.randn(4)

    def run(linear, sigmoid):
        vs = [Variable(a) for a in (x, W, b)]
        y = F.sum(sigmoid(linear(*vs)) ** 2)
        y.backward(create_graph=True)
        grads = [v.grad for v in vs]
        for v in vs:
            v.cleargrad()
        F.sum(grads[1] * grads[1]).backward()  # a second-order quantity
        return [y.data] + [g.data for g in grads] + [v.grad.data for v in vs]

    fused = run(F.linear, F.sigmoid)
    composite = run(F.linear_simple, F.sigmoid_simple)
    for a, c in zip(fused, composite):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_linear_sigmoid_stay_finite_where_composite_overflows(dtype):
    x = Variable(np.array([[1.0, -1.0]], dtype=dtype))
    W = Variable(np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=dtype))  # pre-activations +-2e4
    y = F.sum(F.sigmoid(F.linear(x, W)))
    y.backward()
    assert np.isfinite(y.data) and np.all(np.isfinite(W.grad.data))
    assert y.dtype == dtype and W.grad.dtype == dtype
    np.testing.assert_allclose(W.grad.data, 0.0, atol=1e-30)  # both units saturated

    xs = Variable(x.data)
    Ws = Variable(W.data)
    with np.errstate(over="ignore", invalid="ignore"):
        F.sum(F.sigmoid_simple(F.linear_simple(xs, Ws))).backward()
    assert not np.all(np.isfinite(Ws.grad.data))
