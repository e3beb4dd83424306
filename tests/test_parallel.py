"""dezero.parallel: the package's one pool of worker threads."""

import threading

import pytest

from dezero import parallel


@pytest.fixture
def threads():
    yield parallel
    parallel.set_num_threads(None)


def test_chunks_cover_the_range_once_on_several_threads(threads, monkeypatch):
    threads.set_num_threads(3)
    assert threads.num_threads() == 3
    seen, names = [], set()
    together = threading.Barrier(3, timeout=10)  # the three chunks run at the same time

    def chunk(lo, hi):
        seen.append((lo, hi))
        names.add(threading.current_thread().name)
        together.wait()

    threads.parallel_for(chunk, 10)  # work=None: always split
    assert sorted(seen) == [(0, 3), (3, 6), (6, 10)]
    assert threading.current_thread().name in names and len(names) == 3


def test_small_work_runs_in_the_calling_thread(threads):
    threads.set_num_threads(4)
    seen = []
    threads.parallel_for(lambda lo, hi: seen.append((lo, hi, threading.current_thread())),
                         8, work=threads.MIN_PARALLEL_WORK - 1)
    assert seen == [(0, 8, threading.current_thread())]
    threads.parallel_for(lambda lo, hi: seen.append(1), 0)  # nothing to do: no call
    assert len(seen) == 1


def test_an_error_in_a_worker_thread_reaches_the_caller(threads):
    threads.set_num_threads(2)

    def chunk(lo, hi):
        if lo > 0:
            raise RuntimeError(f"chunk {lo}:{hi} failed")

    with pytest.raises(RuntimeError, match="chunk 2:4 failed"):
        threads.parallel_for(chunk, 4)


def test_set_num_threads_checks_and_restores_the_default(threads, monkeypatch):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n must be a positive int or None"):
            threads.set_num_threads(bad)
    monkeypatch.setenv("DEZERO_NUM_THREADS", "5")
    threads.set_num_threads(None)
    assert threads.num_threads() == 5
    monkeypatch.setenv("DEZERO_NUM_THREADS", "")
    threads.set_num_threads(None)
    assert threads.num_threads() >= 1


def test_the_conv_kernels_use_this_pool(threads, monkeypatch):
    import numpy as np

    import dezero.functions as F

    calls = []
    real = threads.parallel_for
    monkeypatch.setattr(threads, "parallel_for", lambda fn, n, work=None: (
        calls.append(n), real(fn, n, work))[1])
    F.conv2d(np.ones((2, 1, 5, 5), np.float32), np.ones((1, 1, 3, 3), np.float32), pad=1)
    assert calls
