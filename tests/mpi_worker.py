"""The programs that tests/test_distributed.py runs under ``mpiexec``.

    mpiexec -n 2 python tests/mpi_worker.py suite OUT.json [CHECKPOINT]
    mpiexec -n 2 python tests/mpi_worker.py fault
    mpiexec -n 2 python tests/mpi_worker.py hang

``suite`` runs every scenario in one launch (MPI start-up costs more than the scenarios)
and rank 0 writes the results as JSON; the test computes the single-process references by
importing this module. ``fault`` raises on rank 1 in the middle of training; ``hang``
blocks both ranks inside MPI until the test sends Ctrl-C.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import dezero.functions as F  # noqa: E402
import dezero.layers as L  # noqa: E402
from dezero import Model, cuda, distributed, optimizers  # noqa: E402

STEPS, BATCH = 20, 12  # BATCH divides evenly over 1, 2 and 3 ranks
IN, HIDDEN, OUT = 5, 7, 3
INIT_SEED = 100  # rank r draws its initial weights from seed INIT_SEED + r

OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(lr=0.1),
    "momentum": lambda: optimizers.MomentumSGD(lr=0.05, momentum=0.9),
    "adam": lambda: optimizers.Adam(alpha=0.01),
}
# name -> (optimizer, with WeightDecay + ClipGrad, cosine schedule, bucket size in bytes)
SCENARIOS = {
    "sgd": ("sgd", False, False, None),
    "sgd+wd+clip": ("sgd", True, False, None),
    "momentum": ("momentum", False, False, None),
    "momentum+wd+clip+cosine": ("momentum", True, True, None),
    "adam": ("adam", False, False, None),
    "adam+wd+clip": ("adam", True, False, None),
    "adam, 64-byte buckets": ("adam", False, False, 64),
}
RESUME_SCENARIO = "adam+wd+clip"


class Net(Model):
    """A small float64 MLP (optionally with BatchNorm), all sizes given: no lazy init."""

    def __init__(self, batchnorm=False, out=OUT, dtype=np.float64):
        super().__init__()
        self.l1 = L.Linear(HIDDEN, in_size=IN, dtype=dtype)
        if batchnorm:
            self.bn = L.BatchNorm()
        self.l2 = L.Linear(out, in_size=HIDDEN, dtype=np.float64)

    def forward(self, x):
        h = self.l1(x)
        if hasattr(self, "bn"):
            h = self.bn(h)
        return self.l2(F.tanh(h))


def seed(value):
    np.random.seed(value)  # noqa: NPY002  (dezero draws initial weights from the global RNG)


def data(steps=STEPS):
    rng = np.random.RandomState(123)
    return rng.randn(steps * BATCH, IN), rng.randint(0, OUT, steps * BATCH)


def local_batch(x, t, step, comm):
    """Global batch ``step``; this rank's contiguous share of it when ``comm`` is given."""
    lo = step * BATCH
    xb, tb = x[lo:lo + BATCH], t[lo:lo + BATCH]
    if comm is None:
        return xb, tb
    k = BATCH // comm.size
    return xb[comm.rank * k:(comm.rank + 1) * k], tb[comm.rank * k:(comm.rank + 1) * k]


def train(name, comm=None, start=0, steps=STEPS, resume=None, gpu=False):
    """Train scenario ``name`` (on ``comm``'s share of every global batch, or alone)."""
    opt_name, hooks, cosine, bucket = SCENARIOS[name]
    seed(INIT_SEED + (comm.rank if comm is not None else 0))
    model = Net()
    if gpu:
        model.to_gpu()
    opt = OPTIMIZERS[opt_name]()
    if comm is not None:
        opt = distributed.DistributedOptimizer(opt, comm)
    opt.setup(model)
    if hooks:
        opt.add_hook(optimizers.WeightDecay(1e-3))
        opt.add_hook(optimizers.ClipGrad(0.5))  # small enough to clip on most steps
    schedule = optimizers.CosineAnnealingLR(opt, T_max=2 * STEPS) if cosine else None
    if resume is not None:
        extra = optimizers.load_checkpoint(resume, model, opt)
        if schedule is not None:
            schedule.load_state_dict(extra["schedule"])
    x, t = data(start + steps)
    saved = None
    if comm is not None and bucket is not None:
        saved, comm.bucket_size = comm.bucket_size, bucket
    try:
        for step in range(start, start + steps):
            xb, tb = local_batch(x, t, step, comm)
            if gpu:
                xb, tb = cuda.as_cupy(xb), cuda.as_cupy(tb)
            loss = F.softmax_cross_entropy(model(xb), tb)
            model.cleargrads()
            loss.backward()
            opt.update()
            if schedule is not None:
                schedule.step()
    finally:
        if saved is not None:
            comm.bucket_size = saved
    return model, opt


def flat(model):
    return {n: cuda.as_numpy(p.data).ravel().tolist() for n, p in model.named_params()}


def spread(comm, model):
    """Largest difference of any parameter between this rank and rank 0 (on every rank)."""
    mine = np.concatenate([p.data.ravel() for p in model.params()])
    root = comm.bcast(mine if comm.is_root else None)
    return comm.mpi_comm.allreduce(float(np.abs(mine - root).max()), op=max_op())


def max_op():
    from mpi4py import MPI

    return MPI.MAX


# --- scenarios beyond equivalence ---------------------------------------------------
class Branchy(Model):
    def __init__(self):
        super().__init__()
        self.l1 = L.Linear(3, in_size=4, dtype=np.float32)
        self.extra = L.Linear(3, in_size=4, dtype=np.float64)  # used on rank 1 only
        self.never = L.Linear(3, in_size=4, dtype=np.float64)  # used on no rank

    use_extra = False

    def forward(self, x):
        y = self.l1(x.astype(np.float32))
        if self.use_extra:
            y = y + self.extra(x)
        return y


def unused_branches(comm):
    """A branch used on one rank only, another on none: no deadlock, right averages."""
    seed(INIT_SEED + comm.rank)
    model = Branchy()
    model.use_extra = comm.rank == 1
    opt = distributed.DistributedOptimizer(optimizers.MomentumSGD(lr=0.1), comm).setup(model)
    never_before = model.never.W.data.copy()
    x = np.random.RandomState(7 + comm.rank).randn(4, 4)
    out = {"mean_error": 0.0, "dtypes_kept": True, "never_grad_none": True}
    for _ in range(3):
        loss = F.sum(model(x) ** 2)
        model.cleargrads()
        loss.backward()
        local = {n: (np.zeros_like(p.data) if p.grad is None else p.grad.data.copy())
                 for n, p in model.named_params()}
        expected = {n: comm.allreduce(g, op="mean") for n, g in local.items()}
        comm.allreduce_grads(model)
        for n, p in model.named_params():
            if n.startswith("never"):
                out["never_grad_none"] &= p.grad is None
                continue
            error = np.abs(p.grad.data - expected[n]) / np.maximum(1, np.abs(expected[n]))
            out["mean_error"] = max(out["mean_error"], float(error.max()))
            out["dtypes_kept"] &= p.grad.data.dtype == p.data.dtype
        opt.optimizer.update()  # grads are averaged already
    loss = F.sum(model(x) ** 2)
    model.cleargrads()
    loss.backward()
    opt.update()  # the whole path once more, through DistributedOptimizer
    out["spread"] = spread(comm, model)
    out["never_unchanged"] = bool(np.array_equal(model.never.W.data, comm.bcast(never_before)))
    return out


def lazy_init(comm):
    """Lazily created parameters are broadcast at the first update: ranks end identical."""
    seed(INIT_SEED + comm.rank)
    from dezero.models import MLP

    model = MLP((6, 3), dtype=np.float64)
    opt = distributed.DistributedOptimizer(optimizers.SGD(lr=0.1), comm).setup(model)
    x, t = data()
    for step in range(3):
        xb, tb = local_batch(x, t, step, comm)
        loss = F.softmax_cross_entropy(model(xb), tb)
        model.cleargrads()
        loss.backward()
        opt.update()
    return spread(comm, model)


def mismatches(comm):
    """setup() on models that differ on rank 1: the error each rank raises."""
    cases = {
        "shape": lambda: Net(out=OUT + 1),
        "dtype": lambda: Net(dtype=np.float32),
        "name": lambda: Net(batchnorm=True),
    }
    messages = {}
    for case, other in cases.items():
        model = other() if comm.rank == 1 else Net()
        try:
            distributed.DistributedOptimizer(optimizers.SGD(), comm).setup(model)
            messages[case] = None
        except ValueError as e:
            messages[case] = str(e)
        # every rank must have raised the same error
        assert comm.mpi_comm.allgather(messages[case]) == [messages[case]] * comm.size
    return messages


def batchnorm(comm):
    """BatchNorm: per-rank batch statistics; rank r's running statistics are its own."""
    seed(INIT_SEED + comm.rank)
    model = Net(batchnorm=True)
    opt = distributed.DistributedOptimizer(optimizers.SGD(lr=0.1), comm).setup(model)
    x, t = data()
    for step in range(5):
        xb, tb = local_batch(x, t, step, comm)
        loss = F.softmax_cross_entropy(model(xb), tb)
        model.cleargrads()
        loss.backward()
        opt.update()
    stats = comm.mpi_comm.allgather([model.bn.avg_mean.tolist(), model.bn.avg_var.tolist()])
    return {"params": flat(model), "stats": stats, "spread": spread(comm, model)}


def batchnorm_reference(size, steps=5):
    """What ``batchnorm`` computes, in one process: ``size`` replicas, averaged gradients."""

    class Fake:
        def __init__(self, rank):
            self.rank, self.size = rank, size

    seed(INIT_SEED)
    first = Net(batchnorm=True)
    replicas = [first]
    for _ in range(size - 1):
        replica = Net(batchnorm=True)
        for (_, p), (_, q) in zip(replica.named_params(), first.named_params()):
            p.data = None if q.data is None else q.data.copy()
        replicas.append(replica)
    opts = [optimizers.SGD(lr=0.1).setup(m) for m in replicas]
    x, t = data()
    for step in range(steps):
        grads = []
        for r, model in enumerate(replicas):
            xb, tb = local_batch(x, t, step, Fake(r))
            loss = F.softmax_cross_entropy(model(xb), tb)
            model.cleargrads()
            loss.backward()
            grads.append([p.grad.data for p in model.params()])
        mean = [sum(gs) / size for gs in zip(*grads)]
        for model, opt in zip(replicas, opts):
            for p, g in zip(model.params(), mean):
                p.grad.data = g.copy()
            opt.update()
    stats = [[m.bn.avg_mean.tolist(), m.bn.avg_var.tolist()] for m in replicas]
    return flat(first), stats


def scatter(comm):
    out = {}
    for n in (10, 12):
        for shuffle in (False, True):
            shard = distributed.scatter_dataset(np.arange(n) * 10, comm, shuffle=shuffle, seed=3)
            got = [int(shard[i]) for i in range(len(shard))]
            out[f"{n}/{shuffle}"] = comm.mpi_comm.allgather(got)
    return out


LOADER_N, LOADER_B, LOADER_SEED = 23, 6, 5


def loader_epochs(comm):
    """Two epochs of DistributedDataLoader: the global batches (the ranks' parts joined),
    its state after 1 epoch + 2 batches, and whether a fresh loader resumes from it."""
    data = [(10 * i, i) for i in range(LOADER_N)]
    loader = distributed.DistributedDataLoader(data, LOADER_B, comm, seed=LOADER_SEED)
    batches, state, rest = [], None, []
    for epoch in range(2):
        for i, (x, _) in enumerate(loader):
            parts = comm.mpi_comm.allgather(x.tolist())
            batches.append([v for part in parts for v in part])
            if epoch == 1 and i == 1:
                state = loader.state_dict()
            elif state is not None:
                rest.append(x.tolist())
    twin = distributed.DistributedDataLoader(data, LOADER_B, comm, seed=LOADER_SEED + 1)
    twin.load_state_dict(state)
    resumed = [x.tolist() for x, _ in twin]
    return {"batches": batches, "resumed_equal": resumed == rest and len(rest) > 0,
            "state": {"index": state["index"].tolist(), "iteration": state["iteration"],
                      "rng": repr(state["rng"])}}


def trainer_run(comm=None, jit=False):
    """Two epochs of the Trainer (AdamW, WeightDecay + ClipGrad, a cosine schedule) on the
    global batches of 12 samples (each rank its share), through dezero.jit or not."""
    from dezero.dataloaders import DataLoader
    from dezero.training import Trainer

    seed(INIT_SEED + (comm.rank if comm is not None else 0))
    model = Net()
    opt = optimizers.AdamW(0.01)
    if comm is not None:
        opt = distributed.DistributedOptimizer(opt, comm)
    opt.setup(model)
    opt.add_hook(optimizers.WeightDecay(1e-3))
    opt.add_hook(optimizers.ClipGrad(0.5))
    x, t = data(4)
    pairs = list(zip(x, t))
    loader = (DataLoader(pairs, BATCH, rng=LOADER_SEED) if comm is None
              else distributed.DistributedDataLoader(pairs, BATCH, comm, seed=LOADER_SEED))
    trainer = Trainer(model, opt, F.softmax_cross_entropy, loader, comm=comm, verbose=False,
                      progress=False, jit=jit, scheduler=optimizers.CosineAnnealingLR(opt, 8))
    trainer.fit(2)
    return model, trainer.jit_stats


def suite(path, checkpoint):
    comm = distributed.init()
    results = {"size": comm.size, "repr": repr(comm), "scenarios": {}, "spread": {}}
    for name in SCENARIOS:
        model, _ = train(name, comm)
        results["scenarios"][name] = flat(model)
        results["spread"][name] = spread(comm, model)
    if checkpoint:
        model, _ = train(RESUME_SCENARIO, comm, start=STEPS // 2, steps=STEPS // 2,
                         resume=checkpoint)
        results["resume"] = flat(model)
    results["unused"] = unused_branches(comm)
    results["lazy_spread"] = lazy_init(comm)
    results["mismatch"] = mismatches(comm)
    results["batchnorm"] = batchnorm(comm)
    results["scatter"] = scatter(comm)
    results["loader"] = loader_epochs(comm)
    eager, _ = trainer_run(comm)
    jitted, stats = trainer_run(comm, jit=True)
    results["trainer"] = {"eager": flat(eager), "jit": flat(jitted), "stats": stats,
                          "spread": spread(comm, jitted)}
    if comm.is_root:
        with open(path, "w") as f:
            json.dump(results, f)
    comm.barrier()


GPU_SCENARIOS = ("sgd+wd+clip", "momentum+wd+clip+cosine")


def gpu(path):
    """The ranks on the GPU (sharing one when there is one): training and allreduce."""
    comm = distributed.init()
    results = {"repr": repr(comm), "transport": comm.gpu_transport, "scenarios": {}}
    for name in GPU_SCENARIOS:
        model, _ = train(name, comm, gpu=True)
        results["scenarios"][name] = flat(model)
    x = cuda.cupy.arange(3, dtype=np.float32) * (comm.rank + 1)
    y = comm.allreduce(x, op="mean")
    results["allreduce"] = [type(y).__module__.split(".")[0], y.dtype.name,
                            cuda.as_numpy(y).tolist(), cuda.as_numpy(x).tolist()]
    if comm.is_root:
        with open(path, "w") as f:
            json.dump(results, f)
    comm.barrier()


def fault():
    comm = distributed.init()
    seed(INIT_SEED + comm.rank)
    model = Net()
    opt = distributed.DistributedOptimizer(optimizers.SGD(lr=0.1), comm).setup(model)
    x, t = data()
    for step in range(STEPS):
        if comm.rank == 1 and step == 3:
            raise RuntimeError("injected failure on rank 1 at step 3")
        xb, tb = local_batch(x, t, step, comm)
        loss = F.softmax_cross_entropy(model(xb), tb)
        model.cleargrads()
        loss.backward()
        opt.update()  # rank 0 waits here for rank 1, which is gone
    time.sleep(60)  # never reached on rank 0: the abort ends it first


def hang():
    comm = distributed.init()
    print(f"rank {comm.rank} blocking", flush=True)
    if comm.rank == 0:
        comm.mpi_comm.recv(source=1, tag=7)  # both ranks wait inside MPI, forever
    else:
        comm.mpi_comm.recv(source=0, tag=7)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "suite":
        suite(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None)
    elif mode == "gpu":
        gpu(sys.argv[2])
    elif mode == "fault":
        fault()
    elif mode == "hang":
        hang()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
