"""dezero.jit: replayed steps vs eager dezero vs PyTorch CPU eager (and NumPy by hand).

Cases, each a whole step measured in the same run:
  - a chain of 300 small ops (``h = sin(h); h = h * w; h = h + b`` on (10,) float32, all
    three leaves need gradients), forward + backward: jit vs PyTorch eager, and jit vs the
    same chain written by hand in NumPy (forward keeping the intermediates, backward by the
    chain rule);
  - a small MLP 20-64-64-5 (ReLU) Adam step at batch 32 (forward, softmax cross entropy,
    backward, update);
  - the MNIST MLP 784-1000-1000-10 (MomentumSGD) and the MNIST CNN (conv 1->32 and 32->64,
    3x3 pad 1, ReLU, max-pool 2, linear 10) training steps at batch 100.

The dispatch-bound cases (chain, small MLP) run both frameworks with 1 thread; the MNIST
cases use the thread count of the run (``--threads``, else each framework's default). Each
framework runs in its own process (benchmarks/common.py); dezero's eager and jit steps (and
NumPy by hand) share one. ``--ab OTHER_TREE`` compares two dezero trees.

    python benchmarks/bench_jit.py [--quick] [--profile] [--threads N] [--ab OTHER_TREE]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_jit.py) or imported by run.py
    from bench_overhead import chain_inputs, dezero_chain, torch_chain
    from common import Table, Workload, bench_main, compare, profile_workload
except ImportError:  # imported as benchmarks.bench_jit
    from benchmarks.bench_overhead import chain_inputs, dezero_chain, torch_chain
    from benchmarks.common import Table, Workload, bench_main, compare, profile_workload

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import Parameter, optimizers
from dezero.models import Model

N_OPS = 300
SIZE = 10


# =============================================================================
# the small-op chain
# =============================================================================
def _chain_inputs():
    return chain_inputs(SIZE)  # the chain of bench_overhead.py, at this benchmark's size


def make_chain_dezero(n_ops):
    x, w, b = (Parameter(a.copy()) for a in _chain_inputs())

    def step():
        for v in (x, w, b):
            v.cleargrad()
        h = dezero_chain(x, w, b, n_ops)
        h.backward()
        return h

    def grads():
        return [v.grad.data.copy() for v in (x, w, b)]

    return step, grads


def make_chain_numpy(n_ops):
    x, w, b = _chain_inputs()

    def step():
        hs = []
        h = x
        for i in range(n_ops):
            hs.append(h)
            k = i % 3
            if k == 0:
                h = np.sin(h)
            elif k == 1:
                h = h * w
            else:
                h = h + b
        g = np.ones_like(h)
        gw = np.zeros_like(w)
        gb = np.zeros_like(b)
        for i in range(n_ops - 1, -1, -1):
            k = i % 3
            if k == 0:
                g = g * np.cos(hs[i])
            elif k == 1:
                gw += g * hs[i]
                g = g * w
            else:
                gb += g
        step.grads = [g, gw, gb]
        return h

    return step, lambda: step.grads


def make_chain_torch(torch, n_ops):
    x, w, b = (torch.tensor(a, requires_grad=True) for a in _chain_inputs())
    seed = torch.ones(SIZE)

    def step():
        x.grad = w.grad = b.grad = None
        h = torch_chain(torch, x, w, b, n_ops)
        h.backward(seed)
        return h

    return step, lambda: [v.grad.numpy().copy() for v in (x, w, b)]


# =============================================================================
# models
# =============================================================================
class SmallMLP(Model):
    def __init__(self, sizes):
        super().__init__()
        self.layers = [L.Linear(o, in_size=i) for i, o in zip(sizes, sizes[1:])]
        for k, layer in enumerate(self.layers):
            setattr(self, f"l{k}", layer)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class CNN(Model):
    def __init__(self):
        super().__init__()
        self.conv1 = L.Conv2d(32, kernel_size=3, stride=1, pad=1, in_channels=1)
        self.conv2 = L.Conv2d(64, kernel_size=3, stride=1, pad=1, in_channels=32)
        self.fc = L.Linear(10, in_size=64 * 7 * 7)

    def forward(self, x):
        x = F.pooling(F.relu(self.conv1(x)), 2, 2)
        x = F.pooling(F.relu(self.conv2(x)), 2, 2)
        return self.fc(F.reshape(x, (x.shape[0], -1)))


def _torch_model(torch, model):
    """The PyTorch twin of a dezero model, with the same initial weights."""
    nn = torch.nn
    if isinstance(model, CNN):
        net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(64 * 7 * 7, 10))
        pairs = [(net[0], model.conv1), (net[3], model.conv2)]
        with torch.no_grad():
            for t, d in pairs:
                t.weight.copy_(torch.from_numpy(d.W.data))
                t.bias.copy_(torch.from_numpy(d.b.data))
            net[7].weight.copy_(torch.from_numpy(model.fc.W.data.T.copy()))
            net[7].bias.copy_(torch.from_numpy(model.fc.b.data))
        return net
    mods = []
    for layer in model.layers:
        lin = nn.Linear(*layer.W.data.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.W.data.T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.b.data))
        mods += [lin, nn.ReLU()]
    return nn.Sequential(*mods[:-1])


def _data(shape, classes, batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    t = rng.integers(0, classes, batch)
    return x, t


def _dezero_steps(make_model, make_opt, x, t):
    """({"dezero eager": step, "dezero jit": step}, the first three losses): two copies of
    one model, same weights, checked to agree."""
    np.random.seed(0)  # noqa: NPY002
    m_eager = make_model()
    m_jit = make_model()
    for p, q in zip(m_eager.params(), m_jit.params()):
        q.data[...] = p.data
    o_eager, o_jit = make_opt().setup(m_eager), make_opt().setup(m_jit)

    def train(model, opt):
        def step(x, t):
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            opt.update()
            return loss

        return step

    eager = train(m_eager, o_eager)
    jitted = dezero.jit(train(m_jit, o_jit))
    steps = {"dezero eager": lambda: eager(x, t), "dezero jit": lambda: jitted(x, t)}
    losses = []
    for _ in range(3):  # the same start: both give the same losses
        a, b = float(steps["dezero eager"]().data), float(steps["dezero jit"]().data)
        if a != b:
            raise AssertionError(f"jit and eager steps differ: {a} vs {b}")
        losses.append(a)
    return steps, losses


def _torch_step(torch, model, torch_opt, x, t):
    """The PyTorch twin's step, from the weights of ``model`` (a dezero model)."""
    net = _torch_model(torch, model)
    topt = torch_opt(torch, net.parameters())
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)
    lossf = torch.nn.functional.cross_entropy

    def step():
        loss = lossf(net(tx), tt)
        topt.zero_grad(set_to_none=True)
        loss.backward()
        topt.step()
        return loss

    return step


def _sgd(torch, ps):
    return torch.optim.SGD(ps, lr=0.1, momentum=0.9)


def _adam(torch, ps):
    return torch.optim.Adam(ps, lr=0.001)


MODELS = {  # name: (model, dezero optimizer, torch optimizer, input shape, classes, batch)
    "small MLP": (lambda: SmallMLP((20, 64, 64, 5)), optimizers.Adam, _adam, (20,), 5, 32),
    "MNIST MLP": (lambda: SmallMLP((784, 1000, 1000, 10)),
                  lambda: optimizers.MomentumSGD(0.1, 0.9), _sgd, (784,), 10, 100),
    "MNIST CNN": (CNN, lambda: optimizers.MomentumSGD(0.1, 0.9), _sgd, (1, 28, 28), 10, 100),
}


def model_steps(framework: str, quick: bool = False, model: str = "small MLP") -> Workload:
    """A model's training step: dezero eager and jit in one process, PyTorch in another.
    The check: the losses of the first three steps."""
    make_model, make_opt, torch_opt, shape, classes, batch = MODELS[model]
    x, t = _data(shape, classes, batch)
    if framework == "torch":
        import torch

        np.random.seed(0)  # noqa: NPY002  (the same initial weights as the dezero side)
        step = _torch_step(torch, make_model(), torch_opt, x, t)
        return Workload({"torch eager": step},
                        lambda: [float(step().detach()) for _ in range(3)])
    steps, losses = _dezero_steps(make_model, make_opt, x, t)
    return Workload(steps, lambda: losses)


def chain(framework: str, quick: bool = False) -> Workload:
    """The small-op chain: dezero eager and jit and NumPy by hand in one process, PyTorch
    in another. The check: the gradients of x, w and b."""
    n_ops = 30 if quick else N_OPS
    if framework == "torch":
        import torch

        step, grads = make_chain_torch(torch, n_ops)
        return Workload({"torch eager": step}, lambda: (step(), grads())[1])
    dz_step, dz_grads = make_chain_dezero(n_ops)
    jit_step = dezero.jit(dz_step)
    np_step, np_grads = make_chain_numpy(n_ops)
    for _ in range(3):
        jit_step()
    np_step()
    for a, b_ in zip(dz_grads(), np_grads()):
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-6)
    return Workload({"dezero eager": dz_step, "dezero jit": jit_step, "NumPy by hand": np_step},
                    lambda: (dz_step(), dz_grads())[1])


# =============================================================================
# the benchmark
# =============================================================================
def run(quick: bool = False, profile: bool = False) -> list[Table]:
    rounds = 3 if quick else 15
    min_round = 0.01 if quick else 0.1
    tables = []

    # --- the chain: dispatch-bound, 1 thread -------------------------------------------------
    n_ops = 30 if quick else N_OPS
    res = compare("bench_jit", "chain", quick=quick, rounds=rounds, min_round_s=min_round,
                  threads=1, rtol=1e-4, atol=1e-5)
    table = Table(f"chain of {n_ops} small ops, forward+backward, vs PyTorch eager (1 thread)",
                  unit="us", columns=res.table("", "us").columns)
    for case in ("dezero eager", "dezero jit"):
        res.add_row(table, case, case, "torch eager", scale=1e6)
    tables.append(table)
    by_hand = Table(f"chain of {n_ops} small ops, forward+backward, vs NumPy by hand",
                    unit="us", columns=("dezero", "NumPy by hand"))
    for case in ("dezero eager", "dezero jit"):
        by_hand.add(case, res.timing(case), res.timing("NumPy by hand"), scale=1e6)
    tables.append(by_hand)

    # --- model steps: the small MLP (1 thread), the MNIST MLP and CNN (default threads) ------
    models = [("small MLP", "MLP 20-64-64-5, Adam step, batch 32, vs PyTorch eager (1 thread)",
               1, "us", 1e6)]
    mnist = Table("MNIST training steps, batch 100, vs PyTorch eager", unit="ms")
    for name in ("MNIST MLP", *(() if quick else ("MNIST CNN",))):
        models.append((name, None, None, "ms", 1e3))
    for name, title, threads, unit, scale in models:
        res = compare("bench_jit", "model_steps", quick=quick, kwargs={"model": name},
                      rounds=rounds, min_round_s=min_round, threads=threads, rtol=1e-3,
                      atol=1e-4)
        table = mnist if title is None else Table(title, unit=unit)
        table.columns = res.table("", unit).columns
        for case in ("dezero eager", "dezero jit"):
            label = case if title is not None else f"{name}, {case.split()[-1]}"
            res.add_row(table, label, case, "torch eager", scale=scale)
        if title is not None:
            tables.append(table)
    tables.append(mnist)
    if profile:
        profile_workload(chain, "dezero jit", calls=20, quick=quick,
                         title=f"dezero jit, chain of {n_ops} ops")
        profile_workload(model_steps, "dezero jit", calls=50, quick=quick,
                         title="dezero jit, small MLP Adam step")
    return tables


if __name__ == "__main__":
    bench_main(run, __doc__)
