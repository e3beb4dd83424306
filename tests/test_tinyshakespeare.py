"""dezero.datasets.TinyShakespeare: vocabulary, 90/10 split, windows, the DataLoader of
random windows, and the download (against a local server on 127.0.0.1, with its sha256)."""

import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from dezero import DataLoader
from dezero.datasets import TinyShakespeare
from dezero.utils import ChecksumError

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 3
SHA = hashlib.sha256(TEXT.encode("utf-8")).hexdigest()
# the shared data folder beside the checkout (or beside a folder of worktrees)
SHARED = next((p / "shared" / "data" / "tinyshakespeare"
               for p in Path(__file__).resolve().parents[1:4]
               if (p / "shared" / "data" / "tinyshakespeare" / "input.txt").exists()),
              Path("/nonexistent"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("DEZERO_DATA_DIR", str(folder))
    monkeypatch.setattr(TinyShakespeare, "sha256", SHA)
    return folder


@pytest.fixture
def server():
    """Serves TEXT at /input.txt and garbage at /bad.txt; yields (base_url, hits)."""
    hits = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            body = TEXT.encode("utf-8") if self.path == "/input.txt" else b"not shakespeare"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_vocabulary_split_and_windows(cache):
    (cache / "input.txt").write_text(TEXT, encoding="utf-8")
    train, val = TinyShakespeare(block_size=8), TinyShakespeare(train=False, block_size=8)
    assert train.vocab == sorted(set(TEXT)) and train.vocab_size == len(set(TEXT))
    n = int(0.9 * len(TEXT))
    assert train.decode(train.ids) == TEXT[:n] and val.decode(val.ids) == TEXT[n:]
    assert len(train) == n - 8
    x, t = train[3]
    assert train.decode(x) == TEXT[3:11] and train.decode(t) == TEXT[4:12]
    np.testing.assert_array_equal(train.encode("Speak"), [train.vocab.index(c) for c in "Speak"])
    assert train.decode(train.encode("hear me")) == "hear me"
    with pytest.raises(ValueError, match="'Z' is not in the vocabulary"):
        train.encode("Zebra")
    with pytest.raises(IndexError, match="out of range"):
        train[len(train)]
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        TinyShakespeare(block_size=0)


def test_loader_yields_random_shifted_windows(cache):
    (cache / "input.txt").write_text(TEXT, encoding="utf-8")
    ds = TinyShakespeare(block_size=16)
    loader = DataLoader(ds, batch_size=5)
    x, t = next(iter(loader))
    assert x.shape == t.shape == (5, 16) and x.dtype.kind == "i"
    np.testing.assert_array_equal(x[:, 1:], t[:, :-1])
    starts = [ds.decode(ds.ids).find(ds.decode(row)) for row in x]
    assert all(s >= 0 for s in starts) and len(set(starts)) > 1  # real, different windows
    for row, target in zip(x, t):
        i = ds.decode(ds.ids).find(ds.decode(row))
        assert ds.decode(target) == ds.decode(ds.ids)[i + 1:i + 17]


def test_download_with_checksum_from_a_local_server(cache, server, monkeypatch):
    base, hits = server
    monkeypatch.setattr(TinyShakespeare, "url", base + "/input.txt")
    ds = TinyShakespeare(block_size=4)
    assert (cache / "tinyshakespeare.txt").read_text(encoding="utf-8") == TEXT
    assert ds.decode(ds.ids) == TEXT[:int(0.9 * len(TEXT))]
    TinyShakespeare(train=False, block_size=4)  # cached now: no second download
    assert hits == {"/input.txt": 1}


def test_download_with_a_wrong_checksum_leaves_nothing(cache, server, monkeypatch):
    base, _ = server
    monkeypatch.setattr(TinyShakespeare, "url", base + "/bad.txt")
    with pytest.raises(ChecksumError):
        TinyShakespeare()
    assert os.listdir(cache) == []


def test_an_input_txt_with_another_checksum_is_not_used(cache, server, monkeypatch):
    (cache / "input.txt").write_text("some other text entirely", encoding="utf-8")
    base, hits = server
    monkeypatch.setattr(TinyShakespeare, "url", base + "/input.txt")
    ds = TinyShakespeare(block_size=4)
    assert ds.decode(ds.ids) == TEXT[:int(0.9 * len(TEXT))] and hits == {"/input.txt": 1}
    assert (cache / "input.txt").read_text(encoding="utf-8") == "some other text entirely"


@pytest.mark.skipif(not (SHARED / "input.txt").exists(), reason="the shared data is missing")
def test_the_real_file(monkeypatch):
    monkeypatch.setenv("DEZERO_DATA_DIR", str(SHARED))
    train, val = TinyShakespeare(), TinyShakespeare(train=False)
    assert train.vocab_size == 65
    assert len(train.ids) == 1003854 and len(val.ids) == 111540  # nanoGPT's split
    assert train.decode(train[0][0]).startswith("First Citizen:")
