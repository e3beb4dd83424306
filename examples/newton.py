"""Newton's method on f(x) = x^4 - 2x^2 from x = 2.0: x <- x - f'(x) / f''(x).

Twice: with f'' written by hand (the book's step 29, on the stage-2 core: backprop gives f'
only), and with f'' from the framework (step 33: ``backward(create_graph=True)`` records the
graph of f', and backprop through it gives f''). Both reach the minimum x = 1 in 7 steps,
where gradient descent needs thousands.

    python examples/newton.py [--x 2.0] [--max-iters 20] [--method hand|graph|both]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

# the checkout first: the examples run without installing dezero
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def f(x):
    return x**4 - 2 * x**2


def newton_hand(x_start: float, max_iters: int) -> list[float]:
    """Iterates [x0, x1, ...] with f' from backprop and f'' = 12x^2 - 4 written by hand."""
    from dezero.core_simple import Variable

    x = Variable(np.array(x_start))
    xs = [float(x.data)]
    for _ in range(max_iters):
        x.cleargrad()
        f(x).backward()
        gx = x.grad
        if float(gx) == 0:
            break  # a stationary point: Newton's step is 0 from here on
        x.data = x.data - gx / (12 * x.data**2 - 4)
        if float(x.data) == xs[-1]:
            break
        xs.append(float(x.data))
    return xs


def newton_graph(x_start: float, max_iters: int) -> list[float]:
    """Iterates with f' and f'' both from backprop (f'' = gradient of the graph of f')."""
    from dezero import Variable

    x = Variable(np.array(x_start))
    xs = [float(x.data)]
    for _ in range(max_iters):
        x.cleargrad()
        f(x).backward(create_graph=True)
        gx = x.grad  # a Variable with its own graph: f'(x) = 4x^3 - 4x
        if float(gx.data) == 0:
            break
        x.cleargrad()
        gx.backward()
        gx2 = x.grad  # f''(x)
        x.data = x.data - gx.data / gx2.data
        if float(x.data) == xs[-1]:
            break
        xs.append(float(x.data))
    return xs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x", type=float, default=2.0, help="starting point")
    parser.add_argument("--max-iters", type=int, default=20, help="at most this many steps")
    parser.add_argument("--method", choices=["hand", "graph", "both"], default="both")
    args = parser.parse_args(argv)

    methods = ["hand", "graph"] if args.method == "both" else [args.method]
    results = {}
    for method in methods:
        run = newton_hand if method == "hand" else newton_graph
        xs = run(args.x, args.max_iters)
        label = "f'' by hand" if method == "hand" else "f'' from create_graph"
        print(f"Newton's method, {label}:")
        for i, xi in enumerate(xs):
            print(f"  {i:2d}  x = {xi!r}")
        print(f"  reached x = {xs[-1]!r} in {len(xs) - 1} iterations")
        results[method] = {"x": xs[-1], "iterations": len(xs) - 1, "trajectory": xs}
    return results


if __name__ == "__main__":
    main()
