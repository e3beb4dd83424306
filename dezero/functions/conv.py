"""Convolution and pooling on NCHW arrays: conv2d, deconv2d, pooling, average_pooling,
im2col, col2im and the book's composites conv2d_simple and pooling_simple.

The array-level kernels (im2col/col2im, the GEMM layouts, pooling loops, the per-thread
workspace and the worker threads) live in ``dezero.functions._conv_kernels``; this module
holds the Functions, their wrappers and their argument checks.
"""

from __future__ import annotations

import numpy as np

from dezero.array_utils import get_deconv_outsize, pair
from dezero.core import Config, Function, Variable, as_variable, unbroadcast
from dezero.functions import _checks
from dezero.functions._conv_kernels import (
    _avg_pool,
    _avg_pool_grad,
    _channel_matrix,
    _col2im,
    _conv2d_array,
    _conv2d_grad_w_array,
    _deconv2d_array,
    _max_pool,
    _max_pool_gather,
    _max_pool_scatter,
    _out_hw,
    _windows,
    _ws,
)
from dezero.functions._ops import apply
from dezero.functions.array import reshape, transpose
from dezero.functions.linalg import matmul
from dezero.functions.reduction import max as _max
from dezero.functions.reduction import sum as _sum

__all__ = [
    "average_pooling",
    "col2im",
    "conv2d",
    "conv2d_simple",
    "deconv2d",
    "im2col",
    "pooling",
    "pooling_simple",
]


# =============================================================================
# Argument checking
# =============================================================================
def _int_pair(fname, what, value, minimum):
    try:
        p = pair(value)
    except ValueError:
        raise ValueError(
            f"{fname}: {what} must be an int or a pair of ints, got {value!r}"
        ) from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in p):
        raise ValueError(f"{fname}: {what} must be an int or a pair of ints, got {value!r}")
    p = (int(p[0]), int(p[1]))
    if min(p) < minimum:
        rule = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{fname}: {what} must be {rule}, got {value!r}")
    return p


def _check_4d(fname, what, a):
    if a.ndim != 4:
        raise ValueError(
            f"{fname}: expected a 4-D {what} (N, C, H, W), got an array of shape {a.shape}"
        )


def _check_fits(fname, in_hw, ksize, pad):
    (H, W), (KH, KW), (PH, PW) = in_hw, ksize, pad
    if KH > H + 2 * PH or KW > W + 2 * PW:
        raise ValueError(
            f"{fname}: kernel {KH}x{KW} is larger than the padded input "
            f"{H + 2 * PH}x{W + 2 * PW} (input {H}x{W}, pad {PH}x{PW})"
        )


# =============================================================================
# Convolution Functions
# =============================================================================
# A layer's im2col matrix is KH*KW times its input: kept from forward to backward for
# every layer of a deep network (ResNet-18 at batch 64: 1.2 GB), it would hold far more
# memory than the activations themselves. Larger ones are rebuilt by the backward instead
# (one more copy; the MNIST CNN's, 3 and 11 MB, are kept).
KEEP_COL_BYTES = 16 << 20


def _bias_grad(gy, b):
    return unbroadcast(_sum(gy, axis=(0, 2, 3)), b)


class Conv2d(Function):
    """y = conv(x, W) + b; backward: gx = deconv2d(gy, W), gW = Conv2dGradW(x, gy).

    ``need_gx=False`` (x was a plain array, whose gradient nobody can read) skips the
    input gradient.
    """

    def __init__(self, stride, pad, need_gx=True):
        self.stride = stride
        self.pad = pad
        self.need_gx = need_gx
        self._col = None
        self._col_owned = False

    def forward(self, x, W, b=None):
        y, col, owned = _conv2d_array(x, W, b, self.stride, self.pad)
        if Config.enable_backprop and col.nbytes <= KEEP_COL_BYTES:
            # kept for the weight gradient (im2col is paid once); ownership moves to it
            self._col, self._col_owned = col, owned
        elif owned:
            _ws.give(col)
        return y

    # both forms: array-only kernels that share one (OC, N*OH*OW) gy among three products
    def backward(self, gy):
        x, W = self.inputs[:2]
        gx = None
        if self.need_gx:
            gx = unbroadcast(Deconv2d(self.stride, self.pad, x.shape[2:])(gy, W), x)
        col, owned = self._take_col()
        if owned:
            _ws.give(col)
        # an op of x that forms its own columns: a graph of values only (any order; a
        # replayed step, dezero.jit, computes them from each call's x)
        gW = Conv2dGradW(W.shape[2:], self.stride, self.pad)(x, gy)
        gxs = (gx, unbroadcast(gW, W))
        if len(self.inputs) == 3:
            gxs += (_bias_grad(gy, self.inputs[2]),)
        return gxs

    def backward_array(self, xs, ys, gys):
        x, W = xs[:2]
        # gy as a (OC, N*OH*OW) matrix: one transposing copy, shared by all three products
        gy_mat, gy_owned = _channel_matrix(gys[0], scratch=True)
        gx = None
        if self.need_gx:
            gx = _deconv2d_array(gys[0], W, None, self.stride, self.pad, x.shape[2:], gy_mat)
            gx = unbroadcast(gx, x)
        col, owned = self._take_col()
        gW = _conv2d_grad_w_array(x, gys[0], W.shape[2:], self.stride, self.pad, col, gy_mat,
                                  owned)
        gxs = (gx, unbroadcast(gW, W))
        if len(xs) == 3:
            gxs += (unbroadcast(gy_mat.sum(axis=1), xs[2]),)
        if gy_owned:
            _ws.give(gy_mat)
        return gxs

    def _take_col(self):
        """The im2col matrix kept by forward (a second backward recomputes it)."""
        col, owned = self._col, self._col_owned
        self._col, self._col_owned = None, False
        return col, owned


class Deconv2d(Function):
    """Transposed convolution; backward: gx = conv2d(gy, W), gW = Conv2dGradW(gy, x)."""

    def __init__(self, stride, pad, outsize, need_gx=True, x_mat=None):
        self.stride = stride
        self.pad = pad
        self.outsize = tuple(outsize)
        self.need_gx = need_gx
        self._x_mat = x_mat

    def forward(self, x, W, b=None):
        y = _deconv2d_array(x, W, b, self.stride, self.pad, self.outsize, self._x_mat)
        self._x_mat = None
        return y

    def backward(self, gy):
        x, W = self.inputs[:2]
        gx = None
        if self.need_gx:
            gx = unbroadcast(Conv2d(self.stride, self.pad)(gy, W), x)
        gW = Conv2dGradW(W.shape[2:], self.stride, self.pad)(gy, x)
        gxs = (gx, unbroadcast(gW, W))
        if len(self.inputs) == 3:
            gxs += (_bias_grad(gy, self.inputs[2]),)
        return gxs


class Conv2dGradW(Function):
    """The weight gradient of conv2d, gW = gy x col(x)^T, as a Function of (x, gy).

    It is bilinear, so its backward is again a convolution pair:
    d<gW, ggW>/dx = deconv2d(gy, ggW) and d<gW, ggW>/dgy = conv2d(x, ggW).
    ``col`` / ``gy_mat``: the operands as matrices, when the caller has them already.
    """

    def __init__(self, ksize, stride, pad, col=None, gy_mat=None, col_owned=False):
        self.ksize = tuple(ksize)
        self.stride = stride
        self.pad = pad
        self._col = col
        self._gy_mat = gy_mat
        self._col_owned = col_owned

    def forward(self, x, gy):
        gW = _conv2d_grad_w_array(x, gy, self.ksize, self.stride, self.pad, self._col,
                                  self._gy_mat, self._col_owned)
        self._col = self._gy_mat = None
        return gW

    def backward(self, ggW):
        x, gy = self.inputs
        gx = Deconv2d(self.stride, self.pad, x.shape[2:])(gy, ggW)
        ggy = Conv2d(self.stride, self.pad)(x, ggW)
        return unbroadcast(gx, x), unbroadcast(ggy, gy)


def _check_conv(fname, x, W, b, stride, pad, transposed):
    _check_4d(fname, "input", x)
    if W.ndim != 4:
        layout = "(C, OC, KH, KW)" if transposed else "(OC, C, KH, KW)"
        raise ValueError(f"{fname}: expected a 4-D weight W {layout}, got shape {W.shape}")
    w_in = W.shape[0] if transposed else W.shape[1]
    if x.shape[1] != w_in:
        axis = "W.shape[0]" if transposed else "W.shape[1]"
        raise ValueError(
            f"{fname}: channel mismatch: x has {x.shape[1]} input channels (x.shape = "
            f"{x.shape}) but W expects {w_in} ({axis}; W.shape = {W.shape})"
        )
    out_c = W.shape[1] if transposed else W.shape[0]
    if b is not None and tuple(b.shape) != (out_c,):
        raise ValueError(
            f"{fname}: bias b must have shape ({out_c},) (one per output channel), "
            f"got {tuple(b.shape)}"
        )


def conv2d(x, W, b=None, stride=1, pad=0) -> Variable:
    """2-D convolution (cross-correlation, as in every deep learning framework) on NCHW data.

    Parameters
    ----------
    x : Variable or ndarray, shape (N, C, H, W)
    W : Variable or ndarray, shape (OC, C, KH, KW)
    b : Variable or ndarray, shape (OC,), optional
    stride, pad : int or (int, int)
        Step of the window and zero padding on each side, per spatial axis.

    Returns
    -------
    Variable of shape (N, OC, OH, OW), OH = (H + 2 pad - KH) // stride + 1 (same for OW).

    Notes
    -----
    y[n, o, i, j] = b[o] + sum_{c,k,l} W[o, c, k, l] x_pad[n, c, i s + k, j s + l].
    Computed as one GEMM over an im2col view. On NumPy the result is stored
    channel-major (an NCHW array whose memory is ordered (OC, N, OH, OW), as the GEMM makes
    it; ``np.ascontiguousarray`` gives the usual order where a consumer needs it).
    Gradients: gx = deconv2d(gy, W), gW = sum_n gy col(x)^T, gb = sum of gy over
    (N, OH, OW); all differentiable again.

    Examples
    --------
    >>> import numpy as np
    >>> conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), stride=2, pad=1).shape
    (1, 4, 3, 3)
    """
    stride = _int_pair("conv2d", "stride", stride, 1)
    pad = _int_pair("conv2d", "pad", pad, 0)
    _check_conv("conv2d", x, W, b, stride, pad, transposed=False)
    _check_fits("conv2d", x.shape[2:], W.shape[2:], pad)
    # a plain array's gradient can never be read: skip it (the data batch of a first layer)
    f = Conv2d(stride, pad, need_gx=isinstance(x, Variable))
    return f(x, W) if b is None else f(x, W, b)


def deconv2d(x, W, b=None, stride=1, pad=0, outsize=None) -> Variable:
    """Transposed convolution ("deconvolution"): the adjoint of conv2d with the same W.

    Parameters
    ----------
    x : Variable or ndarray, shape (N, C, H, W)
    W : Variable or ndarray, shape (C, OC, KH, KW)
    b : Variable or ndarray, shape (OC,), optional
    stride, pad : int or (int, int)
    outsize : (int, int), optional
        Output (OH, OW); default ``stride (H - 1) + KH - 2 pad``. Any size that a conv2d
        with the same kernel, stride and pad maps back to (H, W) is accepted.

    Returns
    -------
    Variable of shape (N, OC, OH, OW).

    Notes
    -----
    <deconv2d(x, W), y> = <x, conv2d(y, W)> for every y: the gradient of one is the
    other. Gradients: gx = conv2d(gy, W), gW from the same bilinear kernel as conv2d's.

    Examples
    --------
    >>> import numpy as np
    >>> deconv2d(np.ones((1, 4, 3, 3)), np.ones((4, 2, 4, 4)), stride=2, pad=1).shape
    (1, 2, 6, 6)
    """
    stride = _int_pair("deconv2d", "stride", stride, 1)
    pad = _int_pair("deconv2d", "pad", pad, 0)
    _check_conv("deconv2d", x, W, b, stride, pad, transposed=True)
    (H, Wd), (KH, KW) = x.shape[2:], W.shape[2:]
    if outsize is None:
        outsize = (get_deconv_outsize(H, KH, stride[0], pad[0]),
                   get_deconv_outsize(Wd, KW, stride[1], pad[1]))
    else:
        outsize = _int_pair("deconv2d", "outsize", outsize, 1)
    if min(outsize) < 1 or _out_hw(outsize, (KH, KW), stride, pad) != (H, Wd):
        raise ValueError(
            f"deconv2d: output size {outsize} does not match the input size {(H, Wd)}: a "
            f"conv2d with kernel {(KH, KW)}, stride {stride} and pad {pad} must map it back "
            f"to the input size"
        )
    f = Deconv2d(stride, pad, outsize, need_gx=isinstance(x, Variable))
    return f(x, W) if b is None else f(x, W, b)


# =============================================================================
# im2col / col2im
# =============================================================================
class Im2col(Function):
    def __init__(self, ksize, stride, pad, to_matrix, fill=0):
        self.ksize = ksize
        self.stride = stride
        self.pad = pad
        self.to_matrix = to_matrix
        self.fill = fill

    def forward(self, x):
        self.x_shape = x.shape
        win = _windows(x, self.ksize, self.stride, self.pad, self.fill)
        if self.to_matrix:
            N, C, KH, KW, OH, OW = win.shape
            return win.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * KH * KW)
        return win.copy()

    def backward(self, gy):
        return Col2im(self.x_shape, self.ksize, self.stride, self.pad, self.to_matrix)(gy)


class Col2im(Function):
    def __init__(self, input_shape, ksize, stride, pad, to_matrix):
        self.input_shape = tuple(input_shape)
        self.ksize = ksize
        self.stride = stride
        self.pad = pad
        self.to_matrix = to_matrix

    def forward(self, col):
        N, C, H, W = self.input_shape
        if self.to_matrix:
            OH, OW = _out_hw((H, W), self.ksize, self.stride, self.pad)
            col = col.reshape(N, OH, OW, C, *self.ksize).transpose(0, 3, 4, 5, 1, 2)
        return _col2im(col, (H, W), self.stride, self.pad)

    def backward(self, gx):
        return Im2col(self.ksize, self.stride, self.pad, self.to_matrix)(gx)


def _pool_args(fname, x, kernel_size, stride, pad):
    ksize = _int_pair(fname, "kernel_size", kernel_size, 1)
    stride = _int_pair(fname, "stride", stride, 1)
    pad = _int_pair(fname, "pad", pad, 0)
    _check_4d(fname, "input", x)
    _check_fits(fname, x.shape[2:], ksize, pad)
    return ksize, stride, pad


def im2col(x, kernel_size, stride=1, pad=0, to_matrix=True) -> Variable:
    """Unfold the sliding windows of an NCHW image into columns.

    Parameters
    ----------
    x : Variable or ndarray, shape (N, C, H, W)
    kernel_size, stride, pad : int or (int, int)
    to_matrix : bool
        True: a matrix of shape (N*OH*OW, C*KH*KW), one row per window (the book's layout).
        False: an array of shape (N, C, KH, KW, OH, OW).

    Returns
    -------
    Variable

    Notes
    -----
    col[n, c, k, l, i, j] = x_pad[n, c, i s + k, j s + l]; built from a strided view of x
    (no loop over output positions). Its gradient is col2im, whose gradient is im2col.

    Examples
    --------
    >>> import numpy as np
    >>> im2col(np.zeros((2, 3, 7, 7)), 5, stride=1, pad=0).shape
    (18, 75)
    """
    ksize, stride, pad = _pool_args("im2col", x, kernel_size, stride, pad)
    return Im2col(ksize, stride, pad, bool(to_matrix))(x)


def col2im(x, input_shape, kernel_size, stride=1, pad=0, to_matrix=True) -> Variable:
    """Fold columns back into an image, summing where windows overlap (adjoint of im2col).

    Parameters
    ----------
    x : Variable or ndarray
        Columns in the layout that ``im2col(..., to_matrix)`` produces.
    input_shape : (N, C, H, W)
        Shape of the image to rebuild.
    kernel_size, stride, pad : int or (int, int)
    to_matrix : bool

    Returns
    -------
    Variable of shape ``input_shape``.

    Notes
    -----
    <im2col(a), b> = <a, col2im(b)>. col2im(im2col(a)) multiplies each pixel by the number
    of windows that cover it.

    Examples
    --------
    >>> import numpy as np
    >>> col2im(np.ones((9, 4)), (1, 1, 4, 4), 2, stride=1).data[0, 0]
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]])
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"col2im: input_shape must be (N, C, H, W), got {input_shape}")
    ksize = _int_pair("col2im", "kernel_size", kernel_size, 1)
    stride = _int_pair("col2im", "stride", stride, 1)
    pad = _int_pair("col2im", "pad", pad, 0)
    N, C, H, W = input_shape
    _check_fits("col2im", (H, W), ksize, pad)
    OH, OW = _out_hw((H, W), ksize, stride, pad)
    expected = (N * OH * OW, C * ksize[0] * ksize[1]) if to_matrix else (N, C, *ksize, OH, OW)
    if tuple(x.shape) != expected:
        raise ValueError(
            f"col2im: columns of shape {tuple(x.shape)} do not fit input_shape {input_shape} "
            f"with kernel {ksize}, stride {stride}, pad {pad} (expected {expected})"
        )
    return Col2im(input_shape, ksize, stride, pad, bool(to_matrix))(x)


# =============================================================================
# Pooling
# =============================================================================
class _Pool(Function):
    """Base of the pooling Functions and their adjoints: the window geometry they share, the
    input shape and, for max pooling, the winners (``indexes``, see ``_max_pool``)."""

    def __init__(self, ksize, stride, pad, x_shape=None, indexes=None):
        self.ksize = ksize
        self.stride = stride
        self.pad = pad
        self.x_shape = x_shape
        self.indexes = indexes

    def _then(self, cls, g):
        """Apply the Function ``cls`` of the family, with this one's geometry, to ``g``: an
        op on a Variable (any order of derivative), its kernel on an array."""
        return apply(cls(self.ksize, self.stride, self.pad, self.x_shape, self.indexes), g)


class Pooling(_Pool):
    """Max pooling: keeps, per output, the offset (kh * KW + kw) of the winner in its window."""

    def forward(self, x):
        self.x_shape = x.shape
        y, self.indexes = _max_pool(x, self.ksize, self.stride, self.pad,
                                    Config.enable_backprop)
        return y

    def backward_array(self, xs, ys, gys):
        # the winners' offsets of this call's forward (a replayed step recomputes them)
        return self._then(PoolScatter, gys[0])


class PoolScatter(_Pool):
    """Route each output gradient to its window's winner (the backward of max pooling)."""

    def forward(self, gy):
        return _max_pool_scatter(gy, self.indexes, self.x_shape, self.ksize, self.stride,
                                 self.pad)

    def backward_array(self, xs, ys, gys):
        return self._then(PoolGather, gys[0])


class PoolGather(_Pool):
    """Read each window's winner (the backward of PoolScatter, so pooling is any order)."""

    def forward(self, x):
        return _max_pool_gather(x, self.indexes, self.ksize, self.stride, self.pad)

    def backward_array(self, xs, ys, gys):
        return self._then(PoolScatter, gys[0])


class AveragePooling(_Pool):
    """Mean over each window; padding counts as zeros (the divisor is always KH*KW)."""

    def forward(self, x):
        self.x_shape = x.shape
        return _avg_pool(x, self.ksize, self.stride, self.pad)

    def backward_array(self, xs, ys, gys):
        return self._then(AvgPoolGrad, gys[0])


class AvgPoolGrad(_Pool):
    """Spread each output gradient evenly over its window (the adjoint of average pooling)."""

    def forward(self, gy):
        return _avg_pool_grad(gy, self.x_shape, self.ksize, self.stride, self.pad)

    def backward_array(self, xs, ys, gys):
        return self._then(AveragePooling, gys[0])


def pooling(x, kernel_size, stride=1, pad=0) -> Variable:
    """Max pooling over KH x KW windows of an NCHW input.

    Parameters
    ----------
    x : Variable or ndarray, shape (N, C, H, W)
    kernel_size, stride, pad : int or (int, int)
        Padding is with -inf (it never wins) and must be smaller than the kernel.

    Returns
    -------
    Variable of shape (N, C, OH, OW).

    Notes
    -----
    y = max over the window; dy/dx is 1 at the window's maximum and 0 elsewhere. On ties
    the first maximum in row-major window order takes the whole gradient. The backward
    is a scatter whose own backward is the matching gather: any order works.

    Examples
    --------
    >>> import numpy as np
    >>> pooling(np.arange(16.0).reshape(1, 1, 4, 4), 2, stride=2)
    variable([[[[ 5.  7.]
                [13. 15.]]]])
    """
    _checks.real("pooling", x)
    ksize, stride, pad = _pool_args("pooling", x, kernel_size, stride, pad)
    if pad[0] >= ksize[0] or pad[1] >= ksize[1]:
        raise ValueError(
            f"pooling: pad {pad} must be smaller than kernel_size {ksize} (a window made "
            f"only of padding has no maximum)"
        )
    return Pooling(ksize, stride, pad)(x)


def average_pooling(x, kernel_size, stride=1, pad=0) -> Variable:
    """Average pooling over KH x KW windows of an NCHW input (zero padding is counted).

    Parameters
    ----------
    x : Variable or ndarray, shape (N, C, H, W)
    kernel_size, stride, pad : int or (int, int)

    Returns
    -------
    Variable of shape (N, C, OH, OW).

    Notes
    -----
    y = (1 / (KH KW)) sum over the window; linear, so dy/dx spreads gy / (KH KW) over each
    window, and that spreading's own gradient is average pooling again.

    Examples
    --------
    >>> import numpy as np
    >>> average_pooling(np.arange(16.0).reshape(1, 1, 4, 4), 2, stride=2)
    variable([[[[ 2.5  4.5]
                [10.5 12.5]]]])
    """
    ksize, stride, pad = _pool_args("average_pooling", x, kernel_size, stride, pad)
    return AveragePooling(ksize, stride, pad)(x)


# =============================================================================
# The book's composites (kept as oracles for the fused versions)
# =============================================================================
def conv2d_simple(x, W, b=None, stride=1, pad=0) -> Variable:
    """conv2d composed from im2col and matmul, as the book writes it (slower, same result).

    Parameters and result as :func:`conv2d`.

    Notes
    -----
    y = (im2col(x) @ W.reshape(OC, -1).T + b) reshaped to (N, OH, OW, OC) and transposed
    to NCHW. Differentiable to any order through im2col/matmul.

    Examples
    --------
    >>> import numpy as np
    >>> conv2d_simple(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), pad=1).shape
    (1, 4, 5, 5)
    """
    stride = _int_pair("conv2d_simple", "stride", stride, 1)
    pad = _int_pair("conv2d_simple", "pad", pad, 0)
    x, W = as_variable(x), as_variable(W)
    _check_conv("conv2d_simple", x, W, b, stride, pad, transposed=False)
    _check_fits("conv2d_simple", x.shape[2:], W.shape[2:], pad)
    N = x.shape[0]
    OC, _, KH, KW = W.shape
    OH, OW = _out_hw(x.shape[2:], (KH, KW), stride, pad)
    col = im2col(x, (KH, KW), stride, pad, to_matrix=True)
    t = matmul(col, transpose(reshape(W, (OC, -1))))
    if b is not None:
        t = t + b
    return transpose(reshape(t, (N, OH, OW, OC)), (0, 3, 1, 2))


def pooling_simple(x, kernel_size, stride=1, pad=0) -> Variable:
    """Max pooling composed from im2col and max, as the book writes it (slower).

    Parameters and result as :func:`pooling` (padding is with -inf as there).

    Notes
    -----
    y = max over the last axis of im2col(x) reshaped to (N*OH*OW*C, KH*KW). Ties share the
    gradient as :func:`dezero.functions.max` does.

    Examples
    --------
    >>> import numpy as np
    >>> pooling_simple(np.arange(16.0).reshape(1, 1, 4, 4), 2, stride=2).shape
    (1, 1, 2, 2)
    """
    _checks.real("pooling_simple", x)
    ksize, stride, pad = _pool_args("pooling_simple", x, kernel_size, stride, pad)
    if pad[0] >= ksize[0] or pad[1] >= ksize[1]:
        raise ValueError(f"pooling_simple: pad {pad} must be smaller than kernel_size {ksize}")
    x = as_variable(x)
    N, C, H, W = x.shape
    OH, OW = _out_hw((H, W), ksize, stride, pad)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    col = Im2col(ksize, stride, pad, True, fill)(x)
    y = _max(reshape(col, (-1, ksize[0] * ksize[1])), axis=1)
    return transpose(reshape(y, (N, OH, OW, C)), (0, 3, 1, 2))
