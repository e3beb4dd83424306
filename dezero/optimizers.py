"""dezero.optimizers: parameter updates, gradient hooks, learning-rate schedules, checkpoints.

Optimizer state (momenta, Adam moments, the step count) lives on each parameter's device and
is keyed by the parameter's path in the model (``'l1/W'``), never by ``id()``, so it can be
saved with ``state_dict()`` and restored into a fresh process with ``load_state_dict()``;
``save_checkpoint`` / ``load_checkpoint`` (defined in ``dezero.serialization``) put model,
optimizer and any extra state (epoch, RNG state, schedule) into one ``.npz`` file, written
atomically and read without pickle.

Updates run under ``no_grad`` and work in place on ``param.data``, in the parameter's dtype.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from dezero import cuda, hints
from dezero.core import Parameter, Variable, no_grad
from dezero.hooks import installed
from dezero.layers import Layer
from dezero.parallel import parallel_for
from dezero.serialization import CheckpointError, load_checkpoint, save_checkpoint

__all__ = [
    "SGD",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "AdamW",
    "CheckpointError",
    "ClipGrad",
    "CosineAnnealingLR",
    "ExponentialLR",
    "FreezeParam",
    "LRScheduler",
    "MomentumSGD",
    "Optimizer",
    "StepLR",
    "WarmupLR",
    "WeightDecay",
    "load_checkpoint",
    "save_checkpoint",
]


# =============================================================================
# Optimizer
# =============================================================================
class Optimizer:
    """Base of all optimizers: ``setup(target)``, then ``update()`` after each backward.

    One update path: ``update()`` takes the parameters that have a gradient, passes their
    gradient arrays through the hooks (``add_hook``) in order, counts the step
    (``step_hyper()``), and applies the step: in one multi-tensor pass where the optimizer
    has one (``update_all``, Adam's and AdamW's; chosen by the flag ``foreach``), else
    parameter by parameter (``update_one_array``). The gradients that were applied are left
    in each ``param.grad`` (None where a hook dropped one).

    Subclasses implement ``update_one_array(param, g, h)``: ``param.data`` updated in place
    from the gradient array ``g`` with this step's scalars ``h`` (a dict, see
    ``step_hyper()``), keeping per-parameter arrays in ``self.slot(param, name)``. A
    book-style optimizer that overrides ``update_one(param)`` (reading ``param.grad``) works
    too. ``hyperparams`` names the scalar settings saved in ``state_dict()``; ``lr_attr``
    names the one a learning-rate schedule sets (None: none).

    ``foreach``: None (the default) uses the multi-tensor pass when every gradient is a NumPy
    array of one dtype and the groups share their scalars; False never; True whenever the
    optimizer has one (an error where it cannot apply).
    """

    hyperparams: tuple[str, ...] = ()
    lr_attr: str | None = "lr"
    foreach: bool | None = None

    def __init__(self):
        self.target = None
        self._groups: list = []  # [(named params, hyperparameter overrides)], in order
        self.hooks: list = []  # gradient hooks: objects with update_grads(params, grads)
        self.t = 0  # number of update() calls
        self._state: dict[str, dict[str, Any]] = {}  # param path -> slot name -> array
        self._names: dict[int, str] = {}  # id(param) -> path; rebuilt by every update()
        self._group_of: dict[int, int] = {}  # id(param) -> its group; rebuilt likewise
        self._graph = None  # (device buffer, per-group views) in graph mode

    def setup(self, target):
        """Attach the optimizer to ``target``; resets the optimizer state; returns self.

        ``target`` is a Layer/Model, a sequence of Parameters, or a list of parameter
        groups: dicts ``{"params": ..., <hyperparameter>: value, ...}`` whose ``params`` is
        a Layer, a sequence of Parameters or a dict ``{name: Parameter}``, and whose other
        keys override this optimizer's hyperparameters for that group (PyTorch's
        convention), e.g. ``[{"params": matrices, "weight_decay": 0.1}, {"params": rest,
        "weight_decay": 0.0}]``. The learning rate (``lr_attr``) cannot be overridden:
        setting it, as schedules do, applies to every group.
        """
        if isinstance(target, (list, tuple)) and target and all(
                isinstance(g, dict) for g in target):
            groups = [self._check_group(i, g) for i, g in enumerate(target)]
            names, ids = set(), set()
            for named, _ in groups:
                for n, p in named:
                    if n in names or id(p) in ids:
                        raise ValueError(
                            f"parameter groups: {n!r} appears twice (each parameter and "
                            f"each name may belong to one group only)"
                        )
                    names.add(n)
                    ids.add(id(p))
        else:
            groups = [(self._group_names(target, ""), {})]
            if not isinstance(target, Layer):
                target = [p for _, p in groups[0][0]]
        self.target = target
        self._groups = groups
        self.t = 0
        self._state = {}
        self._names = {}
        return self

    def _group_names(self, params, prefix):
        if isinstance(params, Layer):
            return [(prefix + n, p) for n, p in params.named_params()]
        named = list(params.items()) if isinstance(params, dict) else [
            (str(i), p) for i, p in enumerate(params)]
        bad = [type(p).__name__ for _, p in named if not isinstance(p, Parameter)]
        if bad:
            raise TypeError(
                f"setup() takes a Layer/Model, a sequence of Parameters, got {bad[0]} "
                f"(or a list of parameter groups, dicts with a 'params' entry)"
            )
        return [(prefix + str(n), p) for n, p in named]

    def _check_group(self, i, group):
        if "params" not in group:
            raise ValueError(f"parameter group {i} has no 'params' entry")
        overrides = {k: v for k, v in group.items() if k != "params"}
        for key in overrides:
            if key == self.lr_attr:
                raise ValueError(
                    f"parameter group {i}: the learning rate {key!r} cannot be set per "
                    f"group (setting {type(self).__name__}.{key} applies to every group)"
                )
            if key not in self.hyperparams:
                raise ValueError(
                    f"parameter group {i}: {key!r} is not a hyperparameter of "
                    f"{type(self).__name__} (those are {', '.join(self.hyperparams)})"
                )
        params = group["params"]
        return self._group_names(params, "" if isinstance(params, dict) else f"{i}/"), overrides

    def named_params(self) -> list[tuple[str, Parameter]]:
        """``(path, parameter)`` for every parameter this optimizer updates, in order (a
        model's parameters that appeared after ``setup()`` by lazy initialisation
        included)."""
        if self.target is None:
            raise RuntimeError(
                f"{type(self).__name__} has no target: call optimizer.setup(model) before "
                f"update(), update_one() or loading its state"
            )
        if isinstance(self.target, Layer):  # parameters may appear after setup (lazy init)
            self._groups[0] = (list(self.target.named_params()), self._groups[0][1])
        return [entry for named, _ in self._groups for entry in named]

    def update(self) -> None:
        """One step for every parameter that has a gradient (see the class notes)."""
        observers = installed()  # FunctionHooks (the engine's observers) see the update
        for h in observers:
            h.update_pre(self)
        named = [(n, p) for n, p in self.named_params() if p.data is not None]
        self._names = {id(p): n for n, p in named}
        self._group_of = {id(p): i for i, (group, _) in enumerate(self._groups)
                          for _, p in group}
        params = [p for _, p in named]
        grads = [None if p.grad is None else p.grad.data for p in params]
        with no_grad():
            for hook in self.hooks:
                grads = list(hook.update_grads(params, grads))
            _set_grads(params, grads)
            h = self.step_hyper() if self._graph is None else self._graph[1]
            if self._use_foreach(params, grads, h):
                self.update_all(params, grads, h)
            elif type(self).update_one is not Optimizer.update_one:  # a book-style optimizer
                for p in params:
                    if p.grad is not None:
                        self.update_one(p)
            else:
                group_of = self._group_of
                for p, g in zip(params, grads):
                    if g is not None:
                        self.update_one_array(p, g, h[group_of.get(id(p), 0)])
        for h in observers:
            h.update_post(self)

    def step_hyper(self) -> list[dict[str, float]]:
        """Count the step (``t += 1``) and return the scalars the step uses (Python floats),
        one dict per parameter group: the ``hyperparams`` with the group's overrides, and
        what subclasses derive from them (Adam's bias-corrected ``lr``)."""
        self.t += 1
        return self._hyper()

    def _hyper(self) -> list[dict[str, float]]:
        base = {h: float(getattr(self, h)) for h in self.hyperparams}
        out = []
        for _, overrides in self._groups or [((), {})]:
            h = dict(base)
            h.update({k: float(v) for k, v in overrides.items()})
            out.append(self._complete_hyper(h))
        return out

    def _use_foreach(self, params, grads, h) -> bool:
        if self.foreach is False or type(self).update_all is Optimizer.update_all:
            if self.foreach:
                raise ValueError(f"{type(self).__name__} has no multi-tensor update "
                                 f"(foreach=True)")
            return False
        live = [(p, g) for p, g in zip(params, grads) if g is not None]
        dtype = live[0][1].dtype if live else None
        ok = (len(live) > 1 and all(type(g) is np.ndarray and g.dtype == dtype
                                    and p.data.dtype == dtype for p, g in live)
              and self.foreach_compatible(h) and self._graph is None)
        if self.foreach and not ok:
            raise ValueError(f"{type(self).__name__}(foreach=True) needs NumPy gradients of "
                             f"one dtype and the same scalars in every parameter group")
        return ok

    def update_all(self, params, grads, h) -> None:
        """The step for all parameters in one multi-tensor pass (optional; see ``foreach``)."""

    def foreach_compatible(self, h) -> bool:
        """Whether the parameter groups' scalars ``h`` allow one multi-tensor pass."""
        return all(x == h[0] for x in h[1:])

    def update_one(self, param: Parameter) -> None:
        """The book's per-parameter step, on ``param.grad`` (with the current scalars)."""
        group_of = {id(p): i for i, (group, _) in enumerate(self._groups) for _, p in group}
        h = self._hyper()
        self.update_one_array(param, param.grad.data, h[group_of.get(id(param), 0)])

    def _complete_hyper(self, h):
        return h

    def update_one_array(self, param: Parameter, g, h) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} must implement update_one_array(param, g, h) "
            f"(or override update_one(param))"
        )

    def add_hook(self, f: Callable) -> None:
        """Add a gradient hook, run before each step (after the hooks added before it).

        ``f`` is an object with ``update_grads(params, grads) -> grads`` on arrays (like the
        built-in WeightDecay, ClipGrad and FreezeParam; ``params`` are all the parameters,
        ``grads`` their gradient arrays, None where a parameter has none; it returns one
        entry per parameter, None: no step), or the book's ``f(params)``, called with the
        parameters that have a gradient, which reads and sets their ``grad``.
        """
        self.hooks.append(f if hasattr(f, "update_grads") else _BookHook(f))

    # --- CUDA graphs -----------------------------------------------------------------
    def graph_mode(self):
        """A context manager in which ``update()`` reads this step's scalars from a device
        buffer that this optimizer owns (filled by ``advance_graph_step()``) instead of
        computing them in Python: what a CUDA graph of a step captures."""
        return _GraphMode(self)

    def advance_graph_step(self) -> None:
        """Count the step and write its scalars into the graph mode's device buffer (before
        each launch of a captured step)."""
        buf, _, names = self._graph_buffers()
        hs = self.step_hyper()
        buf.set(np.array([hs[i][k] for i, k in names], dtype=buf.dtype))

    def _graph_buffers(self):
        if getattr(self, "_graph_buf", None) is None:
            hs = self._hyper()
            names = [(i, k) for i, h in enumerate(hs) for k in h]
            dtype = next((p.data.dtype for _, p in self.named_params()
                          if p.data is not None and p.data.dtype.kind == "f"), np.float32)
            buf = cuda.as_cupy(np.zeros(len(names), dtype=dtype))
            views: list[dict] = [{} for _ in hs]
            for j, (i, k) in enumerate(names):
                views[i][k] = buf[j]  # 0-d views: read by the kernels at launch
            self._graph_buf = (buf, views, names)
        return self._graph_buf

    def __repr__(self) -> str:
        hyper = ", ".join(f"{h}={getattr(self, h, None)!r}" for h in self.hyperparams)
        target = self.__dict__.get("target")
        where = "not set up" if target is None else f"set up on {type(target).__name__}"
        return f"{type(self).__name__}({hyper}; t={self.__dict__.get('t', 0)}, {where})"

    # --- per-parameter state ----------------------------------------------------
    def _name_of(self, param: Parameter) -> str:
        name = self._names.get(id(param))
        if name is None:
            self._names = {id(p): n for n, p in self.named_params()}
            name = self._names.get(id(param))
            if name is None:
                raise ValueError(
                    f"the parameter {param.name!r} of shape {param.shape} is not part of "
                    f"this optimizer's target"
                )
        return name

    def slot(self, param: Parameter, name: str):
        """The state array ``name`` of ``param`` (zeros at first), on ``param``'s device."""
        state = self._state.setdefault(self._name_of(param), {})
        value = state.get(name)
        data = param.data
        if value is None:
            value = state[name] = cuda.get_array_module(data).zeros_like(data)
        elif type(value) is not type(data):  # the model moved between devices
            convert = cuda.as_numpy if isinstance(data, np.ndarray) else cuda.as_cupy
            value = state[name] = convert(value)
        return value

    # --- saving -----------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Return ``{name: NumPy array}``: the class, step count, hyperparameters and state.

        Keys: ``'class'``, ``'t'``, ``'hyper/<name>'`` and ``'state/<param path>/<slot>'``.
        """
        out: dict[str, np.ndarray] = {
            "class": np.array(type(self).__name__),
            "t": np.array(self.t, dtype=np.int64),
        }
        for h in self.hyperparams:
            out["hyper/" + h] = np.array(getattr(self, h), dtype=np.float64)
        for path, slots in self._state.items():
            for slot, value in slots.items():
                out[f"state/{path}/{slot}"] = (
                    value.copy() if isinstance(value, np.ndarray) else cuda.as_numpy(value)
                )
        return out

    def prepare_load(self, state: Mapping[str, Any]):
        """The first half of ``load_state_dict``: check ``state`` and return a plan; nothing
        is changed (raises as ``load_state_dict``)."""
        params = dict(self.named_params())
        problems = []
        cls = state.get("class")
        if cls is None or str(np.asarray(cls)) != type(self).__name__:
            problems.append(
                f"the state belongs to {None if cls is None else str(np.asarray(cls))!r}, "
                f"not {type(self).__name__!r}"
            )
        if "t" not in state:
            problems.append("missing key 't'")
        hyper = {}
        for h in self.hyperparams:
            if "hyper/" + h not in state:
                problems.append(f"missing key {'hyper/' + h!r}")
            else:
                hyper[h] = float(np.asarray(state["hyper/" + h]))
        new_state: dict[str, dict[str, Any]] = {}
        for key, value in state.items():
            if key in ("class", "t") or key.startswith("hyper/"):
                if key.startswith("hyper/") and key[6:] not in self.hyperparams:
                    problems.append(f"unexpected key {key!r}")
                continue
            if not key.startswith("state/") or key.count("/") < 2:
                problems.append(f"unexpected key {key!r}")
                continue
            path, slot = key[6:].rsplit("/", 1)
            p = params.get(path)
            if not isinstance(value, cuda.array_types):
                problems.append(f"{key!r} is a {type(value).__name__}, not an array")
                continue
            if p is None:
                problems.append(f"state for {path!r}, which the model does not have")
                continue
            if p.data is not None and value.shape != p.data.shape:
                problems.append(
                    f"shape mismatch for {key!r}: got {value.shape}, the parameter has "
                    f"{p.data.shape}"
                )
                continue
            if p.data is None or isinstance(p.data, np.ndarray):
                array = np.array(cuda.as_numpy(value), dtype=None if p.data is None
                                 else p.data.dtype, copy=True)
            else:
                array = cuda.as_cupy(value).astype(p.data.dtype, copy=True)
            new_state.setdefault(path, {})[slot] = array
        if problems:
            raise CheckpointError(
                f"cannot load state into {type(self).__name__}: " + "; ".join(problems)
            )
        return int(np.asarray(state["t"])), hyper, new_state

    def finish_load(self, plan) -> None:
        """The second half of ``load_state_dict``: apply what ``prepare_load`` planned."""
        t, hyper, new_state = plan
        self.t = t
        for h, value in hyper.items():
            setattr(self, h, value)
        self._state = new_state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` returned; needs ``setup()`` first.

        Raises:
            CheckpointError (a ValueError): another optimizer's state, missing keys, state
                for parameters the target lacks, or mismatched shapes (all named).
        """
        self.finish_load(self.prepare_load(state))


def _set_grads(params, grads) -> None:
    """Leave each gradient array in its parameter's ``grad`` (None: none): the one place
    where optimizers write gradients back."""
    for p, g in zip(params, grads):
        if g is None:
            p.grad = None
        elif p.grad is None or p.grad.data is not g:
            p.grad = Variable(g)


class _BookHook:
    """The book's hook ``f(params)`` (it reads and sets ``param.grad``) as a gradient hook:
    wrapped once, by ``add_hook``."""

    def __init__(self, f):
        self.f = f

    def update_grads(self, params, grads):
        _set_grads(params, grads)
        self.f([p for p in params if p.grad is not None])
        return [None if p.grad is None else p.grad.data for p in params]


class _GraphMode:
    def __init__(self, opt):
        self.opt = opt
        opt._graph_buffers()  # now: not while a graph is being captured

    def __enter__(self):
        self.opt._graph = self.opt._graph_buffers()[:2]

    def __exit__(self, *exc):
        self.opt._graph = None


# =============================================================================
# Optimizers
# =============================================================================
class SGD(Optimizer):
    """Plain gradient descent: ``p -= lr * g``."""

    hyperparams = ("lr",)

    def __init__(self, lr: float = 0.01):
        super().__init__()
        self.lr = lr

    def update_one_array(self, param, g, h):
        param.data -= h["lr"] * g


class MomentumSGD(Optimizer):
    """SGD with momentum: ``v = momentum * v - lr * g; p += v``."""

    hyperparams = ("lr", "momentum")

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__()
        self.lr = lr
        self.momentum = momentum

    def update_one_array(self, param, g, h):
        v = self.slot(param, "v")
        v *= h["momentum"]
        v -= h["lr"] * g
        param.data += v


class AdaGrad(Optimizer):
    """AdaGrad: ``h += g*g; p -= lr * g / (sqrt(h) + eps)``."""

    hyperparams = ("lr", "eps")

    def __init__(self, lr: float = 0.001, eps: float = 1e-8):
        super().__init__()
        self.lr = lr
        self.eps = eps

    def update_one_array(self, param, g, h):
        xp = cuda.get_array_module(param.data)
        acc = self.slot(param, "h")
        acc += g * g
        param.data -= h["lr"] * g / (xp.sqrt(acc) + h["eps"])


class AdaDelta(Optimizer):
    """AdaDelta (no learning rate): step ``sqrt((E[dx^2]+eps) / (E[g^2]+eps)) * g``."""

    hyperparams = ("rho", "eps")
    lr_attr = None

    def __init__(self, rho: float = 0.95, eps: float = 1e-6):
        super().__init__()
        self.rho = rho
        self.eps = eps

    def update_one_array(self, param, g, h):
        xp = cuda.get_array_module(param.data)
        rho, eps = h["rho"], h["eps"]
        msg = self.slot(param, "msg")
        msdx = self.slot(param, "msdx")
        msg *= rho
        msg += (1.0 - rho) * g * g
        dx = xp.sqrt((msdx + eps) / (msg + eps)) * g
        msdx *= rho
        msdx += (1.0 - rho) * dx * dx
        param.data -= dx


# Elements per block of the multi-tensor Adam step: its four 64 KiB float32 blocks stay in
# the cache for the dozen passes over them.
_BLOCK = 1 << 14


class Adam(Optimizer):
    """Adam; the bias correction is folded into the step size ``lr`` (a property).

    ``lr = alpha * sqrt(1 - beta2**t) / (1 - beta1**t)``;
    ``m += (1-beta1)(g-m); v += (1-beta2)(g*g-v); p -= lr * m / (sqrt(v) + eps)``.
    Schedules set ``alpha``.
    """

    hyperparams = ("alpha", "beta1", "beta2", "eps")
    lr_attr = "alpha"

    def __init__(self, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8):
        super().__init__()
        self.alpha = alpha
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    @property
    def lr(self) -> float:
        t = max(self.t, 1)
        fix1 = 1.0 - float(self.beta1) ** t
        fix2 = 1.0 - float(self.beta2) ** t
        return float(self.alpha) * math.sqrt(fix2) / fix1

    def _complete_hyper(self, h):
        t = max(self.t, 1)  # the bias correction of this step
        h["lr"] = h["alpha"] * math.sqrt(1.0 - h["beta2"] ** t) / (1.0 - h["beta1"] ** t)
        h["1-beta1"] = 1.0 - h["beta1"]
        h["1-beta2"] = 1.0 - h["beta2"]
        return h

    def update_one_array(self, param, g, h):
        xp = cuda.get_array_module(param.data)
        m = self.slot(param, "m")
        v = self.slot(param, "v")
        m += h["1-beta1"] * (g - m)
        v += h["1-beta2"] * (g * g - v)
        denom = xp.sqrt(v)
        denom += h["eps"]
        param.data -= h["lr"] * m / denom

    _FUSED = ("lr", "1-beta1", "1-beta2", "eps")

    def foreach_compatible(self, h) -> bool:
        # the groups may differ in what each parameter gets before the step (AdamW's decay)
        return all(x[k] == h[0][k] for x in h[1:] for k in self._FUSED)

    def update_all(self, params, grads, h) -> None:
        # NumPy parameters of one dtype sharing the step's scalars: one pass over all of
        # them, the moments kept in two flat arrays whose views are the per-parameter
        # slots. Elementwise, so each element gets exactly the per-parameter arithmetic;
        # what it saves is the per-call cost of a dozen ufuncs for every small parameter.
        live = [(p, g) for p, g in zip(params, grads) if g is not None]
        group_of = self._group_of
        hs = [h[group_of.get(id(p), 0)] for p, _ in live]
        for (p, _), hp in zip(live, hs):
            self._before_step(p, hp)
        m, v, g, step, views = self._flat_moments([p for p, _ in live])
        h0 = hs[0]
        np.concatenate([g.ravel() for _, g in live], out=g)
        c1, c2, eps, lr = h0["1-beta1"], h0["1-beta2"], h0["eps"], h0["lr"]

        def blocks(lo, hi):
            # block by block, so that all the passes of a block run in the cache (on large
            # models the passes over whole arrays, and their temporaries, bound the step);
            # per element the same operations, in the same order, as on whole arrays
            for a in range(lo * _BLOCK, min(hi * _BLOCK, m.size), _BLOCK):
                b = a + _BLOCK
                gs, ms, vs, ss = g[a:b], m[a:b], v[a:b], step[a:b]
                np.subtract(gs, ms, out=ss)
                ss *= c1
                ms += ss  # m += (1 - beta1) * (g - m)
                gs *= gs
                gs -= vs
                gs *= c2
                vs += gs  # v += (1 - beta2) * (g * g - v), in the gradient's buffer
                np.sqrt(vs, out=ss)
                ss += eps
                np.multiply(ms, lr, out=gs)
                np.divide(gs, ss, out=ss)  # step = lr * m / (sqrt(v) + eps)

        parallel_for(blocks, -(-m.size // _BLOCK), work=m.size)
        for (p, _), view in zip(live, views):
            p.data -= view

    def _before_step(self, param, h) -> None:
        pass

    def _flat_moments(self, params):
        """The moments of ``params`` as two flat arrays whose views are the slots; rebuilt
        when the parameters or the state dict (``load_state_dict``, ``setup``) change."""
        key = tuple(id(p) for p in params)
        flat = getattr(self, "_flat", None)
        if flat is not None and flat[0] == key and flat[1] is self._state:
            return flat[2:]
        moments = []
        for name in ("m", "v"):
            parts = [self.slot(p, name) for p in params]
            whole = np.concatenate([a.ravel() for a in parts])
            start = 0
            for p, a in zip(params, parts):
                self._state[self._name_of(p)][name] = whole[start:start + a.size].reshape(
                    a.shape)
                start += a.size
            moments.append(whole)
        g, step = np.empty_like(moments[0]), np.empty_like(moments[0])  # work buffers
        views, start = [], 0
        for p in params:
            views.append(step[start:start + p.data.size].reshape(p.data.shape))
            start += p.data.size
        self._flat = (key, self._state, *moments, g, step, views)
        return self._flat[2:]


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - alpha * weight_decay`` before the step."""

    hyperparams = (*Adam.hyperparams, "weight_decay")

    def __init__(self, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(alpha, beta1, beta2, eps)
        self.weight_decay = weight_decay

    def _complete_hyper(self, h):
        h = super()._complete_hyper(h)
        h["decay"] = 1.0 - h["alpha"] * h["weight_decay"]
        return h

    def update_one_array(self, param, g, h):
        param.data *= h["decay"]
        super().update_one_array(param, g, h)

    def _before_step(self, param, h) -> None:
        param.data *= h["decay"]


# =============================================================================
# Hooks (called with the list of parameters that have gradients)
# =============================================================================
# Hooks work on the gradient arrays (update_grads(params, grads) -> new grads, one per
# parameter, None: no update) and make new arrays rather than scaling in place: the engine
# may hand the same gradient array to two parameters (y = W1 + W2), and an in-place edit
# would then apply twice. Calling a hook on the parameters (the book's hook(params)) applies
# it to their grad Variables.
class _GradHook:
    def __call__(self, params: list[Parameter]) -> None:
        """The book's ``hook(params)``: the same, on the parameters' ``grad``."""
        _set_grads(params, self.update_grads(
            params, [None if p.grad is None else p.grad.data for p in params]))


class WeightDecay(_GradHook):
    """L2 regularisation: ``g += rate * p`` (before the optimizer's step)."""

    def __init__(self, rate: float):
        self.rate = rate

    def update_grads(self, params, grads):
        rate = float(self.rate)
        return [None if g is None else g + rate * p.data for p, g in zip(params, grads)]


class ClipGrad(_GradHook):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    The factor ``min(1, max_norm / (norm + 1e-6))`` is computed on the gradients' device
    and applied always (a factor of 1 changes nothing): no value is read into Python, so a
    replayed step or a CUDA graph computes it afresh every time.
    """

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def update_grads(self, params, grads):
        live = [g for g in grads if g is not None]
        if not live:
            return grads
        xp = cuda.get_array_module(live[0])
        total = None
        for g in live:
            s = xp.vdot(g.ravel(), g.ravel()) if g.dtype.kind == "f" else (g * g).sum()
            total = s if total is None else total + s
        rate = xp.minimum(float(self.max_norm) / (xp.sqrt(total) + 1e-6), 1.0)
        return [None if g is None else g * rate.astype(g.dtype) for g in grads]


class FreezeParam:
    """Keep the parameters of ``layers`` (Layers or Parameters) fixed: drops their grads."""

    def __init__(self, *layers):
        self.freeze_params: list[Parameter] = []
        for layer in layers:
            if isinstance(layer, Parameter):
                self.freeze_params.append(layer)
            elif isinstance(layer, Layer):
                self.freeze_params.extend(layer.params())
            else:
                raise TypeError(
                    f"FreezeParam takes Layers or Parameters, not {type(layer).__name__}"
                )

    def __call__(self, params: list[Parameter]) -> None:
        for p in self.freeze_params:
            p.grad = None

    def update_grads(self, params, grads):
        frozen = {id(p) for p in self.freeze_params}
        return [None if id(p) in frozen else g for p, g in zip(params, grads)]


# =============================================================================
# Learning-rate schedules
# =============================================================================
hints.install(Optimizer)  # "did you mean" for step(), zero_grad()...


class LRScheduler:
    """Sets the optimizer's learning rate (``lr``; ``alpha`` for Adam) from a step count.

    Call ``step()`` once per epoch or once per iteration, as the schedule is meant; the
    rate for step 0 is set at construction. ``state_dict()`` / ``load_state_dict()`` hold
    the step count and base rate (put them in a checkpoint's extras).
    """

    def __init__(self, optimizer: Optimizer):
        attr = getattr(optimizer, "lr_attr", "lr")
        if attr is None:
            raise TypeError(f"{type(optimizer).__name__} has no learning rate to schedule")
        self.optimizer = optimizer
        self.attr = attr
        self.base_lr = float(getattr(optimizer, attr))
        self.last_step = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> float:
        return float(self.lr_at(self.last_step))

    def _apply(self) -> None:
        setattr(self.optimizer, self.attr, self.get_lr())

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "last_step": self.last_step}

    def __repr__(self) -> str:
        skip = ("optimizer", "attr", "base_lr", "last_step", "after")
        own = "".join(f", {k}={v!r}" for k, v in self.__dict__.items()
                      if k not in skip and not k.startswith("_"))
        return (f"{type(self).__name__}({type(self.optimizer).__name__}{own}; "
                f"base_lr={self.base_lr!r}, step {self.last_step}, lr={self.get_lr()!r})")

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.base_lr = float(state["base_lr"])
        self.last_step = int(state["last_step"])
        self._apply()


hints.install(LRScheduler)  # "did you mean" for get_last_lr()


class StepLR(LRScheduler):
    """``lr = base * gamma ** (step // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        if step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer)

    def lr_at(self, step):
        return self.base_lr * float(self.gamma) ** (step // self.step_size)


class ExponentialLR(LRScheduler):
    """``lr = base * gamma ** step``."""

    def __init__(self, optimizer: Optimizer, gamma: float):
        self.gamma = gamma
        super().__init__(optimizer)

    def lr_at(self, step):
        return self.base_lr * float(self.gamma) ** step


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base - eta_min) * (1 + cos(pi * min(step, T_max) / T_max)) / 2``."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        if T_max <= 0:
            raise ValueError(f"T_max must be positive, got {T_max}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer)

    def lr_at(self, step):
        progress = min(step, self.T_max) / self.T_max
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2


class WarmupLR(LRScheduler):
    """Linear warm-up: ``lr = base * (step + 1) / warmup_steps`` for the first steps.

    After ``warmup_steps`` steps the rate is ``base``, or, when ``after`` (another schedule
    on the same optimizer) is given, ``after``'s rate counted from the end of the warm-up.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int,
                 after: LRScheduler | None = None):
        if warmup_steps <= 0:
            raise ValueError(f"warmup_steps must be positive, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.after = after
        super().__init__(optimizer)

    def lr_at(self, step):
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.after is None:
            return self.base_lr
        return self.after.lr_at(step - self.warmup_steps)
