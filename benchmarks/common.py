"""Shared helpers for the benchmark scripts: one process per framework, alternating rounds,
medians and ratios; tables, profiling, the command line.

A benchmark is a plain script ``benchmarks/bench_<topic>.py``. It describes its work once
per framework, as a *workload*: a function

    def workload(framework: str, quick: bool = False, **kwargs) -> Workload

that builds, for ``framework`` ("dezero" or "torch"), the timed cases (name -> a callable
doing one unit of work) and optionally a ``check`` (what both frameworks must agree on:
a list of arrays or numbers, computed before anything is timed). Its ``run()`` asks
:func:`compare` to time them and turns the result into ``Table`` s:

    def run(quick: bool = False, profile: bool = False) -> list[Table]

and it ends with ``if __name__ == "__main__": bench_main(run, __doc__)``.

How :func:`compare` measures (the same for every benchmark):

* each side runs in its own worker process (``python benchmarks/common.py --worker``),
  so that no framework's worker threads (OpenBLAS, OpenMP), allocator state or imports
  slow the other; a side is a framework, or with ``--ab OTHER_TREE`` a second checkout of
  dezero running the same workload (before/after figures for a change);
* the sides' rounds alternate (round r: A then B, round r + 1: B then A), so that a shared
  machine's changing load hits both alike; each round runs a case ``number`` times, with
  ``number`` calibrated per side so that a round lasts ``min_round_s``;
* reported per case and side: the median time per call and the interquartile range of the
  rounds; the ratio is A / B (below 1.0 the first column is faster); per worker, its peak
  resident memory above its resident memory after the imports (the framework, the benchmark
  module) and before the workload was built.

The machine may be shared and noisy: quote medians and ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
# The dezero to import: this checkout, or (a worker of ``--ab``) the tree named by
# DEZERO_BENCH_TREE. Put first on sys.path so that it wins over an installed dezero.
ROOT = Path(os.environ.get("DEZERO_BENCH_TREE") or HERE.parent).resolve()
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(1, str(HERE))

__all__ = [
    "SETTINGS",
    "Comparison",
    "Table",
    "Timing",
    "Workload",
    "bench_main",
    "compare",
    "environment",
    "numpy_threads",
    "print_environment",
    "profile_call",
    "profile_workload",
    "timeit",
    "torch_or_none",
]

# What the command line (run.py or a script's bench_main) chose, read by compare():
#   threads: BLAS/OpenMP threads of every worker (None: each framework's own default)
#   ab: another dezero checkout to compare against instead of PyTorch (None: PyTorch)
#   torch: False to leave PyTorch out even where it is installed
#   pause: seconds between two sides' rounds, so that the threads of the side that just ran
#     have gone to sleep before the other side starts (OpenBLAS's spin for up to ~0.1 s)
SETTINGS: dict = {"threads": None, "ab": None, "torch": True, "pause": 0.1}


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

    @classmethod
    def of(cls, samples, number: int = 1) -> Timing:
        """The Timing of per-call ``samples`` (one per round)."""
        samples = list(samples)
        if len(samples) >= 2:
            q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        else:
            q1 = q3 = samples[0]
        return cls(statistics.median(samples), q3 - q1, len(samples), number, samples)


def timeit(fn: Callable[[], object], repeat: int = 7, number: int | None = None,
           warmup: int = 1, min_round_s: float = 0.02) -> Timing:
    """Time ``fn()`` in this process: ``warmup`` untimed calls, then ``repeat`` rounds of
    ``number`` calls (``None``: calibrated with :func:`calibrate`).

    The garbage collector is off inside a round (as in the ``timeit`` module) and collected
    between rounds, so rounds do not pay for each other's garbage.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    for _ in range(warmup):
        fn()
    if number is None:
        number = calibrate(fn, min_round_s)
    samples = []
    for _ in range(repeat):
        gc.collect()
        samples.append(_round(fn, number) / number)
    return Timing.of(samples, number)


def calibrate(fn: Callable[[], object], min_round_s: float) -> int:
    """The number of calls of ``fn`` (1, 2, 5, 10, 20, 50, ...) whose round lasts
    ``min_round_s``."""
    number = 1
    while True:
        t = _round(fn, number)
        if t >= min_round_s or number >= 10**6:
            return number
        want = max(number * min_round_s / max(t, 1e-9), number + 1)
        number = next(n for n in (m * 10**e for e in range(7) for m in (1, 2, 5)) if n >= want)


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
# The frameworks and the environment
# =============================================================================
def numpy_threads() -> int:
    """Threads NumPy's BLAS uses: threadpoolctl if installed, else the usual environment
    variables, else the usable cores (OpenBLAS's default)."""
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
    return _usable_cpus()


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_torch_state: dict = {}


def torch_or_none(threads: int | None = None):
    """The ``torch`` module (imported on first use, in the process that calls this: a
    worker), or None if it is not installed. ``threads``: set its thread count."""
    if "module" not in _torch_state:
        try:
            import torch
        except ImportError:
            torch = None
        _torch_state["module"] = torch
    torch = _torch_state["module"]
    if torch is not None and threads:
        torch.set_num_threads(int(threads))
    return torch


def torch_available() -> bool:
    """Whether the PyTorch baseline runs: installed, and not switched off (``--no-torch``).
    Found without importing it (this process only coordinates the workers)."""
    if not SETTINGS["torch"] or _torch_state.get("module", 0) is None:
        return False
    return importlib.util.find_spec("torch") is not None


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")  # NumPy >= 1.25
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy or an unusual build: the header is informational only
        return "unknown"


def _git_rev(tree: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip()[:72] if out.returncode == 0 else "not a git checkout"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict:
    """What a reader needs to interpret the numbers (PyTorch is not imported here)."""
    import dezero

    threads = SETTINGS["threads"]
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": f"{os.cpu_count()} (usable {_usable_cpus()})",
        "numpy": f"{np.__version__} (BLAS: {_blas()}, "
                 f"{threads or numpy_threads()} threads)",
        "dezero": f"{dezero.__version__} ({_git_rev(ROOT)})",
    }
    if SETTINGS["ab"]:
        other = Path(SETTINGS["ab"]).resolve()
        env["baseline"] = f"dezero at {other} ({_git_rev(other)})"
    else:
        version = _version("torch") if torch_available() else None
        env["torch"] = ("not installed" if version is None else
                        f"{version} ({threads or 'its default'} threads)")
    env["processes"] = "one per side, rounds alternating"
    if hasattr(os, "getloadavg"):  # a busy machine makes every number noisy: say how busy
        env["load"] = f"{os.getloadavg()[0]:.1f} (1-minute load average)"
    return env


def print_environment(file=None) -> None:
    file = file or sys.stdout
    for key, value in environment().items():
        print(f"# {key:10s} {value}", file=file)
    file.flush()


# =============================================================================
# Tables
# =============================================================================
def _ratio(d, t):
    """first / baseline, or None without a baseline (or a zero one, as a count can be)."""
    if d is None or t is None or t.median == 0:
        return None
    return d.median / t.median


@dataclass
class Table:
    """One result table: rows of (case, first-column Timing, baseline Timing or None).

    ``scale`` converts per-call seconds into the table's ``unit`` (e.g. 1e6 / n_ops for
    microseconds per op). ratio = first / baseline: below 1.0 the first is faster.
    """

    title: str
    unit: str = "us"
    rows: list = field(default_factory=list)
    columns: tuple = ("dezero", "torch")  # what is measured, and the baseline

    def add(self, case: str, dezero: Timing, torch: Timing | None = None,
            scale: float = 1e6) -> None:
        self.rows.append((case, dezero, torch, scale))

    def ratios(self) -> dict:
        return {case: _ratio(d, t) for case, d, t, _ in self.rows}

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
            "columns": list(self.columns),
            "rows": [{"case": case, "dezero": timing(d, scale), "torch": timing(t, scale),
                      "ratio": _ratio(d, t)}
                     for case, d, t, scale in self.rows],
        }

    def format(self) -> str:
        def cell(t, scale):
            if t is None:
                return "-"
            return f"{t.median * scale:.4g} ±{t.iqr * scale:.2g}"

        body = []
        for case, d, t, scale in self.rows:
            r = _ratio(d, t)
            ratio = "-" if r is None else f"{r:.2f}x"
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
# One process per side
# =============================================================================
@dataclass
class Workload:
    """What a worker builds for one framework.

    cases: name -> a callable doing one unit of work (its result is ignored).
    check: a callable whose result (an array, a number, or a list/tuple of them) must agree
        between the sides; called once, before any case runs.
    info: strings to report (e.g. the data source), merged into the Comparison's ``info``.
    """

    cases: dict
    check: Callable[[], object] | None = None
    info: dict = field(default_factory=dict)


@dataclass
class _Side:
    name: str  # the column: "dezero", "torch", "this tree", "main" ...
    framework: str  # what the workload builds: "dezero" or "torch"
    tree: Path  # the dezero checkout the worker imports


def _sides(frameworks) -> list[_Side]:
    if SETTINGS["ab"]:
        other = Path(SETTINGS["ab"]).resolve()
        if not (other / "dezero" / "__init__.py").is_file():
            raise ValueError(f"--ab: {other} is not a dezero checkout (no dezero/__init__.py)")
        name = other.name if other.name != ROOT.name else str(other)
        return [_Side("this tree", "dezero", ROOT), _Side(name, "dezero", other)]
    sides = [_Side("dezero", "dezero", ROOT)]
    if "torch" in frameworks and torch_available():
        sides.append(_Side("torch", "torch", ROOT))
    return sides


@dataclass
class Comparison:
    """What :func:`compare` measured: per side (``columns``) and case a Timing, per side
    its peak memory, and the workloads' ``info``."""

    columns: tuple
    timings: dict  # column -> case -> Timing
    peak_rss: dict  # column -> bytes above the RSS after import (None where unknown)
    info: dict
    faults: dict = field(default_factory=dict)  # column -> case -> page faults per call

    @property
    def has_baseline(self) -> bool:
        return len(self.columns) > 1

    def timing(self, case: str, side: int = 0) -> Timing | None:
        """The Timing of ``case`` on the first side (0) or the baseline (1); None if that
        side did not run."""
        if side >= len(self.columns):
            return None
        return self.timings[self.columns[side]].get(case)

    def table(self, title: str, unit: str, scale: float = 1.0, cases=None,
              labels: dict | None = None) -> Table:
        """A Table of ``cases`` (default: all the first side's, in order), each against the
        same case on the baseline side."""
        table = Table(title, unit=unit, columns=self._column_names())
        for case in cases or list(self.timings[self.columns[0]]):
            self.add_row(table, (labels or {}).get(case, case), case, scale=scale)
        return table

    def add_row(self, table: Table, label: str, case: str, baseline_case: str | None = None,
                scale: float = 1.0) -> None:
        """Add the row ``label``: ``case`` on the first side against ``baseline_case``
        (default: the same case) on the baseline side. With ``--ab`` the baseline is the
        other tree, which runs the same cases: there the row is always ``case`` vs ``case``."""
        if SETTINGS["ab"] or baseline_case is None:
            baseline_case = case
        table.add(label, self.timing(case, 0), self.timing(baseline_case, 1), scale=scale)

    def rss_table(self, title: str) -> Table:
        """The peak-memory row: MiB above each worker's RSS after its imports."""
        table = Table(title, unit="MiB", columns=self._column_names())
        values = [self.peak_rss.get(c) for c in self.columns]
        if values[0] is not None:
            as_t = [None if v is None else Timing(float(v), 0.0, 1, 1) for v in values]
            table.add("peak RSS above RSS after import", as_t[0],
                      as_t[1] if len(as_t) > 1 else None, scale=1 / 2**20)
        return table

    def faults_table(self, title: str, cases=None) -> Table:
        """Page faults per call (fresh pages the step touched; the median over the
        rounds), first side vs baseline: what an allocator that keeps freed memory saves."""
        table = Table(title, unit="faults/call", columns=self._column_names())
        for case in cases or list(self.faults.get(self.columns[0], {})):
            values = [self.faults.get(c, {}).get(case) for c in self.columns]
            as_t = [None if v is None else Timing(float(v), 0.0, 1, 1) for v in values]
            table.add(case, as_t[0], as_t[1] if len(as_t) > 1 else None, scale=1.0)
        return table

    def _column_names(self):
        return (self.columns[0], self.columns[1] if self.has_baseline else
                ("torch" if not SETTINGS["ab"] else "baseline"))


class _Worker:
    """The parent's handle on one worker process (JSON lines over its stdin/stdout)."""

    def __init__(self, side: _Side, module: str, setup: str, quick: bool, kwargs: dict,
                 threads: int | None):
        self.side = side
        env = dict(os.environ)
        env["DEZERO_BENCH_TREE"] = str(side.tree)
        env.pop("PYTHONPATH", None)  # the tree alone decides which dezero is imported
        if threads:
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "DEZERO_NUM_THREADS"):
                env[var] = str(threads)
        spec = {"module": module, "setup": setup, "framework": side.framework,
                "quick": quick, "kwargs": kwargs, "threads": threads}
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed by close())
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "common.py"), "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env=env, cwd=str(HERE))

    def request(self, **message):
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # read() reports the failure with the worker's stderr
        return self.read()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.log.seek(0)
            err = self.log.read()
            raise RuntimeError(f"the {self.side.name} worker failed (exit status "
                               f"{self.proc.returncode}):\n{err[-6000:]}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the {self.side.name} worker failed:\n{reply['error']}")
        return reply

    def close(self):
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def compare(module: str, setup: str = "workload", *, quick: bool = False,
            kwargs: dict | None = None, cases=None, frameworks=("dezero", "torch"),
            rounds: int = 7, number: int | None = None, min_round_s: float = 0.05,
            warmup: int = 2, threads: int | None = None, rtol: float = 1e-4,
            atol: float = 1e-5) -> Comparison:
    """Time ``module.setup(framework, quick, **kwargs)``'s cases, one worker process per
    side, rounds alternating; see the module docstring.

    module: the benchmark's module name (``"bench_cnn"``); setup: its workload function.
    cases: which cases to time (default: all the first side's, in order).
    frameworks: the frameworks this comparison has a workload for.
    number: calls per round (None: calibrated per side to last ``min_round_s``).
    threads: BLAS/OpenMP/torch threads of the workers (default: ``--threads``, else each
        framework's own default).
    rtol, atol: how closely the sides' ``check`` results must agree.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    threads = threads or SETTINGS["threads"]
    sides = _sides(frameworks)
    workers = [_Worker(s, module, setup, quick, kwargs or {}, threads) for s in sides]
    try:
        ready = [w.read() for w in workers]  # they start up (import, build) side by side
        has = [r["cases"] for r in ready]
        names = list(cases or dict.fromkeys(c for h in has for c in h))
        unknown = [c for c in names if not any(c in h for h in has)]
        if unknown:
            raise ValueError(f"{module}.{setup}: no workload has the case(s) {unknown}")
        _check_agree(module, workers, rtol, atol)
        numbers: dict = {}
        samples = {w.side.name: {c: [] for c in names} for w in workers}
        faults = {w.side.name: {c: [] for c in names} for w in workers}
        last = None
        pause = 0.0 if quick else SETTINGS["pause"]
        for r in range(rounds):
            order = workers if r % 2 == 0 else workers[::-1]
            for case in names:
                for w in order:
                    if case not in has[workers.index(w)]:
                        continue
                    if last is not None and last is not w and pause:
                        time.sleep(pause)
                    key = (w.side.name, case)
                    if key not in numbers:  # warm up and calibrate, untimed
                        reply = w.request(op="prepare", case=case, warmup=warmup,
                                          number=number, min_round_s=min_round_s)
                        numbers[key] = reply["number"]
                    reply = w.request(op="round", case=case, number=numbers[key])
                    samples[w.side.name][case].append(reply["seconds"] / numbers[key])
                    faults[w.side.name][case].append(reply["faults"] / numbers[key])
                    last = w
        finals = [w.request(op="done") for w in workers]
    finally:
        for w in workers:
            w.close()
    info: dict = {}
    for r in ready:
        info.update(r.get("info", {}))
    return Comparison(
        columns=tuple(s.name for s in sides),
        timings={w.side.name: {c: Timing.of(samples[w.side.name][c], numbers[(w.side.name, c)])
                               for c in names if samples[w.side.name][c]} for w in workers},
        peak_rss={w.side.name: f.get("peak_rss") for w, f in zip(workers, finals)},
        info=info,
        faults={w.side.name: {c: statistics.median(v) for c, v in faults[w.side.name].items()
                              if v} for w in workers},
    )


def _check_agree(module, workers, rtol, atol):
    results = [w.request(op="check") for w in workers]
    if any(r.get("path") is None for r in results):
        return
    loaded = []
    for r in results:
        with np.load(r["path"]) as data:
            loaded.append([data[f"a{i}"] for i in range(len(data.files))])
        os.unlink(r["path"])
    base = loaded[0]
    for w, other in zip(workers[1:], loaded[1:]):
        if len(other) != len(base):
            raise AssertionError(f"{module}: the {w.side.name} check has {len(other)} "
                                 f"values, {workers[0].side.name}'s has {len(base)}")
        for i, (a, b) in enumerate(zip(base, other)):
            np.testing.assert_allclose(
                a, b, rtol=rtol, atol=atol,
                err_msg=f"{module}: {workers[0].side.name} and {w.side.name} disagree on "
                        f"check value {i} (shape {np.shape(a)}): not the same work")


# --- inside a worker ------------------------------------------------------------------------
def _rss_kib(field_name):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _minor_faults():
    """Page faults of this process so far that needed no disk read (fresh pages)."""
    try:
        import resource
    except ImportError:  # not on a Unix
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    # Protocol on the real stdout; whatever the workload prints goes to stderr.
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        if spec["framework"] == "torch" and torch_or_none(spec["threads"]) is None:
            raise RuntimeError("torch is not installed")
        module = importlib.import_module(spec["module"])
        import dezero

        if Path(dezero.__file__).resolve().parent.parent != ROOT:
            raise RuntimeError(f"imported dezero from {dezero.__file__}, not from {ROOT}")
        gc.collect()
        base = _rss_kib("VmRSS")
        # reset the peak (VmHWM) to the current RSS
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        wl = getattr(module, spec["setup"])(spec["framework"], quick=spec["quick"],
                                            **spec["kwargs"])
        info = dict(wl.info)
        if spec["framework"] == "torch":
            info["torch threads"] = str(torch_or_none().get_num_threads())
        send({"cases": list(wl.cases), "info": info})
    except Exception:
        import traceback

        send({"error": traceback.format_exc()})
        return
    for line in sys.stdin:
        msg = json.loads(line)
        op = msg["op"]
        try:
            if op == "check":
                path = None
                if wl.check is not None:
                    values = wl.check()
                    if not isinstance(values, (list, tuple)):
                        values = [values]
                    fd, path = tempfile.mkstemp(suffix=".npz", prefix="dezero-bench-")
                    with os.fdopen(fd, "wb") as f:
                        np.savez(f, **{f"a{i}": np.asarray(v) for i, v in enumerate(values)})
                send({"path": path})
            elif op == "prepare":
                fn = wl.cases[msg["case"]]
                for _ in range(msg["warmup"]):
                    fn()
                n = msg["number"] or calibrate(fn, msg["min_round_s"])
                send({"number": n})
            elif op == "round":
                fn = wl.cases[msg["case"]]
                gc.collect()
                faults = _minor_faults()
                seconds = _round(fn, msg["number"])
                send({"seconds": seconds, "faults": _minor_faults() - faults})
            elif op == "done":
                peak = _rss_kib("VmHWM")
                send({"peak_rss": None if peak is None or base is None
                      else max(peak - base, 0) * 1024})
                return
        except Exception:
            import traceback

            send({"error": traceback.format_exc()})
            return


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


def profile_workload(module_workload: Callable, case: str, calls: int, title: str,
                     quick: bool = False, **kwargs) -> str:
    """Profile one case of a dezero workload in this process (the only place where this
    process runs dezero's work: timing always happens in the workers)."""
    wl = module_workload("dezero", quick=quick, **kwargs)
    fn = wl.cases[case]
    for _ in range(2):
        fn()
    return profile_call(fn, calls=calls, title=title)


# =============================================================================
# Script entry point
# =============================================================================
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that every way of running benchmarks shares (run.py, each script)."""
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the dezero side (cProfile, top 15 by tottime)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP/torch threads of every worker (default: each "
                             "framework's own default, i.e. the machine's cores)")
    parser.add_argument("--ab", metavar="OTHER_TREE", default=None,
                        help="compare this tree's dezero with the one in OTHER_TREE (another "
                             "checkout) instead of with PyTorch: before/after figures")
    parser.add_argument("--no-torch", action="store_true",
                        help="leave the PyTorch baseline out even where it is installed")
    parser.add_argument("--pause", type=float, default=None,
                        help="seconds to wait between two sides' rounds (default 0.1; none "
                             "with --quick)")


def apply_arguments(args) -> None:
    SETTINGS["threads"] = args.threads
    SETTINGS["ab"] = args.ab
    SETTINGS["torch"] = not args.no_torch
    if args.pause is not None:
        SETTINGS["pause"] = args.pause
    if args.ab:
        _sides(())  # a clear error now if OTHER_TREE is not a checkout


def bench_main(run: Callable, doc: str | None = None, argv: list[str] | None = None) -> int:
    """Command line of a single benchmark script (the options of :func:`add_arguments`)."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        apply_arguments(args)
    except ValueError as e:
        parser.error(str(e))
    print_environment()
    print()
    for table in run(quick=args.quick, profile=args.profile):
        table.print()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        # run as the module ``common`` (what the benchmark scripts import), not as __main__
        import common

        common._worker_main(sys.argv[2])
    else:
        sys.exit("common.py is a library; run a bench_*.py script or run.py")
