"""Array-level kernels of the convolution family (NumPy or CuPy arrays in, arrays out),
the per-thread workspace and the worker threads; the Functions are in ``conv.py``.

How the work is laid out (the reason dezero's convolutions are fast on the CPU):

* im2col is a strided *view* of the (padded) input, shaped (N, C, KH, KW, OH, OW); one copy
  materialises it as the GEMM operand (C*KH*KW, N*OH*OW). No Python loop runs over output
  positions anywhere.
* conv2d is ONE GEMM ``W (OC, C*KH*KW) @ col (C*KH*KW, N*OH*OW)``, whose (OC, N, OH, OW)
  result is handed out as it is: an NCHW array stored channel-major (the default
  "channel_major" path on NumPy; the bias rides in the GEMM as one more column of W against
  a row of ones under col, so nothing runs over the output after the GEMM). The
  "reference" path (CuPy's, and the one the op table checks the other against) hands out
  a contiguous NCHW array through one transposing copy that adds the bias. The weight
  gradient is one GEMM over the batch with the forward's col (kept when it is small, see
  ``conv.KEEP_COL_BYTES``); the input gradient is deconv2d: one GEMM, then col2im.
* col2im accumulates over the KH*KW kernel offsets: one strided add over whole images each.
  At stride 1 on the CPU, the transposed convolution (conv2d's input gradient) instead
  runs its GEMM on images padded out to the output's padded size ("wide" layout), so
  that col2im becomes one long contiguous add per (channel, offset), in batch slices
  that stay in the cache; a little more GEMM work for far fewer NumPy rows.
* A weight gradient with a small result and a long contraction (a first layer) runs as
  slices of the contraction, which OpenBLAS multiplies with its small-matrix kernels.
* Max pooling keeps, per output, the uint8 offset of the winner in its window, tracked with
  whole-array ufuncs (no argmax); its backward is a scatter whose backward is a gather.
  Tiled 2x2 windows (the usual CNN pool) take two pairwise stages instead, with 0/1
  masks in the data's dtype, so that the scatter is two multiplies and two subtractions.
* Large temporaries come from a small per-thread workspace (no fresh pages every step);
  the copies and ufuncs around the GEMMs are split over the batch on the package's worker
  threads (:mod:`dezero.parallel`) where there are cores to spare (NumPy releases the GIL
  inside its loops).
* Every function here is linear or piecewise linear in each argument and its backward is
  written with functions of this module, so derivatives of any order are available, the
  weight gradient of conv2d included (Conv2dGradW's own backward is conv2d/deconv2d).
"""

from __future__ import annotations

import threading

import numpy as np

from dezero import cuda, parallel
from dezero.array_utils import get_conv_outsize
from dezero.functions import _conv_numba

# =============================================================================
# Paths: the reference layout and the channel-major one
# =============================================================================
# "channel_major" (the default on NumPy): conv2d's GEMM result (OC, N, OH, OW) is handed
# out as it is, as an NCHW array stored channel-major (a transposed view), with the bias
# added inside the GEMM (a row of ones under im2col's columns, a column of biases beside
# W), so no pass over the output follows the GEMM; deconv2d's wide path and the pooling
# backward write their results in their input's layout. Elementwise ops keep the layout,
# and the backward's gy then needs no transposing copy to become the GEMM operand.
# "reference": contiguous NCHW outputs (one transposing copy that adds the bias), as
# before. Both give the same numbers (the same GEMMs); the op table checks both
# (tests/test_ops.py). CuPy arrays always take the reference path.
# "numba" (the default where numba is installed, extra ``fast``): channel-major, and the
# tiled 2x2 max pooling and its backward as compiled one-pass kernels (_conv_numba).
PATHS = (("numba",) if _conv_numba.AVAILABLE else ()) + ("channel_major", "reference")
_path = threading.local()


def _current_path():
    return getattr(_path, "name", PATHS[0])


class use_path:
    """Run the convolution kernels of this thread through the path ``name`` (see PATHS)
    inside the ``with`` block: forward, backward and any higher-order backward."""

    def __init__(self, name):
        if name not in PATHS:
            raise ValueError(f"use_path: unknown path {name!r} (have {PATHS})")
        self.name = name

    def __enter__(self):
        self.old = _current_path()
        _path.name = self.name

    def __exit__(self, *exc):
        _path.name = self.old


def _channel_major(xp):
    return xp is np and _current_path() != "reference"


def _compiled(*arrays):
    """Whether the compiled kernels take these arrays (the numba path, NumPy floats)."""
    return _current_path() == "numba" and _conv_numba.supports(*arrays)


def _out_hw(in_hw, ksize, stride, pad):
    return (get_conv_outsize(in_hw[0], ksize[0], stride[0], pad[0]),
            get_conv_outsize(in_hw[1], ksize[1], stride[1], pad[1]))


# =============================================================================
# Worker threads for the work around the GEMMs
# =============================================================================
def _parallel(xp, fn, n, work):
    """Call ``fn(lo, hi)`` on chunks of ``range(n)`` (the batch axis) on the package's worker
    threads (:mod:`dezero.parallel`); one call for CuPy arrays (the device does the work).
    The chunks must write disjoint slices."""
    if xp is not np:
        fn(0, n)
        return
    parallel.parallel_for(fn, n, work)


# =============================================================================
# Workspace: reused buffers for the large temporaries
# =============================================================================
class _Workspace(threading.local):
    """Per-thread free lists of large scratch arrays, keyed by (shape, dtype); NumPy only.

    The big temporaries of a convolution (im2col columns, their gradient, transposed
    operands, padded images) have the same shapes at every step. Allocated afresh, each
    one is mapped and faulted in page by page by the C library, which cost about a fifth
    of a CNN training step on the CPU. Only arrays that nothing else can reference are
    given back. CuPy keeps its own memory pool, so there ``take`` just allocates.
    """

    min_bytes = 1 << 20  # smaller arrays are cheap for malloc: not kept
    max_bytes = 64 << 20  # at most this much is kept (least recently returned go first)

    def __init__(self):
        self.free: dict = {}
        self.nbytes = 0

    def take(self, xp, shape, dtype):
        if xp is np:
            key = (tuple(shape), np.dtype(dtype))
            arrays = self.free.get(key)
            if arrays:
                a = arrays.pop()
                if not arrays:
                    del self.free[key]
                self.nbytes -= a.nbytes
                return a
        return xp.empty(shape, dtype=dtype)

    def give(self, a):
        if (type(a) is not np.ndarray or a.base is not None
                or not self.min_bytes <= a.nbytes <= self.max_bytes):
            return
        key = (a.shape, a.dtype)
        arrays = self.free.pop(key, [])
        arrays.append(a)
        self.free[key] = arrays  # (re)inserted last: dict order is the LRU order
        self.nbytes += a.nbytes
        while self.nbytes > self.max_bytes:
            old_key = next(iter(self.free))
            old = self.free[old_key]
            self.nbytes -= old.pop(0).nbytes
            if not old:
                del self.free[old_key]

    def clear(self):
        self.free.clear()
        self.nbytes = 0


# The workspace covers the convolutions' own scratch arrays; the activations and gradients
# that a step hands between ops reuse freed heap blocks through :mod:`dezero.allocator`.
_ws = _Workspace()


# =============================================================================
# Array-level kernels (NumPy or CuPy)
# =============================================================================
def _as_strided(xp, a, shape, strides):
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape, strides)


def _cn_order(a):
    """True when ``a`` (N, C, ...) is stored channel-major, i.e. as (C, N, ...)."""
    return a.shape[0] > 1 and a.shape[1] > 1 and a.strides[1] > a.strides[0]


def _new_image(xp, shape, dtype, cn, fill=0, scratch=False):
    """A 4-D (N, C, H, W) array filled with ``fill`` (None: uninitialised), stored as
    (C, N, H, W) when ``cn``; from the workspace when ``scratch`` (give it back after)."""
    N, C, H, W = shape
    alloc_shape = (C, N, H, W) if cn else shape
    if scratch:
        a = _ws.take(xp, alloc_shape, dtype)
        if fill is not None:
            a.fill(fill)
    elif fill is None:
        a = xp.empty(alloc_shape, dtype=dtype)
    elif fill == 0:
        a = xp.zeros(alloc_shape, dtype=dtype)
    else:
        a = xp.full(alloc_shape, fill, dtype=dtype)
    return a.transpose(1, 0, 2, 3) if cn else a


def _base(a):
    """The array that owns ``a``'s memory (``a`` itself when it owns it)."""
    while a.base is not None and isinstance(a.base, type(a)):
        a = a.base
    return a


def _pad(x, pad, fill=0, scratch=False):
    """x padded with ``fill`` (x itself without padding); ``scratch``: the padded copy is a
    workspace array (give it back when done)."""
    PH, PW = pad
    if PH == 0 and PW == 0:
        return x
    xp = cuda.get_array_module(x)
    N, C, H, W = x.shape
    xpad = _new_image(xp, (N, C, H + 2 * PH, W + 2 * PW), x.dtype, _cn_order(x), None,
                      scratch)

    def chunk(a, b):  # the borders, then the interior: each element is written once
        xc = xpad[a:b]
        xc[:, :, :PH] = fill
        xc[:, :, PH + H:] = fill
        xc[:, :, PH:PH + H, :PW] = fill
        xc[:, :, PH:PH + H, PW + W:] = fill
        xc[:, :, PH:PH + H, PW:PW + W] = x[a:b]

    _parallel(xp, chunk, N, xpad.size)
    return xpad


def _strided_windows(xpad, ksize, stride, out_hw):
    """Read-only strided view (N, C, KH, KW, OH, OW) of the windows of ``xpad``."""
    xp = cuda.get_array_module(xpad)
    N, C = xpad.shape[:2]
    (KH, KW), (SY, SX), (OH, OW) = ksize, stride, out_hw
    sN, sC, sH, sW = xpad.strides
    return _as_strided(xp, xpad, (N, C, KH, KW, OH, OW), (sN, sC, sH, sW, sH * SY, sW * SX))


def _windows(x, ksize, stride, pad, fill=0):
    """Read-only strided view (N, C, KH, KW, OH, OW) of the windows of the padded ``x``."""
    out_hw = _out_hw(x.shape[2:], ksize, stride, pad)
    return _strided_windows(_pad(x, pad, fill), ksize, stride, out_hw)


def _col_matrix(x, ksize, stride, pad, ones=False):
    """im2col as the GEMM operand (C*KH*KW, N*OH*OW): one copy out of the strided view.

    ``ones``: one more row, of ones, at the bottom (the bias's row: see ``_conv2d_array``).
    Returns ``(col, owned)``; ``owned``: col is a workspace array (give it back when done).
    """
    xp = cuda.get_array_module(x)
    N, C, H, W = x.shape
    if (not ones and tuple(ksize) == (1, 1) and tuple(stride) == (1, 1)
            and tuple(pad) == (0, 0)):
        return _channel_matrix(x), False  # nothing to unfold
    KH, KW = ksize
    OH, OW = _out_hw((H, W), ksize, stride, pad)
    xpad = _pad(x, pad, scratch=True)
    win = _strided_windows(xpad, ksize, stride, (OH, OW))
    K = C * KH * KW
    col = _ws.take(xp, (K + 1 if ones else K, N * OH * OW), x.dtype)
    dst = col[:K].reshape(C, KH, KW, N, OH, OW)
    src = win.transpose(1, 2, 3, 0, 4, 5)

    def chunk(a, b):
        dst[:, :, :, a:b] = src[:, :, :, a:b]

    _parallel(xp, chunk, N, col.size)
    if ones:
        col[K].fill(1)
    if xpad is not x:
        _ws.give(_base(xpad))
    return col, True


def _channel_matrix(a, scratch=False):
    """(N, C, H, W) -> the (C, N*H*W) matrix that the GEMMs take (a view when possible).

    With ``scratch``, returns ``(matrix, owned)``: a needed copy is made into a workspace
    array (``owned``; give it back when done).
    """
    N, C, H, W = a.shape
    t = a.transpose(1, 0, 2, 3)
    if not scratch:
        return t.reshape(C, N * H * W)
    if t.flags.c_contiguous:
        return t.reshape(C, N * H * W), False
    xp = cuda.get_array_module(a)
    m = _ws.take(xp, (C, N * H * W), a.dtype)
    m4 = m.reshape(C, N, H, W)

    def chunk(lo, hi):
        m4[:, lo:hi] = t[:, lo:hi]

    _parallel(xp, chunk, N, a.size)
    return m, True


def _col2im(col, in_hw, stride, pad, b=None):
    """Sum the windows ``col`` (N, C, KH, KW, OH, OW) back into a contiguous (N, C, H, W)
    image (plus the bias ``b`` per channel): one strided add per kernel offset, in the
    memory order of ``col``."""
    xp = cuda.get_array_module(col)
    N, C, KH, KW, OH, OW = col.shape
    (H, W), (SY, SX), (PH, PW) = in_hw, stride, pad
    Hp = max(H + 2 * PH, SY * (OH - 1) + KH)
    Wp = max(W + 2 * PW, SX * (OW - 1) + KW)
    cn = _cn_order(col)
    direct = not cn and (Hp, Wp) == (H, W)  # the sums land in the output itself
    img = _new_image(xp, (N, C, Hp, Wp), col.dtype, cn, None if not direct else 0,
                     scratch=not direct)
    y = img if direct else xp.empty((N, C, H, W), dtype=col.dtype)
    b4 = None if b is None else b.reshape(1, C, 1, 1)

    def chunk(lo, hi):
        im = img[lo:hi]
        if not direct:
            im.fill(0)
        for kh in range(KH):
            for kw in range(KW):
                im[:, :, kh:kh + SY * OH:SY, kw:kw + SX * OW:SX] += col[lo:hi, :, kh, kw]
        if direct:
            if b4 is not None:
                im += b4
        elif b4 is None:
            y[lo:hi] = im[:, :, PH:PH + H, PW:PW + W]
        else:
            xp.add(im[:, :, PH:PH + H, PW:PW + W], b4, out=y[lo:hi])

    _parallel(xp, chunk, N, col.size + img.size)
    if not direct:
        _ws.give(_base(img))
    return y


def _conv2d_array(x, W, b, stride, pad):
    """conv2d on arrays; returns (y, col, owned) with col the GEMM operand (kept for gW;
    on the channel-major path with a bias, its last row is the bias's row of ones).

    The GEMM gives (OC, N, OH, OW). The reference path hands it out as a contiguous NCHW
    array (one transposing copy that also adds the bias; none for N == 1); the
    channel-major path hands it out as it is (see PATHS).
    """
    xp = cuda.get_array_module(x)
    N = x.shape[0]
    OC, _, KH, KW = W.shape
    OH, OW = _out_hw(x.shape[2:], (KH, KW), stride, pad)
    W2 = W.reshape(OC, -1)
    if _channel_major(xp) and N > 1:
        unfold = (KH, KW, *stride, *pad) != (1, 1, 1, 1, 0, 0)
        ones = b is not None and unfold
        col, owned = _col_matrix(x, (KH, KW), stride, pad, ones=ones)
        if ones:  # the bias as one more column of W, against col's row of ones
            W2 = xp.concatenate([W2, b.reshape(OC, 1).astype(W2.dtype, copy=False)], axis=1)
        t = xp.matmul(W2, col)  # (OC, N*OH*OW): the one large GEMM, bias included
        if b is not None and not ones:  # a 1x1 convolution: x itself is the operand
            t += b.reshape(OC, 1)
        return t.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3), col, owned
    col, owned = _col_matrix(x, (KH, KW), stride, pad)
    dtype = np.result_type(W2.dtype, col.dtype)
    if N == 1:
        y = W2 @ col
        if b is not None:
            y += b.reshape(OC, 1)
        return y.reshape(1, OC, OH, OW), col, owned
    t = _ws.take(xp, (OC, N * OH * OW), dtype)
    xp.matmul(W2, col, out=t)  # (OC, N*OH*OW): the one large GEMM
    tt = t.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3)
    y = xp.empty((N, OC, OH, OW), dtype=dtype)
    b4 = None if b is None else b.reshape(1, OC, 1, 1)

    def chunk(lo, hi):
        if b4 is None:
            y[lo:hi] = tt[lo:hi]
        else:
            xp.add(tt[lo:hi], b4, out=y[lo:hi])

    _parallel(xp, chunk, N, y.size)
    _ws.give(t)
    return y, col, owned


def _deconv2d_array(x, W, b, stride, pad, outsize, x_mat=None):
    """Transposed convolution on arrays: x (N, C, H, W), W (C, OC, KH, KW).

    ``x_mat`` is x as a (C, N*H*W) matrix when the caller has it already.
    """
    xp = cuda.get_array_module(x)
    N, C, H, Wd = x.shape
    _, OC, KH, KW = W.shape
    if _wide_deconv_pays(xp, x.shape, (KH, KW), stride):
        return _deconv2d_wide(x, W, b, pad, outsize)
    owned = False
    if x_mat is None:
        x_mat, owned = _channel_matrix(x, scratch=True)
    W2T = W.reshape(C, -1).T
    gcol = _ws.take(xp, (OC * KH * KW, N * H * Wd), np.result_type(W2T.dtype, x_mat.dtype))
    xp.matmul(W2T, x_mat, out=gcol)  # (OC*KH*KW, N*H*W): one large GEMM
    if owned:
        _ws.give(x_mat)
    col6 = gcol.reshape(OC, KH, KW, N, H, Wd).transpose(3, 0, 1, 2, 4, 5)
    y = _col2im(col6, outsize, stride, pad, b)
    _ws.give(gcol)
    return y


# The wide layout costs (r - 1) * C extra multiply-adds per column element (r: padded over
# unpadded image area, C: input channels of the GEMM) and saves about one NumPy row per
# OW elements in col2im. Measured on the 2-conv MNIST CNN (C = 32, 14x14, r = 1.31) it
# saves about a fifth of the input gradient's time; for large C and small images the GEMM dominates.
_WIDE_MAX_EXCESS = 64.0  # use the wide layout while (r - 1) * C stays below this


def _wide_deconv_pays(xp, x_shape, ksize, stride):
    """Whether :func:`_deconv2d_wide` is the faster way (NumPy, stride 1, a real kernel)."""
    if xp is not np or tuple(stride) != (1, 1) or ksize[0] * ksize[1] == 1:
        return False
    _, C, H, Wd = x_shape
    excess = (H + ksize[0] - 1) * (Wd + ksize[1] - 1) / (H * Wd) - 1.0
    return excess * C <= _WIDE_MAX_EXCESS


_WIDE_SLICE_BYTES = 4 << 20  # the GEMM result per batch slice (see _deconv2d_wide)


def _deconv2d_wide(x, W, b, pad, outsize):
    """Stride-1 transposed convolution in the "wide" layout: col2im in long contiguous runs.

    Each image of x is placed at the top left of a zero (Hp, Wp) grid, Hp x Wp the padded
    output size, channel-major: xw (C, n*Hp*Wp) for a slice of n images. The GEMM
    ``W^T xw`` then gives, per (output channel, kernel offset), ONE row over the slice
    whose element p belongs at flat position p + kh*Wp + kw of the padded output, so
    col2im is one contiguous add per (channel, offset) instead of one per output row. The
    grid's extra positions hold zeros (x is zero there, so for a finite W their columns of
    the product are zero: adding them changes nothing; a window never reaches the next
    image except with such zeros). Costs (Hp*Wp)/(H*W) - 1 more GEMM work. The batch goes through in
    slices whose temporaries stay in the cache.
    """
    xp = cuda.get_array_module(x)
    N, C, H, Wd = x.shape
    _, OC, KH, KW = W.shape
    (OH, OW), (PH, PW) = outsize, pad
    Hp, Wp = H + KH - 1, Wd + KW - 1  # = OH + 2 PH, OW + 2 PW at stride 1
    S = Hp * Wp
    W2T = W.reshape(C, -1).T  # (OC*KH*KW, C)
    dtype = np.result_type(W2T.dtype, x.dtype)
    K2 = KH * KW
    # batch slices whose GEMM result stays near the cache size (measured on the MNIST CNN:
    # one result for the whole batch, 15 MB, made this path slower than the plain one)
    per_image = OC * K2 * S * np.dtype(dtype).itemsize
    k = min(N, -(-N * per_image // _WIDE_SLICE_BYTES))
    bounds = [N * i // k for i in range(k + 1)]
    cm = _channel_major(xp)
    # channel-major: the result stays in the GEMM's (OC, N, ...) order (no transposition)
    y = _new_image(xp, (N, OC, OH, OW), dtype, cm, fill=None)
    b4 = None if b is None else b.reshape(1, OC, 1, 1)
    xt = x.transpose(1, 0, 2, 3)
    slack = (KH - 1) * Wp + KW - 1  # after the last image: it only receives zeros

    def slices(lo, hi):
        for a, e in zip(bounds[lo:hi], bounds[lo + 1:hi + 1]):
            M = (e - a) * S
            xw = xp.empty((C, M), dtype=x.dtype)
            x4 = xw.reshape(C, e - a, Hp, Wp)
            x4[:, :, H:] = 0
            x4[:, :, :H, Wd:] = 0
            x4[:, :, :H, :Wd] = xt[:, a:e]
            g3 = xp.matmul(W2T, xw).reshape(OC, K2, M)
            img = xp.zeros((OC, M + slack), dtype=dtype)
            for kh in range(KH):
                for kw in range(KW):
                    o = kh * Wp + kw
                    img[:, o:o + M] += g3[:, kh * KW + kw]
            src = img[:, :M].reshape(OC, e - a, Hp, Wp)[:, :, PH:PH + OH, PW:PW + OW]
            if b4 is None:
                y[a:e] = src.transpose(1, 0, 2, 3)
            else:
                xp.add(src.transpose(1, 0, 2, 3), b4, out=y[a:e])

    _parallel(xp, slices, k, y.size * K2 * C)
    return y


# A product with a small result and a long contraction (the weight gradient of a first
# layer: 9 x 16 over K = 78400) runs about 1.7x faster in slices of K whose M*N*K stays
# under ~1M: OpenBLAS then takes its small-matrix kernels instead of packing long panels.
_SLICE_WORK = 1 << 19  # M*N*K per slice
_SLICE_MAX_OUT = 1024  # only for results of at most this many elements (M*N)


def _long_product(xp, a, b):
    """``a @ b.T`` for a (M, K) and b (N, K) with K long, in slices of K where that pays."""
    M, K = a.shape
    N = b.shape[0]
    if xp is not np or M * N > _SLICE_MAX_OUT or M * N * K <= 2 * _SLICE_WORK:
        return a @ b.T
    step = max(_SLICE_WORK // (M * N), 1)
    out = a[:, :step] @ b[:, :step].T
    part = np.empty_like(out)
    for lo in range(step, K, step):
        np.matmul(a[:, lo:lo + step], b[:, lo:lo + step].T, out=part)
        out += part
    return out


def _conv2d_grad_w_array(x, gy, ksize, stride, pad, col=None, gy_mat=None, col_owned=False):
    """gW (OC, C, KH, KW) = gy (OC, N*OH*OW) @ col(x).T: one GEMM over the batch. A kept
    col may carry the bias's row of ones at the bottom (conv2d's channel-major path)."""
    C = x.shape[1]
    OC = gy.shape[1]
    if col is None:
        col, col_owned = _col_matrix(x, ksize, stride, pad)
    full = col
    col = col[:C * ksize[0] * ksize[1]]
    gy_owned = False
    if gy_mat is None:
        gy_mat, gy_owned = _channel_matrix(gy, scratch=True)
    xp = cuda.get_array_module(gy_mat)
    # (col @ gy^T)^T: the same product, but OpenBLAS runs this orientation of the long
    # contraction (K = N*OH*OW) markedly faster
    gW = xp.ascontiguousarray(_long_product(xp, col, gy_mat).T).reshape(OC, C, *ksize)
    if col_owned:
        _ws.give(full)
    if gy_owned:
        _ws.give(gy_mat)
    return gW


# =============================================================================
# Pooling
# =============================================================================
def _tiled_2x2(x_shape, ksize, stride, pad):
    """2x2 windows at stride 2 that tile the unpadded input exactly (the usual CNN pool)."""
    return (tuple(ksize) == (2, 2) and tuple(stride) == (2, 2) and tuple(pad) == (0, 0)
            and x_shape[2] % 2 == 0 and x_shape[3] % 2 == 0)


def _pool2x2(xp, x, record):
    """Max pooling over tiled 2x2 windows as two pairwise stages: the two columns of each
    window (full height), then the two rows of the result. Returns ``(y, masks)``; masks
    (None unless ``record``) are 1 where the second column / the second row won, in x's
    dtype, so that the backward is plain same-dtype multiplies. Strict '>' at both stages
    gives the row-major first maximum on ties (the first row holding the maximum, its
    first column), as the general path does; a NaN in the first position wins too.
    """
    N, C, H, W = x.shape
    xv = x.reshape(N, C, H, W // 2, 2)
    a, b = xv[..., 0], xv[..., 1]
    m = xp.maximum(a, b)  # (N, C, H, OW)
    mv = m.reshape(N, C, H // 2, 2, W // 2)
    m0, m1 = mv[:, :, :, 0], mv[:, :, :, 1]
    y = xp.maximum(m0, m1)  # (N, C, OH, OW)
    if not record:
        return y, None
    # written straight in x's dtype (and layout): no separate cast of a bool mask
    col = xp.greater(b, a, out=xp.empty_like(a))
    row = xp.greater(m1, m0, out=xp.empty_like(y))
    return y, (col, row)


def _pair_scatter(xp, g, mask, out0, out1):
    """out1 = g * mask, out0 = g - out1 (= g * (1 - mask), exact for finite g)."""
    if mask.dtype != g.dtype:
        mask = mask.astype(g.dtype)
    xp.multiply(g, mask, out=out1)
    xp.subtract(g, out1, out=out0)


def _pool2x2_scatter(xp, gy, masks):
    """The backward of :func:`_pool2x2`: route gy to the winning row, then column."""
    col, row = masks
    N, C, OH, OW = gy.shape
    cm = _channel_major(xp) and _cn_order(col)  # the forward's input was channel-major

    def new(shape):  # in the forward input's layout, so that ops after us keep it
        if not cm:
            return xp.empty(shape, dtype=gy.dtype)
        return xp.empty((shape[1], shape[0], *shape[2:]), dtype=gy.dtype).swapaxes(0, 1)

    gm = new((N, C, OH, 2, OW))
    _pair_scatter(xp, gy, row, gm[:, :, :, 0], gm[:, :, :, 1])
    gx = new((N, C, 2 * OH, OW, 2))
    _pair_scatter(xp, gm.reshape(N, C, 2 * OH, OW), col, gx[..., 0], gx[..., 1])
    return gx.reshape(N, C, 2 * OH, 2 * OW)


def _pool2x2_gather(xp, x, masks):
    """The backward of :func:`_pool2x2_scatter`: read each window's winner."""
    col, row = masks
    N, C, H, W = x.shape
    xv = x.reshape(N, C, H, W // 2, 2)
    m = xp.where(col != 0, xv[..., 1], xv[..., 0])
    mv = m.reshape(N, C, H // 2, 2, W // 2)
    return xp.where(row != 0, mv[:, :, :, 1], mv[:, :, :, 0])


def _max_pool(x, ksize, stride, pad, record):
    """Max pooling on arrays: ``(y, indexes)``. ``indexes`` (None unless ``record``) holds,
    per output, the offset (kh * KW + kw) of the winner in its window; tiled 2x2 windows
    keep the two masks of :func:`_pool2x2` instead."""
    xp = cuda.get_array_module(x)
    if _tiled_2x2(x.shape, ksize, stride, pad):
        if _compiled(x):
            return _conv_numba.pool2x2(x, record)
        return _pool2x2(xp, x, record)
    KH, KW = ksize
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    win = _windows(x, ksize, stride, pad, fill)
    N, C, _, _, OH, OW = win.shape
    idx_dtype = np.uint8 if KH * KW <= 256 else np.int32
    y = xp.empty((N, C, OH, OW), dtype=x.dtype)
    idx = xp.empty((N, C, OH, OW), dtype=idx_dtype) if record else None

    # A running max over the kernel offsets, a few whole-array passes each (no argmax,
    # no masked copies: both are many times slower than plain ufuncs). The winner's
    # offset: k exceeds every offset so far, so max(idx, better * k) is k where v beats
    # the running max and idx elsewhere. Strict '>': on ties the first offset in
    # row-major order wins.
    def chunk(lo, hi):
        w, yc = win[lo:hi], y[lo:hi]
        ic = None if idx is None else idx[lo:hi]
        v0 = w[:, :, 0, 0]
        if KH * KW == 1:
            yc[...] = v0
            if ic is not None:
                ic.fill(0)
            return
        v1 = w[:, :, 0, 1] if KW > 1 else w[:, :, 1, 0]
        if ic is not None:
            xp.greater(v1, v0, out=ic)  # offset 0 or 1
        xp.maximum(v0, v1, out=yc)
        for k in range(2, KH * KW):
            v = w[:, :, k // KW, k % KW]
            if ic is not None:
                xp.maximum(ic, (v > yc) * idx_dtype(k), out=ic)
            xp.maximum(yc, v, out=yc)

    _parallel(xp, chunk, N, y.size * KH * KW)
    return y, idx


def _max_pool_scatter(gy, indexes, x_shape, ksize, stride, pad):
    """The backward of max pooling: each output gradient goes to its window's winner."""
    xp = cuda.get_array_module(gy)
    if isinstance(indexes, tuple):
        if _compiled(gy, *indexes):
            return _conv_numba.pool2x2_scatter(gy, indexes)
        return _pool2x2_scatter(xp, gy, indexes)
    KH, KW = ksize
    (SY, SX), (PH, PW) = stride, pad
    N, C, OH, OW = gy.shape
    H, W = x_shape[2:]
    Hp = max(H + 2 * PH, SY * (OH - 1) + KH)
    Wp = max(W + 2 * PW, SX * (OW - 1) + KW)
    overlap = SY < KH or SX < KW
    tiled = (SY, SX) == (KH, KW) and (Hp, Wp) == (OH * SY, OW * SX)
    img = _new_image(xp, (N, C, Hp, Wp), gy.dtype, False, None if tiled else 0)

    def chunk(lo, hi):
        g, ic = gy[lo:hi], indexes[lo:hi]
        for k in range(KH * KW):
            kh, kw = divmod(k, KW)
            dst = img[lo:hi, :, kh:kh + SY * OH:SY, kw:kw + SX * OW:SX]
            if overlap:
                dst += g * (ic == k)
            else:  # windows are disjoint: write in place, no temporary
                xp.multiply(g, ic == k, out=dst)

    _parallel(xp, chunk, N, img.size + gy.size * KH * KW)
    return img[:, :, PH:PH + H, PW:PW + W]


def _max_pool_gather(x, indexes, ksize, stride, pad):
    """The adjoint of :func:`_max_pool_scatter`: read each window's winner."""
    xp = cuda.get_array_module(x)
    if isinstance(indexes, tuple):
        return _pool2x2_gather(xp, x, indexes)
    KW = ksize[1]
    win = _windows(x, ksize, stride, pad)
    y = xp.zeros(indexes.shape, dtype=x.dtype)
    for k in range(ksize[0] * KW):
        xp.copyto(y, win[:, :, k // KW, k % KW], where=indexes == k)
    return y


def _avg_pool(x, ksize, stride, pad):
    """Mean over each window; padding counts as zeros (the divisor is always KH*KW)."""
    KH, KW = ksize
    win = _windows(x, ksize, stride, pad)
    y = win[:, :, 0, 0].copy(order="K")
    for k in range(1, KH * KW):
        y += win[:, :, k // KW, k % KW]
    y *= 1.0 / (KH * KW)
    return y


def _avg_pool_grad(gy, x_shape, ksize, stride, pad):
    """The adjoint of :func:`_avg_pool`: each output gradient spread evenly over its window."""
    xp = cuda.get_array_module(gy)
    KH, KW = ksize
    g = gy * (1.0 / (KH * KW))
    N, C, OH, OW = gy.shape
    col = _as_strided(xp, g, (N, C, KH, KW, OH, OW), (*g.strides[:2], 0, 0, *g.strides[2:]))
    return _col2im(col, x_shape[2:], stride, pad)
