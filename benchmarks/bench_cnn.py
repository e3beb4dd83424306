"""CNN training on the CPU: the 2-conv MNIST network, dezero vs PyTorch, and conv2d's GFLOP/s.

The network of examples/mnist_cnn.py on a batch of 100 float32 28x28 images:

    conv 3x3 (1 -> 16, pad 1) - ReLU - max pool 2 - conv 3x3 (16 -> 32, pad 1) - ReLU -
    max pool 2 - Linear (1568 -> 10) - softmax cross entropy

Both frameworks start from the same weights; the script first checks that they compute the
same loss and gradients. Timed: 100 training iterations (forward, backward, SGD update),
and per iteration forward (graph recorded), forward+backward and forward under no_grad.
Then conv2d's forward alone on the second layer's input (100x16x14x14 -> 100x32x14x14,
180.6 MFLOP), as GFLOP/s, next to the rate of the float32 GEMM of the same product
((32 x 144) @ (144 x 19600)) in NumPy and PyTorch: what an im2col convolution can reach.

    python benchmarks/bench_cnn.py [--quick] [--profile] [--threads N]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_cnn.py) or imported by run.py
    from common import Table, bench_main, profile_call, timeit, torch_or_none
except ImportError:  # imported as benchmarks.bench_cnn
    from benchmarks.common import Table, bench_main, profile_call, timeit, torch_or_none

import dezero
import dezero.functions as F

BATCH, QUICK_BATCH = 100, 8
CHANNELS = (1, 16, 32)
LR = 0.01


def _data(batch):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, size=batch)
    c0, c1, c2 = CHANNELS
    arrays = [
        (rng.standard_normal((c1, c0, 3, 3)) * np.sqrt(1 / (c0 * 9))).astype(np.float32),
        np.zeros(c1, np.float32),
        (rng.standard_normal((c2, c1, 3, 3)) * np.sqrt(1 / (c1 * 9))).astype(np.float32),
        np.zeros(c2, np.float32),
        (rng.standard_normal((c2 * 49, 10)) * np.sqrt(1 / (c2 * 49))).astype(np.float32),
        np.zeros(10, np.float32),
    ]
    return x, t, arrays


# --- dezero ------------------------------------------------------------------------------
def make_dezero(batch):
    x, t, arrays = _data(batch)
    params = [dezero.Parameter(a.copy()) for a in arrays]
    W1, b1, W2, b2, W3, b3 = params

    def forward():
        h = F.pooling(F.relu(F.conv2d(x, W1, b1, 1, 1)), 2, 2)
        h = F.pooling(F.relu(F.conv2d(h, W2, b2, 1, 1)), 2, 2)
        y = F.linear(F.reshape(h, (len(x), -1)), W3, b3)
        return F.softmax_cross_entropy(y, t)

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
        for p in params:  # plain SGD, as optimizers.SGD does it
            p.data -= LR * p.grad.data

    def result():
        loss = forward_backward()
        assert loss.dtype == np.float32, f"float64 crept into the loss: {loss.dtype}"
        for p in params:
            assert p.grad.dtype == np.float32, f"float64 crept into a gradient: {p.grad.dtype}"
        return float(loss.data), [p.grad.data.copy() for p in params]

    cases = {"forward": forward, "forward+backward": forward_backward,
             "forward, no_grad": forward_no_grad}
    return cases, train_step, result


# --- torch ---------------------------------------------------------------------------------
def make_torch(torch, batch):
    import torch.nn.functional as TF

    x, t, arrays = _data(batch)
    x, t = torch.from_numpy(x), torch.from_numpy(t)
    arrays[4] = arrays[4].T.copy()  # nn.Linear keeps W as (out, in)
    params = [torch.tensor(a, requires_grad=True) for a in arrays]
    W1, b1, W2, b2, W3, b3 = params

    def forward():
        h = TF.max_pool2d(torch.relu(TF.conv2d(x, W1, b1, 1, 1)), 2, 2)
        h = TF.max_pool2d(torch.relu(TF.conv2d(h, W2, b2, 1, 1)), 2, 2)
        return TF.cross_entropy(TF.linear(h.reshape(len(x), -1), W3, b3), t)

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
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad

    def result():
        loss = forward_backward()
        grads = [p.grad.numpy().copy() for p in params]
        grads[4] = grads[4].T
        return float(loss.detach()), grads

    cases = {"forward": forward, "forward+backward": forward_backward,
             "forward, no_grad": forward_no_grad}
    return cases, train_step, result


# --- conv2d forward of the second layer, and its GEMM ----------------------------------------
def make_conv2(torch, batch):
    rng = np.random.default_rng(1)
    c1, c2 = CHANNELS[1:]
    x = rng.standard_normal((batch, c1, 14, 14)).astype(np.float32)
    W = rng.standard_normal((c2, c1, 3, 3)).astype(np.float32)
    b = np.zeros(c2, np.float32)
    flops = 2.0 * batch * 14 * 14 * c2 * c1 * 9
    A = rng.standard_normal((c2, c1 * 9)).astype(np.float32)  # W as a matrix
    B = rng.standard_normal((c1 * 9, batch * 14 * 14)).astype(np.float32)  # im2col(x)

    def dz_conv():
        with dezero.no_grad():
            return F.conv2d(x, W, b, 1, 1)

    def np_gemm():
        return A @ B

    th_conv = th_gemm = None
    if torch is not None:
        import torch.nn.functional as TF

        tx, tW, tb = torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b)
        tA, tB = torch.from_numpy(A), torch.from_numpy(B)

        def th_conv():
            with torch.no_grad():
                return TF.conv2d(tx, tW, tb, 1, 1)

        def th_gemm():
            return tA @ tB

        np.testing.assert_allclose(dz_conv().data, th_conv().numpy(), rtol=1e-4, atol=1e-4)
    return flops, (dz_conv, th_conv), (np_gemm, th_gemm)


def _gflops(flops, timing):
    return "-" if timing is None else f"{flops / timing.median / 1e9:.0f}"


# --- the benchmark ---------------------------------------------------------------------------
def run(quick: bool = False, profile: bool = False) -> list[Table]:
    batch = QUICK_BATCH if quick else BATCH
    iters = 5 if quick else 100
    repeat = 3 if quick else 7
    torch = torch_or_none()

    dz, dz_train, dz_result = make_dezero(batch)
    th, th_train, th_result = make_torch(torch, batch) if torch is not None else ({}, None, None)
    loss, grads = dz_result()
    if not np.isfinite(loss):
        raise AssertionError(f"dezero's loss is not finite: {loss}")
    if th_result is not None:  # the same work: the same loss and gradients
        loss_th, grads_th = th_result()
        np.testing.assert_allclose(loss, loss_th, rtol=1e-4)
        for g, g_th in zip(grads, grads_th):
            np.testing.assert_allclose(g, g_th, rtol=1e-3, atol=1e-4)

    arch = "conv3x3(1->16)-relu-pool2, conv3x3(16->32)-relu-pool2, linear(1568->10)"
    train = Table(f"MNIST CNN {arch}, batch {batch}, float32: {iters} training iterations "
                  f"(forward, backward, SGD update)", unit="s")

    def dz_iters():
        for _ in range(iters):
            dz_train()

    def th_iters():
        for _ in range(iters):
            th_train()

    rounds = 1 if quick else 3
    t_dz = timeit(dz_iters, repeat=rounds, number=1, warmup=1)
    t_th = timeit(th_iters, repeat=rounds, number=1, warmup=1) if th_train else None
    train.add(f"{iters} iterations", t_dz, t_th, scale=1.0)

    per_iter = Table(f"MNIST CNN, batch {batch}: one iteration", unit="ms/iter")
    for case, fn in dz.items():
        t_dz = timeit(fn, repeat=repeat, number=None, warmup=2, min_round_s=0.05)
        t_th = (timeit(th[case], repeat=repeat, number=None, warmup=2, min_round_s=0.05)
                if th else None)
        per_iter.add(case, t_dz, t_th, scale=1e3)

    flops, (dz_conv, th_conv), (np_gemm, th_gemm) = make_conv2(torch, batch)
    conv = Table(f"conv2d forward of layer 2 ({batch}x16x14x14 -> {batch}x32x14x14, "
                 f"{flops / 1e6:.1f} MFLOP); GFLOP/s in brackets (dezero | torch)", unit="ms")
    t_dz = timeit(dz_conv, repeat=repeat, number=None, warmup=2, min_round_s=0.05)
    t_th = (timeit(th_conv, repeat=repeat, number=None, warmup=2, min_round_s=0.05)
            if th_conv else None)
    conv.add(f"conv2d, no_grad [{_gflops(flops, t_dz)} | {_gflops(flops, t_th)}]", t_dz, t_th,
             scale=1e3)
    t_np = timeit(np_gemm, repeat=repeat, number=None, warmup=2, min_round_s=0.05)
    t_tg = (timeit(th_gemm, repeat=repeat, number=None, warmup=2, min_round_s=0.05)
            if th_gemm else None)
    conv.add(f"its GEMM (32x144)@(144x{batch * 196}), np vs torch "
             f"[{_gflops(flops, t_np)} | {_gflops(flops, t_tg)}]", t_np, t_tg, scale=1e3)

    if profile:
        profile_call(dz_train, calls=3 if quick else 20, title="dezero MNIST CNN training step")
    return [train, per_iter, conv]


if __name__ == "__main__":
    bench_main(run, __doc__)
