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

import copy
import csv
import io
import math
import os
import sys
import time
from typing import Any, Callable

import numpy as np

from dezero import cuda
from dezero.core import no_grad, test_mode
from dezero.metrics import Mean, MeanLoss, Metric
from dezero.serialization import CheckpointError, atomic_write, load_checkpoint, save_checkpoint

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
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
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
            trainer.log(
                f"early stopping: {self.monitor} has not improved for {self.wait} epochs "
                f"(best {self._best.best:.6g} at epoch {self._best.best_epoch})"
            )

    def state_dict(self):
        return {"best": self._best.best, "best_epoch": self._best.best_epoch,
                "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state):
        self._best.best, self._best.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]


class ModelCheckpoint(Callback):
    """Write a resumable checkpoint every ``every`` epochs: the last ``keep_last`` and the best.

    Files go to ``directory``: ``epoch-0007.ckpt`` (the newest ``keep_last`` are kept;
    ``keep_last=0`` keeps none) and, with ``monitor`` (None turns it off), ``best.ckpt``,
    the checkpoint of the epoch with the best ``monitor`` value. Each file is a full
    ``Trainer.save_checkpoint`` (``trainer.fit(epochs, resume=path)`` continues from it),
    written atomically: a crash never leaves a half-written file under a checkpoint's name.
    ``ModelCheckpoint.latest(directory)`` is the newest one (or None).
    """

    order = 100
    root_only = True
    pattern = "epoch-{epoch:04d}.ckpt"
    best_name = "best.ckpt"

    def __init__(self, directory, keep_last: int = 3, monitor: str | None = "val_loss",
                 mode: str = "auto", every: int = 1):
        if keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
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

    @staticmethod
    def latest(directory) -> str | None:
        """The newest ``epoch-*.ckpt`` in ``directory``, or None when there is none."""
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            return None
        names = sorted(n for n in os.listdir(directory)
                       if n.startswith("epoch-") and n.endswith(".ckpt"))
        return os.path.join(directory, names[-1]) if names else None

    def on_epoch_end(self, trainer, logs):
        epoch = logs["epoch"]
        save_best = False
        if self._best is not None:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if self._best.improved(value):
                self._best.best, self._best.best_epoch = value, epoch
                save_best = True
        save_epoch = self.keep_last > 0 and epoch % self.every == 0
        if not (save_best or save_epoch):
            return
        os.makedirs(self.directory, exist_ok=True)
        drop = []
        if save_epoch:
            name = self.pattern.format(epoch=epoch)
            if name in self.saved:
                self.saved.remove(name)
            self.saved.append(name)
            drop, self.saved = self.saved[: -self.keep_last], self.saved[-self.keep_last :]
            # the state is updated first, so that the checkpoint holds it
            trainer.save_checkpoint(os.path.join(self.directory, name))
        if save_best:
            trainer.save_checkpoint(os.path.join(self.directory, self.best_name))
        for old in drop:
            path = os.path.join(self.directory, old)
            if os.path.exists(path):
                os.remove(path)

    def state_dict(self):
        best = (None, None) if self._best is None else (self._best.best, self._best.best_epoch)
        return {"saved": list(self.saved), "best": best[0], "best_epoch": best[1]}

    def load_state_dict(self, state):
        self.saved = list(state["saved"])
        if self._best is not None:
            self._best.best, self._best.best_epoch = state["best"], state["best_epoch"]


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
        self.keys = keys
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
def _make_train_step(model, optimizer, loss_fn, jit: bool):
    """The training step as a function of the batch: (output, loss). A closure over the
    model and optimizer, so that ``dezero.jit`` keys its tape on the model's layer modes."""

    def train_step(x, t):
        y = model(x)
        loss = loss_fn(y, t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        return y, loss

    if jit:
        from dezero.jit import jit as _jit

        return _jit(train_step)
    return train_step


class Trainer:
    """Train ``model`` with ``optimizer`` on ``loss_fn(model(x), t)`` over ``train_loader``.

    Parameters
    ----------
    model : Layer
    optimizer : Optimizer
        Already ``setup(model)``.
    loss_fn : callable
        ``loss_fn(y, t)`` -> a scalar Variable, the batch's mean loss
        (``F.softmax_cross_entropy``, ``F.mean_squared_error``).
    train_loader, val_loader : DataLoader
        Batches ``(x, t)``. After each epoch the model is evaluated on ``val_loader`` (when
        given) and its results go into the history as ``val_<name>``.
    metrics : list of Metric or f(y, t), optional
        Computed on the training batches and on ``val_loader`` (``dezero.metrics``; a
        function such as ``F.accuracy`` becomes ``Mean(f)``). The loss is always there.
    callbacks : list of Callback, optional
    scheduler : LRScheduler, optional
        Stepped after every update (``schedule_per='iteration'``) or at the end of every
        epoch (``'epoch'``).
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
        the jit rules in the README). Not with ``comm`` (the gradient averaging is not a
        replayable array operation).

    Attributes: ``epoch`` (epochs completed), ``iteration`` (updates made), ``history``
    (one dict per epoch: epoch, iteration, loss and the metrics, val_* values, lr, time in
    seconds), ``stop_training`` (set it to stop after the current batch, as EarlyStopping
    does at an epoch's end).
    """

    def __init__(self, model, optimizer, loss_fn: Callable, train_loader, val_loader=None,
                 metrics=None, callbacks=None, *, scheduler=None,
                 schedule_per: str = "iteration", comm=None, progress: bool | None = None,
                 verbose: bool = True, jit: bool = False):
        if schedule_per not in ("iteration", "epoch"):
            raise ValueError(f"schedule_per must be 'iteration' or 'epoch', got {schedule_per!r}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.train_loader, self.val_loader = train_loader, val_loader
        self.metrics = [_as_metric(m) for m in (metrics or ())]
        names = ["loss"] + [m.name for m in self.metrics]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"two metrics share the name(s) {clashes}; pass name=... to one")
        callbacks = list(callbacks or ())
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be dezero.training.Callback objects, got {cb!r}")
        # stable: equal orders keep the order given
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.scheduler, self.schedule_per = scheduler, schedule_per
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
        self._gpu_seed = None
        self._last_lr = None
        if jit and comm is not None:
            raise ValueError("Trainer: jit=True cannot be combined with comm (distributed "
                             "gradient averaging runs on the host, outside a replayed step)")
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
        ``fit`` again on the same Trainer also continues the count.
        """
        if resume is not None:
            self.load_checkpoint(resume)
        self.stop_training = False
        self._call("on_train_begin")
        while self.epoch < epochs and not self.stop_training:
            self._run_epoch(epochs)
        self._call("on_train_end")
        return self.history

    def _run_epoch(self, epochs: int) -> None:
        start = time.perf_counter()
        loader = self.train_loader
        continuing = self._in_epoch
        if not continuing:
            self._in_epoch = True
            for m in self._train_metrics:
                m.reset()
            self._reseed_gpu()
            self._call("on_epoch_begin")
        # next() on a DataLoader continues a half-done epoch (iter() would start a new one)
        batches = loader if continuing and hasattr(loader, "__next__") else iter(loader)
        done = getattr(loader, "iteration", 0) if batches is loader else 0
        bar = self._progress_bar(epochs, done)
        loss_metric, others = self._train_metrics[0], self._train_metrics[1:]
        lr_attr = getattr(self.optimizer, "lr_attr", "lr")
        while True:
            try:
                x, t = next(batches)
            except StopIteration:
                break
            if lr_attr:  # the rate this update uses
                self._last_lr = getattr(self.optimizer, lr_attr, None)
            y, loss = self._train_step(x, t)
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
                if bar is not None:
                    bar.close()
                return  # in mid-epoch: a later fit() (or a resume) finishes this epoch
        if bar is not None:
            bar.close()
        logs: dict[str, Any] = {"epoch": self.epoch + 1, "iteration": self.iteration}
        logs.update(self._results(self._train_metrics))
        if self.val_loader is not None:
            logs.update({"val_" + k: v for k, v in self.evaluate(self.val_loader).items()})
        if self._last_lr is not None:
            logs["lr"] = float(self._last_lr)  # the rate of the epoch's last update
        logs["time"] = time.perf_counter() - start
        self.epoch += 1
        self._in_epoch = False
        self.history.append(logs)
        if self.scheduler is not None and self.schedule_per == "epoch":
            self.scheduler.step()
        self.log(self._epoch_line(logs, epochs))
        self._call("on_epoch_end", logs)

    def evaluate(self, loader) -> dict[str, Any]:
        """The loss and the metrics over ``loader``, under ``no_grad()`` and ``test_mode()``.

        ``test_mode()`` runs every layer in test mode whatever its ``train()``/``eval()``
        mode, and leaves those modes as they are (training, in turn, respects them: a layer
        put in ``eval()``, such as a frozen BatchNorm, stays in test mode while training).
        Returns ``{'loss': ..., <metric name>: ...}``; in a distributed run the sums are
        taken over every process's batches.
        """
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

        It holds the model, the optimizer, the scheduler, the loaders' order and position,
        NumPy's global RNG, the epoch and iteration, the history, the running sums of an
        epoch in progress and the callbacks' state: ``fit(epochs, resume=path)`` continues
        bit for bit. Only rank 0 writes in a distributed run.
        """
        if not self.is_root:
            return
        save_checkpoint(path, self.model, self.optimizer, trainer=self.state_dict())

    def load_checkpoint(self, path) -> None:
        """Restore ``save_checkpoint(path)`` into this Trainer (its model may still be lazy).

        The model and the optimizer are checked before either changes; the Trainer's own
        state (callbacks, scheduler, loaders) is checked before any of it changes, after the
        model and optimizer were loaded. NumPy's global RNG is restored last, after
        whatever random draws building the model made.

        Raises:
            FileNotFoundError, CheckpointError (a ValueError) naming the path and the problem.
        """
        where = repr(os.fspath(path))
        extra = load_checkpoint(path, self.model, self.optimizer)
        state = extra.get("trainer")
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise CheckpointError(
                f"{where} is a model checkpoint without a Trainer's state "
                f"(written by dezero.serialization.save_checkpoint, not Trainer.save_checkpoint)"
            )
        self._load_state(state, where)

    def _load_state(self, state, where) -> None:
        problems = []
        if (self.scheduler is None) != ("scheduler" not in state):
            problems.append("the checkpoint was written "
                            + ("with" if "scheduler" in state else "without")
                            + " a scheduler, and this Trainer has "
                            + ("none" if self.scheduler is None else "one"))
        names = [c["class"] for c in state["callbacks"]]
        mine = [type(cb).__name__ for cb in self.callbacks]
        if names != mine:
            problems.append(f"the checkpoint has the callbacks {names}, this Trainer {mine}")
        if len(state["train_metrics"]) != len(self._train_metrics):
            problems.append("the checkpoint has another number of metrics")
        for name, _ in self._loaders():
            if name not in state:
                problems.append(f"the checkpoint holds no state for the {name}")
        if problems:
            raise CheckpointError(f"{where}: cannot resume: " + "; ".join(problems))
        try:
            for name, loader in self._loaders():
                loader.load_state_dict(state[name])
        except ValueError as e:
            raise CheckpointError(f"{where}: {e}") from None
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        for m, s in zip(self._train_metrics, state["train_metrics"]):
            m.load_state_dict(s)
        for cb, s in zip(self.callbacks, state["callbacks"]):
            cb.load_state_dict(s["state"])
        self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
        self._in_epoch = bool(state["in_epoch"])
        self._last_lr = state["last_lr"]
        self.history = [dict(h) for h in state["history"]]
        self._gpu_seed = state["rng"]["gpu_seed"]
        np.random.set_state(state["rng"]["numpy"])  # noqa: NPY002  (last: after init draws)

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
