"""dezero.dataloaders: epochs, shuffling, batching paths, devices, SeqDataLoader."""

import numpy as np
import pytest

from dezero import cuda, transforms
from dezero.dataloaders import DataLoader, SeqDataLoader
from dezero.datasets import Dataset, SinCurve, Spiral


class Range(Dataset):
    def prepare(self):
        self.data = np.arange(10, dtype=np.float32).reshape(10, 1)
        self.label = np.arange(10, dtype=np.int32)


def _epoch(loader):
    return [(x.copy(), None if t is None else t.copy()) for x, t in loader]


def test_batches_cover_the_data_once_per_epoch():
    loader = DataLoader(Range(), batch_size=3)
    assert len(loader) == 4
    batches = _epoch(loader)
    assert [len(x) for x, _ in batches] == [3, 3, 3, 1]
    xs = np.concatenate([x[:, 0] for x, _ in batches])
    ts = np.concatenate([t for _, t in batches])
    assert sorted(xs.tolist()) == list(range(10))
    np.testing.assert_array_equal(xs, ts)  # data and labels stay paired
    assert xs.dtype == np.float32


def test_epochs_restart_and_reshuffle():
    loader = DataLoader(Range(), batch_size=4)
    first = np.concatenate([t for _, t in loader])
    second = np.concatenate([t for _, t in loader])  # a second `for` is a new epoch
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(10))
    assert first.tolist() != second.tolist()  # new order (seeded by the autouse fixture)


def test_shuffle_is_seedable():
    np.random.seed(3)  # noqa: NPY002  (the loader draws from the global RNG, like the book)
    a = np.concatenate([t for _, t in DataLoader(Range(), batch_size=4)])
    np.random.seed(3)  # noqa: NPY002
    b = np.concatenate([t for _, t in DataLoader(Range(), batch_size=4)])
    np.testing.assert_array_equal(a, b)


def test_no_shuffle_keeps_order_and_break_restarts():
    loader = DataLoader(Range(), batch_size=4, shuffle=False)
    for x, _ in loader:
        assert x[:, 0].tolist() == [0, 1, 2, 3]
        break
    assert [t.tolist() for _, t in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_next_and_stop_iteration():
    loader = DataLoader(Range(), batch_size=5, shuffle=False)
    assert loader.next()[1].tolist() == [0, 1, 2, 3, 4]
    assert next(loader)[1].tolist() == [5, 6, 7, 8, 9]
    with pytest.raises(StopIteration):
        loader.next()
    assert loader.next()[1].tolist() == [0, 1, 2, 3, 4]  # reset after the epoch ended


def test_reset():
    loader = DataLoader(Range(), batch_size=5, shuffle=False)
    loader.next()
    loader.reset()
    assert loader.iteration == 0 and loader.next()[1].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("batch_size", [0, -1])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a positive int, got {batch_size}"):
        DataLoader(Range(), batch_size=batch_size)
    with pytest.raises(ValueError, match="positive int"):
        SeqDataLoader(Range(), batch_size=batch_size)


def test_batch_size_type():
    with pytest.raises(TypeError, match="batch_size must be an int, got float"):
        DataLoader(Range(), batch_size=2.5)


def test_batches_gathered_by_indexing(monkeypatch):
    """The array path never calls __getitem__ and transforms once per batch."""
    calls = []

    class Counting(transforms.Flatten):
        def apply_batch(self, xs):
            calls.append(len(xs))
            return super().apply_batch(xs)

    ds = Spiral(transform=Counting())
    monkeypatch.setattr(Dataset, "__getitem__", lambda self, i: pytest.fail("per-sample path"))
    loader = DataLoader(ds, batch_size=100)
    for x, t in loader:
        assert x.shape == (100, 2) and x.dtype == np.float32 and t.dtype == np.int32
    assert calls == [100, 100, 100]


def test_plain_sequence_and_custom_dataset():
    pairs = [(np.full(2, i, dtype=np.float32), i) for i in range(5)]
    loader = DataLoader(pairs, batch_size=2, shuffle=False)
    batches = _epoch(loader)
    assert batches[0][0].tolist() == [[0, 0], [1, 1]] and batches[-1][1].tolist() == [4]

    class Unlabelled:
        def __getitem__(self, i):
            return np.ones(3) * i, None

        def __len__(self):
            return 3

    x, t = DataLoader(Unlabelled(), batch_size=3, shuffle=False).next()
    assert x.shape == (3, 3) and t is None


def test_to_gpu_without_cupy():
    loader = DataLoader(Range(), batch_size=2)
    assert loader.to_gpu() is loader and loader.gpu
    if not cuda.gpu_enable:
        with pytest.raises(RuntimeError, match="CuPy"):
            loader.next()
    loader.to_cpu()
    assert isinstance(loader.next()[0], np.ndarray)


@pytest.mark.gpu
def test_gpu_batches():
    loader = DataLoader(Range(), batch_size=4, gpu=True)
    x, t = loader.next()
    assert isinstance(x, cuda.cupy.ndarray) and isinstance(t, cuda.cupy.ndarray)


# -----------------------------------------------------------------------------
# SeqDataLoader
# -----------------------------------------------------------------------------
def test_seq_loader_streams():
    loader = SeqDataLoader(Range(), batch_size=3)  # segments [0..2], [3..5], [6..8]
    assert len(loader) == 3
    labels = [t.tolist() for _, t in loader]
    assert labels == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert [t.tolist() for _, t in loader] == labels  # restartable, never shuffled


def test_seq_loader_on_sincurve_is_continuous():
    ds = SinCurve()
    loader = SeqDataLoader(ds, batch_size=30)
    prev_t = None
    for x, t in loader:
        assert x.shape == (30, 1) and x.dtype == np.float32
        if prev_t is not None:
            np.testing.assert_array_equal(x, prev_t)  # each stream continues where it was
        prev_t = t
    assert loader.iteration == 0  # the epoch ended and the loader reset


def test_seq_loader_batch_larger_than_data():
    with pytest.raises(ValueError, match="batch_size 11 is larger than the data set"):
        SeqDataLoader(Range(), batch_size=11)
    assert len(SeqDataLoader(Range(), batch_size=10)) == 1
