"""dezero: a define-by-run deep learning framework on NumPy (CuPy on GPUs).

The framework that "Deep Learning from Scratch 3" builds in 60 steps, complete and fast.
"""

from dezero.version import __version__

is_simple_core = False

from dezero import allocator  # first: its setting applies to every array from here on
from dezero.core import (
    Config,
    Function,
    Parameter,
    Variable,
    as_array,
    as_variable,
    grad,
    no_grad,
    setup_variable,
    test_mode,
    using_config,
)
from dezero.anomaly import AnomalyError, detect_anomaly
from dezero.jit import jit
from dezero import (
    anomaly,
    core_simple,
    cuda,
    dataloaders,
    datasets,
    func,
    functions,
    functions_conv,
    layers,
    models,
    optimizers,
    parallel,
    profiler,
    text,
    transforms,
    utils,
)
from dezero.dataloaders import DataLoader, SeqDataLoader
from dezero.datasets import Dataset
from dezero.layers import Layer
from dezero.models import Model

setup_variable()
