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

Every metric that compares scores with class labels checks them in one place,
``Metric.check_scores_and_labels``: scores shaped (..., C) (the class axis last), integer
labels shaped like the scores without that axis (or with a trailing 1), in ``[0, C)``. Wrong
counts, one-hot or float labels, and more score columns than a ConfusionMatrix's classes are
a clear error, never a silently wrong number. On a GPU the range of the labels is checked on
the device and reported by ``compute()`` (no batch waits for the device).

Metrics of your own subclass ``Metric``: keep the running sums as named arrays in
``self.state`` (``reset()`` clears them), fill them in ``update`` (calling
``self.check_scores_and_labels(y, t)`` first if they compare scores with labels) and read them
in ``compute``. ``state_dict()``, ``load_state_dict()`` and the sum over processes
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


def _positive_int(who: str, what: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {what} must be a positive int, got {value!r}")
    return int(value)


def _batch_size(who: str, t, y=None) -> int:
    """The number of samples of a batch: ``len(t)`` (``len(y)`` when ``t`` is None)."""
    ref = y if t is None else t
    shape = getattr(_array(ref), "shape", None)
    if shape is None:
        shape = np.shape(ref)
    if not shape:
        raise ValueError(f"{who}: the labels must hold one entry per sample, got a scalar")
    return int(shape[0])


def _check_scalar(who: str, value, what: str) -> None:
    shape = getattr(value, "shape", ())
    if int(np.prod(shape)) != 1:
        raise ValueError(
            f"{who}: {what} must be one number per batch (the batch's mean), got an array of "
            f"shape {tuple(shape)}; reduce it (e.g. F.mean) before it reaches the metric"
        )


# the one key a metric adds on a GPU: labels seen outside [0, C), reported by compute()
_INVALID = "invalid_labels"


class Metric:
    """Base class: running sums in ``self.state`` (name -> device array), one result.

    Subclasses set ``name`` (the key in the Trainer's history) and implement ``update`` and
    ``compute``; ``_add(key, value)`` adds an array (or scalar) to a running sum.
    """

    name = "metric"

    def __init__(self, name: str | None = None):
        if name is not None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"{type(self).__name__}: name must be a non-empty str (the key "
                                f"in the history), got {name!r}")
            self.name = name
        self.state: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.state = {}

    def check_scores_and_labels(self, y, t, n_classes: int | None = None):
        """Check a batch of scores and class labels; return them as ``(scores, labels)``.

        ``y``: scores shaped ``(..., C)``, the class axis last (``(N, C)``, or ``(N, T, C)``
        for a sequence model); ``t``: integer labels shaped like ``y`` without its last axis
        (``(N,)``, or ``(N, 1)``). Returns ``scores`` reshaped to ``(M, C)`` and ``labels``
        to ``(M,)``, on the scores' device. ``n_classes``: the number of classes the metric
        counts (the scores must have exactly that many columns).

        Raises:
            TypeError: labels that are not integers (float, bool), scores that are not real
                numbers.
            ValueError: labels of another count or shape than the scores (one-hot labels
                included), scores without a class axis or with another number of columns
                than ``n_classes``, a label outside ``[0, C)`` (NumPy arrays at once; on a
                GPU the count of such labels is kept and ``compute()`` raises).
        """
        who = type(self).__name__
        y, t = _array(y), _array(t)
        if t is None:
            raise ValueError(f"{who}: the batch has no labels (t is None)")
        xp = cuda.get_array_module(y)
        if not isinstance(y, cuda.array_types):
            y = xp.asarray(y)
        if not isinstance(t, cuda.array_types):
            t = xp.asarray(t)
        if y.dtype.kind not in "iuf":
            raise TypeError(f"{who}: scores must be real numbers, got dtype {y.dtype}")
        if t.dtype.kind not in "iu":
            raise TypeError(
                f"{who}: integer labels are required (class indices), got labels of dtype "
                f"{t.dtype}; convert them with t.astype(int)"
            )
        if y.ndim < 2:
            raise ValueError(
                f"{who}: scores must have shape (N, C) (a column per class), got shape "
                f"{tuple(y.shape)}"
            )
        C = y.shape[-1]
        if t.shape != y.shape[:-1] and t.shape != (*y.shape[:-1], 1):
            if t.shape == y.shape and C > 1:
                raise ValueError(
                    f"{who}: labels of shape {tuple(t.shape)} look one-hot (the scores have "
                    f"shape {tuple(y.shape)}); pass class indices instead, t.argmax(axis=-1)"
                )
            raise ValueError(
                f"{who}: {t.size} labels of shape {tuple(t.shape)} for scores of shape "
                f"{tuple(y.shape)}; expected labels of shape {tuple(y.shape[:-1])}, one "
                f"per sample"
            )
        if n_classes is not None and n_classes != C:
            raise ValueError(
                f"{who}: the scores have {C} columns but the metric counts {n_classes} "
                f"classes (n_classes={n_classes})"
            )
        scores, labels = y.reshape(-1, C), t.reshape(-1)
        if labels.size:
            if xp is np:
                lo, hi = int(labels.min()), int(labels.max())
                if lo < 0 or hi >= C:
                    raise ValueError(
                        f"{who}: label {lo if lo < 0 else hi} is out of range for {C} classes "
                        f"(labels must be in [0, {C - 1}])"
                    )
            else:  # counted on the device; compute() reports it
                self._add(_INVALID, ((labels < 0) | (labels >= C)).sum(dtype=np.int64))
        return scores, labels

    def _raise_invalid(self) -> None:
        if _INVALID in self.state and int(self._get(_INVALID)):
            raise ValueError(
                f"{type(self).__name__}: {int(self._get(_INVALID))} label(s) out of range "
                f"(outside [0, C)) were passed to update() since the last reset()"
            )

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
        """Restore ``state_dict()`` (checked first: a mapping of names to numbers/arrays)."""
        self.state = self._checked_state(state)

    def _checked_state(self, state) -> dict[str, np.ndarray]:
        who = type(self).__name__
        if not hasattr(state, "items"):
            raise TypeError(f"{who}.load_state_dict: expected a dict, got {type(state).__name__}")
        out = {}
        for k, v in state.items():
            if not isinstance(k, str):
                raise TypeError(f"{who}.load_state_dict: keys must be str, got {k!r}")
            array = np.array(cuda.as_numpy(v))
            if array.dtype.kind not in "biuf":
                raise TypeError(
                    f"{who}.load_state_dict: {k!r} must hold numbers, got dtype {array.dtype}"
                )
            out[k] = array
        return out

    def allreduce(self, comm) -> None:
        """Replace the running sums by their sums over every process of ``comm``.

        ``comm`` is a ``dezero.distributed`` communicator (anything with ``allreduce(array,
        op="sum")``). Every process must hold the same keys, so call it after at least one
        batch on each.
        """
        if not callable(getattr(comm, "allreduce", None)):
            raise TypeError(f"{type(self).__name__}.allreduce: comm must be a communicator with "
                            f"allreduce(array, op='sum'), got {comm!r}")
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
        if not callable(fn):
            raise TypeError(f"Mean: fn must be a function f(y, t), got {fn!r}")
        super().__init__(name if name is not None else getattr(fn, "__name__", "mean"))
        self.fn = fn

    def update(self, y, t) -> None:
        n = _batch_size(type(self).__name__, t, y)
        value = _array(self.fn(y, t))
        _check_scalar(f"{type(self).__name__} ({self.name!r})", value, "fn(y, t)")
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
        n = _batch_size(type(self).__name__, t)
        loss = _array(loss)
        _check_scalar(type(self).__name__, loss, "the loss")
        value = loss.astype(np.float64) if hasattr(loss, "astype") else float(loss)
        self._add("total", value * n)
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
        scores, t = self.check_scores_and_labels(y, t)
        xp = cuda.get_array_module(scores)
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
        self._raise_invalid()
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
        self.n_classes = _positive_int(type(self).__name__, "n_classes", n_classes,
                                       allow_none=True)

    def update(self, y, t) -> None:
        scores, t = self.check_scores_and_labels(y, t, self.n_classes)
        xp = cuda.get_array_module(scores)
        C = self.n_classes = scores.shape[1]
        pred = scores.argmax(axis=1).astype(np.int64)
        # out-of-range labels (counted on a GPU, reported by compute()) are left out here
        ok = (t >= 0) & (t < C)
        codes = xp.where(ok, t.astype(np.int64) * C + pred, C * C)
        counts = xp.bincount(codes, minlength=C * C + 1)[: C * C]
        self._add("matrix", counts.reshape(C, C))

    def matrix(self) -> np.ndarray:
        """The counts so far: an (n_classes, n_classes) int64 NumPy array."""
        self._raise_invalid()
        if "matrix" not in self.state:
            C = self.n_classes or 0
            return np.zeros((C, C), dtype=np.int64)
        return self._get("matrix").astype(np.int64)

    def compute(self) -> np.ndarray:
        return self.matrix()

    def load_state_dict(self, state) -> None:
        checked = self._checked_state(state)
        matrix = checked.get("matrix")
        if matrix is not None:
            C = matrix.shape[0] if matrix.ndim == 2 else -1
            if matrix.ndim != 2 or matrix.shape[1] != C:
                raise ValueError(f"{type(self).__name__}.load_state_dict: the matrix must be "
                                 f"square, got shape {matrix.shape}")
            if self.n_classes is not None and self.n_classes != C:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: a matrix of {C} classes for a "
                    f"metric of n_classes={self.n_classes}"
                )
            self.n_classes = C
        self.state = checked


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
