"""The graph of the n-th derivative of tanh, drawn with Graphviz (the book's step 35).

Each ``backward(create_graph=True)`` records the backward pass as a new graph, so the graph
of the n-th derivative grows quickly with n. The picture goes to ``OUT/tanh_gx<order>.png``;
the derivative's value is checked against the exact one, a polynomial in t = tanh(x)
(P_0 = t, P_{k+1} = P_k'(t) (1 - t^2)).

    python examples/tanh_graph.py [--order 6] [--x 1.0] [--out out] [--verbose]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from numpy.polynomial import Polynomial

# the checkout first: the examples run without installing dezero
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dezero.functions as F
from dezero import Variable
from dezero.utils import get_dot_graph, plot_dot_graph


def tanh_derivative_graph(x0: float, order: int) -> tuple[Variable, Variable]:
    """(x, the order-th derivative of tanh at x as a Variable that keeps its graph)."""
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    x = Variable(np.array(x0), name="x")
    y = F.tanh(x)
    y.backward(create_graph=True)
    for _ in range(order - 1):
        gx = x.grad
        x.cleargrad()
        gx.backward(create_graph=True)
    gx = x.grad
    gx.name = f"gx{order}"
    return x, gx


def exact_tanh_derivative(x0: float, order: int) -> float:
    t = Polynomial([0.0, 1.0])
    p = t
    for _ in range(order):
        p = p.deriv() * (1 - t**2)
    return float(p(np.tanh(x0)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=6, help="which derivative to draw")
    parser.add_argument("--x", type=float, default=1.0, help="where to differentiate")
    parser.add_argument("--out", default="out", help="folder for the picture")
    parser.add_argument("--verbose", action="store_true", help="label variables with shapes")
    args = parser.parse_args(argv)

    _, gx = tanh_derivative_graph(args.x, args.order)
    value = float(gx.data)
    exact = exact_tanh_derivative(args.x, args.order)
    dot = get_dot_graph(gx, verbose=args.verbose)
    n_nodes = sum(1 for line in dot.splitlines() if "[label=" in line)
    n_funcs = sum(1 for line in dot.splitlines() if "shape=box" in line)

    os.makedirs(args.out, exist_ok=True)
    picture = os.path.join(args.out, f"tanh_gx{args.order}.png")
    plot_dot_graph(gx, verbose=args.verbose, to_file=picture)

    print(f"d^{args.order}/dx^{args.order} tanh(x) at x = {args.x}: {value!r}")
    print(f"exact (polynomial in tanh x):        {exact!r}")
    print(f"graph: {n_funcs} functions, {n_nodes - n_funcs} variables")
    print(f"picture written to {picture}")
    return {"value": value, "exact": exact, "functions": n_funcs,
            "variables": n_nodes - n_funcs, "picture": picture}


if __name__ == "__main__":
    main()
