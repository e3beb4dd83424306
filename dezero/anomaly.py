"""Anomaly detection: find the Function whose forward or backward first makes a NaN or Inf.

Inside ``with dezero.detect_anomaly():`` every Function's outputs and every gradient a
backward pass computes are checked, and the first bad value raises :class:`AnomalyError`
naming the Function, the pass, the input shapes and dtypes, and the line of user code that
created the Function. It is a :class:`dezero.core.FunctionHook`: outside the mode nothing is
recorded or checked, and the engine pays what it pays for no observer at all.

A bad value that appears while a Function's gradient is computed, even inside the dezero
ops its ``backward`` is written with, is reported as the backward of that Function.

On a GPU the checks run on the device (``xp.isfinite``); reading their result is one host
synchronisation per check, which is what a debug mode may cost.
"""

from __future__ import annotations

import weakref

import numpy as np

from dezero import cuda
from dezero.callsite import user_location
from dezero.core import FunctionHook, Variable

__all__ = ["AnomalyError", "detect_anomaly"]



class AnomalyError(RuntimeError):
    """A NaN or Inf made by a Function inside :func:`detect_anomaly`.

    Attributes: ``function`` (the Function), ``phase`` ("forward" or "backward"), ``where``
    (``"file:line"`` of the user code that created the Function, or None when it was
    created outside the mode).
    """

    def __init__(self, message: str, function=None, phase: str = "", where: str | None = None):
        super().__init__(message)
        self.function = function
        self.phase = phase
        self.where = where


def _bad_values(a) -> str | None:
    """None when the float/complex array ``a`` is finite, else a description of what is not."""
    if a is None or a.dtype.kind not in "fc":
        return None
    xp = cuda.get_array_module(a)
    if bool(xp.isfinite(a).all()):  # one sync on a GPU
        return None
    n_nan = int(xp.isnan(a).sum())
    n_inf = int(a.size - n_nan - int(xp.isfinite(a).sum()))
    parts = [f"{n} {name}" for n, name in ((n_nan, "NaN"), (n_inf, "Inf")) if n]
    return " and ".join(parts)


def _describe(xs) -> str:
    out = []
    for x in xs:
        data = x.data if isinstance(x, Variable) else x
        shape = getattr(data, "shape", ())
        dtype = getattr(data, "dtype", type(data).__name__)
        out.append(f"{tuple(shape)} {dtype}")
    return "[" + ", ".join(out) + "]"


# where each Function called inside the mode was created, without writing on the Function
_created_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _AnomalyHook(FunctionHook):
    def __init__(self):
        # Functions whose backward is running (innermost last): a bad value made by an op
        # called from there belongs to that backward.
        self._in_backward: list = []

    def forward_pre(self, f, inputs) -> None:
        _created_at[f] = user_location()

    def forward_post(self, f, xs, outputs) -> None:
        for i, y in enumerate(outputs):
            bad = _bad_values(y.data)
            if bad is not None:
                if self._in_backward:
                    owner = self._in_backward[-1]
                    self._raise(owner, "backward", getattr(owner, "inputs", ()),
                                f"{bad} inside its gradient computation (in the op "
                                f"{type(f).__name__}, inputs {_describe(xs)})")
                self._raise(f, "forward", xs, f"{bad} in output {i}")

    def backward_pre(self, f) -> None:
        self._in_backward.append(f)

    def backward_post(self, f, gxs) -> None:
        for i, gx in enumerate(gxs):
            if gx is None:
                continue
            bad = _bad_values(gx.data if isinstance(gx, Variable) else gx)
            if bad is not None:
                self._raise(f, "backward", f.inputs, f"{bad} in the gradient of input {i}")
        if self._in_backward and self._in_backward[-1] is f:
            self._in_backward.pop()

    def _raise(self, f, phase, xs, what):
        self._in_backward.clear()  # the pass is abandoned
        name = type(f).__name__
        where = _created_at.get(f)
        created = (f"created at {where}" if where is not None
                   else "created outside detect_anomaly(), so where is unknown")
        raise AnomalyError(
            f"{name} produced {what} during the {phase} pass; inputs {_describe(xs)}; "
            f"{name} was {created}",
            function=f, phase=phase, where=where,
        )


class detect_anomaly:
    """Context manager: check every Function's outputs and gradients for NaN and Inf.

    Per thread (like ``Config``), nestable. The first bad value raises
    :class:`AnomalyError`, whose message names the Function, the pass (forward or
    backward), its inputs' shapes and dtypes, and the ``file:line`` of the user code that
    created it (recorded only inside the mode). Costs a stack walk and a check per op:
    for debugging, not for training runs. NumPy's floating-point warnings are silenced
    inside the mode (``np.errstate(all="ignore")``): the mode reports the problem itself.

    Examples
    --------
    >>> import numpy as np
    >>> import dezero
    >>> import dezero.functions as F
    >>> x = dezero.Variable(np.array([1.0, 0.0]))
    >>> with dezero.detect_anomaly():
    ...     try:
    ...         y = F.log(x)
    ...     except dezero.AnomalyError as e:
    ...         print(e.phase, type(e.function).__name__)
    forward Log
    """

    def __init__(self):
        self._hook = None
        self._errstate = None

    def __enter__(self):
        self._errstate = np.errstate(all="ignore")
        self._errstate.__enter__()
        self._hook = _AnomalyHook()
        self._hook.__enter__()
        return self

    def __exit__(self, *exc):
        self._hook.__exit__(*exc)
        self._errstate.__exit__(*exc)
        self._hook = self._errstate = None
