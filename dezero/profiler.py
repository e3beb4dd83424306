"""A profiler: wall time and call counts of every Function's forward and backward, and of
optimizer updates, as a table grouped by op and as a Chrome/Perfetto trace.

>>> import numpy as np
>>> import dezero
>>> import dezero.functions as F
>>> from dezero import profiler
>>> x = dezero.Variable(np.ones((3, 4), dtype=np.float32))
>>> with profiler.profile() as prof:
...     y = F.tanh(x) * 2
...     y.backward()
>>> [(e.name, e.phase) for e in prof.events]  # doctest: +NORMALIZE_WHITESPACE
[('Tanh', 'forward'), ('MulConstant', 'forward'), ('MulConstant', 'backward'),
 ('Tanh', 'backward')]
>>> prof.table().splitlines()[0].split()
['op', 'pass', 'calls', 'total', 'ms', 'self', 'ms', 'mean', 'us', '%']

It is a :class:`dezero.core.FunctionHook`: outside ``profile()`` the engine pays what it
pays for no observer at all (one attribute read per call, one per ``Optimizer.update``).

Timing on a GPU: CuPy runs kernels asynchronously, so a wall clock around an op measures
only the launch. Inside ``profile(sync_gpu=True)`` (the default) the profiler therefore
synchronises the device before and after every op whose data lives on the GPU, so that
each interval covers the op's device work. That serialises host and device: the totals
show where time goes, but a profiled step is slower than an unprofiled one.
"""

from __future__ import annotations

import inspect
import json
import os
import threading
import time
from typing import NamedTuple

from dezero import cuda
from dezero.core import FunctionHook, Variable

__all__ = ["Event", "Profile", "profile"]

_SORT_KEYS = ("total", "self", "calls", "mean", "name")


class Event(NamedTuple):
    """One timed interval: ``name`` (the Function's or optimizer's class), ``phase``
    ("forward", "backward" or "update"), ``start`` and ``end`` (``time.perf_counter_ns``),
    ``self_ns`` (the duration minus the events nested in it)."""

    name: str
    phase: str
    start: int
    end: int
    self_ns: int


def _on_gpu(arrays) -> bool:
    if not cuda.gpu_enable:
        return False
    cupy = cuda.cupy
    for a in arrays:
        if isinstance(a, Variable):
            a = a.data
        if isinstance(a, cupy.ndarray):
            return True
    return False


def _sync() -> None:
    cuda.cupy.cuda.get_current_stream().synchronize()


class Profile(FunctionHook):
    """What ``profile()`` returns: the recorded events, ``table()`` and
    ``export_chrome_trace(path)``. Records the thread that entered it."""

    def __init__(self, sync_gpu: bool = True):
        self.sync_gpu = sync_gpu
        self.events: list[Event] = []
        self._stack: list = []  # open intervals: [name, phase, start, child_ns, gpu]
        self._tid = threading.get_ident()

    # --- the observer -------------------------------------------------------------
    # An open interval: [name, phase, start, child_ns, gpu, owner, frame, last]. ``owner``
    # is the Function or optimizer, ``frame`` the engine's Python frame that reported the
    # start, ``last`` the time of its last activity seen (its start, or a nested interval's
    # end). An op that raises never reports its end: the next event finds its frame gone
    # from the stack and closes it at its last activity, so it does not absorb the time of
    # the ops after it.
    def _open(self, name, phase, gpu, owner) -> None:
        here = inspect.currentframe()
        frame = here.f_back.f_back  # the engine's frame that called forward_pre & co.
        if self._stack:
            live = set()
            f = here
            while f is not None:
                live.add(id(f))
                f = f.f_back
            while self._stack and id(self._stack[-1][6]) not in live:
                self._end(self._stack.pop(), stale=True)
        if gpu:
            _sync()
        now = time.perf_counter_ns()
        self._stack.append([name, phase, now, 0, gpu, owner, frame, now])

    def _close(self, owner) -> None:
        if not any(entry[5] is owner for entry in self._stack):
            return
        while self._stack[-1][5] is not owner:  # nested intervals an exception left open
            self._end(self._stack.pop(), stale=True)
        self._end(self._stack.pop(), stale=False)

    def _end(self, entry, stale: bool) -> None:
        name, phase, start, child_ns, gpu, _, _, last = entry
        if stale:
            end = last
        else:
            if gpu:
                _sync()
            end = time.perf_counter_ns()
        self.events.append(Event(name, phase, start, end, max(0, end - start - child_ns)))
        if self._stack:
            parent = self._stack[-1]
            parent[3] += end - start
            parent[7] = end

    def forward_pre(self, f, inputs) -> None:
        self._open(type(f).__name__, "forward", self.sync_gpu and _on_gpu(inputs), f)

    def forward_post(self, f, xs, outputs) -> None:
        self._close(f)

    def backward_pre(self, f) -> None:
        self._open(type(f).__name__, "backward",
                   self.sync_gpu and _on_gpu(getattr(f, "inputs", ())), f)

    def backward_post(self, f, gxs) -> None:
        self._close(f)

    def update_pre(self, optimizer) -> None:
        self._open(type(optimizer).__name__, "update", self.sync_gpu and cuda.gpu_enable,
                   optimizer)

    def update_post(self, optimizer) -> None:
        self._close(optimizer)

    def __exit__(self, *exc):
        super().__exit__(*exc)
        while self._stack:  # intervals an exception left open end at their last activity
            self._end(self._stack.pop(), stale=True)

    # --- reports ------------------------------------------------------------------
    def summary(self) -> list[dict]:
        """One dict per (op, pass): name, phase, calls, total_ns, self_ns."""
        groups: dict[tuple, dict] = {}
        for e in self.events:
            g = groups.get((e.name, e.phase))
            if g is None:
                g = groups[(e.name, e.phase)] = {"name": e.name, "phase": e.phase,
                                                  "calls": 0, "total_ns": 0, "self_ns": 0}
            g["calls"] += 1
            g["total_ns"] += e.end - e.start
            g["self_ns"] += e.self_ns
        return list(groups.values())

    def table(self, sort_by: str = "total", limit: int | None = None) -> str:
        """The events grouped by op and pass, as a text table (returned, not printed).

        Parameters
        ----------
        sort_by : {"total", "self", "calls", "mean", "name"}
            The column to sort by (descending, except "name").
        limit : int, optional
            Show only the first ``limit`` rows.

        Notes
        -----
        "total" includes the ops nested in an interval (the ops a Function's backward is
        written with run inside it); "self" excludes them, so the self column adds up to
        the profiled time and "%" is the share of it.
        """
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"sort_by must be one of {_SORT_KEYS}, got {sort_by!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")
        rows = self.summary()
        key = {"total": lambda g: -g["total_ns"], "self": lambda g: -g["self_ns"],
               "calls": lambda g: -g["calls"], "mean": lambda g: -g["total_ns"] / g["calls"],
               "name": lambda g: (g["name"], g["phase"])}[sort_by]
        rows.sort(key=key)
        if limit is not None:
            rows = rows[:limit]
        all_self = sum(e.self_ns for e in self.events) or 1
        header = ("op", "pass", "calls", "total ms", "self ms", "mean us", "%")
        body = [(g["name"], g["phase"], str(g["calls"]), f"{g['total_ns'] / 1e6:.3f}",
                 f"{g['self_ns'] / 1e6:.3f}", f"{g['total_ns'] / g['calls'] / 1e3:.1f}",
                 f"{100 * g['self_ns'] / all_self:.1f}") for g in rows]
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

        def line(r):
            cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
            cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:])]
            return "  ".join(cells).rstrip()

        out = [line(header), "-" * len(line(header))]
        out += [line(r) for r in body]
        total_ms = sum(e.self_ns for e in self.events) / 1e6
        out.append(f"{len(self.events)} events, {total_ms:.3f} ms in ops")
        return "\n".join(out)

    def export_chrome_trace(self, path) -> None:
        """Write the events as a Chrome trace (JSON; open it in chrome://tracing or
        https://ui.perfetto.dev): one complete ("X") event per interval, ``ts`` and
        ``dur`` in microseconds from the first event."""
        t0 = min((e.start for e in self.events), default=0)
        pid = os.getpid()
        events = [{"name": e.name, "cat": e.phase, "ph": "X",
                   "ts": (e.start - t0) / 1e3, "dur": (e.end - e.start) / 1e3,
                   "pid": pid, "tid": self._tid, "args": {"pass": e.phase}}
                  for e in sorted(self.events, key=lambda e: (e.start, -e.end))]
        from dezero.serialization import atomic_write

        text = json.dumps({"traceEvents": events, "displayTimeUnit": "ms"})
        with atomic_write(path) as fh:
            fh.write(text.encode("utf-8"))


def profile(sync_gpu: bool = True) -> Profile:
    """Context manager that records every Function call in this thread: ``with
    profile() as prof: ...``, then ``prof.table(sort_by="total")`` and
    ``prof.export_chrome_trace(path)``.

    Records each Function's forward and its part of every backward pass, and each
    ``Optimizer.update()``, with ``time.perf_counter_ns``. ``sync_gpu``: synchronise the
    GPU around ops on CuPy arrays so that intervals cover the device work (see the
    module notes).

    Examples
    --------
    >>> import numpy as np
    >>> import dezero.functions as F
    >>> from dezero.models import MLP
    >>> from dezero.optimizers import SGD
    >>> model = MLP((4, 2)); opt = SGD().setup(model)
    >>> with profile() as prof:
    ...     loss = F.sum(model(np.ones((3, 5), dtype=np.float32)))
    ...     loss.backward(); opt.update()
    >>> [(e.name, e.phase) for e in prof.events if e.phase != "forward"][-1]
    ('SGD', 'update')
    >>> "Linear" in prof.table(sort_by="self")
    True
    """
    if not isinstance(sync_gpu, bool):
        raise TypeError(f"profile: sync_gpu must be True or False, got {sync_gpu!r}")
    return Profile(sync_gpu=sync_gpu)
