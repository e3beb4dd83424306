"""Per-op overhead: a chain of small elementwise ops, dezero vs PyTorch CPU.

The chain repeats ``h = sin(h); h = h * w; h = h + b`` on (10,) float32 arrays (``w`` and
``b`` are leaves that need gradients, so backward also accumulates into them) for 1000 ops.
With arrays this small the arithmetic is nothing: what is measured is the framework's cost
per op (Python, graph recording, backward bookkeeping), in microseconds per op, for
forward (graph recorded), forward+backward, and forward under no_grad. Then the 4th
derivative of x^4 - 2x^2 (= 24) through create_graph, per call: dezero's
``backward(create_graph=True)`` four times vs ``torch.autograd.grad(..., create_graph=True)``.
Three more chains on a (10,) float64 leaf, forward+backward, per op: ``y * 1.0001 + 0.5``
(500 steps: 1000 ops with Python-float constants), ``sin(y) * w + x`` (300 steps, ``w`` a
leaf) and ``y * c + c`` with ``c`` a NumPy array (500 steps). Each framework runs in its own
process (benchmarks/common.py); ``--ab OTHER_TREE`` compares two checkouts of dezero (the
per-op overhead of a change).

    python benchmarks/bench_overhead.py [--quick] [--profile] [--threads N] [--ab OTHER_TREE]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_overhead.py) or imported by run.py
    from common import Table, Workload, bench_main, compare, profile_workload
except ImportError:  # imported as benchmarks.bench_overhead
    from benchmarks.common import Table, Workload, bench_main, compare, profile_workload

import dezero
import dezero.functions as F

N_OPS = 1000
SIZE = 10
# name -> (steps, ops per step): the float64 chains, forward+backward
CHAINS = {"y * 1.0001 + 0.5": (500, 2), "sin(y) * w + x": (300, 3),
          "y * c + c, c an ndarray": (500, 2)}


def chain64(name, y, w, c, steps, sin):
    """One of CHAINS on the leaf ``y`` (any framework: operators and its ``sin``)."""
    x = y
    for _ in range(steps):
        if name == "y * 1.0001 + 0.5":
            y = y * 1.0001 + 0.5
        elif name == "sin(y) * w + x":
            y = sin(y) * w + x
        else:
            y = y * c + c
    return y


def chain64_cases(leaf, seed, sin, const, quick):
    """forward+backward closures for CHAINS; ``leaf(array)`` makes a leaf needing a
    gradient, ``const(array)`` the framework's constant, ``seed`` runs the backward."""
    rng = np.random.default_rng(1)
    y0 = leaf(rng.uniform(0.1, 0.5, SIZE))
    w = leaf(rng.uniform(0.5, 1.0, SIZE))
    c = const(rng.uniform(0.5, 1.0, SIZE))
    cases = {}
    for name, (steps, _) in CHAINS.items():
        n = _steps(steps, quick)

        def fb(name=name, steps=n):
            y0.grad = w.grad = None
            out = chain64(name, y0, w, c, steps, sin)
            seed(out)
            return out
        cases[name] = fb
    return cases


def _steps(steps, quick):
    return max(1, steps // 10) if quick else steps


def chain_inputs(size):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(size).astype(np.float32)
    w = rng.uniform(0.5, 1.0, size).astype(np.float32)
    b = rng.uniform(-0.1, 0.1, size).astype(np.float32)
    return x, w, b


# --- dezero ------------------------------------------------------------------------------
def dezero_chain(x, w, b, n_ops):
    h = x
    for i in range(n_ops):
        k = i % 3
        if k == 0:
            h = F.sin(h)
        elif k == 1:
            h = h * w
        else:
            h = h + b
    return h


def make_dezero(n_ops, size):
    x0, w0, b0 = chain_inputs(size)
    x, w, b = dezero.Variable(x0), dezero.Variable(w0), dezero.Variable(b0)

    def forward():
        return dezero_chain(x, w, b, n_ops)

    def forward_backward():
        x.cleargrad()
        w.cleargrad()
        b.cleargrad()
        y = dezero_chain(x, w, b, n_ops)
        y.backward()
        return y

    def forward_no_grad():
        with dezero.no_grad():
            return dezero_chain(x, w, b, n_ops)

    def grads():
        forward_backward()
        return [v.grad.data for v in (x, w, b)]

    return {"forward": forward, "forward+backward": forward_backward,
            "forward, no_grad": forward_no_grad}, grads


def _dezero_seed(out):
    out.backward()


def dezero_fourth_derivative(x0=2.0):
    x = dezero.Variable(np.array(x0))
    y = x**4 - 2 * x**2
    y.backward(create_graph=True)
    for _ in range(3):
        gx = x.grad
        x.cleargrad()
        gx.backward(create_graph=True)
    return float(x.grad.data)


# --- torch ---------------------------------------------------------------------------------
def torch_chain(torch, x, w, b, n_ops):
    h = x
    for i in range(n_ops):
        k = i % 3
        if k == 0:
            h = torch.sin(h)
        elif k == 1:
            h = h * w
        else:
            h = h + b
    return h


def make_torch(torch, n_ops, size):
    x0, w0, b0 = chain_inputs(size)
    x, w, b = (torch.tensor(a, requires_grad=True) for a in (x0, w0, b0))

    def chain():
        return torch_chain(torch, x, w, b, n_ops)

    seed = torch.ones(size)

    def forward_backward():
        x.grad = w.grad = b.grad = None
        y = chain()
        y.backward(seed)  # dezero seeds ones for a non-scalar output; do the same
        return y

    def forward_no_grad():
        with torch.no_grad():
            return chain()

    def grads():
        forward_backward()
        return [v.grad.numpy().copy() for v in (x, w, b)]

    return {"forward": chain, "forward+backward": forward_backward,
            "forward, no_grad": forward_no_grad}, grads


def _torch_chain64_cases(torch, quick):
    seed = torch.ones(SIZE, dtype=torch.float64)
    return chain64_cases(lambda a: torch.tensor(a, requires_grad=True),
                         lambda out: out.backward(seed), torch.sin, torch.from_numpy, quick)


def torch_fourth_derivative(torch, x0=2.0):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    g = x**4 - 2 * x**2
    for _ in range(4):
        (g,) = torch.autograd.grad(g, x, create_graph=True)
    return float(g.detach())


# --- the benchmark ---------------------------------------------------------------------------
CHAIN_CASES = ("forward", "forward+backward", "forward, no_grad")
HIGHER = "d^4/dx^4 (x^4 - 2x^2)"


def workload(framework: str, quick: bool = False) -> Workload:
    n_ops = 30 if quick else N_OPS
    if framework == "torch":
        import torch

        cases, grads = make_torch(torch, n_ops, SIZE)
        if torch_fourth_derivative(torch) != 24.0:
            raise AssertionError("torch's 4th derivative of x^4 - 2x^2 is not 24")
        cases[HIGHER] = lambda: torch_fourth_derivative(torch)
        cases.update(_torch_chain64_cases(torch, quick))
    else:
        cases, grads = make_dezero(n_ops, SIZE)
        value = dezero_fourth_derivative()
        if value != 24.0:
            raise AssertionError(f"dezero's 4th derivative of x^4 - 2x^2 is {value}, not 24")
        cases[HIGHER] = dezero_fourth_derivative
        cases.update(chain64_cases(dezero.Variable, _dezero_seed, F.sin, np.asarray, quick))
    return Workload(cases, check=grads)


def run(quick: bool = False, profile: bool = False) -> list[Table]:
    n_ops = 30 if quick else N_OPS
    res = compare("bench_overhead", quick=quick, rounds=3 if quick else 15,
                  min_round_s=0.01 if quick else 0.05, rtol=1e-3, atol=1e-4)
    chain = res.table(f"per-op overhead: chain of {n_ops} ops (sin, *, +) on ({SIZE},) float32",
                      unit="us/op", scale=1e6 / n_ops, cases=CHAIN_CASES)
    higher = res.table("4th derivative of x^4 - 2x^2 at 2.0 through create_graph (= 24)",
                       unit="us/call", scale=1e6, cases=[HIGHER])
    chains = []
    for name, (steps, per_step) in CHAINS.items():
        n = _steps(steps, quick) * per_step
        chains.append(res.table(f"per-op overhead, forward+backward: {name} ({n} ops, "
                                f"({SIZE},) float64)", unit="us/op", scale=1e6 / n,
                                cases=[name]))
    if profile:
        profile_workload(workload, "forward+backward", calls=3 if quick else 20, quick=quick,
                         title=f"dezero forward+backward, {n_ops} ops")
        profile_workload(workload, HIGHER, calls=3 if quick else 200, quick=quick,
                         title="dezero 4th derivative through create_graph")
    return [chain, *chains, higher]


if __name__ == "__main__":
    bench_main(run, __doc__)
