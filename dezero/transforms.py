"""Data transforms: small callables applied to each sample (or to a whole batch at once).

A transform is any callable ``f(sample) -> sample``. The classes here also know how to
process a batch of samples stacked on a new first axis in one vectorised call
(``apply_batch``); ``batch_safe`` says whether they can. ``Dataset.get_batch`` and the
DataLoader use that to transform a batch without a per-sample Python loop, and fall back to
the loop for any other callable.

The Pillow-based transforms (Convert, Resize, CenterCrop, ToArray, ToPIL) import Pillow only
when they are used.
"""

from __future__ import annotations

import numpy as np

from dezero.utils import pair

__all__ = [
    "AsType",
    "CenterCrop",
    "Compose",
    "Convert",
    "Flatten",
    "Normalize",
    "RandomHorizontalFlip",
    "Resize",
    "ToArray",
    "ToFloat",
    "ToInt",
    "ToPIL",
    "apply_batch",
]


def apply_batch(transform, xs):
    """Apply ``transform`` to every sample of the stacked batch ``xs``.

    Vectorised when the transform is ``batch_safe``; otherwise one call per sample, with the
    results stacked back into one array. ``None`` means no transform.

    >>> apply_batch(Flatten(), np.zeros((4, 2, 3))).shape
    (4, 6)
    >>> apply_batch(lambda x: x.sum(), np.ones((3, 2)))
    array([2., 2., 2.])
    """
    if transform is None:
        return xs
    if getattr(transform, "batch_safe", False):
        return transform.apply_batch(xs)
    return np.stack([np.asarray(transform(x)) for x in xs])


class Transform:
    """Base of the transforms here: ``__call__`` on one sample, ``apply_batch`` on a batch."""

    batch_safe = False

    def __call__(self, x):
        raise NotImplementedError

    def apply_batch(self, xs):
        return np.stack([np.asarray(self(x)) for x in xs])

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply several transforms in order; an empty list is the identity.

    >>> f = Compose([Flatten(), ToFloat(), Normalize(0.0, 255.0)])
    >>> f(np.full((1, 2, 2), 255, dtype=np.uint8))
    array([1., 1., 1., 1.], dtype=float32)
    """

    def __init__(self, transforms=None):
        self.transforms = list(transforms) if transforms is not None else []

    @property
    def batch_safe(self):
        return all(getattr(t, "batch_safe", False) for t in self.transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def apply_batch(self, xs):
        if not self.batch_safe:
            return super().apply_batch(xs)
        for t in self.transforms:
            xs = t.apply_batch(xs)
        return xs


# =============================================================================
# ndarray transforms
# =============================================================================
class Normalize(Transform):
    """``(x - mean) / std``, per channel when mean/std are sequences.

    A sequence of length C is applied along the first axis of a sample (channels of a
    (C, H, W) image), i.e. along axis 1 of a batch. Floating inputs keep their dtype
    (mean and std are cast to it); integer inputs become float32.

    >>> Normalize(mean=[1.0, 2.0], std=2.0)(np.ones((2, 1), dtype=np.float32))
    array([[ 0. ],
           [-0.5]], dtype=float32)
    """

    batch_safe = True

    def __init__(self, mean=0, std=1):
        self.mean = mean
        self.std = std

    def _param(self, value, dtype, ndim, channel_axis):
        value = np.asarray(value, dtype=dtype)
        if value.size == 1:
            return value.reshape(())
        shape = [1] * ndim
        shape[channel_axis] = value.size
        return value.reshape(shape)

    def _apply(self, x, channel_axis):
        x = np.asarray(x)
        owned = False
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
            owned = True
        mean = self._param(self.mean, x.dtype, x.ndim, channel_axis)
        std = self._param(self.std, x.dtype, x.ndim, channel_axis)
        if np.any(mean != 0):
            x = x - mean
            owned = True
        if np.any(std != 1):
            if owned:
                x /= std
            else:
                x = x / std
        return x

    def __call__(self, x):
        return self._apply(x, 0)

    def apply_batch(self, xs):
        return self._apply(xs, 1)


class Flatten(Transform):
    """Flatten a sample to 1-D (a batch to (N, -1)).

    >>> Flatten()(np.zeros((1, 28, 28))).shape
    (784,)
    """

    batch_safe = True

    def __call__(self, x):
        return np.asarray(x).reshape(-1)

    def apply_batch(self, xs):
        return xs.reshape(len(xs), -1)


class AsType(Transform):
    """Cast to ``dtype`` (float32 by default).

    >>> AsType(np.float32)(np.arange(2)).dtype
    dtype('float32')
    """

    batch_safe = True

    def __init__(self, dtype=np.float32):
        self.dtype = dtype

    def __call__(self, x):
        return np.asarray(x).astype(self.dtype, copy=False)

    def apply_batch(self, xs):
        return xs.astype(self.dtype, copy=False)


ToFloat = AsType


class ToInt(AsType):
    """Cast to an integer dtype (int64 by default, the book's ``np.int``).

    >>> ToInt()(np.array([1.7])).dtype
    dtype('int64')
    """

    def __init__(self, dtype=np.int64):
        self.dtype = dtype


class RandomHorizontalFlip(Transform):
    """Flip an image left-right with probability ``p`` (an ndarray (..., W) or a PIL image).

    Randomness comes from NumPy's global generator, so ``np.random.seed`` makes it
    reproducible.
    """

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x):
        if np.random.rand() >= self.p:  # noqa: NPY002  (seeded globally, like the book)
            return x
        if isinstance(x, np.ndarray):
            return x[..., ::-1].copy()
        from PIL import Image

        return x.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


# =============================================================================
# PIL transforms (Pillow imported lazily)
# =============================================================================
def _resample(name):
    from PIL import Image

    if not isinstance(name, str):
        return name
    return getattr(Image.Resampling, name.upper())


class Convert(Transform):
    """Convert a PIL image to ``mode`` ('RGB', 'L', ...); 'BGR' swaps the RGB channels."""

    def __init__(self, mode="RGB"):
        self.mode = mode

    def __call__(self, img):
        if self.mode == "BGR":
            from PIL import Image

            r, g, b = img.convert("RGB").split()
            return Image.merge("RGB", (b, g, r))
        return img.convert(self.mode)


class Resize(Transform):
    """Resize a PIL image to ``size`` (an int, or (width, height) as PIL takes it)."""

    def __init__(self, size, mode="bilinear"):
        self.size = pair(size)
        self.mode = mode

    def __call__(self, img):
        return img.resize(self.size, _resample(self.mode))


class CenterCrop(Transform):
    """Crop the centre of a PIL image to ``size`` (an int, or (width, height))."""

    def __init__(self, size):
        self.size = pair(size)

    def __call__(self, img):
        W, H = img.size
        out_w, out_h = self.size
        if out_w > W or out_h > H:
            raise ValueError(f"CenterCrop: crop size {self.size} is larger than the image {W, H}")
        left = (W - out_w) // 2
        top = (H - out_h) // 2
        return img.crop((left, top, left + out_w, top + out_h))


class ToArray(Transform):
    """A PIL image to an ndarray (C, H, W) of ``dtype`` (values unscaled); arrays pass as is."""

    def __init__(self, dtype=np.float32):
        self.dtype = dtype

    def __call__(self, img):
        if isinstance(img, np.ndarray):
            return img
        x = np.asarray(img)
        x = x[np.newaxis] if x.ndim == 2 else x.transpose(2, 0, 1)
        return x.astype(self.dtype)


class ToPIL(Transform):
    """An ndarray (C, H, W) (C = 1 or 3, values 0..255) to a PIL image."""

    def __call__(self, x):
        from PIL import Image

        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"ToPIL expects an array shaped (C, H, W), got shape {x.shape}")
        x = x.transpose(1, 2, 0)
        if x.shape[2] == 1:
            x = x[:, :, 0]
        return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
