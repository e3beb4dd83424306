"""The Trainer's metrics over ranks, under a real ``mpiexec -n 2`` with uneven shares.

Rank 0 has 23 samples (5 batches), rank 1 has 11 (3 batches): the history and evaluate()
must equal one process over all 34 samples, which only the sums over the ranks give (a mean
of the ranks' means, or rank 0's own numbers, would differ). Without the allreduce in
``Trainer._results`` this test fails.
"""

import json
from pathlib import Path

import pytest

from tests import mpi_metrics_worker as worker
from tests.test_distributed import Launch

WORKER = str(Path(worker.__file__))


def test_metrics_are_summed_over_two_real_ranks_with_uneven_batches(tmp_path):
    out = tmp_path / "rank0.json"
    launch = Launch(2, str(out), script=WORKER)
    rc, _ = launch.wait(timeout=120)
    assert rc == 0, launch.output
    got = json.loads(out.read_text())
    ref = worker.reference()
    assert got["batches"] == 5 and ref["batches"] == 7  # rank 0's own count: uneven shares
    for part in ("train", "eval"):
        g, r = got[part], ref[part]
        assert sorted(g) == sorted(r)
        assert g["acc"] == r["acc"] and g["confusion"] == r["confusion"], part
        assert g["f1"] == pytest.approx(r["f1"], abs=1e-12)
        # float32 batch means of other batches: equal to rounding
        assert g["loss"] == pytest.approx(r["loss"], rel=1e-6), part
    # the numbers differ from rank 0's alone, so the sum over ranks is what made them equal
    x, t = worker.data()
    alone = worker.run(x[:23], t[:23])
    assert alone["eval"]["confusion"] != ref["eval"]["confusion"]
