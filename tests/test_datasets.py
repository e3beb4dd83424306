"""dezero.datasets: the Dataset protocol and every data set, on files made by the tests
(and on the real MNIST files where they are available). No test touches the network."""

import functools
import gzip
import http.server
import io
import os
import socket
import tarfile
import threading

import numpy as np
import pytest

from dezero import datasets, download, transforms, utils
from dezero.datasets import (
    CIFAR10,
    CIFAR100,
    MNIST,
    Dataset,
    ImageNet,
    Shakespear,
    SinCurve,
    Spiral,
    get_spiral,
)
from dezero.utils import OfflineError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv("DEZERO_DATA_DIR", str(folder))
    return folder


def _closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


# -----------------------------------------------------------------------------
# Dataset protocol
# -----------------------------------------------------------------------------
class Squares(Dataset):
    def prepare(self):
        self.data = np.arange(10, dtype=np.float32).reshape(5, 2)
        self.label = np.arange(5) ** 2


def test_dataset_getitem_len_and_transforms():
    ds = Squares(transform=lambda x: x * 2, target_transform=lambda t: t + 1)
    assert len(ds) == 5
    x, t = ds[2]
    np.testing.assert_array_equal(x, [8.0, 10.0])
    assert t == 5
    x, t = ds[-1]
    assert t == 17


def test_dataset_index_out_of_range():
    ds = Squares()
    with pytest.raises(IndexError, match=r"Squares index 5 is out of range .* length 5"):
        ds[5]
    with pytest.raises(IndexError, match="index -6 is out of range"):
        ds[-6]
    with pytest.raises(TypeError, match="indices must be integers, got str"):
        ds["0"]
    with pytest.raises(IndexError, match=r"index 7 is out of range .* length 5"):
        ds.get_batch([0, 7])


def test_dataset_without_labels():
    class Unlabelled(Dataset):
        def prepare(self):
            self.data = np.ones((3, 2))

    ds = Unlabelled()
    assert ds[0][1] is None
    x, t = ds.get_batch([0, 2])
    assert x.shape == (2, 2) and t is None


def test_get_batch_matches_per_sample():
    f = transforms.Compose([transforms.Flatten(), transforms.Normalize(1.0, 2.0)])
    ds = Squares(transform=f)
    idx = np.array([4, 0, 3])
    x, t = ds.get_batch(idx)
    np.testing.assert_array_equal(x, np.stack([ds[i][0] for i in idx]))
    np.testing.assert_array_equal(t, [16, 0, 9])


def test_get_batch_uses_overridden_getitem():
    class Custom(Dataset):
        def __getitem__(self, i):
            return np.full(2, i, dtype=np.float32), i % 2

        def __len__(self):
            return 4

    x, t = Custom().get_batch([3, 1])
    np.testing.assert_array_equal(x, [[3, 3], [1, 1]])
    np.testing.assert_array_equal(t, [1, 1])


# -----------------------------------------------------------------------------
# Spiral, SinCurve
# -----------------------------------------------------------------------------
def _spiral_reference(train):
    """The spiral written point by point, as the book describes it."""
    rng = np.random.RandomState(1984 if train else 2020)
    x = np.zeros((300, 2), dtype=np.float32)
    t = np.zeros(300, dtype=np.int32)
    for j in range(3):
        for i in range(100):
            rate = i / 100
            theta = j * 4.0 + 4.0 * rate + rng.randn() * 0.2
            x[100 * j + i] = [rate * np.sin(theta), rate * np.cos(theta)]
            t[100 * j + i] = j
    order = rng.permutation(300)
    return x[order], t[order]


@pytest.mark.parametrize("train", [True, False])
def test_spiral_matches_reference(train):
    x, t = get_spiral(train)
    rx, rt = _spiral_reference(train)
    np.testing.assert_allclose(x, rx, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(t, rt)
    assert x.dtype == np.float32 and t.dtype == np.int32


def test_spiral_dataset_is_deterministic_and_leaves_global_rng_alone():
    state = np.random.get_state()[1].copy()  # noqa: NPY002  (the global RNG is the point)
    a, b = Spiral(train=True), Spiral(train=True)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    test = Spiral(train=False)
    assert not np.array_equal(a.data, test.data)
    assert len(a) == 300 and np.bincount(a.label).tolist() == [100, 100, 100]
    assert np.all(np.linalg.norm(a.data, axis=1) < 1.0)


def test_sincurve():
    train, test = SinCurve(train=True), SinCurve(train=False)
    assert len(train) == 999 and train.data.shape == (999, 1) and train.label.shape == (999, 1)
    assert train.data.dtype == np.float32
    np.testing.assert_array_equal(train.data[1:], train.label[:-1])
    xs = np.linspace(0, 2 * np.pi, 1000)
    noise = train.data[:, 0] - np.sin(xs[:-1])
    assert np.abs(noise).max() <= 0.05 + 1e-6 and np.abs(noise).std() > 0.01
    np.testing.assert_allclose(test.data[:, 0], np.cos(xs[:-1]), atol=1e-6)
    np.testing.assert_array_equal(SinCurve().data, train.data)


# -----------------------------------------------------------------------------
# MNIST on small files made here
# -----------------------------------------------------------------------------
def _idx_bytes(array, magic):
    header = np.array([magic, len(array), *array.shape[1:]], dtype=">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _write_gz(path, raw):
    with open(path, "wb") as f:
        f.write(gzip.compress(raw))


@pytest.fixture
def fake_mnist(cache, monkeypatch):
    """Tiny MNIST-format files (train: 7 images, test: 3) in an empty cache folder."""
    for name in MNIST.train_files + MNIST.test_files:
        monkeypatch.delitem(download._KNOWN_FILES, name)  # the real checksums would not match
    monkeypatch.setattr(MNIST, "mirrors", (_closed_port_url(),))
    rng = np.random.default_rng(0)
    arrays = {}
    for (img_name, lbl_name), n in ((MNIST.train_files, 7), (MNIST.test_files, 3)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write_gz(cache / img_name, _idx_bytes(images, 2051))
        _write_gz(cache / lbl_name, _idx_bytes(labels, 2049))
        arrays[img_name] = images
        arrays[lbl_name] = labels
    return cache, arrays


def test_mnist_reads_idx_files(fake_mnist):
    _, arrays = fake_mnist
    train = MNIST(train=True)
    assert train.data.shape == (7, 1, 28, 28) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.data[:, 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(train.label, arrays["train-labels-idx1-ubyte.gz"])
    x, _ = train[0]
    assert x.shape == (784,) and x.dtype == np.float32
    np.testing.assert_allclose(x, arrays["train-images-idx3-ubyte.gz"][0].reshape(-1) / 255.0)
    xb, _ = train.get_batch([0, 1])
    np.testing.assert_array_equal(xb[0], x)
    assert len(MNIST(train=False)) == 3
    raw = MNIST(train=False, transform=None)
    assert raw[0][0].shape == (1, 28, 28)
    assert MNIST.labels() == {i: str(i) for i in range(10)}


def test_mnist_bad_magic_names_the_file(fake_mnist):
    cache, arrays = fake_mnist
    images = arrays["t10k-images-idx3-ubyte.gz"]
    _write_gz(cache / "t10k-images-idx3-ubyte.gz", _idx_bytes(images, 2049))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz.*magic number 2049"):
        MNIST(train=False)


def test_mnist_truncated_names_the_file(fake_mnist):
    cache, arrays = fake_mnist
    raw = _idx_bytes(arrays["t10k-images-idx3-ubyte.gz"], 2051)[:-10]
    _write_gz(cache / "t10k-images-idx3-ubyte.gz", raw)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz.*truncated"):
        MNIST(train=False)


def test_mnist_not_gzip_names_the_file(fake_mnist):
    cache, _ = fake_mnist
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz.*not a valid gzip"):
        MNIST(train=False)


def test_mnist_count_mismatch(fake_mnist):
    cache, _ = fake_mnist
    _write_gz(cache / "t10k-labels-idx1-ubyte.gz", _idx_bytes(np.zeros(2), 2049))
    with pytest.raises(ValueError, match=r"has 3 images but .* has 2 labels"):
        MNIST(train=False)


def test_mnist_offline_names_file_and_folder(cache, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", (_closed_port_url(), _closed_port_url()))
    with pytest.raises(OfflineError, match=r"train-images-idx3-ubyte\.gz") as info:
        MNIST(train=True)
    assert str(cache) in str(info.value)


@pytest.fixture
def file_server(tmp_path):
    """Serve the folder tmp_path/www over HTTP on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_mnist_downloads_from_mirror(file_server, cache, monkeypatch):
    """Missing files are fetched through get_file; a dead first mirror falls through."""
    root, url = file_server
    for name in MNIST.test_files:
        monkeypatch.delitem(download._KNOWN_FILES, name)
    _write_gz(root / "t10k-images-idx3-ubyte.gz", _idx_bytes(np.ones((2, 28, 28)), 2051))
    _write_gz(root / "t10k-labels-idx1-ubyte.gz", _idx_bytes(np.array([3, 4]), 2049))
    monkeypatch.setattr(MNIST, "mirrors", (_closed_port_url(), url))
    ds = MNIST(train=False)
    assert ds.label.tolist() == [3, 4]
    assert sorted(os.listdir(cache)) == sorted(MNIST.test_files)


def _real_mnist_dir():
    for folder in (
        os.environ.get("DEZERO_DATA_DIR"),
        os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"),
        utils.cache_dir,
    ):
        if folder and os.path.exists(os.path.join(folder, "t10k-images-idx3-ubyte.gz")):
            return folder
    pytest.skip("real MNIST files not found (set DEZERO_DATA_DIR)")


def test_real_mnist(monkeypatch):
    monkeypatch.setenv("DEZERO_DATA_DIR", _real_mnist_dir())
    monkeypatch.setattr(MNIST, "mirrors", (_closed_port_url(),))  # never download here
    test = MNIST(train=False)
    assert test.data.shape == (10000, 1, 28, 28)
    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(test.label).tolist() == counts
    train = MNIST(train=True)
    assert len(train) == 60000
    assert abs(float(train.data.mean()) - 33.318) < 1e-3
    x, _ = train.get_batch(np.arange(100))
    assert x.shape == (100, 784) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0


# -----------------------------------------------------------------------------
# CIFAR (binary versions) on small tarballs made here
# -----------------------------------------------------------------------------
def _make_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def _cifar_records(rng, n, label_columns):
    labels = np.stack([rng.integers(0, hi, size=n) for hi in label_columns], axis=1)
    images = rng.integers(0, 256, size=(n, 3, 32, 32))
    rows = np.concatenate([labels, images.reshape(n, -1)], axis=1).astype(np.uint8)
    return rows.tobytes(), labels, images


def test_cifar10_binary(cache, monkeypatch):
    monkeypatch.delitem(download._KNOWN_FILES, "cifar-10-binary.tar.gz")
    rng = np.random.default_rng(0)
    members, train_labels = {}, []
    for i in range(1, 6):
        raw, labels, _ = _cifar_records(rng, 2, [10])
        members[f"cifar-10-batches-bin/data_batch_{i}.bin"] = raw
        train_labels.append(labels[:, 0])
    raw, test_labels, test_images = _cifar_records(rng, 3, [10])
    members["cifar-10-batches-bin/test_batch.bin"] = raw
    _make_tar(cache / "cifar-10-binary.tar.gz", members)

    train = CIFAR10(train=True)
    assert train.data.shape == (10, 3, 32, 32) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.label, np.concatenate(train_labels))
    test = CIFAR10(train=False)
    np.testing.assert_array_equal(test.data, test_images)
    np.testing.assert_array_equal(test.label, test_labels[:, 0])
    x, _ = test[0]
    assert x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_allclose(x, (test_images[0] - 127.5) / 127.5, rtol=1e-6)
    xb, _ = test.get_batch([0, 1])
    np.testing.assert_array_equal(xb[0], x)
    assert CIFAR10.labels()[0] == "airplane" and len(CIFAR10.labels()) == 10


def test_cifar10_corrupted_archive(cache, monkeypatch):
    monkeypatch.delitem(download._KNOWN_FILES, "cifar-10-binary.tar.gz")
    _make_tar(cache / "cifar-10-binary.tar.gz", {"cifar-10-batches-bin/test_batch.bin": b"x" * 5})
    with pytest.raises(ValueError, match=r"test_batch\.bin: 5 bytes is not a whole number"):
        CIFAR10(train=False)
    with pytest.raises(ValueError, match=r"lacks the expected member.*data_batch_1\.bin"):
        CIFAR10(train=True)
    (cache / "cifar-10-binary.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ValueError, match=r"cifar-10-binary\.tar\.gz.*not a valid tar\.gz"):
        CIFAR10(train=False)


def test_cifar100_binary(cache, monkeypatch):
    monkeypatch.delitem(download._KNOWN_FILES, "cifar-100-binary.tar.gz")
    rng = np.random.default_rng(1)
    train_raw, train_labels, _ = _cifar_records(rng, 4, [20, 100])
    test_raw, test_labels, test_images = _cifar_records(rng, 2, [20, 100])
    _make_tar(
        cache / "cifar-100-binary.tar.gz",
        {"cifar-100-binary/train.bin": train_raw, "cifar-100-binary/test.bin": test_raw},
    )
    fine = CIFAR100(train=True)
    np.testing.assert_array_equal(fine.label, train_labels[:, 1])
    coarse = CIFAR100(train=False, label_type="coarse")
    np.testing.assert_array_equal(coarse.label, test_labels[:, 0])
    np.testing.assert_array_equal(coarse.data, test_images)
    assert len(CIFAR100.labels()) == 100 and len(CIFAR100.labels("coarse")) == 20
    assert CIFAR100.labels()[99] == "worm"
    with pytest.raises(ValueError, match="label_type must be 'fine' or 'coarse'"):
        CIFAR100(label_type="medium")


# -----------------------------------------------------------------------------
# Shakespear, ImageNet labels
# -----------------------------------------------------------------------------
def test_shakespear_from_local_file(cache, monkeypatch):
    import hashlib

    text = "First Citizen:\nBefore we proceed, hear me speak. Ã©\n"
    (cache / "input.txt").write_text(text, encoding="utf-8")  # the one Tiny Shakespeare file
    monkeypatch.setattr(Shakespear, "sha256", hashlib.sha256(text.encode()).hexdigest())
    ds = Shakespear()
    assert len(ds) == len(text) - 1 and ds.data.dtype == np.int32
    # ids in order of first appearance: 'F' -> 0, 'i' -> 1, 'r' -> 2, ...
    assert ds.char_to_id["F"] == 0 and ds.char_to_id["i"] == 1 and ds.char_to_id["r"] == 2
    decoded = "".join(ds.id_to_char[int(i)] for i in ds.data) + ds.id_to_char[int(ds.label[-1])]
    assert decoded == text
    np.testing.assert_array_equal(ds.data[1:], ds.label[:-1])
    assert datasets.Shakespeare is Shakespear


def test_imagenet_labels_from_local_file(cache):
    (cache / "imagenet1000_clsidx_to_labels.txt").write_text("{0: 'tench', 1: 'goldfish'}")
    assert ImageNet.labels() == {0: "tench", 1: "goldfish"}
    (cache / "imagenet1000_clsidx_to_labels.txt").write_text("__import__('os')")
    with pytest.raises(ValueError, match="not a dict of ImageNet labels"):
        ImageNet.labels()
    with pytest.raises(NotImplementedError, match=r"ImageNet\.labels"):
        ImageNet()


def test_mnist_offline_names_every_missing_file_at_once(cache, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", (_closed_port_url(),))
    (cache / "train-labels-idx1-ubyte.gz").write_bytes(b"present")  # only this one is there
    with pytest.raises(OfflineError) as info:
        MNIST(train=True)
    message = str(info.value)
    assert (f"Missing from {str(cache)!r}: train-images-idx3-ubyte.gz, "
            f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz.") in message
    assert "train-labels" not in message
    assert isinstance(info.value.__cause__, OfflineError)


def test_mnist_offline_names_the_corrupt_file_of_the_split_asked_for(cache, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", (_closed_port_url(),))
    (cache / "t10k-images-idx3-ubyte.gz").write_bytes(b"damaged test images")
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged test labels")
    with pytest.raises(OfflineError) as info:
        MNIST(train=False)
    message = str(info.value)
    first = message.splitlines()[0]
    assert first.startswith("MNIST (test split) cannot be read: ")
    assert f"{str(cache / 't10k-images-idx3-ubyte.gz')!r} is corrupted" in first
    # the training files are missing too, and said to be so only after that
    assert message.splitlines()[1].startswith(
        f"Also missing from {str(cache)!r}: train-images-idx3-ubyte.gz, "
        f"train-labels-idx1-ubyte.gz.")
