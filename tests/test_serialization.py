import json
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
    assert not zipfile.is_zipfile(tmp_path / "a.SafeTensors")
    assert zipfile.is_zipfile(tmp_path / "b.npz")
    # an npz named .safetensors is not read as npz: the extension decides, as for writing
    os.replace(tmp_path / "b.npz", tmp_path / "b.safetensors")
    with pytest.raises(CheckpointError, match=r"b\.safetensors.*truncated, corrupted"):
        _fresh().load_weights(tmp_path / "b.safetensors")


@pytest.mark.parametrize("name", ["m.pt", "m.pth", "m.ckpt", "m.NPY", "m.npz.tmp"])
def test_other_extensions_are_refused_naming_both(tmp_path, name):
    net = _net()
    with pytest.raises(ValueError, match=r"save_weights: .*\.npz \(NumPy\) or \.safetensors"):
        net.save_weights(tmp_path / name)
    assert os.listdir(tmp_path) == []
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ValueError, match=r"load_weights: .*\.npz \(NumPy\) or \.safetensors"):
        net.load_weights(tmp_path / name)


def test_failed_safetensors_save_leaves_the_old_file(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    path = tmp_path / "w.safetensors"
    _net().save_weights(path)
    original = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
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


# =============================================================================
# safetensors: the checksum covers each header entry; reads go through a memory map
# =============================================================================
def _header(path):
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return raw, n, json.loads(raw[8:8 + n])


def _rewrite_header(path, edit):
    """Edit the header JSON of ``path`` in place, keeping its length (spaces pad it)."""
    raw, n, header = _header(path)
    edit(header)
    head = json.dumps(header, separators=(",", ":")).encode()
    assert len(head) <= n
    path.write_bytes(raw[:8] + head + b" " * (n - len(head)) + raw[8 + n:])


def _two_tensors(tmp_path):
    path = tmp_path / "w.safetensors"
    serialization.save_safetensors(path, {
        "first/W": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
        "first/b": np.linspace(2, 3, 6, dtype=np.float32).reshape(2, 3),
    })
    return path


@pytest.mark.parametrize(
    ("edit", "tensor"),
    [
        # the example: the same bytes read as int32 would be numbers around 1e9
        (lambda h: h["first/W"].__setitem__("dtype", "I32"), "first/W"),
        (lambda h: h["first/b"].__setitem__("shape", [3, 2]), "first/b"),
        # swap where two same-sized tensors live: each name would get the other's bytes
        (lambda h: (h["first/W"].__setitem__("data_offsets", h["first/b"]["data_offsets"]),
                    h["first/b"].__setitem__("data_offsets", [0, 24])), "first/"),
    ],
    ids=["dtype", "shape", "offsets"],
)
def test_an_edited_header_entry_is_refused_naming_the_tensor(tmp_path, edit, tensor):
    pytest.importorskip("safetensors")
    path = _two_tensors(tmp_path)
    _, _, header = _header(path)
    assert header["first/W"]["data_offsets"] == [0, 24]
    _rewrite_header(path, edit)
    with pytest.raises(CheckpointError, match=rf"w\.safetensors.*checksum mismatch for tensor "
                                              rf"'{tensor}"):
        serialization.load_safetensors(path)
    # lazily too: the tensor is checked when it is first read
    f = serialization.open_safetensors(path)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        [f[k] for k in f]


def _save_first_format(path, arrays):
    """A file exactly as dezero's first safetensors format wrote it (the safetensors package's
    writer; metadata "format" and a CRC-32 of each array's bytes only)."""
    import zlib

    st = pytest.importorskip("safetensors.numpy")
    crcs = {k: format(zlib.crc32(np.ascontiguousarray(v).view(np.uint8).reshape(-1)), "08x")
            for k, v in arrays.items()}
    metadata = {"format": "dezero-safetensors-1", "crc32": json.dumps(crcs)}
    path.write_bytes(st.save(dict(arrays), metadata=metadata))


def test_files_of_the_first_format_still_load_and_are_checked(tmp_path):
    from tests.test_layers import assert_same_state

    a = _net()
    path = tmp_path / "old.safetensors"
    _save_first_format(path, a.state_dict())
    b = _fresh()
    b.load_weights(path)
    assert_same_state(a, b)
    assert list(serialization.load_arrays(path)) == list(a.state_dict())  # the saved order
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # one bit of the last array's data
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"old\.safetensors.*checksum mismatch for tensor"):
        _fresh().load_weights(path)


def test_load_returns_read_only_views_of_a_memory_map(tmp_path):
    pytest.importorskip("safetensors")
    path = _two_tensors(tmp_path)
    arrays = serialization.load_safetensors(path)
    assert list(arrays) == ["first/W", "first/b"]
    for a in arrays.values():
        assert not a.flags.writeable
        base = a
        while not isinstance(base, np.memmap) and base.base is not None:
            base = base.base
        assert isinstance(base, np.memmap)
    np.testing.assert_array_equal(arrays["first/b"],
                                  np.linspace(2, 3, 6, dtype=np.float32).reshape(2, 3))


def test_open_safetensors_reads_lazily_with_metadata(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "hf.safetensors"
    # a file of another program (no dezero checksums), with Hugging Face's metadata
    st.save_file({"h.0.w": np.arange(6, dtype=np.float32).reshape(2, 3),
                  "wte": np.arange(4, dtype=np.int64), "flag": np.array([True, False])},
                 str(path), metadata={"format": "pt"})
    f = serialization.open_safetensors(path)
    assert f.metadata == {"format": "pt"} and not f.checksummed
    assert sorted(f) == ["flag", "h.0.w", "wte"] and len(f) == 3 and "wte" in f
    assert f.shape("h.0.w") == (2, 3) and f.dtype("wte") == np.int64
    np.testing.assert_array_equal(f["wte"], np.arange(4))
    assert f["flag"].dtype == np.bool_
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        f["nope"]
    # dezero writes metadata for others (transformers asks for format "pt") beside its own
    serialization.save_safetensors(tmp_path / "d.safetensors", dict(f), metadata={"format": "pt"})
    g = serialization.open_safetensors(tmp_path / "d.safetensors")
    assert g.metadata["format"] == "pt" and g.checksummed
    assert st.load_file(str(tmp_path / "d.safetensors"))["h.0.w"].shape == (2, 3)
    with pytest.raises(ValueError, match="reserved"):
        serialization.save_safetensors(tmp_path / "e.safetensors", {}, metadata={"dezero_x": "1"})
    with pytest.raises(TypeError, match="str to str"):
        serialization.save_safetensors(tmp_path / "e.safetensors", {}, metadata={"n": 1})
    assert not (tmp_path / "e.safetensors").exists()


def test_bf16_tensors_are_widened_to_float32(tmp_path):
    pytest.importorskip("safetensors")
    values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")  # exact in bfloat16
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
    f = serialization.open_safetensors(path)
    assert f.dtype("x") == np.float32
    np.testing.assert_array_equal(f["x"], values)


_RSS_PROBE = r"""
import os, sys
import numpy as np
import dezero.layers as L
from dezero import serialization
from dezero.models import Sequential

def memory():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out

mode, path, expect = sys.argv[1], sys.argv[2], float(sys.argv[3])
model = Sequential(*[L.Linear(2048, in_size=2048, nobias=True) for _ in range(8)])
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
except OSError:
    pass
before = memory()
if mode == "arrays":
    arrays = serialization.load_safetensors(path)
    total = sum(float(a.sum(dtype=np.float64)) for a in arrays.values())
else:
    model.load_weights(path)
    total = sum(float(p.data.sum(dtype=np.float64)) for p in model.params())
after = memory()
assert abs(total - expect) < 1e-6 * max(1.0, abs(expect)), (total, expect)
print((after["VmHWM"] - before["VmRSS"]) / os.path.getsize(path))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("mode", ["arrays", "load_weights"])
def test_a_load_holds_the_file_once(tmp_path, mode):
    # 128 MiB of weights; the old load (read the file, then let the package copy it into
    # arrays) peaked at 2.1x the file size above the model, a mapped load at 1.0-1.15x
    pytest.importorskip("safetensors")
    import subprocess
    import sys

    from dezero.models import Sequential

    model = Sequential(*[L.Linear(2048, in_size=2048, nobias=True) for _ in range(8)])
    path = tmp_path / "big.safetensors"
    model.save_weights(path)
    assert path.stat().st_size > 128 * 2**20
    expect = sum(float(p.data.sum(dtype=np.float64)) for p in model.params())
    del model
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, mode, str(path), repr(expect)],
        capture_output=True, text=True, timeout=300, check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stderr
    ratio = float(proc.stdout.split()[-1])
    assert ratio < 1.35, f"peak RSS grew by {ratio:.2f}x the file size during the load"
