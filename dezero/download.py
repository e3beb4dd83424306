"""Downloads into the cache folder: get_file (checksums, atomic writes, clear offline
errors), the cache folder and the download errors. ``dezero.utils`` re-exports these names,
as the book has them there.

``hub_files`` fetches files of a Hugging Face hub repository through ``huggingface_hub``
(extra ``hub``) into that library's own cache, where ``transformers`` keeps its downloads
too. This is the one module that fetches files."""

from __future__ import annotations

import contextlib
import os

__all__ = [
    "ChecksumError",
    "DownloadError",
    "NotOnHubError",
    "OfflineError",
    "cache_dir",
    "get_cache_dir",
    "get_file",
    "hub_files",
]

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


class NotOnHubError(DownloadError, FileNotFoundError):
    """The Hugging Face hub has no such repository, revision or file (see ``hub_files``)."""


def get_cache_dir() -> str:
    """The folder ``get_file`` downloads into.

    ``DEZERO_DATA_DIR`` when that environment variable is set (read at each call), else
    ``dezero.download.cache_dir`` (``~/.dezero`` unless reassigned; ``dezero.utils.cache_dir``
    is the same value, re-exported).
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


# =============================================================================
# The Hugging Face hub (extra "hub")
# =============================================================================
def _huggingface_hub():
    try:
        import huggingface_hub
    except ImportError as e:
        raise ImportError(
            'fetching files from the Hugging Face hub needs huggingface_hub: pip install '
            '"dezero-next[hub]" (or download the files by other means into a folder and '
            'pass that folder)'
        ) from e
    return huggingface_hub


def hub_files(repo_id: str, filenames, *, cache_dir=None, revision: str | None = None) -> dict:
    """Fetch ``filenames`` of the hub repository ``repo_id``; return ``{name: local path}``.

    Parameters
    ----------
    repo_id : str
        A model repository on the Hugging Face hub, such as ``"gpt2"``.
    filenames : sequence of str
        Files that must exist in the repository (``"config.json"``, ...).
    cache_dir : str, optional
        ``huggingface_hub``'s cache folder; by default its usual one (``HF_HUB_CACHE``,
        else ``~/.cache/huggingface/hub``), so files that ``transformers`` already
        downloaded are reused.
    revision : str, optional
        A branch, tag or commit (default: the main branch).

    Notes
    -----
    Goes through ``huggingface_hub.hf_hub_download`` (extra ``hub``), which keeps its own
    cache, checks sizes and writes atomically. The ``HF_ENDPOINT`` environment variable is
    read at each call (a mirror, or a test server). A file already in the cache is used as
    it is, without asking the hub (GPT-2's files have not changed since 2019), so a cached
    model loads offline at once; ``HF_HUB_OFFLINE=1`` forbids any request. Without a
    cached copy and without network, huggingface_hub retries for about 20 seconds before
    the OfflineError.

    Raises
    ------
    ImportError
        When huggingface_hub is not installed (the message names the extra).
    OfflineError
        The hub could not be reached and a file is not in the cache; the message names the
        files, their URLs and what to do by hand.
    NotOnHubError
        The repository, the revision or a file does not exist (a DownloadError and a
        FileNotFoundError).
    DownloadError
        Any other hub error.
    """
    hub = _huggingface_hub()
    from huggingface_hub import errors

    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    branch = revision or "main"
    paths: dict = {}
    required = list(filenames)
    for name in required:
        url = f"{endpoint}/{repo_id}/resolve/{branch}/{name}"
        by_hand = (
            f"download {', '.join(f'{endpoint}/{repo_id}/resolve/{branch}/{f}' for f in required)} "
            f"by other means into one folder and pass that folder's path instead of "
            f"{repo_id!r}"
        )
        try:
            try:  # a file in the cache is used as is: no network, no wait when offline
                paths[name] = hub.hf_hub_download(repo_id, name, cache_dir=cache_dir,
                                                  revision=revision, local_files_only=True)
                continue
            except errors.LocalEntryNotFoundError:
                pass
            paths[name] = hub.hf_hub_download(repo_id, name, cache_dir=cache_dir,
                                              revision=revision, endpoint=endpoint)
        except errors.LocalEntryNotFoundError as e:
            raise OfflineError(
                f"could not fetch {name!r} of {repo_id!r} from {endpoint}: the hub cannot be "
                f"reached (or HF_HUB_OFFLINE is set) and the file is not in the cache "
                f"{cache_dir or _hub_cache(hub)!r}. Run once with network access, or {by_hand}"
            ) from e
        except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as e:
            raise NotOnHubError(
                f"the hub has no repository {repo_id!r} (revision {branch!r}) at {endpoint}: "
                f"{type(e).__name__}"
            ) from e
        except (errors.EntryNotFoundError, errors.HfHubHTTPError, OSError) as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            if isinstance(e, errors.EntryNotFoundError) or status == 404:
                raise NotOnHubError(f"{url} does not exist: the repository {repo_id!r} has "
                                    f"no file {name!r}") from e
            raise DownloadError(f"could not fetch {url} ({type(e).__name__}: {e}); {by_hand}"
                                ) from e
    return paths


def _hub_cache(hub) -> str:
    try:
        return hub.constants.HF_HUB_CACHE
    except AttributeError:  # older huggingface_hub
        return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")
