"""The book's seed example: y = (e^{x^2})^2 at x = 0.5, and dy/dx = 4x e^{2x^2}.

Runs on the full engine (``dezero``) by default, or on the book's stage-2 core with
user-written Square and Exp Functions (``--core simple``). Both print 3.297442541400256.

    python examples/seed.py [--x 0.5] [--core full|simple]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

# the checkout first: the examples run without installing dezero
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def grad_full(x0: float) -> float:
    from dezero import Variable
    from dezero.functions import exp, square

    x = Variable(np.array(x0))
    y = square(exp(square(x)))
    y.backward()
    return float(x.grad.data)


def grad_simple(x0: float) -> float:
    from dezero.core_simple import Function, Variable

    class Square(Function):
        def forward(self, x):
            return x**2

        def backward(self, gy):
            return 2 * self.inputs[0].data * gy

    class Exp(Function):
        def forward(self, x):
            return np.exp(x)

        def backward(self, gy):
            return np.exp(self.inputs[0].data) * gy

    x = Variable(np.array(x0))
    y = Square()(Exp()(Square()(x)))
    y.backward()
    return float(x.grad)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x", type=float, default=0.5, help="where to differentiate")
    parser.add_argument("--core", choices=["full", "simple"], default="full",
                        help="dezero.core (Variables as grads) or dezero.core_simple")
    args = parser.parse_args(argv)
    grad = grad_full(args.x) if args.core == "full" else grad_simple(args.x)
    exact = 4 * args.x * np.exp(2 * args.x**2)
    print(f"core={args.core}  x={args.x}")
    print(f"x.grad = {grad!r}")
    print(f"4x e^(2x^2) = {float(exact)!r}")
    return grad


if __name__ == "__main__":
    main()
