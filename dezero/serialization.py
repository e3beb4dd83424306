"""dezero.serialization: every file format dezero reads or writes, in one place.

- ``.npz`` archives of named arrays (``save_npz_atomic`` / ``load_npz``), read without pickle;
- ``.safetensors`` files (``save_safetensors`` / ``load_safetensors``, extra ``safetensors``);
- ``save_arrays`` / ``load_arrays``, which pick one of the two by the file's extension
  (what ``Layer.save_weights`` / ``load_weights`` use);
- checkpoints (``save_checkpoint`` / ``load_checkpoint``): model, optimizer and extra state
  (epoch, RNG state, schedule) in one ``.npz`` file;
- ``CheckpointError``, the one error for a file or state dict that cannot be loaded.

Every write goes to a temporary file in the target's folder, is flushed to disk and then
renamed over the target (``atomic_write``), so a crash never leaves a half-written file.
Layers (``save_weights`` / ``load_weights``) and optimizers call these functions; this
module imports neither, so it sits below both.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import zipfile
import zlib
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Mapping

import numpy as np

from dezero import cuda

if TYPE_CHECKING:  # layers and optimizers import this module
    from dezero.layers import Layer
    from dezero.optimizers import Optimizer

__all__ = [
    "CheckpointError",
    "atomic_write",
    "load_arrays",
    "load_checkpoint",
    "load_npz",
    "load_safetensors",
    "save_arrays",
    "save_checkpoint",
    "save_npz_atomic",
    "save_safetensors",
]


class CheckpointError(ValueError):
    """A weights/checkpoint file or state dict that cannot be loaded (names path and problem)."""


# =============================================================================
# Atomic writes
# =============================================================================
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; rename it over ``path`` at exit.

    The file is flushed and fsync'ed before ``os.replace``, so ``path`` holds either its old
    content or the complete new one, never a half-written file. On an exception the
    temporary file is removed and ``path`` is left untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# =============================================================================
# .npz files: atomic write, pickle-free read
# =============================================================================
_COMMENT = "dezero-npz-1 arrays="


def save_npz_atomic(path, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` (name -> array) to the ``.npz`` file ``path`` atomically.

    The archive is written to a temporary file in the same folder, flushed to disk and then
    renamed over ``path`` (``os.replace``), so ``path`` never holds a half-written file.
    CuPy arrays are copied to the host; object arrays are refused (no pickle).
    """
    with atomic_write(path) as f, zipfile.ZipFile(
        f, "w", compression=zipfile.ZIP_STORED, allowZip64=True
    ) as zf:
        for key, value in arrays.items():
            array = np.asarray(cuda.as_numpy(value))
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
        # the member count, checked on load: zipfile itself would not notice a
        # damaged central directory that hides an entry
        zf.comment = f"{_COMMENT}{len(arrays)}".encode("ascii")


def _check_npy_header(member, info) -> None:
    """Refuse object arrays and headers that promise more data than the member holds."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        return  # rare newer headers: read_array checks them itself
    if dtype.hasobject:
        raise ValueError(f"{info.filename!r} holds Python objects, which need pickle")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > info.file_size:
        raise ValueError(
            f"{info.filename!r} declares {nbytes} bytes of data but holds {info.file_size}"
        )


def load_npz(path) -> dict[str, np.ndarray]:
    """Read every array of the ``.npz`` file ``path`` (``allow_pickle=False``).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: when the file is truncated, corrupted (CRC checked), not an
            ``.npz`` archive, or holds pickled objects; the message names the path.
    """
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        try:
            with zipfile.ZipFile(f) as zf:
                comment = zf.comment.decode("ascii", errors="replace")
                if comment.startswith(_COMMENT):
                    count = comment[len(_COMMENT):]
                    if not count.isdigit() or int(count) != len(zf.infolist()):
                        raise ValueError(
                            f"the archive lists {len(zf.infolist())} arrays, "
                            f"its footer says {count}"
                        )
                for info in zf.infolist():
                    if not info.filename.endswith(".npy"):
                        raise CheckpointError(
                            f"{path!r}: unexpected member {info.filename!r} (not an .npy array)"
                        )
                    with zf.open(info) as member:
                        _check_npy_header(member, info)
                    with zf.open(info) as member:
                        array = np.lib.format.read_array(member, allow_pickle=False)
                        if member.read(1):  # also reaches the end, where the CRC is checked
                            raise CheckpointError(
                                f"{path!r}: trailing bytes after array {info.filename!r}"
                            )
                    arrays[info.filename[:-4]] = array
        except CheckpointError:
            raise
        except Exception as e:  # whatever a damaged archive or header makes numpy/zipfile raise
            raise CheckpointError(
                f"cannot load {path!r}: the file is truncated, corrupted or not a dezero "
                f".npz file ({type(e).__name__}: {e})"
            ) from e
    return arrays


# =============================================================================
# .safetensors files (extra "safetensors"): atomic write, checksummed read
# =============================================================================
_SAFETENSORS_FORMAT = "dezero-safetensors-1"


def _safetensors_numpy():
    try:
        import safetensors.numpy
    except ImportError as e:
        raise ImportError(
            'reading or writing .safetensors files needs the safetensors package: '
            'pip install "dezero-next[safetensors]"'
        ) from e
    return safetensors.numpy


def _crc32(array: np.ndarray) -> str:
    # the bytes as the file stores them (little-endian, C order)
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return format(zlib.crc32(little.view(np.uint8).reshape(-1)), "08x")


def save_safetensors(path, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` (name -> array) to the ``.safetensors`` file ``path`` atomically.

    Written with the ``safetensors`` package's NumPy API, so any safetensors reader
    (``safetensors.numpy.load_file``, PyTorch, JAX) reads it. CuPy arrays are copied to
    the host. The header's metadata holds a CRC-32 of every array, which
    ``load_safetensors`` checks (the format itself has no checksum).
    """
    st = _safetensors_numpy()
    tensors: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        array = np.ascontiguousarray(cuda.as_numpy(value))
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{key!r}: a .safetensors file cannot hold dtype {array.dtype}")
        tensors[key] = array
    crcs = {key: _crc32(array) for key, array in tensors.items()}
    metadata = {"format": _SAFETENSORS_FORMAT, "crc32": json.dumps(crcs)}
    data = st.save(tensors, metadata=metadata)
    with atomic_write(path) as f:
        f.write(data)


def _safetensors_metadata(data: bytes) -> dict:
    (size,) = np.frombuffer(data[:8], dtype="<u8")
    header = json.loads(data[8:8 + int(size)].decode("utf-8"))
    return header.get("__metadata__") or {}


def load_safetensors(path) -> dict[str, np.ndarray]:
    """Read every array of the ``.safetensors`` file ``path`` (no pickle in the format).

    Files written by other programs load too; files written by dezero also have their
    checksums verified.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: when the file is truncated, corrupted (checksums of dezero's
            files), or not a safetensors file; the message names the path.
    """
    st = _safetensors_numpy()
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        loaded = st.load(data)
        metadata = _safetensors_metadata(data)
        # the saved order (the format itself sorts the arrays by dtype and name)
        order = sorted(loaded)
        if metadata.get("format") == _SAFETENSORS_FORMAT:
            crcs = json.loads(metadata["crc32"])
            if set(crcs) != set(loaded):
                raise ValueError("the arrays differ from the ones the header lists")
            bad = [k for k in crcs if _crc32(loaded[k]) != crcs[k]]
            if bad:
                raise ValueError(f"checksum mismatch for {bad}")
            order = list(crcs)
    except Exception as e:  # SafetensorError, or what a damaged header makes json raise
        raise CheckpointError(
            f"cannot load {path!r}: the file is truncated, corrupted or not a .safetensors "
            f"file ({type(e).__name__}: {e})"
        ) from e
    return {k: loaded[k] for k in order}


# =============================================================================
# Format by extension
# =============================================================================
def _is_safetensors(path) -> bool:
    return os.fspath(path).lower().endswith(".safetensors")


def save_arrays(path, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` atomically as ``.safetensors`` if ``path`` ends so, else as ``.npz``.

    The file name is used as given (no extension is appended).
    """
    if _is_safetensors(path):
        save_safetensors(path, arrays)
    else:
        save_npz_atomic(path, arrays)


def load_arrays(path) -> dict[str, np.ndarray]:
    """Read a file written by ``save_arrays`` (the format chosen by the extension, as there)."""
    return load_safetensors(path) if _is_safetensors(path) else load_npz(path)


# =============================================================================
# Checkpoints: model + optimizer + extras in one file
# =============================================================================
def _encode(value, key: str, arrays: dict) -> Any:
    """Turn ``value`` into JSON, storing arrays in ``arrays`` (no pickle anywhere)."""
    if isinstance(value, cuda.array_types):
        name = "extra/" + key
        arrays[name] = cuda.as_numpy(value)
        return {"__ndarray__": name}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"checkpoint extra {key!r}: dict keys must be str, got {bad[0]!r}")
        return {"__dict__": {k: _encode(v, f"{key}/{k}", arrays) for k, v in value.items()}}
    raise TypeError(
        f"checkpoint extra {key!r}: cannot store a {type(value).__name__} (use numbers, "
        f"strings, arrays, and lists/tuples/dicts of those)"
    )


def _decode(obj, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return arrays[obj["__ndarray__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, arrays) for v in obj["__tuple__"])
        return {k: _decode(v, arrays) for k, v in obj["__dict__"].items()}
    return obj


_FORMAT = "dezero-checkpoint-1"


def save_checkpoint(path, model: Layer, optimizer: Optimizer | None = None, **extra) -> None:
    """Save ``model``, ``optimizer`` and ``extra`` values to one ``.npz`` file, atomically.

    ``extra`` holds numbers, strings, arrays, and lists/tuples/dicts of those, e.g.
    ``epoch=3, rng=np.random.get_state(), schedule=scheduler.state_dict()``. Nothing is
    pickled; the model is not moved between devices.
    """
    arrays: dict[str, Any] = {"format": np.array(_FORMAT)}
    for k, v in model.state_dict().items():
        arrays["model/" + k] = v
    if optimizer is not None:
        for k, v in optimizer.state_dict().items():
            arrays["optimizer/" + k] = v
    meta = {k: _encode(v, k, arrays) for k, v in extra.items()}
    arrays["extra.json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    save_npz_atomic(path, arrays)


def load_checkpoint(path, model: Layer, optimizer: Optimizer | None = None,
                    strict: bool = True) -> dict[str, Any]:
    """Restore a ``save_checkpoint`` file into ``model`` (and ``optimizer``); return extras.

    Model and optimizer are both checked before either is changed. The optimizer must have
    been ``setup()`` on ``model``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError (a ValueError): a truncated/corrupted file, not a checkpoint, or state
            that does not fit the model/optimizer; the message names ``path`` and the problem.
    """
    where = repr(os.fspath(path))
    arrays = load_npz(path)
    fmt = arrays.get("format")
    if fmt is None or str(fmt) != _FORMAT or "extra.json" not in arrays:
        raise CheckpointError(f"{where} is not a dezero checkpoint (saved by save_checkpoint)")
    model_state = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    opt_state = {k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    try:
        model_plan = model._plan_load(model_state, strict)
        opt_plan = None
        if optimizer is not None:
            if not opt_state:
                raise CheckpointError("the checkpoint holds no optimizer state")
            opt_plan = optimizer._plan_load(opt_state)
        meta = json.loads(arrays["extra.json"].tobytes().decode("utf-8"))
        extra = {k: _decode(v, arrays) for k, v in meta.items()}
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where}: damaged extras ({type(e).__name__}: {e})") from None
    model._apply_load(model_plan)
    if opt_plan is not None:
        optimizer._apply_load(opt_plan)
    return extra
