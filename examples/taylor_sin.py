"""sin(x) as its Taylor series built from dezero ops, against the op ``F.sin``.

The series ``sum_i (-1)^i x^(2i+1) / (2i+1)!`` is summed until a term drops below
``--threshold``; backprop through the resulting graph gives the derivative, and the graph
grows with every term (its size is printed). Then the derivatives of ``F.sin`` up to
``--order`` at ``--at`` are taken through ``create_graph`` (derivatives of derivatives) and
compared with the exact values sin, cos, -sin, -cos, ... With ``--out DIR`` the Taylor
series' graph is drawn to ``DIR/taylor_sin.png`` (needs Graphviz).

    python examples/taylor_sin.py [--x 0.785] [--threshold 1e-4] [--order 4] [--at 1.0]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

# the checkout first: the examples run without installing dezero
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dezero.functions as F
from dezero import Variable


def taylor_sin(x: Variable, threshold: float = 1e-4):
    """Sum the Taylor series of sin at 0 until a term's magnitude is below ``threshold``."""
    y = 0
    for i in range(100_000):
        c = (-1) ** i / math.factorial(2 * i + 1)
        t = c * x ** (2 * i + 1)
        y = y + t
        if np.all(np.abs(t.data) < threshold):
            return y, i + 1
    raise RuntimeError("the Taylor series did not converge")


def graph_size(y: Variable) -> tuple[int, int]:
    """(functions, variables) in the graph that produced ``y``."""
    funcs, variables = set(), {id(y)}
    stack = [y.creator] if y.creator is not None else []
    while stack:
        f = stack.pop()
        if id(f) in funcs:
            continue
        funcs.add(id(f))
        for x in f.inputs:
            variables.add(id(x))
            if x.creator is not None:
                stack.append(x.creator)
    return len(funcs), len(variables)


def sin_derivatives(at: float, order: int, func=F.sin) -> list[float]:
    """[f'(at), f''(at), ...] up to ``order``, each the gradient of the previous one."""
    x = Variable(np.array(at))
    y = func(x)
    out = []
    for _ in range(order):
        x.cleargrad()
        y.backward(create_graph=True)
        y = x.grad
        out.append(float(y.data))
    return out


def exact_sin_derivative(at: float, k: int) -> float:
    return [math.sin, math.cos, lambda v: -math.sin(v), lambda v: -math.cos(v)][k % 4](at)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x", type=float, default=math.pi / 4, help="where to compare")
    parser.add_argument("--threshold", type=float, default=1e-4, help="last term's size")
    parser.add_argument("--order", type=int, default=4, help="highest derivative of F.sin")
    parser.add_argument("--at", type=float, default=1.0, help="where to take the derivatives")
    parser.add_argument("--out", default=None, help="folder for the graph picture")
    args = parser.parse_args(argv)

    x = Variable(np.array(args.x), name="x")
    y, terms = taylor_sin(x, args.threshold)
    y.backward()
    taylor_value, taylor_grad = float(y.data), float(x.grad.data)
    n_funcs, n_vars = graph_size(y)

    x2 = Variable(np.array(args.x))
    y2 = F.sin(x2)
    y2.backward()
    sin_value, sin_grad = float(y2.data), float(x2.grad.data)

    print(f"x = {args.x!r}, threshold = {args.threshold:g}")
    print(f"{'':>14} {'value':>22} {'d/dx':>22}")
    print(f"{'Taylor series':>14} {taylor_value:22.16f} {taylor_grad:22.16f}")
    print(f"{'F.sin':>14} {sin_value:22.16f} {sin_grad:22.16f}")
    print(f"Taylor graph: {terms} terms, {n_funcs} functions, {n_vars} variables")

    derivs = sin_derivatives(args.at, args.order)
    print(f"derivatives of F.sin at {args.at} through create_graph:")
    for k, d in enumerate(derivs, start=1):
        exact = exact_sin_derivative(args.at, k)
        print(f"  order {k}: {d:+.17f}  exact {exact:+.17f}  |diff| {abs(d - exact):.1e}")

    picture = None
    if args.out is not None:
        from dezero.utils import plot_dot_graph

        os.makedirs(args.out, exist_ok=True)
        picture = os.path.join(args.out, "taylor_sin.png")
        y.name = "y"
        plot_dot_graph(y, verbose=False, to_file=picture)
        print(f"graph written to {picture}")

    return {
        "taylor_value": taylor_value,
        "taylor_grad": taylor_grad,
        "sin_value": sin_value,
        "sin_grad": sin_grad,
        "terms": terms,
        "functions": n_funcs,
        "variables": n_vars,
        "derivatives": derivs,
        "picture": picture,
    }


if __name__ == "__main__":
    main()
