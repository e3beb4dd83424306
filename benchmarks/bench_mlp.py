"""MLP training step: 784-1000-1000-10, ReLU, softmax cross entropy, batch 100, float32.

The network of the book's MNIST chapter at full width, with hand-made parameters (W (in, out),
b (out,)) and ``F.linear``; PyTorch CPU runs the same step with nn.Linear's layout
(``torch.nn.functional.linear``, ``cross_entropy``). Both start from the same weights; their
loss and gradients are checked to agree first. Timed, per iteration: the training step
(forward, backward, ``optimizers.SGD`` / ``torch.optim.SGD`` update), forward (graph
recorded), forward+backward, and forward under no_grad (inference); and the step's 8 GEMMs
alone in NumPy and in PyTorch (the floor). The dense GEMMs dominate, so what separates the
two is everything around them: dtype discipline (no float64 anywhere), copies, and per-op
overhead. Each framework runs in its own process (benchmarks/common.py).

    python benchmarks/bench_mlp.py [--quick] [--profile] [--threads N] [--ab OTHER_TREE]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_mlp.py) or imported by run.py
    from common import Table, Workload, bench_main, compare, profile_workload
except ImportError:  # imported as benchmarks.bench_mlp
    from benchmarks.common import Table, Workload, bench_main, compare, profile_workload

SIZES = (784, 1000, 1000, 10)
BATCH = 100
QUICK_SIZES = (64, 32, 32, 10)
QUICK_BATCH = 16
LR = 0.01


def _data(sizes, batch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    t = rng.integers(0, sizes[-1], size=batch)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = (rng.standard_normal((n_in, n_out)) * np.sqrt(1.0 / n_in)).astype(np.float32)
        b = np.zeros(n_out, dtype=np.float32)
        params += [W, b]
    return x, t, params


# --- dezero ------------------------------------------------------------------------------
def _dezero(sizes, batch):
    import dezero
    import dezero.functions as F
    from dezero import optimizers

    x, t, arrays = _data(sizes, batch)
    params = [dezero.Parameter(a.copy()) for a in arrays]
    opt = optimizers.SGD(lr=LR).setup(params)
    n_layers = len(params) // 2

    def forward():
        h = x
        for i in range(n_layers):
            h = F.linear(h, params[2 * i], params[2 * i + 1])
            if i < n_layers - 1:
                h = F.relu(h)
        return F.softmax_cross_entropy(h, t)

    def forward_backward():
        for p in params:
            p.cleargrad()
        loss = forward()
        loss.backward()
        return loss

    def forward_no_grad():
        with dezero.no_grad():
            return forward()

    def train_step():
        forward_backward()
        opt.update()

    def check():
        loss = forward_backward()
        for p in params:
            assert p.grad.dtype == np.float32, f"float64 crept into a gradient: {p.grad.dtype}"
        assert loss.dtype == np.float32, f"float64 crept into the loss: {loss.dtype}"
        return [loss.data, *(p.grad.data for p in params)]

    cases = {"train step (forward, backward, SGD update)": train_step, "forward": forward,
             "forward+backward": forward_backward, "forward, no_grad": forward_no_grad}
    return cases, check


# --- torch ---------------------------------------------------------------------------------
def _torch(sizes, batch):
    import torch
    import torch.nn.functional as TF

    x, t, arrays = _data(sizes, batch)
    x = torch.from_numpy(x)
    t = torch.from_numpy(t)
    params = []
    for i, a in enumerate(arrays):
        a = a.T.copy() if i % 2 == 0 else a  # nn.Linear keeps W as (out, in)
        params.append(torch.tensor(a, requires_grad=True))
    opt = torch.optim.SGD(params, lr=LR)
    n_layers = len(params) // 2

    def forward():
        h = x
        for i in range(n_layers):
            h = TF.linear(h, params[2 * i], params[2 * i + 1])
            if i < n_layers - 1:
                h = torch.relu(h)
        return TF.cross_entropy(h, t)

    def forward_backward():
        for p in params:
            p.grad = None
        loss = forward()
        loss.backward()
        return loss

    def forward_no_grad():
        with torch.no_grad():
            return forward()

    def train_step():
        forward_backward()
        opt.step()

    def check():
        loss = forward_backward()
        grads = [p.grad.numpy() for p in params]
        grads = [g.T if i % 2 == 0 else g for i, g in enumerate(grads)]
        return [loss.detach().numpy(), *grads]

    cases = {"train step (forward, backward, SGD update)": train_step, "forward": forward,
             "forward+backward": forward_backward, "forward, no_grad": forward_no_grad}
    return cases, check


# --- the floor: the step's matrix products alone -----------------------------------------------
def _gemm_pairs(sizes, batch):
    """The 8 GEMMs of one training step (3 forward; backward: gW for every layer, gx for all
    but the first). What a framework costs beyond them is its own overhead."""
    rng = np.random.default_rng(1)
    acts = [rng.standard_normal((batch, n)).astype(np.float32) for n in sizes]
    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    pairs = [(acts[i], Ws[i]) for i in range(len(Ws))]  # forward: h W
    pairs += [(acts[i + 1], Ws[i].T) for i in range(1, len(Ws))]  # gx = gy W^T
    pairs += [(acts[i].T, acts[i + 1]) for i in range(len(Ws))]  # gW = x^T gy
    return pairs


def workload(framework: str, quick: bool = False) -> Workload:
    sizes, batch = (QUICK_SIZES, QUICK_BATCH) if quick else (SIZES, BATCH)
    pairs = _gemm_pairs(sizes, batch)
    if framework == "torch":
        import torch

        cases, check = _torch(sizes, batch)
        tpairs = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in pairs]

        def gemms():
            for a, b in tpairs:
                torch.matmul(a, b)
    else:
        cases, check = _dezero(sizes, batch)

        def gemms():
            for a, b in pairs:
                np.matmul(a, b)

    cases["its 8 GEMMs alone (NumPy | torch)"] = gemms
    return Workload(cases, check)


# --- the benchmark ---------------------------------------------------------------------------
def run(quick: bool = False, profile: bool = False) -> list[Table]:
    sizes, batch = (QUICK_SIZES, QUICK_BATCH) if quick else (SIZES, BATCH)
    res = compare("bench_mlp", quick=quick, rounds=3 if quick else 15, min_round_s=0.1,
                  rtol=1e-3, atol=1e-5)
    arch = "-".join(map(str, sizes))
    table = res.table(f"MLP {arch}, ReLU, softmax cross entropy, batch {batch}, float32",
                      unit="ms/iter", scale=1e3)
    if profile:
        profile_workload(workload, "forward+backward", calls=3 if quick else 20, quick=quick,
                         title=f"dezero MLP {arch} forward+backward")
    return [table]


if __name__ == "__main__":
    bench_main(run, __doc__)
