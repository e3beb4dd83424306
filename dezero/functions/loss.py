"""Losses: mean_squared_error, softmax_cross_entropy, sigmoid_cross_entropy, binary_cross_entropy.

The fused losses compute their forward stably on arrays (log-sum-exp, log1p) and write their
backward with dezero functions, so derivatives of any order work. The book's composites
(``mean_squared_error_simple``, ``softmax_cross_entropy_simple``) stay available and serve
as test oracles. Every loss follows the book and divides by the batch size ``len(x)``.
"""

from __future__ import annotations

import warnings

import numpy as np

from dezero import array_utils, cuda
from dezero.core import Function, Variable, as_variable, constant, unbroadcast
from dezero.functions import _checks
from dezero.functions._ops import apply
from dezero.functions.activation import Sigmoid, softmax, softmax_simple
from dezero.functions.array import reshape
from dezero.functions.math import astype, clip, log
from dezero.functions.reduction import sum as _sum

__all__ = [
    "binary_cross_entropy",
    "mean_squared_error",
    "mean_squared_error_simple",
    "sigmoid_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_simple",
]


def _batch_size(shape) -> int:
    return shape[0] if len(shape) else 1


def _target_like(t, x):
    """A constant target (not a Variable) takes the float dtype of the data ``x``.

    Keeps a float64 NumPy target from promoting a float32 model's loss to float64.
    """
    if isinstance(t, Variable):
        return t
    t = constant(cuda.get_array_module(x).asarray(t))
    if x.dtype.kind == "f" and t.dtype != x.dtype:
        t = astype(t, x.dtype)  # an op: a replayed step (dezero.jit) casts each call's targets
    return t


def _as_data(t):
    return t.data if isinstance(t, Variable) else t


# =============================================================================
# mean squared error
# =============================================================================
class MeanSquaredError(Function):
    def forward(self, x0, x1):
        xp = cuda.get_array_module(x0)
        diff = x0 - x1
        self.N = _batch_size(diff.shape)
        d = diff.ravel()
        return xp.asarray((d @ d) / self.N, dtype=diff.dtype)

    def backward_array(self, xs, ys, gys):
        (x0, x1), gy = xs, gys[0]
        gx0 = (x0 - x1) * (gy * (2.0 / self.N))
        # no gradient is computed for a constant target; unbroadcast sums broadcast axes and
        # casts back where NumPy 1.x promotes a 0-d float32 times a Python float
        return (unbroadcast(gx0, x0),
                unbroadcast(-gx0, x1) if self.inputs[1].requires_grad else None)


def mean_squared_error(x0, x1):
    """Sum of squared differences divided by the batch size (the book's definition).

    Parameters
    ----------
    x0, x1 : Variable or ndarray
        Predictions and targets; they broadcast against each other.

    Returns
    -------
    Variable
        0-d: ``sum((x0 - x1) ** 2) / len(x0 - x1)``.

    Warns
    -----
    UserWarning
        When the inputs broadcast to a shape larger than either (``(N, 1)`` against
        ``(N,)`` gives ``(N, N)``, almost always a bug); the message names both shapes.
        A target that broadcasts to the other's shape (a row, a scalar) is fine.

    Notes
    -----
    As in DeZero (and unlike ``torch.nn.MSELoss``), the sum is divided by the batch size
    ``N = len(x0 - x1)`` (the first dimension), not by the number of elements: for
    targets shaped ``(N, 1)`` the two agree, for ``(N, D)`` this is ``D`` times the
    element mean.
    Derivative: ``d/dx0 = 2 (x0 - x1) / N``, ``d/dx1 = -2 (x0 - x1) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> mean_squared_error(np.array([[1.0, 2.0], [3.0, 4.0]]), np.zeros((2, 2)))
    variable(15.0)
    """
    if not isinstance(x0, Variable) and not isinstance(x1, Variable):
        x0 = as_variable(x0)
    _checks.real("mean_squared_error", x0)
    _checks.real("mean_squared_error", x1)
    shape0, shape1 = np.shape(_as_data(x0)), np.shape(_as_data(x1))
    if shape0 != shape1:
        try:
            shape = np.broadcast_shapes(shape0, shape1)
        except ValueError:
            raise ValueError(
                f"mean_squared_error: inputs of shapes {shape0} and {shape1} do not broadcast"
            ) from None
        if shape not in (shape0, shape1):  # (N, 1) against (N,) gives (N, N)
            warnings.warn(
                f"mean_squared_error: inputs of shapes {shape0} and {shape1} are broadcast "
                f"against each other (to {shape}); this is rarely intended: give both the "
                f"same shape",
                stacklevel=2,
            )
    if isinstance(x0, Variable):
        x1 = _target_like(x1, x0.data)
    else:
        x0 = _target_like(x0, x1.data)
    return MeanSquaredError()(x0, x1)


def mean_squared_error_simple(x0, x1):
    """The book's composite mean squared error ``sum((x0 - x1) ** 2) / len(x0 - x1)``.

    Kept as the oracle of :func:`mean_squared_error` (same value, divides by the batch size).

    Parameters
    ----------
    x0, x1 : Variable or ndarray

    Returns
    -------
    Variable

    Notes
    -----
    Built from sub, pow, sum and div; derivatives come from the chain rule.

    Examples
    --------
    >>> import numpy as np
    >>> mean_squared_error_simple(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    variable(2.5)
    """
    x0 = as_variable(x0)
    diff = x0 - x1
    return _sum(diff**2) / _batch_size(diff.shape)


# =============================================================================
# softmax cross entropy
# =============================================================================
def _class_labels(name, x, t, check_range=None):
    """Check integer class labels ``t`` against scores ``x`` (N, C); return them as (N,)."""
    _checks.real(name, x)
    if x.ndim != 2:
        raise ValueError(f"{name}: scores must be 2-d (N, C), got shape {x.shape}")
    xp = cuda.get_array_module(x)
    t = _as_data(t)
    if not isinstance(t, cuda.array_types):
        t = xp.asarray(t)
    if t.ndim == 2 and t.shape[1] == 1:
        t = t.reshape(-1)
    if t.ndim != 1:
        raise ValueError(
            f"{name}: labels must have shape (N,) or (N, 1), got shape {t.shape} for scores "
            f"of shape {x.shape}"
        )
    return _checks.class_labels(name, t, x.shape, xp, check_range)


class SoftmaxCrossEntropy(Function):
    """Inputs: the scores ``x`` (N, C) and the labels ``t`` ((N,) or (N, 1) ints, checked by
    the wrapper); the labels are an input, not an attribute, so that a replayed step
    (``dezero.jit``) reads each batch's labels."""

    def forward(self, x, t):
        xp = cuda.get_array_module(x)
        if xp is np:  # here, not only in the wrapper: a replayed step checks every batch
            _checks.label_range("softmax_cross_entropy", t, x.shape[1])
        # backward reads the labels: a copy (N ints), so that a caller refilling its label
        # buffer before backward() cannot change the gradient
        self.t = t.reshape(-1).copy()
        N = x.shape[0]
        self.log_z = array_utils.logsumexp(x, axis=1)  # (N, 1), stable for any finite logits
        log_p = x[xp.arange(N), self.t] - self.log_z[:, 0]
        return xp.asarray(-log_p.sum() / N, dtype=x.dtype)

    # both forms: the array form works in place on one buffer (memory)
    def backward(self, gy):
        x = self.inputs[0]
        N = x.shape[0]
        one_hot = OneHotLabels(self)(x)  # an op: a replayed step makes each batch's
        return (softmax(x, axis=1) - one_hot) * (gy * (1.0 / N)), None

    def backward_array(self, xs, ys, gys):
        # one fused array expression: (softmax(x) - one_hot(t)) * gy / N
        x = xs[0]
        xp = cuda.get_array_module(x)
        N = x.shape[0]
        gx = x - self.log_z
        xp.exp(gx, out=gx)
        gx[xp.arange(N), self.t] -= 1
        gx *= gys[0] / N
        return gx, None


class OneHotLabels(Function):
    """The one-hot labels of a SoftmaxCrossEntropy, in the shape and dtype of its scores
    (no gradient). It reads the labels that op saved when it runs (a copy of the caller's
    buffer), so that a replayed step (``dezero.jit``) uses each batch's."""

    def __init__(self, loss):
        self.loss = loss

    def forward(self, x):
        xp = cuda.get_array_module(x)
        one_hot = xp.zeros(x.shape, dtype=x.dtype)  # in x's dtype: no float64 creep
        one_hot[xp.arange(x.shape[0]), self.loss.t] = 1
        return one_hot

    def backward_array(self, xs, ys, gys):
        return None  # labels: no gradient


def softmax_cross_entropy(x, t):
    """Mean cross entropy between ``softmax(x)`` and integer class labels, fused and stable.

    Parameters
    ----------
    x : Variable or ndarray
        Scores (logits) of shape ``(N, C)``.
    t : ndarray or Variable of int
        Class labels of shape ``(N,)`` or ``(N, 1)``, each in ``[0, C)``.

    Returns
    -------
    Variable
        0-d: ``-sum(log_softmax(x)[i, t[i]]) / N``, in ``x``'s dtype.

    Raises
    ------
    TypeError
        If the labels are not integers.
    ValueError
        If ``x`` is not 2-d, the labels are not ``N`` long, or a label is outside
        ``[0, C)``.

    Notes
    -----
    ``log_softmax`` goes through log-sum-exp, so logits of any finite size give a finite
    loss and exact gradients. Derivative: ``d/dx = (softmax(x) - onehot(t)) / N``; the
    one-hot matrix is built in ``x``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [1e4, 0.0]])
    >>> softmax_cross_entropy(x, np.array([0, 1]))
    variable(5000.346573590279)
    """
    x = as_variable(x)
    # checked here, on the host; the Function gets the caller's own label array as an input
    t = _as_data(t)
    if not isinstance(t, cuda.array_types):
        t = cuda.get_array_module(x.data).asarray(t)
    _class_labels("softmax_cross_entropy", x.data, t)
    return SoftmaxCrossEntropy()(x, t)


def softmax_cross_entropy_simple(x, t):
    """The book's composite softmax cross entropy (softmax, clip, log, pick, mean).

    Kept as the oracle of :func:`softmax_cross_entropy`; it overflows for large logits.

    Parameters
    ----------
    x : Variable or ndarray
        Scores of shape ``(N, C)``.
    t : ndarray or Variable of int
        Labels of shape ``(N,)`` or ``(N, 1)``.

    Returns
    -------
    Variable

    Notes
    -----
    ``p = clip(softmax_simple(x), 1e-15, 1)``; ``-sum(log p[i, t[i]]) / N``. Derivatives
    come from the chain rule.

    Examples
    --------
    >>> import numpy as np
    >>> softmax_cross_entropy_simple(np.array([[0.0, 0.0]]), np.array([1]))
    variable(0.6931471805599453)
    """
    x = as_variable(x)
    given = _as_data(t)
    t = _class_labels("softmax_cross_entropy_simple", x.data, t, check_range=True)
    if isinstance(given, cuda.array_types) and t is not given:  # (N, 1) labels: as an op
        t = reshape(constant(given), t.shape)  # (a replayed step reads each call's labels)
    xp = cuda.get_array_module(x.data)
    N = x.shape[0]
    p = clip(softmax_simple(x), 1e-15, 1.0)
    log_p = log(p)[xp.arange(N), t]
    return -1 * _sum(log_p) / N


# =============================================================================
# binary losses
# =============================================================================
def _binary_targets(name, x, t):
    """Targets for a binary loss: reshaped to ``x``'s shape; arrays cast to ``x``'s dtype."""
    if isinstance(t, Variable) and t.dtype.kind == "f":  # soft targets: differentiable
        if t.shape != x.shape and t.size == x.size:
            t = t.reshape(x.shape)
    else:
        t = _target_like(_as_data(t), x.data)  # int labels take x's dtype
        if t.shape != x.shape and t.size == x.size:
            t = t.reshape(x.shape)  # an op, as the cast
    if t.shape != x.shape:
        raise ValueError(
            f"{name}: targets of shape {t.shape} do not match inputs of shape {x.shape}"
        )
    return t


class SigmoidCrossEntropy(Function):
    def forward(self, x, t):
        xp = cuda.get_array_module(x)
        self.N = _batch_size(x.shape)
        # softplus(x) - t x, with softplus(x) = max(x, 0) + log1p(exp(-|x|)): no overflow
        loss = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0) - x * t
        return xp.asarray(loss.sum() / self.N, dtype=x.dtype)

    def backward_array(self, xs, ys, gys):
        (x, t), need_x, need_t = xs, self.inputs[0].requires_grad, self.inputs[1].requires_grad
        g = gys[0] * (1.0 / self.N)
        # unbroadcast casts back where NumPy 1.x promotes a 0-d float32 times a Python float
        gx = unbroadcast((apply(Sigmoid(), x) - t) * g, x) if need_x else None
        gt = None
        if need_t and t.dtype.kind == "f":  # soft targets are differentiable: d/dt = -x / N
            gt = unbroadcast(-x * g, t)
        return gx, gt


def sigmoid_cross_entropy(x, t):
    """Binary cross entropy on logits ``x`` (sigmoid fused in), stable for any logits.

    Parameters
    ----------
    x : Variable or ndarray
        Logits, any shape (typically ``(N,)`` or ``(N, 1)``).
    t : ndarray or Variable
        Targets in ``{0, 1}`` (ints) or probabilities in ``[0, 1]``; an array of ``x``'s
        size is reshaped to ``x``'s shape, as in the book.

    Returns
    -------
    Variable
        0-d: ``-sum(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))) / N`` with
        ``N = len(x)`` (the book divides by the batch size).

    Notes
    -----
    Computed as ``sum(softplus(x) - t x) / N`` with a stable softplus, so logits of
    +-1e4 give finite losses and exact gradients.
    Derivatives: ``d/dx = (sigmoid(x) - t) / N``; for float targets ``d/dt = -x / N``.

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid_cross_entropy(np.array([0.0, 1e4, -1e4]), np.array([1, 1, 1]))
    variable(3333.5643823935)
    """
    x = as_variable(x)
    _checks.real("sigmoid_cross_entropy", x)
    t = _binary_targets("sigmoid_cross_entropy", x, t)
    return SigmoidCrossEntropy()(x, t)


def binary_cross_entropy(p, t):
    """Binary cross entropy of probabilities ``p`` against targets ``t``.

    Parameters
    ----------
    p : Variable or ndarray
        Probabilities in ``[0, 1]`` (e.g. a sigmoid output), any shape.
    t : ndarray or Variable
        Targets in ``{0, 1}`` or ``[0, 1]``; an array of ``p``'s size is reshaped to
        ``p``'s shape.

    Returns
    -------
    Variable
        0-d: ``-sum(t log p + (1 - t) log(1 - p)) / N`` with ``N = len(p)``.

    Notes
    -----
    ``p`` is clipped to ``[eps, 1 - eps]`` with ``eps`` the machine epsilon of its dtype,
    so ``p`` of exactly 0 or 1 gives a finite loss (at most ``-log(eps)`` per element) and
    a finite gradient (0 where clipped). From logits, prefer :func:`sigmoid_cross_entropy`,
    whose gradient stays exact when the sigmoid saturates.
    Derivative: ``d/dp = (p - t) / (p (1 - p) N)`` inside the clip range.

    Examples
    --------
    >>> import numpy as np
    >>> binary_cross_entropy(np.array([0.5, 1.0]), np.array([1, 1]))
    variable(0.34657359...)
    """
    p = as_variable(p)
    _checks.real("binary_cross_entropy", p)
    if p.dtype.kind != "f":
        raise TypeError(f"binary_cross_entropy: probabilities must be floats, got {p.dtype}")
    t = _binary_targets("binary_cross_entropy", p, t)
    eps = float(np.finfo(p.dtype).eps)
    pc = clip(p, eps, 1.0 - eps)
    tlog_p = t * log(pc) + (1 - t) * log(1 - pc)
    return -_sum(tlog_p) / _batch_size(p.shape)
