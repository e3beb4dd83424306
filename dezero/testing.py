"""Gradient checking for people who write ops: strict helpers that raise on disagreement.

``check_backward`` compares backprop with central differences; ``check_double_backward``
does the same for the gradient itself (second order). Both raise ``AssertionError`` naming
the op, the input, the dtype and the worst difference, so a failing check reads well in a
test log. ``dezero.utils.gradient_check`` is the book's lenient variant.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dezero import cuda
from dezero.core import Variable, no_grad, using_config

__all__ = ["as_output_list", "check_backward", "check_double_backward", "numerical_vjp"]


def as_output_list(ys) -> list:
    """Normalise what a dezero function returns (a Variable, list or tuple) to a list."""
    if isinstance(ys, (list, tuple)):
        return list(ys)
    return [ys]


def _data(v):
    return v.data if isinstance(v, Variable) else v


def numerical_vjp(f: Callable, xs: Sequence, gys: Sequence, idx: int, eps: float = 1e-6):
    """Central-difference estimate of ``d/dxs[idx] sum_j <f(*xs)_j, gys_j>``.

    ``f`` takes and returns arrays/Variables; it is called under ``no_grad``.
    """
    xp = cuda.get_array_module(xs[idx])
    # a C-ordered copy: the perturbations below go through a flat view of it (astype would
    # keep a transposed input's layout, and reshape(-1) would then perturb a copy)
    x = np.array(cuda.as_numpy(xs[idx]), dtype=np.float64, order="C")
    gys = [None if g is None else cuda.as_numpy(g).astype(np.float64) for g in gys]
    grad = np.zeros_like(x)
    args = list(xs)

    def value():
        args[idx] = xp.asarray(x)
        with no_grad():
            ys = as_output_list(f(*args))
        total = 0.0
        for y, g in zip(ys, gys):
            if g is not None:
                total += float(np.sum(cuda.as_numpy(_data(y)).astype(np.float64) * g))
        return total

    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        y1 = value()
        flat[i] = orig - eps
        y2 = value()
        flat[i] = orig
        gflat[i] = (y1 - y2) / (2 * eps)
    return grad


def _compare(name, what, idx, expected, actual, atol, rtol):
    expected = cuda.as_numpy(expected)
    actual = cuda.as_numpy(actual)
    if expected.shape != actual.shape:
        raise AssertionError(
            f"{name}: {what} of input {idx} has shape {actual.shape}, expected {expected.shape}"
        )
    if not np.allclose(actual, expected, atol=atol, rtol=rtol):
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        worst = np.unravel_index(np.argmax(diff), diff.shape) if diff.ndim else ()
        raise AssertionError(
            f"{name}: {what} of input {idx} ({actual.dtype}) differs from the numerical "
            f"gradient: worst |diff| {diff.max():.3e} at index {worst} "
            f"(backprop {actual[worst]!r}, numerical {expected[worst]!r}; "
            f"atol={atol}, rtol={rtol})"
        )


def _random_like(rng, y):
    shape = _data(y).shape
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float64)


def _backprop(f, xs, diff, gys, create_graph=False):
    """Run f on Variables, seed each output with ``gys`` and return the input gradients."""
    xp = cuda.get_array_module(xs[diff[0]]) if diff else np
    vs = [Variable(x) if isinstance(x, cuda.array_types) else x for x in xs]
    ys = as_output_list(f(*vs))
    live = [(y, g) for y, g in zip(ys, gys) if g is not None]
    if len(live) == 1:
        y, g = live[0]
        y.grad = Variable(xp.asarray(g, dtype=y.dtype))
        y.backward(create_graph=create_graph)
    else:
        from dezero.functions import sum as _sum

        total = None
        for y, g in live:
            term = _sum(y * xp.asarray(g, dtype=y.dtype))
            total = term if total is None else total + term
        total.backward(create_graph=create_graph)
    return [vs[i].grad for i in diff]


def check_backward(
    f: Callable,
    xs: Sequence,
    diff: Sequence[int] | None = None,
    *,
    name: str = "op",
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    seed: int = 0,
):
    """Assert that backprop through ``f`` matches central differences.

    Args:
        f: function of ``len(xs)`` arguments returning a Variable or a list of them.
        xs: input arrays (float64 recommended); non-array items are passed through.
        diff: indices of the inputs to check (default: every floating-point array).
        name: used in the error message.
    """
    rng = np.random.default_rng(seed)
    if diff is None:
        diff = [i for i, x in enumerate(xs) if isinstance(x, cuda.array_types)
                and x.dtype.kind == "f"]
    with no_grad():
        ys = as_output_list(f(*[x for x in xs]))
    gys = [_random_like(rng, y) for y in ys]
    grads = _backprop(f, xs, diff, gys)
    for i, g in zip(diff, grads):
        expected = numerical_vjp(f, xs, gys, i, eps)
        actual = np.zeros_like(expected) if g is None else g.data
        if g is not None and g.dtype != xs[i].dtype:
            raise AssertionError(
                f"{name}: gradient of input {i} has dtype {g.dtype}, input has {xs[i].dtype}"
            )
        _compare(name, "gradient", i, expected, actual, atol, rtol)


def check_double_backward(
    f: Callable,
    xs: Sequence,
    diff: Sequence[int] | None = None,
    *,
    name: str = "op",
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 1,
):
    """Assert that the gradient of ``f`` is itself correctly differentiable (second order).

    Builds ``g(xs) = d/dxs sum(f(xs) * gy)`` with ``create_graph=True`` and checks its
    backprop against central differences of ``g``.
    """
    rng = np.random.default_rng(seed)
    if diff is None:
        diff = [i for i, x in enumerate(xs) if isinstance(x, cuda.array_types)
                and x.dtype.kind == "f"]
    with no_grad():
        ys = as_output_list(f(*xs))
    gys = [_random_like(rng, y) for y in ys]
    xp = cuda.get_array_module(xs[diff[0]])

    def first_order(*args):
        # numerical_vjp calls this under no_grad: the first backward still needs a graph
        with using_config("enable_backprop", True):
            grads = _backprop(f, args, diff, gys, create_graph=True)
        for i in diff:  # leave the inputs' .grad to the outer (second order) backward
            if isinstance(args[i], Variable):
                args[i].grad = None
        return [
            Variable(xp.zeros_like(_data(args[i]))) if g is None else g
            for i, g in zip(diff, grads)
        ]

    check_backward(
        first_order, xs, diff, name=f"{name} (double backward)", eps=eps, atol=atol,
        rtol=rtol, seed=seed + 1,
    )
