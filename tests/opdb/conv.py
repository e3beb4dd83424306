"""Op table entries: dezero.functions.conv, with direct-loop NumPy references.

The references loop over output (or input) positions one by one: slow, obviously right,
and independent of the strided-view/GEMM implementation they check. tests/test_functions_conv.py
imports them for its shape grid.
"""

import numpy as np

import dezero.functions as F
from dezero.functions import _conv_kernels
from dezero.utils import get_conv_outsize, get_deconv_outsize, pair
from tests.opdb.base import OpInfo, Sample, u

# The kernels' implementations, the reference first (see _conv_kernels.PATHS).
PATHS = {name: (lambda name=name: _conv_kernels.use_path(name))
         for name in ("reference", *(p for p in _conv_kernels.PATHS if p != "reference"))}


# =============================================================================
# Direct-loop references (float64)
# =============================================================================
def _pad(x, ph, pw, fill=0.0):
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)


def ref_conv2d(x, W, b=None, stride=1, pad=0):
    (sy, sx), (ph, pw) = pair(stride), pair(pad)
    N, _, H, Wd = x.shape
    OC, _, KH, KW = W.shape
    OH, OW = get_conv_outsize(H, KH, sy, ph), get_conv_outsize(Wd, KW, sx, pw)
    xpad = _pad(x, ph, pw)
    y = np.zeros((N, OC, OH, OW))
    for n in range(N):
        for o in range(OC):
            for i in range(OH):
                for j in range(OW):
                    patch = xpad[n, :, i * sy:i * sy + KH, j * sx:j * sx + KW]
                    y[n, o, i, j] = np.sum(patch * W[o]) + (0.0 if b is None else b[o])
    return y


def ref_deconv2d(x, W, b=None, stride=1, pad=0, outsize=None):
    (sy, sx), (ph, pw) = pair(stride), pair(pad)
    N, C, H, Wd = x.shape
    _, OC, KH, KW = W.shape
    if outsize is None:
        outsize = (get_deconv_outsize(H, KH, sy, ph), get_deconv_outsize(Wd, KW, sx, pw))
    OH, OW = outsize
    ypad = np.zeros((N, OC, OH + 2 * ph, OW + 2 * pw))
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(Wd):
                    ypad[n, :, i * sy:i * sy + KH, j * sx:j * sx + KW] += x[n, c, i, j] * W[c]
    y = ypad[:, :, ph:ph + OH, pw:pw + OW]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def _ref_windows(x, kernel_size, stride, pad, fill=0.0):
    """(N, C, KH, KW, OH, OW) filled one window at a time."""
    (KH, KW), (sy, sx), (ph, pw) = pair(kernel_size), pair(stride), pair(pad)
    N, C, H, W = x.shape
    OH, OW = get_conv_outsize(H, KH, sy, ph), get_conv_outsize(W, KW, sx, pw)
    xpad = _pad(x, ph, pw, fill)
    col = np.empty((N, C, KH, KW, OH, OW))
    for i in range(OH):
        for j in range(OW):
            col[:, :, :, :, i, j] = xpad[:, :, i * sy:i * sy + KH, j * sx:j * sx + KW]
    return col


def ref_im2col(x, kernel_size, stride=1, pad=0, to_matrix=True):
    col = _ref_windows(x, kernel_size, stride, pad)
    if to_matrix:
        N, OH, OW = col.shape[0], col.shape[4], col.shape[5]
        col = col.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, -1)
    return col


def ref_col2im(col, input_shape, kernel_size, stride=1, pad=0, to_matrix=True):
    (KH, KW), (sy, sx), (ph, pw) = pair(kernel_size), pair(stride), pair(pad)
    N, C, H, W = input_shape
    OH, OW = get_conv_outsize(H, KH, sy, ph), get_conv_outsize(W, KW, sx, pw)
    if to_matrix:
        col = col.reshape(N, OH, OW, C, KH, KW).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * ph + sy, W + 2 * pw + sx))
    for i in range(OH):
        for j in range(OW):
            img[:, :, i * sy:i * sy + KH, j * sx:j * sx + KW] += col[:, :, :, :, i, j]
    return img[:, :, ph:ph + H, pw:pw + W]


def ref_pooling(x, kernel_size, stride=1, pad=0):
    return _ref_windows(x, kernel_size, stride, pad, fill=-np.inf).max(axis=(2, 3))


def ref_average_pooling(x, kernel_size, stride=1, pad=0):
    return _ref_windows(x, kernel_size, stride, pad).mean(axis=(2, 3))


# =============================================================================
# Samples (small: the double-backward check differentiates numerically per element)
# =============================================================================
def _cn(a):
    """``a`` (N, C, H, W) stored channel-major, as the channel-major path's outputs are."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def _conv_samples(rng):
    return [
        Sample((_cn(u(rng, 3, 2, 5, 4)), u(rng, 2, 2, 3, 3), u(rng, 2)), {"pad": 1},
               "channel-major-input"),
        Sample((u(rng, 2, 2, 5, 5), u(rng, 3, 2, 3, 3), u(rng, 3)), {"pad": 1}, "3x3-s1-p1"),
        Sample((u(rng, 1, 3, 6, 5), u(rng, 2, 3, 2, 3)), {"stride": 2}, "nobias-2x3-s2"),
        Sample((u(rng, 2, 1, 5, 6), u(rng, 2, 1, 3, 2), u(rng, 2)),
               {"stride": (2, 1), "pad": (1, 0)}, "nonsquare-stride-pad"),
        Sample((u(rng, 2, 3, 3, 3), u(rng, 4, 3, 1, 1), u(rng, 4)), {}, "1x1"),
        Sample((u(rng, 1, 2, 6, 6), u(rng, 2, 2, 3, 3)), {"stride": 2},
               "unused-last-row"),
    ]


def _deconv_samples(rng):
    return [
        Sample((u(rng, 2, 3, 3, 3), u(rng, 3, 2, 3, 3), u(rng, 2)),
               {"stride": 2, "pad": 1}, "3x3-s2-p1"),
        Sample((u(rng, 1, 2, 3, 4), u(rng, 2, 3, 2, 3)), {"stride": (1, 2), "pad": (0, 1)},
               "nonsquare-nobias"),
        Sample((u(rng, 1, 2, 3, 3), u(rng, 2, 2, 3, 3), u(rng, 2)),
               {"stride": 2, "pad": 1, "outsize": (6, 6)}, "outsize"),
    ]


def _pool_samples(rng):
    return [
        Sample((u(rng, 2, 2, 4, 4), 2), {"stride": 2}, "2x2-s2"),
        Sample((_cn(u(rng, 3, 2, 4, 6)), 2), {"stride": 2}, "2x2-s2-channel-major-input"),
        Sample((u(rng, 1, 2, 5, 5), 3), {"stride": 2, "pad": 1}, "3x3-s2-p1-overlap"),
        Sample((u(rng, 1, 1, 5, 6), (2, 3)), {"stride": (1, 2)}, "nonsquare"),
    ]


def _im2col_samples(rng):
    return [
        Sample((u(rng, 2, 2, 4, 4), 3), {"stride": 1, "pad": 1}, "matrix"),
        Sample((u(rng, 1, 2, 4, 5), (2, 3)), {"stride": (2, 1), "pad": (0, 1),
                                               "to_matrix": False}, "6d-nonsquare"),
    ]


def _col2im_samples(rng):
    # (N, C, H, W) = (2, 2, 4, 4), k=3, s=1, p=1 -> OH = OW = 4
    # (1, 2, 4, 5), k=(2, 3), s=(2, 1), p=(0, 1) -> OH = 2, OW = 5
    return [
        Sample((u(rng, 32, 18), (2, 2, 4, 4), 3), {"stride": 1, "pad": 1}, "matrix"),
        Sample((u(rng, 1, 2, 2, 3, 2, 5), (1, 2, 4, 5), (2, 3)),
               {"stride": (2, 1), "pad": (0, 1), "to_matrix": False}, "6d-nonsquare"),
    ]


OPS = [
    OpInfo("conv2d", F.conv2d, ref_conv2d, _conv_samples, paths=PATHS),
    OpInfo("conv2d_simple", F.conv2d_simple, ref_conv2d, _conv_samples),
    OpInfo("deconv2d", F.deconv2d, ref_deconv2d, _deconv_samples, paths=PATHS),
    OpInfo("pooling", F.pooling, ref_pooling, _pool_samples, paths=PATHS),
    OpInfo("pooling_simple", F.pooling_simple, ref_pooling, _pool_samples),
    OpInfo("average_pooling", F.average_pooling, ref_average_pooling, _pool_samples),
    OpInfo("im2col", F.im2col, ref_im2col, _im2col_samples),
    OpInfo("col2im", F.col2im, ref_col2im, _col2im_samples),
]
