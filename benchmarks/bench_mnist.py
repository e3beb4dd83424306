"""MNIST training: seconds per epoch and peak memory, dezero vs PyTorch CPU.

The whole training loop of examples/mnist.py: MLP 784-1000-1000-10 with ReLU, softmax cross
entropy, MomentumSGD (lr 0.1, momentum 0.9), batches of 100 drawn from the 60,000 real
MNIST training images (uint8, flattened and scaled to [0, 1] per batch), the loss read back
every step. dezero uses its own DataLoader, MNIST dataset and model; PyTorch CPU runs the
same loop with nn.Linear/ReLU, ``cross_entropy`` and ``torch.optim.SGD`` on the same uint8
arrays. Each framework runs in its own subprocess, so that its peak resident memory
(VmHWM: interpreter, libraries, data, model, optimizer state, training) is measured
alone.

After 20 warm-up steps, ``REPEAT`` rounds of ``ITERS`` training steps are timed, the two
frameworks' rounds alternating; seconds per epoch = median round x (600 / ``ITERS``).
Without the MNIST files (and no network) it runs on random data of MNIST's shape and says so.

    python benchmarks/bench_mnist.py [--quick] [--profile] [--threads N]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

try:  # as a script (python benchmarks/bench_mnist.py) or imported by run.py
    from common import Table, Timing, bench_main, profile_call, torch_or_none
except ImportError:  # imported as benchmarks.bench_mnist
    from benchmarks.common import Table, Timing, bench_main, profile_call, torch_or_none

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


def _peak_rss_bytes():
    """This process's peak resident memory, in bytes.

    On Linux from VmHWM in /proc/self/status: ``ru_maxrss`` would also count the parent's
    memory at fork time, since Linux carries it across exec.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


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


# --- one framework per process -------------------------------------------------------------
def worker(framework, iters, limit, threads):
    """Run in a subprocess, driven through stdin/stdout (one JSON object per line).

    Prints ``{"ready": source}`` after loading and warming up; then each ``round`` line runs
    ``iters`` steps and prints ``{"seconds": s}``; ``done`` prints the peak RSS and the last
    loss and exits.
    """
    import gc
    import time

    if framework == "torch":
        torch = torch_or_none(threads)
        step, source = make_torch(torch, limit)
    else:
        step, source = make_dezero(limit)
    loss = float("nan")
    for _ in range(min(iters, 20)):  # warm-up: first allocations, lazy init, BLAS threads
        loss = step()
    print(json.dumps({"ready": source}), flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(iters):
            loss = step()
        print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
    print(json.dumps({"peak_rss": _peak_rss_bytes(), "loss": loss}), flush=True)


class _Worker:
    def __init__(self, framework, iters, limit, threads):
        self.framework = framework
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework,
               str(iters), str(limit or 0), str(threads or 0)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.source = self._read()["ready"]
        self.samples = []

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc.wait()
            raise RuntimeError(f"the {self.framework} worker failed:\n{err}")
        return json.loads(line)

    def round(self):
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        self.samples.append(self._read()["seconds"])

    def finish(self):
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        result = self._read()
        self.proc.wait()
        if not np.isfinite(result["loss"]):
            raise RuntimeError(f"{self.framework} diverged: loss {result['loss']}")
        return result


def _timing(samples, scale=1.0):
    """A common.Timing (median and IQR, as common.timeit computes them) of ``samples``."""
    import statistics

    samples = [s * scale for s in samples]
    if len(samples) >= 2:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = q3 = samples[0]
    return Timing(statistics.median(samples), q3 - q1, len(samples), 1, samples)


def run(quick: bool = False, profile: bool = False) -> list[Table]:
    iters, repeat = (QUICK_ITERS, QUICK_REPEAT) if quick else (ITERS, REPEAT)
    limit = QUICK_LIMIT if quick else None
    torch = torch_or_none()
    threads = torch.get_num_threads() if torch is not None else None
    # Both workers load and warm up first; then their rounds alternate, so that a change in
    # the machine's load during the run affects both frameworks alike.
    workers = [_Worker("dezero", iters, limit, threads)]
    if torch is not None:
        workers.append(_Worker("torch", iters, limit, threads))
    try:
        for _ in range(repeat):
            for w in workers:
                w.round()
        results = [w.finish() for w in workers]
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
    dz = {**results[0], "samples": workers[0].samples, "source": workers[0].source}
    th = None
    if torch is not None:
        th = {**results[1], "samples": workers[1].samples}

    per_epoch = STEPS_PER_EPOCH / iters
    time_table = Table(f"MNIST MLP 784-1000-1000-10, batch {BATCH}, MomentumSGD "
                       f"({dz['source']}; {repeat} rounds of {iters} steps)", unit="s/epoch")
    time_table.add("training epoch", _timing(dz["samples"], per_epoch),
                   None if th is None else _timing(th["samples"], per_epoch), scale=1.0)
    rss_table = Table("peak resident memory of the training process", unit="MiB")
    rss_table.add("peak RSS", Timing(dz["peak_rss"], 0.0, 1, 1),
                  None if th is None else Timing(th["peak_rss"], 0.0, 1, 1),
                  scale=1.0 / 2**20)
    if profile:
        step, _ = make_dezero(limit)
        step()
        profile_call(step, calls=5 if quick else 20, title="dezero MNIST training step")
    return [time_table, rss_table]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        name, n_iters, n_limit, n_threads = sys.argv[2:6]
        worker(name, int(n_iters), int(n_limit) or None, int(n_threads) or None)
    else:
        sys.exit(bench_main(run, __doc__))
