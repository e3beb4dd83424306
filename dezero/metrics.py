"""dezero.metrics: quantities accumulated over batches, on the device, weighted by batch size.

A metric sees every batch through ``update(y, t)`` (the model's output and the labels) and
keeps running sums in arrays on the data's device, so that no batch makes the host wait for
the device; ``compute()`` reads the result once, at the end of an epoch. Sums of counts,
never means of means: an uneven last batch weighs what it holds.

>>> import numpy as np
>>> acc = Accuracy()
>>> acc.update(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), np.array([1, 1, 1]))
>>> acc.update(np.array([[0.6, 0.4]]), np.array([0]))
>>> acc.compute()   # 3 right out of 4, not the mean (2/3 + 1) / 2 of the batch accuracies
0.75

Metrics of your own subclass ``Metric``: keep the running sums as named arrays in
``self.state`` (``reset()`` clears them), fill them in ``update`` and read them in
``compute``. ``state_dict()``, ``load_state_dict()`` and the sum over processes
(``allreduce(comm)``) then come for free.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dezero import cuda
from dezero.core import Variable

__all__ = [
    "F1",
    "Accuracy",
    "ConfusionMatrix",
    "Mean",
    "MeanLoss",
    "Metric",
    "Precision",
    "Recall",
    "TopKAccuracy",
]


def _array(x):
    """The array inside a Variable (or ``x`` itself)."""
    return x.data if isinstance(x, Variable) else x


class Metric:
    """Base class: running sums in ``self.state`` (name -> device array), one result.

    Subclasses set ``name`` (the key in the Trainer's history) and implement ``update`` and
    ``compute``; ``_add(key, value)`` adds an array (or scalar) to a running sum.
    """

    name = "metric"

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name
        self.state: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.state = {}

    def update(self, y, t) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement update(y, t)")

    def compute(self):
        raise NotImplementedError(f"{type(self).__name__} must implement compute()")

    def _add(self, key: str, value) -> None:
        current = self.state.get(key)
        if current is None:
            self.state[key] = value
            return
        if isinstance(current, (np.ndarray, np.generic)) and not isinstance(
            value, (np.ndarray, np.generic, int, float)
        ):
            current = cuda.as_cupy(current)  # loaded from a checkpoint, now fed GPU batches
        self.state[key] = current + value

    def _get(self, key: str, default=0):
        value = self.state.get(key)
        return default if value is None else cuda.as_numpy(value)

    # --- saving and distributed runs ------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """The running sums as NumPy arrays (for a checkpoint taken in mid-epoch)."""
        return {k: np.array(cuda.as_numpy(v)) for k, v in self.state.items()}

    def load_state_dict(self, state) -> None:
        self.state = {k: np.array(v) for k, v in state.items()}

    def allreduce(self, comm) -> None:
        """Replace the running sums by their sums over every process of ``comm``.

        ``comm`` is a ``dezero.distributed`` communicator (anything with ``allreduce(array,
        op="sum")``). Every process must hold the same keys, so call it after at least one
        batch on each.
        """
        self.state = {k: comm.allreduce(v, op="sum") for k, v in sorted(self.state.items())}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(Metric):
    """The mean of ``fn(y, t)`` over every sample, each batch weighted by its size.

    ``fn`` returns the batch mean (a Variable or array, like ``F.accuracy``); the batch size
    is ``len(t)``.

    >>> import numpy as np
    >>> m = Mean(lambda y, t: np.mean(y), name="mean_y")
    >>> m.update(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    >>> m.update(np.array([7.0]), np.zeros(1))
    >>> m.compute()
    3.25
    """

    def __init__(self, fn: Callable, name: str | None = None):
        super().__init__(name if name is not None else getattr(fn, "__name__", "mean"))
        self.fn = fn

    def update(self, y, t) -> None:
        n = len(t)
        value = _array(self.fn(y, t))
        value = value.astype(np.float64) if hasattr(value, "astype") else float(value)
        self._add("total", value * n)
        self._add("count", n)

    def compute(self) -> float:
        count = int(self._get("count"))
        return float(self._get("total") / count) if count else float("nan")


class MeanLoss(Metric):
    """The mean loss over samples: ``update(loss, t)`` with the batch's mean loss.

    The Trainer keeps one for its ``loss`` and ``val_loss``.
    """

    name = "loss"

    def update(self, loss, t) -> None:
        n = len(t)
        self._add("total", _array(loss).astype(np.float64) * n)
        self._add("count", n)

    def compute(self) -> float:
        count = int(self._get("count"))
        return float(self._get("total") / count) if count else float("nan")


class TopKAccuracy(Metric):
    """The fraction of samples whose label is among the ``k`` highest scores.

    Ties at the k-th score count in the label's favour only if it is within the first k
    of a stable descending sort (as ``argsort`` orders them).
    """

    def __init__(self, k: int = 5, name: str | None = None):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        super().__init__(name if name is not None else f"top{k}_acc")
        self.k = int(k)

    def update(self, y, t) -> None:
        y, t = _array(y), _array(t)
        xp = cuda.get_array_module(y)
        t = t.reshape(-1)
        scores = y.reshape(len(t), -1)
        if self.k == 1:
            hit = scores.argmax(axis=1) == t
        else:
            if self.k > scores.shape[1]:
                raise ValueError(
                    f"{type(self).__name__}: k={self.k} but the output has only "
                    f"{scores.shape[1]} classes"
                )
            top = xp.argsort(-scores, axis=1, kind="stable")[:, : self.k]
            hit = (top == t[:, None]).any(axis=1)
        self._add("correct", hit.sum(dtype=np.int64))
        self._add("count", len(t))

    def compute(self) -> float:
        count = int(self._get("count"))
        return int(self._get("correct")) / count if count else float("nan")


class Accuracy(TopKAccuracy):
    """The fraction of samples whose highest score is at their label (``argmax(y) == t``)."""

    def __init__(self, name: str = "acc"):
        super().__init__(1, name)


class ConfusionMatrix(Metric):
    """Counts ``(true class, predicted class)``: an (n_classes, n_classes) int64 array.

    ``n_classes`` defaults to the size of the output's last axis at the first batch. Rows
    are the true classes, columns the predicted ones (``argmax(y)``).

    >>> import numpy as np
    >>> cm = ConfusionMatrix()
    >>> cm.update(np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]]), np.array([0, 0, 1]))
    >>> cm.compute()
    array([[1, 1],
           [1, 0]])
    """

    name = "confusion"

    def __init__(self, n_classes: int | None = None, name: str | None = None):
        super().__init__(name)
        self.n_classes = n_classes

    def update(self, y, t) -> None:
        y, t = _array(y), _array(t)
        xp = cuda.get_array_module(y)
        t = t.reshape(-1)
        scores = y.reshape(len(t), -1)
        if self.n_classes is None:
            self.n_classes = scores.shape[1]
        C = self.n_classes
        pred = scores.argmax(axis=1).astype(np.int64)
        counts = xp.bincount(t.astype(np.int64) * C + pred, minlength=C * C)
        if counts.size != C * C:  # a label >= n_classes
            raise ValueError(
                f"{type(self).__name__}: a label or prediction lies outside the "
                f"{C} classes (labels up to {int(t.max())})"
            )
        self._add("matrix", counts.reshape(C, C))

    def matrix(self) -> np.ndarray:
        if "matrix" not in self.state:
            C = self.n_classes or 0
            return np.zeros((C, C), dtype=np.int64)
        return self._get("matrix").astype(np.int64)

    def compute(self) -> np.ndarray:
        return self.matrix()

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        if "matrix" in self.state:
            self.n_classes = self.state["matrix"].shape[0]


class _MacroAverage(ConfusionMatrix):
    """Per-class scores from the confusion matrix, averaged over the classes present.

    A class is present when it occurs among the labels or the predictions; a class whose
    denominator is 0 scores 0 (scikit-learn's ``zero_division=0``).
    """

    def _per_class(self, tp, fp, fn):
        raise NotImplementedError

    def compute(self) -> float:
        m = self.matrix().astype(np.float64)
        tp = np.diag(m)
        fp = m.sum(axis=0) - tp  # predicted as the class, labelled otherwise
        fn = m.sum(axis=1) - tp  # labelled as the class, predicted otherwise
        present = (m.sum(axis=0) + m.sum(axis=1)) > 0
        if not present.any():
            return float("nan")
        return float(self._per_class(tp, fp, fn)[present].mean())


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


class Precision(_MacroAverage):
    """Macro-averaged precision: the mean over classes of ``tp / (tp + fp)``."""

    name = "precision"

    def _per_class(self, tp, fp, fn):
        return _ratio(tp, tp + fp)


class Recall(_MacroAverage):
    """Macro-averaged recall: the mean over classes of ``tp / (tp + fn)``."""

    name = "recall"

    def _per_class(self, tp, fp, fn):
        return _ratio(tp, tp + fn)


class F1(_MacroAverage):
    """Macro-averaged F1: the mean over classes of ``2 tp / (2 tp + fp + fn)``."""

    name = "f1"

    def _per_class(self, tp, fp, fn):
        return _ratio(2 * tp, 2 * tp + fp + fn)
