"""dezero.training: the Trainer, its checkpoints and the callbacks."""

import numpy as np

import dezero.functions as F
from dezero import DataLoader, optimizers
from dezero.metrics import Accuracy
from dezero.models import MLP
from dezero.serialization import CheckpointError, save_checkpoint
from dezero.training import (
    Callback,
    CSVLogger,
    CurvePlot,
    EarlyStopping,
    ModelCheckpoint,
    TensorBoardLogger,
    Trainer,
)
from tests.errdb.base import rows

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 2)).astype(np.float32)
T = (X[:, 0] > 0).astype(np.int32) + (X[:, 1] > 0)
PAIRS = list(zip(X, T))


def _trainer(ctx, hidden=5, callbacks=(), batch=10, data=PAIRS, **kw):
    np.random.seed(0)  # noqa: NPY002  (dezero draws initial weights from it)
    model = MLP((hidden, 3))
    opt = optimizers.MomentumSGD(0.1).setup(model)
    sched = optimizers.CosineAnnealingLR(opt, T_max=20)
    return Trainer(model, opt, F.softmax_cross_entropy, DataLoader(data, batch),
                   DataLoader(data, 20, shuffle=False), metrics=[Accuracy()],
                   callbacks=list(callbacks), scheduler=sched, verbose=False, **kw)


def _trained(ctx):
    """A trained Trainer (ctx.trainer) and its checkpoint; ctx.other: another run to resume."""
    ctx.early, ctx.ckpt = EarlyStopping(monitor="val_loss"), ModelCheckpoint(
        ctx.tmp / "ck", keep_last=1, monitor="val_loss")
    ctx.trainer = _trainer(ctx, callbacks=[ctx.early, ctx.ckpt])
    ctx.trainer.fit(2)
    ctx.trainer.save_checkpoint(ctx.tmp / "run.ckpt")
    save_checkpoint(ctx.tmp / "model-only.ckpt", ctx.trainer.model, ctx.trainer.optimizer)
    (ctx.tmp / "garbage.ckpt").write_bytes(b"PK\x03\x04 not really a zip")
    raw = (ctx.tmp / "run.ckpt").read_bytes()
    (ctx.tmp / "cut.ckpt").write_bytes(raw[: len(raw) // 2])


def _other(ctx, **kw):
    _trained(ctx)
    ctx.other = _trainer(ctx, **kw)
    ctx.other.fit(1)


def _other_model(ctx):
    _other(ctx, hidden=7, callbacks=[EarlyStopping(monitor="val_loss"),
                                     ModelCheckpoint(ctx.tmp / "ck2", monitor="val_loss")])


def _other_data(ctx):
    _other(ctx, data=PAIRS[:30], callbacks=[EarlyStopping(monitor="val_loss"),
                                            ModelCheckpoint(ctx.tmp / "ck2")])


def _other_callbacks(ctx):
    _other(ctx, callbacks=[ModelCheckpoint(ctx.tmp / "ck2")])


class _StopAt(Callback):
    def __init__(self, iteration):
        self.at = iteration

    def on_batch_end(self, trainer, loss):
        if trainer.iteration == self.at:
            trainer.stop_training = True


def _other_batch(ctx):
    """A checkpoint in the middle of epoch 3 (2 of its 4 batches done), and a Trainer with
    batches twice as large to resume it."""
    trainer = _trainer(ctx, callbacks=[_StopAt(10)])
    trainer.fit(3)
    trainer.save_checkpoint(ctx.tmp / "mid.ckpt")
    ctx.other = _trainer(ctx, batch=20, callbacks=[_StopAt(-1)])


class _Comm:
    rank, size = 0, 2

    def allreduce(self, array, op="sum"):
        return array * 2


def _plain(ctx):
    ctx.trainer = _trainer(ctx)


ENTRIES = [
    *rows("training.Trainer", _plain,
          no_setup=(lambda c: Trainer(MLP((3,)), optimizers.SGD(), F.softmax_cross_entropy,
                                      DataLoader(PAIRS, 10)), ValueError,
                    "call optimizer.setup(model) first"),
          model=(lambda c: Trainer("mlp", c.trainer.optimizer, F.softmax_cross_entropy,
                                   DataLoader(PAIRS, 10)), TypeError, "model must be a dezero"),
          loss=(lambda c: Trainer(c.trainer.model, c.trainer.optimizer, "mse",
                                  DataLoader(PAIRS, 10)), TypeError, "loss_fn must be a function"),
          loader=(lambda c: Trainer(c.trainer.model, c.trainer.optimizer,
                                    F.softmax_cross_entropy, 3), TypeError,
                  "train_loader must yield batches"),
          optimizer=(lambda c: Trainer(c.trainer.model, "sgd", F.softmax_cross_entropy,
                                       DataLoader(PAIRS, 10)), TypeError,
                     "optimizer must be a dezero Optimizer"),
          schedule_per=(lambda c: _trainer(c, schedule_per="batch"), ValueError,
                        "schedule_per must be 'iteration' or 'epoch'"),
          metric=(lambda c: Trainer(c.trainer.model, c.trainer.optimizer,
                                    F.softmax_cross_entropy, DataLoader(PAIRS, 10),
                                    metrics=["acc"]), TypeError,
                  "a metric must be a dezero.metrics.Metric"),
          metric_names=(lambda c: Trainer(c.trainer.model, c.trainer.optimizer,
                                          F.softmax_cross_entropy, DataLoader(PAIRS, 10),
                                          metrics=[Accuracy(), Accuracy()]), ValueError,
                        "two metrics share the name(s) ['acc']"),
          callback=(lambda c: Trainer(c.trainer.model, c.trainer.optimizer,
                                      F.softmax_cross_entropy, DataLoader(PAIRS, 10),
                                      callbacks=[print]), TypeError,
                    "callbacks must be dezero.training.Callback objects"),
          comm=(lambda c: _trainer(c, comm=object()), TypeError,
                "comm must be a communicator (rank, size, allreduce)")),
    *rows("training.Trainer.fit", _trained,
          float_epochs=(lambda c: c.trainer.fit(2.5), TypeError, "epochs must be an int"),
          negative=(lambda c: c.trainer.fit(-1), ValueError, "epochs must be >= 0"),
          missing=(lambda c: c.trainer.fit(3, resume=c.tmp / "nope.ckpt"), FileNotFoundError,
                   "nope.ckpt"),
          per_sample_loss=(lambda c: _per_sample(c.trainer).fit(3), ValueError,
                           "loss_fn must return the batch's mean loss", "shape (10,)"),
          model_only=(lambda c: c.trainer.fit(4, resume=c.tmp / "model-only.ckpt"),
                      CheckpointError, "without a Trainer's state"),
          garbage=(lambda c: c.trainer.fit(4, resume=c.tmp / "garbage.ckpt"), CheckpointError,
                   "garbage.ckpt", "truncated, corrupted"),
          truncated=(lambda c: c.trainer.fit(4, resume=c.tmp / "cut.ckpt"), CheckpointError,
                     "cut.ckpt", "truncated, corrupted")),
    *rows("training.Trainer.load_checkpoint", _other_model,
          other_model=(lambda c: c.other.load_checkpoint(c.tmp / "run.ckpt"), CheckpointError,
                       "run.ckpt", "shape mismatch for 'l0/W'")),
    *rows("training.Trainer.load_checkpoint", _other_data,
          other_data=(lambda c: c.other.load_checkpoint(c.tmp / "run.ckpt"), CheckpointError,
                      "train_loader", "saved order has shape (40,)")),
    *rows("training.Trainer.load_checkpoint", _other_callbacks,
          other_callbacks=(lambda c: c.other.load_checkpoint(c.tmp / "run.ckpt"),
                           CheckpointError, "the checkpoint has the callbacks "
                           "['EarlyStopping', 'ModelCheckpoint'], this Trainer "
                           "['ModelCheckpoint']")),
    *rows("training.Trainer.load_checkpoint", _other_batch,
          other_batch_size=(lambda c: c.other.load_checkpoint(c.tmp / "mid.ckpt"),
                            CheckpointError, "batch_size 10", "this loader has batch_size 20")),
    *rows("training.Trainer.evaluate", _trained,
          not_a_loader=(lambda c: c.trainer.evaluate(3), TypeError, "loader must yield batches"),
          bad_labels=(lambda c: c.trainer.evaluate(DataLoader(list(zip(X, T + 5)), 10)),
                      ValueError, "out of range")),
    *rows("training.Trainer.save_checkpoint", _trained,
          no_folder=(lambda c: c.trainer.save_checkpoint(c.tmp / "no" / "such" / "x.ckpt"),
                     FileNotFoundError, "does not exist"),
          a_folder=(lambda c: c.trainer.save_checkpoint(c.tmp / "ck"), IsADirectoryError,
                    "it is a folder")),
    *rows("training.EarlyStopping",
          patience=(lambda c: EarlyStopping(patience=-1), ValueError, "patience must be >= 0"),
          float_patience=(lambda c: EarlyStopping(patience=1.5), TypeError,
                          "patience must be an int"),
          mode=(lambda c: EarlyStopping(mode="up"), ValueError, "mode must be 'min', 'max'"),
          monitor=(lambda c: EarlyStopping(monitor=3), TypeError, "monitor must be the name"),
          min_delta=(lambda c: EarlyStopping(min_delta=float("nan")), ValueError,
                     "min_delta must be a finite number")),
    *rows("training.EarlyStopping.on_epoch_end", _trained,
          unknown=(lambda c: EarlyStopping(monitor="val_f1").on_epoch_end(
              c.trainer, c.trainer.history[-1]), KeyError,
              "monitor 'val_f1' is not among the values logged each epoch")),
    *rows("training.EarlyStopping.load_state_dict", _trained,
          missing=(lambda c: c.early.load_state_dict({"best": 1.0}), ValueError,
                   "missing keys ['best_epoch', 'wait', 'stopped_epoch']"),
          not_a_number=(lambda c: c.early.load_state_dict(
              {"best": "low", "best_epoch": 1, "wait": 0, "stopped_epoch": None}), ValueError,
              "'best' must be a number or None")),
    *rows("training.ModelCheckpoint",
          keep=(lambda c: ModelCheckpoint(c.tmp, keep_last=-1), ValueError,
                "keep_last must be >= 0"),
          every=(lambda c: ModelCheckpoint(c.tmp, every=0), ValueError, "every must be >= 1"),
          mode=(lambda c: ModelCheckpoint(c.tmp, mode="best"), ValueError,
                "mode must be 'min', 'max' or 'auto'")),
    *rows("training.ModelCheckpoint.on_epoch_end", _trained,
          disk_full=(lambda c: _disk_full(c), OSError, "No space left on device"),
          unknown=(lambda c: ModelCheckpoint(c.tmp / "x", monitor="val_f1").on_epoch_end(
              c.trainer, c.trainer.history[-1]), KeyError, "monitor 'val_f1'")),
    *rows("training.ModelCheckpoint.load_state_dict", _trained,
          saved=(lambda c: c.ckpt.load_state_dict({"saved": "epoch-0001.ckpt", "best": None,
                                                   "best_epoch": None}), ValueError,
                 "'saved' must be a list of file names"),
          missing=(lambda c: c.ckpt.load_state_dict({}), ValueError, "missing keys")),
    *rows("training.ModelCheckpoint.latest", _trained,
          only_other_models=(lambda c: _latest_strict(c), UserWarning, "skipping",
                             "epoch-0002.ckpt", "parameter 'l0/W' has shape (2, 5)")),
    *rows("training.ModelCheckpoint.checkpoint_name",
          text=(lambda c: ModelCheckpoint.checkpoint_name("3"), TypeError,
                "epoch must be an int"),
          negative=(lambda c: ModelCheckpoint.checkpoint_name(3, -1), ValueError,
                    "iteration must be >= 0")),
    *rows("training.CSVLogger",
          separator=(lambda c: CSVLogger(c.tmp / "h.csv", separator=";;"), ValueError,
                     "separator must be one character")),
    *rows("training.CSVLogger.on_epoch_end", _trained,
          folder=(lambda c: CSVLogger(c.tmp / "run.ckpt" / "h.csv").on_epoch_end(
              c.trainer, {}), OSError, "run.ckpt")),
    *rows("training.CurvePlot",
          keys=(lambda c: CurvePlot(c.tmp / "p.png", keys="loss"), TypeError,
                "keys must be a list of logged names")),
    *rows("training.CurvePlot.on_train_end", _trained,
          unknown_key=(lambda c: CurvePlot(c.tmp / "p.png", keys=["f1"]).on_train_end(
              c.trainer), KeyError, "'f1' is not among the values logged")),
    *rows("training.TensorBoardLogger", needs=("tensorboardX",),
          logdir=(lambda c: TensorBoardLogger(3), TypeError, "expected str")),
]


def _per_sample(trainer):
    def per_sample(y, t):
        return F.sum(y, axis=1)

    return Trainer(trainer.model, trainer.optimizer, per_sample, trainer.train_loader,
                   verbose=False)


def _disk_full(ctx):
    trainer = ctx.trainer

    def full(path):
        raise OSError(28, "No space left on device")

    trainer.save_checkpoint = full
    try:
        logs = dict(trainer.history[-1], epoch=3, val_loss=-1.0)
        ctx.ckpt.on_epoch_end(trainer, logs)
    finally:
        del trainer.save_checkpoint


def _latest_strict(ctx):
    import warnings

    other = MLP((7, 3))
    other(np.zeros((1, 2), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ModelCheckpoint.latest(ctx.tmp / "ck", other)


EXEMPT = {
    "training.Callback": "an interface: takes no argument",
    "training.Callback.on_train_begin": "an interface method that does nothing",
    "training.Callback.on_epoch_begin": "an interface method that does nothing",
    "training.Callback.on_batch_end": "an interface method that does nothing",
    "training.Callback.on_epoch_end": "an interface method that does nothing",
    "training.Callback.on_train_end": "an interface method that does nothing",
    "training.Callback.state_dict": "an interface method: returns {}",
    "training.Callback.load_state_dict": "an interface method that does nothing",
    "training.EarlyStopping.best": "a property",
    "training.EarlyStopping.state_dict": "takes no argument and cannot fail",
    "training.ModelCheckpoint.best_path": "a property",
    "training.ModelCheckpoint.state_dict": "takes no argument and cannot fail",
    "training.TensorBoardLogger.on_train_begin": "opens the writer (tensorboardX's own "
                                                 "errors); missing extra: tests/test_trainer.py",
    "training.TensorBoardLogger.on_epoch_end": "writes what the Trainer logged",
    "training.TensorBoardLogger.on_train_end": "closes the writer",
    "training.Trainer.jit_stats": "a property",
    "training.Trainer.log": "prints a message (any object)",
    "training.Trainer.state_dict": "takes no argument and cannot fail",
}
