"""No silent wrong answers (#10 item 3): what an op keeps for backward is its own, and
inputs that NumPy would accept with a meaningless result are refused with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable, cuda

# --- what backward needs is kept by value -----------------------------------------------


def _grad_after_refill(make_loss, x, buffer, refill):
    """x.grad when ``buffer`` is refilled (in place) between forward and backward."""
    x = Variable(x.copy())
    loss = make_loss(x, buffer)
    buffer[...] = refill
    loss.backward()
    return x.grad.data


def _grad_untouched(make_loss, x, buffer):
    x = Variable(x.copy())
    make_loss(x, buffer).backward()
    return x.grad.data


@pytest.mark.parametrize(("make_loss", "buffer", "refill"), [
    (lambda x, i: F.sum(F.get_item(x, i) * np.arange(3.0)), np.array([0, 0, 2]), 1),
    (lambda x, i: F.sum(x[i, 1:] * np.arange(2.0)), np.array([2, 0, 2]), 3),
    (lambda x, m: F.sum(x[m] * np.arange(3.0)), np.array([True, False, True, False]), True),
    (lambda x, t: F.softmax_cross_entropy(x, t), np.array([0, 2, 1, 2]), 0),
    (lambda x, ids: F.sum(F.embed_id(ids, x) * np.arange(3.0)), np.array([[1, 1], [0, 3]]), 2),
    (lambda x, c: F.sum(F.where(c, x, 0.0) * np.arange(3.0)),
     np.array([[True, False, True]] * 4), False),
])
def test_refilling_an_index_buffer_before_backward_does_not_change_the_gradient(
        make_loss, buffer, refill):
    x = np.random.default_rng(0).standard_normal((4, 3))
    expected = _grad_untouched(make_loss, x, buffer.copy())
    np.testing.assert_array_equal(_grad_after_refill(make_loss, x, buffer, refill), expected)


def test_refilled_buffers_do_not_change_second_order_gradients_either():
    W = Variable(np.random.default_rng(1).standard_normal((5, 2)))
    ids = np.array([1, 4, 1])
    y = F.sum(F.embed_id(ids, W) ** 2)
    ids[:] = 0
    y.backward(create_graph=True)
    gW = W.grad
    W.cleargrad()
    F.sum(gW * gW).backward()
    counts = np.bincount([1, 4, 1], minlength=5)[:, None]  # what the ids were at forward
    np.testing.assert_allclose(W.grad.data, 8 * counts**2 * W.data)


def test_refilled_index_buffers_on_every_device(xp):
    x0 = xp.asarray(np.random.default_rng(2).standard_normal((4, 3)))

    def grad(refill):
        x = Variable(x0.copy())
        i, t, ids = xp.asarray([0, 0, 2]), xp.asarray([0, 2, 1, 2]), xp.asarray([1, 1, 3])
        y = F.sum(x[i] * 2.0) + F.softmax_cross_entropy(x, t) + F.sum(F.embed_id(ids, x))
        if refill:
            i[...], t[...], ids[...] = 1, 0, 2
        y.backward()
        return cuda.as_numpy(x.grad.data)

    np.testing.assert_array_equal(grad(refill=True), grad(refill=False))


# --- accuracy checks its labels as softmax_cross_entropy does -----------------------------

@pytest.mark.parametrize("f", [F.accuracy, F.softmax_cross_entropy])
@pytest.mark.parametrize(("t", "err", "match"), [
    (np.array([0, 3, 1]), ValueError, r"{}: label 3 is out of range for 3 classes"),
    (np.array([0, -1, 1]), ValueError, r"{}: label -1 is out of range for 3 classes"),
    (np.array([0, 1]), ValueError, r"{}: 2 labels for a batch of 3 scores"),
    (np.array([0.0, 1.0, 2.0]), TypeError, r"{}: integer labels are required.*float64"),
])
def test_accuracy_checks_labels_like_softmax_cross_entropy(f, t, err, match):
    with pytest.raises(err, match=match.format(f.__name__)):
        f(np.zeros((3, 3)), t)


# --- mean_squared_error with different shapes ----------------------------------------------

def test_mean_squared_error_warns_about_shapes_that_broadcast_to_a_matrix():
    with pytest.warns(UserWarning, match=r"shapes \(4, 1\) and \(4,\) are broadcast .*\(4, 4\)"):
        F.mean_squared_error(np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(ValueError, match=r"shapes \(4, 2\) and \(3,\) do not broadcast"):
        F.mean_squared_error(np.zeros((4, 2)), np.zeros(3))


def test_mean_squared_error_of_equal_or_fitting_shapes_does_not_warn(recwarn):
    F.mean_squared_error(Variable(np.zeros((4, 1))), np.ones((4, 1)))
    F.mean_squared_error(Variable(np.zeros((4, 3))), np.ones(3))  # one target row for all
    F.mean_squared_error(np.ones(()), Variable(np.zeros((4, 3))))
    assert not [w for w in recwarn if "mean_squared_error" in str(w.message)]


# --- ops that need an ordering refuse complex input ---------------------------------------

_Z = np.array([[1 + 2j, -1j], [3.0, 1j]])
_T = np.array([0, 1])

_ORDERED = {
    "relu": lambda z: F.relu(z),
    "leaky_relu": lambda z: F.leaky_relu(z),
    "sigmoid": lambda z: F.sigmoid(z),
    "max": lambda z: F.max(z),
    "min": lambda z: F.min(z, axis=1),
    "maximum": lambda z: F.maximum(z, 0.0),
    "minimum": lambda z: F.minimum(1.0, z),
    "logsumexp": lambda z: F.logsumexp(z),
    "pooling": lambda z: F.pooling(z.reshape(1, 1, 2, 2), 2),
    "softmax": lambda z: F.softmax(z),
    "log_softmax": lambda z: F.log_softmax(z),
    "softmax_cross_entropy": lambda z: F.softmax_cross_entropy(z, _T),
    "sigmoid_cross_entropy": lambda z: F.sigmoid_cross_entropy(z, np.ones((2, 2))),
    "binary_cross_entropy": lambda z: F.binary_cross_entropy(z, np.ones((2, 2))),
    "mean_squared_error": lambda z: F.mean_squared_error(np.zeros((2, 2)), z),
    "clip": lambda z: F.clip(z, 0.0, 1.0),
    "accuracy": lambda z: F.accuracy(z, _T),
}


@pytest.mark.parametrize("name", list(_ORDERED))
@pytest.mark.parametrize("wrap", [np.asarray, Variable])
def test_ops_that_need_an_ordering_refuse_complex_input(name, wrap):
    with pytest.raises(TypeError, match=rf"^{name}: complex input \(dtype complex128\)"):
        _ORDERED[name](wrap(_Z))


# --- a non-integer axis --------------------------------------------------------------------

_AXIS_OPS = {
    "sum": F.sum, "average": F.average, "var": F.var, "std": F.std, "max": F.max,
    "min": F.min, "logsumexp": F.logsumexp, "softmax": F.softmax,
    "log_softmax": F.log_softmax, "softmax_simple": F.softmax_simple,
}


@pytest.mark.parametrize("name", list(_AXIS_OPS))
@pytest.mark.parametrize("axis", [1.0, "1", (0, 1.5), True, [np.float32(1)]])
def test_an_axis_that_is_not_an_int_names_axis_and_the_op(name, axis):
    with pytest.raises(TypeError, match=rf"^{name}: axis must be an int, a tuple/list of ints"):
        _AXIS_OPS[name](np.ones((2, 3)), axis=axis)


@pytest.mark.parametrize("axis", [1, np.int64(1), (0, 1), [0, np.int32(1)], None, -1])
def test_integer_axes_still_work(axis):
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(F.sum(x, axis=axis).data, x.sum(axis=tuple(axis)
                               if isinstance(axis, list) else axis))
    np.testing.assert_allclose(F.max(x, axis=axis).data, x.max(axis=tuple(axis)
                               if isinstance(axis, list) else axis))


@pytest.mark.parametrize(("call", "name"), [
    (lambda: F.expand_dims(np.ones(2), 0.5), "expand_dims"),
    (lambda: F.concat([np.ones(2), np.ones(2)], axis="0"), "concat"),
    (lambda: F.stack([np.ones(2), np.ones(2)], axis=None), "stack"),
    (lambda: F.split(np.ones(4), 2, axis=0.0), "split"),
    (lambda: F.squeeze(np.ones((1, 2)), axis=0.0), "squeeze"),
])
def test_shape_ops_name_axis_too(call, name):
    with pytest.raises(TypeError, match=rf"^{name}: axis must be an int"):
        call()

