"""Mini-batch iterators over a Dataset: DataLoader (shuffled batches) and SeqDataLoader.

Batches are gathered with ``dataset.get_batch(indices)`` (array indexing plus one
vectorised transform per batch) when the dataset provides it, else sample by sample.
"""

from __future__ import annotations

import math

import numpy as np

from dezero import cuda

__all__ = ["DataLoader", "SeqDataLoader"]


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    return int(batch_size)


def _check_part(part, batch_size):
    if (not isinstance(part, (tuple, list)) or len(part) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       for v in part) or not 0 <= part[0] < part[1]):
        raise ValueError(f"part must be (k, n) with 0 <= k < n, got {part!r}")
    if batch_size < part[1]:
        raise ValueError(f"batch_size {batch_size} is smaller than the number of parts, "
                         f"{part[1]}: some part of every batch would be empty")
    return int(part[0]), int(part[1])


class DataLoader:
    """Iterate over ``dataset`` in mini-batches ``(x, t)``.

    Parameters
    ----------
    dataset : Dataset or sequence of (x, t) pairs
    batch_size : int
        Samples per batch (the last batch of an epoch may be smaller).
    shuffle : bool
        Draw a new random order at the start of every epoch (as the book's loader does, the
        order of the next epoch is drawn as soon as one ends).
    gpu : bool
        Return CuPy arrays (see ``to_gpu``).
    rng : numpy.random.Generator or int, optional
        Where the orders come from: a Generator of the loader's own (an int seeds a new
        one). By default NumPy's global generator, so ``np.random.seed`` decides them.
    part : (int, int), optional
        ``(k, n)``: yield only the ``k``-th of ``n`` contiguous parts of each batch (equal
        when ``n`` divides the batch, else differing by one sample), the share of process
        ``k`` of ``n`` in data-parallel training (``dezero.distributed``). A final batch
        with fewer than ``n`` samples is dropped (a part would be empty).

    A ``for`` loop over the loader runs one epoch; the next ``for`` starts a new one (also
    after a ``break``). ``len(loader)`` is the number of batches per epoch. ``t`` is None
    for an unlabelled data set. ``state_dict()`` / ``load_state_dict()`` save and restore
    the order, the position in the epoch and the loader's own Generator, so that a resumed
    run sees the same batches (the global generator, when the loader uses it, is the
    caller's to save: ``dezero.training.Trainer`` checkpoints do).

    >>> from dezero.datasets import Spiral
    >>> loader = DataLoader(Spiral(), batch_size=128)
    >>> [x.shape[0] for x, t in loader], len(loader)
    ([128, 128, 44], 3)
    """

    def __init__(self, dataset, batch_size, shuffle=True, gpu=False, rng=None, *, part=None):
        if rng is not None and not isinstance(rng, np.random.Generator):
            if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)):
                raise TypeError(
                    f"rng must be a numpy.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__}"
                )
            rng = np.random.default_rng(int(rng))
        self.rng = rng
        self._resumed = False
        self.dataset = dataset
        self.batch_size = _check_batch_size(batch_size)
        self.shuffle = shuffle
        self.gpu = gpu
        self.data_size = len(dataset)
        self.max_iter = math.ceil(self.data_size / self.batch_size)
        self.part = None if part is None else _check_part(part, self.batch_size)
        if self.part is not None:
            tail = self.data_size % self.batch_size
            if tail and tail < self.part[1]:
                self.max_iter -= 1
        self.reset()

    def reset(self):
        """Start a new epoch: iteration 0 and (when shuffling) a new order."""
        self.iteration = 0
        self._resumed = False
        if not self.shuffle:
            self.index = np.arange(self.data_size)
        elif self.rng is not None:
            self.index = self.rng.permutation(self.data_size)
        else:
            self.index = np.random.permutation(self.data_size)  # noqa: NPY002  (seedable)

    def __len__(self):
        return self.max_iter

    def __iter__(self):
        if self._resumed:  # load_state_dict: continue where the saved run was
            self._resumed = False
        elif self.iteration:  # an epoch left half-way: start afresh
            self.reset()
        return self

    # --- resuming -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """The order of this epoch, the position in it and the loader's own RNG state.

        ``{'index': int64 array, 'iteration': int, 'batch_size': int, 'rng': dict or None}``;
        ``'rng'`` is the ``bit_generator.state`` of the loader's own Generator (None when it
        draws from NumPy's global generator, whose state ``np.random.get_state()`` gives).

        >>> loader = DataLoader(list(zip(range(10), range(10))), batch_size=4, rng=0)
        >>> first = next(iter(loader))
        >>> state = loader.state_dict()
        >>> twin = DataLoader(list(zip(range(10), range(10))), batch_size=4, rng=1)
        >>> twin.load_state_dict(state)
        >>> [x.tolist() for x, _ in twin]  # the rest of the epoch, where the saved one was
        [[3, 5, 9, 0], [8, 1]]
        >>> [next(loader)[0].tolist() for _ in range(2)]
        [[3, 5, 9, 0], [8, 1]]
        """
        return {
            "index": np.array(self.index, dtype=np.int64),
            "iteration": int(self.iteration),
            "batch_size": self.batch_size,
            "rng": None if self.rng is None else self.rng.bit_generator.state,
        }

    def load_state_dict(self, state) -> None:
        """Restore ``state_dict()``: the next ``for`` loop continues from the saved batch.

        A state saved in the middle of an epoch must come from a loader of the same batch
        size (the position counts batches); at an epoch's start any batch size resumes.

        Raises:
            ValueError: an order of another length than the data set, a position outside
                the epoch, a mid-epoch state of another batch size, or an RNG state for a
                loader without its own Generator (or the reverse); nothing is changed then.
        """
        if not hasattr(state, "keys"):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a dict, got "
                             f"{type(state).__name__}")
        missing = [k for k in ("index", "iteration", "rng") if k not in state]
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing keys {missing}")
        index = np.asarray(state["index"])
        iteration = state["iteration"]
        if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: 'iteration' must be an "
                             f"int, got {iteration!r}")
        iteration = int(iteration)
        problems = []
        saved_batch = state.get("batch_size")
        if saved_batch is not None and int(saved_batch) != self.batch_size and iteration:
            problems.append(
                f"the state was saved in the middle of an epoch (batch {iteration}) with "
                f"batch_size {int(saved_batch)}, and this loader has batch_size "
                f"{self.batch_size}: resume with --batch-size {int(saved_batch)} (the same "
                f"batch size), or from a checkpoint taken at an epoch's end"
            )
        if index.shape != (self.data_size,) or index.dtype.kind not in "iu":
            problems.append(
                f"the saved order has shape {index.shape}, expected ({self.data_size},) "
                f"integers (got dtype {index.dtype}; is this the same data set?)"
            )
        if not 0 <= iteration <= self.max_iter:
            problems.append(f"position {iteration} is outside an epoch of {self.max_iter} batches")
        rng = state["rng"]
        if (rng is None) != (self.rng is None):
            problems.append(
                "the saved loader drew from "
                + ("NumPy's global generator" if rng is None else "a Generator of its own")
                + ", this one from "
                + ("NumPy's global generator" if self.rng is None else "a Generator of its own")
            )
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        if rng is not None:
            self.rng.bit_generator.state = rng
        self.index = index.astype(np.int64, copy=True)
        self.iteration = iteration
        self._resumed = True

    def _gather(self, indices):
        get_batch = getattr(self.dataset, "get_batch", None)
        if get_batch is not None:
            x, t = get_batch(indices)
        else:
            samples = [self.dataset[int(i)] for i in indices]
            x = np.stack([np.asarray(s[0]) for s in samples])
            labels = [s[1] for s in samples]
            t = None
            if any(v is not None for v in labels):
                t = np.stack([np.asarray(v) for v in labels])
        if self.gpu:
            x = cuda.as_cupy(x)
            t = None if t is None else cuda.as_cupy(t)
        return x, t

    def __next__(self):
        if self.iteration >= self.max_iter:
            self.reset()
            raise StopIteration
        i, size = self.iteration, self.batch_size
        indices = self.index[i * size : (i + 1) * size]
        if self.part is not None:  # this process's contiguous share of the batch
            k, (q, extra) = self.part[0], divmod(len(indices), self.part[1])
            start = k * q + min(k, extra)
            indices = indices[start:start + q + (k < extra)]
        batch = self._gather(indices)
        self.iteration += 1
        return batch

    def next(self):
        """The next batch (the book's spelling of ``next(loader)``)."""
        return self.__next__()

    def to_cpu(self):
        """Return NumPy batches from now on."""
        self.gpu = False
        return self

    def to_gpu(self):
        """Return CuPy batches from now on (checked when a batch is made)."""
        self.gpu = True
        return self


class SeqDataLoader(DataLoader):
    """Batches for truncated BPTT: ``batch_size`` parallel streams through a sequence.

    The data set is cut into ``batch_size`` contiguous segments of ``len(dataset) //
    batch_size`` steps; batch k holds step k of every segment, in order (no shuffling). An
    epoch is one pass over the segments: ``len(dataset) // batch_size`` batches.

    >>> from dezero.datasets import SinCurve
    >>> loader = SeqDataLoader(SinCurve(), batch_size=3)
    >>> x, t = loader.next()
    >>> x.shape, len(loader)
    ((3, 1), 333)
    """

    def __init__(self, dataset, batch_size, gpu=False):
        batch_size = _check_batch_size(batch_size)
        if batch_size > len(dataset):
            raise ValueError(
                f"SeqDataLoader: batch_size {batch_size} is larger than the data set "
                f"({len(dataset)} steps); each of the batch_size streams needs at least one step"
            )
        super().__init__(dataset, batch_size, shuffle=False, gpu=gpu)
        self.jump = self.data_size // self.batch_size
        # Each stream covers exactly its own segment (the original ran ceil(N / B) steps, so
        # the last steps of a stream read the start of the next one).
        self.max_iter = self.jump

    def __next__(self):
        if self.iteration >= self.max_iter:
            self.reset()
            raise StopIteration
        indices = np.arange(self.batch_size) * self.jump + self.iteration
        batch = self._gather(indices)
        self.iteration += 1
        return batch
