"""MLP training step: 784-1000-1000-10, ReLU, softmax cross entropy, batch 100, float32.

The network of the book's MNIST chapter at full width, with hand-made parameters (W (in, out),
b (out,)) and ``F.linear``; PyTorch CPU runs the same step with nn.Linear's layout
(``torch.nn.functional.linear``, ``cross_entropy``). Both start from the same weights and the
script first checks that they compute the same loss and gradients. Timed, per iteration:
forward (graph recorded), forward+backward (the training step without the update), and
forward under no_grad (inference). The dense GEMMs dominate, so what separates the two is
everything around them: dtype discipline (no float64 anywhere), copies, and per-op overhead.

    python benchmarks/bench_mlp.py [--quick] [--profile] [--threads N]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_mlp.py) or imported by run.py
    from common import Table, bench_main, profile_call, timeit, torch_or_none
except ImportError:  # imported as benchmarks.bench_mlp
    from benchmarks.common import Table, bench_main, profile_call, timeit, torch_or_none

import dezero
import dezero.functions as F

SIZES = (784, 1000, 1000, 10)
BATCH = 100
QUICK_SIZES = (64, 32, 32, 10)
QUICK_BATCH = 16


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
def make_dezero(sizes, batch):
    x, t, arrays = _data(sizes, batch)
    params = [dezero.Variable(a.copy()) for a in arrays]
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

    def result():
        loss = forward_backward()
        for p in params:
            assert p.grad.dtype == np.float32, f"float64 crept into a gradient: {p.grad.dtype}"
        assert loss.dtype == np.float32, f"float64 crept into the loss: {loss.dtype}"
        return float(loss.data), [p.grad.data for p in params]

    return {"forward": forward, "forward+backward": forward_backward,
            "forward, no_grad": forward_no_grad}, result


# --- torch ---------------------------------------------------------------------------------
def make_torch(torch, sizes, batch):
    import torch.nn.functional as TF

    x, t, arrays = _data(sizes, batch)
    x = torch.from_numpy(x)
    t = torch.from_numpy(t)
    params = []
    for i, a in enumerate(arrays):
        a = a.T.copy() if i % 2 == 0 else a  # nn.Linear keeps W as (out, in)
        params.append(torch.tensor(a, requires_grad=True))
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

    def result():
        loss = forward_backward()
        grads = [p.grad.numpy() for p in params]
        grads = [g.T if i % 2 == 0 else g for i, g in enumerate(grads)]
        return float(loss.detach()), grads

    return {"forward": forward, "forward+backward": forward_backward,
            "forward, no_grad": forward_no_grad}, result


# --- the floor: the step's matrix products alone -----------------------------------------------
def make_gemms(torch, sizes, batch):
    """The 8 GEMMs of one training step (3 forward; backward: gW for every layer, gx for all
    but the first), as plain ``np.matmul`` and ``torch.matmul`` calls on the same arrays.

    What the frameworks cost beyond this is their own overhead; the rest is the BLAS."""
    rng = np.random.default_rng(1)
    acts = [rng.standard_normal((batch, n)).astype(np.float32) for n in sizes]
    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    pairs = [(acts[i], Ws[i]) for i in range(len(Ws))]  # forward: h W
    pairs += [(acts[i + 1], Ws[i].T) for i in range(1, len(Ws))]  # gx = gy W^T
    pairs += [(acts[i].T, acts[i + 1]) for i in range(len(Ws))]  # gW = x^T gy

    def numpy_gemms():
        for a, b in pairs:
            np.matmul(a, b)

    if torch is None:
        return numpy_gemms, None
    tpairs = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in pairs]  # views share strides

    def torch_gemms():
        for a, b in tpairs:
            torch.matmul(a, b)

    return numpy_gemms, torch_gemms


# --- the benchmark ---------------------------------------------------------------------------
def run(quick: bool = False, profile: bool = False) -> list[Table]:
    sizes, batch = (QUICK_SIZES, QUICK_BATCH) if quick else (SIZES, BATCH)
    repeat = 3 if quick else 15
    torch = torch_or_none()

    dz, dz_result = make_dezero(sizes, batch)
    th, th_result = make_torch(torch, sizes, batch) if torch is not None else (None, None)
    loss, grads = dz_result()
    if not np.isfinite(loss):
        raise AssertionError(f"dezero's loss is not finite: {loss}")
    if th is not None:  # same work: same loss and gradients
        loss_th, grads_th = th_result()
        np.testing.assert_allclose(loss, loss_th, rtol=1e-4)
        for g, g_th in zip(grads, grads_th):
            np.testing.assert_allclose(g, g_th, rtol=1e-3, atol=1e-5)

    arch = "-".join(map(str, sizes))
    table = Table(f"MLP {arch}, ReLU, softmax cross entropy, batch {batch}, float32",
                  unit="ms/iter")
    for case, fn in dz.items():
        t_dz = timeit(fn, repeat=repeat, number=None, warmup=2, min_round_s=0.05)
        t_th = (timeit(th[case], repeat=repeat, number=None, warmup=2, min_round_s=0.05)
                if th else None)
        table.add(case, t_dz, t_th, scale=1e3)

    np_gemms, th_gemms = make_gemms(torch, sizes, batch)
    t_dz = timeit(np_gemms, repeat=repeat, number=None, warmup=2, min_round_s=0.05)
    t_th = (timeit(th_gemms, repeat=repeat, number=None, warmup=2, min_round_s=0.05)
            if th_gemms else None)
    table.add("its 8 GEMMs alone (np vs torch)", t_dz, t_th, scale=1e3)

    if profile:
        profile_call(dz["forward+backward"], calls=3 if quick else 20,
                     title=f"dezero MLP {arch} forward+backward")
    return [table]


if __name__ == "__main__":
    bench_main(run, __doc__)
