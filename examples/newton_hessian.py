"""Newton's method in several variables with ``dezero.func.hessian``: the Rosenbrock function.

The book's step 33 runs Newton's method on a function of one variable (f'' by double
backprop); its step 36 notes that in several variables the second derivative is the
Hessian matrix, and step 28 minimises the Rosenbrock function
f(x0, x1) = 100 (x1 - x0^2)^2 + (1 - x0)^2 by gradient descent, which needs tens of
thousands of steps. With the gradient and the Hessian from ``dezero.func``, Newton's step
x <- x - H(x)^-1 grad f(x) reaches the minimum (1, 1) in a handful.

    python examples/newton_hessian.py [--x0 0.0] [--x1 2.0] [--max-iters 20] [--tol 1e-10]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

# the checkout first: the examples run without installing dezero
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def rosenbrock(x):
    x0, x1 = x[0], x[1]
    return 100 * (x1 - x0**2) ** 2 + (1 - x0) ** 2


def newton(x_start, max_iters: int, tol: float) -> list[np.ndarray]:
    """Iterates [x0, x1, ...] of Newton's method until the gradient's norm is below tol."""
    from dezero import func

    grad, hessian = func.grad(rosenbrock), func.hessian(rosenbrock)
    x = np.array(x_start, dtype=np.float64)
    xs = [x]
    for _ in range(max_iters):
        g = grad(x)
        if np.linalg.norm(g) < tol:
            break
        x = x - np.linalg.solve(hessian(x), g)
        xs.append(x)
    return xs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x0", type=float, default=0.0, help="starting point, first coordinate")
    parser.add_argument("--x1", type=float, default=2.0, help="starting point, second coordinate")
    parser.add_argument("--max-iters", type=int, default=20, help="at most this many steps")
    parser.add_argument("--tol", type=float, default=1e-10, help="stop when |grad| < tol")
    args = parser.parse_args(argv)
    if args.max_iters < 0:
        parser.error("--max-iters must be >= 0")

    xs = newton([args.x0, args.x1], args.max_iters, args.tol)
    print("Newton's method on the Rosenbrock function (gradient and Hessian by dezero.func):")
    for i, x in enumerate(xs):
        print(f"  {i:2d}  x = ({x[0]: .12f}, {x[1]: .12f})")
    print(f"  reached x = ({xs[-1][0]:.6f}, {xs[-1][1]:.6f}) in {len(xs) - 1} iterations")
    return {"x": xs[-1], "iterations": len(xs) - 1, "trajectory": xs}


if __name__ == "__main__":
    main()
