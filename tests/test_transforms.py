"""dezero.transforms: per-sample and batched behaviour, dtypes, the Pillow transforms."""

import subprocess
import sys

import numpy as np
import pytest

from dezero import transforms as T


def test_compose_applies_in_order_and_empty_is_identity():
    f = T.Compose([lambda x: x + 1, lambda x: x * 10])
    assert f(1) == 20
    x = np.arange(3)
    assert T.Compose()(x) is x
    assert T.Compose([]).batch_safe


def test_mnist_style_pipeline_single_and_batch():
    f = T.Compose([T.Flatten(), T.ToFloat(), T.Normalize(0.0, 255.0)])
    imgs = np.random.default_rng(0).integers(0, 256, size=(5, 1, 28, 28), dtype=np.uint8)
    one = f(imgs[0])
    assert one.shape == (784,) and one.dtype == np.float32
    np.testing.assert_allclose(one, imgs[0].reshape(-1) / 255.0, rtol=1e-6)
    batch = T.apply_batch(f, imgs)
    assert batch.shape == (5, 784) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, np.stack([f(x) for x in imgs]))


def test_normalize_per_channel_single_and_batch():
    mean, std = [1.0, 2.0, 3.0], [2.0, 4.0, 8.0]
    f = T.Normalize(mean, std)
    x = np.random.default_rng(0).random((4, 3, 2, 2), dtype=np.float32)
    expected = (x - np.array(mean).reshape(1, 3, 1, 1)) / np.array(std).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(f(x[0]), expected[0], rtol=1e-6)
    np.testing.assert_allclose(T.apply_batch(f, x), expected, rtol=1e-6)
    assert f(x[0]).dtype == np.float32 and T.apply_batch(f, x).dtype == np.float32


def test_normalize_keeps_float_dtype_and_does_not_mutate():
    x64 = np.ones(3)
    assert T.Normalize(0.5, 2.0)(x64).dtype == np.float64
    x32 = np.ones(3, dtype=np.float32)
    y = T.Normalize(np.float64(0.5), np.float64(2.0))(x32)
    assert y.dtype == np.float32  # float64 parameters do not promote float32 data
    np.testing.assert_array_equal(x32, np.ones(3, dtype=np.float32))
    np.testing.assert_allclose(y, 0.25)
    assert T.Normalize(0, 1)(np.arange(3, dtype=np.uint8)).dtype == np.float32


def test_flatten_astype_toint():
    assert T.Flatten()(np.zeros((2, 3, 4))).shape == (24,)
    assert T.apply_batch(T.Flatten(), np.zeros((5, 2, 3))).shape == (5, 6)
    assert T.AsType(np.float16)(np.arange(3)).dtype == np.float16
    assert T.ToFloat is T.AsType
    assert T.ToFloat()(np.arange(3)).dtype == np.float32
    y = T.ToInt()(np.array([1.9, 2.1]))
    assert y.dtype == np.int64 and y.tolist() == [1, 2]
    assert T.ToInt(np.int32)(np.array([1.0])).dtype == np.int32


def test_apply_batch_falls_back_for_plain_callables():
    f = T.Compose([T.ToFloat(), lambda x: x.sum(keepdims=True)])
    assert not f.batch_safe
    out = T.apply_batch(f, np.ones((4, 3)))
    np.testing.assert_array_equal(out, np.full((4, 1), 3.0, dtype=np.float32))
    assert T.apply_batch(None, np.ones(2)).tolist() == [1.0, 1.0]


def test_random_horizontal_flip():
    x = np.arange(6).reshape(1, 2, 3)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(x) is x


def test_repr():
    assert repr(T.Normalize(0.5, 2)) == "Normalize(mean=0.5, std=2)"


# -----------------------------------------------------------------------------
# Pillow transforms
# -----------------------------------------------------------------------------
@pytest.fixture
def image():
    Image = pytest.importorskip("PIL.Image")
    rgb = np.zeros((6, 8, 3), dtype=np.uint8)  # H=6, W=8
    rgb[..., 0] = 200
    rgb[..., 2] = 10
    rgb[2:4, 3:5, 1] = 255
    return Image.fromarray(rgb)


def test_pil_convert_resize_crop(image):
    assert T.Convert("L")(image).mode == "L"
    bgr = np.asarray(T.Convert("BGR")(image))
    assert bgr[0, 0].tolist() == [10, 0, 200]
    assert T.Resize(4)(image).size == (4, 4)
    assert T.Resize((10, 5))(image).size == (10, 5)
    crop = T.CenterCrop(2)(image)
    assert crop.size == (2, 2)
    assert np.asarray(crop)[..., 1].tolist() == [[255, 255], [255, 255]]  # the centre patch
    with pytest.raises(ValueError, match=r"crop size \(10, 10\) is larger than the image"):
        T.CenterCrop(10)(image)


def test_pil_to_array_and_back(image):
    x = T.ToArray()(image)
    assert x.shape == (3, 6, 8) and x.dtype == np.float32
    assert x[0, 0, 0] == 200.0
    assert T.ToArray()(x) is x
    back = T.ToPIL()(x)
    assert back.size == (8, 6)
    np.testing.assert_array_equal(np.asarray(back), np.asarray(image))
    gray = T.ToArray(np.uint8)(T.Convert("L")(image))
    assert gray.shape == (1, 6, 8)
    assert T.ToPIL()(gray).mode == "L"
    with pytest.raises(ValueError, match=r"\(C, H, W\), got shape \(6, 8\)"):
        T.ToPIL()(np.zeros((6, 8)))


def test_pil_pipeline_is_not_batch_safe(image):
    f = T.Compose([T.Resize(4), T.ToArray()])
    assert not f.batch_safe
    assert f(image).shape == (3, 4, 4)


def test_import_does_not_load_pillow_or_matplotlib():
    code = (
        "import sys, dezero, dezero.transforms, dezero.datasets, dezero.dataloaders;"
        "print([m for m in ('PIL', 'matplotlib', 'tqdm') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
