"""Recurrent cells: rnn_cell, lstm_cell, gru_cell (one time step, weights passed explicitly).

Each cell computes its gates with ONE input product ``x @ Wx`` and ONE hidden product
``h @ Wh`` for all gates at once (an LSTM's four, a GRU's three), then splits the result.
The layers ``dezero.layers.RNN/LSTM/GRU`` hold the weights and the state and call these.

Gate layouts along the last axis (the same as PyTorch's, so weights can be exchanged):
LSTM ``[i, f, g, o]`` (input, forget, cell candidate, output), GRU ``[r, z, n]``.

An LSTM step records two Functions: the input product ``x Wx + b`` (``linear``) and one
fused op for the rest (the hidden product and the nonlinearity) instead of ~15 small ones,
which is what makes a step cheap in Python. The fused op's backward computes the
first-order gradient directly on arrays; when a graph of the backward is requested
(``create_graph=True``) it writes the same formulas with dezero functions instead, so
derivatives of any order work. The tests keep the plain composite as its oracle.
"""

from __future__ import annotations

from dezero import cuda
from dezero.core import Function, Variable, as_variable
from dezero.functions.activation import sigmoid
from dezero.functions.array import concat, split
from dezero.functions.linalg import linear, matmul
from dezero.functions.math import astype, tanh

__all__ = ["gru_cell", "lstm_cell", "rnn_cell"]


def _hidden_size(name, W, n_gates):
    if W.ndim != 2 or W.shape[1] % n_gates:
        raise ValueError(
            f"{name}: the weights must be 2-D with {n_gates} x hidden_size columns, "
            f"got shape {W.shape}"
        )
    return W.shape[1] // n_gates


def _check_state(name, v, what, N, H):
    if v is not None and v.shape != (N, H):
        raise ValueError(
            f"{name}: {what} has shape {v.shape}, expected {(N, H)} "
            f"(batch size {N}, hidden size {H})"
        )


def _as_input(x):
    """A Variable stays one; an array stays an array (a data batch: no gradient computed)."""
    if isinstance(x, (Variable, *cuda.array_types)):
        return x
    return as_variable(x)


def _check_x(name, x, Wx):
    if x.ndim != 2:
        raise ValueError(f"{name}: x must be 2-D (batch, features), got shape {x.shape}")
    if x.shape[1] != Wx.shape[0]:
        raise ValueError(
            f"{name}: x has {x.shape[1]} features but Wx expects {Wx.shape[0]} "
            f"(x shape {x.shape}, Wx shape {Wx.shape})"
        )


# =============================================================================
# simple RNN
# =============================================================================
def rnn_cell(x, h, Wx, Wh, b=None):
    """One step of an Elman RNN: ``h' = tanh(x @ Wx + h @ Wh + b)``.

    Parameters
    ----------
    x : Variable or ndarray, shape (N, I)
    h : Variable, ndarray or None, shape (N, H)
        The previous hidden state; None means zeros (the first step).
    Wx : shape (I, H)
    Wh : shape (H, H)
    b : shape (H,) or None

    Returns
    -------
    Variable of shape (N, H), the new hidden state.

    Notes
    -----
    ``d h'/d a = 1 - h'^2`` with ``a`` the pre-activation; everything else is the chain
    rule through two matrix products, so any order of derivative works.

    Examples
    --------
    >>> import numpy as np
    >>> rnn_cell(np.ones((2, 3)), None, np.zeros((3, 4)), np.zeros((4, 4))).shape
    (2, 4)
    """
    x, Wx, Wh = _as_input(x), as_variable(Wx), as_variable(Wh)
    H = _hidden_size("rnn_cell", Wh, 1)
    _check_x("rnn_cell", x, Wx)
    _check_state("rnn_cell", h, "h", x.shape[0], H)
    a = linear(x, Wx, b)
    if h is not None:
        a = a + matmul(h, Wh)
    return tanh(a)


# =============================================================================
# LSTM
# =============================================================================
def _sigmoid_tanh(z, H):
    """Activate the gate pre-activations ``z`` (N, 4H): sigmoid on i, f, o and tanh on g."""
    xp = cuda.get_array_module(z)
    a = xp.tanh(z * 0.5)  # sigmoid(z) = 0.5 tanh(z / 2) + 0.5: stable for any z
    a *= 0.5
    a += 0.5
    a[:, 2 * H : 3 * H] = xp.tanh(z[:, 2 * H : 3 * H])
    return a


class LSTMStep(Function):
    """``(c_prev, zx[, h, Wh]) -> (c, h')``: an LSTM step after the input product.

    ``z = zx + h Wh`` (the one hidden product for all four gates), then
    ``i, f, o = sigmoid(z_i, z_f, z_o)``, ``g = tanh(z_g)``, ``c = f c_prev + i g``,
    ``h' = o tanh(c)``. Without ``h`` and ``Wh`` (a first step) ``z = zx``.

    One Function for the whole step keeps the per-step Python cost low. The first-order
    backward works on arrays; with ``create_graph`` it is written with dezero functions.
    """

    def forward(self, c_prev, zx, h=None, Wh=None):
        H = c_prev.shape[1]
        z = zx if h is None else zx + h @ Wh
        a = _sigmoid_tanh(z, H)
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        c = f * c_prev
        c += i * g
        tc = cuda.get_array_module(z).tanh(c)
        self.a, self.tc = a, tc  # the activations that the first-order backward needs
        return c, o * tc

    def backward_array(self, xs, ys, gys):
        c_prev = xs[0]
        gc, gh = gys
        xp = cuda.get_array_module(c_prev)
        H = c_prev.shape[1]
        a, tc = self.a, self.tc
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        gc = xp.zeros_like(c_prev) if gc is None else gc.copy()
        gz = xp.empty_like(a)
        if gh is not None:
            gz[:, 3 * H :] = gh * tc * o * (1 - o)
            gc += gh * o * (1 - tc * tc)
        else:
            gz[:, 3 * H :] = 0
        gz[:, :H] = gc * g * i * (1 - i)
        gz[:, H : 2 * H] = gc * c_prev * f * (1 - f)
        gz[:, 2 * H : 3 * H] = gc * i * (1 - g * g)
        grads = [gc * f, gz]
        if len(xs) == 4:
            h, Wh = xs[2], xs[3]
            grads += [gz @ Wh.T, h.T @ gz]
        # mixed precision inputs (float64 data, float32 weights): each gradient in its
        # input's dtype, as the engine requires
        return tuple(g.astype(x.dtype, copy=False) for g, x in zip(grads, xs))

    # both forms: the array form reuses forward's activations, in place; the Variable recomputes
    def backward(self, gc, gh):
        """The gradient written with dezero functions (a graph for higher orders)."""
        c_prev, z = self.inputs[:2]
        if len(self.inputs) == 4:
            h, Wh = self.inputs[2:]
            z = z + matmul(h, Wh)
        zi, zf, zg, zo = split(z, 4, axis=1)
        i, f, g, o = sigmoid(zi), sigmoid(zf), tanh(zg), sigmoid(zo)
        tc = tanh(f * c_prev + i * g)
        gc_t = gc
        if gh is not None:
            term = gh * o * (1 - tc * tc)
            gc_t = term if gc_t is None else gc_t + term
        zero = None
        if gc_t is None or gh is None:
            zero = Variable(cuda.get_array_module(z).zeros_like(c_prev.data))
        if gc_t is None:
            gc_t = zero
        go = zero if gh is None else gh * tc * o * (1 - o)
        gi = gc_t * g * i * (1 - i)
        gf = gc_t * c_prev * f * (1 - f)
        gg = gc_t * i * (1 - g * g)
        gz = concat([gi, gf, gg, go], axis=1)
        grads = [gc_t * f, gz]
        if len(self.inputs) == 4:
            grads += [matmul(gz, Wh.T), matmul(h.T, gz)]
        return tuple(g if g.dtype == x.dtype else astype(g, x.dtype)
                     for g, x in zip(grads, self.inputs))


def lstm_activation(c_prev, z, h=None, Wh=None):
    """The fused LSTM step after the input product; see :class:`LSTMStep`.

    ``z`` holds the gate pre-activations ``[i, f, g, o]`` (N, 4H); with ``h`` and ``Wh``
    the hidden product ``h Wh`` is added to them inside. Returns ``(c, h')``.
    """
    c_prev, z = as_variable(c_prev), as_variable(z)
    N, H = c_prev.shape
    if z.shape != (N, 4 * H):
        raise ValueError(
            f"lstm: gate pre-activations have shape {z.shape}, expected {(N, 4 * H)} "
            f"for a cell state of shape {c_prev.shape}"
        )
    if h is None:
        return LSTMStep()(c_prev, z)
    return LSTMStep()(c_prev, z, h, Wh)


def lstm_cell(x, h, c, Wx, Wh, b=None):
    """One LSTM step with fused gates. Returns ``(h', c')``.

    Parameters
    ----------
    x : Variable or ndarray, shape (N, I)
    h, c : Variable, ndarray or None, shape (N, H)
        Previous hidden and cell states; None means zeros (the first step).
    Wx : shape (I, 4H), the input weights of the four gates side by side ``[i, f, g, o]``
    Wh : shape (H, 4H), the hidden weights, same layout
    b : shape (4H,) or None

    Returns
    -------
    (h', c') : Variables of shape (N, H)

    Notes
    -----
    ``z = x Wx + h Wh + b`` (two matrix products for all gates), split into ``z_i, z_f,
    z_g, z_o``; ``i, f, o = sigmoid(.)``, ``g = tanh(z_g)``; ``c' = f c + i g``;
    ``h' = o tanh(c')``. The derivatives: ``dc'/dc = f``,
    ``dh'/dc' = o (1 - tanh(c')^2)``, ``d sigmoid = s (1 - s)``, ``d tanh = 1 - t^2``.

    Examples
    --------
    >>> import numpy as np
    >>> h, c = lstm_cell(np.ones((2, 3)), None, None, np.zeros((3, 8)), np.zeros((2, 8)))
    >>> h.shape, float(c.data[0, 0])
    ((2, 2), 0.0)
    """
    x, Wx, Wh = _as_input(x), as_variable(Wx), as_variable(Wh)
    H = _hidden_size("lstm_cell", Wh, 4)
    _check_x("lstm_cell", x, Wx)
    N = x.shape[0]
    _check_state("lstm_cell", h, "h", N, H)
    _check_state("lstm_cell", c, "c", N, H)
    zx = linear(x, Wx, b)
    if c is None:
        c = cuda.get_array_module(zx).zeros((N, H), dtype=zx.dtype)
    if h is None:
        c_new, h_new = LSTMStep()(c, zx)
    else:
        c_new, h_new = LSTMStep()(c, zx, h, Wh)
    return h_new, c_new


# =============================================================================
# GRU
# =============================================================================
def gru_cell(x, h, Wx, Wh, bx=None, bh=None):
    """One GRU step (the "reset after" form of cuDNN and PyTorch). Returns ``h'``.

    Parameters
    ----------
    x : Variable or ndarray, shape (N, I)
    h : Variable, ndarray or None, shape (N, H); None means zeros (the first step)
    Wx : shape (I, 3H), input weights of the gates ``[r, z, n]``
    Wh : shape (H, 3H), hidden weights, same layout
    bx, bh : shape (3H,) or None, input and hidden biases

    Returns
    -------
    Variable of shape (N, H)

    Notes
    -----
    ``gx = x Wx + bx``, ``gh = h Wh + bh`` (one product each for the three gates);
    ``r = sigmoid(gx_r + gh_r)``, ``z = sigmoid(gx_z + gh_z)``,
    ``n = tanh(gx_n + r * gh_n)``, ``h' = (1 - z) n + z h``. Built from dezero
    functions, so derivatives of any order work.

    Examples
    --------
    >>> import numpy as np
    >>> gru_cell(np.ones((2, 3)), None, np.zeros((3, 6)), np.zeros((2, 6))).shape
    (2, 2)
    """
    x, Wx, Wh = _as_input(x), as_variable(Wx), as_variable(Wh)
    H = _hidden_size("gru_cell", Wh, 3)
    _check_x("gru_cell", x, Wx)
    N = x.shape[0]
    _check_state("gru_cell", h, "h", N, H)
    gx = linear(x, Wx, bx)
    if h is None:
        h = Variable(cuda.get_array_module(gx).zeros((N, H), dtype=gx.dtype))
        gh = None if bh is None else as_variable(bh)
    else:
        gh = linear(h, Wh, bh)
    gx_rz, gx_n = split(gx, [2 * H], axis=1)
    if gh is None:
        rz = sigmoid(gx_rz)
        r, zg = split(rz, 2, axis=1)
        n = tanh(gx_n)
    else:
        if gh.ndim == 1:  # first step with a hidden bias only: gh = bh for every sample
            gh_rz, gh_n = split(gh, [2 * H], axis=0)
        else:
            gh_rz, gh_n = split(gh, [2 * H], axis=1)
        rz = sigmoid(gx_rz + gh_rz)
        r, zg = split(rz, 2, axis=1)
        n = tanh(gx_n + r * gh_n)
    return n + zg * (h - n)
