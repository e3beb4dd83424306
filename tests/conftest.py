"""Shared fixtures: fixed seeds, the ``xp`` device fixture, and GPU skipping."""

import numpy as np
import pytest

from dezero import cuda


def pytest_collection_modifyitems(config, items):
    if cuda.gpu_enable:
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)  # noqa: NPY002  (dezero draws from the global RNG, as the book does)
    if cuda.gpu_enable:
        cuda.cupy.random.seed(0)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module a test body runs on: NumPy always, CuPy where a GPU exists."""
    if request.param == "numpy":
        return np
    return cuda.cupy
