"""MNIST training: seconds per epoch and peak memory, dezero vs PyTorch CPU.

The whole training loop of examples/mnist.py: MLP 784-1000-1000-10 with ReLU, softmax cross
entropy, MomentumSGD (lr 0.1, momentum 0.9), batches of 100 drawn from the 60,000 real
MNIST training images (uint8, flattened and scaled to [0, 1] per batch), the loss read back
every step. dezero uses its own DataLoader, MNIST dataset and model; PyTorch CPU runs the
same loop with nn.Linear/ReLU, ``cross_entropy`` and ``torch.optim.SGD`` on the same uint8
arrays. Each framework runs in its own process (benchmarks/common.py), so that its peak
resident memory above its memory after the imports (data, model, optimizer state,
training) is measured alone.

After 20 warm-up steps, ``REPEAT`` rounds of ``ITERS`` training steps are timed, the two
frameworks' rounds alternating; seconds per epoch = median round x (600 / ``ITERS``).
Without the MNIST files (and no network) it runs on random data of MNIST's shape and says so.

    python benchmarks/bench_mnist.py [--quick] [--profile] [--threads N] [--ab OTHER_TREE]
"""

from __future__ import annotations

import os

import numpy as np

try:  # as a script (python benchmarks/bench_mnist.py) or imported by run.py
    from common import Table, Workload, bench_main, compare, profile_call
except ImportError:  # imported as benchmarks.bench_mnist
    from benchmarks.common import Table, Workload, bench_main, compare, profile_call

BATCH = 100
ITERS, REPEAT = 200, 5  # 1,000 timed steps (1.7 epochs) per framework
QUICK_ITERS, QUICK_REPEAT, QUICK_LIMIT = 3, 2, 1000
STEPS_PER_EPOCH = 60000 // BATCH


def _load_data(limit=None):
    """(images uint8 (N, 1, 28, 28), labels int32 (N,), source) from dezero's MNIST reader.

    A quick run (``limit`` set) never downloads: it uses the files only if already present.
    """
    from dezero.datasets import MNIST
    from dezero.utils import DownloadError, get_cache_dir

    present = all(os.path.exists(os.path.join(get_cache_dir(), f)) for f in MNIST.train_files)
    try:
        if limit and not present:
            raise FileNotFoundError("quick run: no download")
        ds = MNIST(train=True)
        images, labels, source = ds.data[:limit], ds.label[:limit], "MNIST"
    except (DownloadError, ValueError, OSError):
        n = limit or 60000
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.int32)
        source = "random data (MNIST files not found)"
    return images, labels, source


# --- dezero ------------------------------------------------------------------------------
def make_dezero(limit=None):
    """A closure running one training step per call, and the data source."""
    import dezero.functions as F
    from dezero import optimizers, transforms
    from dezero.dataloaders import DataLoader
    from dezero.datasets import Dataset
    from dezero.models import MLP

    images, labels, source = _load_data(limit)

    class Arrays(Dataset):  # the arrays loaded above, with MNIST's default transform
        def prepare(self):
            self.data, self.label = images, labels

    train_set = Arrays(transform=transforms.Compose(
        [transforms.Flatten(), transforms.ToFloat(), transforms.Normalize(0.0, 255.0)]
    ))
    np.random.seed(0)  # noqa: NPY002  (dezero draws from the global RNG)
    loader = DataLoader(train_set, BATCH)
    model = MLP((1000, 1000, 10), activation=F.relu)
    optimizer = optimizers.MomentumSGD(lr=0.1, momentum=0.9).setup(model)
    state = {"it": iter(loader)}

    def step():
        try:
            x, t = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            x, t = next(state["it"])
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        return float(loss.data)

    return step, source


# --- torch ---------------------------------------------------------------------------------
def make_torch(torch, limit=None):
    images, labels, source = _load_data(limit)
    images = torch.from_numpy(images.reshape(len(images), -1))
    labels = torch.from_numpy(labels.astype(np.int64))
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = {"order": torch.randperm(len(images)), "pos": 0}

    def step():
        if state["pos"] + BATCH > len(images):
            state["order"], state["pos"] = torch.randperm(len(images)), 0
        idx = state["order"][state["pos"] : state["pos"] + BATCH]
        state["pos"] += BATCH
        x = images[idx].float().div_(255.0)
        loss = torch.nn.functional.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.item())

    return step, source


# --- the benchmark ---------------------------------------------------------------------------
STEP = "training step"


def workload(framework: str, quick: bool = False) -> Workload:
    limit = QUICK_LIMIT if quick else None
    if framework == "torch":
        import torch

        step, source = make_torch(torch, limit)
    else:
        step, source = make_dezero(limit)
    for _ in range(20 if not quick else 2):  # first allocations, BLAS threads
        loss = step()
    if not np.isfinite(loss):
        raise RuntimeError(f"{framework} diverged: loss {loss}")
    return Workload({STEP: step}, info={"source": source})


def run(quick: bool = False, profile: bool = False) -> list[Table]:
    iters, repeat = (QUICK_ITERS, QUICK_REPEAT) if quick else (ITERS, REPEAT)
    res = compare("bench_mnist", quick=quick, rounds=repeat, number=iters, warmup=0)
    source = res.info.get("source", "?")
    time_table = res.table(f"MNIST MLP 784-1000-1000-10, batch {BATCH}, MomentumSGD "
                           f"({source}; {repeat} rounds of {iters} steps)", unit="s/epoch",
                           scale=STEPS_PER_EPOCH, labels={STEP: "training epoch"})
    rss_table = res.rss_table("peak resident memory of the training process")
    if profile:
        step, _ = make_dezero(QUICK_LIMIT if quick else None)
        step()
        profile_call(step, calls=5 if quick else 20, title="dezero MNIST training step")
    return [time_table, rss_table]


if __name__ == "__main__":
    bench_main(run, __doc__)
