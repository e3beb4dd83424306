"""dezero.distributed: data-parallel training over MPI.

The multi-rank tests launch ``mpiexec -n 2`` and ``-n 3`` on tests/mpi_worker.py, which runs
all its scenarios in one launch per world size (MPI start-up dominates), and compare with
single-process training computed here from the same code. Every launch has a timeout and
the tests check that no process is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from dezero import distributed, optimizers
from tests import mpi_worker as W

WORKER = str(Path(W.__file__).resolve())
LAUNCH_TIMEOUT = 180  # seconds: a shared 2-core machine can be slow to start 3 ranks


# =============================================================================
# Launching mpiexec
# =============================================================================
def _mpiexec() -> list[str]:
    """The mpiexec command: the one beside this Python (the mpich wheel), else on PATH."""
    pytest.importorskip("mpi4py", reason="dezero.distributed needs mpi4py (dezero-next[mpi])")
    command = distributed.mpiexec_command()
    if command is None:
        pytest.skip("no mpiexec beside the Python executable or on PATH")
    return command


def _pids_with(token: str) -> list[int]:
    """Processes whose environment holds ``token`` (everything one launch started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if token.encode() in environ:
            pids.append(int(entry.name))
    return pids


def _assert_nothing_left(token: str) -> None:
    deadline = time.monotonic() + 10
    while _pids_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _pids_with(token)
    for pid in left:  # do not leave them running, whatever the verdict
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind by mpiexec: {left}"


class Launch:
    """``mpiexec -n N python tests/mpi_worker.py ARGS`` in its own session, output read
    line by line in a thread."""

    def __init__(self, n: int, *args: str, script: str = WORKER, env: dict | None = None):
        self.token = f"dezero-test-{uuid.uuid4().hex}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "PYTHONUNBUFFERED": "1", "DEZERO_TEST_LAUNCH": self.token, **(env or {})}
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            [*_mpiexec(), "-n", str(n), sys.executable, script, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.output.count(text) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                pytest.fail(f"never saw {count} x {text!r}; output:\n{self.output}")
            time.sleep(0.05)

    def wait(self, timeout: float = LAUNCH_TIMEOUT) -> tuple[int, float]:
        """(exit status, seconds since launch); kills the whole session on timeout."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"mpiexec did not finish within {timeout} s; output:\n{self.output}")
        elapsed = time.monotonic() - self.start
        self.reader.join(timeout=10)
        _assert_nothing_left(self.token)
        return rc, elapsed

    def kill(self):
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        _assert_nothing_left(self.token)


# =============================================================================
# One launch per world size, shared by the tests below
# =============================================================================
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Single-process training of the resume scenario, stopped half-way and saved."""
    np.random.seed(0)  # noqa: NPY002
    model, opt = W.train(W.RESUME_SCENARIO, steps=W.STEPS // 2)
    path = tmp_path_factory.mktemp("dist") / "half.npz"
    optimizers.save_checkpoint(path, model, opt, step=W.STEPS // 2)
    return path


@pytest.fixture(scope="module", params=[2, 3], ids=["2 ranks", "3 ranks"])
def results(request, tmp_path_factory, checkpoint):
    out = tmp_path_factory.mktemp("dist") / f"results{request.param}.json"
    launch = Launch(request.param, "suite", str(out), str(checkpoint))
    rc, _ = launch.wait()
    assert rc == 0, launch.output
    with open(out) as f:
        return json.load(f)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(np.array(a[k]) - np.array(b[k])).max()) for k in a)


@pytest.mark.parametrize("name", list(W.SCENARIOS))
def test_equals_single_process_training(results, name):
    """N ranks on their shares of the global batches == 1 process on the global batches
    (float64, 20 steps, ranks seeded differently: rank 0's weights are broadcast)."""
    reference, _ = W.train(name)
    assert _max_diff(results["scenarios"][name], W.flat(reference)) < 1e-9
    assert results["spread"][name] == 0.0  # every rank holds the very same parameters


def test_trainer_with_jit_under_mpiexec_equals_eager_and_one_process(results):
    """Trainer(jit=True, comm=...): the replayed steps (the optimizer's update with its
    gradient averaging runs as it does eagerly) equal the eager ranks bit for bit, and one
    process on the global batches within 1e-9 (float64)."""
    got = results["trainer"]
    assert got["jit"] == got["eager"]
    assert got["stats"]["replays"] > 0 and got["spread"] == 0.0
    reference, _ = W.trainer_run()
    assert _max_diff(got["jit"], W.flat(reference)) < 1e-9


def test_resume_from_a_single_process_checkpoint(results, checkpoint):
    """A checkpoint written by 1 process resumes on 2 or 3 ranks to the same result."""
    reference, _ = W.train(W.RESUME_SCENARIO, start=W.STEPS // 2, steps=W.STEPS // 2,
                           resume=checkpoint)
    assert _max_diff(results["resume"], W.flat(reference)) < 1e-9


def test_parameters_unused_on_some_ranks(results):
    unused = results["unused"]
    # zeros stand in for the missing gradients (float32 sums may round in another order)
    assert unused["mean_error"] < 1e-6
    assert unused["dtypes_kept"]  # the float32 layer reduces in float32, float64 in float64
    assert unused["never_grad_none"]  # unused everywhere: grad stays None, as in 1 process
    assert unused["never_unchanged"]
    assert unused["spread"] == 0.0


def test_lazy_parameters_are_broadcast_at_the_first_update(results):
    assert results["lazy_spread"] == 0.0


def test_setup_names_the_parameter_that_differs(results):
    messages = results["mismatch"]
    assert messages["shape"] == (
        "DistributedOptimizer.setup: parameter 'l2/W' differs across ranks: rank 0 has "
        "shape (7, 3) float64, rank 1 has shape (7, 4) float64"
    )
    assert messages["dtype"] == (
        "DistributedOptimizer.setup: parameter 'l1/W' differs across ranks: rank 0 has "
        "shape (5, 7) float64, rank 1 has shape (5, 7) float32"
    )
    assert messages["name"] == (
        "DistributedOptimizer.setup: parameter 'bn/gamma' exists on rank 1 but not on rank 0"
    )


def test_batchnorm_keeps_per_rank_statistics(results):
    """Each rank normalises with its own share's statistics; the gradients are averaged."""
    size = results["size"]
    params, stats = W.batchnorm_reference(size)
    got = results["batchnorm"]
    assert _max_diff(got["params"], params) < 1e-9
    assert got["spread"] == 0.0
    for r in range(size):
        np.testing.assert_allclose(got["stats"][r], stats[r], rtol=0, atol=1e-9)
    assert not np.allclose(got["stats"][0][0], got["stats"][1][0])  # per rank, not synced


def test_scatter_dataset_shards(results):
    size = results["size"]
    for key, shards in results["scatter"].items():
        n = int(key.split("/")[0])
        data = set(range(0, 10 * n, 10))
        assert len({len(s) for s in shards}) == 1  # equal lengths: same number of steps
        assert len(shards[0]) == -(-n // size)
        assert set().union(*map(set, shards)) == data  # they cover the data set
        if n % size == 0:  # disjoint when the length divides evenly
            assert sum(len(s) for s in shards) == n
        else:  # a few samples of the order are repeated to even the shards
            assert sum(len(s) for s in shards) - n == size - n % size
    assert results["scatter"]["12/True"][0] != results["scatter"]["12/False"][0]


def test_distributed_data_loader_splits_global_batches(results):
    """The ranks' parts of every batch make up the global batch one process would see; the
    state (saved mid-epoch) is the same on any number of ranks, and resumes."""
    comm = distributed.init()  # a world of one, in this process
    ref = W.loader_epochs(comm)
    got = results["loader"]
    assert got["batches"] == ref["batches"]
    assert len(got["batches"]) == 2 * 4  # 23 samples in global batches of 6: 6, 6, 6, 5
    assert got["state"] == ref["state"]
    assert got["resumed_equal"] and ref["resumed_equal"]


def test_repr_shows_size_and_transport(results):
    assert results["repr"].startswith(f"Communicator(rank=0, size={results['size']}, ")
    assert "gpu='none'" in results["repr"]


@pytest.mark.gpu
def test_two_ranks_on_the_gpu(tmp_path):
    """2 ranks on the GPU(s): one GPU shared, staged through host memory (NCCL needs a GPU
    per rank), the same training as one process on the CPU."""
    from dezero import cuda

    out = tmp_path / "gpu.json"
    launch = Launch(2, "gpu", str(out))
    rc, _ = launch.wait()
    assert rc == 0, launch.output
    with open(out) as f:
        res = json.load(f)
    own_gpus = cuda.cupy.cuda.runtime.getDeviceCount() >= 2 and cuda.get_nccl() is not None
    if own_gpus:
        assert res["transport"] == "nccl" and "NCCL" in res["repr"], res["repr"]
    else:
        assert res["transport"] == "host", res["repr"]
        assert "device 0, staged through host memory over MPI" in res["repr"]
    for name in W.GPU_SCENARIOS:
        reference, _ = W.train(name)
        assert _max_diff(res["scenarios"][name], W.flat(reference)) < 1e-7, name
    assert res["allreduce"] == ["cupy", "float32", [0.0, 1.5, 3.0], [0.0, 1.0, 2.0]]


# =============================================================================
# Faults
# =============================================================================
def test_an_exception_on_one_rank_ends_the_job():
    launch = Launch(2, "fault")
    rc, elapsed = launch.wait(timeout=60)
    out = launch.output
    assert rc != 0, out
    assert elapsed < 30, f"took {elapsed:.1f} s:\n{out}"
    assert "rank 1 of 2 raised RuntimeError: aborting all ranks" in out, out
    assert "[rank 1] RuntimeError: injected failure on rank 1 at step 3" in out, out


def test_ctrl_c_ends_a_job_blocked_in_mpi():
    launch = Launch(2, "hang")
    launch.wait_for("blocking", 2, timeout=LAUNCH_TIMEOUT)
    time.sleep(0.3)  # let both ranks enter the blocking receive
    launch.proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does to mpiexec
    rc, _ = launch.wait(timeout=30)
    assert rc != 0, launch.output
    assert "interrupted (Ctrl-C) while blocked; aborting all ranks" in launch.output, (
        launch.output)


# =============================================================================
# A world of one, in this process (no mpiexec)
# =============================================================================
def test_size_one_world_without_mpiexec():
    pytest.importorskip("mpi4py")
    comm = distributed.init()
    assert (comm.rank, comm.size, comm.local_rank, comm.is_root) == (0, 1, 0, True)
    assert distributed.init() is comm
    comm.barrier()
    assert comm.bcast({"a": 1}) == {"a": 1}
    x = np.array([1.5, 2.5], dtype=np.float32)
    for op in ("sum", "mean"):
        y = comm.allreduce(x, op=op)
        assert y.dtype == np.float32 and y is not x
        np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(comm.allreduce(np.arange(3), op="mean"), [0.0, 1.0, 2.0])
    for name in ("adam+wd+clip", "momentum+wd+clip+cosine"):
        model, opt = W.train(name, comm)
        reference, _ = W.train(name)
        assert _max_diff(W.flat(model), W.flat(reference)) == 0.0
        assert isinstance(opt, distributed.DistributedOptimizer)


def test_errors_name_the_problem():
    pytest.importorskip("mpi4py")
    comm = distributed.init()
    with pytest.raises(ValueError, match=r"op must be 'sum' or 'mean', got 'max'"):
        comm.allreduce(np.ones(2), op="max")
    with pytest.raises(ValueError, match=r"root must be a rank in 0..0, got 1"):
        comm.bcast(1, root=1)
    with pytest.raises(ValueError, match=r"bucket_size must be a positive number of bytes"):
        comm.bucket_size = 0
    with pytest.raises(TypeError, match=r"DistributedOptimizer wraps a dezero Optimizer, got"):
        distributed.DistributedOptimizer(object(), comm)
    inner = distributed.DistributedOptimizer(optimizers.SGD(), comm)
    with pytest.raises(TypeError, match=r"already a DistributedOptimizer"):
        distributed.DistributedOptimizer(inner, comm)
    with pytest.raises(RuntimeError, match=r"call optimizer.setup\(model\)"):
        inner.update()
    with pytest.raises(ValueError, match=r"scatter_dataset: the data set is empty"):
        distributed.scatter_dataset([], comm)


def test_optimizer_interface_is_forwarded():
    pytest.importorskip("mpi4py")
    comm = distributed.init()
    opt = distributed.DistributedOptimizer(optimizers.MomentumSGD(lr=0.1), comm)
    model = W.Net()
    opt.setup(model)
    schedule = optimizers.StepLR(opt, step_size=1, gamma=0.5)
    schedule.step()
    assert opt.optimizer.lr == 0.05 and opt.lr == 0.05
    inner = optimizers.ClipGrad(1.0)
    wrapped = distributed.DistributedOptimizer(_with_hook(inner), comm)
    opt.add_hook(optimizers.WeightDecay(0.1))
    hooks = opt.optimizer.hooks  # the averaging first, then the hooks added through it
    assert [type(h).__name__ for h in hooks] == ["GradientAveraging", "WeightDecay"]
    # averaging runs before hooks added before wrapping too
    assert [type(h).__name__ for h in wrapped.optimizer.hooks] == ["GradientAveraging",
                                                                   "ClipGrad"]
    assert isinstance(wrapped, distributed.DistributedOptimizer)
    with pytest.raises(TypeError, match="already a DistributedOptimizer"):
        distributed.DistributedOptimizer(wrapped, comm)
    with pytest.raises(TypeError, match="already a DistributedOptimizer"):
        distributed.DistributedOptimizer(wrapped.optimizer, comm)
    assert opt.target is model and "MomentumSGD" in repr(opt)


def _with_hook(hook):
    opt = optimizers.SGD()
    opt.add_hook(hook)
    return opt


def test_gradient_buckets_respect_the_size():
    pytest.importorskip("mpi4py")
    comm = distributed.init()
    model = W.Net()  # l1/W 5x7, l1/b 7, l2/W 7x3, l2/b 3 in float64
    named = list(model.named_params())
    old = comm.bucket_size
    try:
        comm.bucket_size = 8 * 30  # 30 float64 numbers
        layout = comm._layout(named)
        sizes = [[e[2] for e in b.entries] for b in layout.buckets]
        assert sizes == [[35], [7, 21], [3]]  # a parameter larger than a bucket gets its own
        assert all(b.buffer.dtype == np.float64 for b in layout.buckets)
        assert comm._layout(named) is layout  # reused across steps
    finally:
        comm.bucket_size = old


def test_distributed_data_loader_errors():
    pytest.importorskip("mpi4py")
    comm = distributed.init()
    loader = distributed.DistributedDataLoader([(i, i) for i in range(5)], 2, comm)
    with pytest.raises(ValueError, match=r"the saved order has shape \(3,\).*expected \(5,\)"):
        loader.load_state_dict({"index": np.arange(3), "iteration": 0, "rng": None})
    with pytest.raises(ValueError, match=r"position 9 is outside an epoch of 3 batches"):
        loader.load_state_dict({"index": np.arange(5), "iteration": 9, "rng": None})
    with pytest.raises(ValueError, match=r"missing keys \['rng'\]"):
        loader.load_state_dict({"index": np.arange(5), "iteration": 0})
    loader.load_state_dict({"index": np.array([4, 3, 2, 1, 0]), "iteration": 1, "rng": None})
    assert [x.tolist() for x, _ in loader] == [[2, 1], [0]]  # the rest of that epoch


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(ImportError, match=r'pip install "dezero-next\[mpi\]"'):
        distributed._import_mpi()


@pytest.mark.slow
def test_benchmark_runs_quick():
    _mpiexec()
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_distributed.py"
    proc = subprocess.run([sys.executable, str(bench), "--quick"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "raw Allreduce (ms)" in proc.stdout and "the raw bandwidth" in proc.stdout
    assert "| 2 ranks x " in proc.stdout and "allreduce_grads:" in proc.stdout


def _test_accuracies(out_dir: Path) -> list:
    with open(out_dir / "history.json") as f:
        saved = json.load(f)
    if isinstance(saved.get("history"), list):  # the Trainer's history: one dict per epoch
        return [h["val_acc"] for h in saved["history"]]
    return saved["test_acc"]


@pytest.mark.slow
def test_mnist_example_distributed(tmp_path):
    """examples/mnist.py --distributed: 2 and 3 ranks train on the same global batches as
    one process does, to the same accuracy; only rank 0 prints and writes; a checkpoint
    resumes on another number of ranks."""
    mnist = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    data_dir = os.environ.get("DEZERO_DATA_DIR", str(mnist))
    if not os.path.exists(os.path.join(data_dir, "train-images-idx3-ubyte.gz")):
        pytest.skip("the MNIST files are not here")
    script = str(Path(__file__).resolve().parent.parent / "examples" / "mnist.py")
    flags = ["--distributed", "--limit", "1200", "--batch-size", "60", "--no-progress",
             "--data-dir", data_dir, "--schedule", "none"]

    def run(n, out, *extra):
        if n == 1:  # a world of one, without mpiexec
            proc = subprocess.run([sys.executable, script, *flags, *extra, "--out", str(out)],
                                  capture_output=True, text=True, timeout=600, check=False,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc.stdout
        launch = Launch(n, *flags, *extra, "--out", str(out), script=script)
        rc, _ = launch.wait()
        assert rc == 0, launch.output
        assert launch.output.count("final test accuracy") == 1, launch.output  # rank 0 only
        assert f"Communicator(rank=0, size={n}" in launch.output
        return launch.output

    run(1, tmp_path / "one", "--epochs", "2")
    reference = _test_accuracies(tmp_path / "one")
    for n in (2, 3):
        run(n, tmp_path / f"n{n}", "--epochs", "2")
        got = _test_accuracies(tmp_path / f"n{n}")
        np.testing.assert_allclose(got, reference, atol=2e-3)  # float32 sums in another order
    # 1 epoch on 3 ranks, resumed on 2 ranks for the second: as 2 epochs in one process
    run(3, tmp_path / "resumed", "--epochs", "1")
    output = run(2, tmp_path / "resumed", "--epochs", "2", "--resume")
    assert "resuming from" in output
    np.testing.assert_allclose(_test_accuracies(tmp_path / "resumed"), reference, atol=2e-3)
