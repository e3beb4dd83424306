"""dezero.serialization: every file format dezero reads or writes, in one place.

- ``.npz`` archives of named arrays (``save_npz_atomic`` / ``load_npz``), read without pickle;
- ``.safetensors`` files (``save_safetensors`` / ``load_safetensors``, extra ``safetensors``),
  read through a memory map; ``open_safetensors`` reads one lazily (a ``SafetensorsFile``);
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
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np

from dezero import cuda

__all__ = [
    "CheckpointError",
    "SafetensorsFile",
    "atomic_write",
    "checkpoint_fingerprint",
    "fingerprint_mismatch",
    "load_arrays",
    "load_checkpoint",
    "load_npz",
    "load_safetensors",
    "model_fingerprint",
    "open_safetensors",
    "save_arrays",
    "save_checkpoint",
    "save_npz_atomic",
    "save_safetensors",
    "weights_format",
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
def _atomic_path(path) -> Iterator[str]:
    """Yield the name of an empty temporary file beside ``path``; rename it over ``path``.

    The caller writes (and syncs) the file; on an exception it is removed and ``path`` is
    left untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path!r}: it is a folder")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; rename it over ``path`` at exit.

    The file is flushed and fsync'ed before ``os.replace``, so ``path`` holds either its old
    content or the complete new one, never a half-written file. On an exception the
    temporary file is removed and ``path`` is left untouched.
    """
    with _atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


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
            if array.dtype.hasobject:
                raise ValueError(f"{key!r}: an array of Python objects (dtype object) cannot be "
                                 f"saved without pickle")
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
# .safetensors files (extra "safetensors"): atomic write, checksummed, memory-mapped read
# =============================================================================
# The format: an 8-byte little-endian header length N, N bytes of JSON
# ({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}),
# then the data, each tensor's bytes at [8 + N + begin, 8 + N + end), little-endian, C order.
# dezero writes and reads it with its own code (so that a write streams one tensor at a time
# and a read maps the file instead of copying it) and has the safetensors package, the
# reference implementation, check every header it writes or reads.
_SAFETENSORS_FORMAT_V1 = "dezero-safetensors-1"  # metadata "crc32": CRC-32 of the bytes only
_SAFETENSORS_FORMAT = "dezero-safetensors-2"  # CRC-32 of the header entry, then the bytes
_ST_FORMAT_KEY = "dezero_format"
_ST_CRC_KEY = "dezero_crc32"

# safetensors dtype name -> NumPy dtype (little-endian as stored). BF16, which NumPy lacks,
# is read as its bit pattern and widened to float32 (a copy).
_ST_DTYPES = {
    "BOOL": np.dtype("bool"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"), "U32": np.dtype("<u4"), "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_ST_NAMES = {np.dtype(v).newbyteorder("="): k for k, v in _ST_DTYPES.items() if k != "BF16"}
_ST_MAX_HEADER = 100 * 2**20  # the reference implementation's limit too


def _safetensors_module():
    try:
        import safetensors
    except ImportError as e:
        raise ImportError(
            'reading or writing .safetensors files needs the safetensors package: '
            'pip install "dezero-next[safetensors]"'
        ) from e
    return safetensors


def _st_reference_check(path: str) -> None:
    """Have the safetensors package parse ``path``'s header (offsets, sizes, coverage)."""
    with _safetensors_module().safe_open(path, framework="numpy") as f:
        f.keys()


def _st_entry_crc(name: str, entry: Mapping[str, Any], data) -> str:
    # the checksum covers what the header says about the tensor as well as its bytes, so an
    # edited dtype (F32 -> I32, same size) or shape is caught, not read as other numbers
    head = json.dumps([name, entry["dtype"], list(entry["shape"]), list(entry["data_offsets"])],
                      separators=(",", ":"))
    return format(zlib.crc32(data, zlib.crc32(head.encode("utf-8"))), "08x")


def _crc32(array: np.ndarray) -> str:
    # the bytes as the file stores them (little-endian, C order): the first format's checksum
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return format(zlib.crc32(little.view(np.uint8).reshape(-1)), "08x")


def save_safetensors(path, arrays: Mapping[str, Any],
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write ``arrays`` (name -> array) to the ``.safetensors`` file ``path`` atomically.

    Any safetensors reader (``safetensors.numpy.load_file``, PyTorch, JAX, ``transformers``)
    reads the file. The arrays are written one at a time (no second copy of the whole file
    in memory); CuPy arrays are copied to the host. The header's metadata holds a CRC-32 per
    array that covers its header entry (name, dtype, shape, offsets) and its bytes, checked
    by ``load_safetensors`` (the format itself has no checksum), and the saved order. The
    file is written to a temporary file beside ``path``, checked by the safetensors package
    and then renamed over ``path``.

    Args:
        path: the file to write (the name is used as given).
        arrays: name -> array of a bool, integer or floating dtype.
        metadata: extra ``str -> str`` entries for the header's ``__metadata__`` (for
            example ``{"format": "pt"}``, which ``transformers`` asks for). Keys starting
            with ``dezero_`` are dezero's own.

    Raises:
        ImportError: without the ``safetensors`` package (naming the extra).
        TypeError: an array of a dtype the format cannot hold, a name or metadata entry
            that is not a str.
        ValueError: a reserved name or metadata key.
    """
    _safetensors_module()
    meta: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"safetensors metadata must map str to str, got {key!r}: {value!r}")
        if key.startswith("dezero_"):
            raise ValueError(f"metadata key {key!r}: keys starting with 'dezero_' are reserved")
        meta[key] = value
    tensors: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise TypeError(f"safetensors names must be str, got {key!r}")
        if key == "__metadata__":
            raise ValueError("'__metadata__' is reserved by the safetensors format")
        array = np.asarray(cuda.as_numpy(value))
        name = _ST_NAMES.get(array.dtype.newbyteorder("="))
        if name is None:
            raise TypeError(f"{key!r}: a .safetensors file cannot hold dtype {array.dtype}")
        tensors[key] = np.ascontiguousarray(array, dtype=_ST_DTYPES[name])
    # widest items first, so that every tensor stays aligned (the header is padded to 8)
    layout = sorted(tensors, key=lambda k: -tensors[k].dtype.itemsize)
    header: dict[str, Any] = {}
    offset = 0
    crcs: dict[str, str] = {}
    for key in layout:
        array = tensors[key]
        header[key] = {"dtype": _ST_NAMES[array.dtype.newbyteorder("=")],
                       "shape": list(array.shape),
                       "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    for key in tensors:  # the saved order
        crcs[key] = _st_entry_crc(key, header[key], tensors[key].reshape(-1).view(np.uint8))
    meta[_ST_FORMAT_KEY] = _SAFETENSORS_FORMAT
    meta[_ST_CRC_KEY] = json.dumps(crcs)
    head = json.dumps({"__metadata__": meta, **header}, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    with _atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(len(head).to_bytes(8, "little"))
            f.write(head)
            for key in layout:
                f.write(tensors[key].reshape(-1).view(np.uint8).data)
            f.flush()
            os.fsync(f.fileno())
        _st_reference_check(tmp)


class SafetensorsFile(Mapping):
    """A ``.safetensors`` file opened through a read-only memory map (``open_safetensors``).

    A mapping name -> NumPy array: each array is a read-only view of the mapped file, made
    when it is asked for, so opening reads only the header and a tensor's bytes come into
    memory when they are used (and stay in the page cache, not in a second copy). The
    arrays keep the map alive; nothing needs closing. BF16 tensors, which NumPy lacks, are
    returned widened to float32 (a copy).

    Attributes:
        path: the file's path.
        metadata: the header's ``__metadata__`` (a dict of str -> str; empty when absent).
        checksummed: True for files written by dezero, whose tensors are checked (header
            entry and bytes) when first read; files written by other programs have no
            checksums.
    """

    def __init__(self, path: str, header: dict, data, crcs: dict | None, v1: bool,
                 verify: bool):
        self.path = path
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self._entries: dict[str, dict] = header
        self._data = data
        self._crcs = crcs
        self._v1 = v1
        self._verify = verify and crcs is not None
        self._verified: set[str] = set()
        self.checksummed = crcs is not None
        # the saved order for dezero's files (the format sorts by dtype and name)
        self._order = list(crcs) if crcs is not None else sorted(header)

    def __repr__(self) -> str:
        return f"SafetensorsFile({self.path!r}, {len(self)} tensors)"

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self):
        return iter(self._order)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def dtype(self, name: str) -> np.dtype:
        """The dtype ``self[name]`` has (float32 for a BF16 tensor), without reading it."""
        kind = self._entry(name)["dtype"]
        return np.dtype(np.float32) if kind == "BF16" else _ST_DTYPES[kind].newbyteorder("=")

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of ``self[name]``, without reading it."""
        return tuple(self._entry(name)["shape"])

    def _entry(self, name: str) -> dict:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{self.path!r} has no tensor {name!r}") from None

    def __getitem__(self, name: str) -> np.ndarray:
        entry = self._entry(name)
        begin, end = entry["data_offsets"]
        raw = self._data[begin:end]
        if self._verify and name not in self._verified:
            self.check(name)
        array = raw.view(_ST_DTYPES[entry["dtype"]]).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array

    def check(self, name: str | None = None) -> None:
        """Verify the checksum of tensor ``name`` (all tensors when None); dezero's files only.

        Raises:
            CheckpointError: naming the file and the tensor whose header entry or bytes
                changed since it was written.
        """
        if self._crcs is None:
            return
        for key in ([name] if name is not None else self._order):
            entry = self._entry(key)
            begin, end = entry["data_offsets"]
            raw = self._data[begin:end]
            if self._v1:
                got = format(zlib.crc32(raw), "08x")
            else:
                got = _st_entry_crc(key, entry, raw)
            if got != self._crcs[key]:
                raise CheckpointError(
                    f"cannot load {self.path!r}: checksum mismatch for tensor {key!r} (dtype "
                    f"{entry['dtype']}, shape {list(entry['shape'])}): its header entry or its "
                    f"bytes changed after it was written; the file is corrupted"
                )
            self._verified.add(key)


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the header names {key!r} twice")
        out[key] = value
    return out


def _parse_safetensors_header(raw: bytes, file_size: int) -> tuple[dict, int]:
    """The header dict and where the data starts; ValueError for anything malformed."""
    if len(raw) < 8:
        raise ValueError("the file is shorter than the 8-byte header length")
    size = int.from_bytes(raw[:8], "little")
    if size > _ST_MAX_HEADER or 8 + size > file_size:
        raise ValueError(f"the header length {size} does not fit a {file_size}-byte file")
    header = json.loads(raw[8:8 + size].decode("utf-8"), object_pairs_hook=_no_duplicates)
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.get("__metadata__")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(v, str) for v in metadata.values())
    ):
        raise ValueError("__metadata__ must map str to str")
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and entry.get("dtype") in _ST_DTYPES
                and isinstance(entry.get("shape"), list)
                and all(type(n) is int and n >= 0 for n in entry["shape"])
                and isinstance(entry.get("data_offsets"), list)
                and len(entry["data_offsets"]) == 2
                and all(type(n) is int for n in entry["data_offsets"])):
            raise ValueError(f"tensor {name!r}: a malformed or unsupported header entry {entry}")
        begin, end = entry["data_offsets"]
        nbytes = math.prod(entry["shape"]) * _ST_DTYPES[entry["dtype"]].itemsize
        if not 0 <= begin <= end or end - begin != nbytes:
            raise ValueError(
                f"tensor {name!r}: offsets {[begin, end]} do not hold {entry['dtype']} "
                f"{entry['shape']} ({nbytes} bytes)"
            )
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ValueError(f"tensor {name!r}: its data does not follow the previous tensor's")
        position = end
    if 8 + size + position != file_size:
        raise ValueError(
            f"the header describes {position} bytes of data, the file holds "
            f"{file_size - 8 - size}"
        )
    return header, 8 + size


def open_safetensors(path, *, verify: bool = True, writable: bool = False) -> SafetensorsFile:
    """Open the ``.safetensors`` file ``path`` lazily, through a read-only memory map.

    Only the header is read (and checked, by dezero and by the safetensors package); each
    tensor is a view of the mapped file, read from disk when used. For files written by
    dezero each tensor's checksum (header entry and bytes) is verified when it is first
    accessed (``verify=False`` skips that; ``check()`` verifies all at once). What a
    ``from_pretrained`` needs: names, ``dtype(name)`` and ``shape(name)`` without reading
    any data, then one tensor at a time, never a second copy of the file.

    With ``writable=True`` the map is copy-on-write: the arrays can be written (what
    parameters that are trained in place need), a written page becomes a private copy of
    this process, and the file never changes.

    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save_safetensors(path, {"W": np.ones((2, 3), np.float32)}, metadata={"format": "pt"})
    >>> f = open_safetensors(path)
    >>> list(f), f.shape("W"), f.dtype("W"), f.metadata["format"]
    (['W'], (2, 3), dtype('float32'), 'pt')
    >>> f["W"].flags.writeable
    False

    Raises:
        ImportError: without the ``safetensors`` package (naming the extra).
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: a truncated or malformed file, or one that is not a safetensors
            file; the message names the path (and, for a checksum, the tensor).
    """
    _safetensors_module()
    path = os.fspath(path)
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else 0
        head += f.read(min(size, _ST_MAX_HEADER, max(file_size - 8, 0)))
    try:
        header, start = _parse_safetensors_header(head, file_size)
        _st_reference_check(path)
        metadata = header.get("__metadata__") or {}
        crcs, v1 = None, False
        if metadata.get(_ST_FORMAT_KEY) == _SAFETENSORS_FORMAT:
            crcs = json.loads(metadata[_ST_CRC_KEY])
        elif metadata.get("format") == _SAFETENSORS_FORMAT_V1:
            crcs, v1 = json.loads(metadata["crc32"]), True
        if crcs is not None:
            names = {k for k in header if k != "__metadata__"}
            if not isinstance(crcs, dict) or set(crcs) != names:
                raise ValueError(
                    "the tensors differ from the ones the checksums list "
                    f"(only in the header: {sorted(names - set(crcs))}; only in the "
                    f"checksums: {sorted(set(crcs) - names)})"
                )
        length = file_size - start
        if length:
            data = np.memmap(path, dtype=np.uint8, mode="c" if writable else "r",
                             offset=start, shape=(length,))
        else:
            data = np.zeros(0, dtype=np.uint8)
    except Exception as e:  # SafetensorError, or what a damaged header makes json raise
        raise CheckpointError(
            f"cannot load {path!r}: the file is truncated, corrupted or not a .safetensors "
            f"file ({type(e).__name__}: {e})"
        ) from e
    return SafetensorsFile(path, header, data, crcs, v1, verify)


def load_safetensors(path) -> dict[str, np.ndarray]:
    """Read every array of the ``.safetensors`` file ``path`` (no pickle in the format).

    The file is memory-mapped, not read into a buffer: the arrays are read-only views of
    the map (copy one to write into it), so a load holds the file's bytes once (a load into
    a model copies each array into its parameter). Files written by other programs load
    too; for files written by dezero every checksum (header entry and bytes) is verified
    before the dict is returned. Files of dezero's first safetensors format (checksums of
    the bytes only) still load. ``open_safetensors`` reads lazily instead.

    Raises:
        ImportError: without the ``safetensors`` package (naming the extra).
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: when the file is truncated, corrupted (checksums of dezero's
            files; the message names the tensor), or not a safetensors file; the message
            names the path.
    """
    f = open_safetensors(path)
    f.check()
    return {name: f[name] for name in f}


# =============================================================================
# Format by extension
# =============================================================================
_EXTENSIONS = {".npz": "npz", ".safetensors": "safetensors"}


def weights_format(path, who: str = "save_weights") -> str:
    """``'npz'`` or ``'safetensors'``, from the extension of ``path`` (case-insensitive).

    A name without any extension is an ``.npz`` archive (the name is kept as given).

    Raises:
        ValueError: any other extension, naming the two accepted ones: a file named
            ``m.pt`` would otherwise hold something no PyTorch reader expects.
    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    if not ext:
        return "npz"
    fmt = _EXTENSIONS.get(ext)
    if fmt is None:
        raise ValueError(
            f"{who}: {name!r} has the extension {ext!r}; weights are written as .npz (NumPy) "
            f"or .safetensors files: name the file *.npz or *.safetensors"
        )
    return fmt


def save_arrays(path, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` atomically as ``.safetensors`` or ``.npz``, by ``path``'s extension.

    The file name is used as given (no extension: ``.npz``). Any other extension raises
    ValueError (see ``weights_format``).
    """
    if weights_format(path, "save_weights") == "safetensors":
        save_safetensors(path, arrays)
    else:
        save_npz_atomic(path, arrays)


def load_arrays(path) -> dict[str, np.ndarray]:
    """Read a file written by ``save_arrays`` (the format chosen by the extension, as there)."""
    if weights_format(path, "load_weights") == "safetensors":
        return load_safetensors(path)
    return load_npz(path)


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
_FINGERPRINT = "fingerprint.json"


def model_fingerprint(model) -> list[tuple[str, tuple[int, ...] | None]]:
    """The model's parameters as ``[(path, shape), ...]`` in order (shape None while lazy).

    What ``save_checkpoint`` stores beside the weights, so that a folder of checkpoints can
    be searched for the ones that fit a model without loading them
    (``checkpoint_fingerprint``, ``fingerprint_mismatch``).
    """
    _check_model(model)
    return [(name, None if p.data is None else tuple(int(n) for n in p.data.shape))
            for name, p in model.named_params()]


def _check_model(model) -> None:
    if not callable(getattr(model, "named_params", None)):
        raise TypeError(f"expected a Layer (a model), got {type(model).__name__}")


def checkpoint_fingerprint(path) -> list[tuple[str, tuple[int, ...] | None]]:
    """The fingerprint stored in the checkpoint ``path`` (only that entry is read).

    For checkpoints written before fingerprints were stored, it is derived from the names
    and shapes of the arrays under ``model/`` (parameters and buffers alike).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: when ``path`` is not a readable dezero checkpoint.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            with zipfile.ZipFile(f) as zf:
                names = zf.namelist()
                if _FINGERPRINT + ".npy" in names:
                    with zf.open(_FINGERPRINT + ".npy") as member:
                        raw = np.lib.format.read_array(member, allow_pickle=False)
                    return [(str(n), None if s is None else tuple(s))
                            for n, s in json.loads(raw.tobytes().decode("utf-8"))]
                if "format.npy" not in names:
                    raise ValueError("no 'format' entry")
                out = []
                for name in names:
                    if name.startswith("model/") and name.endswith(".npy"):
                        with zf.open(name) as member:
                            version = np.lib.format.read_magic(member)
                            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                    else np.lib.format.read_array_header_2_0)
                            shape, _, _ = read(member)
                        out.append((name[6:-4], tuple(shape)))
                return out
        except Exception as e:
            raise CheckpointError(
                f"cannot read the fingerprint of {path!r}: not a dezero checkpoint, or a "
                f"damaged one ({type(e).__name__}: {e})"
            ) from e


def fingerprint_mismatch(fingerprint, model) -> str | None:
    """None when a checkpoint of ``fingerprint`` fits ``model``, else its first mismatch.

    Fits: the same parameter names in the same order, and the same shape wherever the
    model's parameter already exists (a lazy layer's parameter has no shape yet). Names the
    checkpoint has beyond the parameters (buffers, in fingerprints derived from older
    checkpoints) are left out when they are the model's buffers.
    """
    mine = model_fingerprint(model)
    if not isinstance(fingerprint, (list, tuple)) or not all(
            isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str)
            for e in fingerprint):
        raise TypeError(f"a fingerprint is a list of (name, shape) pairs, got {fingerprint!r:.80}")
    buffers = {name for name, _ in model.named_buffers()}
    theirs = [(n, s) for n, s in fingerprint if n not in buffers]
    for i, ((name, shape), (other, other_shape)) in enumerate(zip(mine, theirs)):
        if name != other:
            return (f"parameter {i} is {other!r} in the checkpoint but {name!r} in the model "
                    f"({type(model).__name__})")
        if shape is not None and other_shape is not None and shape != tuple(other_shape):
            return (f"parameter {name!r} has shape {tuple(other_shape)} in the checkpoint but "
                    f"{shape} in the model")
    if len(mine) != len(theirs):
        return (f"the checkpoint holds {len(theirs)} parameters, the model "
                f"({type(model).__name__}) {len(mine)}")
    return None


def save_checkpoint(path, model, optimizer=None, **extra) -> None:
    """Save ``model``, ``optimizer`` and ``extra`` values to one ``.npz`` file, atomically.

    ``extra`` holds numbers, strings, arrays, and lists/tuples/dicts of those, e.g.
    ``epoch=3, rng=np.random.get_state(), schedule=scheduler.state_dict()``. Nothing is
    pickled; the model is not moved between devices. The file also holds the model's
    fingerprint (``model_fingerprint``).
    """
    arrays: dict[str, Any] = {"format": np.array(_FORMAT)}
    fingerprint = json.dumps(model_fingerprint(model)).encode("utf-8")
    arrays[_FINGERPRINT] = np.frombuffer(fingerprint, dtype=np.uint8)
    for k, v in model.state_dict().items():
        arrays["model/" + k] = v
    if optimizer is not None:
        for k, v in optimizer.state_dict().items():
            arrays["optimizer/" + k] = v
    meta = {k: _encode(v, k, arrays) for k, v in extra.items()}
    arrays["extra.json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    save_npz_atomic(path, arrays)


def load_checkpoint(path, model, optimizer=None,
                    strict: bool = True, check=None) -> dict[str, Any]:
    """Restore a ``save_checkpoint`` file into ``model`` (and ``optimizer``); return extras.

    All or nothing: model and optimizer are both checked before either is changed, and so
    are the extras by ``check(extras)`` when given (a function that raises to refuse them;
    the Trainer checks its own state there). The optimizer must have been ``setup()`` on
    ``model``.

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
        model_plan = model.prepare_load(model_state, strict)
        opt_plan = None
        if optimizer is not None:
            if not opt_state:
                raise CheckpointError("the checkpoint holds no optimizer state")
            opt_plan = optimizer.prepare_load(opt_state)
        meta = json.loads(arrays["extra.json"].tobytes().decode("utf-8"))
        extra = {k: _decode(v, arrays) for k, v in meta.items()}
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where}: damaged extras ({type(e).__name__}: {e})") from None
    if check is not None:
        check(extra)
    model.finish_load(model_plan)
    if opt_plan is not None:
        optimizer.finish_load(opt_plan)
    return extra
