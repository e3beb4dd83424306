"""Per-op overhead: a chain of small elementwise ops, dezero vs PyTorch CPU.

The chain repeats ``h = sin(h); h = h * w; h = h + b`` on (10,) float32 arrays (``w`` and
``b`` are leaves that need gradients, so backward also accumulates into them) for 1000 ops.
With arrays this small the arithmetic is nothing: what is measured is the framework's cost
per op (Python, graph recording, backward bookkeeping), in microseconds per op, for
forward (graph recorded), forward+backward, and forward under no_grad. Then the 4th
derivative of x^4 - 2x^2 (= 24) through create_graph, per call: dezero's
``backward(create_graph=True)`` four times vs ``torch.autograd.grad(..., create_graph=True)``.

    python benchmarks/bench_overhead.py [--quick] [--profile] [--threads N]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_overhead.py) or imported by run.py
    from common import Table, bench_main, profile_call, timeit, torch_or_none
except ImportError:  # imported as benchmarks.bench_overhead
    from benchmarks.common import Table, bench_main, profile_call, timeit, torch_or_none

import dezero
import dezero.functions as F

N_OPS = 1000
SIZE = 10


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


def torch_fourth_derivative(torch, x0=2.0):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    g = x**4 - 2 * x**2
    for _ in range(4):
        (g,) = torch.autograd.grad(g, x, create_graph=True)
    return float(g.detach())


# --- the benchmark ---------------------------------------------------------------------------
def run(quick: bool = False, profile: bool = False) -> list[Table]:
    n_ops = 30 if quick else N_OPS
    repeat, number = (3, 1) if quick else (15, 1)
    torch = torch_or_none()

    dz, dz_grads = make_dezero(n_ops, SIZE)
    th, th_grads = make_torch(torch, n_ops, SIZE) if torch is not None else (None, None)
    if th is not None:  # same work: same values and gradients
        for a, b_ in zip(dz_grads(), th_grads()):
            np.testing.assert_allclose(a, b_, rtol=1e-3, atol=1e-4)

    chain = Table(f"per-op overhead: chain of {n_ops} ops (sin, *, +) on ({SIZE},) float32",
                  unit="us/op")
    for case, fn in dz.items():
        t_dz = timeit(fn, repeat=repeat, number=number, warmup=1)
        t_th = timeit(th[case], repeat=repeat, number=number, warmup=1) if th else None
        chain.add(case, t_dz, t_th, scale=1e6 / n_ops)

    value = dezero_fourth_derivative()
    if value != 24.0:
        raise AssertionError(f"dezero's 4th derivative of x^4 - 2x^2 is {value}, not 24")
    higher = Table("4th derivative of x^4 - 2x^2 at 2.0 through create_graph (= 24)",
                   unit="us/call")
    t_dz = timeit(dezero_fourth_derivative, repeat=repeat, number=None if not quick else 1)
    t_th = None
    if torch is not None:
        if torch_fourth_derivative(torch) != 24.0:
            raise AssertionError("torch's 4th derivative of x^4 - 2x^2 is not 24")
        t_th = timeit(lambda: torch_fourth_derivative(torch), repeat=repeat,
                      number=None if not quick else 1)
    higher.add("d^4/dx^4 (x^4 - 2x^2)", t_dz, t_th)

    if profile:
        profile_call(dz["forward+backward"], calls=3 if quick else 20,
                     title=f"dezero forward+backward, {n_ops} ops")
        profile_call(dezero_fourth_derivative, calls=3 if quick else 200,
                     title="dezero 4th derivative through create_graph")
    return [chain, higher]


if __name__ == "__main__":
    bench_main(run, __doc__)
