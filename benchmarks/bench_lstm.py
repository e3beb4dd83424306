"""LSTM training steps: dezero's LSTM vs torch.nn.LSTMCell, truncated BPTT, CPU.

The book's sin-curve model (step 60): LSTM(100) -> Linear(1), batch 30 (parallel streams),
truncated backpropagation through time every 30 steps, Adam. One "step" is one time step:
the LSTM cell and the output layer forward on a (30, 1) batch plus the loss; every 30
steps come backward, unchain (detach) and the optimizer update. Reported: seconds per
1000 steps, and forward-only (no_grad) for comparison. Both frameworks start from the same
weights and data; the first window's loss is checked to agree. Each framework runs in its
own process (benchmarks/common.py); ``--ab OTHER_TREE`` compares two dezero trees.

    python benchmarks/bench_lstm.py [--quick] [--profile] [--threads N] [--ab OTHER_TREE]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_lstm.py) or imported by run.py
    from common import Table, Workload, bench_main, compare, profile_workload
except ImportError:  # imported as benchmarks.bench_lstm
    from benchmarks.common import Table, Workload, bench_main, compare, profile_workload

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero.models import Model
from dezero.optimizers import Adam

HIDDEN = 100
BATCH = 30
BPTT = 30


def _data(batch, bptt):
    """``bptt + 1`` steps of ``batch`` parallel sin streams, shaped (T, batch, 1) float32."""
    t = np.linspace(0, 2 * np.pi, 1000)
    starts = np.arange(batch) * (1000 // batch)
    idx = (starts[None, :] + np.arange(bptt + 1)[:, None]) % 1000
    return np.sin(t[idx]).astype(np.float32)[:, :, None]


# --- dezero ------------------------------------------------------------------------------
class SinLSTM(Model):
    def __init__(self, hidden):
        super().__init__()
        self.rnn = L.LSTM(hidden, in_size=1)
        self.fc = L.Linear(1, in_size=hidden)

    def reset_state(self):
        self.rnn.reset_state()

    def forward(self, x):
        return self.fc(self.rnn(x))


def make_dezero(hidden, batch, bptt):
    np.random.seed(0)  # noqa: NPY002  (dezero draws weights from the global generator)
    model = SinLSTM(hidden)
    opt = Adam().setup(model)
    xs = _data(batch, bptt)

    def window():
        """One truncated-BPTT window: ``bptt`` steps forward, backward, unchain, update."""
        loss = 0
        for k in range(bptt):
            loss = loss + F.mean_squared_error(model(xs[k]), xs[k + 1])
        model.cleargrads()
        loss.backward()
        loss.unchain_backward()
        opt.update()
        return loss

    def forward_only():
        with dezero.no_grad():
            for k in range(bptt):
                F.mean_squared_error(model(xs[k]), xs[k + 1])

    return model, window, forward_only


# --- torch ---------------------------------------------------------------------------------
def make_torch(torch, model, batch, bptt):
    """The same network in torch, with ``model``'s initial weights (gate order i, f, g, o)."""
    hidden = model.rnn.hidden_size
    cell = torch.nn.LSTMCell(1, hidden)
    fc = torch.nn.Linear(hidden, 1)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(model.rnn.Wx.data.T.copy()))
        cell.weight_hh.copy_(torch.from_numpy(model.rnn.Wh.data.T.copy()))
        cell.bias_ih.copy_(torch.from_numpy(model.rnn.b.data))
        cell.bias_hh.zero_()
        fc.weight.copy_(torch.from_numpy(model.fc.W.data.T.copy()))
        fc.bias.copy_(torch.from_numpy(model.fc.b.data))
    params = [*cell.parameters(), *fc.parameters()]
    opt = torch.optim.Adam(params, lr=0.001)
    xs = [torch.from_numpy(a) for a in _data(batch, bptt)]
    state = {"hc": None}
    mse = torch.nn.functional.mse_loss

    def window():
        loss = 0
        hc = state["hc"]
        for k in range(bptt):
            hc = cell(xs[k]) if hc is None else cell(xs[k], hc)
            loss = loss + mse(fc(hc[0]), xs[k + 1])
        opt.zero_grad()
        loss.backward()
        state["hc"] = (hc[0].detach(), hc[1].detach())
        opt.step()
        return loss

    def forward_only():
        with torch.no_grad():
            hc = state["hc"]
            for k in range(bptt):
                hc = cell(xs[k]) if hc is None else cell(xs[k], hc)
                mse(fc(hc[0]), xs[k + 1])

    return window, forward_only


# --- the benchmark ---------------------------------------------------------------------------
TRAIN = "train (forward+backward+update)"
FORWARD = "forward only (no_grad)"


def _sizes(quick):
    return (20, 4, 5) if quick else (HIDDEN, BATCH, BPTT)


def workload(framework: str, quick: bool = False) -> Workload:
    hidden, batch, bptt = _sizes(quick)
    model, window, forward = make_dezero(hidden, batch, bptt)  # the shared initial weights
    if framework == "torch":
        import torch

        window, forward = make_torch(torch, model, batch, bptt)
        return Workload({TRAIN: window, FORWARD: forward},
                        lambda: [window().detach().numpy()])
    return Workload({TRAIN: window, FORWARD: forward}, lambda: [window().data])


def run(quick: bool = False, profile: bool = False) -> list[Table]:
    hidden, batch, bptt = _sizes(quick)
    res = compare("bench_lstm", quick=quick, rounds=3 if quick else 20,
                  min_round_s=0.01 if quick else 0.2, rtol=1e-4, atol=1e-6)
    table = res.table(f"LSTM({hidden}) -> Linear(1), batch {batch}, BPTT {bptt}, Adam: "
                      f"seconds per 1000 steps", unit="s/1000 steps", scale=1000 / bptt)
    if profile:
        profile_workload(workload, TRAIN, calls=3 if quick else 30, quick=quick,
                         title=f"dezero, one BPTT window of {bptt} steps")
    return [table]


if __name__ == "__main__":
    bench_main(run, __doc__)
