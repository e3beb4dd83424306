"""dezero.download.get_file (also dezero.utils.get_file) against a local HTTP server on
127.0.0.1 (no test touches the network)."""

import gzip
import hashlib
import http.server
import os
import socket
import threading
from typing import ClassVar

import pytest

from dezero import download
from dezero.download import ChecksumError, DownloadError, OfflineError, get_file

PAYLOAD = bytes(range(256)) * 64  # 16 KiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict] = {}  # path -> (status, body, promised length or None)
    hits: ClassVar[dict] = {}

    def do_GET(self):
        type(self).hits[self.path] = type(self).hits.get(self.path, 0) + 1
        status, body, promised = self.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if promised is None else promised))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    """A threaded HTTP server on an ephemeral port; yields (base_url, routes, hits)."""
    handler = type("Handler", (_Handler,), {"routes": {}, "hits": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.routes, handler.hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DEZERO_DATA_DIR", str(folder))
    return folder


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def test_cache_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("DEZERO_DATA_DIR", raising=False)
    assert download.get_cache_dir() == download.cache_dir
    assert download.cache_dir == os.path.join(os.path.expanduser("~"), ".dezero")
    monkeypatch.setenv("DEZERO_DATA_DIR", str(tmp_path))
    assert download.get_cache_dir() == str(tmp_path)


def test_download_then_cached(server, cache):
    base, routes, hits = server
    routes["/files/data.bin"] = (200, PAYLOAD, None)
    path = get_file(base + "/files/data.bin", sha256=PAYLOAD_SHA, progress=False)
    assert path == str(cache / "data.bin")
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert sorted(os.listdir(cache)) == ["data.bin"]  # no temporary file left behind
    # A valid file already present is not downloaded again.
    assert get_file(base + "/files/data.bin", sha256=PAYLOAD_SHA) == path
    assert hits["/files/data.bin"] == 1


def test_download_with_progress_bar_and_file_name(server, cache, capsys):
    base, routes, _ = server
    routes["/x?query=1"] = (200, PAYLOAD, None)
    path = get_file(base + "/x?query=1", "renamed.bin")
    assert os.path.basename(path) == "renamed.bin"
    assert os.path.getsize(path) == len(PAYLOAD)
    assert "renamed.bin" in capsys.readouterr().err  # tqdm writes its bar to stderr


def test_download_without_tqdm(server, cache, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    base, routes, _ = server
    routes["/a.bin"] = (200, PAYLOAD, None)
    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    path = get_file(base + "/a.bin")
    assert os.path.getsize(path) == len(PAYLOAD)


def test_corrupted_download_raises_and_leaves_nothing(server, cache):
    base, routes, _ = server
    routes["/data.bin"] = (200, PAYLOAD[:-1] + b"\x00", None)
    with pytest.raises(ChecksumError, match=r"'data\.bin'.*corrupted.*sha256"):
        get_file(base + "/data.bin", sha256=PAYLOAD_SHA, progress=False)
    assert os.listdir(cache) == []


def test_truncated_download_raises_and_leaves_nothing(server, cache):
    base, routes, _ = server
    routes["/big.bin"] = (200, PAYLOAD[:1000], len(PAYLOAD))  # promises more than it sends
    with pytest.raises(DownloadError, match=rf"'big\.bin'.*truncated.*1000.* {len(PAYLOAD)}"):
        get_file(base + "/big.bin", progress=False)
    assert os.listdir(cache) == []


def test_http_error_names_the_file_and_folder(server, cache):
    base, _, _ = server
    with pytest.raises(DownloadError, match=r"'missing\.bin'.*HTTP 404") as info:
        get_file(base + "/missing.bin", progress=False)
    assert str(cache) in str(info.value)
    assert not os.path.exists(cache / "missing.bin")


def test_unreachable_server_names_the_file_and_folder(cache):
    url = f"http://127.0.0.1:{_closed_port()}/train-images-idx3-ubyte.gz"
    with pytest.raises(OfflineError, match=r"train-images-idx3-ubyte\.gz") as info:
        get_file(url, progress=False, timeout=5)
    message = str(info.value)
    assert str(cache) in message and "DEZERO_DATA_DIR" in message
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, RuntimeError)
    assert os.listdir(cache) == []


def test_stale_cached_file_is_replaced(server, cache):
    base, routes, hits = server
    routes["/data.bin"] = (200, PAYLOAD, None)
    cache.mkdir()
    (cache / "data.bin").write_bytes(b"half a file")
    path = get_file(base + "/data.bin", sha256=PAYLOAD_SHA, progress=False)
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert hits["/data.bin"] == 1


def test_stale_cached_file_offline_explains_both(cache):
    cache.mkdir()
    (cache / "data.bin").write_bytes(b"half a file")
    url = f"http://127.0.0.1:{_closed_port()}/data.bin"
    with pytest.raises(OfflineError, match=r"cached file .*data\.bin.* fails its checksum"):
        get_file(url, sha256=PAYLOAD_SHA, progress=False, timeout=5)
    assert (cache / "data.bin").read_bytes() == b"half a file"  # the user's file is left alone


def test_known_file_accepts_gzip_content_checksum(server, cache, monkeypatch):
    """A recompressed .gz is accepted by the checksum of its decompressed content."""
    content = b"IDX content" * 100
    monkeypatch.setitem(
        download._KNOWN_FILES,
        "known.gz",
        {"sha256": "0" * 64, "gunzip_sha256": hashlib.sha256(content).hexdigest()},
    )
    base, routes, hits = server
    routes["/known.gz"] = (200, gzip.compress(content, mtime=0), None)
    path = get_file(base + "/known.gz", progress=False)
    with gzip.open(path, "rb") as f:
        assert f.read() == content
    # Recompressed differently: still the same content, still accepted without a download.
    with open(path, "wb") as f:
        f.write(gzip.compress(content, compresslevel=1, mtime=0))
    assert get_file(base + "/known.gz", progress=False) == path
    assert hits["/known.gz"] == 1


def test_known_file_rejects_wrong_content(server, cache, monkeypatch):
    monkeypatch.setitem(download._KNOWN_FILES, "known.gz", {"sha256": "0" * 64})
    base, routes, _ = server
    routes["/known.gz"] = (200, gzip.compress(b"other"), None)
    with pytest.raises(ChecksumError, match=r"'known\.gz'.*corrupted"):
        get_file(base + "/known.gz", progress=False)
    assert os.listdir(cache) == []


def test_md5_checksum(server, cache):
    base, routes, _ = server
    routes["/m.bin"] = (200, PAYLOAD, None)
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert os.path.exists(get_file(base + "/m.bin", sha256={"md5": md5}, progress=False))


def test_unwritable_folder(server, tmp_path, monkeypatch):
    base, routes, _ = server
    routes["/a.bin"] = (200, PAYLOAD, None)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DEZERO_DATA_DIR", str(blocker / "sub"))
    with pytest.raises(DownloadError, match=r"cannot write 'a\.bin' into the cache folder"):
        get_file(base + "/a.bin", progress=False)


def test_bad_file_names(cache):
    with pytest.raises(ValueError, match="cannot infer a file name"):
        get_file("http://127.0.0.1/")
    with pytest.raises(ValueError, match="plain file name"):
        get_file("http://127.0.0.1/x", "../escape")
    with pytest.raises(ValueError, match="plain file name, got ''"):
        get_file("http://127.0.0.1/x", file_name="")  # not the cache folder itself


def test_shared_mnist_files_pass_the_checks(monkeypatch):
    """The real MNIST files (recompressed .gz) are accepted without any download."""
    folder = os.environ.get("DEZERO_DATA_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"
    )
    name = "t10k-labels-idx1-ubyte.gz"
    if not os.path.exists(os.path.join(folder, name)):
        pytest.skip("real MNIST files not found")
    monkeypatch.setenv("DEZERO_DATA_DIR", folder)
    url = f"http://127.0.0.1:{_closed_port()}/{name}"  # would fail if it tried to download
    assert get_file(url, progress=False) == os.path.join(folder, name)
