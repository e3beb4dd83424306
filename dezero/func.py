"""Derivatives as functions: grad, value_and_grad, jacobian, hessian, vjp, jvp and hvp.

Each takes a function ``f`` of Variables (written with dezero ops) and returns a function,
or evaluates one, as JAX's and ``torch.func``'s do. They run on the engine's reverse mode:

- the arguments being differentiated are handed to ``f`` as fresh Variables; ``f`` runs
  with a graph recorded (also under ``no_grad()``);
- the gradients come from the engine's pure pass (``dezero.grad``): it visits no Function
  older than the differentiated arguments and reads or changes no ``.grad`` anywhere (a
  model's parameters and the caller's Variables keep theirs);
- jvp is the double-vjp trick: ``u -> J^T u`` is linear, and the vjp of that map with
  respect to ``u`` is ``J v``.

Arguments may be arrays (NumPy/CuPy) or Variables. A derivative with respect to an array
comes back as an array. A derivative with respect to a Variable comes back as a Variable,
and, when ``Config.enable_backprop`` is on, with its graph recorded: it depends on the
caller's Variable, so the transforms compose (``grad(grad(f))``, ``jacobian(grad(f))``,
``hessian`` is exactly that) to any order.

>>> import numpy as np
>>> from dezero import func
>>> import dezero.functions as F
>>> f = lambda x: x ** 3
>>> func.grad(f)(np.array(2.0)), func.grad(func.grad(f))(np.array(2.0))
(array(12.), array(12.))
>>> func.hessian(lambda x: F.sum(x ** 3))(np.array([1.0, 2.0]))
array([[ 6.,  0.],
       [ 0., 12.]])
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import numpy as np

import dezero.functions as F
from dezero import cuda
from dezero.core import Config, Variable, using_config
from dezero.core import grad as engine_grad
from dezero.functions.array import Identity

__all__ = ["grad", "hessian", "hvp", "jacobian", "jvp", "value_and_grad", "vjp"]


# =============================================================================
# The core: run f once, pull cotangents back as often as asked
# =============================================================================
def _argnums(argnums, n_args: int, name: str) -> tuple[tuple[int, ...], bool]:
    single = isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)
    if not single and not isinstance(argnums, (tuple, list)):
        raise TypeError(f"{name}: argnums must be an int or a tuple of ints, got {argnums!r}")
    nums = (argnums,) if single else tuple(argnums)
    if not nums:
        raise ValueError(f"{name}: argnums must name at least one argument")
    out = []
    for i in nums:
        if (isinstance(i, bool) or not isinstance(i, (int, np.integer))
                or not -n_args <= i < n_args):
            raise ValueError(
                f"{name}: argnums={argnums!r} does not name one of the {n_args} positional "
                f"argument(s)"
            )
        if int(i) % n_args in out:  # a second gradient slot would get a zero
            raise ValueError(f"{name}: argnums={argnums!r} names argument {int(i) % n_args} "
                             f"twice")
        out.append(int(i) % n_args)
    return tuple(out), bool(single)


def _data(a):
    if isinstance(a, Variable):
        return a.data
    if isinstance(a, cuda.array_types):
        return a
    return np.asarray(a)


class _Traced:
    """``f`` evaluated once at the arguments, ready for any number of pullbacks."""

    def __init__(self, f: Callable, args: Sequence, argnums: tuple[int, ...]):
        recording = Config.enable_backprop
        call_args = list(args)
        self.targets, self.is_var = [], []
        for i in argnums:
            a = args[i]
            if isinstance(a, Variable):
                # through an identity the result depends on the caller's Variable
                t = Identity()(a) if recording and a.requires_grad else Variable(a.data)
                self.is_var.append(True)
            else:
                t = Variable(_data(a))
                self.is_var.append(False)
            call_args[i] = t
            self.targets.append(t)
        with using_config("enable_backprop", True):
            out = f(*call_args)
        if out is None:
            raise TypeError("dezero.func: f returned None; it must return the value to "
                            "differentiate (a Variable or an array); a missing return?")
        if isinstance(out, (tuple, list)):
            raise TypeError(
                "dezero.func: f must return one Variable or array, not a "
                f"{type(out).__name__}; differentiate each output separately"
            )
        if not isinstance(out, Variable):
            data = _data(out)
            if data.dtype.kind not in "biufc":
                raise TypeError(f"dezero.func: f must return a number, a Variable or an array, "
                                f"not {type(out).__name__} (dtype {data.dtype})")
            out = Variable(data)
        self.out = out

    def output(self):
        """``f``'s value: a Variable when a differentiated argument is one, else an array."""
        return self.out if any(self.is_var) else self.out.data

    def pullback(self, cotangent) -> list:
        """``cotangent^T J`` for every target, each as a Variable or an array."""
        out = self.out
        ct_var = isinstance(cotangent, Variable)
        wants_var = [v or ct_var for v in self.is_var]
        create_graph = Config.enable_backprop and any(wants_var)
        seed = cotangent if ct_var else Variable(_data(cotangent))
        if seed.shape != out.shape:
            raise ValueError(
                f"dezero.func: the cotangent has shape {seed.shape}, f's output {out.shape}"
            )
        if not create_graph and ct_var:
            seed = Variable(seed.data)
        if out.data.dtype.kind == "f" and seed.dtype != out.dtype:
            seed = Variable(seed.data.astype(out.dtype))

        # the engine's pure pass: no .grad of anything is read or changed
        grads = engine_grad(out, self.targets, grad_outputs=seed, create_graph=create_graph)
        result = []
        for t, g, as_var in zip(self.targets, grads, wants_var):
            if g is None:  # f does not depend on this argument
                g = Variable(cuda.get_array_module(t.data).zeros_like(t.data))
            result.append(g if as_var else g.data)
        return result


def _check_scalar(out: Variable, name: str) -> None:
    if out.size != 1:
        raise ValueError(
            f"{name}: f must return a single value (size 1), got shape {out.shape}; use "
            f"jacobian or vjp for vector outputs"
        )


def _wraps(f, name: str):
    def decorate(g):
        g.__name__ = f"{name}({getattr(f, '__name__', 'f')})"
        g.__qualname__ = g.__name__
        g.__doc__ = f"The {name} of {getattr(f, '__name__', repr(f))} (see dezero.func.{name})."
        return g
    return decorate


# =============================================================================
# The transforms
# =============================================================================
def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Return ``g(*args) -> (f(*args), df/dargs[argnums])`` for a scalar-valued ``f``.

    Parameters
    ----------
    f : callable
        A function of Variables (dezero ops) returning a single value (size 1).
    argnums : int or sequence of int
        Which positional argument(s) to differentiate; a sequence gives a tuple of
        gradients.

    Returns
    -------
    callable
        ``(value, gradient)``; each an array, or a Variable when the differentiated
        argument is one (see the module notes).

    Examples
    --------
    >>> import numpy as np
    >>> value, g = value_and_grad(lambda x, y: x * y, argnums=(0, 1))(3.0, 4.0)
    >>> value, g
    (array(12.), (array(4.), array(3.)))
    """

    def value_and_grad_f(*args):
        nums, single = _argnums(argnums, len(args), "value_and_grad")
        traced = _Traced(f, args, nums)
        _check_scalar(traced.out, "grad")
        xp = cuda.get_array_module(traced.out.data)
        grads = traced.pullback(xp.ones_like(traced.out.data))
        return traced.output(), grads[0] if single else tuple(grads)

    return _wraps(f, "value_and_grad")(value_and_grad_f)


def grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Return ``g(*args) -> df/dargs[argnums]`` for a scalar-valued ``f``.

    Parameters
    ----------
    f : callable
        A function of Variables returning a single value (size 1).
    argnums : int or sequence of int
        Which positional argument(s) to differentiate (a sequence gives a tuple).

    Returns
    -------
    callable
        The gradient function; gradients have their argument's shape. With Variable
        arguments the gradient is a Variable with a graph, so ``grad(grad(f))`` works.

    Notes
    -----
    The caller's ``.grad`` attributes are never changed (also those of the parameters
    ``f`` closes over).

    Examples
    --------
    >>> import numpy as np
    >>> import dezero.functions as F
    >>> grad(lambda x: F.sum(x ** 2))(np.array([1.0, -2.0]))
    array([ 2., -4.])
    >>> grad(grad(grad(F.sin)))(np.array(0.0))   # -cos(0)
    array(-1.)
    """
    vg = value_and_grad(f, argnums)

    def grad_f(*args):
        return vg(*args)[1]

    return _wraps(f, "grad")(grad_f)


def vjp(f: Callable, *primals, argnums: Sequence[int] | None = None):
    """Evaluate ``f(*primals)`` and return ``(out, vjp_fn)``; ``vjp_fn(ct)`` is ``ct^T J``.

    Parameters
    ----------
    f : callable
        A function of Variables returning one Variable (any shape).
    *primals
        The point (arrays or Variables).
    argnums : sequence of int, optional
        The primals to differentiate (default: all).

    Returns
    -------
    (out, vjp_fn)
        ``vjp_fn(cotangent)`` (shaped like ``out``) returns a tuple with one gradient per
        differentiated primal; it may be called any number of times. A Variable cotangent
        gives Variables with a graph (the pullback is then differentiable in it).

    Examples
    --------
    >>> import numpy as np
    >>> out, vjp_fn = vjp(lambda x: x * x, np.array([1.0, 2.0]))
    >>> vjp_fn(np.array([1.0, 10.0]))
    (array([ 2., 40.]),)
    """
    nums, _ = _argnums(tuple(range(len(primals))) if argnums is None else tuple(argnums),
                       len(primals), "vjp")
    traced = _Traced(f, primals, nums)

    def vjp_fn(cotangent):
        return tuple(traced.pullback(cotangent))

    return traced.output(), vjp_fn


def _tangent_like(t, primal, name: str):
    p = _data(primal)
    if isinstance(t, Variable):
        shape = t.shape
    else:
        t = _data(t)
        if p.dtype.kind == "f" and t.dtype != p.dtype:
            t = t.astype(p.dtype)
        shape = t.shape
    if shape != p.shape:
        raise ValueError(f"{name}: a tangent has shape {shape}, its primal {p.shape}")
    return t


def jvp(f: Callable, primals: Sequence, tangents: Sequence):
    """Evaluate ``f`` at ``primals`` and its directional derivative ``J @ tangents``.

    Parameters
    ----------
    f : callable
        A function of Variables returning one Variable.
    primals, tangents : sequence
        The point and a direction for every primal (same shapes).

    Returns
    -------
    (out, tangent_out)
        ``f(*primals)`` and ``sum_i J_i t_i``, shaped like ``out``.

    Notes
    -----
    Forward mode in effect, computed by reverse mode twice: ``u -> J^T u`` is linear in
    ``u``, and its vjp with respect to ``u`` along the tangents is ``J t``.

    Examples
    --------
    >>> import numpy as np
    >>> jvp(lambda x: x ** 2, (np.array([1.0, 3.0]),), (np.array([1.0, 0.5]),))
    (array([1., 9.]), array([2., 3.]))
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primal(s) but {len(tangents)} tangent(s)")
    tangents = tuple(_tangent_like(t, p, "jvp") for t, p in zip(tangents, primals))
    out, vjp_fn = vjp(f, *primals)
    any_var = any(isinstance(p, Variable) for p in primals)
    out_data = _data(out)
    u0 = cuda.get_array_module(out_data).zeros_like(out_data)

    def along_tangents(u):  # <J^T u, t>: linear in u
        total = None
        for g, t in zip(vjp_fn(u), tangents):
            term = F.sum(g * t)
            total = term if total is None else total + term
        return total

    _, pull = vjp(along_tangents, Variable(u0) if any_var else u0)
    one = np.ones((), dtype=out_data.dtype) if out_data.dtype.kind == "f" else 1.0
    (tangent_out,) = pull(cuda.get_array_module(out_data).asarray(one))
    return out, tangent_out


def hvp(f: Callable, primals: Sequence, tangents: Sequence):
    """The Hessian of a scalar-valued ``f`` at ``primals`` times ``tangents``: ``H v``.

    Parameters
    ----------
    f : callable
        A function of Variables returning a single value.
    primals, tangents : sequence
        The point and a vector for every primal.

    Returns
    -------
    The product, shaped like the primal (a tuple with one entry per primal when there are
    several): ``sum_j d^2 f / dx_i dx_j t_j``. Reverse over reverse: the gradient of
    ``<grad f(x), t>``; the Hessian itself is never formed.

    Examples
    --------
    >>> import numpy as np
    >>> import dezero.functions as F
    >>> hvp(lambda x: F.sum(x ** 3), (np.array([1.0, 2.0]),), (np.array([1.0, 1.0]),))
    array([ 6., 12.])
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"hvp: {len(primals)} primal(s) but {len(tangents)} tangent(s)")
    tangents = tuple(_tangent_like(t, p, "hvp") for t, p in zip(tangents, primals))
    nums = tuple(range(len(primals)))
    g = grad(f, nums)

    def along_tangents(*xs):  # <grad f(x), t>
        total = None
        for gi, t in zip(g(*xs), tangents):
            term = F.sum(gi * t)
            total = term if total is None else total + term
        return total

    result = grad(along_tangents, nums)(*primals)
    return result[0] if len(primals) == 1 else result


def jacobian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Return ``J(*args)``: the Jacobian of ``f``, shaped ``out.shape + arg.shape``.

    Parameters
    ----------
    f : callable
        A function of Variables returning one Variable (any shape).
    argnums : int or sequence of int
        The argument(s) to differentiate (a sequence gives a tuple of Jacobians).

    Returns
    -------
    callable
        Computes one vjp per element of the output (reverse mode, row by row).

    Examples
    --------
    >>> import numpy as np
    >>> import dezero.functions as F
    >>> jacobian(lambda x: F.stack([x[0] * x[1], x[0] + x[1]]))(np.array([2.0, 3.0]))
    array([[3., 2.],
           [1., 1.]])
    """

    def jacobian_f(*args):
        nums, single = _argnums(argnums, len(args), "jacobian")
        traced = _Traced(f, args, nums)
        out = traced.out
        xp = cuda.get_array_module(out.data)
        rows: list[list] = [[] for _ in nums]
        for k in range(out.size):
            e = xp.zeros(out.size, dtype=out.dtype if out.dtype.kind == "f" else np.float64)
            e[k] = 1
            for r, g in zip(rows, traced.pullback(e.reshape(out.shape))):
                r.append(g)
        result = []
        for r, t in zip(rows, traced.targets):
            shape = out.shape + t.shape
            if not r:  # an empty output
                result.append(cuda.get_array_module(t.data).zeros(shape, dtype=t.dtype))
            elif isinstance(r[0], Variable):
                result.append(F.reshape(F.stack(r), shape))
            else:
                result.append(xp.stack(r).reshape(shape))
        return result[0] if single else tuple(result)

    return _wraps(f, "jacobian")(jacobian_f)


def hessian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Return ``H(*args)``: the Hessian of a scalar-valued ``f``, the jacobian of its grad.

    Shaped ``arg.shape + arg.shape``. With a sequence ``argnums`` the result is a tuple of
    tuples, ``H[i][j] = d^2 f / d args[i] d args[j]``.

    Examples
    --------
    >>> import numpy as np
    >>> hessian(lambda x, y: x * x * y, argnums=(0, 1))(np.array(3.0), np.array(2.0))
    ((array(4.), array(6.)), (array(6.), array(0.)))
    """

    def hessian_f(*args):
        nums, single = _argnums(argnums, len(args), "hessian")
        if single:
            return jacobian(grad(f, nums[0]), nums[0])(*args)
        g = grad(f, nums)
        return tuple(
            jacobian(functools.partial(lambda i, *a: g(*a)[i], i), nums)(*args)
            for i in range(len(nums))
        )

    return _wraps(f, "hessian")(hessian_f)
