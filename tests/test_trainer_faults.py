"""The Trainer under faults: Ctrl-C anywhere, failed writes, refused resumes, bad losses.

Each test compares with an uninterrupted run (tests/test_trainer.py's helpers) or checks that
what a refused call touches is exactly as it was.
"""
# ruff: noqa: NPY002  (dezero draws from the global RNG, as the book does; seeding it is the point)

import os
import signal

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import DataLoader, optimizers
from dezero.models import MLP
from dezero.serialization import CheckpointError
from dezero.training import Callback, EarlyStopping, ModelCheckpoint, Trainer
from tests.test_trainer import Net, assert_same_run, build, run_straight, same_rng, spiral_like


def snapshot(trainer):
    """Everything a refused resume must leave alone, as plain values."""
    return {
        "model": {k: v.copy() for k, v in trainer.model.state_dict().items()},
        "optimizer": {k: np.array(v) for k, v in trainer.optimizer.state_dict().items()},
        "trainer": repr({k: v for k, v in trainer.state_dict().items() if k != "rng"}),
        "lr": trainer.optimizer.lr,
        "rng": np.random.get_state()[1].tolist(),
    }


def assert_same_snapshot(a, b):
    assert list(a["model"]) == list(b["model"])
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k], b["model"][k], err_msg=k)
    assert list(a["optimizer"]) == list(b["optimizer"])
    for k in a["optimizer"]:
        np.testing.assert_array_equal(a["optimizer"][k], b["optimizer"][k], err_msg=k)
    assert a["trainer"] == b["trainer"] and a["lr"] == b["lr"] and a["rng"] == b["rng"]


# -----------------------------------------------------------------------------
# Ctrl-C anywhere in fit: save_checkpoint + resume continues bit for bit
# -----------------------------------------------------------------------------
def sigint_in_update(optimizer, at):
    """Ctrl-C (a real SIGINT) arrives inside ``optimizer.update()``, at its ``at``-th
    parameter update in all (the parameters before it are updated, the rest not yet)."""
    calls = [0]
    original = optimizer.update_one_array

    def update_one_array(param, g, h):
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), signal.SIGINT)
        original(param, g, h)

    optimizer.update_one_array = update_one_array


class RaiseIn(Callback):
    """Raise KeyboardInterrupt from inside the model's forward pass at one batch."""

    def __init__(self, at):
        self.at = at

    def on_train_begin(self, trainer):
        model, at = trainer.model, self.at
        forward = type(model).forward

        def interrupted(x):
            if trainer.iteration + 1 == at and dezero.Config.train:  # not in evaluation
                raise KeyboardInterrupt
            return forward(model, x)

        model.forward = interrupted


def _resume_and_compare(tmp_path, first, straight, rng_after, data):
    first.save_checkpoint(tmp_path / "interrupted.ckpt")
    resumed, _ = build(data)
    resumed.fit(4, resume=tmp_path / "interrupted.ckpt")
    assert_same_run(straight, resumed)
    assert same_rng(rng_after)


def test_ctrl_c_inside_update_stops_between_batches_and_resumes_bit_for_bit(tmp_path, capsys):
    data = spiral_like()
    straight, _, rng_after = run_straight(data, 4)
    np.random.seed(3)
    first, _ = build(data, verbose=True)
    sigint_in_update(first.optimizer, 4 * 17 + 2)  # batch 18 (epoch 2), its 2nd parameter
    with pytest.raises(KeyboardInterrupt):
        first.fit(4)
    assert first.iteration == 18 and first.epoch == 1  # the batch in progress was finished
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("interrupted after 1 epoch and batch 6 of epoch 2 (18 updates)")
    assert "save_checkpoint(path), then trainer.fit(4, resume=path)" in out[-1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _resume_and_compare(tmp_path, first, straight, rng_after, data)


@pytest.mark.parametrize("at", [1, 17, 24, 25])  # 12 batches per epoch
def test_an_exception_inside_a_step_does_not_skip_the_batch(tmp_path, at):
    data = spiral_like()
    straight, _, rng_after = run_straight(data, 4)
    np.random.seed(3)
    first, _ = build(data, callbacks=[RaiseIn(at)])
    with pytest.raises(KeyboardInterrupt):
        first.fit(4)
    assert first.iteration == at - 1
    first.callbacks = []
    first.save_checkpoint(tmp_path / "interrupted.ckpt")
    resumed, _ = build(data)
    resumed.fit(4, resume=tmp_path / "interrupted.ckpt")
    assert_same_run(straight, resumed)
    assert same_rng(rng_after)


class RaiseInEvaluation(Callback):
    def on_epoch_begin(self, trainer):
        if trainer.epoch == 1:  # the second evaluation's first batch
            dataset = trainer.val_loader.dataset

            def boom(indices):
                del dataset.get_batch
                raise KeyboardInterrupt

            dataset.get_batch = boom


def test_ctrl_c_during_the_evaluation_resumes_with_the_evaluation(tmp_path):
    data = spiral_like()
    straight, _, rng_after = run_straight(data, 4)
    np.random.seed(3)
    first, _ = build(data, callbacks=[RaiseInEvaluation()])
    with pytest.raises(KeyboardInterrupt):
        first.fit(4)
    assert first.iteration == 24 and first.epoch == 1
    first.callbacks = []
    _resume_and_compare(tmp_path, first, straight, rng_after, data)


# -----------------------------------------------------------------------------
# Refused resumes change nothing
# -----------------------------------------------------------------------------
def _saved(tmp_path, **kw):
    np.random.seed(3)
    trainer, _ = build(spiral_like(), **kw)
    trainer.fit(1)
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    return tmp_path / "t.ckpt"


def _trained_other(**kw):
    np.random.seed(5)
    other, _ = build(spiral_like(), **kw)
    other.fit(2)
    return other


@pytest.mark.parametrize(
    ("make", "words"),
    [
        # another model's checkpoint
        (lambda: _trained_other(model=Net(hidden=9)), r"shape mismatch for 'l1/W'"),
        # the optimizer differs
        (lambda: _trained_other(optimizer="adam"), "belongs to 'MomentumSGD', not 'Adam'"),
        # a loader over another data set
        (lambda: _trained_other_data(), r"train_loader.*saved order has shape \(230,\)"),
        # the callbacks differ
        (lambda: _trained_other(callbacks=[EarlyStopping(monitor="loss")]),
         r"callbacks \[\], this Trainer \['EarlyStopping'\]"),
    ],
    ids=["model", "optimizer", "loader", "callbacks"],
)
def test_a_refused_resume_changes_nothing(tmp_path, make, words):
    path = _saved(tmp_path)
    other = make()
    before = snapshot(other)
    with pytest.raises(CheckpointError, match=words):
        other.fit(3, resume=path)
    assert_same_snapshot(before, snapshot(other))


def _trained_other_data():
    np.random.seed(5)
    other, _ = build(spiral_like(n=180))
    other.fit(2)
    return other


def test_a_mid_epoch_checkpoint_refuses_another_batch_size(tmp_path):
    from tests.test_trainer import StopAt

    np.random.seed(3)
    first, _ = build(spiral_like(), callbacks=[StopAt(5)])
    first.fit(3)
    first.save_checkpoint(tmp_path / "mid.ckpt")
    other, _ = build(spiral_like(), callbacks=[StopAt(-1)], batch_size=40)
    before = snapshot(other)
    with pytest.raises(CheckpointError, match=r"middle of an epoch \(batch 5\) with batch_size "
                                              r"20.*has batch_size 40"):
        other.fit(3, resume=tmp_path / "mid.ckpt")
    assert_same_snapshot(before, snapshot(other))
    # at an epoch's end another batch size is fine
    first.fit(1)
    first.save_checkpoint(tmp_path / "end.ckpt")
    other.fit(2, resume=tmp_path / "end.ckpt")
    assert other.epoch == 2


def test_resuming_with_more_epochs_continues_the_schedule_of_the_new_total(tmp_path):
    data = spiral_like()
    np.random.seed(3)
    short, _ = build(data, epochs_for_schedule=2)
    short.fit(2)
    short.save_checkpoint(tmp_path / "two.ckpt")
    longer, _ = build(data, epochs_for_schedule=4)
    longer.fit(4, resume=tmp_path / "two.ckpt")
    straight, _, _ = run_straight(data, 4, epochs_for_schedule=4)
    assert [h["lr"] for h in longer.history[2:]] == [h["lr"] for h in straight.history[2:]]
    assert longer.history[1]["lr"] < longer.history[2]["lr"]  # not restarted from the top
    assert longer.scheduler.last_step == straight.scheduler.last_step


# -----------------------------------------------------------------------------
# Callbacks and checkpoints after failed writes
# -----------------------------------------------------------------------------
def test_a_failed_checkpoint_write_keeps_the_bookkeeping_true(tmp_path, monkeypatch):
    ckpt = ModelCheckpoint(tmp_path / "ck", keep_last=2, monitor="loss")
    trainer, _ = build(spiral_like(), callbacks=[ckpt])
    trainer.fit(2)
    assert sorted(os.listdir(tmp_path / "ck")) == ["best.ckpt", "epoch-0001.ckpt",
                                                   "epoch-0002.ckpt"]
    state, listing = ckpt.state_dict(), {p: (tmp_path / "ck" / p).read_bytes()
                                         for p in os.listdir(tmp_path / "ck")}
    real_save = Trainer.save_checkpoint

    def disk_full(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Trainer, "save_checkpoint", disk_full)
    with pytest.raises(OSError, match="No space left"):
        trainer.fit(3)
    assert ckpt.state_dict() == state
    assert {p: (tmp_path / "ck" / p).read_bytes() for p in os.listdir(tmp_path / "ck")} == listing
    monkeypatch.setattr(Trainer, "save_checkpoint", real_save)
    trainer.fit(5)
    # no orphan: the oldest files went when their successors were written
    assert sorted(os.listdir(tmp_path / "ck")) == ["best.ckpt", "epoch-0004.ckpt",
                                                   "epoch-0005.ckpt"]
    assert ckpt.saved == ["epoch-0004.ckpt", "epoch-0005.ckpt"]


def test_early_stopping_when_the_first_value_is_nan(capsys):
    from tests.test_trainer import Scripted

    nan = float("nan")
    stop = EarlyStopping(monitor="score", patience=2)
    trainer, _ = build(spiral_like(), callbacks=[Scripted("score", [nan, nan, 1.0, nan, 2.0]),
                                                 stop], verbose=True)
    trainer.fit(5)
    assert trainer.epoch == 2 and stop.best is None
    assert "has not improved for 2 epochs (no finite value yet)" in capsys.readouterr().out
    stop = EarlyStopping(monitor="score", patience=2)
    trainer, _ = build(spiral_like(), callbacks=[Scripted("score", [nan, 3.0, 2.0, nan, nan]),
                                                 stop], verbose=True)
    trainer.fit(5)
    assert trainer.epoch == 5 and stop.best == 2.0
    assert "(best 2 at epoch 3)" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# Checkpoint folders with another model's files
# -----------------------------------------------------------------------------
def test_latest_skips_checkpoints_of_another_model_with_a_warning(tmp_path):
    np.random.seed(0)
    small = MLP((5, 3))
    small(np.zeros((1, 2), np.float32))
    trainer = Trainer(small, optimizers.SGD().setup(small), F.softmax_cross_entropy,
                      DataLoader(list(zip(*spiral_like(40))), 10), verbose=False)
    trainer.fit(1)
    trainer.save_checkpoint(tmp_path / "epoch-0300.ckpt")
    big = MLP((8, 3))
    big(np.zeros((1, 2), np.float32))
    other = Trainer(big, optimizers.SGD().setup(big), F.softmax_cross_entropy,
                    DataLoader(list(zip(*spiral_like(40))), 10), verbose=False)
    other.fit(1)
    other.save_checkpoint(tmp_path / "epoch-0010.ckpt")
    other.save_checkpoint(tmp_path / ModelCheckpoint.checkpoint_name(0, 2))
    (tmp_path / "epoch-0400.ckpt").write_bytes(b"not a checkpoint")
    assert ModelCheckpoint.latest(tmp_path) == str(tmp_path / "epoch-0400.ckpt")
    with pytest.warns(UserWarning) as record:
        assert ModelCheckpoint.latest(tmp_path, big) == str(tmp_path / "epoch-0010.ckpt")
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert "epoch-0400.ckpt" in messages[0] and "cannot be read" in messages[0]
    assert "epoch-0300.ckpt" in messages[1]
    assert "parameter 'l0/W' has shape (2, 5) in the checkpoint but (2, 8)" in messages[1]
    # a lazy model: the shapes of the parameters it already has (the biases)
    lazy = MLP((5, 3))
    assert lazy.l0.W.data is None
    with pytest.warns(UserWarning):
        assert ModelCheckpoint.latest(tmp_path, lazy) == str(tmp_path / "epoch-0300.ckpt")
    # mid-epoch checkpoints sort between the epochs
    names = ["epoch-0001.ckpt", ModelCheckpoint.checkpoint_name(1, 20), "epoch-0002.ckpt"]
    for n in names:
        (tmp_path / "order").mkdir(exist_ok=True)
        (tmp_path / "order" / n).write_bytes(b"")
    assert ModelCheckpoint.latest(tmp_path / "order") == str(tmp_path / "order" / names[2])
    os.remove(tmp_path / "order" / names[2])
    assert ModelCheckpoint.latest(tmp_path / "order") == str(tmp_path / "order" / names[1])


# -----------------------------------------------------------------------------
# Losses and arguments
# -----------------------------------------------------------------------------
def test_a_per_sample_loss_is_refused_at_the_first_batch():
    def per_sample(y, t):
        return F.sum(F.log_softmax(y) * 0, axis=1)

    trainer, _ = build(spiral_like())
    trainer.loss_fn = per_sample
    trainer._train_step = Trainer(trainer.model, trainer.optimizer, per_sample,
                                  trainer.train_loader)._train_step
    with pytest.raises(ValueError, match=r"loss_fn must return the batch's mean loss \(one "
                                         r"number\), got shape \(20,\)"):
        trainer.fit(1)
    assert trainer.iteration == 0 and trainer.optimizer.t == 0
    assert trainer.train_loader.iteration == 0


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda tr: tr.fit(2.5), TypeError, "epochs must be an int"),
        (lambda tr: tr.fit(-1), ValueError, "epochs must be >= 0"),
        (lambda tr: tr.fit(True), TypeError, "epochs must be an int"),
        (lambda tr: tr.evaluate(3), TypeError, "loader must yield batches"),
    ],
)
def test_fit_and_evaluate_arguments(call, error, words):
    trainer, _ = build(spiral_like())
    with pytest.raises(error, match=words):
        call(trainer)
