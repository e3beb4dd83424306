"""Gradient descent on the Rosenbrock function y = 100 (x1 - x0^2)^2 + (x0 - 1)^2.

The minimum is at (1, 1), at the end of a long curved valley: with a learning rate of 0.001
plain gradient descent crawls along it (the book's step 28). Runs on the full engine or on
the book's stage-2 core (``--core simple``), which give the same iterates.

    python examples/rosenbrock.py [--iters 10000] [--lr 0.001] [--core full|simple]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

# the checkout first: the examples run without installing dezero
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def rosenbrock(x0, x1):
    return 100 * (x1 - x0**2) ** 2 + (x0 - 1) ** 2


def _array(grad):
    # the full core's grads are Variables, core_simple's are ndarrays
    return grad if isinstance(grad, np.ndarray) else grad.data


def descend(iters: int, lr: float, start=(0.0, 2.0), core: str = "full", log_every: int = 0):
    """Run ``iters`` gradient steps from ``start``; return the final (x0, x1) and the loss."""
    if core == "simple":
        from dezero.core_simple import Variable
    else:
        from dezero import Variable
    x0 = Variable(np.array(start[0]))
    x1 = Variable(np.array(start[1]))
    for i in range(iters):
        y = rosenbrock(x0, x1)
        x0.cleargrad()
        x1.cleargrad()
        y.backward()
        if log_every and i % log_every == 0:
            print(f"iter {i:6d}  x0 {float(x0.data):+.8f}  x1 {float(x1.data):+.8f}  "
                  f"y {float(y.data):.3e}")
        x0.data = x0.data - lr * _array(x0.grad)
        x1.data = x1.data - lr * _array(x1.grad)
    loss = float(rosenbrock(float(x0.data), float(x1.data)))
    return float(x0.data), float(x1.data), loss


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=10_000, help="gradient steps")
    parser.add_argument("--lr", type=float, default=0.001, help="learning rate")
    parser.add_argument("--x0", type=float, default=0.0, help="start x0")
    parser.add_argument("--x1", type=float, default=2.0, help="start x1")
    parser.add_argument("--core", choices=["full", "simple"], default="full")
    parser.add_argument("--log-every", type=int, default=0, help="print every N steps (0: off)")
    args = parser.parse_args(argv)

    start = (args.x0, args.x1)
    x0, x1, loss = descend(args.iters, args.lr, start, args.core, args.log_every)
    start_loss = float(rosenbrock(*start))
    print(f"core={args.core}  lr={args.lr}  iters={args.iters}  start={start}")
    print(f"x = ({x0:.8f}, {x1:.8f})  (minimum at (1, 1))")
    print(f"y = {loss:.3e}  (from {start_loss:.3e})")
    return {"x0": x0, "x1": x1, "loss": loss, "start_loss": start_loss}


if __name__ == "__main__":
    main()
