import os
import zipfile

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


# =============================================================================
# safetensors: the same guarantees as npz
# =============================================================================
def _net():
    from tests.test_layers import trained_net

    return trained_net()


def _fresh():
    from tests.test_layers import Net

    return Net()


def test_safetensors_round_trip_is_exact_and_readable_elsewhere(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from tests.test_layers import assert_same_state

    a, b = _net(), _fresh()
    path = tmp_path / "net.safetensors"
    a.save_weights(path)
    b.load_weights(path)
    assert_same_state(a, b)
    # any safetensors reader gets the arrays under the state_dict keys
    other = st.load_file(str(path))
    state = a.state_dict()
    assert sorted(other) == sorted(state)
    for k, v in state.items():
        assert other[k].dtype == v.dtype
        np.testing.assert_array_equal(other[k], v)
    # the saved order is kept (the format itself sorts by dtype and name)
    assert list(serialization.load_arrays(path)) == list(state)
    assert os.listdir(tmp_path) == ["net.safetensors"]
    # files written by others load too (no dezero checksums in them)
    st.save_file({k: np.ascontiguousarray(v) for k, v in state.items()},
                 str(tmp_path / "o.safetensors"))
    c = _fresh()
    c.load_weights(tmp_path / "o.safetensors")
    assert_same_state(a, c)


def test_format_follows_the_extension(tmp_path):
    pytest.importorskip("safetensors")
    net = _net()
    net.save_weights(tmp_path / "a.SafeTensors")
    net.save_weights(tmp_path / "b.npz")
    net.save_weights(tmp_path / "c")
    assert not zipfile.is_zipfile(tmp_path / "a.SafeTensors")
    assert zipfile.is_zipfile(tmp_path / "b.npz") and zipfile.is_zipfile(tmp_path / "c")
    # an npz named .safetensors is not read as npz: the extension decides, as for writing
    os.replace(tmp_path / "b.npz", tmp_path / "b.safetensors")
    with pytest.raises(CheckpointError, match=r"b\.safetensors.*truncated, corrupted"):
        _fresh().load_weights(tmp_path / "b.safetensors")


def test_failed_safetensors_save_leaves_the_old_file(tmp_path, monkeypatch):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "w.safetensors"
    _net().save_weights(path)
    original = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(st, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        _fresh().save_weights(path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["w.safetensors"]


@pytest.mark.parametrize("cut", [0, 7, 10, 200, 0.5, -1])
def test_truncated_safetensors_raises_checkpoint_error(tmp_path, cut):
    pytest.importorskip("safetensors")
    path = tmp_path / "w.safetensors"
    _net().save_weights(path)
    raw = path.read_bytes()
    n = int(len(raw) * cut) if isinstance(cut, float) else (cut % len(raw))
    path.write_bytes(raw[:n])
    with pytest.raises(CheckpointError, match=r"w\.safetensors.*truncated, corrupted"):
        _fresh().load_weights(path)


def test_every_single_byte_flip_in_safetensors_is_detected(tmp_path):
    pytest.importorskip("safetensors")
    layer = L.Linear(2, in_size=2)
    path = tmp_path / "w.safetensors"
    layer.save_weights(path)
    raw = path.read_bytes()
    undetected = []
    for pos in range(len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= 0x55
        path.write_bytes(bytes(bad))
        other = L.Linear(2, in_size=2)
        try:
            other.load_weights(path)
        except CheckpointError:
            continue
        if not all(np.array_equal(a, b) for a, b in
                   zip(layer.state_dict().values(), other.state_dict().values())):
            undetected.append(pos)
    assert undetected == []


def test_not_a_safetensors_file(tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "w.safetensors"
    path.write_text("hello, I am not a safetensors file")
    with pytest.raises(CheckpointError, match=r"w\.safetensors.*truncated, corrupted"):
        _fresh().load_weights(path)
    with pytest.raises(FileNotFoundError):
        _fresh().load_weights(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("first/b"), r"missing keys: \['first/b'\]"),
        (lambda s: s.__setitem__("extra/W", np.ones(2)), r"unexpected keys: \['extra/W'\]"),
        (lambda s: s.__setitem__("first/W", np.ones((2, 2), dtype=np.float32)),
         r"shape mismatch for 'first/W'"),
    ],
)
def test_mismatched_safetensors_names_path_and_key(tmp_path, edit, match):
    pytest.importorskip("safetensors")
    state = _net().state_dict()
    edit(state)
    path = tmp_path / "w.safetensors"
    serialization.save_safetensors(path, state)
    net = _fresh()
    before = net.state_dict()
    with pytest.raises(CheckpointError, match=r"w\.safetensors.*" + match):
        net.load_weights(path)
    assert all(np.array_equal(before[k], v) for k, v in net.state_dict().items())


def test_safetensors_missing_package_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_safetensors(name, *args, **kwargs):
        if name.startswith("safetensors"):
            raise ImportError("No module named 'safetensors'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_safetensors)
    with pytest.raises(ImportError, match=r'pip install "dezero-next\[safetensors\]"'):
        _net().save_weights(tmp_path / "w.safetensors")
    assert os.listdir(tmp_path) == []


def test_safetensors_from_the_device(xp, tmp_path):
    pytest.importorskip("safetensors")
    a = L.Linear(3, in_size=2)
    if xp is not np:
        a.to_gpu()
    a.save_weights(tmp_path / "w.safetensors")
    b = L.Linear(3, in_size=2)
    if xp is not np:
        b.to_gpu()
    b.load_weights(tmp_path / "w.safetensors")
    assert type(b.W.data) is type(a.W.data)  # loaded onto the layer's own device
    np.testing.assert_array_equal(L.cuda.as_numpy(b.W.data), L.cuda.as_numpy(a.W.data))
