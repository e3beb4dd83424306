"""Data-parallel training over MPI: gradient allreduce bandwidth, and MNIST epochs on N ranks.

1. Allreduce. The gradients of the MNIST MLP (784-1000-1000-10, 1.79 M float32 numbers,
   7.2 MB) on 2 ranks: ``comm.allreduce_grads(model)`` (pack into the bucket buffers, one
   in-place ``Allreduce`` per bucket, divide, hand out views), the bare reduction of the
   packed buffers, and one Allreduce per parameter, against the baseline: one raw mpi4py
   ``Allreduce`` of the same bytes between two preallocated arrays. Ratios are time
   ratios (bucket / raw); bandwidth ratio = 1 / ratio.
2. MNIST. Seconds per epoch (600 global batches of 100, MomentumSGD) of the training step
   (forward, backward, averaged gradients, update) on 2 ranks with 1 BLAS thread each
   and batches of 50, against 1 rank with 2 BLAS threads and batches of 100 (the same
   cores), plus 1 rank with 1 thread on batches of 50 (one rank's share of the work,
   without communication) and the share of a step spent in the allreduce.

Each configuration runs in its own ``mpiexec`` launch (``dezero.distributed.mpiexec_command``);
rank 0 times ``REPEAT`` rounds after a warm-up, every rank running the same calls.

    python benchmarks/bench_distributed.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

try:  # as a script (python benchmarks/bench_distributed.py) or imported by run.py
    from common import Table, Timing, bench_main, timeit
except ImportError:  # imported as benchmarks.bench_distributed
    from benchmarks.common import Table, Timing, bench_main, timeit

SUPPORTS_AB = False  # it compares dezero with raw MPI, not with another tree
BATCH = 100  # global batch
STEPS_PER_EPOCH = 60000 // BATCH
REPEAT, ITERS = 5, 40  # MNIST: rounds of ITERS steps
QUICK_REPEAT, QUICK_ITERS = 2, 3


def _timing(samples, number):
    return Timing(float(np.median(samples)), float(np.subtract(*np.percentile(samples, [75, 25]))),
                  len(samples), number, list(samples))


# =============================================================================
# Inside mpiexec
# =============================================================================
def _mlp():
    import dezero.functions as F
    from dezero.models import MLP

    model = MLP((1000, 1000, 10), activation=F.relu)
    model(np.zeros((1, 784), dtype=np.float32))  # create the weights before any broadcast
    return model


def worker_allreduce(quick):
    from dezero import Variable, distributed

    comm = distributed.init()
    MPI = comm._MPI
    model = _mlp()
    rng = np.random.default_rng(comm.rank)
    params = list(model.params())
    for p in params:
        p.grad = Variable(rng.standard_normal(p.shape).astype(np.float32))
    grads = [p.grad.data.copy() for p in params]
    nbytes = sum(g.nbytes for g in grads)
    src = np.concatenate([g.ravel() for g in grads])
    dst = np.empty_like(src)
    outs = [np.empty_like(g) for g in grads]
    repeat, number = (3, 2) if quick else (9, 10)

    def raw():
        comm.mpi_comm.Allreduce(src, dst, op=MPI.SUM)

    def per_param():
        for g, o in zip(grads, outs):
            comm.mpi_comm.Allreduce(g, o, op=MPI.SUM)

    def full():
        comm.allreduce_grads(model)

    results = {"bytes": nbytes, "size": comm.size, "repr": repr(comm), "cases": {}}
    for label, bucket in (("25 MiB buckets (1 bucket)", distributed.DEFAULT_BUCKET_SIZE),
                          ("1 MiB buckets", 2**20)):
        comm.bucket_size = bucket
        layout = comm._layout(list(model.named_params()))

        def buckets(layout=layout):
            for b in layout.buckets:
                comm._reduce_inplace(b.buffer, b.host)

        cases = {f"packed buffers only, {label} ({len(layout.buckets)})": buckets,
                 f"allreduce_grads, {label}": full}
        for case, fn in cases.items():
            samples = {"dezero": [], "raw": []}
            for _ in range(repeat):  # alternate with the baseline, round by round
                for key, f in (("dezero", fn), ("raw", raw)):
                    comm.barrier()
                    samples[key].append(timeit(f, repeat=1, number=number, warmup=1).median)
            results["cases"][case] = samples
    samples = {"dezero": [], "raw": []}
    for _ in range(repeat):
        for key, f in (("dezero", per_param), ("raw", raw)):
            comm.barrier()
            samples[key].append(timeit(f, repeat=1, number=number, warmup=1).median)
    results["cases"]["one Allreduce per parameter (6 calls)"] = samples
    results["number"] = number
    return results


def worker_mnist(quick, batch):
    import dezero.functions as F
    from dezero import distributed, optimizers
    from dezero.dataloaders import DataLoader
    from dezero.datasets import MNIST
    from dezero.utils import DownloadError

    comm = distributed.init()
    try:
        data = MNIST(train=True)
        source = "MNIST"
    except (DownloadError, ValueError, OSError):
        data, source = None, "random data (MNIST files not found)"
    if data is None:
        rng = np.random.default_rng(0)
        xs = rng.random((60000, 784), dtype=np.float32)
        ts = rng.integers(0, 10, 60000).astype(np.int32)
        data = list(zip(xs, ts))
    shard = distributed.scatter_dataset(data, comm, shuffle=True, seed=0)
    np.random.seed(comm.rank)  # noqa: NPY002  (dezero draws from the global RNG)
    loader = DataLoader(shard, batch)
    model = _mlp()
    opt = distributed.DistributedOptimizer(optimizers.MomentumSGD(lr=0.1), comm).setup(model)
    state = {"it": iter(loader), "comm": 0.0}

    def step():
        try:
            x, t = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            x, t = next(state["it"])
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        t0 = time.perf_counter()
        comm.allreduce_grads(model)
        state["comm"] += time.perf_counter() - t0
        opt.optimizer.update()

    repeat, iters = (QUICK_REPEAT, QUICK_ITERS) if quick else (REPEAT, ITERS)
    for _ in range(min(iters, 10)):
        step()
    rounds, comm_share = [], []
    for _ in range(repeat):
        comm.barrier()
        state["comm"] = 0.0
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        seconds = time.perf_counter() - t0
        rounds.append(seconds / iters)
        comm_share.append(state["comm"] / seconds)
    return {"step": rounds, "comm_share": comm_share, "source": source, "iters": iters,
            "threads": os.environ.get("OPENBLAS_NUM_THREADS")}


# =============================================================================
# Outside: launch, collect, tabulate
# =============================================================================
def _launch(n, threads, *args):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from dezero.distributed import mpiexec_command

    command = mpiexec_command()
    if command is None:
        raise RuntimeError('no mpiexec found: pip install "dezero-next[mpi]"')
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [*command, "-n", str(n), sys.executable, os.path.abspath(__file__), "--mpi-worker",
         *args], capture_output=True, text=True, timeout=900, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"mpiexec -n {n} failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def run(quick: bool = False, profile: bool = False) -> list:
    q = ["--quick"] if quick else []
    tables = []

    res = _launch(2, 1, "allreduce", *q)
    number = res["number"]
    mb = res["bytes"] / 1e6
    table = Table(f"gradient allreduce, MNIST MLP ({mb:.1f} MB float32), 2 ranks, "
                  f"vs raw mpi4py Allreduce of the same bytes", unit="ms",
                  columns=("dezero", "raw Allreduce"))
    bandwidth = []
    for case, samples in res["cases"].items():
        d, r = _timing(samples["dezero"], number), _timing(samples["raw"], number)
        table.add(case, d, r, scale=1e3)
        bandwidth.append(f"#   {case}: {mb / d.median / 1e3:.2f} GB/s vs raw "
                         f"{mb / r.median / 1e3:.2f} GB/s -> {r.median / d.median:.2f}x "
                         f"the raw bandwidth")
    table.title += "\n# " + res["repr"] + "\n" + "\n".join(bandwidth)
    tables.append(table)

    cores = os.cpu_count() or 2
    two = _launch(2, max(1, cores // 2), "mnist", str(BATCH // 2), *q)
    one = _launch(1, cores, "mnist", str(BATCH), *q)
    alone = _launch(1, max(1, cores // 2), "mnist", str(BATCH // 2), *q)
    table = Table(f"MNIST MLP epoch ({two['source']}; global batch {BATCH}, {STEPS_PER_EPOCH} "
                  f"steps), {cores} cores", unit="s/epoch",
                  columns=("2 ranks", "1 rank"))
    iters = two["iters"]
    t2 = _timing(two["step"], iters)
    t1 = _timing(one["step"], iters)
    ta = _timing(alone["step"], iters)
    table.add(f"2 ranks x {cores // 2} thread(s), batch 50 each  vs  1 rank x {cores} threads, "
              f"batch 100", t2, t1, scale=STEPS_PER_EPOCH)
    table.add(f"1 rank x {cores // 2} thread(s), batch 50 (a rank's compute, no communication)"
              f"  vs  1 rank x {cores} threads, batch 100", ta, t1, scale=STEPS_PER_EPOCH)
    share = float(np.median(two["comm_share"]))
    table.title += (f"\n# allreduce_grads: {100 * share:.1f}% of a 2-rank step "
                    f"({share * t2.median * 1e3:.1f} ms of {t2.median * 1e3:.1f} ms)")
    tables.append(table)
    return tables


def _worker_main(argv):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    quick = "--quick" in argv
    argv = [a for a in argv if a != "--quick"]
    if argv[0] == "allreduce":
        result = worker_allreduce(quick)
    else:
        result = worker_mnist(quick, int(argv[1]))
    from dezero import distributed

    if distributed.init().is_root:
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--mpi-worker":
        _worker_main(sys.argv[2:])
    else:
        bench_main(run, __doc__)
