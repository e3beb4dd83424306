"""DataLoader / SeqDataLoader state_dict(): order, position and RNG, for exact resumes."""
# ruff: noqa: NPY002  (dezero draws from the global RNG, as the book does; seeding it is the point)

import numpy as np
import pytest

from dezero import DataLoader, SeqDataLoader


def pairs(n=23):
    return list(zip(np.arange(n), np.arange(n) * 10))


def firsts(loader, n=None):
    out = []
    for i, (x, _) in enumerate(loader):
        if n is not None and i == n:
            break
        out.append(x.tolist())
    return out


@pytest.mark.parametrize("rng", [None, 5])
def test_state_dict_resumes_in_mid_epoch_and_into_later_epochs(rng):
    np.random.seed(1)
    loader = DataLoader(pairs(), 5, rng=rng)
    it = iter(loader)
    head = [next(it)[0].tolist() for _ in range(2)]
    state = loader.state_dict()
    global_state = np.random.get_state()
    rest = [next(it)[0].tolist() for _ in range(3)]
    with pytest.raises(StopIteration):
        next(it)
    later = firsts(loader) + firsts(loader)  # two more epochs: new orders

    np.random.seed(99)
    twin = DataLoader(pairs(), 5, rng=None if rng is None else 123)
    twin.load_state_dict(state)
    np.random.set_state(global_state)  # the Trainer saves and restores this one
    assert firsts(twin) == rest
    assert firsts(twin) + firsts(twin) == later
    assert sorted(v for batch in head + rest for v in batch) == list(range(23))
    assert state["iteration"] == 2 and state["index"].dtype == np.int64
    assert (state["rng"] is None) == (rng is None)


def test_own_generator_leaves_the_global_one_alone():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    loader = DataLoader(pairs(), 4, rng=np.random.default_rng(7))
    firsts(loader)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert firsts(DataLoader(pairs(), 4, rng=7)) == firsts(DataLoader(pairs(), 4, rng=7))
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator, an int seed"):
        DataLoader(pairs(), 4, rng="seed")


def test_load_state_dict_checks_before_changing_anything():
    loader = DataLoader(pairs(), 5)
    state = loader.state_dict()
    index = loader.index.copy()
    with pytest.raises(ValueError, match=r"the saved order has shape \(23,\).*expected \(30,\)"):
        DataLoader(pairs(30), 5).load_state_dict(state)
    bad = dict(state, iteration=9)
    with pytest.raises(ValueError, match="position 9 is outside an epoch of 5 batches"):
        loader.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"drew from NumPy's global generator, this one from "
                                         r"a Generator of its own"):
        DataLoader(pairs(), 5, rng=1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing keys \['rng'\]"):
        loader.load_state_dict({"index": index, "iteration": 0})
    np.testing.assert_array_equal(loader.index, index)


def test_seq_dataloader_state():
    data = list(zip(np.arange(40), np.arange(40)))
    loader = SeqDataLoader(data, batch_size=4)
    it = iter(loader)
    next(it), next(it), next(it)
    twin = SeqDataLoader(data, batch_size=4)
    twin.load_state_dict(loader.state_dict())
    assert firsts(twin) == [next(it)[0].tolist() for _ in range(7)]
    assert twin.iteration == 0 and firsts(twin)[0] == [0, 10, 20, 30]
