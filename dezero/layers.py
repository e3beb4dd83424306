"""dezero.layers: Layer (the container of Parameters) and the layers built on it.

A Layer registers every attribute that is a Parameter, a Layer, or a list/tuple of those,
in assignment order; ``params()`` and the saved files follow that order, so runs repeat
exactly. Non-trainable arrays that belong to the state (BatchNorm's running statistics) are
*buffers*: saved and moved between devices with the layer, never handed to an optimizer.

Weights are saved as NumPy ``.npz`` archives or ``.safetensors`` files (by extension),
written atomically and read without pickle (the formats live in ``dezero.serialization``).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

import dezero.functions as F
from dezero import cuda, hints
from dezero.core import Config, Parameter, test_mode
from dezero.hooks import HookHandle
from dezero.serialization import (
    CheckpointError,
    load_arrays,
    load_npz,
    save_arrays,
    save_npz_atomic,
)

__all__ = [
    "CheckpointError",
    "Dropout",
    "Layer",
    "Linear",
    "init_skipped",
    "load_npz",
    "save_npz_atomic",
    "skip_init",
]


# =============================================================================
# Building layers without initialising them (for loading weights right after)
# =============================================================================
class _InitState(threading.local):
    skip = False


_init_state = _InitState()


@contextlib.contextmanager
def skip_init():
    """Build layers without initialising their weights, for loading weights right after.

    Inside the block, layers created (and weights created lazily) get ``np.empty`` arrays of
    the right shapes and dtypes instead of random draws: no random number is drawn (the
    global generator is left as it was) and no memory is written, so a large model costs
    nothing until its real weights are assigned. The contents are garbage until then.
    Per thread; blocks nest.

    >>> import numpy as np
    >>> state = np.random.get_state()[1].copy()
    >>> with skip_init():
    ...     layer = Linear(3, in_size=2)
    >>> layer.W.shape, bool((np.random.get_state()[1] == state).all())
    ((2, 3), True)
    """
    old = _init_state.skip
    _init_state.skip = True
    try:
        yield
    finally:
        _init_state.skip = old


def init_skipped() -> bool:
    """True inside ``skip_init()`` (in this thread): layers and models leave weights unset."""
    return _init_state.skip


def _randn(xp, shape, dtype, scale: float = 1.0):
    """The one place layers draw initial weights: N(0, scale^2) from ``xp.random``, or
    uninitialised memory inside ``skip_init()``."""
    if _init_state.skip:
        return xp.empty(shape, dtype=dtype)
    W = xp.random.randn(*shape).astype(dtype)
    if scale != 1.0:
        W *= scale
    return W


# =============================================================================
# Layer
# =============================================================================
def _is_member(value) -> bool:
    """True for what a Layer registers: Parameters, Layers, and lists/tuples holding some.

    An empty list registers too (it may be filled with layers later); items of a registered
    list that are neither Parameters nor Layers (e.g. ``F.relu`` in a Sequential) are skipped.
    """
    if isinstance(value, (Parameter, Layer)):
        return True
    if isinstance(value, (list, tuple)):
        return len(value) == 0 or any(_is_member(v) for v in value)
    return False


def _weak(obj):
    try:
        return weakref.ref(obj)
    except TypeError:  # ints, None...: nothing to free, hold them directly
        return lambda: obj


class Layer:
    """Base of all layers: holds Parameters, sub-layers and buffers, in assignment order.

    Subclasses call ``super().__init__()`` first, then assign attributes, and implement
    ``forward(*inputs)``. Calling the layer calls ``forward`` and keeps weak references to
    the inputs and outputs (``layer.inputs``, ``layer.outputs``) as the book does.

    >>> import numpy as np
    >>> import dezero.layers as L
    >>> class Net(Layer):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.l1 = L.Linear(3, in_size=2)
    ...         self.l2 = L.Linear(1, in_size=3)
    ...     def forward(self, x):
    ...         return self.l2(self.l1(x))
    >>> [name for name, _ in Net().named_params()]
    ['l1/W', 'l1/b', 'l2/W', 'l2/b']
    """

    def __init__(self):
        object.__setattr__(self, "_params", {})  # registered attribute names, ordered
        object.__setattr__(self, "_buffers", {})  # buffer names, ordered

    # --- registration -------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        try:
            registry = self.__dict__["_params"]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before "
                f"assigning attributes (while setting {name!r})"
            ) from None
        if name not in self._buffers:
            if _is_member(value):
                registry[name] = None
            else:
                registry.pop(name, None)
        object.__setattr__(self, name, value)
        if name == "training":  # set by hand (not through train()): this layer only
            self._update_special()

    def __delattr__(self, name: str) -> None:
        self._params.pop(name, None)
        self._buffers.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value=None) -> None:
        """Declare ``self.<name>`` a buffer: state saved with the layer but not trained.

        ``value`` is an array (NumPy or CuPy) or None (set it later by plain assignment,
        ``self.<name> = array``). Buffers are in ``state_dict()``, move with
        ``to_gpu()``/``to_cpu()`` and are never returned by ``params()``.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"buffer name must be an identifier, got {name!r}")
        if name in self._params:
            raise ValueError(f"{name!r} is already a parameter or sub-layer of this layer")
        if value is not None and not isinstance(value, cuda.array_types):
            raise TypeError(
                f"buffer {name!r} must be a NumPy/CuPy array or None, not {type(value).__name__}"
            )
        self._buffers[name] = None
        object.__setattr__(self, name, value)

    # --- calling ------------------------------------------------------------------
    # Class-level defaults: a layer without hooks in training mode pays one attribute read
    # per call for all of what follows (``_special`` is set on the instance otherwise).
    training = True
    _special = False
    _forward_pre_hooks: list | None = None
    _forward_hooks: list | None = None

    def __call__(self, *inputs):
        if self._special:
            return self._call_special(inputs)
        outputs = self.forward(*inputs)
        outs = outputs if isinstance(outputs, tuple) else (outputs,)
        object.__setattr__(self, "inputs", [_weak(x) for x in inputs])
        object.__setattr__(self, "outputs", [_weak(y) for y in outs])
        return outputs

    def _call_special(self, inputs):
        """``__call__`` for a layer with hooks or in eval mode."""
        for fn in HookHandle.functions(self._forward_pre_hooks or ()):
            new = fn(self, inputs)
            if new is not None:
                inputs = new if isinstance(new, tuple) else (new,)
        if not self.training and Config.train:
            with test_mode():
                outputs = self.forward(*inputs)
        else:
            outputs = self.forward(*inputs)
        outs = outputs if isinstance(outputs, tuple) else (outputs,)
        object.__setattr__(self, "inputs", [_weak(x) for x in inputs])
        object.__setattr__(self, "outputs", [_weak(y) for y in outs])
        for fn in HookHandle.functions(self._forward_hooks or ()):
            new = fn(self, inputs, outputs)
            if new is not None:
                outputs = new
        return outputs

    def _update_special(self) -> None:
        special = (not self.training or bool(self._forward_pre_hooks)
                   or bool(self._forward_hooks))
        object.__setattr__(self, "_special", special)

    def register_forward_pre_hook(self, fn: Callable) -> HookHandle:
        """Call ``fn(layer, inputs)`` before every ``forward``; returns a handle (``remove()``).

        ``inputs`` is the tuple of arguments of the call. ``fn`` may return replacements (a
        tuple, or one value for a single input); None keeps them.
        """
        return self._add_hook("_forward_pre_hooks", fn)

    def register_forward_hook(self, fn: Callable) -> HookHandle:
        """Call ``fn(layer, inputs, output)`` after every ``forward``; returns a handle.

        ``output`` is what ``forward`` returned; ``fn`` may return a replacement, which the
        call then returns (None keeps it). ``handle.remove()`` unregisters ``fn``.

        >>> import numpy as np
        >>> layer = Linear(2, in_size=3)
        >>> shapes = []
        >>> handle = layer.register_forward_hook(lambda l, ins, out: shapes.append(out.shape))
        >>> _ = layer(np.ones((4, 3), dtype=np.float32))
        >>> handle.remove()
        >>> _ = layer(np.ones((4, 3), dtype=np.float32))
        >>> shapes
        [(4, 2)]
        """
        return self._add_hook("_forward_hooks", fn)

    def _add_hook(self, attr: str, fn) -> HookHandle:
        if not callable(fn):
            raise TypeError(f"a layer hook must be callable, not {type(fn).__name__}")
        hooks = self.__dict__.get(attr)
        if hooks is None:
            hooks = []
            object.__setattr__(self, attr, hooks)
        handle = HookHandle(hooks, fn, self._update_special)
        self._update_special()
        return handle

    # --- training and evaluation mode ------------------------------------------------
    def train(self, mode: bool = True):
        """Put this layer and all its sub-layers in training (True) or eval (False) mode.

        A layer in eval mode runs its ``forward`` (sub-layers and the functional
        ``F.dropout``/``F.batch_norm`` inside it included) as under ``dezero.test_mode()``.
        The two combine with "or": a layer runs in test mode when ``Config.train`` is False
        (``test_mode()``) or when it is in eval mode; ``test_mode()`` works as in the book
        whatever the layers' modes. Returns self.

        >>> import numpy as np
        >>> drop = Dropout(0.5)
        >>> x = np.ones(6, dtype=np.float32)
        >>> drop.eval().training, drop(x).data
        (False, array([1., 1., 1., 1., 1., 1.], dtype=float32))
        >>> drop.train().training
        True
        """
        mode = bool(mode)
        for layer in self._layers():
            object.__setattr__(layer, "training", mode)
            layer._update_special()
        return self

    def eval(self):
        """``train(False)``: eval mode for this layer and its sub-layers. Returns self."""
        return self.train(False)

    def _layers(self) -> Iterator[Layer]:
        """This layer and every sub-layer (each once), depth first in registration order."""
        stack, seen = [self], set()
        while stack:
            layer = stack.pop()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            yield layer
            subs = []
            for name in layer._params:
                _collect_layers(layer.__dict__.get(name), subs)
            stack.extend(reversed(subs))

    def named_layers(self) -> Iterator[tuple[str, Layer]]:
        """Yield ``(path, layer)`` for every sub-layer (not self), each once, in order."""
        seen = {id(self)}
        yield from _named_layers(self, "", seen)

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    # --- traversal ----------------------------------------------------------------
    def _walk(self, prefix: str, seen: set) -> Iterator[_Entry]:
        """Yield an ``_Entry`` for every parameter and buffer, in a fixed order.

        ``seen`` holds the ids met during this one walk, so a shared Parameter or layer
        appears once (under its first path).
        """
        for name in self._params:
            yield from _walk_value(self.__dict__.get(name), prefix + name, seen)
        for name in self._buffers:
            key = (id(self), name)
            if key not in seen:
                seen.add(key)
                yield _Entry("buffer", prefix + name, self, name)

    def __repr__(self) -> str:
        """The tree of layers, each with its parameters' and buffers' shapes and dtypes.

        >>> import numpy as np
        >>> class Net(Layer):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.l1 = Linear(3, in_size=2)
        ...         self.l2 = Linear(1)
        ...     def forward(self, x):
        ...         return self.l2(self.l1(x))
        >>> Net()
        Net(
          l1: Linear(W (2, 3) float32, b (3,) float32)
          l2: Linear(W uninitialised, b (1,) float32)
        )
        """
        return "\n".join(self._repr_lines(""))

    def _repr_lines(self, head: str) -> list[str]:
        arrays, children = [], []

        def visit(value, name):
            if isinstance(value, Parameter):
                arrays.append((name, value.data))
            elif isinstance(value, Layer):
                children.append((name, value))
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    visit(item, f"{name}/{i}")

        for name in self._params:
            visit(self.__dict__.get(name), name)
        arrays.extend((name, getattr(self, name)) for name in self._buffers)
        described = [
            f"{name} uninitialised" if a is None
            else f"{name} {tuple(a.shape)} {a.dtype.name}"
            for name, a in arrays
        ]
        title = f"{head}{type(self).__name__}"
        if not children:
            return [f"{title}({', '.join(described)})"]
        lines = [f"{title}("]
        lines.extend("  " + d for d in described)
        for name, child in children:
            lines.extend("  " + line for line in child._repr_lines(f"{name}: "))
        lines.append(")")
        return lines

    def members(self) -> list[str]:
        """The names of this layer's registered attributes, in order: its parameters,
        sub-layers (and lists of them), then its buffers."""
        return [*self._params, *self._buffers]

    def own_params(self) -> Iterator[Parameter]:
        """The Parameters this layer holds itself (also in lists), not its sub-layers'."""
        for name in self._params:
            stack = [self.__dict__.get(name)]
            while stack:
                v = stack.pop()
                if isinstance(v, Parameter):
                    yield v
                elif isinstance(v, (list, tuple)):
                    stack.extend(reversed(v))

    def own_buffers(self) -> Iterator[tuple[str, Any]]:
        """``(name, array_or_None)`` for this layer's own buffers, not its sub-layers'."""
        for name in self._buffers:
            yield name, getattr(self, name)

    def named_params(self) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(path, parameter)`` pairs, paths '/'-joined (``'l1/W'``), in order."""
        for entry in self._walk("", set()):
            if entry.kind == "param":
                yield entry.path, entry.owner

    def params(self) -> Iterator[Parameter]:
        """Yield every Parameter of this layer and its sub-layers, each once, in order."""
        for _, p in self.named_params():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(path, array_or_None)`` for every buffer, in order."""
        for entry in self._walk("", set()):
            if entry.kind == "buffer":
                yield entry.path, entry.value()

    def cleargrads(self) -> None:
        """Set every parameter's gradient to None."""
        for p in self.params():
            p.cleargrad()

    # --- devices ------------------------------------------------------------------
    def _move(self, convert) -> None:
        for entry in self._walk("", set()):
            value = entry.value()
            if value is not None:
                entry.assign(convert(value))
            if entry.kind == "param":
                g = entry.owner.grad
                if g is not None and g.data is not None:
                    g.data = convert(g.data)

    def to_cpu(self):
        """Move parameters (and their gradients) and buffers to NumPy; returns self."""
        self._move(cuda.as_numpy)
        return self

    def to_gpu(self):
        """Move parameters (and their gradients) and buffers to CuPy; returns self."""
        self._move(cuda.as_cupy)
        return self

    # --- state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Return an ordered dict ``path -> NumPy array`` of parameters and buffers.

        The arrays are copies on the host (also for a model on the GPU). Parameters and
        buffers not initialised yet (a lazy Linear before its first call) are left out.
        """
        state: dict[str, np.ndarray] = {}
        for entry in self._walk("", set()):
            value = entry.value()
            if value is None:
                continue
            state[entry.path] = value.copy() if isinstance(value, np.ndarray) else (
                cuda.as_numpy(value))
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True):
        """Load parameters and buffers from ``state`` (as made by ``state_dict()``).

        Everything is checked before anything is assigned, so a failed load leaves the layer
        unchanged. A key the model has but ``state`` lacks is an error (with ``strict``)
        unless that entry is not initialised yet; a key ``state`` has but the model lacks is
        an error with ``strict``; a shape mismatch is always an error. Arrays are copied onto
        the device of the entry they replace (uninitialised entries: the device of the rest
        of the model), and cast to its dtype where that is a same-kind cast.

        Returns:
            ``(missing_keys, unexpected_keys)``, two lists (empty after a strict load).

        Raises:
            CheckpointError (a ValueError): naming every offending key and the problem.
        """
        return self.finish_load(self.prepare_load(state, strict))

    def prepare_load(self, state: Mapping[str, Any], strict: bool = True):
        """The first half of ``load_state_dict``: check ``state`` against this layer and
        return a plan of what to assign; nothing is changed (raises as ``load_state_dict``).
        A load of several objects (a checkpoint: model, optimizer, ...) prepares them all,
        then finishes them all, so that it is all or nothing."""
        entries = {entry.path: entry for entry in self._walk("", set())}
        xp_default = np
        for entry in entries.values():
            current = entry.value()
            if current is not None:
                xp_default = cuda.get_array_module(current)
                break

        problems: list[str] = []
        missing, unexpected = [], []
        assignments = []
        for path, entry in entries.items():
            current = entry.value()
            if path not in state:
                if current is not None:
                    missing.append(path)
                continue
            value = state[path]
            if isinstance(value, Parameter):
                value = value.data
            if not isinstance(value, cuda.array_types):
                problems.append(f"{path!r} is a {type(value).__name__}, not an array")
                continue
            if value.dtype.kind not in "biuf":
                problems.append(f"{path!r} has the unsupported dtype {value.dtype}")
                continue
            if current is not None:
                if value.shape != current.shape:
                    problems.append(
                        f"shape mismatch for {path!r}: got {value.shape}, "
                        f"the model has {current.shape}"
                    )
                    continue
                if not np.can_cast(value.dtype, current.dtype, casting="same_kind"):
                    problems.append(
                        f"dtype mismatch for {path!r}: got {value.dtype}, "
                        f"the model has {current.dtype}"
                    )
                    continue
                xp, dtype = cuda.get_array_module(current), current.dtype
            else:
                xp, dtype = xp_default, value.dtype
            assignments.append((entry, xp, dtype, value))
        unexpected = [k for k in state if k not in entries]
        if strict:
            if missing:
                problems.append(f"missing keys: {missing}")
            if unexpected:
                problems.append(f"unexpected keys: {unexpected}")
        if problems:
            raise CheckpointError(
                f"cannot load state into {type(self).__name__}: " + "; ".join(problems)
            )
        return assignments, missing, unexpected

    def finish_load(self, plan) -> tuple[list[str], list[str]]:
        """The second half of ``load_state_dict``: assign what ``prepare_load`` planned.
        Returns ``(missing_keys, unexpected_keys)``."""
        assignments, missing, unexpected = plan
        for entry, xp, dtype, value in assignments:
            if xp is np:
                array = np.array(cuda.as_numpy(value), dtype=dtype, copy=True)
            else:
                array = cuda.as_cupy(value).astype(dtype, copy=True)
            entry.assign(array)
        return missing, unexpected

    def save_weights(self, path) -> None:
        """Save ``state_dict()`` to ``path`` (atomic; the model stays put).

        A name ending in ``.safetensors`` writes a safetensors file (extra ``safetensors``);
        any other name an ``.npz`` archive. The file name is used as given (no ``.npz`` is
        appended).
        """
        save_arrays(path, self.state_dict())

    def load_weights(self, path, strict: bool = True) -> None:
        """Load weights saved by ``save_weights`` (format by extension, as there; no pickle).

        Raises:
            FileNotFoundError: when ``path`` does not exist.
            CheckpointError (a ValueError): truncated/corrupted file, missing or extra keys,
                mismatched shapes; the message names ``path`` and the problem.
        """
        arrays = load_arrays(path)
        try:
            self.load_state_dict(arrays, strict=strict)
        except CheckpointError as e:
            raise CheckpointError(f"{os.fspath(path)!r}: {e}") from None


hints.install(Layer)  # "did you mean" for model.parameters(), zero_grad()...


def _collect_layers(value, out: list) -> None:
    if isinstance(value, Layer):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_layers(item, out)


def _named_layers(layer: Layer, prefix: str, seen: set):
    for name in layer._params:
        yield from _named_layer_value(layer.__dict__.get(name), prefix + name, seen)


def _named_layer_value(value, path: str, seen: set):
    if isinstance(value, Layer):
        if id(value) not in seen:
            seen.add(id(value))
            yield path, value
            yield from _named_layers(value, path + "/", seen)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _named_layer_value(item, f"{path}/{i}", seen)


class _Entry(NamedTuple):
    """A parameter or a buffer met by ``Layer._walk``.

    kind: ``"param"`` or ``"buffer"``; path: ``'/'``-joined (``'l1/W'``); owner: the
    Parameter itself, or the Layer that holds the buffer; name: the buffer's attribute
    name (None for a parameter).
    """

    kind: str
    path: str
    owner: Any
    name: str | None = None

    def value(self):
        """The array (None while uninitialised)."""
        if self.name is None:
            return self.owner.data
        return getattr(self.owner, self.name)

    def assign(self, array) -> None:
        if self.name is None:
            self.owner.data = array
        else:
            object.__setattr__(self.owner, self.name, array)


def _walk_value(value, path: str, seen: set):
    if isinstance(value, Parameter):
        if id(value) not in seen:
            seen.add(id(value))
            yield _Entry("param", path, value)
    elif isinstance(value, Layer):
        if id(value) not in seen:
            seen.add(id(value))
            yield from value._walk(path + "/", seen)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk_value(item, f"{path}/{i}", seen)


# =============================================================================
# Linear, Dropout
# =============================================================================
def _check_nobias(name: str, nobias, hint: str = "") -> None:
    # an int here is almost always PyTorch's argument order, Linear(in, out): nobias=10
    # would silently build a layer without a bias
    if not isinstance(nobias, (bool, np.bool_)):
        raise TypeError(f"{name}: nobias must be a bool, got {nobias!r} "
                        f"({type(nobias).__name__}){hint}")


class Linear(Layer):
    """Fully connected layer ``y = x W + b`` with ``W`` shaped ``(in_size, out_size)``.

    ``in_size`` may be left None: ``W`` is then created from the first input's last axis
    (lazy initialisation), on that input's device. ``W`` is drawn from
    ``N(0, 1/in_size)`` with ``xp.random.randn`` (so ``np.random.seed`` reproduces it).

    >>> import numpy as np
    >>> layer = Linear(3)
    >>> layer(np.ones((2, 5), dtype=np.float32)).shape
    (2, 3)
    >>> layer.W.shape
    (5, 3)
    """

    def __init__(self, out_size: int, nobias: bool = False, dtype=np.float32,
                 in_size: int | None = None):
        super().__init__()
        if isinstance(out_size, bool) or not isinstance(out_size, (int, np.integer)) or (
                out_size <= 0):
            raise ValueError(f"Linear: out_size must be a positive int, got {out_size!r}")
        if in_size is not None and (isinstance(in_size, bool) or not isinstance(
                in_size, (int, np.integer)) or in_size <= 0):
            raise ValueError(f"Linear: in_size must be a positive int or None, got {in_size!r}")
        _check_nobias("Linear", nobias,
                      f". dezero's Linear takes the output size first, (out_size, nobias=False, "
                      f"dtype, in_size): for PyTorch's Linear({out_size}, {nobias!r}) write "
                      f"Linear({nobias!r}, in_size={out_size})")
        out_size = int(out_size)
        self.out_size = out_size
        self.dtype = dtype
        self.W = Parameter(None, name="W")
        if in_size is not None:
            self._init_W(np, in_size)
        if nobias:
            self.b = None
        else:
            self.b = Parameter(np.zeros(out_size, dtype=dtype), name="b")

    @property
    def in_size(self) -> int | None:
        return None if self.W.data is None else self.W.data.shape[0]

    def _init_W(self, xp, in_size: int) -> None:
        self.W.data = _randn(xp, (in_size, self.out_size), self.dtype, math.sqrt(1.0 / in_size))
        b = getattr(self, "b", None)  # None while __init__ runs
        if b is not None and cuda.get_array_module(b.data) is not xp:
            b.data = xp.asarray(b.data)  # the bias follows W to the input's device

    def forward(self, x):
        in_size = x.shape[-1]
        if self.W.data is None:
            self._init_W(cuda.get_array_module(x), in_size)
        elif in_size != self.W.data.shape[0]:
            raise ValueError(
                f"Linear: the input has {in_size} features but the layer was initialised "
                f"with in_size={self.W.data.shape[0]} (input shape {tuple(x.shape)})"
            )
        return F.linear(x, self.W, self.b)


class Dropout(Layer):
    """Inverted dropout as a layer: ``F.dropout(x, dropout_ratio)`` (identity in test mode)."""

    def __init__(self, dropout_ratio: float = 0.5):
        super().__init__()
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio}")
        self.dropout_ratio = dropout_ratio

    def forward(self, x):
        return F.dropout(x, self.dropout_ratio)


# =============================================================================
# Recurrent layers (RNN, LSTM, GRU), EmbedID, LayerNorm
# =============================================================================
class _Recurrent(Layer):
    """Shared part of RNN/LSTM/GRU: fused weights, lazy ``in_size``, state and checks.

    Parameters: ``Wx`` (in_size, G*H) for the input product, ``Wh`` (H, G*H) for the hidden
    product and the bias, all gates side by side (G = 1, 4, 3). ``Wx`` is created from the
    first input when ``in_size`` is None; after that every step must have that many
    features, and the batch size may change only after ``reset_state()``.
    """

    n_gates = 1

    def __init__(self, hidden_size: int, in_size: int | None = None, dtype=np.float32):
        super().__init__()
        if int(hidden_size) <= 0:
            raise ValueError(f"{type(self).__name__}: hidden_size must be positive, "
                             f"got {hidden_size}")
        self.hidden_size = H = int(hidden_size)
        self.dtype = dtype
        G = self.n_gates
        self.Wx = Parameter(None, name="Wx")
        if in_size is not None:
            self._init_Wx(np, int(in_size))
        Wh = _randn(np, (H, G * H), dtype, math.sqrt(1.0 / H))  # the global RNG, as the book
        self.Wh = Parameter(Wh, name="Wh")
        self._init_biases(G * H, dtype)
        self.reset_state()

    def _init_biases(self, size, dtype):
        self.b = Parameter(np.zeros(size, dtype=dtype), name="b")

    def _init_Wx(self, xp, in_size: int) -> None:
        self.Wx.data = _randn(xp, (in_size, self.n_gates * self.hidden_size), self.dtype,
                              math.sqrt(1.0 / in_size))

    @property
    def in_size(self) -> int | None:
        return None if self.Wx.data is None else self.Wx.data.shape[0]

    def reset_state(self) -> None:
        """Forget the state: the next step starts a new sequence (zero state)."""
        self.h = None

    def _check_input(self, x):
        name = type(self).__name__
        shape = tuple(x.shape)
        if len(shape) != 2:
            raise ValueError(
                f"{name}: each step takes a 2-D batch (batch_size, features), got shape {shape}"
            )
        if self.Wx.data is None:
            self._init_Wx(cuda.get_array_module(x), shape[1])
        elif shape[1] != self.Wx.data.shape[0]:
            raise ValueError(
                f"{name}: this step's input has {shape[1]} features, but the layer takes "
                f"{self.Wx.data.shape[0]} (fixed by in_size or by the first step); "
                f"input shape {shape}"
            )
        if self.h is not None and self.h.shape[0] != shape[0]:
            raise ValueError(
                f"{name}: this step's batch has {shape[0]} rows, but the state has "
                f"{self.h.shape[0]}; call reset_state() before a batch of another size"
            )


class RNN(_Recurrent):
    """Elman RNN layer: ``h = tanh(x Wx + h Wh + b)``, keeping ``h`` between calls.

    ``RNN(hidden_size, in_size=None)``: ``in_size`` may differ from ``hidden_size`` and may
    be left None (taken from the first input). Call ``reset_state()`` between sequences.

    >>> import numpy as np
    >>> rnn = RNN(4)
    >>> rnn(np.ones((2, 3), dtype=np.float32)).shape
    (2, 4)
    >>> [name for name, _ in rnn.named_params()]
    ['Wx', 'Wh', 'b']
    """

    def forward(self, x):
        self._check_input(x)
        self.h = F.rnn_cell(x, self.h, self.Wx, self.Wh, self.b)
        return self.h


class LSTM(_Recurrent):
    """LSTM layer with fused gates: one input and one hidden product per step.

    ``LSTM(hidden_size, in_size=None)``; gates ``[i, f, g, o]`` side by side in ``Wx``
    (in_size, 4H), ``Wh`` (H, 4H) and ``b`` (4H,), the layout of PyTorch. Keeps ``h`` and
    ``c`` between calls; ``reset_state()`` clears both.

    >>> import numpy as np
    >>> lstm = LSTM(5, in_size=2)
    >>> lstm(np.ones((3, 2), dtype=np.float32)).shape
    (3, 5)
    >>> lstm.c.shape
    (3, 5)
    """

    n_gates = 4

    def reset_state(self) -> None:
        self.h = None
        self.c = None

    def forward(self, x):
        self._check_input(x)
        self.h, self.c = F.lstm_cell(x, self.h, self.c, self.Wx, self.Wh, self.b)
        return self.h


class GRU(_Recurrent):
    """GRU layer ("reset after" form, as in cuDNN and PyTorch), fused gates ``[r, z, n]``.

    ``GRU(hidden_size, in_size=None)``; parameters ``Wx`` (in_size, 3H), ``Wh`` (H, 3H) and
    the biases ``bx``, ``bh`` (3H,). See :func:`dezero.functions.gru_cell`.

    >>> import numpy as np
    >>> gru = GRU(4)
    >>> gru(np.ones((2, 3), dtype=np.float32)).shape
    (2, 4)
    """

    n_gates = 3

    def _init_biases(self, size, dtype):
        self.bx = Parameter(np.zeros(size, dtype=dtype), name="bx")
        self.bh = Parameter(np.zeros(size, dtype=dtype), name="bh")

    def forward(self, x):
        self._check_input(x)
        self.h = F.gru_cell(x, self.h, self.Wx, self.Wh, self.bx, self.bh)
        return self.h


class EmbedID(Layer):
    """Embedding table: ``EmbedID(in_size, out_size)(ids) = W[ids]`` (W: in_size x out_size).

    ``in_size`` is the vocabulary size; ids outside ``[0, in_size)`` raise IndexError.
    ``W`` is drawn from ``N(0, 1)`` like the book's.

    >>> import numpy as np
    >>> emb = EmbedID(10, 3)
    >>> emb(np.array([[1, 2], [3, 9]])).shape
    (2, 2, 3)
    """

    def __init__(self, in_size: int, out_size: int, dtype=np.float32):
        super().__init__()
        self.W = Parameter(_randn(np, (in_size, out_size), dtype), name="W")  # as the book

    def forward(self, x):
        return F.embed_id(x, self.W)


class LayerNorm(Layer):
    """Layer normalisation over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``.

    ``LayerNorm(in_size=None, eps=1e-5)``: ``gamma`` (ones) and ``beta`` (zeros) have the size
    of the last axis, taken from the first input when ``in_size`` is None. The same in
    training and test mode (no running statistics). One fused op, ``F.layer_norm``; any
    order of derivative works.

    >>> import numpy as np
    >>> ln = LayerNorm()
    >>> y = ln(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    >>> np.round(y.data, 3)
    array([[-1.225,  0.   ,  1.225]], dtype=float32)
    """

    def __init__(self, in_size: int | None = None, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        self.eps = eps
        self.dtype = dtype
        self.gamma = Parameter(None, name="gamma")
        self.beta = Parameter(None, name="beta")
        if in_size is not None:
            self._init_params(np, int(in_size))

    def _init_params(self, xp, size: int) -> None:
        if _init_state.skip:
            self.gamma.data = xp.empty(size, dtype=self.dtype)
            self.beta.data = xp.empty(size, dtype=self.dtype)
            return
        self.gamma.data = xp.ones(size, dtype=self.dtype)
        self.beta.data = xp.zeros(size, dtype=self.dtype)

    def forward(self, x):
        size = x.shape[-1]
        if self.gamma.data is None:
            self._init_params(cuda.get_array_module(x), size)
        elif size != self.gamma.data.shape[0]:
            raise ValueError(
                f"LayerNorm: the input's last axis has {size} features, but the layer "
                f"normalises {self.gamma.data.shape[0]} (input shape {tuple(x.shape)})"
            )
        return F.layer_norm(x, self.gamma, self.beta, self.eps)


__all__ += ["GRU", "LSTM", "RNN", "EmbedID", "LayerNorm"]


# =============================================================================
# Transformers: MultiHeadAttention, TransformerBlock
# =============================================================================
class KVCache:
    """The keys and values one attention layer has computed so far, for decoding token by token.

    Pass the same ``KVCache()`` to every call of one :class:`MultiHeadAttention` (or
    :class:`TransformerBlock`): each call appends the keys and values of its positions and
    lets its queries attend to every position held, so a model that feeds one new token per
    step computes each key and value once. ``len(cache)`` is the number of positions held;
    ``reset()`` forgets them (the buffers are kept for reuse).

    The buffers, (N, n_head, capacity, d), are allocated at the first append, with room for
    ``max_len`` positions when given (they grow when it is exceeded). A cache holds arrays,
    not a graph: it is for inference, under ``dezero.no_grad()``.

    >>> import numpy as np
    >>> cache = KVCache(max_len=8)
    >>> k = np.ones((1, 2, 3, 4), dtype=np.float32)
    >>> keys, values = cache.append(k, k)
    >>> len(cache), keys.shape
    (3, (1, 2, 3, 4))
    >>> len(cache.append(k[:, :, :1], k[:, :, :1])[0][0, 0])
    4
    """

    def __init__(self, max_len: int | None = None):
        if max_len is not None and (isinstance(max_len, bool) or int(max_len) != max_len
                                    or max_len <= 0):
            raise ValueError(f"KVCache: max_len must be a positive int or None, got {max_len!r}")
        self.max_len = None if max_len is None else int(max_len)
        self.keys = None
        self.values = None
        self.length = 0

    def __len__(self) -> int:
        return self.length

    def reset(self) -> None:
        """Forget every position (the next append starts at position 0)."""
        self.length = 0

    def append(self, k, v):
        """Store ``k`` and ``v`` (N, H, T, d) after the positions held; return all of them.

        Returns views ``(keys, values)`` of shape (N, H, len(self), d).
        """
        N, H, T, d = k.shape
        end = self.length + T
        buf = self.keys
        if buf is None or buf.shape[:2] != (N, H) or buf.shape[3] != d or buf.dtype != k.dtype:
            if self.length:
                raise ValueError(
                    f"KVCache: the cache holds keys of shape {tuple(buf.shape[:2])} + "
                    f"(T, {buf.shape[3]}) {buf.dtype}, the new ones are {tuple(k.shape)} "
                    f"{k.dtype}; reset() it before a batch of another shape"
                )
            buf = None
        if buf is None or buf.shape[2] < end:
            xp = cuda.get_array_module(k)
            capacity = max(end, self.max_len or 0, 0 if buf is None else 2 * buf.shape[2])
            keys = xp.empty((N, H, capacity, d), dtype=k.dtype)
            values = xp.empty((N, H, capacity, v.shape[3]), dtype=v.dtype)
            if self.length:
                keys[:, :, :self.length] = self.keys[:, :, :self.length]
                values[:, :, :self.length] = self.values[:, :, :self.length]
            self.keys, self.values = keys, values
        self.keys[:, :, self.length:end] = k
        self.values[:, :, self.length:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class MultiHeadAttention(Layer):
    """Multi-head self-attention on (N, T, C) inputs.

    ``MultiHeadAttention(n_embd, n_head, causal=False, dropout=0.0)``: one fused
    projection ``qkv`` (C -> 3C) gives queries, keys and values; the heads come from a
    reshape and a transpose to (N, n_head, T, C / n_head) (no loop over heads), go through
    :func:`dezero.functions.scaled_dot_product_attention` together, and are joined and
    projected back by ``proj`` (C -> C). ``dropout`` is applied to the attention
    probabilities and to the output (training mode only).

    ``forward(x, mask=None, cache=None)``: with a :class:`KVCache`, the positions of ``x``
    come after those the cache holds; their keys and values are appended to it and their
    queries attend to all of them (causally: the query at position ``p`` sees keys
    ``0..p``). This is how a language model decodes one token per step without
    recomputing the context; it is for inference (no graph).

    >>> import numpy as np
    >>> mha = MultiHeadAttention(8, 2, causal=True)
    >>> mha(np.ones((3, 5, 8), dtype=np.float32)).shape
    (3, 5, 8)
    >>> [name for name, _ in mha.named_params()]
    ['qkv/W', 'qkv/b', 'proj/W', 'proj/b']
    """

    def __init__(self, n_embd: int, n_head: int, causal: bool = False, dropout: float = 0.0,
                 dtype=np.float32):
        super().__init__()
        if n_head <= 0 or n_embd % n_head:
            raise ValueError(
                f"MultiHeadAttention: n_embd ({n_embd}) must be a positive multiple of "
                f"n_head ({n_head})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        self.n_embd = int(n_embd)
        self.n_head = int(n_head)
        self.causal = bool(causal)
        self.dropout = float(dropout)
        self.qkv = Linear(3 * n_embd, dtype=dtype, in_size=n_embd)
        self.proj = Linear(n_embd, dtype=dtype, in_size=n_embd)

    def forward(self, x, mask=None, cache: KVCache | None = None):
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(
                f"MultiHeadAttention: expected an input of shape (N, T, {self.n_embd}), "
                f"got {tuple(x.shape)}"
            )
        N, T, C = x.shape
        H = self.n_head
        qkv = F.reshape(self.qkv(x), (N, T, 3, H, C // H))
        qkv = F.transpose(qkv, (2, 0, 3, 1, 4))  # (3, N, H, T, d)
        q, k, v = (F.reshape(a, (N, H, T, C // H)) for a in F.split(qkv, 3, axis=0))
        causal = self.causal
        if cache is not None:
            if Config.enable_backprop:
                raise RuntimeError("MultiHeadAttention: a KVCache holds arrays, not a graph; "
                                   "decode under dezero.no_grad()")
            start = len(cache)
            k, v = cache.append(k.data, v.data)
            if causal and start:
                # the T queries sit at positions start.., the keys at 0..: query i sees
                # keys 0..start+i (a single new query sees them all)
                causal = False
                if T > 1:
                    xp = cuda.get_array_module(k)
                    seen = xp.tri(T, start + T, k=start, dtype=bool)
                    mask = seen if mask is None else xp.asarray(mask) & seen
        y = F.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal,
                                           dropout_ratio=self.dropout)
        y = F.reshape(F.transpose(y, (0, 2, 1, 3)), (N, T, C))
        return F.dropout(self.proj(y), self.dropout)


class TransformerBlock(Layer):
    """A pre-LayerNorm transformer block (GPT-2's): attention and an MLP, each residual.

    ``x = x + attn(ln1(x))``; ``x = x + mlp(ln2(x))`` with ``mlp`` = Linear(C -> 4C),
    tanh-GELU, Linear(4C -> C), dropout. ``TransformerBlock(n_embd, n_head, causal=True,
    dropout=0.0)``; ``forward(x, mask=None, cache=None)`` (``cache``: a :class:`KVCache`
    for the attention, see :class:`MultiHeadAttention`).

    >>> import numpy as np
    >>> block = TransformerBlock(8, 2)
    >>> block(np.ones((2, 4, 8), dtype=np.float32)).shape
    (2, 4, 8)
    """

    def __init__(self, n_embd: int, n_head: int, causal: bool = True, dropout: float = 0.0,
                 dtype=np.float32):
        super().__init__()
        self.dropout = float(dropout)
        self.ln1 = LayerNorm(n_embd, dtype=dtype)
        self.attn = MultiHeadAttention(n_embd, n_head, causal=causal, dropout=dropout,
                                       dtype=dtype)
        self.ln2 = LayerNorm(n_embd, dtype=dtype)
        self.fc = Linear(4 * n_embd, dtype=dtype, in_size=n_embd)
        self.proj = Linear(n_embd, dtype=dtype, in_size=4 * n_embd)

    def forward(self, x, mask=None, cache: KVCache | None = None):
        x = x + self.attn(self.ln1(x), mask, cache)
        h = self.proj(F.gelu(self.fc(self.ln2(x))))
        return x + F.dropout(h, self.dropout)


__all__ += ["KVCache", "MultiHeadAttention", "TransformerBlock"]


# =============================================================================
# Convolution layers and BatchNorm
# =============================================================================
def _positive_pair(name, value):
    from dezero.utils import pair

    try:
        p = pair(value)
    except ValueError:
        p = None
    if p is None or not all(isinstance(v, (int, np.integer)) and v > 0 for v in p):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return int(p[0]), int(p[1])


class _ConvBase(Layer):
    """Shared part of Conv2d/Deconv2d: lazy ``in_channels``, He-style initialisation."""

    def __init__(self, out_channels: int, kernel_size, stride=1, pad=0, nobias: bool = False,
                 dtype=np.float32, in_channels: int | None = None):
        super().__init__()
        name = type(self).__name__
        if not isinstance(out_channels, (int, np.integer)) or out_channels <= 0:
            raise ValueError(f"{name}: out_channels must be a positive int, got {out_channels!r}")
        _check_nobias(name, nobias, f" (the arguments are {name}(out_channels, kernel_size, "
                      f"stride=1, pad=0, nobias=False, dtype, in_channels=None))")
        self.out_channels = int(out_channels)
        self.kernel_size = _positive_pair(f"{name}: kernel_size", kernel_size)
        self.stride = stride
        self.pad = pad
        self.dtype = dtype
        self.W = Parameter(None, name="W")
        if in_channels is not None:
            self._init_W(np, int(in_channels))
        self.b = None if nobias else Parameter(np.zeros(self.out_channels, dtype=dtype),
                                               name="b")

    def _w_shape(self, in_channels):
        raise NotImplementedError

    def _init_W(self, xp, in_channels: int) -> None:
        KH, KW = self.kernel_size
        self.W.data = _randn(xp, self._w_shape(in_channels), self.dtype,
                             math.sqrt(1.0 / (in_channels * KH * KW)))

    def _prepare(self, x):
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__}: expected a 4-D input (N, C, H, W), got shape "
                f"{tuple(x.shape)}"
            )
        if self.W.data is None:
            xp = cuda.get_array_module(x)
            self._init_W(xp, x.shape[1])
            if self.b is not None and cuda.get_array_module(self.b.data) is not xp:
                self.b.data = xp.asarray(self.b.data)  # follow W onto the input's device


class Conv2d(_ConvBase):
    """2-D convolution layer: ``F.conv2d(x, W, b, stride, pad)``, W (OC, C, KH, KW).

    ``in_channels`` may be left None: W is then created from the first input (lazy
    initialisation, on that input's device), drawn from N(0, 1/(C*KH*KW)).

    >>> import numpy as np
    >>> conv = Conv2d(8, kernel_size=3, pad=1)
    >>> conv(np.ones((2, 3, 5, 5), dtype=np.float32)).shape
    (2, 8, 5, 5)
    >>> conv.W.shape
    (8, 3, 3, 3)
    """

    @property
    def in_channels(self) -> int | None:
        return None if self.W.data is None else self.W.data.shape[1]

    def _w_shape(self, in_channels):
        return (self.out_channels, in_channels, *self.kernel_size)

    def forward(self, x):
        self._prepare(x)
        return F.conv2d(x, self.W, self.b, self.stride, self.pad)


class Deconv2d(_ConvBase):
    """Transposed convolution layer: ``F.deconv2d(x, W, b, stride, pad)``, W (C, OC, KH, KW).

    Lazy ``in_channels`` as in :class:`Conv2d`; the output size is
    ``stride * (H - 1) + KH - 2 * pad`` unless an ``outsize`` (OH, OW) is given as the
    second argument of the call, ``layer(x, outsize)``.

    >>> import numpy as np
    >>> up = Deconv2d(4, kernel_size=4, stride=2, pad=1)
    >>> up(np.ones((1, 3, 5, 5), dtype=np.float32)).shape
    (1, 4, 10, 10)
    """

    @property
    def in_channels(self) -> int | None:
        return None if self.W.data is None else self.W.data.shape[0]

    def _w_shape(self, in_channels):
        return (in_channels, self.out_channels, *self.kernel_size)

    def forward(self, x, outsize=None):
        self._prepare(x)
        return F.deconv2d(x, self.W, self.b, self.stride, self.pad, outsize)


class BatchNorm(Layer):
    """Batch normalization over the channel axis 1 of (N, C) or (N, C, H, W) input.

    ``gamma`` and ``beta`` are Parameters; the running statistics ``avg_mean`` and
    ``avg_var`` are buffers: saved with the layer and moved with it, never trained. All
    four are created from the first input (its channel count, dtype and device). In
    training mode batch statistics are used and the running ones updated
    (``decay``); in test mode (``dezero.test_mode()``) the running ones are used.

    >>> import numpy as np
    >>> bn = BatchNorm()
    >>> y = bn(np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32))
    >>> [name for name, _ in bn.named_params()], [name for name, _ in bn.named_buffers()]
    (['gamma', 'beta'], ['avg_mean', 'avg_var'])
    >>> bn.avg_mean
    array([0.2, 2. ], dtype=float32)
    """

    def __init__(self, decay: float = 0.9, eps: float = 2e-5):
        super().__init__()
        self.decay = decay
        self.eps = eps
        self.gamma = Parameter(None, name="gamma")
        self.beta = Parameter(None, name="beta")
        self.register_buffer("avg_mean", None)
        self.register_buffer("avg_var", None)

    def _init_state(self, x) -> None:
        xp = cuda.get_array_module(x)
        C = x.shape[1]
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        if self.gamma.data is None:
            self.gamma.data = xp.ones(C, dtype=dtype)
        if self.beta.data is None:
            self.beta.data = xp.zeros(C, dtype=dtype)
        if self.avg_mean is None:
            self.avg_mean = xp.zeros(C, dtype=dtype)
        if self.avg_var is None:
            self.avg_var = xp.ones(C, dtype=dtype)

    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(
                f"BatchNorm: expected an input of shape (N, C) or (N, C, H, W), got "
                f"{tuple(x.shape)}"
            )
        if (self.gamma.data is None or self.beta.data is None or self.avg_mean is None
                or self.avg_var is None):
            self._init_state(x)
        return F.batch_norm(x, self.gamma, self.beta, self.avg_mean, self.avg_var,
                            decay=self.decay, eps=self.eps)


__all__ += ["BatchNorm", "Conv2d", "Deconv2d"]
