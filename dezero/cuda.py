"""GPU support through CuPy: the only module of dezero that imports CuPy.

Importing this module never fails: without CuPy (or without a CUDA device) ``gpu_enable`` is
False and every function here keeps working on NumPy arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CudaGraph",
    "array_types",
    "as_cupy",
    "as_numpy",
    "cupy",
    "get_array_module",
    "get_nccl",
    "gpu_enable",
    "scatter_add",
]

try:  # CuPy is optional; a broken CUDA install must not break `import dezero`.
    import cupy
    import cupyx  # scatter_add lives there

    gpu_enable = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # ImportError, or a CUDA driver/runtime error
    cupy = None
    gpu_enable = False

array_types: tuple = (np.ndarray,) if cupy is None else (np.ndarray, cupy.ndarray)


def get_array_module(x):
    """Return the array module (``numpy`` or ``cupy``) that ``x`` lives in.

    ``x`` may be a Variable, an ndarray, or a scalar (which lives in NumPy).

    >>> import numpy as np
    >>> get_array_module(np.ones(2)) is np
    True
    """
    if cupy is None or type(x) is np.ndarray:  # the common case, first: ops call this a lot
        return np
    data = getattr(x, "data", x) if not isinstance(x, array_types) else x
    return cupy.get_array_module(data)


def as_numpy(x):
    """Return ``x`` (a Variable, scalar or array on either device) as a NumPy array.

    >>> as_numpy(3.0)
    array(3.)
    """
    if not isinstance(x, array_types) and hasattr(x, "data") and not np.isscalar(x):
        x = x.data
    if np.isscalar(x):
        return np.array(x)
    if isinstance(x, np.ndarray):
        return x
    if cupy is None:  # lists and other array-likes, on a machine without CuPy
        return np.asarray(x)
    return cupy.asnumpy(x)


def as_cupy(x):
    """Return ``x`` (a Variable, scalar or array) as a CuPy array on the current device.

    Raises:
        RuntimeError: when CuPy or a CUDA device is not available.
    """
    if not gpu_enable:
        raise RuntimeError(
            "CuPy with a CUDA device is required for GPU arrays (to_gpu, gpu=True); on a "
            'machine with a CUDA GPU install the extra: pip install "dezero-next[gpu]" '
            '(CUDA 12) or "dezero-next[gpu-cuda13]" (CUDA 13)'
            + ("" if cupy is None else "; CuPy is installed but sees no CUDA device")
        )
    if not isinstance(x, array_types) and hasattr(x, "data") and not np.isscalar(x):
        x = x.data
    return cupy.asarray(x)


def scatter_add(a, indices, values) -> None:
    """In place ``a[indices] += values`` where repeated indices accumulate (unbuffered).

    ``np.add.at`` on NumPy arrays; ``cupy.add.at`` (or ``cupyx.scatter_add`` on older CuPy)
    on CuPy arrays.

    >>> a = np.zeros(3)
    >>> scatter_add(a, np.array([0, 0, 2]), np.ones(3))
    >>> a
    array([2., 0., 1.])
    """
    if isinstance(a, np.ndarray):
        np.add.at(a, indices, values)
    elif hasattr(cupy.add, "at"):
        cupy.add.at(a, indices, values)
    else:
        cupyx.scatter_add(a, indices, values)


def get_nccl():
    """CuPy's NCCL bindings (``cupy.cuda.nccl``) where CuPy has them, else None.

    >>> get_nccl() is None or hasattr(get_nccl(), "NcclCommunicator")
    True
    """
    if not gpu_enable:
        return None
    try:
        from cupy.cuda import nccl
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) else None


class CudaGraph:
    """``fn(inputs)`` (a function of CuPy arrays returning a list of them) captured into one
    CUDA graph with fixed buffers (CuPy's stream capture).

    Building it runs ``fn`` once for real on a private stream, allocating from a private
    memory pool (``first`` holds that run's outputs), then captures a second run, inside
    ``capture_context()``, into a graph whose buffers stay fixed: nothing outside the graph
    allocates from that pool. Calling it copies new inputs into the graph's input buffers,
    calls ``before_launch()``, launches the graph and returns copies of its outputs. When
    the capture fails (a host synchronisation inside ``fn``), ``graph`` is None and
    ``error`` says why; ``first`` is still this call's result.
    """

    def __init__(self, fn, leaves, capture_context=None, before_launch=None):
        cp = cupy
        self.before_launch = before_launch
        self.pool, self.stream = cp.cuda.MemoryPool(), cp.cuda.Stream(non_blocking=True)
        cp.cuda.get_current_stream().synchronize()  # the caller's queued work first
        with cp.cuda.using_allocator(self.pool.malloc), self.stream:
            self.inputs = [cp.empty(a.shape, dtype=a.dtype) for a in leaves]
            self._load(leaves)
            self.first = [cp.array(o, copy=True) for o in fn(self.inputs)]
            self.stream.synchronize()
            self.graph = self.error = None
            try:  # a failure from here on leaves the first run done
                mode = getattr(cp.cuda.runtime, "streamCaptureModeRelaxed", None)
                self.stream.begin_capture(*(() if mode is None else (mode,)))
                try:
                    if capture_context is None:
                        self.outs = fn(self.inputs)
                    else:
                        with capture_context():
                            self.outs = fn(self.inputs)
                finally:
                    graph = self.stream.end_capture()
                if hasattr(graph, "upload"):
                    graph.upload(self.stream)
                self.graph = graph
            except Exception as e:  # a host sync or an uncapturable call inside fn
                self.error = e

    def _load(self, leaves) -> None:
        for buf, a in zip(self.inputs, leaves):
            if isinstance(a, np.ndarray):
                buf.set(np.ascontiguousarray(a), self.stream)
            else:
                cupy.copyto(buf, a)

    def __call__(self, leaves) -> list:
        cupy.cuda.get_current_stream().synchronize()
        with self.stream:
            self._load(leaves)
            if self.before_launch is not None:
                self.before_launch()
            self.graph.launch(self.stream)
            outs = [o.copy() for o in self.outs]
        self.stream.synchronize()
        return outs
