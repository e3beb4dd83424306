"""The programs tests/test_distributed_faults.py runs under ``mpiexec -n 2``.

    mpiexec -n 2 python tests/mpi_fault_worker.py MODE

Both ranks reduce arrays in a loop; at step 3 rank 1 ends in the way MODE says
(``sys.exit``, ``raise SystemExit``, ``exit``, a signal, an exception; ``exit0``: a clean
early end after which rank 0 stops too). ``mismatch``: allreduce_grads on models with
another number of parameters, each rank prints what it raised.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import dezero.layers as L  # noqa: E402
from dezero import distributed  # noqa: E402
from dezero.models import Sequential  # noqa: E402


def loop(comm, mode):
    for step in range(10_000):
        if step == 3:
            print(f"rank {comm.rank} at step 3", flush=True)
            if comm.rank == 1:
                if mode == "sys.exit":
                    sys.exit(3)
                if mode == "SystemExit":
                    raise SystemExit(4)
                if mode == "exit":
                    exit(5)
                if mode == "SIGTERM":
                    os.kill(os.getpid(), signal.SIGTERM)
                if mode == "exception":
                    raise RuntimeError("injected")
                if mode == "exit0":
                    comm.barrier()
                    sys.exit(0)
            elif mode == "exit0":
                comm.barrier()
                time.sleep(0.5)  # rank 0 still writes its files: rank 1's clean end waits
                print("rank 0 finished after rank 1 left", flush=True)
                return
        comm.allreduce(np.ones(3))


def mismatch(comm):
    sizes = (3, 4) if comm.rank == 0 else (3,)
    model = Sequential(*[L.Linear(2, in_size=2) for _ in sizes])
    for p in model.params():
        p.grad = type(p)(np.ones_like(p.data))
    try:
        comm.allreduce_grads(model)
    except ValueError as e:
        print(f"rank {comm.rank} ValueError: {e}", flush=True)


if __name__ == "__main__":
    comm = distributed.init()
    if sys.argv[1] == "mismatch":
        mismatch(comm)
    else:
        loop(comm, sys.argv[1])
