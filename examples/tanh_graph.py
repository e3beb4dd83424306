"""The graph of the n-th derivative of tanh, drawn with Graphviz (the book's step 35).

Each ``backward(create_graph=True)`` records the backward pass as a new graph, so the graph
of the n-th derivative grows quickly with n. The picture goes to ``OUT/tanh_gx<order>.png``;
the derivative's value is checked against the exact one, a polynomial in t = tanh(x)
(P_0 = t, P_{k+1} = P_k'(t) (1 - t^2)).

    python examples/tanh_graph.py [--order 4] [--x 1.0] [--out out] [--format png]
                                  [--verbose]

The default order 4 gives a picture of about 1600 x 3300 pixels. The graph grows about 2.5
times per order: order 6 (the book's last picture) is about 9500 x 9900 pixels as a PNG, too
large for most viewers (Pillow refuses to open it without a warning), so draw large orders
as SVG (``--format svg``).
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


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    with open(path, "rb") as f:
        header = f.read(24)
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=4, help="which derivative to draw")
    parser.add_argument("--x", type=float, default=1.0, help="where to differentiate")
    parser.add_argument("--out", default="out", help="folder for the picture")
    parser.add_argument("--format", choices=["png", "svg"], default="png",
                        help="picture format (svg for large orders)")
    parser.add_argument("--verbose", action="store_true", help="label variables with shapes")
    args = parser.parse_args(argv)

    _, gx = tanh_derivative_graph(args.x, args.order)
    value = float(gx.data)
    exact = exact_tanh_derivative(args.x, args.order)
    dot = get_dot_graph(gx, verbose=args.verbose)
    n_nodes = sum(1 for line in dot.splitlines() if "[label=" in line)
    n_funcs = sum(1 for line in dot.splitlines() if "shape=box" in line)

    os.makedirs(args.out, exist_ok=True)
    picture = os.path.join(args.out, f"tanh_gx{args.order}.{args.format}")
    plot_dot_graph(gx, verbose=args.verbose, to_file=picture)
    size = png_size(picture) if args.format == "png" else None

    print(f"d^{args.order}/dx^{args.order} tanh(x) at x = {args.x}: {value!r}")
    print(f"exact (polynomial in tanh x):        {exact!r}")
    print(f"graph: {n_funcs} functions, {n_nodes - n_funcs} variables")
    print(f"picture written to {picture}" + (f" ({size[0]} x {size[1]} pixels)" if size else ""))
    if size and max(size) > 5000:
        print("that is a large picture: --format svg draws it without pixels")
    return {"value": value, "exact": exact, "functions": n_funcs,
            "variables": n_nodes - n_funcs, "picture": picture, "size": size}


if __name__ == "__main__":
    main()
