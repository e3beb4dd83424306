"""The benchmark scripts run (tiny sizes) and print their tables. No timing assertions:
benchmarks are measurements to read, never timed tests."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def common(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    yield importlib.import_module("common")
    for name in ("common", "bench_overhead"):  # plain names: do not leave them in sys.modules
        sys.modules.pop(name, None)


@pytest.mark.slow  # over 5 s; test_overhead_runs_without_torch is the quick version
def test_run_quick_overhead_prints_tables():
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--profile", "overhead"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "# numpy" in out and "# cpus" in out and "# torch" in out
    assert re.search(r"\| case +\| +dezero \(us/op\) +\| +torch \(us/op\) +\| +ratio \|", out)
    for case in ("forward ", "forward+backward", "forward, no_grad", "d^4/dx^4"):
        assert f"| {case}" in out
    assert "### profile: dezero forward+backward" in out
    assert "tottime us" in out


def test_run_rejects_unknown_names():
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "no_such_bench"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "no such benchmark: no_such_bench" in proc.stderr


def test_timeit_median_and_iqr(common):
    calls = []
    t = common.timeit(lambda: calls.append(1), repeat=5, number=3, warmup=2)
    assert len(calls) == 2 + 5 * 3
    assert (t.repeat, t.number, len(t.samples)) == (5, 3, 5)
    assert min(t.samples) <= t.median <= max(t.samples)
    assert t.iqr >= 0
    auto = common.timeit(lambda: None, repeat=2, number=None, min_round_s=1e-4)
    assert auto.number >= 1
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        common.timeit(lambda: None, repeat=0)


def test_table_without_torch_shows_dashes(common):
    t = common.Timing(median=2e-6, iqr=1e-7, repeat=3, number=1)
    table = common.Table("demo", unit="us")
    table.add("with torch", t, common.Timing(4e-6, 0.0, 3, 1))
    table.add("no torch", t, None)
    text = table.format()
    rows = text.splitlines()
    assert rows[0] == "### demo"
    assert rows[1].split("|")[1:5] == [" case       ", " dezero (us) ", " torch (us) ", " ratio "]
    assert rows[3].rstrip().endswith("| 0.50x |")
    assert rows[4].split("|")[3].strip() == "-" and rows[4].split("|")[4].strip() == "-"
    assert table.ratios() == {"with torch": 0.5, "no torch": None}


def test_overhead_runs_without_torch(common, monkeypatch, capsys):
    monkeypatch.setitem(common._torch_state, "module", None)
    bench = importlib.import_module("bench_overhead")
    tables = bench.run(quick=True)
    assert [len(t.rows) for t in tables] == [3, 1]
    assert all(r[2] is None for t in tables for r in t.rows)
    assert bench.dezero_fourth_derivative() == 24.0
