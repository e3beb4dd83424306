"""dezero.functions: every differentiable op, re-exported flat (``import dezero.functions as F``).

Each family lives in its own module; this package only gathers their public names.
"""

from dezero.core import add, div, mul, neg, pow, rdiv, rsub, sub
from dezero.functions import (
    activation,
    array,
    attention,
    conv,
    embedding,
    evaluation,
    linalg,
    loss,
    math,
    noise,
    normalization,
    reduction,
    rnn,
)

# helpers for writing a gradient once, not ops (so not in __all__): ops, the namespace
# (dezero.functions for a Variable, the array module for an array); nograd, a constant of
# the graph computed from values (a mask), and its Function NoGrad; apply
from dezero.functions._ops import NoGrad, apply, nograd, ops
from dezero.functions.activation import *
from dezero.functions.array import *
from dezero.functions.attention import *
from dezero.functions.conv import *
from dezero.functions.embedding import *
from dezero.functions.evaluation import *
from dezero.functions.linalg import *
from dezero.functions.loss import *
from dezero.functions.math import *
from dezero.functions.noise import *
from dezero.functions.normalization import *
from dezero.functions.reduction import *
from dezero.functions.rnn import *

# the core arithmetic, as DeZero's functions module has it (F.add, F.mul, ... F.pow)
_ARITHMETIC = ["add", "div", "mul", "neg", "pow", "rdiv", "rsub", "sub"]

__all__ = [
    *_ARITHMETIC,
    *activation.__all__,
    *array.__all__,
    *attention.__all__,
    *conv.__all__,
    *embedding.__all__,
    *evaluation.__all__,
    *linalg.__all__,
    *loss.__all__,
    *math.__all__,
    *noise.__all__,
    *normalization.__all__,
    *reduction.__all__,
    *rnn.__all__,
]


# =============================================================================
# Variable methods that need the op library: installed here, as the book's setup_variable
# installs them (the engine, dezero.core, never names dezero.functions)
# =============================================================================
def _install_variable_methods() -> None:
    from dezero.core import Variable
    from dezero.functions.array import get_item, reshape, sum_to, transpose
    from dezero.functions.linalg import matmul
    from dezero.functions.math import _power, _rpower, astype
    from dezero.functions.reduction import max, min, sum

    def reshape_(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return reshape(self, shape)

    def transpose_(self, *axes):
        if len(axes) == 0:
            axes = None
        elif len(axes) == 1 and (isinstance(axes[0], (tuple, list)) or axes[0] is None):
            axes = axes[0]
        return transpose(self, axes)

    methods = {
        "reshape": reshape_,
        "transpose": transpose_,
        "T": property(lambda self: transpose(self)),
        "sum": lambda self, axis=None, keepdims=False: sum(self, axis, keepdims),
        "max": lambda self, axis=None, keepdims=False: max(self, axis, keepdims),
        "min": lambda self, axis=None, keepdims=False: min(self, axis, keepdims),
        "sum_to": lambda self, shape: sum_to(self, shape),
        "astype": lambda self, dtype: astype(self, dtype),
        "matmul": lambda self, W: matmul(self, W),
        "dot": lambda self, W: matmul(self, W),
        "__matmul__": lambda self, other: matmul(self, other),
        "__rmatmul__": lambda self, other: matmul(other, self),
        "__getitem__": lambda self, slices: get_item(self, slices),
        "__pow__": _power,
        "__rpow__": _rpower,
    }
    for name, fn in methods.items():
        if not isinstance(fn, property):
            fn.__name__ = fn.__qualname__ = name
        setattr(Variable, name, fn)


_install_variable_methods()
