"""The program tests/test_trainer_mpi.py runs under ``mpiexec -n 2``.

    mpiexec -n 2 python tests/mpi_metrics_worker.py OUT.json

Rank r trains (learning rate 0: the model stays the same on both ranks) and evaluates on its
own share of a fixed data set; the shares are uneven (rank 0: 23 samples, 5 batches of up to
5; rank 1: 11 samples, 3 batches), so a mean over ranks of per-rank means would be wrong.
Rank 0 writes the Trainer's history and evaluate() result as JSON; the test compares them
with one process over all 34 samples (``reference()``).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import dezero.functions as F  # noqa: E402
from dezero import DataLoader, optimizers  # noqa: E402
from dezero.metrics import F1, Accuracy, ConfusionMatrix  # noqa: E402
from dezero.models import MLP  # noqa: E402
from dezero.training import Trainer  # noqa: E402

SHARES = (23, 11)
BATCH = 5


def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(sum(SHARES), 4)).astype(np.float32)
    t = rng.integers(0, 3, sum(SHARES)).astype(np.int32)
    return x, t


def run(x, t, comm=None):
    np.random.seed(0)  # noqa: NPY002  (the same initial weights on every rank)
    model = MLP((6, 3))
    model(x[:1])
    opt = optimizers.SGD(lr=0.0).setup(model)  # local updates of zero: no collective
    pairs = list(zip(x, t))
    trainer = Trainer(model, opt, F.softmax_cross_entropy, DataLoader(pairs, BATCH, shuffle=False),
                      metrics=[Accuracy(), ConfusionMatrix(3), F1(3)], comm=comm, verbose=False)
    history = trainer.fit(1)
    evaluated = trainer.evaluate(DataLoader(pairs, BATCH, shuffle=False))
    return {"train": _plain(history[0]), "eval": _plain(evaluated),
            "batches": len(trainer.train_loader)}


def _plain(d):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()
            if k != "time"}


def reference():
    x, t = data()
    return run(x, t)


def main(out):
    from dezero import distributed

    comm = distributed.init()
    assert comm.size == len(SHARES), f"run with mpiexec -n {len(SHARES)}"
    x, t = data()
    lo = sum(SHARES[:comm.rank])
    mine = slice(lo, lo + SHARES[comm.rank])
    result = run(x[mine], t[mine], comm)
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump(result, f)
    comm.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
