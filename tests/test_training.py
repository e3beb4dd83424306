"""Training as a whole: exact resume in a new process, checkpoints, no memory growth."""

import gc
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import dezero.functions as F
import dezero.optimizers as O
from dezero.layers import CheckpointError
from dezero.models import MLP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A small classifier on spiral-like data, with shuffling, dropout (both draw from the global
# RNG), a weight-decay hook and a step schedule: everything a resume has to restore.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import dezero.functions as F
    import dezero.layers as L
    import dezero.optimizers as O
    from dezero.models import Sequential

    def spiral(n=40, classes=3):
        rng = np.random.default_rng(123)
        xs, ts = [], []
        for c in range(classes):
            r = np.linspace(0.0, 1.0, n)
            theta = c * 4.0 + 4.0 * r + rng.standard_normal(n) * 0.2
            xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
            ts.append(np.full(n, c))
        return np.concatenate(xs).astype(np.float32), np.concatenate(ts)

    OPTIMIZERS = {
        "Adam": lambda: O.Adam(alpha=0.01),
        "MomentumSGD": lambda: O.MomentumSGD(lr=0.5),
        "AdamW": lambda: O.AdamW(alpha=0.01),
        "AdaGrad": lambda: O.AdaGrad(lr=0.1),
    }

    def run(name, epochs, stop_after, ckpt, out):
        np.random.seed(0)
        x, t = spiral()
        model = Sequential(L.Linear(16), F.relu, L.Dropout(0.1), L.Linear(3))
        opt = OPTIMIZERS[name]().setup(model)
        opt.add_hook(O.WeightDecay(1e-4))
        sched = O.StepLR(opt, step_size=2, gamma=0.7)
        first = 0
        if stop_after == 0:  # resume
            extra = O.load_checkpoint(ckpt, model, opt)
            np.random.set_state(extra["rng"])
            sched.load_state_dict(extra["schedule"])
            first = extra["epoch"]
        for epoch in range(first, epochs):
            index = np.random.permutation(len(x))
            for i in range(0, len(x), 24):
                batch = index[i:i + 24]
                loss = F.softmax_cross_entropy(model(x[batch]), t[batch])
                model.cleargrads()
                loss.backward()
                opt.update()
            sched.step()
            if epoch + 1 == stop_after:
                O.save_checkpoint(ckpt, model, opt, epoch=epoch + 1,
                                  rng=np.random.get_state(), schedule=sched.state_dict())
                return
        model.save_weights(out)

    if __name__ == "__main__":
        mode, folder = sys.argv[1], sys.argv[2]
        for name in OPTIMIZERS:
            ckpt = f"{folder}/{name}.ckpt.npz"
            if mode == "full":
                run(name, 6, -1, None, f"{folder}/{name}.full.npz")
            elif mode == "first":
                run(name, 6, 3, ckpt, None)
            else:
                run(name, 6, 0, ckpt, f"{folder}/{name}.resumed.npz")
    """
)


def run_script(tmp_path, mode):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, str(script), mode, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    run_script(tmp_path, "full")  # unbroken: 6 epochs
    run_script(tmp_path, "first")  # 3 epochs, then a checkpoint; the process ends
    run_script(tmp_path, "resume")  # a new process: load, 3 more epochs
    for name in ("Adam", "MomentumSGD", "AdamW", "AdaGrad"):
        with np.load(tmp_path / f"{name}.full.npz", allow_pickle=False) as a, \
                np.load(tmp_path / f"{name}.resumed.npz", allow_pickle=False) as b, \
                np.load(tmp_path / f"{name}.ckpt.npz", allow_pickle=False) as c:
            assert a.files == b.files and len(a.files) == 4
            for key in a.files:
                assert a[key].dtype == np.float32
                assert np.array_equal(a[key], b[key]), (name, key)
                # and training did move on after the checkpoint
                assert not np.array_equal(a[key], c["model/" + key]), (name, key)


# =============================================================================
# Checkpoint files
# =============================================================================
def small_run(make=O.Adam, steps=2):
    np.random.seed(2)  # noqa: NPY002  (dezero draws weights from the global RNG)
    model = MLP((5, 2))
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    opt = make().setup(model)
    for _ in range(steps):
        model.cleargrads()
        F.sum(model(x) ** 2).backward()
        opt.update()
    return model, opt


def test_checkpoint_round_trip_with_extras(tmp_path):
    model, opt = small_run()
    extras = {
        "epoch": 7, "loss": 0.125, "name": "run-1", "nothing": None, "flag": True,
        "history": [0.5, 0.25], "nested": {"a": (1, 2.5, "x"), "b": [np.arange(3)]},
        "rng": np.random.get_state(),  # noqa: NPY002
        "generator": np.random.default_rng(5).bit_generator.state,
        "array": np.eye(2, dtype=np.float32), "scalar": np.float32(1.5),
    }
    path = tmp_path / "ck.npz"
    O.save_checkpoint(path, model, opt, **extras)
    model2, opt2 = MLP((5, 2)), O.Adam()
    opt2.setup(model2)
    got = O.load_checkpoint(path, model2, opt2)
    for (n, a), (_, b) in zip(model.named_params(), model2.named_params()):
        assert np.array_equal(a.data, b.data), n
    assert opt2.t == opt.t == 2
    assert got["epoch"] == 7 and got["loss"] == 0.125 and got["name"] == "run-1"
    assert got["nothing"] is None and got["flag"] is True and got["history"] == [0.5, 0.25]
    assert got["nested"]["a"] == (1, 2.5, "x")
    np.testing.assert_array_equal(got["nested"]["b"][0], np.arange(3))
    np.testing.assert_array_equal(got["array"], np.eye(2, dtype=np.float32))
    assert got["scalar"] == 1.5
    assert got["generator"] == extras["generator"]
    rng_state = got["rng"]
    assert rng_state[0] == "MT19937" and np.array_equal(rng_state[1], extras["rng"][1])
    assert rng_state[2:] == extras["rng"][2:]
    np.random.set_state(rng_state)  # noqa: NPY002  (accepted as it is)
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_checkpoint_without_optimizer(tmp_path):
    model, _ = small_run()
    O.save_checkpoint(tmp_path / "m.npz", model, epoch=1)
    model2 = MLP((5, 2))
    assert O.load_checkpoint(tmp_path / "m.npz", model2) == {"epoch": 1}
    with pytest.raises(CheckpointError, match=r"m\.npz.*holds no optimizer state"):
        O.load_checkpoint(tmp_path / "m.npz", model2, O.Adam().setup(model2))


def test_checkpoint_mismatch_changes_nothing(tmp_path):
    model, opt = small_run(O.MomentumSGD)
    O.save_checkpoint(tmp_path / "ck.npz", model, opt)
    other, other_opt = small_run(O.MomentumSGD, steps=1)
    before = other.state_dict()
    # the right model but the wrong optimizer: neither is touched
    wrong = O.Adam().setup(other)
    with pytest.raises(CheckpointError, match=r"ck\.npz.*belongs to 'MomentumSGD', not 'Adam'"):
        O.load_checkpoint(tmp_path / "ck.npz", other, wrong)
    after = other.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # a model of another shape
    bigger = MLP((6, 2))
    bigger(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(CheckpointError, match=r"ck\.npz.*shape mismatch for 'l0/W'"):
        O.load_checkpoint(tmp_path / "ck.npz", bigger, O.MomentumSGD().setup(bigger))
    assert other_opt.t == 1


def test_checkpoint_damaged_or_not_a_checkpoint(tmp_path):
    model, opt = small_run()
    path = tmp_path / "ck.npz"
    O.save_checkpoint(path, model, opt, epoch=2)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=r"ck\.npz.*truncated, corrupted"):
        O.load_checkpoint(path, model, opt)
    model.save_weights(tmp_path / "w.npz")
    with pytest.raises(CheckpointError, match=r"w\.npz' is not a dezero checkpoint"):
        O.load_checkpoint(tmp_path / "w.npz", model, opt)
    with pytest.raises(FileNotFoundError):
        O.load_checkpoint(tmp_path / "missing.npz", model, opt)


def test_checkpoint_extra_of_unsupported_type(tmp_path):
    model, opt = small_run()
    with pytest.raises(TypeError, match="checkpoint extra 'fn': cannot store a function"):
        O.save_checkpoint(tmp_path / "ck.npz", model, opt, fn=lambda: 0)
    with pytest.raises(TypeError, match="dict keys must be str"):
        O.save_checkpoint(tmp_path / "ck.npz", model, opt, d={1: 2})
    assert os.listdir(tmp_path) == []


# =============================================================================
# Memory
# =============================================================================
def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_graphs_are_freed_by_reference_counting():
    model = MLP((8, 3))
    opt = O.Adam().setup(model)
    x = np.ones((4, 2), dtype=np.float32)
    t = np.array([0, 1, 2, 0])
    gc.disable()  # no cycle collector: graphs must go away on their own
    try:
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
        refs = [weakref.ref(loss), weakref.ref(loss.creator)]
        h = loss.creator.inputs[0]
        refs.append(weakref.ref(h))
        del loss, h
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_no_memory_growth_over_10000_iterations():
    model = MLP((10, 3))
    opt = O.MomentumSGD(lr=0.1).setup(model)
    opt.add_hook(O.WeightDecay(1e-4))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 2)).astype(np.float32)
    t = rng.integers(0, 3, size=8)
    gc.disable()  # reference cycles would show up as growth
    try:
        for i in range(10_000):
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            opt.update()
            if i == 999:
                after_1000 = rss_mib()
        after_10000 = rss_mib()
    finally:
        gc.enable()
    assert after_10000 - after_1000 < 4.0, (after_1000, after_10000)


@pytest.mark.gpu
def test_checkpoint_resume_on_gpu(tmp_path):
    from dezero import cuda

    cp = cuda.cupy
    x = cp.asarray(np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32))
    t = cp.asarray(np.random.default_rng(1).integers(0, 2, size=16))

    def make():
        cp.random.seed(4)  # the lazy weights are drawn on the GPU, from CuPy's generator
        model = MLP((8, 2)).to_gpu()
        model(x)
        return model, O.Adam(alpha=0.01).setup(model)

    def train(model, opt, steps):
        for _ in range(steps):
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            opt.update()

    model, opt = make()
    train(model, opt, 6)
    model2, opt2 = make()
    train(model2, opt2, 3)
    O.save_checkpoint(tmp_path / "gpu.npz", model2, opt2, step=3)
    assert isinstance(model2.l0.W.data, cp.ndarray)  # saving did not move the model
    model3, opt3 = make()
    assert O.load_checkpoint(tmp_path / "gpu.npz", model3, opt3) == {"step": 3}
    assert isinstance(model3.l0.W.data, cp.ndarray)
    assert all(isinstance(v, cp.ndarray) for s in opt3._state.values() for v in s.values())
    train(model3, opt3, 3)
    for (n, a), (_, b) in zip(model.named_params(), model3.named_params()):
        assert a.data.dtype == np.float32
        cp.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=1e-7, err_msg=n)
