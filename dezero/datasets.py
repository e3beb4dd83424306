"""Data sets: the book's Dataset base class and the data sets it uses.

Every data set here keeps its samples in whole arrays (``data`` and ``label``), so that
``get_batch`` (used by the DataLoader) gathers a batch by array indexing and applies
batch-safe transforms once per batch instead of once per sample.

Downloaded files go through ``dezero.download.get_file`` into the cache folder (``~/.dezero``,
or ``DEZERO_DATA_DIR``); an offline machine gets an error that names the file and the folder
to put it in.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from dezero import transforms
from dezero.download import (
    DownloadError,
    OfflineError,
    get_cache_dir,
    get_file,
)

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "MNIST",
    "Dataset",
    "ImageNet",
    "Shakespear",
    "Shakespeare",
    "SinCurve",
    "Spiral",
    "TinyShakespeare",
    "get_spiral",
    "tiny_shakespeare_path",
]


class Dataset:
    """Base class: subclasses fill ``self.data`` and ``self.label`` in ``prepare()``.

    Parameters
    ----------
    train : bool
        The training split (True) or the test split (False).
    transform, target_transform : callable, optional
        Applied to each sample's data and label when it is read.

    ``dataset[i]`` returns ``(transform(data[i]), target_transform(label[i]))``, with
    ``None`` as the label when the data set has none. ``len(dataset)`` is the number of
    samples. A subclass may instead override ``__getitem__`` and ``__len__``.

    >>> class Squares(Dataset):
    ...     def prepare(self):
    ...         self.data = np.arange(4)
    ...         self.label = self.data ** 2
    >>> ds = Squares()
    >>> len(ds), ds[3]
    (4, (3, 9))
    """

    def __init__(self, train=True, transform=None, target_transform=None):
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: train must be True (the training split) or "
                            f"False (the test split), got {train!r}")
        for name, fn in (("transform", transform), ("target_transform", target_transform)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{type(self).__name__}: {name} must be callable or None, got "
                                f"{fn!r}")
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        self.data = None
        self.label = None
        self.prepare()

    def prepare(self):
        """Load ``self.data`` (and ``self.label``); called once by ``__init__``."""

    def _check_index(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(
                f"{type(self).__name__} index {index} is out of range for a data set of "
                f"length {n}"
            )

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)):
            raise TypeError(
                f"{type(self).__name__} indices must be integers, got {type(index).__name__}"
                " (use get_batch for arrays of indices)"
            )
        self._check_index(index)
        x = self.data[index]
        if self.transform is not None:
            x = self.transform(x)
        if self.label is None:
            return x, None
        t = self.label[index]
        if self.target_transform is not None:
            t = self.target_transform(t)
        return x, t

    def __len__(self):
        if self.data is None:
            return 0
        return len(self.data)

    def get_batch(self, indices):
        """The samples at ``indices`` as stacked arrays ``(x, t)`` (``t`` None if unlabelled).

        Gathered by array indexing, transformed once per batch with
        ``transforms.apply_batch``, when the data is an ndarray and ``__getitem__`` is not
        overridden; otherwise sample by sample through ``self[i]``.
        """
        indices = np.asarray(indices)
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(f"{type(self).__name__}.get_batch: indices must be integers, got "
                            f"dtype {indices.dtype}")
        if type(self).__getitem__ is Dataset.__getitem__ and isinstance(self.data, np.ndarray):
            n = len(self)
            if indices.size and (indices.max() >= n or indices.min() < -n):
                bad = indices[(indices >= n) | (indices < -n)][0]
                self._check_index(int(bad))
            x = transforms.apply_batch(self.transform, self.data[indices])
            if self.label is None:
                return x, None
            t = transforms.apply_batch(self.target_transform, np.asarray(self.label)[indices])
            return x, t
        samples = [self[int(i)] for i in indices]
        x = np.stack([np.asarray(s[0]) for s in samples])
        if all(s[1] is None for s in samples):
            return x, None
        return x, np.stack([np.asarray(s[1]) for s in samples])

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} samples)"


# =============================================================================
# Toy data sets
# =============================================================================
def get_spiral(train=True):
    """The book's spiral data: 3 classes x 100 points in 2-D, shuffled.

    The noise comes from a private generator seeded per split (1984 for train, 2020 for
    test), so the data is the same on every call and NumPy's global random state is left
    alone. Returns ``x`` (300, 2) float32 and ``t`` (300,) int32.

    >>> x, t = get_spiral()
    >>> x.shape, x.dtype, np.bincount(t).tolist()
    ((300, 2), dtype('float32'), [100, 100, 100])
    """
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"get_spiral: train must be True (the training split) or False (the "
                        f"test split), got {train!r}")
    rng = np.random.RandomState(1984 if train else 2020)
    num_data, num_class = 100, 3
    rate = np.arange(num_data) / num_data
    noise = rng.randn(num_class, num_data) * 0.2
    theta = np.arange(num_class)[:, None] * 4.0 + 4.0 * rate + noise  # (class, point)
    radius = np.broadcast_to(rate, theta.shape)
    x = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=-1).reshape(-1, 2)
    t = np.repeat(np.arange(num_class), num_data)
    order = rng.permutation(num_data * num_class)
    return x[order].astype(np.float32), t[order].astype(np.int32)


class Spiral(Dataset):
    """The spiral data of ``get_spiral`` as a Dataset (300 samples, 3 classes).

    >>> ds = Spiral(train=False)
    >>> len(ds), ds[0][0].shape
    (300, (2,))
    """

    def prepare(self):
        self.data, self.label = get_spiral(self.train)


class SinCurve(Dataset):
    """One period of a sine wave sampled at 1000 points, for next-value prediction.

    Training split: sin(x) plus uniform noise in [-0.05, 0.05] (a fixed seed, so the data
    is the same every time); test split: cos(x), noise-free. ``data[i]`` is the value at
    step i and ``label[i]`` the value at step i + 1, both shaped (1,) float32.

    >>> ds = SinCurve()
    >>> len(ds), ds.data.shape, ds.data.dtype
    (999, (999, 1), dtype('float32'))
    """

    def prepare(self):
        num_data = 1000
        x = np.linspace(0, 2 * np.pi, num_data)
        if self.train:
            rng = np.random.RandomState(0)
            y = np.sin(x) + rng.uniform(-0.05, 0.05, size=x.shape)
        else:
            y = np.cos(x)
        y = y.astype(np.float32)[:, np.newaxis]
        self.data = y[:-1]
        self.label = y[1:]


# =============================================================================
# MNIST
# =============================================================================
_MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)


def _fetch(file_name, mirrors):
    """``get_file`` from the first mirror that works; the first error if none does."""
    first_error = None
    for base in mirrors:
        try:
            return get_file(base + file_name, file_name)
        except DownloadError as e:  # try the next mirror, report the first failure
            if first_error is None:
                first_error = e
    raise first_error


def _bad_gzip(path, e):
    return ValueError(
        f"cannot read {path!r}: not a valid gzip file ({e}); delete it so that it is "
        "downloaded again, or replace it with a good copy"
    )


def _read_idx(path, magic, item_shape):
    """Read a gzipped IDX file: big-endian header (magic, count, dims), then uint8 data.

    The data is decompressed straight into the result array (no intermediate copy).
    """
    ndim = len(item_shape) + 1
    header_size = 4 * (1 + ndim)
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise ValueError(f"{path!r} is not an MNIST IDX file: only {len(header)} bytes")
            fields = np.frombuffer(header, dtype=">i4")
            if fields[0] != magic:
                raise ValueError(
                    f"{path!r} is not the expected MNIST IDX file: magic number "
                    f"{int(fields[0])}, expected {magic}"
                )
            count, dims = int(fields[1]), tuple(int(d) for d in fields[2:])
            if dims != item_shape or count < 0:
                raise ValueError(
                    f"{path!r}: {count} items shaped {dims}, expected items shaped {item_shape}"
                )
            out = np.empty((count, *item_shape), dtype=np.uint8)
            view = memoryview(out).cast("B")
            filled = 0
            while filled < len(view):
                n = f.readinto(view[filled : filled + (1 << 20)])  # bounded temporaries
                if not n:
                    break
                filled += n
            extra = len(f.read(1))
    except (OSError, EOFError, zlib.error) as e:
        raise _bad_gzip(path, e) from e
    if filled < len(view) or extra:
        size = header_size + filled + extra
        expected = header_size + len(view)
        what = "truncated" if filled < len(view) else "longer than its header says"
        raise ValueError(
            f"{path!r} is corrupted or {what}: {size}{'+' if extra else ''} bytes after "
            f"decompression, expected {expected} for {count} items"
        )
    return out


_MNIST_TRANSFORM = transforms.Compose(  # the book's default: 784 float32 values in [0, 1]
    [transforms.Flatten(), transforms.ToFloat(), transforms.Normalize(0.0, 255.0)]
)


class MNIST(Dataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28 x 28.

    Reads the standard ``*-idx?-ubyte.gz`` files from the cache folder (``DEZERO_DATA_DIR``
    or ``~/.dezero``), downloading them through ``get_file`` if they are missing.
    ``data`` is uint8 shaped (N, 1, 28, 28) and ``label`` int32 (N,). The default transform,
    as in the book, flattens each image to 784 float32 values scaled to [0, 1]; it is
    batch-safe, so the DataLoader applies it to whole batches.
    """

    train_files = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    test_files = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    mirrors = _MNIST_MIRRORS

    def __init__(
        self,
        train=True,
        transform=_MNIST_TRANSFORM,
        target_transform=None,
    ):
        super().__init__(train, transform, target_transform)

    def prepare(self):
        image_file, label_file = self.train_files if self.train else self.test_files
        paths = []
        for name in (image_file, label_file):
            try:
                paths.append(_fetch(name, self.mirrors))
            except OfflineError as e:
                raise self._offline_error(e, name) from e
        image_path, label_path = paths
        self.data = _read_idx(image_path, 2051, (28, 28))[:, np.newaxis]
        self.label = _read_idx(label_path, 2049, ()).astype(np.int32)
        if len(self.data) != len(self.label):
            raise ValueError(
                f"MNIST files disagree: {image_path!r} has {len(self.data)} images but "
                f"{label_path!r} has {len(self.label)} labels"
            )

    @classmethod
    def _offline_error(cls, first: OfflineError, failed: str | None = None) -> OfflineError:
        """One error naming every MNIST file missing from the cache folder, and the folder;
        and, when the file that could not be had is there but fails its checksum, that file.

        (``first``, the download's own error, is chained to it as its cause.)
        """
        folder = get_cache_dir()
        missing = [name for name in cls.train_files + cls.test_files
                   if not os.path.exists(os.path.join(folder, name))]
        split = "training" if failed in cls.train_files else "test"
        if failed is not None and os.path.exists(os.path.join(folder, failed)):
            lines = [
                f"MNIST ({split} split) cannot be read: {os.path.join(folder, failed)!r} is "
                f"corrupted (it fails its checksum), and a good copy could not be downloaded "
                f"(the network looks unreachable). Replace it with a good copy (from any MNIST "
                f"mirror, e.g. {cls.mirrors[0]}{failed}), or delete it and run again online."
            ]
            head = "Also missing"
        else:
            lines = ["MNIST cannot be downloaded: the network looks unreachable."]
            head = "Missing"
        if missing:
            lines.append(
                f"{head} from {folder!r}: {', '.join(missing)}. Put these files there (from "
                f"any MNIST mirror, e.g. {cls.mirrors[0]}), or set DEZERO_DATA_DIR to a folder "
                f"that holds all four."
            )
        return OfflineError("\n".join(lines))

    def show(self, row=10, col=10):
        """Show a grid of random images with matplotlib."""
        import matplotlib.pyplot as plt

        H, W = 28, 28
        img = np.zeros((H * row, W * col), dtype=np.uint8)
        for r in range(row):
            for c in range(col):
                i = np.random.randint(0, len(self.data) - 1)  # noqa: NPY002
                img[r * H : (r + 1) * H, c * W : (c + 1) * W] = self.data[i, 0]
        plt.imshow(img, cmap="gray", interpolation="nearest")
        plt.axis("off")
        plt.show()

    @staticmethod
    def labels():
        """Class index -> name: ``{0: '0', ..., 9: '9'}``."""
        return {i: str(i) for i in range(10)}


# =============================================================================
# CIFAR-10 / CIFAR-100 (the binary versions, parsed with NumPy; no pickle)
# =============================================================================
_CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
)

_CIFAR100_FINE = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar",
    "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile",
    "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster",
    "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
    "worm"
)

_CIFAR100_COARSE = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2"
)


def _read_tar_members(path, names):
    """The bytes of the members ``names`` of the tar.gz at ``path`` (read in memory)."""
    import tarfile

    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                base = os.path.basename(member.name)
                if member.isfile() and base in names:
                    found[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ValueError(
            f"cannot read {path!r}: not a valid tar.gz archive ({e}); delete it so that it is "
            "downloaded again, or replace it with a good copy"
        ) from e
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"{path!r} lacks the expected member(s) {missing}")
    return [found[n] for n in names]


def _parse_cifar_records(raw, n_labels, source):
    record = n_labels + 3 * 32 * 32
    if len(raw) == 0 or len(raw) % record:
        raise ValueError(
            f"{source}: {len(raw)} bytes is not a whole number of {record}-byte CIFAR records"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, :n_labels].astype(np.int32)
    images = rows[:, n_labels:].reshape(-1, 3, 32, 32)
    return images, labels


_CIFAR_TRANSFORM = transforms.Compose(
    [transforms.ToFloat(), transforms.Normalize(mean=127.5, std=127.5)]
)


class CIFAR10(Dataset):
    """CIFAR-10: 50,000 training and 10,000 test colour images (3, 32, 32), 10 classes.

    Downloads ``cifar-10-binary.tar.gz`` (the binary version, parsed with NumPy; no pickle
    is ever loaded). ``data`` is uint8 (N, 3, 32, 32), ``label`` int32 (N,). The default
    transform gives float32 values in [-1, 1].
    """

    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"

    def __init__(self, train=True, transform=_CIFAR_TRANSFORM, target_transform=None):
        super().__init__(train, transform, target_transform)

    def prepare(self):
        path = get_file(self.url)
        if self.train:
            names = [f"data_batch_{i}.bin" for i in range(1, 6)]
        else:
            names = ["test_batch.bin"]
        parts = [
            _parse_cifar_records(raw, 1, f"{path!r} member {name}")
            for name, raw in zip(names, _read_tar_members(path, names))
        ]
        self.data = np.concatenate([p[0] for p in parts])
        self.label = np.concatenate([p[1][:, 0] for p in parts])
        if self.label.size and self.label.max() >= 10:
            raise ValueError(f"{path!r}: CIFAR-10 label {self.label.max()} is out of range")

    @staticmethod
    def labels():
        """Class index -> name."""
        return dict(enumerate(_CIFAR10_NAMES))


class CIFAR100(Dataset):
    """CIFAR-100: like CIFAR-10 with 100 fine classes grouped in 20 coarse ones.

    ``label_type`` is 'fine' (100 classes, the default) or 'coarse' (20 super-classes).
    Downloads ``cifar-100-binary.tar.gz`` (parsed with NumPy; no pickle).
    """

    url = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"

    def __init__(
        self, train=True, transform=_CIFAR_TRANSFORM, target_transform=None, label_type="fine"
    ):
        if label_type not in ("fine", "coarse"):
            raise ValueError(f"label_type must be 'fine' or 'coarse', got {label_type!r}")
        self.label_type = label_type
        super().__init__(train, transform, target_transform)

    def prepare(self):
        path = get_file(self.url)
        name = "train.bin" if self.train else "test.bin"
        (raw,) = _read_tar_members(path, [name])
        self.data, labels = _parse_cifar_records(raw, 2, f"{path!r} member {name}")
        column, n_classes = (1, 100) if self.label_type == "fine" else (0, 20)
        self.label = np.ascontiguousarray(labels[:, column])
        if self.label.size and self.label.max() >= n_classes:
            raise ValueError(
                f"{path!r}: CIFAR-100 {self.label_type} label {self.label.max()} is out of range"
            )

    @staticmethod
    def labels(label_type="fine"):
        """Class index -> name for the 'fine' (100) or 'coarse' (20) labels."""
        if label_type == "fine":
            return dict(enumerate(_CIFAR100_FINE))
        if label_type == "coarse":
            return dict(enumerate(_CIFAR100_COARSE))
        raise ValueError(f"label_type must be 'fine' or 'coarse', got {label_type!r}")


# =============================================================================
# Text
# =============================================================================
_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
_SHAKESPEARE_FILE = "tinyshakespeare.txt"
_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
# the same text under other names: char-rnn's and nanoGPT's data folders (input.txt), and
# what earlier versions of dezero downloaded for Shakespear (shakespear.txt)
_SHAKESPEARE_OTHER_NAMES = ("input.txt", "shakespear.txt")


def tiny_shakespeare_path(url: str = _SHAKESPEARE_URL, sha256: str = _SHAKESPEARE_SHA256) -> str:
    """The Tiny Shakespeare text file that ``Shakespear`` and ``TinyShakespeare`` read.

    One file for both, in the cache folder (``DEZERO_DATA_DIR`` or ``~/.dezero``):
    ``tinyshakespeare.txt``, checked against its known SHA-256 and downloaded there when
    missing. A copy already there as ``input.txt`` (the name in char-rnn's and nanoGPT's data
    folders) or ``shakespear.txt`` is used instead when its checksum is the known one; a file
    of another checksum under those names is left alone. Offline, the error names the file
    and the folder.
    """
    import hashlib

    folder = get_cache_dir()
    if not os.path.exists(os.path.join(folder, _SHAKESPEARE_FILE)):
        for name in _SHAKESPEARE_OTHER_NAMES:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    if hashlib.sha256(f.read()).hexdigest() == sha256:
                        return path
    return get_file(url, _SHAKESPEARE_FILE, sha256=sha256)


class Shakespear(Dataset):
    """Tiny Shakespeare (about 1.1 M characters) for character-level language models.

    The name keeps the book's spelling (``Shakespeare`` is an alias). The text is the file
    of ``tiny_shakespeare_path()`` (``tinyshakespeare.txt``, downloaded once, or a copy as
    ``input.txt``; ``TinyShakespeare`` reads the same file). Characters get ids in order of
    first appearance (``char_to_id`` / ``id_to_char``); ``data[i]`` is the id of character
    i and ``label[i]`` that of character i + 1 (int32). There is one split; ``train`` is
    ignored.
    """

    url = _SHAKESPEARE_URL
    file_name = _SHAKESPEARE_FILE
    sha256 = _SHAKESPEARE_SHA256

    def prepare(self):
        path = tiny_shakespeare_path(self.url, self.sha256)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if len(text) < 2:
            raise ValueError(f"{path!r} holds {len(text)} characters; need at least 2")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        order = np.argsort(first)  # ids in order of first appearance, like the book
        rank = np.empty(len(uniq), dtype=np.int32)
        rank[order] = np.arange(len(uniq), dtype=np.int32)
        ids = rank[inverse.reshape(-1)]
        self.char_to_id = {chr(int(uniq[i])): int(rank[i]) for i in range(len(uniq))}
        self.id_to_char = {v: k for k, v in self.char_to_id.items()}
        self.data = ids[:-1]
        self.label = ids[1:]


Shakespeare = Shakespear


class TinyShakespeare(Dataset):
    """Tiny Shakespeare as (block_size,) windows of character ids and their next characters.

    ``TinyShakespeare(train=True, block_size=64)``: the first 90% of the text is the
    training split, the last 10% the validation split (nanoGPT's ``shakespeare_char``).
    The vocabulary is the sorted set of characters of the whole text (65 for the real
    file): ``vocab`` (list of str), ``vocab_size``, ``encode(text) -> ids`` and
    ``decode(ids) -> text``; ``ids`` holds the split's character ids (int64).

    Sample ``i`` is ``(ids[i:i + block_size], ids[i + 1:i + block_size + 1])``: every
    window position predicts the next character. ``len(ds) = len(ids) - block_size``.
    ``get_batch`` gathers windows vectorised, so ``DataLoader(ds, batch_size,
    shuffle=True)`` yields random (N, block_size) windows and their shifted targets.

    The text is the one file ``Shakespear`` reads too (``tiny_shakespeare_path()``):
    ``tinyshakespeare.txt`` in the cache folder (``DEZERO_DATA_DIR`` or ``~/.dezero``), or a
    copy there as ``input.txt`` (the name in nanoGPT's and char-rnn's data folders), checked
    against ``sha256``; downloaded from ``url`` when missing.
    """

    url = _SHAKESPEARE_URL
    file_name = _SHAKESPEARE_FILE
    sha256 = _SHAKESPEARE_SHA256

    def __init__(self, train=True, block_size=64, transform=None, target_transform=None):
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or (
                block_size <= 0):
            raise ValueError(f"TinyShakespeare: block_size must be a positive int, got "
                             f"{block_size!r}")
        self.block_size = int(block_size)
        super().__init__(train, transform, target_transform)

    def prepare(self):
        path = tiny_shakespeare_path(self.url, self.sha256)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        self._codes = np.unique(codes)  # sorted code points: the vocabulary
        self.vocab = [chr(int(c)) for c in self._codes]
        self.char_to_id = {c: i for i, c in enumerate(self.vocab)}
        ids = self.encode(text)
        n = int(0.9 * len(ids))
        self.ids = ids[:n] if self.train else ids[n:]
        if len(self.ids) <= self.block_size:
            raise ValueError(
                f"TinyShakespeare: the {'train' if self.train else 'validation'} split of "
                f"{path!r} has {len(self.ids)} characters, fewer than block_size + 1 = "
                f"{self.block_size + 1}"
            )
        self._offsets = np.arange(self.block_size)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """Character ids (int64) of ``text``; a character outside the vocabulary is a
        ValueError that names it."""
        if not isinstance(text, str):
            raise TypeError(f"TinyShakespeare.encode: expected a str, got {type(text).__name__}")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codes, codes)
        bad = (ids >= len(self._codes)) | (self._codes[np.minimum(ids, len(self._codes) - 1)]
                                           != codes)
        if bad.any():
            c = chr(int(codes[np.argmax(bad)]))
            raise ValueError(f"TinyShakespeare.encode: {c!r} is not in the vocabulary")
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        """The text of the ids ``ids`` (ints: a list, an array on either device, a Variable,
        e.g. a row of generate()).

        Raises:
            TypeError: ids that are not integers (floats, bools).
            ValueError: an id outside ``[0, vocab_size)`` (named; no negative indexing).
        """
        from dezero import cuda

        ids = getattr(ids, "data", ids) if not isinstance(ids, (list, tuple)) else ids
        ids = np.asarray(cuda.as_numpy(ids))
        if ids.size == 0:
            return ""
        if ids.dtype.kind not in "iu":
            raise TypeError(f"TinyShakespeare.decode: ids must be integers, got dtype "
                            f"{ids.dtype}")
        V = len(self.vocab)
        bad = (ids < 0) | (ids >= V)
        if bad.any():
            raise ValueError(f"TinyShakespeare.decode: id {int(ids[bad][0])} is out of range for "
                             f"a vocabulary of {V} characters (ids 0 to {V - 1})")
        return "".join(self.vocab[i] for i in ids.ravel().tolist())

    def __len__(self):
        return len(self.ids) - self.block_size

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"TinyShakespeare indices must be integers, got "
                            f"{type(index).__name__} (use get_batch for arrays of indices)")
        self._check_index(index)
        x, t = self.get_batch(np.array([index]))
        return x[0], t[0]

    def get_batch(self, indices):
        indices = np.asarray(indices)
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(f"TinyShakespeare.get_batch: indices must be integers, got dtype "
                            f"{indices.dtype}")
        n = len(self)
        if indices.size and (indices.max() >= n or indices.min() < -n):
            bad = indices[(indices >= n) | (indices < -n)][0]
            self._check_index(int(bad))
        rows = (indices % n)[..., None] + self._offsets
        x = transforms.apply_batch(self.transform, self.ids[rows])
        t = transforms.apply_batch(self.target_transform, self.ids[rows + 1])
        return x, t

    def __repr__(self):
        split = "train" if self.train else "val"
        return (f"TinyShakespeare({split}, block_size={self.block_size}, {len(self)} windows, "
                f"vocab_size={self.vocab_size})")


# =============================================================================
# ImageNet (class names only)
# =============================================================================
class ImageNet(Dataset):
    """ImageNet class names for the pretrained models (the images are not provided)."""

    labels_url = (
        "https://gist.githubusercontent.com/yrevar/942d3a0ac09ec9e5eb3a/raw/"
        "238f720ff059c1f82f368259d1ca4ffa5dd8f9f5/imagenet1000_clsidx_to_labels.txt"
    )

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            "the ImageNet images are not downloadable automatically; use ImageNet.labels() "
            "for the class names"
        )

    @staticmethod
    def labels():
        """Class index -> name (1000 classes), from a text file downloaded once."""
        import ast

        path = get_file(ImageNet.labels_url, "imagenet1000_clsidx_to_labels.txt")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            labels = ast.literal_eval(text)  # a dict literal; literal_eval runs no code
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"{path!r} is not a dict of ImageNet labels ({e})") from e
        if not isinstance(labels, dict):
            raise ValueError(f"{path!r} is not a dict of ImageNet labels")
        return labels
