"""The package's one pool of worker threads, for NumPy work split into independent chunks.

NumPy releases the GIL inside its loops, so a large copy or ufunc split into slices of its
leading axis runs on several cores at once, as PyTorch's CPU kernels do. Every part of
dezero that splits work this way (the convolution kernels today) goes through
:func:`parallel_for` and so shares the same threads; nothing else in dezero starts threads
of its own. The matrix products run on BLAS's own threads, which this pool leaves alone.

The number of threads (the caller's included) is, by default:

* the environment variable ``DEZERO_NUM_THREADS`` when it is set (a positive integer);
* otherwise 1 on machines with at most 2 usable cores (there, BLAS's worker thread, which
  spins for a while after every matrix product, holds the second core: measured, a thread
  of ours on it gains nothing), and the usable cores, at most 8, above that.

:func:`set_num_threads` changes it at run time (``None`` restores the default). A forked
child process starts its own threads on first use.

>>> from dezero import parallel
>>> out = [0] * 10
>>> def fill(lo, hi):
...     for i in range(lo, hi):
...         out[i] = i * i
>>> parallel.parallel_for(fill, 10)
>>> out[:4]
[0, 1, 4, 9]
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

__all__ = ["MIN_PARALLEL_WORK", "num_threads", "parallel_for", "set_num_threads"]

# Elements touched below which handing work to other threads costs more than it saves.
MIN_PARALLEL_WORK = 1 << 17


def _default_threads() -> int:
    env = os.environ.get("DEZERO_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return 1 if n <= 2 else min(n, 8)


_state = {"threads": _default_threads()}
_executor = None
_executor_key = None
_lock = threading.Lock()


def num_threads() -> int:
    """The number of threads :func:`parallel_for` uses, the caller's included."""
    return _state["threads"]


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads (the caller's included) from now on; ``None``: the default (see
    the module's documentation). ``1`` runs everything in the calling thread."""
    if n is None:
        _state["threads"] = _default_threads()
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int or None, got {n!r}")
    _state["threads"] = n


def _get_executor(workers: int) -> ThreadPoolExecutor:
    global _executor, _executor_key
    key = (os.getpid(), workers)  # a forked child needs threads of its own
    with _lock:
        if _executor_key != key:
            if _executor is not None and _executor_key[0] == os.getpid():
                _executor.shutdown(wait=False)  # its idle threads exit
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dezero")
            _executor_key = key
        return _executor


def parallel_for(fn: Callable[[int, int], object], n: int, work: int | None = None) -> None:
    """Call ``fn(lo, hi)`` on consecutive chunks of ``range(n)``, one chunk per thread.

    Parameters
    ----------
    fn : callable
        Does the work of items ``lo`` to ``hi - 1``. Chunks must write disjoint memory.
    n : int
        Number of items (typically the batch axis).
    work : int, optional
        Elements the whole call touches; below :data:`MIN_PARALLEL_WORK` everything runs
        as one call in the calling thread. ``None``: always split.

    Notes
    -----
    Up to :func:`num_threads` chunks; the calling thread runs the first. Returns when all
    are done; the first exception raised by a chunk is raised again here.
    """
    T = min(_state["threads"], n)
    if T <= 1 or (work is not None and work < MIN_PARALLEL_WORK):
        if n > 0:
            fn(0, n)
        return
    bounds = [n * i // T for i in range(T + 1)]
    executor = _get_executor(T - 1)
    futures = [executor.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, T)]
    try:
        fn(bounds[0], bounds[1])
    finally:
        errors = [f.exception() for f in futures]  # waits for every chunk
    for e in errors:
        if e is not None:
            raise e
