"""Writing a gradient once: the names that serve arrays and Variables alike.

``Function.backward``'s default applies ``backward_array(xs, ys, gys)`` to the input and
output Variables, so one formula serves both paths: on arrays when no graph of the backward
pass is wanted (fast, nothing recorded), on Variables when one is (``create_graph=True``:
derivatives of any order). A formula qualifies when it uses only

- operators (``+ - * / ** @``, unary ``-``, indexing ``[]``) and the methods both have:
  ``reshape``, ``transpose``, ``T``, ``sum``, ``max``, ``min``, ``astype(dtype)``;
- ``unbroadcast`` (dezero.core) to reduce a broadcast gradient and cast it;
- the three helpers below: ``ops(x)``, ``nograd(fn, *xs)``, ``apply(f, *xs)``.

Two habits keep such a formula float32 in, float32 out: keyword arguments where NumPy's
signature has more positions than dezero's (``sum(x, axis=a, keepdims=True)``; NumPy's
third positional of ``sum`` is ``dtype``), and no Python scalar that meets a possibly 0-d
array (NumPy 1.x promotes a 0-d float32 array times a Python float to float64): write
``y - y * y`` rather than ``y * (1 - y)``, ``x + x`` rather than ``x * 2``.
"""

from __future__ import annotations

import numpy as np

from dezero import cuda
from dezero.core import Function, Variable

__all__ = ["NoGrad", "apply", "nograd", "ops"]

_ndarray = np.ndarray


def ops(x):
    """The namespace of ``x``'s kind: ``dezero.functions`` for a Variable, the array module
    (NumPy or CuPy) for an array.

    Names that both have, with the same meaning: ``exp``, ``log``, ``sin``, ``cos``,
    ``tanh``, ``sqrt``, ``where`` (a condition array, not a Variable), ``broadcast_to``,
    ``split``, ``sum`` / ``mean`` / ``max`` / ``min`` (``axis=`` and ``keepdims=`` as
    keywords), ``maximum``, ``minimum``, ``matmul``, ``reshape``, ``transpose``.

    >>> import numpy as np
    >>> ops(np.ones(2)) is np
    True
    """
    if type(x) is _ndarray:  # the common case first: array-level backward on the CPU
        return np
    if isinstance(x, Variable):
        import dezero.functions  # the package itself, complete whenever a gradient runs

        return dezero.functions
    return cuda.get_array_module(x)


class NoGrad(Function):
    """``fn(*arrays)`` as a value of the graph whose derivative is zero (see ``nograd``)."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)

    def backward_array(self, xs, ys, gys):
        return (None,) * len(xs)


def nograd(fn, *xs):
    """``fn`` applied to the arrays of ``xs``, for what a formula treats as a constant of the
    graph (a mask, a sign, the winners of a max), whose own derivative is zero::

        gy * nograd(lambda a: (a > 0).astype(gy.dtype), x)

    On arrays it is the call; when one of ``xs`` is a Variable it is an op (``NoGrad``), so
    that whatever replays the graph (``dezero.jit``) computes the mask from that call's
    values instead of keeping the first call's.
    """
    for x in xs:
        if isinstance(x, Variable):
            return NoGrad(fn)(*xs)
    return fn(*xs)


def apply(f, *xs):
    """Apply the Function ``f`` to ``xs``: recorded, as ``f(*xs)``, when one of them is a
    Variable; else ``f.forward(*xs)`` on the arrays (nothing recorded).

    For a gradient that is itself an op with its own backward (a scatter, a pooling
    adjoint): one line serves both paths, ``apply(_PoolScatter(...), gy)``.
    """
    for x in xs:
        if isinstance(x, Variable):
            return f(*xs)
    return f.forward(*xs)
