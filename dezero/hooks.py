"""The engine's observer protocol: :class:`FunctionHook`, the hooks installed in each thread,
the handles every ``register_*hook`` returns, and the registry of Variable hooks.

This is part of the engine (layer L1 with ``core.py``) and imports nothing else of dezero, so
that ``core`` can build on it. Every tool (``dezero.jit``, ``dezero.anomaly``,
``dezero.profiler``, ``dezero.onnx``, ``dezero.func``) observes the engine through a
FunctionHook; none of them replaces methods of live objects.
"""

from __future__ import annotations

import threading
import weakref

__all__ = [
    "FunctionHook",
    "HookHandle",
    "active",
    "has_variable_hooks",
    "installed",
    "register_variable_hook",
    "run_variable_hooks",
    "variable_hooks",
]


class _Active(threading.local):
    hooks: tuple = ()  # the FunctionHooks installed in this thread, outermost first


#: Per-thread state read by the engine on every call: ``active.hooks`` is the tuple of
#: FunctionHooks installed in the calling thread.
active = _Active()


def installed() -> tuple:
    """The FunctionHooks installed in the calling thread (outermost first)."""
    return active.hooks


class FunctionHook:
    """Observes the engine in one thread: every Function call, every Function's part of a
    backward pass, every gradient it stores, optimizer updates and value reads.

    Subclass it, override what you need, and install it with ``with hook:`` (for the calling
    thread only; nestable). With no hook installed the engine pays one attribute read per call.

    Gradients reach observers as arrays (NumPy or CuPy), always: under
    ``create_graph=True`` the engine hands over the ``.data`` of its gradient Variables.

    - ``forward_pre(f, inputs)``: before ``f.forward`` (``inputs`` as passed to the call);
    - ``forward_post(f, xs, outputs)``: after it, with the input and output Variables;
    - ``backward_pre(f)`` / ``backward_post(f, gxs)``: around the gradient computation of
      ``f`` in a backward pass (``gxs``: one gradient array per input, None where none);
    - ``accumulate(var, grad, added)``: right after the pass stored the gradient ``grad``
      (one contribution, an array) for ``var``; ``added`` is True when it was summed into a
      gradient ``var`` already had (its ``.grad`` from an earlier pass or contribution, or
      this pass's own running sum). ``dezero.core.current_pass()`` tells where the pass
      keeps ``var``'s gradient (``writes_grad(var)``) and what it holds now (``gradient``);
    - ``cleargrad(var)``: ``var.cleargrad()`` dropped its gradient (``Layer.cleargrads()``
      calls it for each parameter);
    - ``update_pre(optimizer)`` / ``update_post(optimizer)``: around ``Optimizer.update()``;
    - ``value_read(var, how)``: before a Variable's value is read into Python (``how``:
      ``"float()"``, ``"int()"``, ``"item()"``).
    """

    def forward_pre(self, f, inputs) -> None:
        pass

    def forward_post(self, f, xs, outputs) -> None:
        pass

    def backward_pre(self, f) -> None:
        pass

    def backward_post(self, f, gxs) -> None:
        pass

    def accumulate(self, var, grad, added: bool) -> None:
        pass

    def cleargrad(self, var) -> None:
        pass

    def update_pre(self, optimizer) -> None:
        pass

    def update_post(self, optimizer) -> None:
        pass

    def value_read(self, var, how: str) -> None:
        pass

    def __enter__(self):
        active.hooks = (*active.hooks, self)
        return self

    def __exit__(self, *exc):
        active.hooks = tuple(h for h in active.hooks if h is not self)


class HookHandle:
    """What ``register_*hook`` returns: ``remove()`` unregisters that one registration.

    Removing twice does nothing the second time (it never removes another handle's
    registration of the same function). Also a context manager: the hook is removed when the
    ``with`` block ends.
    """

    __slots__ = ("_entry", "_hooks", "_on_empty")

    def __init__(self, hooks: list, fn, on_empty=None):
        self._entry = [fn]  # a box of its own: identifies this registration among equal fns
        hooks.append(self._entry)
        self._hooks = hooks
        self._on_empty = on_empty

    @staticmethod
    def functions(hooks: list) -> list:
        """The registered functions of a hook list, in registration order."""
        return [entry[0] for entry in hooks]

    def remove(self) -> None:
        hooks, self._hooks = self._hooks, None
        if hooks is None:  # removed already
            return
        for i, entry in enumerate(hooks):
            if entry is self._entry:
                del hooks[i]
                break
        if not hooks and self._on_empty is not None:
            self._on_empty()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


# =============================================================================
# Variable hooks: id(variable) -> (weakref to it, [registrations]). The dict is empty unless
# some Variable has a hook; a backward pass checks that once.
# =============================================================================
variable_hooks: dict[int, tuple] = {}


def register_variable_hook(var, fn) -> HookHandle:
    """``var.register_hook(fn)``: see :meth:`dezero.Variable.register_hook`."""
    if not callable(fn):
        raise TypeError(f"register_hook takes a callable, not {type(fn).__name__}")
    key = id(var)
    entry = variable_hooks.get(key)
    if entry is None or entry[0]() is not var:
        # _forget bound now: at interpreter exit the module's globals may be gone already
        entry = (weakref.ref(var, lambda ref, key=key, forget=_forget: forget(key, ref)), [])
        variable_hooks[key] = entry
    return HookHandle(entry[1], fn, lambda: _forget(key, entry[0]))


def _forget(key: int, ref) -> None:
    registry = globals().get("variable_hooks")
    if registry is None:  # a weakref callback at interpreter exit, after module teardown
        return
    entry = registry.get(key)
    if entry is not None and entry[0] is ref and (ref() is None or not entry[1]):
        del registry[key]


def has_variable_hooks(var) -> bool:
    """Whether ``var`` has hooks registered with ``register_hook``."""
    entry = variable_hooks.get(id(var))
    return entry is not None and entry[0]() is var and bool(entry[1])


def run_variable_hooks(var, grad):
    """Call ``var``'s hooks in order on its complete gradient ``grad`` (a Variable) and
    return what they leave: each may return a replacement (a Variable or an array of the same
    shape) or None (keep)."""
    entry = variable_hooks.get(id(var))
    if entry is None or entry[0]() is not var:
        return grad
    for fn in HookHandle.functions(entry[1]):
        new = fn(grad)
        if new is None:
            continue
        if not isinstance(new, type(grad)):
            new = type(grad)(new)
        if new.shape != grad.shape:
            raise ValueError(
                f"a Variable hook returned a gradient of shape {new.shape} for a Variable of "
                f"shape {var.shape}"
            )
        grad = new
    return grad
