"""Conv2d/Deconv2d layers and the VGG16/ResNet models, pretrained loading included.

Pretrained loading is tested offline with the real code path (``utils.get_file`` into the
cache folder, then ``load_weights``): the weights file is made in the test by a freshly built
model's ``save_weights`` and either placed in the cache folder (``DEZERO_DATA_DIR``) or
served from 127.0.0.1. The models are small on a 32x32 input (their layers are created from
the first input), but the parameters are not: VGG16 is 37.7M floats there, ResNet50 25.6M,
so each model is built once per module.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import threading

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import Variable, cuda, models, test_mode, utils

X32 = np.random.default_rng(0).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)


def _infer(model, x=X32):
    with test_mode(), dezero.no_grad():
        return model(x).data


# =============================================================================
# Conv2d / Deconv2d layers
# =============================================================================
def test_conv2d_layer_creates_W_from_the_first_input():
    conv = L.Conv2d(8, kernel_size=3, stride=1, pad=1)
    assert conv.W.data is None and conv.in_channels is None
    y = conv(np.random.default_rng(1).normal(size=(2, 5, 7, 7)).astype(np.float32))
    assert y.shape == (2, 8, 7, 7) and y.dtype == np.float32
    assert conv.W.shape == (8, 5, 3, 3) and conv.in_channels == 5
    assert conv.W.dtype == np.float32 and conv.b.shape == (8,)
    np.testing.assert_allclose(conv.W.data.std(), np.sqrt(1 / 45), rtol=0.2)
    assert [n for n, _ in conv.named_params()] == ["W", "b"]
    with pytest.raises(ValueError, match=r"x has 4 input channels .* W expects 5"):
        conv(np.zeros((1, 4, 7, 7), np.float32))


def test_conv2d_layer_options():
    conv = L.Conv2d(4, (3, 2), stride=(2, 1), pad=(1, 0), nobias=True, dtype=np.float64,
                    in_channels=3)
    assert conv.W.shape == (4, 3, 3, 2) and conv.W.dtype == np.float64 and conv.b is None
    assert [n for n, _ in conv.named_params()] == ["W"]
    y = conv(np.ones((1, 3, 5, 5)))
    assert y.shape == (1, 4, 3, 4)
    np.testing.assert_allclose(y.data, F.conv2d(np.ones((1, 3, 5, 5)), conv.W.data, None,
                                                (2, 1), (1, 0)).data)
    with pytest.raises(ValueError, match="kernel_size must be a positive int"):
        L.Conv2d(4, 0)
    with pytest.raises(ValueError, match="out_channels must be a positive int"):
        L.Conv2d(0, 3)
    with pytest.raises(ValueError, match=r"expected a 4-D input \(N, C, H, W\)"):
        L.Conv2d(2, 3)(np.zeros((3, 5, 5), np.float32))


def test_deconv2d_layer():
    up = L.Deconv2d(6, kernel_size=4, stride=2, pad=1)
    x = Variable(np.random.default_rng(2).normal(size=(2, 3, 5, 5)).astype(np.float32))
    y = up(x)
    assert y.shape == (2, 6, 10, 10) and up.W.shape == (3, 6, 4, 4) and up.in_channels == 3
    assert up(x, (11, 11)).shape == (2, 6, 11, 11)  # the output size, when ambiguous
    F.sum(y * y).backward()
    assert up.W.grad.shape == up.W.shape and up.b.grad.shape == (6,)
    assert x.grad.dtype == np.float32


def test_conv_layers_save_and_load(tmp_path):
    net = models.Sequential(L.Conv2d(4, 3, pad=1), F.relu, L.BatchNorm(), L.Deconv2d(2, 2, 2))
    x = np.random.default_rng(3).normal(size=(2, 3, 6, 6)).astype(np.float32)
    net(x)
    net.save_weights(tmp_path / "net.npz")
    net2 = models.Sequential(L.Conv2d(4, 3, pad=1), F.relu, L.BatchNorm(), L.Deconv2d(2, 2, 2))
    net2.load_weights(tmp_path / "net.npz")
    with test_mode():
        np.testing.assert_array_equal(net(x).data, net2(x).data)


@pytest.mark.gpu
def test_conv_layer_on_the_gpu(xp):
    conv = L.Conv2d(3, 3, pad=1)
    x = xp.asarray(np.random.default_rng(4).normal(size=(2, 2, 5, 5)).astype(np.float32))
    y = conv(x)  # W is created on the input's device
    assert cuda.get_array_module(conv.W.data) is xp
    F.sum(y).backward()
    assert cuda.get_array_module(conv.W.grad.data) is xp


# =============================================================================
# VGG16
# =============================================================================
@pytest.fixture(scope="module")
def vgg16_run(tmp_path_factory):
    """A VGG16 built on a 32x32 input, its output, and its weights saved to a file."""
    model = models.VGG16()
    y = _infer(model)
    path = tmp_path_factory.mktemp("vgg16") / "saved.npz"
    model.save_weights(path)
    n = sum(p.size for p in model.params())
    del model
    return y, path, n


def test_vgg16_architecture_and_forward(vgg16_run):
    y, _, n_params = vgg16_run
    assert y.shape == (1, 1000) and y.dtype == np.float32 and np.all(np.isfinite(y))
    model = models.VGG16()
    names = [name for name, _ in model.named_params()]
    assert names[:4] == ["conv1_1/W", "conv1_1/b", "conv1_2/W", "conv1_2/b"]
    assert names[-6:] == ["fc6/W", "fc6/b", "fc7/W", "fc7/b", "fc8/W", "fc8/b"]
    assert len(names) == 2 * 16
    # 13 convolutions (14.7M) + fc6 from 512 features at 32x32 + fc7 + fc8
    convs = sum(c * o * 9 + o for c, o in [(3, 64), (64, 64), (64, 128), (128, 128),
                                           (128, 256), (256, 256), (256, 256), (256, 512),
                                           (512, 512), (512, 512), (512, 512), (512, 512),
                                           (512, 512)])
    assert n_params == convs + 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000


def test_vgg16_pretrained_loads_from_the_cache_folder(vgg16_run, tmp_path, monkeypatch):
    y, path, _ = vgg16_run
    monkeypatch.setenv("DEZERO_DATA_DIR", str(tmp_path))
    shutil.copy(path, tmp_path / "vgg16.npz")  # the name the weights URL ends with
    assert models.VGG16.WEIGHTS_PATH.endswith("/vgg16.npz")
    model = models.VGG16(pretrained=True)
    assert model.conv1_1.W.shape == (64, 3, 3, 3) and model.fc6.W.shape == (512, 4096)
    np.testing.assert_array_equal(_infer(model), y)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pretrained_without_network_says_which_file_to_place_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DEZERO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(models.VGG16, "WEIGHTS_PATH",
                        f"http://127.0.0.1:{_closed_port()}/vgg16.npz")
    with pytest.raises(utils.DownloadError) as info:
        models.VGG16(pretrained=True)
    message = str(info.value)
    assert "vgg16.npz" in message and str(tmp_path) in message


def test_vgg16_preprocess():
    from PIL import Image

    image = Image.new("RGB", (50, 40), color=(10, 20, 30))
    x = models.VGG16.preprocess(image)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    # BGR order, ImageNet means subtracted
    np.testing.assert_allclose(x[:, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68],
                               rtol=1e-5)
    assert models.VGG16.preprocess(image.convert("L"), size=None).shape == (3, 40, 50)
    assert models.VGG16.preprocess(image, dtype=np.float64).dtype == np.float64


# =============================================================================
# ResNet
# =============================================================================
@pytest.fixture(scope="module")
def resnet50_run(tmp_path_factory):
    model = models.ResNet50()
    y = _infer(model)
    folder = tmp_path_factory.mktemp("resnet50_server")
    model.save_weights(folder / "resnet50.npz")
    buffers = [name for name, _ in model.named_buffers()]
    n = sum(p.size for p in model.params())
    del model
    return y, folder, buffers, n


def test_resnet50_architecture_and_forward(resnet50_run):
    y, _, buffers, n_params = resnet50_run
    assert y.shape == (1, 1000) and np.all(np.isfinite(y))
    assert 25_500_000 < n_params < 25_600_000  # ResNet-50: 25.56M parameters
    assert buffers[:2] == ["bn1/avg_mean", "bn1/avg_var"]
    assert "res2/a/bn4/avg_var" in buffers and "res5/b2/bn3/avg_mean" in buffers
    assert len(buffers) == 2 * (1 + 4 * 4 + 3 * (3 + 4 + 6 + 3 - 4))


def test_resnet_depths_and_bad_depth():
    for cls, blocks in [(models.ResNet50, (3, 4, 6, 3)), (models.ResNet101, (3, 4, 23, 3)),
                        (models.ResNet152, (3, 8, 36, 3))]:
        model = cls()  # lazy: nothing allocated
        got = tuple(len(getattr(model, f"res{i}")._forward) for i in range(2, 6))
        assert got == blocks
    assert models.ResNet().n_layers == 152
    with pytest.raises(ValueError, match=r"n_layers must be one of \[50, 101, 152\], got 34"):
        models.ResNet(34)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(resnet50_run):
    folder = resnet50_run[1]
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_resnet50_pretrained_downloads_from_a_server(resnet50_run, local_server, tmp_path,
                                                     monkeypatch):
    y = resnet50_run[0]
    monkeypatch.setenv("DEZERO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(models.ResNet, "WEIGHTS_PATH", local_server + "/resnet{}.npz")
    model = models.ResNet50(pretrained=True)
    assert os.path.exists(tmp_path / "resnet50.npz")  # cached for the next time
    np.testing.assert_array_equal(_infer(model), y)
    assert model.bn1.avg_var.shape == (64,)  # running statistics came with the weights


@pytest.mark.slow  # about 2 s: backward through all 25.6M parameters
def test_resnet_trains_a_step_in_training_mode():
    model = models.ResNet50()
    x = np.random.default_rng(5).normal(size=(2, 3, 32, 32)).astype(np.float32)
    loss = F.softmax_cross_entropy(model(x), np.array([1, 7]))
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.params())
    assert not np.allclose(model.res3.a.bn2.avg_mean, 0.0)  # batch statistics were used
