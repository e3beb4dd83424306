"""Hooks on Variables and the handles that every ``register_*hook`` returns.

``Variable.register_hook`` stores its functions in ``dezero.core._var_hooks`` (keyed by the
Variable's id, with a weak reference); a backward pass that finds that registry non-empty
adds a :class:`VariableHookRunner` to its observers. Nothing here runs when no Variable has
a hook.
"""

from __future__ import annotations

import weakref

from dezero import core
from dezero.core import FunctionHook, Variable

__all__ = ["HookHandle", "VariableHookRunner", "register_variable_hook"]


def register_variable_hook(var: Variable, fn) -> HookHandle:
    """``var.register_hook(fn)``: see :meth:`dezero.Variable.register_hook`."""
    if not callable(fn):
        raise TypeError(f"register_hook takes a callable, not {type(fn).__name__}")
    registry = core._var_hooks
    key = id(var)
    entry = registry.get(key)
    if entry is None or entry[0]() is not var:
        entry = (weakref.ref(var, lambda ref, key=key: _forget_hooks(key, ref)), [])
        registry[key] = entry
    return HookHandle(entry[1], fn, lambda: _forget_hooks(key, entry[0]))


def _forget_hooks(key: int, ref) -> None:
    registry = getattr(core, "_var_hooks", None)
    if registry is None:  # a weakref callback at interpreter exit, after module teardown
        return
    entry = registry.get(key)
    if entry is not None and entry[0] is ref and (ref() is None or not entry[1]):
        del registry[key]


class HookHandle:
    """What ``register_*hook`` returns: ``remove()`` unregisters the hook (idempotent).

    Also a context manager: the hook is removed when the ``with`` block ends.
    """

    __slots__ = ("_fn", "_hooks", "_on_empty")

    def __init__(self, hooks: list, fn, on_empty=None):
        hooks.append(fn)
        self._hooks = hooks
        self._fn = fn
        self._on_empty = on_empty

    def remove(self) -> None:
        hooks = self._hooks
        for i, h in enumerate(hooks):
            if h is self._fn:
                del hooks[i]
                break
        if not hooks and self._on_empty is not None:
            self._on_empty()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class VariableHookRunner(FunctionHook):
    """Runs Variable hooks during one backward pass (never installed in a thread: the pass
    adds it to its own observers when ``core._var_hooks`` is not empty).

    A hooked Variable is *pending* from the moment the pass first gives it a gradient (its
    earlier ``.grad`` is put aside so that the hooks see this pass's gradient only) until
    its gradient is complete: for an intermediate Variable, when the Function that made it
    comes up (every consumer has a higher generation, so all came before it); for the
    others, at the end of the pass.
    """

    def __init__(self, root: Variable, create_graph: bool):
        self.create_graph = create_graph
        self.pending = {}
        if id(root) in core._var_hooks:
            self.pending[id(root)] = (root, None)

    def backward_pre(self, f) -> None:
        pending = self.pending
        if pending:
            for ref in f.outputs:
                y = ref()
                if y is not None and id(y) in pending:
                    self._complete(pending.pop(id(y)))

    def backward_post(self, f, gxs) -> None:
        pending = self.pending
        for x, gx in zip(f.inputs, gxs):
            key = id(x)
            if gx is None or key in pending or not x.requires_grad:
                continue
            entry = core._var_hooks.get(key)
            if entry is not None and entry[0]() is x:
                pending[key] = (x, x.grad)
                x.grad = None

    def finish(self) -> None:
        for item in list(self.pending.values()):
            self._complete(item)
        self.pending.clear()

    def _complete(self, item) -> None:
        x, before = item
        entry = core._var_hooks.get(id(x))
        g = x.grad
        if entry is not None and entry[0]() is x and g is not None:
            for fn in tuple(entry[1]):
                new = fn(g)
                if new is not None:
                    if not isinstance(new, Variable):
                        new = Variable(new)
                    if new.shape != g.shape:
                        raise ValueError(
                            f"a Variable hook returned a gradient of shape {new.shape} for a "
                            f"Variable of shape {x.shape}"
                        )
                    g = new
        if before is not None:
            g = before + g if self.create_graph else Variable(before.data + g.data)
        x.grad = g
