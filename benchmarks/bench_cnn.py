"""CNN training on the CPU, dezero vs PyTorch: the MNIST CNN, conv2d alone, a VGG-style block
and a CIFAR-sized ResNet-18.

"MNIST CNN" is the network of examples/mnist_cnn.py, on a batch of 100 float32 28x28 images:

    conv 3x3 (1 -> 16, pad 1) - ReLU - max pool 2 - conv 3x3 (16 -> 32, pad 1) - ReLU -
    max pool 2 - Linear (1568 -> 10) - softmax cross entropy

Timed per iteration: the training step (forward, backward, ``optimizers.SGD`` /
``torch.optim.SGD`` update), forward (graph recorded), forward+backward, forward under
no_grad; and the peak memory of the process that ran them.

"conv2d, layer 2" is that network's second convolution alone (100x16x14x14 -> 100x32x14x14,
3x3, pad 1: 180.6 MFLOP counted as a direct convolution): its forward, its input gradient
(``F.deconv2d(gy, W)`` vs ``torch.nn.grad.conv2d_input``) and its weight gradient (a
backward from the output with x a plain array, on a graph built once, vs
``torch.nn.grad.conv2d_weight``), next to the float32 GEMM of an im2col convolution of
that shape ((32 x 144) @ (144 x 19600)) in NumPy and in PyTorch: the rate an im2col
convolution can reach. The title gives each one's effective GFLOP/s.

"VGG-style block": conv 3x3 (64 -> 64, pad 1) - ReLU - conv 3x3 (64 -> 64, pad 1) - ReLU -
max pool 2 on (32, 64, 32, 32), forward+backward.

"ResNet-18": the CIFAR variant (3x3 stem of 64 channels without max pool, four stages of two
basic blocks, 64-128-256-512 channels, batch norm, global average pool, Linear 512 -> 10)
on a batch of 64 float32 32x32 images, one training step with ``MomentumSGD``.

Every network starts from the same weights in both frameworks; the loss and gradients (the
ResNet: its first loss) are checked to agree before anything is timed. Each framework runs
in its own process (benchmarks/common.py); ``--ab OTHER_TREE`` compares two dezero trees.

    python benchmarks/bench_cnn.py [--quick] [--profile] [--threads N] [--ab OTHER_TREE]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_cnn.py) or imported by run.py
    from common import Table, Workload, bench_main, compare, profile_workload
except ImportError:  # imported as benchmarks.bench_cnn
    from benchmarks.common import Table, Workload, bench_main, compare, profile_workload

BATCH, QUICK_BATCH = 100, 8
CHANNELS = (1, 16, 32)
LR = 0.01


def _he(rng, shape):
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


# =============================================================================
# The MNIST CNN
# =============================================================================
def _mnist_data(batch):
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


MNIST_CASES = ("train step (forward, backward, SGD update)", "forward", "forward+backward",
               "forward, no_grad")


def mnist_cnn(framework: str, quick: bool = False) -> Workload:
    batch = QUICK_BATCH if quick else BATCH
    x, t, arrays = _mnist_data(batch)
    if framework == "torch":
        import torch
        import torch.nn.functional as TF

        x, t = torch.from_numpy(x), torch.from_numpy(t)
        arrays[4] = arrays[4].T.copy()  # nn.Linear keeps W as (out, in)
        params = [torch.tensor(a, requires_grad=True) for a in arrays]
        W1, b1, W2, b2, W3, b3 = params
        opt = torch.optim.SGD(params, lr=LR)

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

        def check():
            loss = forward_backward()
            grads = [p.grad.numpy().copy() for p in params]
            grads[4] = grads[4].T
            return [loss.detach().numpy(), *grads]
    else:
        import dezero
        import dezero.functions as F
        from dezero import optimizers

        params = [dezero.Parameter(a.copy()) for a in arrays]
        W1, b1, W2, b2, W3, b3 = params
        opt = optimizers.SGD(lr=LR).setup(params)

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

        def check():
            loss = forward_backward()
            assert loss.dtype == np.float32, f"float64 crept into the loss: {loss.dtype}"
            for p in params:
                assert p.grad.dtype == np.float32, f"float64 crept into a gradient: {p.grad.dtype}"
            return [loss.data, *(p.grad.data for p in params)]

    def train_step():
        forward_backward()
        opt.step() if framework == "torch" else opt.update()

    cases = dict(zip(MNIST_CASES, (train_step, forward, forward_backward, forward_no_grad)))
    return Workload(cases, check)


# =============================================================================
# conv2d alone: layer 2 of the MNIST CNN, its gradients, and its GEMM
# =============================================================================
CONV_CASES = ("forward (no_grad)", "input gradient", "weight gradient",
              "its im2col GEMM (32x144)@(144xN*196)")


def conv_layer(framework: str, quick: bool = False) -> Workload:
    batch = QUICK_BATCH if quick else BATCH
    rng = np.random.default_rng(1)
    c1, c2 = CHANNELS[1:]
    x = rng.standard_normal((batch, c1, 14, 14)).astype(np.float32)
    W = (rng.standard_normal((c2, c1, 3, 3)) * 0.1).astype(np.float32)
    b = np.zeros(c2, np.float32)
    gy = rng.standard_normal((batch, c2, 14, 14)).astype(np.float32)
    A = rng.standard_normal((c2, c1 * 9)).astype(np.float32)  # W as a matrix
    B = rng.standard_normal((c1 * 9, batch * 14 * 14)).astype(np.float32)  # im2col(x)
    if framework == "torch":
        import torch
        import torch.nn.functional as TF

        tx, tW, tb, tgy = (torch.from_numpy(a) for a in (x, W, b, gy))
        tA, tB = torch.from_numpy(A), torch.from_numpy(B)

        def forward():
            with torch.no_grad():
                return TF.conv2d(tx, tW, tb, 1, 1)

        def grad_x():
            return torch.nn.grad.conv2d_input(tx.shape, tW, tgy, 1, 1)

        def grad_w():
            return torch.nn.grad.conv2d_weight(tx, tW.shape, tgy, 1, 1)

        def gemm():
            return tA @ tB

        def check():
            return [forward().numpy(), grad_x().numpy(), grad_w().numpy()]
    else:
        import dezero
        import dezero.functions as F

        Wv = dezero.Parameter(W.copy())
        with dezero.using_config("enable_backprop", True):
            y = F.conv2d(x, Wv, None, 1, 1)  # x a plain array: backward computes gW only
        gy_v = dezero.Variable(gy)

        def forward():
            with dezero.no_grad():
                return F.conv2d(x, W, b, 1, 1)

        def grad_x():
            with dezero.no_grad():
                return F.deconv2d(gy, W, None, 1, 1)

        def grad_w():
            Wv.cleargrad()
            y.grad = gy_v  # the output's gradient: backward starts from it
            y.backward()
            return Wv.grad

        def gemm():
            return A @ B

        def check():
            return [forward().data, grad_x().data, grad_w().data]

    cases = dict(zip(CONV_CASES, (forward, grad_x, grad_w, gemm)))
    return Workload(cases, check)


def conv_flops(batch):
    c1, c2 = CHANNELS[1:]
    return 2.0 * batch * 14 * 14 * c2 * c1 * 9


# =============================================================================
# A VGG-style block
# =============================================================================
def vgg_block(framework: str, quick: bool = False) -> Workload:
    N, C, S = (2, 8, 8) if quick else (32, 64, 32)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, S, S)).astype(np.float32)
    arrays = [_he(rng, (C, C, 3, 3)), np.zeros(C, np.float32),
              _he(rng, (C, C, 3, 3)), np.zeros(C, np.float32)]
    if framework == "torch":
        import torch
        import torch.nn.functional as TF

        tx = torch.from_numpy(x).requires_grad_(True)
        params = [torch.tensor(a, requires_grad=True) for a in arrays]
        W1, b1, W2, b2 = params

        def forward_backward():
            for v in (tx, *params):
                v.grad = None
            h = torch.relu(TF.conv2d(tx, W1, b1, 1, 1))
            h = TF.max_pool2d(torch.relu(TF.conv2d(h, W2, b2, 1, 1)), 2, 2)
            h.sum().backward()
            return h

        def check():
            h = forward_backward()
            return [h.detach().numpy(), tx.grad.numpy(), *(p.grad.numpy() for p in params)]
    else:
        import dezero
        import dezero.functions as F

        xv = dezero.Variable(x)
        params = [dezero.Parameter(a.copy()) for a in arrays]
        W1, b1, W2, b2 = params

        def forward_backward():
            for v in (xv, *params):
                v.cleargrad()
            h = F.relu(F.conv2d(xv, W1, b1, 1, 1))
            h = F.pooling(F.relu(F.conv2d(h, W2, b2, 1, 1)), 2, 2)
            F.sum(h).backward()
            return h

        def check():
            h = forward_backward()
            return [h.data, xv.grad.data, *(p.grad.data for p in params)]

    return Workload({"forward+backward": forward_backward}, check)


# =============================================================================
# ResNet-18 (CIFAR variant)
# =============================================================================
def _resnet_spec(quick):
    """(batch, image size, widths, blocks per stage)."""
    if quick:
        return 2, 8, (8, 16, 16, 16), (1, 1, 1, 1)
    return 64, 32, (64, 128, 256, 512), (2, 2, 2, 2)


def _resnet_arrays(quick):
    """The weights, in order: stem conv; per block conv1, conv2, (shortcut conv); fc W, b."""
    _, _, widths, blocks = _resnet_spec(quick)
    rng = np.random.default_rng(3)
    convs, c_in = [_he(rng, (widths[0], 3, 3, 3))], widths[0]
    layout = []  # per block: (stride, has a projection shortcut)
    for stage, (width, n) in enumerate(zip(widths, blocks)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            proj = stride != 1 or c_in != width
            convs += [_he(rng, (width, c_in, 3, 3)), _he(rng, (width, width, 3, 3))]
            if proj:
                convs.append(_he(rng, (width, c_in, 1, 1)))
            layout.append((stride, proj))
            c_in = width
    fc_W = (rng.standard_normal((c_in, 10)) * np.sqrt(1.0 / c_in)).astype(np.float32)
    return convs, layout, fc_W, np.zeros(10, np.float32)


def resnet18(framework: str, quick: bool = False) -> Workload:
    batch, size, _, _ = _resnet_spec(quick)
    convs, layout, fc_W, fc_b = _resnet_arrays(quick)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    t = rng.integers(0, 10, size=batch)
    if framework == "torch":
        step, first_loss = _resnet_torch(convs, layout, fc_W, fc_b, x, t)
    else:
        step, first_loss = _resnet_dezero(convs, layout, fc_W, fc_b, x, t)
    return Workload({"train step (forward, backward, MomentumSGD update)": step}, first_loss)


def _resnet_dezero(convs, layout, fc_W, fc_b, x, t):
    import dezero.functions as F
    import dezero.layers as L
    from dezero import optimizers
    from dezero.models import Model

    it = iter(convs)

    def conv(stride, pad):
        W = next(it)
        layer = L.Conv2d(W.shape[0], W.shape[2], stride, pad, nobias=True,
                         in_channels=W.shape[1])
        layer.W.data[...] = W
        return layer

    class Block(Model):
        def __init__(self, stride, proj):
            super().__init__()
            self.c1, self.b1 = conv(stride, 1), L.BatchNorm(eps=1e-5)
            self.c2, self.b2 = conv(1, 1), L.BatchNorm(eps=1e-5)
            self.proj = proj
            if proj:
                self.cs, self.bs = conv(stride, 0), L.BatchNorm(eps=1e-5)

        def forward(self, x):
            h = F.relu(self.b1(self.c1(x)))
            h = self.b2(self.c2(h))
            return F.relu(h + (self.bs(self.cs(x)) if self.proj else x))

    class ResNet18(Model):
        def __init__(self):
            super().__init__()
            self.stem, self.bn = conv(1, 1), L.BatchNorm(eps=1e-5)
            self.blocks = [Block(s, p) for s, p in layout]
            self.fc = L.Linear(10, in_size=fc_W.shape[0])
            self.fc.W.data[...] = fc_W
            self.fc.b.data[...] = fc_b

        def forward(self, x):
            h = F.relu(self.bn(self.stem(x)))
            for block in self.blocks:
                h = block(h)
            h = F.average_pooling(h, h.shape[2:], 1)  # global average pool
            return self.fc(F.reshape(h, (h.shape[0], -1)))

    model = ResNet18()
    opt = optimizers.MomentumSGD(lr=LR, momentum=0.9).setup(model)

    def step():
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    return step, lambda: [step().data]


def _resnet_torch(convs, layout, fc_W, fc_b, x, t):
    import torch
    from torch import nn

    it = iter(convs)

    def conv(stride, pad):
        W = next(it)
        layer = nn.Conv2d(W.shape[1], W.shape[0], W.shape[2], stride, pad, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(W))
        return layer

    def conv_bn(stride, pad):
        c = conv(stride, pad)
        return c, nn.BatchNorm2d(c.out_channels)

    class Block(nn.Module):
        def __init__(self, stride, proj):
            super().__init__()
            self.c1, self.b1 = conv_bn(stride, 1)
            self.c2, self.b2 = conv_bn(1, 1)
            self.short = nn.Sequential(*conv_bn(stride, 0)) if proj else None

        def forward(self, x):
            h = torch.relu(self.b1(self.c1(x)))
            h = self.b2(self.c2(h))
            return torch.relu(h + (self.short(x) if self.short is not None else x))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.bn = conv_bn(1, 1)
            self.blocks = nn.Sequential(*(Block(s, p) for s, p in layout))
            self.fc = nn.Linear(fc_W.shape[0], 10)
            with torch.no_grad():
                self.fc.weight.copy_(torch.from_numpy(fc_W.T.copy()))
                self.fc.bias.copy_(torch.from_numpy(fc_b))

        def forward(self, x):
            h = torch.relu(self.bn(self.stem(x)))
            h = self.blocks(h)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))

    model = ResNet18()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)
    lossf = nn.functional.cross_entropy

    def step():
        loss = lossf(model(tx), tt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step, lambda: [step().detach().numpy()]


# =============================================================================
# The benchmark
# =============================================================================
def _gflops(flops, timing):
    return "-" if timing is None else f"{flops / timing.median / 1e9:.0f}"


def run(quick: bool = False, profile: bool = False) -> list[Table]:
    batch = QUICK_BATCH if quick else BATCH
    rounds = 3 if quick else 15
    min_round = 0.01 if quick else 0.2
    arch = "conv3x3(1->16)-relu-pool2, conv3x3(16->32)-relu-pool2, linear(1568->10)"

    res = compare("bench_cnn", "mnist_cnn", quick=quick, rounds=rounds, min_round_s=min_round,
                  rtol=1e-3, atol=1e-4)
    mnist = res.table(f"MNIST CNN {arch}, batch {batch}, float32: one iteration",
                      unit="ms/iter", scale=1e3)
    mnist_rss = res.rss_table(f"MNIST CNN, batch {batch}: peak memory of the process")
    mnist_faults = res.faults_table(f"MNIST CNN, batch {batch}: page faults per call",
                                    cases=[MNIST_CASES[0]])

    res = compare("bench_cnn", "conv_layer", quick=quick, rounds=rounds, min_round_s=min_round,
                  rtol=1e-3, atol=1e-3)
    flops = conv_flops(batch)
    rates = "; ".join(
        f"{case.split(' (')[0]} {_gflops(flops, res.timing(case, 0))} | "
        f"{_gflops(flops, res.timing(case, 1))}" for case in CONV_CASES)
    conv = res.table(f"conv2d, layer 2 of the MNIST CNN ({batch}x16x14x14 -> {batch}x32x14x14, "
                     f"3x3 pad 1, {flops / 1e6:.1f} MFLOP)\n# GFLOP/s ({res.columns[0]} | "
                     f"{res.columns[-1]}): {rates}", unit="ms", scale=1e3)

    res = compare("bench_cnn", "vgg_block", quick=quick, rounds=rounds, min_round_s=min_round,
                  rtol=1e-3, atol=1e-3)
    vgg = res.table("VGG-style block: conv3x3(64->64)-relu-conv3x3(64->64)-relu-pool2 on "
                    f"{'(2, 8, 8, 8)' if quick else '(32, 64, 32, 32)'}", unit="ms", scale=1e3)

    rb, rs, _, _ = _resnet_spec(quick)
    res = compare("bench_cnn", "resnet18", quick=quick, rounds=3 if quick else 7, number=1,
                  warmup=1, rtol=2e-3, atol=1e-3)
    resnet = res.table(f"ResNet-18 (CIFAR variant), batch {rb}, {rs}x{rs}, float32",
                       unit="s/step")
    resnet_rss = res.rss_table(f"ResNet-18, batch {rb}: peak memory of the process")

    if profile:
        profile_workload(mnist_cnn, MNIST_CASES[0], calls=3 if quick else 20, quick=quick,
                         title="dezero MNIST CNN training step")
        profile_workload(conv_layer, CONV_CASES[0], calls=3 if quick else 50, quick=quick,
                         title="dezero conv2d forward, layer 2")
    return [mnist, mnist_rss, mnist_faults, conv, vgg, resnet, resnet_rss]


if __name__ == "__main__":
    bench_main(run, __doc__)
