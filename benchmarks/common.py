"""Shared helpers for the benchmark scripts: timing, the PyTorch baseline, tables, profiling.

A benchmark is a plain script ``benchmarks/bench_<topic>.py`` that measures dezero and
(where installed) PyTorch CPU on the same work in the same run. It defines

    def run(quick: bool = False, profile: bool = False) -> list[Table]

(``quick``: tiny sizes and few repeats, for smoke tests; ``profile``: also run the dezero
side once under cProfile and print the top functions, see ``profile_call``) and ends with

    if __name__ == "__main__":
        bench_main(run, __doc__)

``benchmarks/run.py`` runs every ``bench_*.py`` (or those named) through ``run()``. Time with
``timeit``; put one ``Table`` per unit; use ``torch_or_none()`` for the baseline, so the
script still runs where PyTorch is missing (the torch column then shows "-").

The machine may be shared and noisy: quote medians and ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the dezero of this tree
    sys.path.insert(0, str(ROOT))

__all__ = [
    "Table",
    "Timing",
    "bench_main",
    "environment",
    "numpy_threads",
    "print_environment",
    "profile_call",
    "timeit",
    "torch_or_none",
]

DEFAULT_THREADS = 2


# =============================================================================
# Timing
# =============================================================================
@dataclass
class Timing:
    """Per-call seconds: the median over ``repeat`` rounds of ``number`` calls, and the
    interquartile range (q3 - q1) of those rounds as the noise estimate."""

    median: float
    iqr: float
    repeat: int
    number: int
    samples: list = field(default_factory=list, repr=False)


def timeit(fn: Callable[[], object], repeat: int = 7, number: int | None = None,
           warmup: int = 1, min_round_s: float = 0.02) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeat`` rounds of ``number`` calls.

    ``number=None`` picks the smallest power of ten whose round lasts ``min_round_s``.
    The garbage collector is off inside a round (as in the ``timeit`` module) and collected
    between rounds, so rounds do not pay for each other's garbage.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    for _ in range(warmup):
        fn()
    if number is None:
        number = 1
        while True:
            t = _round(fn, number)
            if t >= min_round_s or number >= 10**6:
                break
            number *= 10
    samples = []
    for _ in range(repeat):
        gc.collect()
        samples.append(_round(fn, number) / number)
    if len(samples) >= 2:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = q3 = samples[0]
    return Timing(statistics.median(samples), q3 - q1, repeat, number, samples)


def _round(fn, number):
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - t0
    finally:
        if enabled:
            gc.enable()


# =============================================================================
# The PyTorch baseline and the environment
# =============================================================================
def numpy_threads() -> int:
    """Threads NumPy's BLAS uses: threadpoolctl if installed, else the usual environment
    variables, else ``DEFAULT_THREADS`` (2)."""
    try:
        from threadpoolctl import threadpool_info

        counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
        if counts:
            return int(max(counts))
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return DEFAULT_THREADS


_torch_state: dict = {}


def torch_or_none(threads: int | None = None):
    """The ``torch`` module, or None if it is not installed.

    On first use (or when ``threads`` is given) its thread count is set to ``threads``,
    by default to what NumPy uses, so both frameworks get the same cores.
    """
    if "module" not in _torch_state:
        try:
            import torch
        except ImportError:
            torch = None
        _torch_state["module"] = torch
    torch = _torch_state["module"]
    if torch is not None and (threads is not None or "threads" not in _torch_state):
        _torch_state["threads"] = threads or numpy_threads()
        torch.set_num_threads(_torch_state["threads"])
    return torch


def _blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")  # NumPy >= 1.25
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy or an unusual build: the header is informational only
        return "unknown"


def environment() -> dict:
    """What a reader needs to interpret the numbers."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    torch = torch_or_none()
    import dezero

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": f"{os.cpu_count()} (usable {usable})",
        "numpy": f"{np.__version__} (BLAS: {_blas()}, {numpy_threads()} threads)",
        "torch": "not installed" if torch is None
        else f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "dezero": dezero.__version__,
    }
    if hasattr(os, "getloadavg"):  # a busy machine makes every number noisy: say how busy
        env["load"] = f"{os.getloadavg()[0]:.1f} (1-minute load average)"
    return env


def print_environment(file=None) -> None:
    file = file or sys.stdout
    for key, value in environment().items():
        print(f"# {key:9s} {value}", file=file)
    file.flush()


# =============================================================================
# Tables
# =============================================================================
@dataclass
class Table:
    """One result table: rows of (case, dezero Timing, torch Timing or None).

    ``scale`` converts per-call seconds into the table's ``unit`` (e.g. 1e6 / n_ops for
    microseconds per op). ratio = dezero / torch: below 1.0 dezero is faster.
    """

    title: str
    unit: str = "us"
    rows: list = field(default_factory=list)
    columns: tuple = ("dezero", "torch")  # what is measured, and the baseline

    def add(self, case: str, dezero: Timing, torch: Timing | None = None,
            scale: float = 1e6) -> None:
        self.rows.append((case, dezero, torch, scale))

    def ratios(self) -> dict:
        return {case: (d.median / t.median if t is not None else None)
                for case, d, t, _ in self.rows}

    def to_dict(self) -> dict:
        """The table as plain data (what ``run.py --json`` writes): per row the case, the
        medians and IQRs in the table's unit, and the ratio (None without a baseline)."""
        def timing(t, scale):
            if t is None:
                return None
            return {"median": t.median * scale, "iqr": t.iqr * scale,
                    "repeat": t.repeat, "number": t.number}

        return {
            "title": self.title,
            "unit": self.unit,
            "rows": [{"case": case, "dezero": timing(d, scale), "torch": timing(t, scale),
                      "ratio": None if t is None else d.median / t.median}
                     for case, d, t, scale in self.rows],
        }

    def format(self) -> str:
        def cell(t, scale):
            if t is None:
                return "-"
            return f"{t.median * scale:.4g} ±{t.iqr * scale:.2g}"

        body = []
        for case, d, t, scale in self.rows:
            ratio = "-" if t is None else f"{d.median / t.median:.2f}x"
            body.append((case, cell(d, scale), cell(t, scale), ratio))
        head = ("case", f"{self.columns[0]} ({self.unit})", f"{self.columns[1]} ({self.unit})",
                "ratio")
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(4)]

        def line(r):
            return (f"| {r[0]:<{widths[0]}} | {r[1]:>{widths[1]}} | {r[2]:>{widths[2]}} "
                    f"| {r[3]:>{widths[3]}} |")

        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([f"### {self.title}", line(head), sep, *map(line, body)])

    def print(self, file=None) -> None:
        print(self.format(), file=file or sys.stdout)
        print(file=file or sys.stdout)


# =============================================================================
# Profiling
# =============================================================================
def profile_call(fn: Callable[[], object], calls: int = 1, top: int = 15,
                 title: str = "", file=None) -> str:
    """Run ``fn()`` ``calls`` times under cProfile; print and return the ``top`` functions by
    tottime (time spent in the function itself, which is where per-op overhead shows).

    Times are in microseconds per profiled call of ``fn`` and per call of each function
    (cProfile inflates them all by a similar amount: read them as shares).
    """
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, ncalls, tt, ct, callers)}
    total = sum(v[2] for v in stats.values())
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    lines = [
        f"### profile: {title} ({calls} calls; total {total / calls * 1e6:.0f} us per call)",
        f"{'calls/run':>10} {'tottime us':>11} {'share':>6} {'us/call':>8} {'cumtime us':>11}"
        "  function",
    ]
    for (filename, lineno, name), (_, ncalls, tt, ct, _) in rows:
        where = name if filename == "~" else f"{Path(filename).name}:{lineno}({name})"
        lines.append(
            f"{ncalls / calls:10.0f} {tt / calls * 1e6:11.1f} {tt / total:6.1%} "
            f"{tt / ncalls * 1e6:8.2f} {ct / calls * 1e6:11.1f}  {where}"
        )
    text = "\n".join(lines)
    file = file or sys.stdout
    print(text, file=file)
    print(file=file)
    return text


# =============================================================================
# Script entry point
# =============================================================================
def bench_main(run: Callable, doc: str | None = None, argv: list[str] | None = None) -> int:
    """Command line of a single benchmark script: ``--quick``, ``--profile``, ``--threads``."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the dezero side (cProfile, top 15 by tottime)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: what NumPy uses, else 2)")
    args = parser.parse_args(argv)
    torch_or_none(args.threads)
    print_environment()
    print()
    for table in run(quick=args.quick, profile=args.profile):
        table.print()
    return 0
