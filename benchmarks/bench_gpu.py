"""GPU training step: dezero on CuPy vs PyTorch CUDA, milliseconds per iteration.

Cases (float32, SGD, one iteration = forward + backward + update, synchronised):
  - MLP 784-1000-1000-10 (ReLU, softmax cross entropy) at batch 100 and batch 1000
  - the 2-conv MNIST CNN (1->16->32 channels, 3x3 pad 1, ReLU, max-pool 2, linear 10) at
    batch 100

Needs CuPy and a CUDA device (and torch with CUDA for the baseline); with ``--cpu`` it runs
the same code on NumPy / PyTorch CPU as a smoke test. Each framework runs in its own process
(benchmarks/common.py); ``--ab OTHER_TREE`` compares two dezero trees.

    python benchmarks/bench_gpu.py [--quick] [--cpu] [--ab OTHER_TREE]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

try:  # as a script or imported by run.py
    from common import Table, Workload, add_arguments, apply_arguments, compare, print_environment
except ImportError:
    from benchmarks.common import (
        Table,
        Workload,
        add_arguments,
        apply_arguments,
        compare,
        print_environment,
    )

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import cuda, optimizers
from dezero.models import Model


class MLP(Model):
    def __init__(self):
        super().__init__()
        self.l1 = L.Linear(1000, in_size=784)
        self.l2 = L.Linear(1000, in_size=1000)
        self.l3 = L.Linear(10, in_size=1000)

    def forward(self, x):
        return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))


class CNN(Model):
    def __init__(self):
        super().__init__()
        self.c1 = L.Conv2d(16, 3, 1, 1, in_channels=1)
        self.c2 = L.Conv2d(32, 3, 1, 1, in_channels=16)
        self.fc = L.Linear(10, in_size=32 * 7 * 7)

    def forward(self, x):
        h = F.pooling(F.relu(self.c1(x)), 2, 2)
        h = F.pooling(F.relu(self.c2(h)), 2, 2)
        return self.fc(F.reshape(h, (len(h), -1)))


def _data(batch, image, xp):
    rng = np.random.default_rng(0)
    shape = (batch, 1, 28, 28) if image else (batch, 784)
    x = rng.random(shape, dtype=np.float32)
    t = rng.integers(0, 10, batch)
    return xp.asarray(x), xp.asarray(t)


def dezero_step(model_cls, batch, gpu, jit=False):
    """The timed call; with ``jit`` the training step goes through ``dezero.jit`` (on the
    GPU: one CUDA graph launch per step once recorded), and ``step.jit`` is the jitted
    function (for its ``stats()``)."""
    xp = cuda.cupy if gpu else np
    model = model_cls()
    if gpu:
        model.to_gpu()
    opt = optimizers.SGD(lr=0.01).setup(model)
    x, t = _data(batch, model_cls is CNN, xp)

    def train(x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    if jit:
        train = dezero.jit(train)

    def step():
        train(x, t)
        if gpu:
            cuda.cupy.cuda.Device().synchronize()

    step.jit = train if jit else None
    return step


def torch_step(torch, model_name, batch, gpu):
    nn = torch.nn
    device = "cuda" if gpu else "cpu"
    if model_name == "mlp":
        model = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(),
                              nn.Linear(1000, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
                              nn.Conv2d(16, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
                              nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, t = _data(batch, model_name == "cnn", np)
    x = torch.from_numpy(x).to(device)
    t = torch.from_numpy(t).to(device)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(x), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if gpu:
            torch.cuda.synchronize()

    return step


CASES = [("MLP 784-1000-1000-10, batch 100", MLP, "mlp", 100),
         ("MLP 784-1000-1000-10, batch 1000", MLP, "mlp", 1000),
         ("CNN 1-16-32 conv3x3 + pool, batch 100", CNN, "cnn", 100)]


def workload(framework: str, quick: bool = False, gpu: bool = True) -> Workload:
    """Every case's step for one framework: dezero eager and jit, or PyTorch (no cases where
    PyTorch has no CUDA). ``info`` says whether each jitted step runs as a CUDA graph."""
    cases, info = {}, {}
    if framework == "torch":
        import torch

        if gpu and not torch.cuda.is_available():
            return Workload({}, info={"torch": "no CUDA device for torch"})
    for title, cls, tname, batch in CASES:
        if quick:
            batch = min(batch, 32)
        if framework == "torch":
            cases[title] = torch_step(torch, tname, batch, gpu)
            continue
        cases[title] = dezero_step(cls, batch, gpu)
        step = dezero_step(cls, batch, gpu, jit=True)
        for _ in range(3):
            step()
        cases[f"{title}, dezero.jit"] = step
        stats = step.jit.stats()
        info[f"dezero.jit, {title}"] = (f"CUDA graph in use: {stats['gpu_graph']}" + (
            "" if stats["gpu_graph"] else f" ({stats['gpu_graph_reason']})"))
    return Workload(cases, info=info)


def run(quick=False, profile=False, gpu=True):
    if gpu and not cuda.gpu_enable:
        print("bench_gpu: skipped, CuPy with a CUDA device is required (--cpu smoke tests the "
              "same code on the CPU)")
        return []
    device = "GPU" if gpu else "CPU"
    if gpu:
        name = cuda.cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        device = f"GPU: {name}"
    rounds, number = (3, 2) if quick else (7, 20)
    res = compare("bench_gpu", quick=quick, kwargs={"gpu": gpu}, rounds=rounds, number=number,
                  warmup=3)
    table = Table(f"training step, ms per iteration ({device})", unit="ms",
                  columns=res.table("", "ms").columns)
    for title, *_ in CASES:
        res.add_row(table, title, title, scale=1e3)
        res.add_row(table, f"{title}, dezero.jit", f"{title}, dezero.jit", title, scale=1e3)
    for key, value in res.info.items():
        print(f"# {key}: {value}")
    return [table]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    add_arguments(parser)
    parser.add_argument("--cpu", action="store_true", help="smoke test on NumPy / torch CPU")
    args = parser.parse_args(argv)
    apply_arguments(args)
    print_environment()
    print()
    for table in run(quick=args.quick, gpu=not args.cpu):
        table.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
