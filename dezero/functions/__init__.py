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
