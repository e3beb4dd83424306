"""dezero.training: the Trainer's loop, bit-for-bit resume, callbacks and its output."""
# ruff: noqa: NPY002  (dezero draws from the global RNG, as the book does; seeding it is the point)

import csv
import os

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import DataLoader, optimizers
from dezero.metrics import F1, Accuracy, TopKAccuracy
from dezero.models import MLP, Model
from dezero.serialization import CheckpointError
from dezero.training import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    TensorBoardLogger,
    Trainer,
)


class Recorded:
    """A labelled data set that records the indices of every batch gathered from it."""

    def __init__(self, x, t):
        self.x, self.t = x, t
        self.batches = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.t[i]

    def get_batch(self, indices):
        self.batches.append(np.array(indices))
        return self.x[indices], self.t[indices]


def spiral_like(n=230, dim=2, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    t = (np.abs(x[:, 0] * 3 + x[:, 1]).astype(np.int64) % classes).astype(np.int32)
    return x, t


class Net(Model):
    """Lazy Linear layers and dropout: init draws and per-batch draws from the global RNG."""

    def __init__(self, hidden=16, classes=3):
        super().__init__()
        self.l1 = L.Linear(hidden)
        self.l2 = L.Linear(classes)

    def forward(self, x):
        return self.l2(F.dropout(F.relu(self.l1(x)), 0.2))


def build(data, optimizer="momentum", per="iteration", callbacks=(), batch_size=20,
          epochs_for_schedule=10, model=None, verbose=False):
    """A fresh model, optimizer, scheduler, loaders and Trainer (nothing initialised yet)."""
    train = Recorded(*data)
    val = Recorded(*spiral_like(57, data[0].shape[1], seed=7))
    model = Net() if model is None else model
    opt = (optimizers.MomentumSGD(0.1) if optimizer == "momentum"
           else optimizers.Adam(0.002)).setup(model)
    opt.add_hook(optimizers.WeightDecay(1e-4))
    loader = DataLoader(train, batch_size)  # shuffle on, NumPy's global generator
    steps = epochs_for_schedule * len(loader) if per == "iteration" else epochs_for_schedule
    scheduler = (optimizers.CosineAnnealingLR(opt, T_max=steps) if per == "iteration"
                 else optimizers.StepLR(opt, step_size=2, gamma=0.5))
    val_loader = DataLoader(val, 25, shuffle=False)
    trainer = Trainer(model, opt, F.softmax_cross_entropy, loader, val_loader,
                      metrics=[Accuracy()], callbacks=list(callbacks), scheduler=scheduler,
                      schedule_per=per, verbose=verbose)
    return trainer, train


def strip_time(history):
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


def assert_same_run(a, b):
    """Weights, optimizer state, history (but the times) and the next data order are equal."""
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert list(wa) == list(wb)
    for k in wa:
        assert wa[k].dtype == wb[k].dtype
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    oa, ob = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert list(oa) == list(ob)
    for k in oa:
        np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    assert strip_time(a.history) == strip_time(b.history)
    np.testing.assert_array_equal(a.train_loader.index, b.train_loader.index)
    assert a.iteration == b.iteration and a.epoch == b.epoch


def run_straight(data, epochs, **kw):
    np.random.seed(3)
    trainer, train = build(data, **kw)
    trainer.fit(epochs)
    return trainer, train, np.random.get_state()


def same_rng(state):
    now = np.random.get_state()
    return now[1].tolist() == state[1].tolist() and now[2] == state[2]


@pytest.mark.parametrize("per", ["iteration", "epoch"])
def test_five_plus_five_epochs_equal_ten_bit_for_bit(tmp_path, per):
    data = spiral_like()
    straight, seen, rng_after = run_straight(data, 10, per=per)

    np.random.seed(3)
    first, _ = build(data, per=per)
    first.fit(5)
    path = tmp_path / "after5.anything"
    first.save_checkpoint(path)
    assert os.path.exists(path)  # exactly the path given, whatever its extension

    np.random.seed(12345)  # the resume must not depend on the RNG state before it
    resumed, seen2 = build(data, per=per)  # a fresh model: parameters not initialised yet
    assert resumed.model.l1.W.data is None
    history = resumed.fit(10, resume=path)
    assert [h["epoch"] for h in history] == list(range(1, 11))
    assert_same_run(straight, resumed)
    assert same_rng(rng_after)
    # the data order of epochs 6-10, batch by batch (the validation batches are not shuffled)
    tail = seen.batches[-len(seen2.batches):]
    assert len(seen2.batches) == 5 * len(straight.train_loader)
    for a, b in zip(tail, seen2.batches):
        np.testing.assert_array_equal(a, b)


def test_fit_again_continues_the_count():
    data = spiral_like()
    straight, _, _ = run_straight(data, 6)
    np.random.seed(3)
    trainer, _ = build(data)
    trainer.fit(2)
    trainer.fit(6)
    assert_same_run(straight, trainer)
    assert trainer.fit(6) is trainer.history and len(trainer.history) == 6  # nothing to do


class StopAt(Callback):
    def __init__(self, iteration):
        self.at = iteration

    def on_batch_end(self, trainer, loss):
        if trainer.iteration == self.at:
            trainer.stop_training = True


@pytest.mark.parametrize("stop_at", [37, 48])  # 12 batches per epoch: mid-epoch and the end
def test_resume_in_mid_epoch_is_bit_identical(tmp_path, stop_at):
    data = spiral_like()
    straight, _, rng_after = run_straight(data, 10, callbacks=[StopAt(-1)])

    np.random.seed(3)
    first, _ = build(data, callbacks=[StopAt(stop_at)])
    history = first.fit(10)
    assert first.iteration == stop_at and len(history) == (stop_at - 1) // 12
    first.save_checkpoint(tmp_path / "mid.ckpt")
    rng_at_stop = np.random.get_state()

    resumed, _ = build(data, callbacks=[StopAt(-1)])
    resumed.fit(10, resume=tmp_path / "mid.ckpt")
    assert_same_run(straight, resumed)
    assert same_rng(rng_after)

    np.random.set_state(rng_at_stop)  # as if nothing had run in between
    first.fit(10)  # the same Trainer also finishes the epoch it left
    assert_same_run(straight, first)


def test_resume_into_an_eagerly_initialised_model(tmp_path):
    """Init draws made while building the model do not leak into the resumed run."""
    data = spiral_like()

    def eager():
        m = Net()
        m.l1 = L.Linear(16, in_size=2)  # draws from the RNG at construction
        return m

    np.random.seed(3)
    straight, _ = build(data, model=eager())
    straight.fit(4)
    np.random.seed(3)
    first, _ = build(data, model=eager())
    first.fit(2)
    first.save_checkpoint(tmp_path / "c")
    resumed, _ = build(data, model=eager())
    resumed.fit(4, resume=tmp_path / "c")
    assert_same_run(straight, resumed)


def test_resume_float32_mnist_sized_data(tmp_path):
    """784 float32 features, 10 classes (a small MNIST subset when the files are there)."""
    from dezero.datasets import MNIST

    try:
        mnist = MNIST(train=True)
        x, t = mnist.get_batch(np.arange(500))
    except Exception:  # no MNIST files here: data of the same size and dtype
        rng = np.random.default_rng(0)
        x = rng.random((500, 784), dtype=np.float32)
        t = rng.integers(0, 10, 500).astype(np.int32)
    assert x.dtype == np.float32 and x.shape == (500, 784)

    def make():
        return MLP((64, 10), activation=F.relu)

    np.random.seed(3)
    straight, _ = build((x, t), optimizer="adam", per="epoch", batch_size=64, model=make())
    straight.val_loader = None
    straight.fit(4)
    np.random.seed(3)
    first, _ = build((x, t), optimizer="adam", per="epoch", batch_size=64, model=make())
    first.val_loader = None
    first.fit(2)
    first.save_checkpoint(tmp_path / "mnist.ckpt")
    resumed, _ = build((x, t), optimizer="adam", per="epoch", batch_size=64, model=make())
    resumed.val_loader = None
    resumed.fit(4, resume=tmp_path / "mnist.ckpt")
    assert resumed.model.l0.W.dtype == np.float32
    assert_same_run(straight, resumed)


def test_resume_errors_name_the_problem(tmp_path):
    data = spiral_like()
    trainer, _ = build(data)
    trainer.fit(1)
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    other, _ = build(data, callbacks=[EarlyStopping(patience=1)])
    with pytest.raises(CheckpointError, match=r"callbacks \[\], this Trainer \[.EarlyStopping.\]"):
        other.fit(2, resume=tmp_path / "t.ckpt")
    plain = tmp_path / "plain.npz"
    optimizers.save_checkpoint(plain, trainer.model, trainer.optimizer, epoch=1)
    with pytest.raises(CheckpointError, match="without a Trainer's state"):
        build(data)[0].fit(2, resume=plain)
    with pytest.raises(FileNotFoundError):
        build(data)[0].fit(2, resume=tmp_path / "missing.ckpt")


# -----------------------------------------------------------------------------
# output
# -----------------------------------------------------------------------------
def test_non_tty_output_is_one_line_per_epoch(capsys):
    trainer, _ = build(spiral_like(), verbose=True)
    trainer.fit(4)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {i}/4  loss ")
        assert " acc " in line and " val_loss " in line and " val_acc " in line
        assert line.endswith(" s)")
    assert "\r" not in "".join(lines)


def test_progress_bar_on_a_terminal(capsys):
    pytest.importorskip("tqdm")
    trainer, _ = build(spiral_like(), verbose=True)
    trainer.progress = True
    trainer.fit(1)
    captured = capsys.readouterr()
    assert "batch" in captured.err  # tqdm writes its bar to stderr
    assert captured.out.count("\n") == 1


def test_history_values_and_schedule_per_epoch():
    trainer, _ = build(spiral_like(), per="epoch")
    history = trainer.fit(4)
    assert [h["lr"] for h in history] == [0.1, 0.1, 0.05, 0.05]  # StepLR(2, 0.5) per epoch
    assert [h["iteration"] for h in history] == [12, 24, 36, 48]
    for h in history:
        assert set(h) == {"epoch", "iteration", "loss", "acc", "val_loss", "val_acc", "lr",
                          "time"}
    assert history[-1]["val_loss"] == trainer.evaluate(trainer.val_loader)["loss"]


def test_evaluate_records_no_graph_and_runs_in_test_mode():
    seen = {}

    class Probe(Model):
        def __init__(self):
            super().__init__()
            self.l = L.Linear(3)

        def forward(self, x):
            seen["train"] = dezero.Config.train
            seen["backprop"] = dezero.Config.enable_backprop
            return self.l(x)

    model = Probe()
    trainer = Trainer(model, optimizers.SGD().setup(model), F.softmax_cross_entropy,
                      DataLoader(list(zip(*spiral_like(10))), 5), verbose=False)
    result = trainer.evaluate(DataLoader(list(zip(*spiral_like(10))), 5, shuffle=False))
    assert seen == {"train": False, "backprop": False}
    assert set(result) == {"loss"}


# -----------------------------------------------------------------------------
# callbacks
# -----------------------------------------------------------------------------
class Scripted(Callback):
    """Puts a chosen value per epoch into the logs (before the checkpoint writers run)."""

    def __init__(self, key, values):
        self.key, self.values = key, values

    def on_epoch_end(self, trainer, logs):
        logs[self.key] = self.values[logs["epoch"] - 1]


def test_early_stopping_patience_and_mode():
    scores = [0.5, 0.6, 0.55, 0.58, 0.6, 0.59, 0.9]
    stop = EarlyStopping(monitor="score", patience=3)
    assert stop.mode == "min"
    stop = EarlyStopping(monitor="val_acc", patience=3)
    assert stop.mode == "max"
    stop = EarlyStopping(monitor="score", mode="max", patience=3, min_delta=0.0)
    trainer, _ = build(spiral_like(), callbacks=[Scripted("score", scores), stop])
    history = trainer.fit(7)
    # best 0.6 at epoch 2; 0.55, 0.58, 0.6 (not better) -> stop after epoch 5
    assert len(history) == 5 and trainer.epoch == 5
    assert stop.stopped_epoch == 5 and stop.best == 0.6 and stop.wait == 3
    with pytest.raises(KeyError, match=r"monitor 'nope' is not among the values"):
        build(spiral_like(), callbacks=[EarlyStopping("nope")])[0].fit(1)
    with pytest.raises(ValueError, match="mode must be"):
        EarlyStopping(mode="up")


def test_early_stopping_min_delta_and_message(capsys):
    stop = EarlyStopping(monitor="score", mode="min", patience=2, min_delta=0.1)
    trainer, _ = build(spiral_like(), callbacks=[Scripted("score", [1.0, 0.95, 0.8, 0.85, 0.75]),
                                                 stop], verbose=True)
    trainer.fit(5)
    # 0.95 is not 0.1 better than 1.0; 0.8 is; 0.85 and 0.75 are not -> stop after epoch 5
    assert trainer.epoch == 5 and stop.stopped_epoch == 5 and stop.best == 0.8
    assert "early stopping: score has not improved for 2 epochs (best 0.8 at epoch 3)" in (
        capsys.readouterr().out)


def test_model_checkpoint_keeps_last_n_and_the_best(tmp_path):
    scores = [0.2, 0.7, 0.4, 0.9, 0.3, 0.5]
    ckpt = ModelCheckpoint(tmp_path / "ck", keep_last=2, monitor="score", mode="max")
    trainer, _ = build(spiral_like(), callbacks=[ckpt, Scripted("score", scores)])
    trainer.fit(6)
    assert sorted(os.listdir(tmp_path / "ck")) == ["best.ckpt", "epoch-0005.ckpt",
                                                   "epoch-0006.ckpt"]
    assert ckpt.saved == ["epoch-0005.ckpt", "epoch-0006.ckpt"]
    assert ckpt.best_path == str(tmp_path / "ck" / "best.ckpt")
    assert ModelCheckpoint.latest(tmp_path / "ck") == str(tmp_path / "ck" / "epoch-0006.ckpt")
    assert ModelCheckpoint.latest(tmp_path / "none") is None

    # best.ckpt is the state after epoch 4 (score 0.9), and resumes from there
    again, _ = build(spiral_like(), callbacks=[ModelCheckpoint(tmp_path / "ck2", monitor="score",
                                                               mode="max"),
                                               Scripted("score", scores)])
    again.load_checkpoint(tmp_path / "ck" / "best.ckpt")
    assert again.epoch == 4 and [h["score"] for h in again.history] == scores[:4]
    # the checkpoint of epoch 6 holds the other callbacks' state after epoch 6
    last, _ = build(spiral_like(), callbacks=[ModelCheckpoint(tmp_path / "ck3", monitor="score",
                                                              mode="max"),
                                              Scripted("score", scores)])
    last.load_checkpoint(tmp_path / "ck" / "epoch-0006.ckpt")
    assert last.history[-1]["score"] == 0.5 and last.callbacks[1].saved == ckpt.saved


def test_model_checkpoint_writes_atomically(tmp_path, monkeypatch):
    trainer, _ = build(spiral_like(), callbacks=[ModelCheckpoint(tmp_path, keep_last=1,
                                                                 monitor=None)])
    trainer.fit(1)
    before = (tmp_path / "epoch-0001.ckpt").read_bytes()
    import zipfile

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", broken)
    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(tmp_path / "epoch-0001.ckpt")
    assert (tmp_path / "epoch-0001.ckpt").read_bytes() == before
    assert os.listdir(tmp_path) == ["epoch-0001.ckpt"]  # no temporary file left behind


def test_csv_logger_content(tmp_path):
    path = tmp_path / "log" / "history.csv"
    trainer, _ = build(spiral_like(), callbacks=[CSVLogger(path)])
    history = trainer.fit(3)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "iteration", "loss", "acc", "val_loss", "val_acc", "lr", "time"]
    assert len(rows) == 4
    for row, h in zip(rows[1:], history):
        assert int(row[0]) == h["epoch"] and int(row[1]) == h["iteration"]
        assert [float(v) for v in row[2:]] == [h[k] for k in rows[0][2:]]  # exact round trip


def test_csv_logger_after_resume_holds_the_run_history(tmp_path):
    data = spiral_like()
    np.random.seed(3)
    first, _ = build(data, callbacks=[CSVLogger(tmp_path / "h.csv")])
    first.fit(2)
    first.save_checkpoint(tmp_path / "c")
    first.fit(4)  # rows 3 and 4 of the abandoned run
    resumed, _ = build(data, callbacks=[CSVLogger(tmp_path / "h.csv")])
    resumed.fit(3, resume=tmp_path / "c")
    with open(tmp_path / "h.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["loss"]) for r in rows] == [h["loss"] for h in resumed.history]


def test_tensorboard_events_read_back(tmp_path):
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    trainer, _ = build(spiral_like(), callbacks=[TensorBoardLogger(tmp_path / "tb")])
    history = trainer.fit(3)
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"),
                                             size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"loss", "acc", "val_loss", "val_acc", "lr"} <= set(tags["scalars"])
    for key in ("loss", "val_acc", "lr"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2, 3]
        np.testing.assert_allclose([e.value for e in events], [h[key] for h in history],
                                   rtol=1e-6)  # stored as float32
    assert {"params/l1/W", "params/l2/b", "grads/l1/W"} <= set(tags["histograms"])
    hist = acc.Histograms("params/l1/W")
    assert [h.step for h in hist] == [1, 2, 3]
    W = trainer.model.l1.W.data
    assert hist[-1].histogram_value.num == W.size
    assert hist[-1].histogram_value.min == pytest.approx(float(W.min()), rel=1e-6)
    assert hist[-1].histogram_value.max == pytest.approx(float(W.max()), rel=1e-6)


def test_tensorboard_missing_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboardx(name, *args, **kwargs):
        if name.startswith("tensorboardX"):
            raise ImportError("No module named 'tensorboardX'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboardx)
    with pytest.raises(ImportError, match=r'pip install "dezero-next\[tensorboard\]"'):
        TensorBoardLogger("runs")


def test_curve_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from dezero.training import CurvePlot

    trainer, _ = build(spiral_like(), callbacks=[CurvePlot(tmp_path / "curves.png", title="t")])
    trainer.fit(2)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_names_must_differ_and_functions_become_means():
    model = Net()
    opt = optimizers.SGD().setup(model)
    loader = DataLoader(list(zip(*spiral_like(10))), 5)
    with pytest.raises(ValueError, match=r"two metrics share the name\(s\) \['acc'\]"):
        Trainer(model, opt, F.softmax_cross_entropy, loader, metrics=[Accuracy(), Accuracy()])
    trainer = Trainer(model, opt, F.softmax_cross_entropy, loader,
                      metrics=[F.accuracy, TopKAccuracy(2), F1()], verbose=False)
    assert [m.name for m in trainer.metrics] == ["accuracy", "top2_acc", "f1"]
    with pytest.raises(TypeError, match="callbacks must be"):
        Trainer(model, opt, F.softmax_cross_entropy, loader, callbacks=[print])


class FakeComm:
    """Two ranks' worth of sums: allreduce doubles every running sum, as two equal ranks."""

    def __init__(self, rank):
        self.rank, self.size = rank, 2

    def allreduce(self, array, op="sum"):
        assert op == "sum"
        return np.asarray(array) * 2


def test_comm_rank_zero_writes_and_metrics_are_summed(tmp_path, capsys):
    data = spiral_like()
    for rank in (0, 1):
        np.random.seed(3)
        trainer, _ = build(data, callbacks=[CSVLogger(tmp_path / f"r{rank}.csv")],
                           verbose=True)
        trainer.comm, trainer.is_root = FakeComm(rank), rank == 0
        trainer.fit(1)
        trainer.save_checkpoint(tmp_path / f"r{rank}.ckpt")
        out = capsys.readouterr().out
        assert (out.count("\n"), (tmp_path / f"r{rank}.csv").exists(),
                (tmp_path / f"r{rank}.ckpt").exists()) == ((1, True, True) if rank == 0
                                                           else (0, False, False))
    # summed counts and totals give the same means as one rank's
    np.random.seed(3)
    single, _ = build(data)
    single.fit(1)
    assert strip_time(single.history) == strip_time(trainer.history)


@pytest.mark.gpu
def test_resume_on_the_gpu_at_an_epoch_boundary(tmp_path):
    """CuPy's generator has no state to save: the Trainer reseeds it per epoch from a saved base."""
    from dezero import cuda

    cp = cuda.cupy
    data = spiral_like()

    def make():
        trainer, _ = build(data)
        trainer.model.to_gpu()
        trainer.train_loader.to_gpu()
        trainer.val_loader.to_gpu()
        return trainer

    np.random.seed(3)
    cp.random.seed(3)
    straight = make()
    straight.fit(4)
    assert isinstance(straight.model.l1.W.data, cp.ndarray)
    np.random.seed(3)
    cp.random.seed(3)
    first = make()
    first.fit(2)
    first.save_checkpoint(tmp_path / "gpu.ckpt")
    np.random.seed(99)
    cp.random.seed(99)
    resumed = make()
    resumed.fit(4, resume=tmp_path / "gpu.ckpt")
    assert isinstance(resumed.model.l1.W.data, cp.ndarray)
    assert_same_run(straight, resumed)


def test_evaluate_runs_in_test_mode_and_leaves_the_layers_modes_alone():
    model = Net()
    model.l2.eval()  # e.g. a frozen part of a model
    trainer = Trainer(model, optimizers.SGD().setup(model), F.softmax_cross_entropy,
                      DataLoader(list(zip(*spiral_like(10))), 5), verbose=False)
    trainer.fit(1)
    with dezero.test_mode():
        expected = F.softmax_cross_entropy(model(spiral_like(10)[0]), spiral_like(10)[1])
    result = trainer.evaluate(DataLoader(list(zip(*spiral_like(10))), 10, shuffle=False))
    assert result["loss"] == pytest.approx(float(expected.data), rel=1e-6)
    assert model.training and model.l1.training and not model.l2.training
