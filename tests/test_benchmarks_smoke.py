"""The benchmark scripts run (tiny sizes) and print their tables, each side in its own worker
process. No timing assertions: benchmarks are measurements to read, never timed tests."""

import importlib
import json
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
def test_run_quick_overhead_prints_tables(tmp_path):
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--profile", "overhead",
         "--json", str(results)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "# numpy" in out and "# cpus" in out and "# torch" in out
    assert "# processes  one per side, rounds alternating" in out
    assert re.search(r"\| case +\| +dezero \(us/op\) +\| +torch \(us/op\) +\| +ratio \|", out)
    for case in ("forward ", "forward+backward", "forward, no_grad", "d^4/dx^4"):
        assert f"| {case}" in out
    assert "### profile: dezero forward+backward" in out
    assert "tottime us" in out
    # --json: the same tables as data (what the docs' Benchmarks page is generated from)
    data = json.loads(results.read_text())
    assert data["mode"] == "quick" and data["environment"]["dezero"]
    assert "--json" in data["command"]
    tables = data["benchmarks"]["overhead"]["tables"]
    cases = [row["case"] for row in tables[0]["rows"]]
    assert cases[:3] == ["forward", "forward+backward", "forward, no_grad"]
    for row in tables[0]["rows"]:
        assert row["dezero"]["median"] > 0 and row["dezero"]["iqr"] >= 0
        assert f"| {row['case']}" in out
        if row["torch"] is None:  # PyTorch not installed: no baseline, no ratio
            assert row["ratio"] is None
        else:
            ratio = row["dezero"]["median"] / row["torch"]["median"]
            assert abs(row["ratio"] - ratio) < 1e-9 and f"{row['ratio']:.2f}x |" in out


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
    zero = common.Table("counts", unit="n")
    zero.add("none on either side", common.Timing(0.0, 0.0, 1, 1), common.Timing(0.0, 0.0, 1, 1))
    assert zero.format().splitlines()[-1].split("|")[4].strip() == "-"
    assert zero.to_dict()["rows"][0]["ratio"] is None
    assert rows[4].split("|")[3].strip() == "-" and rows[4].split("|")[4].strip() == "-"
    assert table.ratios() == {"with torch": 0.5, "no torch": None}


def test_overhead_runs_without_torch(common, monkeypatch, capsys):
    monkeypatch.setitem(common.SETTINGS, "torch", False)
    bench = importlib.import_module("bench_overhead")
    tables = bench.run(quick=True)
    assert [len(t.rows) for t in tables] == [3, 1, 1, 1, 1]  # the chains, then the 4th derivative
    assert all(r[2] is None for t in tables for r in t.rows)
    assert all(r[1].median > 0 and r[1].repeat == 3 for t in tables for r in t.rows)
    assert bench.dezero_fourth_derivative() == 24.0


def common_chains():
    return importlib.import_module("bench_overhead").CHAINS


def test_compare_ab_runs_two_trees_in_their_own_processes(common, monkeypatch):
    """--ab: both sides are dezero, each in a worker importing its own tree (here the same
    tree twice); the rounds alternate and the checks of the two sides are compared."""
    monkeypatch.setitem(common.SETTINGS, "ab", str(common.ROOT))
    res = common.compare("bench_overhead", quick=True, rounds=2, min_round_s=0.001)
    assert len(res.columns) == 2 and res.columns[0] == "this tree"
    for side in res.columns:
        assert set(res.timings[side]) == {"forward", "forward+backward", "forward, no_grad",
                                          "d^4/dx^4 (x^4 - 2x^2)", *common_chains()}
        assert all(t.repeat == 2 and t.median > 0 for t in res.timings[side].values())
        assert res.peak_rss[side] is None or res.peak_rss[side] >= 0
    table = res.table("demo", unit="us", scale=1e6, cases=["forward"])
    assert table.columns == res.columns and table.rows[0][2] is not None
    rss = res.rss_table("memory")
    assert rss.unit == "MiB"
    faults = res.faults_table("page faults", cases=["forward"])
    assert faults.unit == "faults/call" and faults.rows[0][1].median >= 0


def test_compare_reports_a_failing_workload(common, monkeypatch):
    monkeypatch.setitem(common.SETTINGS, "torch", False)
    with pytest.raises(RuntimeError, match=r"(?s)the dezero worker failed.*no_such_workload"):
        common.compare("bench_overhead", "no_such_workload", quick=True, rounds=1)


def test_ab_rejects_a_folder_without_dezero(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--ab", str(tmp_path),
                           "overhead"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "is not a dezero checkout" in proc.stderr


def test_calibrate_and_timing_of(common):
    calls = []
    n = common.calibrate(lambda: calls.append(1), min_round_s=1e-4)
    assert n in {m * 10**e for e in range(7) for m in (1, 2, 5)}
    t = common.Timing.of([3.0, 1.0, 2.0], number=4)
    assert (t.median, t.repeat, t.number) == (2.0, 3, 4) and t.iqr == pytest.approx(1.0)


def test_table_as_json_data(common):
    """What run.py --json writes per table: medians and IQRs in the table's unit, ratios."""
    table = common.Table("demo", unit="us")
    table.add("with baseline", common.Timing(median=2e-6, iqr=1e-7, repeat=3, number=1),
              common.Timing(median=4e-6, iqr=2e-7, repeat=3, number=1))
    table.add("alone", common.Timing(median=3e-6, iqr=0.0, repeat=3, number=10))
    data = json.loads(json.dumps(table.to_dict()))
    assert data["title"] == "demo" and data["unit"] == "us"
    first, alone = data["rows"]
    assert first["case"] == "with baseline" and first["ratio"] == pytest.approx(0.5)
    assert first["dezero"]["median"] == pytest.approx(2.0)
    assert first["torch"]["iqr"] == pytest.approx(0.2)
    assert alone["torch"] is None and alone["ratio"] is None
    assert alone["dezero"] == {"median": pytest.approx(3.0), "iqr": 0.0, "repeat": 3,
                               "number": 10}
