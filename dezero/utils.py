"""Utilities: numerical gradients, array comparisons, graph pictures, shape helpers, downloads."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

import numpy as np

from dezero import cuda
from dezero.array_utils import (
    get_conv_outsize,
    get_deconv_outsize,
    logsumexp,
    pair,
    reshape_sum_backward,
    sum_to,
)
from dezero.core import Variable, as_variable

__all__ = [
    "ChecksumError",
    "DownloadError",
    "OfflineError",
    "array_allclose",
    "array_equal",
    "cache_dir",
    "get_cache_dir",
    "get_conv_outsize",
    "get_deconv_outsize",
    "get_dot_graph",
    "get_file",
    "gradient_check",
    "logsumexp",
    "numerical_grad",
    "pair",
    "plot_dot_graph",
    "reshape_sum_backward",
    "sum_to",
]


# =============================================================================
# Graph pictures (Graphviz)
# =============================================================================
def _dot_var(v: Variable, verbose: bool = False) -> str:
    name = "" if v.name is None else v.name
    if verbose and v.data is not None:
        if v.name is not None:
            name += ": "
        name += f"{v.shape} {v.dtype}"
    name = name.replace('"', '\\"')
    return f'{id(v)} [label="{name}", color=orange, style=filled]\n'


def _dot_func(f) -> str:
    lines = [f'{id(f)} [label="{type(f).__name__}", color=lightblue, style=filled, shape=box]\n']
    for x in f.inputs:
        lines.append(f"{id(x)} -> {id(f)}\n")
    for ref in f.outputs:
        y = ref()
        if y is not None:
            lines.append(f"{id(f)} -> {id(y)}\n")
    return "".join(lines)


def get_dot_graph(output: Variable, verbose: bool = True) -> str:
    """Return the DOT source of the graph that produced ``output``.

    Every Variable and Function appears exactly once, also when the graph is itself the
    graph of a derivative (``create_graph=True``).

    >>> import numpy as np
    >>> from dezero.core import Variable
    >>> x = Variable(np.array(1.0), name="x")
    >>> print(get_dot_graph(x * 2, verbose=False).splitlines()[0])
    digraph g {
    """
    parts = [_dot_var(output, verbose)]
    seen_vars = {id(output)}
    seen_funcs: set = set()
    stack = []
    if output.creator is not None:
        stack.append(output.creator)
        seen_funcs.add(id(output.creator))
    while stack:
        f = stack.pop()
        parts.append(_dot_func(f))
        for ref in f.outputs:  # outputs other than the one we came from (multi-output ops)
            y = ref()
            if y is not None and id(y) not in seen_vars:
                seen_vars.add(id(y))
                parts.append(_dot_var(y, verbose))
        for x in f.inputs:
            if id(x) not in seen_vars:
                seen_vars.add(id(x))
                parts.append(_dot_var(x, verbose))
            if x.creator is not None and id(x.creator) not in seen_funcs:
                seen_funcs.add(id(x.creator))
                stack.append(x.creator)
    return "digraph g {\n" + "".join(parts) + "}"


def plot_dot_graph(output: Variable, verbose: bool = True, to_file: str = "graph.png"):
    """Draw the graph of ``output`` into ``to_file`` with Graphviz ``dot``.

    The format follows the file's extension (png, svg, pdf, ...). Raises RuntimeError with
    install instructions when ``dot`` is missing, and with dot's message when it fails.
    In Jupyter, returns an ``IPython.display.Image`` of the picture.
    """
    dot_graph = get_dot_graph(output, verbose)
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "plot_dot_graph needs the Graphviz 'dot' program, which was not found on PATH. "
            "Install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), "
            "`brew install graphviz` (macOS) or `conda install graphviz`."
        )
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    parent = os.path.dirname(os.path.abspath(to_file))
    os.makedirs(parent, exist_ok=True)
    proc = subprocess.run(
        [dot, f"-T{extension}", "-o", to_file],
        input=dot_graph.encode(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"Graphviz dot failed to write {to_file!r} (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    try:  # show the picture inline when running under IPython/Jupyter
        from IPython import get_ipython

        if get_ipython() is not None:
            from IPython.display import Image

            return Image(filename=to_file)
    except ImportError:
        pass
    return None


# =============================================================================
# Gradient checking (the book's helpers; see dezero.testing for the strict versions)
# =============================================================================
def numerical_grad(f, x, *args, eps=1e-4, **kwargs):
    """Central-difference gradient of ``sum(f(x, *args, **kwargs))`` with respect to ``x``.

    ``x`` is a Variable or an array; the result is an array of ``x``'s shape.

    >>> numerical_grad(lambda v: v * v, np.array(3.0))
    array(6.)
    """
    x = x.data if isinstance(x, Variable) else x
    xp = cuda.get_array_module(x)
    if xp is not np:
        np_x = cuda.as_numpy(x)
    else:
        np_x = x
    grad = np.zeros_like(np_x, dtype=np.float64 if np_x.dtype.kind != "f" else np_x.dtype)
    it = np.nditer(np_x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        idx = it.multi_index
        tmp = np_x[idx].copy()
        np_x[idx] = tmp + eps
        y1 = f(as_variable(xp.asarray(np_x) if xp is not np else np_x), *args, **kwargs)
        y1 = float(cuda.as_numpy(y1.data if isinstance(y1, Variable) else y1).sum())
        np_x[idx] = tmp - eps
        y2 = f(as_variable(xp.asarray(np_x) if xp is not np else np_x), *args, **kwargs)
        y2 = float(cuda.as_numpy(y2.data if isinstance(y2, Variable) else y2).sum())
        np_x[idx] = tmp
        grad[idx] = (y1 - y2) / (2 * eps)
        it.iternext()
    return grad


def gradient_check(f, x, *args, rtol=1e-4, atol=1e-5, **kwargs):
    """Compare backprop with central differences for ``sum(f(x))``; True when they agree.

    On disagreement, prints the shapes and the worst values (as the book does) and returns
    False. ``dezero.testing.check_backward`` is the strict variant that raises.

    >>> from dezero.functions import sin
    >>> gradient_check(sin, np.random.rand(3))
    True
    """
    x = as_variable(x)
    x.data = x.data.astype(np.float64)
    num_grad = numerical_grad(f, x, *args, **kwargs)
    y = f(x, *args, **kwargs)
    y.backward()
    bp_grad = x.grad.data
    assert bp_grad.shape == num_grad.shape
    res = array_allclose(num_grad, bp_grad, atol=atol, rtol=rtol)
    if not res:
        print()
        print("========== FAILED (Gradient Check) ==========")
        print("Numerical Grad")
        print(f" shape: {num_grad.shape}")
        print(f" values: {num_grad.flatten()[:10]} ...")
        print("Backprop Grad")
        print(f" shape: {bp_grad.shape}")
        print(f" values: {cuda.as_numpy(bp_grad).flatten()[:10]} ...")
    return res


def array_equal(a, b):
    """True if ``a`` and ``b`` (Variables or arrays on any device) are equal elementwise.

    >>> array_equal(np.ones(2), np.ones(2))
    True
    """
    a = cuda.as_numpy(a.data if isinstance(a, Variable) else a)
    b = cuda.as_numpy(b.data if isinstance(b, Variable) else b)
    return bool(np.array_equal(a, b))


def array_allclose(a, b, rtol=1e-4, atol=1e-5):
    """True if ``a`` and ``b`` (Variables or arrays on any device) are close elementwise.

    >>> array_allclose(np.ones(2), np.ones(2) + 1e-7)
    True
    """
    a = cuda.as_numpy(a.data if isinstance(a, Variable) else a)
    b = cuda.as_numpy(b.data if isinstance(b, Variable) else b)
    return bool(np.allclose(a, b, atol=atol, rtol=rtol))


# =============================================================================
# Downloads and the cache folder
# =============================================================================
cache_dir = os.path.join(os.path.expanduser("~"), ".dezero")
"""Default folder for downloaded data sets and weights (``DEZERO_DATA_DIR`` overrides it)."""

# Known files: accepted checksums, keyed by file name. "sha256" is the checksum of the file
# as published; "gunzip_sha256" that of its gzip-decompressed content (so a recompressed copy
# of the same data is accepted too); "md5" where the publisher only gives an MD5 sum.
_KNOWN_FILES: dict[str, dict[str, str]] = {
    "train-images-idx3-ubyte.gz": {
        "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "gunzip_sha256": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    "train-labels-idx1-ubyte.gz": {
        "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "gunzip_sha256": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    "t10k-images-idx3-ubyte.gz": {
        "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "gunzip_sha256": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    "t10k-labels-idx1-ubyte.gz": {
        "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaf4bb1d2e6c4a8b2e",
        "gunzip_sha256": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "cifar-10-binary.tar.gz": {"md5": "c32a1d4ab5d03f1284b67883e8d87530"},
    "cifar-100-binary.tar.gz": {"md5": "03b5dce01913d631647c71ecec9e9cb8"},
}

_CHUNK = 1 << 20
_verified: dict[tuple, bool] = {}  # (path, size, mtime_ns, checksums) -> verified this run


class DownloadError(RuntimeError):
    """A file could not be fetched into the cache folder (see ``get_file``)."""


class ChecksumError(DownloadError):
    """A downloaded or cached file does not match its known checksum."""


class OfflineError(DownloadError, ConnectionError):
    """The server could not be reached (no network, DNS failure, connection refused)."""


def get_cache_dir() -> str:
    """The folder ``get_file`` downloads into.

    ``DEZERO_DATA_DIR`` when that environment variable is set (read at each call), else
    ``dezero.utils.cache_dir`` (``~/.dezero`` unless reassigned).
    """
    env = os.environ.get("DEZERO_DATA_DIR")
    return os.path.expanduser(env) if env else cache_dir


def _hash_file(path, algorithm, gunzip=False):
    import hashlib

    h = hashlib.new(algorithm)
    if gunzip:
        import gzip

        opener = gzip.open
    else:
        opener = open
    with opener(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def _check_file(path, checks):
    """None when ``path`` matches one of ``checks`` (or there are none), else a reason."""
    if not checks:
        return None
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, tuple(sorted(checks.items())))
    if _verified.get(key):
        return None
    import zlib

    reasons = []
    for kind, expected in checks.items():
        algorithm = "md5" if kind == "md5" else "sha256"
        try:
            got = _hash_file(path, algorithm, gunzip=kind.startswith("gunzip"))
        except (OSError, EOFError, ValueError, zlib.error) as e:  # not gzip, or cut short
            reasons.append(f"{kind} could not be computed ({e})")
            continue
        if got == expected.lower():
            _verified[key] = True
            return None
        reasons.append(f"{kind} is {got}, expected {expected}")
    return "; ".join(reasons)


def _progress_bar(total, desc):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the progress bar is a nicety; downloads work without tqdm
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def _download(url, path, checks, timeout, progress):
    import tempfile
    import urllib.error
    import urllib.request
    from http.client import HTTPException

    folder, file_name = os.path.split(path)
    where = (
        f"download {url} by other means and save it as {path!r} "
        f"(or set DEZERO_DATA_DIR to a folder that holds {file_name!r})"
    )
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise DownloadError(
            f"cannot write {file_name!r} into the cache folder {folder!r} ({e}); "
            f"make the folder writable or set DEZERO_DATA_DIR to another folder"
        ) from e
    bar = None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "dezero"})
                response = urllib.request.urlopen(request, timeout=timeout)
            except urllib.error.HTTPError as e:
                raise DownloadError(
                    f"could not download {file_name!r}: {url} answered HTTP {e.code} "
                    f"{e.reason}; {where}"
                ) from e
            except (urllib.error.URLError, OSError, HTTPException) as e:
                reason = getattr(e, "reason", e)
                raise OfflineError(
                    f"could not download {file_name!r} from {url} ({reason}): the network "
                    f"looks unreachable. To work offline, {where}"
                ) from e
            with response:
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                if progress:
                    bar = _progress_bar(expected, file_name)
                received = 0
                try:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                except (OSError, HTTPException) as e:
                    of = "" if expected is None else f" of {expected}"
                    raise DownloadError(
                        f"download of {file_name!r} from {url} is truncated: the transfer "
                        f"broke off after {received}{of} bytes ({e!r}); run again, or {where}"
                    ) from e
        if expected is not None and received != expected:
            raise DownloadError(
                f"download of {file_name!r} from {url} is truncated: received {received} of "
                f"{expected} bytes; run again, or {where}"
            )
        problem = _check_file(tmp, checks)
        if problem is not None:
            raise ChecksumError(
                f"downloaded {file_name!r} from {url} is corrupted: {problem}. Nothing was "
                f"saved; run again, or {where}"
            )
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    finally:
        if bar is not None:
            bar.close()
    return path


def get_file(url, file_name=None, *, sha256=None, timeout=30.0, progress=True):
    """Download ``url`` into the cache folder (once) and return the local path.

    Parameters
    ----------
    url : str
        Where to fetch the file from (http, https or file URLs).
    file_name : str, optional
        Name of the file in the cache folder; defaults to the last part of the URL.
    sha256 : str or dict, optional
        Expected SHA-256 of the file. A dict may give several accepted checksums (keys
        ``sha256``, ``gunzip_sha256``, ``md5``); the file is accepted when any one matches.
        Known files (MNIST, CIFAR) are checked without it.
    timeout : float
        Seconds to wait for the server before giving up.
    progress : bool
        Show a tqdm progress bar (when tqdm is installed).

    Returns
    -------
    str
        The path of the file, ``os.path.join(get_cache_dir(), file_name)``.

    Notes
    -----
    A file already in the cache that passes its checksum (or has none) is used as is; one
    that fails it is downloaded again. Downloads go to a temporary file in the same folder
    that replaces the target only when complete (``Content-Length`` bytes received) and
    correct (checksum), so an interrupted or corrupted download never leaves a file behind.
    The cache folder is ``DEZERO_DATA_DIR`` when set, else ``~/.dezero``.

    Raises
    ------
    OfflineError
        The server could not be reached; the message names the file and the folder where it
        can be placed by hand. A subclass of DownloadError and ConnectionError.
    ChecksumError
        The download does not match the known checksum.
    DownloadError
        Any other failure (HTTP error, truncated transfer, unwritable folder).
    """
    if file_name is None:
        from urllib.parse import urlparse

        file_name = os.path.basename(urlparse(url).path)
        if not file_name:
            raise ValueError(f"get_file: cannot infer a file name from {url!r}; pass file_name")
    if not file_name or os.path.basename(file_name) != file_name or file_name in (".", ".."):
        raise ValueError(f"get_file: file_name must be a plain file name, got {file_name!r}")
    if sha256 is None:
        checks = _KNOWN_FILES.get(file_name, {})
    elif isinstance(sha256, str):
        checks = {"sha256": sha256}
    else:
        checks = dict(sha256)
    folder = get_cache_dir()
    path = os.path.join(folder, file_name)
    stale = None
    if os.path.exists(path):
        stale = _check_file(path, checks)
        if stale is None:
            return path
    try:
        return _download(url, path, checks, timeout, progress)
    except DownloadError as e:
        if stale is None:
            raise
        raise type(e)(
            f"the cached file {path!r} fails its checksum ({stale}) and a fresh download "
            f"failed too: {e}"
        ) from e
