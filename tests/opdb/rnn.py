"""Op table entries: dezero.functions.rnn (recurrent cells, one time step).

The NumPy references are the textbook formulas written gate by gate with separate weight
slices, so they also check the fused gate layout.
"""

import numpy as np

import dezero.functions as F
from tests.opdb.base import OpInfo, Sample, u


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def rnn_ref(x, h, Wx, Wh, b=None):
    a = x @ Wx + (0.0 if b is None else b)
    if h is not None:
        a = a + h @ Wh
    return np.tanh(a)


def lstm_ref(x, h, c, Wx, Wh, b=None):
    H = Wh.shape[0]
    h = np.zeros((x.shape[0], H)) if h is None else h
    c = np.zeros((x.shape[0], H)) if c is None else c
    b = np.zeros(4 * H) if b is None else b

    def gate(k):
        s = slice(k * H, (k + 1) * H)
        return x @ Wx[:, s] + h @ Wh[:, s] + b[s]

    i, f, g, o = _sig(gate(0)), _sig(gate(1)), np.tanh(gate(2)), _sig(gate(3))
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def gru_ref(x, h, Wx, Wh, bx=None, bh=None):
    H = Wh.shape[0]
    h = np.zeros((x.shape[0], H)) if h is None else h
    bx = np.zeros(3 * H) if bx is None else bx
    bh = np.zeros(3 * H) if bh is None else bh

    def part(W, v, bias, k):
        s = slice(k * H, (k + 1) * H)
        return v @ W[:, s] + bias[s]

    r = _sig(part(Wx, x, bx, 0) + part(Wh, h, bh, 0))
    z = _sig(part(Wx, x, bx, 1) + part(Wh, h, bh, 1))
    n = np.tanh(part(Wx, x, bx, 2) + r * part(Wh, h, bh, 2))
    return (1 - z) * n + z * h


N, I, H = 2, 3, 2

OPS = [
    OpInfo("rnn_cell", F.rnn_cell, rnn_ref, lambda rng: [
        Sample((u(rng, N, I), u(rng, N, H), u(rng, I, H), u(rng, H, H), u(rng, H))),
        Sample((u(rng, N, I), None, u(rng, I, H), u(rng, H, H), u(rng, H)), name="first-step",
               diff=(0, 2, 4)),
        Sample((u(rng, N, 1), u(rng, N, 4), u(rng, 1, 4), u(rng, 4, 4)), name="in1-nobias"),
    ]),
    OpInfo("lstm_cell", F.lstm_cell, lstm_ref, lambda rng: [
        Sample((u(rng, N, I), u(rng, N, H), u(rng, N, H), u(rng, I, 4 * H), u(rng, H, 4 * H),
                u(rng, 4 * H))),
        Sample((u(rng, N, I), None, None, u(rng, I, 4 * H), u(rng, H, 4 * H), u(rng, 4 * H)),
               name="first-step", diff=(0, 3, 5)),
        Sample((u(rng, 3, 1), u(rng, 3, 3), u(rng, 3, 3), u(rng, 1, 12), u(rng, 3, 12)),
               name="in1-nobias"),
        Sample((u(rng, N, I, low=-3, high=3), u(rng, N, H), u(rng, N, H, low=-2, high=2),
                u(rng, I, 4 * H, low=-2, high=2), u(rng, H, 4 * H), u(rng, 4 * H)),
               name="saturating"),
    ]),
    OpInfo("gru_cell", F.gru_cell, gru_ref, lambda rng: [
        Sample((u(rng, N, I), u(rng, N, H), u(rng, I, 3 * H), u(rng, H, 3 * H), u(rng, 3 * H),
                u(rng, 3 * H))),
        Sample((u(rng, N, I), None, u(rng, I, 3 * H), u(rng, H, 3 * H), u(rng, 3 * H),
                u(rng, 3 * H)), name="first-step", diff=(0, 2, 4, 5)),
        Sample((u(rng, 3, 1), u(rng, 3, 4), u(rng, 1, 12), u(rng, 4, 12)), name="in1-nobias"),
    ]),
]
