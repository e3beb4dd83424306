"""dezero.hints: "did you mean" for the names a PyTorch user reaches for first.

``model.parameters()``, ``optimizer.zero_grad()``, ``x.numpy()`` and the like do not exist in
dezero (its names are the book's). Instead of a bare AttributeError, the classes that users
meet first (Variable, Layer, Optimizer, LRScheduler) raise one that names the
dezero spelling. A message only: no alias is added, so there is still one name per thing.

>>> import numpy as np
>>> import dezero.layers as L
>>> try:
...     L.Linear(3).parameters()
... except AttributeError as e:
...     print(e)
'Linear' object has no attribute 'parameters'. Did you mean params()? ('parameters' is
PyTorch's name)
"""

from __future__ import annotations

__all__ = ["PYTORCH_NAMES", "attribute_error", "install"]

# class name (anywhere in the object's MRO) -> PyTorch name -> what dezero calls it
PYTORCH_NAMES: dict[str, dict[str, str]] = {
    "Variable": {
        "numpy": ".data (the NumPy array itself; cuda.as_numpy(x.data) for a GPU array)",
        "detach": "Variable(x.data) (a new leaf; x.unchain() cuts x from its creator)",
        "cuda": "to_gpu()",
        "cpu": "to_cpu()",
        "to": "to_gpu() or to_cpu()",
        "view": "reshape(*shape)",
        "permute": "transpose(*axes)",
        "unsqueeze": "F.expand_dims(x, axis)",
        "squeeze": "F.squeeze(x, axis)",
        "mean": "F.mean(x, axis)",
        "zero_": "cleargrad() (for the gradient)",
        "requires_grad_": "Variable(...) for inputs that need gradients (no_grad() for none)",
        "retain_grad": "backward(retain_grad=True)",
        "clone": "Variable(x.data.copy())",
        "tolist": "x.data.tolist()",
    },
    "Layer": {
        "parameters": "params()",
        "named_parameters": "named_params()",
        "buffers": "named_buffers()",
        "modules": "named_layers()",
        "named_modules": "named_layers()",
        "children": "named_layers()",
        "zero_grad": "cleargrads()",
        "cuda": "to_gpu()",
        "cpu": "to_cpu()",
        "to": "to_gpu() or to_cpu()",
        "save": "save_weights(path)",
        "load": "load_weights(path)",
    },
    "Optimizer": {
        "step": "update()",
        "zero_grad": "model.cleargrads() (gradients are cleared on the model)",
        "param_groups": "setup([{'params': ..., <hyperparameter>: value}, ...])",
        "add_param_group": "setup([{'params': ..., <hyperparameter>: value}, ...])",
    },
    "LRScheduler": {
        "get_last_lr": "get_lr()",
    },
}


def attribute_error(obj, name: str) -> AttributeError:
    """The AttributeError for ``obj.<name>``, with dezero's spelling when ``name`` is a
    PyTorch name of ``obj``'s kind (see ``PYTORCH_NAMES``)."""
    cls = type(obj).__name__
    message = f"{cls!r} object has no attribute {name!r}"
    if not name.startswith("__"):
        for klass in type(obj).__mro__:
            hint = PYTORCH_NAMES.get(klass.__name__, {}).get(name)
            if hint is not None:
                message += f". Did you mean {hint}? ({name!r} is PyTorch's name)"
                break
    error = AttributeError(message)
    error.name, error.obj = name, obj
    return error


class _PyTorchName:
    """A class attribute that is not there: reading it on an instance raises the
    AttributeError of ``attribute_error`` (``hasattr`` is False). Used instead of a
    ``__getattr__``, which would slow every attribute read of the class (CPython does not
    specialise attribute loads on classes that define one)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self  # the class itself: tools that list attributes see this object
        raise attribute_error(obj, self.name)


def install(cls: type, kind: str | None = None) -> type:
    """Give ``cls`` the "did you mean" of ``PYTORCH_NAMES[kind]`` (default: its name) for
    every name it does not define; returns ``cls``."""
    for name in PYTORCH_NAMES[kind or cls.__name__]:
        if not hasattr(cls, name):
            setattr(cls, name, _PyTorchName(name))
    return cls
