"""dezero.profiler: the table names the ops, the trace is Chrome-trace JSON."""

import json

import numpy as np
import pytest

import dezero.functions as F
from dezero import profiler
from dezero.hooks import installed
from dezero.models import MLP
from dezero.optimizers import SGD


def _train_steps(n=3):
    model = MLP((8, 3))
    opt = SGD(0.1).setup(model)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    t = np.array([0, 1, 2, 1, 0])
    with profiler.profile() as prof:
        for _ in range(n):
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            opt.update()
    return prof


def test_table_groups_by_op_and_pass():
    prof = _train_steps(3)
    table = prof.table(sort_by="total")
    assert isinstance(table, str)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["op", "pass", "calls"]
    rows = {tuple(line.split()[:3]) for line in lines[2:-1]}
    assert ("Linear", "forward", "6") in rows
    assert ("Linear", "backward", "6") in rows
    assert ("SoftmaxCrossEntropy", "forward", "3") in rows
    assert ("SGD", "update", "3") in rows
    totals = [float(line.split()[3]) for line in lines[2:-1]]
    assert totals == sorted(totals, reverse=True)
    by_calls = prof.table(sort_by="calls").splitlines()[2:-1]
    calls = [int(line.split()[2]) for line in by_calls]
    assert calls == sorted(calls, reverse=True)
    assert len(prof.table(limit=2).splitlines()) == 2 + 2 + 1
    with pytest.raises(ValueError, match="sort_by must be one of"):
        prof.table(sort_by="speed")


def test_self_time_excludes_nested_ops_and_sums_to_the_total():
    prof = _train_steps(1)
    summary = prof.summary()
    assert all(0 <= g["self_ns"] <= g["total_ns"] for g in summary)
    # Sigmoid's backward runs dezero ops (its gradient graph): they nest inside it
    sig = next(g for g in summary if g["name"] == "Sigmoid" and g["phase"] == "backward")
    assert sig["self_ns"] < sig["total_ns"]
    top_level = [e for e in prof.events
                 if not any(o.start < e.start and e.end < o.end for o in prof.events)]
    assert sum(e.self_ns for e in prof.events) == sum(e.end - e.start for e in top_level)


def test_chrome_trace_is_json_with_ts_and_name(tmp_path):
    prof = _train_steps(2)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    data = json.loads(path.read_text())
    events = data["traceEvents"]
    assert len(events) == len(prof.events) > 0
    for e in events:
        assert isinstance(e["name"], str) and isinstance(e["ts"], (int, float))
        assert e["ph"] == "X" and e["dur"] >= 0 and e["cat"] in ("forward", "backward", "update")
    assert min(e["ts"] for e in events) == 0
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)


def test_nothing_recorded_outside_and_hook_removed():
    assert installed() == ()
    with profiler.profile() as prof:
        assert installed() == (prof,)
        F.exp(np.ones(3))
    assert installed() == ()
    n = len(prof.events)
    F.exp(np.ones(3))
    assert len(prof.events) == n == 1


def test_on_the_device(xp, tmp_path):
    x = xp.ones((64, 64), dtype=np.float32)
    from dezero import Variable

    v = Variable(x)
    with profiler.profile() as prof:
        y = F.sum(F.matmul(v, v))
        y.backward()
    assert {(e.name, e.phase) for e in prof.events} >= {("MatMul", "forward"),
                                                         ("MatMul", "backward")}
    prof.export_chrome_trace(tmp_path / "t.json")
    assert "MatMul" in prof.table()


def test_an_op_that_raises_does_not_absorb_the_time_of_later_ops():
    import time

    import dezero

    class Raises(dezero.Function):
        def forward(self, x):
            raise ValueError("bad op")

    class Slow(dezero.Function):
        def forward(self, x):
            time.sleep(0.02)
            return x * 1

        def backward(self, gy):
            raise RuntimeError("bad gradient")

    x = dezero.Variable(np.ones(3))
    with profiler.profile() as prof:
        for _ in range(3):
            with pytest.raises(ValueError, match="bad op"):
                Raises()(x)
        y = Slow()(x)  # 20 ms, outside the raising ops
        with pytest.raises(RuntimeError, match="bad gradient"):
            F.sin(y).backward()
        F.cos(x)
    rows = {(r["name"], r["phase"]): r for r in prof.summary()}
    assert rows[("Raises", "forward")]["calls"] == 3
    assert rows[("Raises", "forward")]["total_ns"] < 5e6  # not the 20 ms that followed
    assert rows[("Slow", "forward")]["total_ns"] >= 2e7
    assert rows[("Slow", "backward")]["total_ns"] < 5e6  # closed, not left open to the end
    assert rows[("Cos", "forward")]["calls"] == 1
    # nested intervals still nest: Sin's backward ran inside nothing, Slow's forward holds none
    assert all(e.self_ns >= 0 and e.end >= e.start for e in prof.events)
