"""dezero.training: a small Trainer that owns the training loop, and its callbacks.

The Trainer runs the loop you would write yourself, and nothing more::

    for epoch in range(epochs):
        for x, t in train_loader:
            loss = loss_fn(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            scheduler.step()                 # when there is one, per iteration or per epoch
        evaluate(val_loader)                 # under no_grad() and test_mode()

and adds what every project copies around it: metrics accumulated over the epoch (weighted
by batch size, on the device), a history (one dict per epoch), a progress bar on a terminal
and one line per epoch elsewhere, callbacks (early stopping, checkpoints, CSV, TensorBoard,
a plot of the curves) and checkpoints that resume bit for bit: 5 epochs, a checkpoint and 5
more end exactly where 10 straight epochs end (weights, history, data order), also from a
checkpoint taken in the middle of an epoch.

>>> import numpy as np
>>> import dezero.functions as F
>>> from dezero import DataLoader, optimizers
>>> from dezero.datasets import Spiral
>>> from dezero.models import MLP
>>> from dezero.metrics import Accuracy
>>> np.random.seed(0)
>>> model = MLP((10, 3))
>>> trainer = Trainer(model, optimizers.SGD(1.0).setup(model), F.softmax_cross_entropy,
...                   DataLoader(Spiral(), 30), metrics=[Accuracy()], verbose=False)
>>> history = trainer.fit(3)
>>> [sorted(h) for h in history][0]
['acc', 'epoch', 'iteration', 'loss', 'lr', 'time']
>>> trainer.epoch, trainer.iteration
(3, 30)

Distributed runs: pass ``comm`` (a ``dezero.distributed`` communicator, or anything with
``rank``, ``size`` and ``allreduce(array, op="sum")``). Every process runs the loop on its
own shard; the metrics' running sums are added over the processes before they are read, so
every process sees the same history; printing, the progress bar, checkpoint files and the
callbacks marked ``root_only`` (the writers) happen on rank 0 only.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from typing import Any, Callable

import numpy as np

from dezero import cuda
from dezero.core import no_grad, test_mode
from dezero.metrics import Mean, MeanLoss, Metric
from dezero.serialization import (
    CheckpointError,
    atomic_write,
    checkpoint_fingerprint,
    fingerprint_mismatch,
    load_checkpoint,
    save_checkpoint,
)

__all__ = [
    "CSVLogger",
    "Callback",
    "CurvePlot",
    "EarlyStopping",
    "ModelCheckpoint",
    "TensorBoardLogger",
    "Trainer",
]

_FORMAT = "dezero-trainer-1"


def _is_scalar(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )


def _count(n: int, word: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _int_arg(who: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{who}: {name} must be an int, got {value!r} "
                        f"({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _as_metric(m) -> Metric:
    if isinstance(m, Metric):
        return m
    if callable(m):
        return Mean(m)
    raise TypeError(f"a metric must be a dezero.metrics.Metric or a function f(y, t), got {m!r}")


# =============================================================================
# Callbacks
# =============================================================================
class Callback:
    """Hooks the Trainer calls; override the ones you need.

    ``on_train_begin(trainer)``, ``on_epoch_begin(trainer)``, ``on_batch_end(trainer,
    loss)`` (the batch's loss Variable: reading its value makes the host wait for the
    device), ``on_epoch_end(trainer, logs)`` (``logs`` is the epoch's history dict; set
    ``trainer.stop_training = True`` to stop) and ``on_train_end(trainer)``.

    ``order``: callbacks run by ascending order, then in the order given (checkpoint
    writers have 100, so that what they save holds the other callbacks' updated state).
    ``root_only``: in a distributed run, call this one on rank 0 only (files, plots).
    ``state_dict()`` / ``load_state_dict()``: what a checkpoint keeps of the callback.
    """

    order = 0
    root_only = False

    def on_train_begin(self, trainer: Trainer) -> None:
        pass

    def on_epoch_begin(self, trainer: Trainer) -> None:
        pass

    def on_batch_end(self, trainer: Trainer, loss) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, logs: dict) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _mode(monitor: str, mode: str) -> str:
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be the name of a logged value (a str), got {monitor!r}")
    if mode == "auto":
        maximise = ("acc", "f1", "precision", "recall", "auc")
        return "max" if any(k in monitor for k in maximise) else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


def _monitored(logs: dict, monitor: str, who: str) -> float:
    if monitor not in logs:
        keys = [k for k, v in logs.items() if _is_scalar(v)]
        raise KeyError(
            f"{who}: monitor {monitor!r} is not among the values logged each epoch {keys} "
            f"(val_* needs a val_loader)"
        )
    return float(logs[monitor])


class _Monitor:
    """The best value of one logged quantity so far (shared by the two callbacks below)."""

    def __init__(self, monitor, mode, min_delta=0.0):
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self.best = None
        self.best_epoch = None

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    An epoch improves on the best value so far when it is lower (``mode='min'``) or higher
    (``'max'``) by more than ``min_delta``; ``'auto'`` maximises names containing acc, f1,
    precision or recall and minimises the rest (losses).
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", patience: int = 5,
                 min_delta: float = 0.0):
        patience = _int_arg("EarlyStopping", "patience", patience, 0)
        if not isinstance(min_delta, (int, float, np.integer, np.floating)) or not math.isfinite(
                min_delta):
            raise ValueError(f"EarlyStopping: min_delta must be a finite number, got {min_delta!r}")
        self._best = _Monitor(monitor, mode, min_delta)
        self.monitor, self.mode, self.patience = monitor, self._best.mode, patience
        self.wait = 0
        self.stopped_epoch = None

    @property
    def best(self):
        return self._best.best

    def on_epoch_end(self, trainer, logs):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self._best.improved(value):
            self._best.best, self._best.best_epoch = value, logs["epoch"]
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = logs["epoch"]
            trainer.stop_training = True
            best = ("no finite value yet" if self._best.best is None
                    else f"best {self._best.best:.6g} at epoch {self._best.best_epoch}")
            trainer.log(
                f"early stopping: {self.monitor} has not improved for "
                f"{_count(self.wait, 'epoch')} ({best})"
            )

    def state_dict(self):
        return {"best": self._best.best, "best_epoch": self._best.best_epoch,
                "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state):
        _check_keys("EarlyStopping", state, ("best", "best_epoch", "wait", "stopped_epoch"))
        best, best_epoch = _optional_number(state, "best"), _optional_number(state, "best_epoch")
        wait, stopped = int(state["wait"]), _optional_number(state, "stopped_epoch")
        self._best.best, self._best.best_epoch = best, best_epoch
        self.wait, self.stopped_epoch = wait, stopped


class ModelCheckpoint(Callback):
    """Write a resumable checkpoint every ``every`` epochs: the last ``keep_last`` and the best.

    Files go to ``directory``: ``epoch-0007.ckpt`` (the newest ``keep_last`` are kept;
    ``keep_last=0`` keeps none) and, with ``monitor`` (None turns it off), ``best.ckpt``,
    the checkpoint of the epoch with the best ``monitor`` value. Each file is a full
    ``Trainer.save_checkpoint`` (``trainer.fit(epochs, resume=path)`` continues from it),
    written atomically: a crash never leaves a half-written file under a checkpoint's name.
    A write that fails (a full disk) leaves the files and this callback's bookkeeping as
    they were: a file is recorded (and an older one deleted) only once it is written.

    ``ModelCheckpoint.latest(directory, model=None)`` is the newest checkpoint there (or
    None); given the model, the newest that fits it (each checkpoint carries the model's
    fingerprint: its parameter names and shapes). ``checkpoint_name(epoch, iteration)`` is
    the name of a checkpoint taken in the middle of an epoch (after a Ctrl-C), which
    ``latest`` orders between the epochs.
    """

    order = 100
    root_only = True
    pattern = "epoch-{epoch:04d}.ckpt"
    best_name = "best.ckpt"
    _NAME = re.compile(r"epoch-(\d+)(?:-iter-(\d+))?\.ckpt$")

    def __init__(self, directory, keep_last: int = 3, monitor: str | None = "val_loss",
                 mode: str = "auto", every: int = 1):
        keep_last = _int_arg("ModelCheckpoint", "keep_last", keep_last, 0)
        every = _int_arg("ModelCheckpoint", "every", every, 1)
        self.directory = os.fspath(directory)
        self.keep_last, self.every = keep_last, every
        self.monitor = monitor
        self._best = None if monitor is None else _Monitor(monitor, mode)
        self.saved: list[str] = []  # file names of the kept epoch checkpoints, oldest first

    @property
    def best_path(self) -> str | None:
        if self._best is None or self._best.best is None:
            return None
        return os.path.join(self.directory, self.best_name)

    @classmethod
    def checkpoint_name(cls, epoch: int, iteration: int | None = None) -> str:
        """``epoch-0003.ckpt`` after epoch 3; ``epoch-0003-iter-001234.ckpt`` for a checkpoint
        taken after 3 epochs and 1234 updates in all (in the middle of epoch 4)."""
        epoch = _int_arg("ModelCheckpoint.checkpoint_name", "epoch", epoch, 0)
        name = cls.pattern.format(epoch=epoch)
        if iteration is None:
            return name
        iteration = _int_arg("ModelCheckpoint.checkpoint_name", "iteration", iteration, 0)
        return name[: -len(".ckpt")] + f"-iter-{iteration:06d}.ckpt"

    @classmethod
    def latest(cls, directory, model=None) -> str | None:
        """The newest checkpoint in ``directory`` (highest epoch), or None when there is none.

        ``epoch-NNNN.ckpt`` files and mid-epoch ones (``checkpoint_name``) are considered,
        ordered by epoch, then by update count. With ``model``, the newest whose fingerprint
        fits the model: the parameter names in order, and the shapes where the model's
        parameter already exists (a lazy layer has none yet). Each file skipped (another
        model's checkpoint, or an unreadable one) gives one UserWarning naming the file and
        the first mismatch.
        """
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            return None
        found = []
        for name in os.listdir(directory):
            m = cls._NAME.match(name)
            if m:
                sub = -1 if m.group(2) is None else int(m.group(2))
                found.append(((int(m.group(1)), sub), name))
        for _, name in sorted(found, reverse=True):
            path = os.path.join(directory, name)
            if model is None:
                return path
            try:
                problem = fingerprint_mismatch(checkpoint_fingerprint(path), model)
            except (CheckpointError, OSError) as e:
                problem = f"it cannot be read ({e})"
            if problem is None:
                return path
            warnings.warn(f"ModelCheckpoint.latest: skipping {path!r}: {problem}",
                          UserWarning, stacklevel=2)
        return None

    def on_epoch_end(self, trainer, logs):
        epoch = logs["epoch"]
        new_best = None
        if self._best is not None:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if self._best.improved(value):
                new_best = (value, epoch)
        save_epoch = self.keep_last > 0 and epoch % self.every == 0
        if not (new_best or save_epoch):
            return
        os.makedirs(self.directory, exist_ok=True)
        old_saved = list(self.saved)
        old_best = None if self._best is None else (self._best.best, self._best.best_epoch)
        drop: list[str] = []
        # the bookkeeping is updated first, so that the checkpoint holds it, and put back
        # when the write fails
        if new_best is not None:
            self._best.best, self._best.best_epoch = new_best
        try:
            if save_epoch:
                name = self.pattern.format(epoch=epoch)
                saved = [n for n in self.saved if n != name] + [name]
                drop, self.saved = saved[: -self.keep_last], saved[-self.keep_last :]
                trainer.save_checkpoint(os.path.join(self.directory, name))
        except BaseException:
            self.saved = old_saved
            if old_best is not None:
                self._best.best, self._best.best_epoch = old_best
            raise
        for old in drop:  # only once the new one is on disk
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.directory, old))
        if new_best is not None:
            try:
                trainer.save_checkpoint(os.path.join(self.directory, self.best_name))
            except BaseException:
                self._best.best, self._best.best_epoch = old_best
                raise

    def state_dict(self):
        best = (None, None) if self._best is None else (self._best.best, self._best.best_epoch)
        return {"saved": list(self.saved), "best": best[0], "best_epoch": best[1]}

    def load_state_dict(self, state):
        _check_keys("ModelCheckpoint", state, ("saved", "best", "best_epoch"))
        saved = state["saved"]
        if not isinstance(saved, (list, tuple)) or not all(isinstance(n, str) for n in saved):
            raise ValueError(f"ModelCheckpoint.load_state_dict: 'saved' must be a list of file "
                             f"names, got {saved!r}")
        best, best_epoch = _optional_number(state, "best"), _optional_number(state, "best_epoch")
        self.saved = list(saved)
        if self._best is not None:
            self._best.best, self._best.best_epoch = best, best_epoch


def _check_keys(who: str, state, keys) -> None:
    if not isinstance(state, dict):
        raise ValueError(f"{who}.load_state_dict: expected a dict, got {type(state).__name__}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{who}.load_state_dict: missing keys {missing}")


def _optional_number(state, key):
    value = state[key]
    if value is not None and not _is_scalar(value):
        raise ValueError(f"{key!r} must be a number or None, got {value!r}")
    return value


def _write_atomic(path, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))


class CSVLogger(Callback):
    """The history as a CSV file: a header and one row per epoch (scalar values only).

    The file is rewritten (atomically) from ``trainer.history`` at each epoch's end, so a
    resumed run's file holds exactly the epochs of its history.
    """

    root_only = True

    def __init__(self, path, separator: str = ","):
        self.path = os.fspath(path)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.separator = separator

    def on_epoch_end(self, trainer, logs):
        keys: list[str] = []
        for row in trainer.history:
            keys.extend(k for k, v in row.items() if _is_scalar(v) and k not in keys)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.separator, lineterminator="\n")
        writer.writerow(keys)
        for row in trainer.history:
            writer.writerow([repr(float(row[k])) if isinstance(row.get(k), float)
                             else row.get(k, "") for k in keys])
        _write_atomic(self.path, out.getvalue())


class TensorBoardLogger(Callback):
    """Scalars (every logged value) and parameter histograms per epoch, for TensorBoard.

    Writes event files into ``logdir`` through tensorboardX (``pip install
    "dezero-next[tensorboard]"``); view them with ``tensorboard --logdir LOGDIR``. The step is
    the epoch number. ``histograms``: also a histogram of every parameter (by its path,
    ``params/l1/W``) and, where it has one, of its gradient (``grads/l1/W``). A resumed run
    tells TensorBoard to drop what an earlier run logged after the checkpoint.
    """

    root_only = True

    def __init__(self, logdir, histograms: bool = True):
        self.logdir = os.fspath(logdir)
        self.histograms = histograms
        self.writer = None
        _import_tensorboardx()

    def on_train_begin(self, trainer):
        SummaryWriter = _import_tensorboardx()
        purge = trainer.epoch + 1 if trainer.epoch else None
        self.writer = SummaryWriter(self.logdir, purge_step=purge)

    def on_epoch_end(self, trainer, logs):
        epoch = logs["epoch"]
        for key, value in logs.items():
            if key != "epoch" and _is_scalar(value):
                self.writer.add_scalar(key, float(value), epoch)
        if self.histograms:
            for path, p in trainer.model.named_params():
                if p.data is None:
                    continue
                self.writer.add_histogram("params/" + path, cuda.as_numpy(p.data), epoch)
                if p.grad is not None:
                    self.writer.add_histogram("grads/" + path, cuda.as_numpy(p.grad.data),
                                              epoch)
        self.writer.flush()

    def on_train_end(self, trainer):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _import_tensorboardx():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError(
            'TensorBoardLogger needs tensorboardX: pip install "dezero-next[tensorboard]"'
        ) from e
    return SummaryWriter


class CurvePlot(Callback):
    """A PNG of the curves (loss and each metric, training and validation) at the end.

    ``keys``: the quantities to draw, one panel each (default: every logged training value
    with its ``val_`` twin, except lr and time). Needs matplotlib (``pip install
    "dezero-next[examples]"``).
    """

    root_only = True

    def __init__(self, path, keys=None, title: str | None = None):
        self.path = os.fspath(path)
        if keys is not None and (isinstance(keys, str) or not all(
                isinstance(k, str) for k in keys)):
            raise TypeError(f"CurvePlot: keys must be a list of logged names (str), got {keys!r}")
        self.keys = None if keys is None else list(keys)
        self.title = title

    def on_train_end(self, trainer):
        history = trainer.history
        if not history:
            return
        try:
            import matplotlib
        except ImportError as e:
            raise ImportError(
                'CurvePlot needs matplotlib: pip install "dezero-next[examples]"'
            ) from e
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = self.keys or [k for k, v in history[0].items()
                             if _is_scalar(v) and not k.startswith("val_")
                             and k not in ("epoch", "iteration", "lr", "time")]
        for key in keys:
            if key not in history[0] and "val_" + key not in history[0]:
                logged = [k for k, v in history[0].items() if _is_scalar(v)]
                raise KeyError(f"CurvePlot: {key!r} is not among the values logged each epoch "
                               f"{logged}")
        fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
        epochs = [h["epoch"] for h in history]
        for ax, key in zip(axes[0], keys):
            for name, label, style in ((key, "train", "o-"), ("val_" + key, "validation", "s-")):
                if name in history[0]:
                    ax.plot(epochs, [h[name] for h in history], style, label=label)
            title = f"{self.title}: {key}" if self.title else key
            ax.set(xlabel="epoch", ylabel=key, title=title)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(self.path, dpi=100)
        plt.close(fig)


# =============================================================================
# The Trainer
# =============================================================================
def _check_loss(loss) -> None:
    # a shape check (free): backward() of a per-sample loss would seed ones and train on
    # the sum, and the epoch would end in an unrelated broadcast error
    shape = getattr(loss, "shape", None)
    if shape is None or math.prod(shape) != 1:
        raise ValueError(
            f"Trainer: loss_fn must return the batch's mean loss (one number), got "
            f"{'a ' + type(loss).__name__ if shape is None else 'shape ' + str(tuple(shape))}; "
            f"reduce a per-sample loss with F.mean (or F.sum(loss) / len(t))"
        )


def _make_train_step(model, optimizer, loss_fn, jit: bool):
    """The training step as a function of the batch: (output, loss). A closure over the
    model and optimizer, so that ``dezero.jit`` keys its tape on the model's layer modes."""

    def train_step(x, t):
        y = model(x)
        loss = loss_fn(y, t)
        _check_loss(loss)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        return y, loss

    if jit:
        from dezero.jit import jit as _jit

        return _jit(train_step)
    return train_step


class _Interrupts:
    """Ctrl-C during ``fit``: the first one is noted and raised at the next safe point
    (between two batches, or after an epoch's end), so that the Trainer's state is
    consistent and resumable; a second one stops at once (the default handler is back).

    Only in the main thread, and only where Python's default handler is installed.
    """

    def __init__(self):
        self.pending = False
        self._previous = None

    def __enter__(self):
        self.pending = False
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame):
        self.pending = True
        signal.signal(signal.SIGINT, self._previous)

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            if signal.getsignal(signal.SIGINT) == self._note:
                signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False


class Trainer:
    """Train ``model`` with ``optimizer`` on ``loss_fn(model(x), t)`` over ``train_loader``.

    Parameters
    ----------
    model : Layer
    optimizer : Optimizer
        Already ``setup(model)``.
    loss_fn : callable
        ``loss_fn(y, t)`` -> a scalar Variable, the batch's mean loss
        (``F.softmax_cross_entropy``, ``F.mean_squared_error``). A loss of another shape
        (per-sample losses) is refused at the first batch.
    train_loader, val_loader : DataLoader
        Batches ``(x, t)``. After each epoch the model is evaluated on ``val_loader`` (when
        given) and its results go into the history as ``val_<name>``.
    metrics : list of Metric or f(y, t), optional
        Computed on the training batches and on ``val_loader`` (``dezero.metrics``; a
        function such as ``F.accuracy`` becomes ``Mean(f)``). The loss is always there.
    callbacks : list of Callback, optional
    scheduler : LRScheduler, optional
        Stepped after every update (``schedule_per='iteration'``) or at the end of every
        epoch (``'epoch'``). A resume restores its step count; build it for the run's total
        length (``CosineAnnealingLR(opt, T_max=epochs * len(train_loader))``): resuming with
        more epochs then continues the schedule as if the run had been started with the new
        total.
    comm : communicator, optional
        For distributed runs (see the module's docs): rank 0 prints and writes files, and
        the metrics are summed over the processes.
    progress : bool, optional
        A tqdm progress bar per epoch; by default only when stdout is a terminal (and tqdm
        is installed). Without one, one line per epoch.
    verbose : bool
        Print that line (and the callbacks' messages).
    jit : bool
        Run the training step (forward, loss, backward, update) through ``dezero.jit``:
        recorded at the first batch of each shape, replayed after (the same results; see
        the jit rules in the README). With ``comm`` too: the optimizer's update, gradient
        averaging included, runs as it does eagerly.

    Attributes: ``epoch`` (epochs completed), ``iteration`` (updates made), ``history``
    (one dict per epoch: epoch, iteration, loss and the metrics, val_* values, lr, time in
    seconds), ``stop_training`` (set it to stop after the current batch, as EarlyStopping
    does at an epoch's end).

    Interruptions: a Ctrl-C during ``fit`` stops it between two batches (a second Ctrl-C
    stops at once), and an exception raised inside a training step (in the forward pass,
    the loss, backward, the optimizer's hooks) puts the loader's position, NumPy's global
    RNG and the optimizer's step count back to before that batch. Either way the Trainer is
    left in a state that ``save_checkpoint`` and ``fit(epochs, resume=path)`` continue
    exactly as an uninterrupted run would (the batch is not skipped), and ``fit`` prints one
    line saying so before it re-raises.
    """

    def __init__(self, model, optimizer, loss_fn: Callable, train_loader, val_loader=None,
                 metrics=None, callbacks=None, *, scheduler=None,
                 schedule_per: str = "iteration", comm=None, progress: bool | None = None,
                 verbose: bool = True, jit: bool = False):
        if schedule_per not in ("iteration", "epoch"):
            raise ValueError(f"schedule_per must be 'iteration' or 'epoch', got {schedule_per!r}")
        if not (callable(model) and hasattr(model, "params")):
            raise TypeError(f"Trainer: model must be a dezero Layer/Model, got {model!r}")
        if not callable(getattr(optimizer, "update", None)):
            raise TypeError(f"Trainer: optimizer must be a dezero Optimizer (with update()), "
                            f"got {optimizer!r}")
        if getattr(optimizer, "target", model) is None:
            raise ValueError(f"Trainer: the optimizer has no target: call "
                             f"optimizer.setup(model) first ({type(optimizer).__name__})")
        if not callable(loss_fn):
            raise TypeError(f"Trainer: loss_fn must be a function loss_fn(y, t), got {loss_fn!r}")
        for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
            if loader is None and name == "val_loader":
                continue
            if not hasattr(loader, "__iter__"):
                raise TypeError(f"Trainer: {name} must yield batches (x, t), got "
                                f"{type(loader).__name__}")
        if scheduler is not None and not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"Trainer: scheduler must have step(), got {scheduler!r}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.train_loader, self.val_loader = train_loader, val_loader
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"Trainer: metrics must be a list, got {type(metrics).__name__}")
        self.metrics = [_as_metric(m) for m in (metrics or ())]
        names = ["loss"] + [m.name for m in self.metrics]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"two metrics share the name(s) {clashes}; pass name=... to one")
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"Trainer: callbacks must be a list, got {type(callbacks).__name__}")
        callbacks = list(callbacks or ())
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be dezero.training.Callback objects, got {cb!r}")
        # stable: equal orders keep the order given
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.scheduler, self.schedule_per = scheduler, schedule_per
        if comm is not None and not (isinstance(getattr(comm, "rank", None), int)
                                     and isinstance(getattr(comm, "size", None), int)
                                     and callable(getattr(comm, "allreduce", None))):
            raise TypeError(f"Trainer: comm must be a communicator (rank, size, allreduce), "
                            f"got {comm!r}")
        self.comm = comm
        self.is_root = comm is None or comm.rank == 0
        if progress is None:
            progress = sys.stdout.isatty()
        self.progress, self.verbose = progress and self.is_root, verbose
        self.epoch = 0
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self.stop_training = False
        self._train_metrics = self._fresh_metrics()
        self._in_epoch = False  # a started epoch not finished yet (mid-epoch checkpoints)
        self._trained = False  # that epoch's batches are all done (its evaluation is not)
        self._gpu_seed = None
        self._last_lr = None
        self._interrupts = _Interrupts()
        self._train_step = _make_train_step(model, optimizer, loss_fn, jit)

    @property
    def jit_stats(self) -> dict | None:
        """``stats()`` of the jitted training step (None without ``jit=True``)."""
        stats = getattr(self._train_step, "stats", None)
        return None if stats is None else stats()

    # --- the loop ---------------------------------------------------------------------
    def fit(self, epochs: int, resume=None) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs in total have run; return the history.

        ``resume``: a checkpoint path (``save_checkpoint``, ``ModelCheckpoint``); training
        continues from it, so ``fit(10, resume=path_after_5)`` runs epochs 6-10. Calling
        ``fit`` again on the same Trainer also continues the count. Resuming with a larger
        ``epochs`` than the first run had continues it (see ``scheduler`` for schedules).

        A Ctrl-C stops between two batches and leaves a resumable state (see the class's
        docs); ``fit`` prints one line on how to continue and re-raises KeyboardInterrupt.
        """
        epochs = _int_arg("Trainer.fit", "epochs", epochs, 0)
        if resume is not None:
            self.load_checkpoint(resume)
        self.stop_training = False
        try:
            with self._interrupts:
                self._call("on_train_begin")
                while self.epoch < epochs and not self.stop_training:
                    self._run_epoch(epochs)
                    self._interrupts.check()
                self._call("on_train_end")
        except KeyboardInterrupt:
            self._say_interrupted(epochs)
            raise
        return self.history

    def _say_interrupted(self, epochs: int) -> None:
        where = (f"after {_count(self.epoch, 'epoch')} and batch "
                 f"{getattr(self.train_loader, 'iteration', '?')} of epoch {self.epoch + 1}"
                 if self._in_epoch else f"after {_count(self.epoch, 'epoch')}")
        self.log(f"interrupted {where} ({self.iteration} updates); the state is consistent: "
                 f"trainer.save_checkpoint(path), then trainer.fit({epochs}, resume=path) "
                 f"continues exactly where it stopped")

    def _rewind(self, loader, position, rng_state, t) -> None:
        """After an exception in a step: the batch has not happened (it is run again)."""
        if position is not None:
            loader.iteration = position
        if rng_state is not None:
            np.random.set_state(rng_state)  # noqa: NPY002
        if t is not None:
            self.optimizer.t = t

    def _run_epoch(self, epochs: int) -> None:
        start = time.perf_counter()
        if not self._in_epoch:
            self._in_epoch, self._trained = True, False
            for m in self._train_metrics:
                m.reset()
            self._reseed_gpu()
            self._call("on_epoch_begin")
            continuing = False
        else:
            continuing = True
        if not self._trained:
            if not self._train_batches(epochs, continuing):
                return  # stopped in mid-epoch: a later fit() (or a resume) finishes it
            self._trained = True
        logs: dict[str, Any] = {"epoch": self.epoch + 1, "iteration": self.iteration}
        logs.update(self._results(self._train_metrics))
        if self.val_loader is not None:
            logs.update({"val_" + k: v for k, v in self.evaluate(self.val_loader).items()})
        if self._last_lr is not None:
            logs["lr"] = float(self._last_lr)  # the rate of the epoch's last update
        logs["time"] = time.perf_counter() - start
        self.epoch += 1
        self._in_epoch = self._trained = False
        self.history.append(logs)
        if self.scheduler is not None and self.schedule_per == "epoch":
            self.scheduler.step()
        self.log(self._epoch_line(logs, epochs))
        self._call("on_epoch_end", logs)

    def _train_batches(self, epochs: int, continuing: bool) -> bool:
        """Run the epoch's (remaining) batches; False when stopped before its end."""
        loader = self.train_loader
        # next() on a DataLoader continues a half-done epoch (iter() would start a new one)
        batches = loader if continuing and hasattr(loader, "__next__") else iter(loader)
        own = batches is loader and isinstance(getattr(loader, "iteration", None), int)
        done = loader.iteration if own else 0
        bar = self._progress_bar(epochs, done)
        loss_metric, others = self._train_metrics[0], self._train_metrics[1:]
        lr_attr = getattr(self.optimizer, "lr_attr", "lr")
        has_t = isinstance(getattr(self.optimizer, "t", None), int)
        try:
            while True:
                # what a failed step puts back (cheap: an int, the RNG's state, an int)
                position = loader.iteration if own else None
                rng_state = np.random.get_state()  # noqa: NPY002
                t_before = self.optimizer.t if has_t else None
                try:
                    try:
                        x, t = next(batches)
                    except StopIteration:
                        break
                    if lr_attr:  # the rate this update uses
                        self._last_lr = getattr(self.optimizer, lr_attr, None)
                    y, loss = self._train_step(x, t)
                except BaseException:
                    self._rewind(loader, position, rng_state, t_before)
                    raise
                self.iteration += 1
                if self.scheduler is not None and self.schedule_per == "iteration":
                    self.scheduler.step()
                loss_metric.update(loss, t)
                for m in others:
                    m.update(y.data, t)
                if bar is not None:
                    bar.update(1)
                    if self.iteration % 20 == 0:
                        bar.set_postfix(loss=f"{float(loss.data):.4f}", refresh=False)
                self._call("on_batch_end", loss)
                if self.stop_training:
                    return False
                self._interrupts.check()
        finally:
            if bar is not None:
                bar.close()
        return True

    def evaluate(self, loader) -> dict[str, Any]:
        """The loss and the metrics over ``loader``, under ``no_grad()`` and ``test_mode()``.

        ``test_mode()`` runs every layer in test mode whatever its ``train()``/``eval()``
        mode, and leaves those modes as they are (training, in turn, respects them: a layer
        put in ``eval()``, such as a frozen BatchNorm, stays in test mode while training).
        Returns ``{'loss': ..., <metric name>: ...}``; in a distributed run the sums are
        taken over every process's batches. A loader left in the middle of an epoch starts
        over: the evaluation always covers all of it.
        """
        if not hasattr(loader, "__iter__"):
            raise TypeError(f"Trainer.evaluate: loader must yield batches (x, t), got "
                            f"{type(loader).__name__}")
        if getattr(loader, "iteration", 0) and callable(getattr(loader, "reset", None)):
            loader.reset()
        metrics = self._fresh_metrics()
        with no_grad(), test_mode():
            for x, t in loader:
                y = self.model(x)
                metrics[0].update(self.loss_fn(y, t), t)
                for m in metrics[1:]:
                    m.update(y.data, t)
        return self._results(metrics)

    def _fresh_metrics(self) -> list[Metric]:
        metrics = [MeanLoss()] + [copy.deepcopy(m) for m in self.metrics]
        for m in metrics:
            m.reset()
        return metrics

    def _results(self, metrics) -> dict[str, Any]:
        if self.comm is not None and self.comm.size > 1:
            for m in metrics:
                m.allreduce(self.comm)
        return {m.name: m.compute() for m in metrics}

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            if cb.root_only and not self.is_root:
                continue
            getattr(cb, hook)(self, *args)

    # --- output -----------------------------------------------------------------------
    def log(self, message: str) -> None:
        """Print ``message`` (rank 0 only, and only when ``verbose``)."""
        if self.verbose and self.is_root:
            print(message, flush=True)

    def _progress_bar(self, epochs, done):
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        total = len(self.train_loader) if hasattr(self.train_loader, "__len__") else None
        return tqdm(total=total, initial=done, desc=f"epoch {self.epoch + 1}/{epochs}",
                    unit="batch", leave=False, dynamic_ncols=True)

    @staticmethod
    def _epoch_line(logs, epochs) -> str:
        width = len(str(epochs))
        parts = [f"epoch {logs['epoch']:{width}d}/{epochs}"]
        for key, value in logs.items():
            if key in ("epoch", "iteration", "time") or not _is_scalar(value):
                continue
            parts.append(f"{key} {value:.4g}" if key == "lr" else f"{key} {value:.4f}")
        parts.append(f"({logs['time']:.1f} s)")
        return "  ".join(parts)

    # --- checkpoints ------------------------------------------------------------------
    def _loaders(self):
        return [(name, loader) for name, loader in (("train_loader", self.train_loader),
                                                    ("val_loader", self.val_loader))
                if loader is not None and hasattr(loader, "state_dict")]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the model and the optimizer that a resume needs (see save_checkpoint)."""
        state: dict[str, Any] = {
            "format": _FORMAT,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "in_epoch": self._in_epoch,
            "trained": self._trained,
            "last_lr": self._last_lr,
            "history": self.history,
            "train_metrics": [m.state_dict() for m in self._train_metrics],
            "callbacks": [{"class": type(cb).__name__, "state": cb.state_dict()}
                          for cb in self.callbacks],
            "rng": {"numpy": np.random.get_state(), "gpu_seed": self._gpu_seed},  # noqa: NPY002
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        for name, loader in self._loaders():
            state[name] = loader.state_dict()
        return state

    def save_checkpoint(self, path) -> None:
        """Write a checkpoint to exactly ``path`` (atomically; any extension).

        It holds the model (and its fingerprint: parameter names and shapes), the optimizer,
        the scheduler, the loaders' order and position, NumPy's global RNG, the epoch and
        iteration, the history, the running sums of an epoch in progress and the callbacks'
        state: ``fit(epochs, resume=path)`` continues bit for bit. Only rank 0 writes in a
        distributed run.
        """
        if not self.is_root:
            return
        save_checkpoint(path, self.model, self.optimizer, trainer=self.state_dict())

    def load_checkpoint(self, path) -> None:
        """Restore ``save_checkpoint(path)`` into this Trainer (its model may still be lazy).

        All or nothing: the model, the optimizer and the Trainer's own state (its format,
        callbacks, scheduler, metrics, loaders, RNG state) are all checked before anything
        changes, so a refused checkpoint (another model's, a loader over another data set, a
        mid-epoch checkpoint resumed with another batch size) leaves this Trainer, its model
        and its optimizer as they were. NumPy's global RNG is restored last, after whatever
        random draws building the model made.

        Raises:
            FileNotFoundError, CheckpointError (a ValueError) naming the path and the problem.
        """
        where = repr(os.fspath(path))
        applied: list = []

        def check(extra):  # runs before the model or the optimizer is changed
            state = extra.get("trainer")
            if not isinstance(state, dict) or state.get("format") != _FORMAT:
                raise CheckpointError(
                    f"{where} is a model checkpoint without a Trainer's state (written by "
                    f"dezero.serialization.save_checkpoint, not Trainer.save_checkpoint)"
                )
            applied.append(self._load_state(state, where))

        load_checkpoint(path, self.model, self.optimizer, check=check)
        finish = applied[0]
        finish()

    def _load_state(self, state, where) -> Callable[[], None]:
        """Check ``state`` and load what can be put back (loaders, scheduler, callbacks);
        return what finishes the load once the model and optimizer are in. Raises
        CheckpointError with everything as it was."""
        problems = []
        try:
            epoch, iteration = int(state["epoch"]), int(state["iteration"])
            in_epoch, trained = bool(state["in_epoch"]), bool(state.get("trained", False))
            last_lr = state["last_lr"]
            history = [dict(h) for h in state["history"]]
            rng = state["rng"]
            np.random.RandomState().set_state(rng["numpy"])
            gpu_seed = rng["gpu_seed"]
            names = [c["class"] for c in state["callbacks"]]
            train_metrics = state["train_metrics"]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: cannot resume: the Trainer's state is damaged "
                                  f"({type(e).__name__}: {e})") from None
        if epoch < 0 or iteration < 0:
            problems.append(f"negative counts (epoch {epoch}, iteration {iteration})")
        if (self.scheduler is None) != ("scheduler" not in state):
            problems.append("the checkpoint was written "
                            + ("with" if "scheduler" in state else "without")
                            + " a scheduler, and this Trainer has "
                            + ("none" if self.scheduler is None else "one"))
        mine = [type(cb).__name__ for cb in self.callbacks]
        if names != mine:
            problems.append(f"the checkpoint has the callbacks {names}, this Trainer {mine}")
        if not isinstance(train_metrics, list) or len(train_metrics) != len(self._train_metrics):
            problems.append("the checkpoint has another number of metrics")
        for name, _ in self._loaders():
            if name not in state:
                problems.append(f"the checkpoint holds no state for the {name}")
        metrics = []
        if not problems:
            for m, s in zip(self._train_metrics, train_metrics):
                twin = copy.deepcopy(m)
                try:
                    twin.load_state_dict(s)
                except (KeyError, TypeError, ValueError) as e:
                    problems.append(f"metric {m.name!r}: {e}")
                metrics.append(twin)
        if problems:
            raise CheckpointError(f"{where}: cannot resume: " + "; ".join(problems))
        # loaders, scheduler and callbacks: loaded now, put back if one refuses its state
        parts = [(name, loader, state[name]) for name, loader in self._loaders()]
        if self.scheduler is not None:
            parts.append(("scheduler", self.scheduler, state["scheduler"]))
        parts += [(f"callback {type(cb).__name__}", cb, s["state"])
                  for cb, s in zip(self.callbacks, state["callbacks"])]
        done = []
        try:
            for name, part, s in parts:
                before = part.state_dict()
                try:
                    part.load_state_dict(s)
                except (KeyError, TypeError, ValueError) as e:
                    raise CheckpointError(f"{where}: cannot resume: {name}: {e}") from None
                done.append((part, before))
        except BaseException:
            for part, before in reversed(done):
                part.load_state_dict(before)
            raise

        def finish():
            if self.scheduler is not None:  # again: the optimizer's rate came from the file
                self.scheduler.load_state_dict(state["scheduler"])
            self._train_metrics = metrics
            self.epoch, self.iteration = epoch, iteration
            self._in_epoch, self._trained = in_epoch, trained and in_epoch
            self._last_lr = last_lr
            self.history = history
            self._gpu_seed = gpu_seed
            np.random.set_state(rng["numpy"])  # noqa: NPY002  (last: after init draws)

        return finish

    def _reseed_gpu(self) -> None:
        """On the GPU, reseed CuPy's generator at each epoch's start, from a saved base.

        CuPy's generator has no state to save and restore, so a GPU run draws its random
        numbers (dropout masks) from a seed per epoch instead: the base is drawn once from
        CuPy's generator (which ``cupy.random.seed`` decides) and kept in checkpoints, so a
        run resumed at an epoch boundary draws what the uninterrupted run drew.
        """
        on_gpu = getattr(self.train_loader, "gpu", False) or any(
            p.data is not None and not isinstance(p.data, np.ndarray)
            for p in self.model.params()
        )
        if not on_gpu or not cuda.gpu_enable:
            return
        cp = cuda.cupy
        if self._gpu_seed is None:
            self._gpu_seed = int(cp.random.randint(0, 2**31 - 1))
        cp.random.seed((self._gpu_seed + 1_000_003 * self.epoch) % (2**63))
