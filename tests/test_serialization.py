import os

import numpy as np
import pytest

import dezero.layers as L
import dezero.optimizers as O
from dezero import serialization
from dezero.serialization import CheckpointError, atomic_write, load_npz, save_npz_atomic


def test_names_stay_importable_where_they_were():
    assert L.CheckpointError is O.CheckpointError is CheckpointError
    assert L.load_npz is load_npz and L.save_npz_atomic is save_npz_atomic
    assert O.save_checkpoint is serialization.save_checkpoint
    assert O.load_checkpoint is serialization.load_checkpoint
    assert issubclass(CheckpointError, ValueError)


def test_atomic_write_replaces_or_leaves_untouched(tmp_path):
    path = tmp_path / "f.bin"
    with atomic_write(path) as f:
        f.write(b"first")
    assert path.read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path) as f:
        f.write(b"half")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temporary file left behind


def test_npz_round_trip(tmp_path):
    arrays = {"a/W": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(3)}
    save_npz_atomic(tmp_path / "x.npz", arrays)
    got = load_npz(tmp_path / "x.npz")
    assert list(got) == ["a/W", "n"]
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype
        np.testing.assert_array_equal(got[k], v)
