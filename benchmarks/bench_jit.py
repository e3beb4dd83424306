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

The dispatch-bound cases (chain, small MLP) run PyTorch with 1 thread (dezero is single
threaded there); the MNIST cases use the thread count of the run (``--threads``).

    python benchmarks/bench_jit.py [--quick] [--profile] [--threads N]
"""

from __future__ import annotations

import statistics

import numpy as np

try:  # as a script (python benchmarks/bench_jit.py) or imported by run.py
    from bench_overhead import chain_inputs, dezero_chain, torch_chain
    from common import Table, Timing, bench_main, profile_call, timeit, torch_or_none
except ImportError:  # imported as benchmarks.bench_jit
    from benchmarks.bench_overhead import chain_inputs, dezero_chain, torch_chain
    from benchmarks.common import Table, Timing, bench_main, profile_call, timeit, torch_or_none

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


def make_steps(make_model, make_opt, x, t, torch, torch_opt):
    """(eager step, jit step, torch step): three copies of one model, same weights."""
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
    steps = {"eager": lambda: eager(x, t), "jit": lambda: jitted(x, t)}
    th = None
    if torch is not None:
        net = _torch_model(torch, m_eager)
        topt = torch_opt(net.parameters())
        tx, tt = torch.from_numpy(x), torch.from_numpy(t)
        lossf = torch.nn.functional.cross_entropy

        def th():
            loss = lossf(net(tx), tt)
            topt.zero_grad(set_to_none=True)
            loss.backward()
            topt.step()
            return loss

    for _ in range(3):  # the same start: the three give the same losses
        a, b = float(steps["eager"]().data), float(steps["jit"]().data)
        if a != b:
            raise AssertionError(f"jit and eager steps differ: {a} vs {b}")
        if th is not None:
            c = float(th().detach())
            if not np.isclose(a, c, rtol=1e-3, atol=1e-4):
                raise AssertionError(f"dezero and torch steps differ: {a} vs {c}")
    return steps, th, jitted


# =============================================================================
# the benchmark
# =============================================================================
def interleaved(fns: dict, repeat: int) -> dict:
    """Time each of ``fns`` (name -> callable) in rounds that alternate between them, so
    that a shared machine's load drifts hit all of them alike; Timings by name."""
    numbers = {name: timeit(fn, repeat=1).number for name, fn in fns.items()}
    samples: dict = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            samples[name].append(timeit(fn, repeat=1, number=numbers[name],
                                        warmup=0).median)
    out = {}
    for name, xs in samples.items():
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else (
            xs[0], xs[0], xs[0])
        out[name] = Timing(statistics.median(xs), q3 - q1, repeat, numbers[name], xs)
    return out


def _with_threads(torch, n):
    if torch is None:
        return None
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    return old


def run(quick: bool = False, profile: bool = False) -> list[Table]:
    repeat = 3 if quick else 15
    torch = torch_or_none()
    tables = []

    # --- the chain: dispatch-bound, torch on 1 thread ---------------------------------------
    n_ops = 30 if quick else N_OPS
    old = _with_threads(torch, 1)
    dz_step, dz_grads = make_chain_dezero(n_ops)
    jit_step = dezero.jit(dz_step)
    np_step, np_grads = make_chain_numpy(n_ops)
    for _ in range(3):
        jit_step()
    np_step()
    for a, b_ in zip(dz_grads(), np_grads()):
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-6)
    fns = {"eager": dz_step, "jit": jit_step, "numpy": np_step}
    if torch is not None:
        th_step, th_grads = make_chain_torch(torch, n_ops)
        th_step()
        for a, b_ in zip(dz_grads(), th_grads()):
            np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-5)
        fns["torch"] = th_step
    times = interleaved(fns, repeat)
    t_eager, t_jit, t_np, t_th = (times["eager"], times["jit"], times["numpy"],
                                  times.get("torch"))
    chain = Table(f"chain of {n_ops} small ops, forward+backward, vs PyTorch eager (1 thread)",
                  unit="us")
    chain.add("dezero eager", t_eager, t_th)
    chain.add("dezero jit", t_jit, t_th)
    tables.append(chain)
    by_hand = Table(f"chain of {n_ops} small ops, forward+backward, vs NumPy by hand "
                    f"(the torch column is NumPy)", unit="us")
    by_hand.add("dezero eager", t_eager, t_np)
    by_hand.add("dezero jit", t_jit, t_np)
    tables.append(by_hand)
    if profile:
        profile_call(jit_step, calls=20, title=f"dezero jit, chain of {n_ops} ops")

    # --- the small MLP Adam step: dispatch-bound, torch on 1 thread --------------------------
    x, t = _data((20,), 5, 32)
    steps, th, _ = make_steps(lambda: SmallMLP((20, 64, 64, 5)), optimizers.Adam, x, t,
                              torch, lambda ps: torch.optim.Adam(ps, lr=0.001))
    small = Table("MLP 20-64-64-5, Adam step, batch 32, vs PyTorch eager (1 thread)")
    times = interleaved({**steps, **({"torch": th} if th is not None else {})}, repeat)
    for case in steps:
        small.add(f"dezero {case}", times[case], times.get("torch"))
    tables.append(small)
    if profile:
        profile_call(steps["jit"], calls=50, title="dezero jit, small MLP Adam step")
    if old is not None:
        torch.set_num_threads(old)

    # --- MNIST-sized steps -------------------------------------------------------------------
    mnist = Table("MNIST training steps, batch 100, vs PyTorch eager", unit="ms")
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
    x, t = _data((784,), 10, 100)
    steps, th, _ = make_steps(lambda: SmallMLP((784, 1000, 1000, 10)),
                              lambda: optimizers.MomentumSGD(0.1, 0.9), x, t, torch, sgd)
    times = interleaved({**steps, **({"torch": th} if th is not None else {})}, repeat)
    for case in steps:
        mnist.add(f"MLP 784-1000-1000-10, {case}", times[case], times.get("torch"), scale=1e3)
    if not quick:
        x, t = _data((1, 28, 28), 10, 100)
        steps, th, _ = make_steps(CNN, lambda: optimizers.MomentumSGD(0.1, 0.9), x, t, torch,
                                  sgd)
        times = interleaved({**steps, **({"torch": th} if th is not None else {})}, repeat)
        for case in steps:
            mnist.add(f"CNN conv32-conv64-fc, {case}", times[case], times.get("torch"),
                      scale=1e3)
    tables.append(mnist)
    return tables


if __name__ == "__main__":
    bench_main(run, __doc__)
