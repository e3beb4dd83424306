"""Classify the book's spiral data (3 classes, 300 points) with a small MLP: steps 48-50.

The book's network and optimizer: MLP((10, 3)) with sigmoid, SGD lr 1.0, batches of 30.
Every 50 epochs it prints the training loss and accuracy and those on the test split
(Spiral(train=False), 300 other points). The book stops after 300 epochs, where the test
accuracy is still climbing (0.94-0.96 depending on the seed); the default here is 1000
epochs, which reach 0.97-0.99 (0.98 with the default seed) in about 10 seconds.

    python examples/spiral.py [--epochs 1000] [--batch-size 30] [--hidden 10] [--lr 1.0]
                              [--seed 0] [--out DIR]

With --out, saves the weights (spiral_mlp.npz) and a plot of the curves and of the decision
regions (spiral.png).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dezero
import dezero.functions as F
from dezero import optimizers
from dezero.dataloaders import DataLoader
from dezero.datasets import Spiral
from dezero.models import MLP


def evaluate(model, loader):
    """Mean loss and accuracy of ``model`` over ``loader`` (no graph recorded)."""
    total_loss, total_acc, n = 0.0, 0.0, 0
    with dezero.no_grad():
        for x, t in loader:
            y = model(x)
            total_loss += float(F.softmax_cross_entropy(y, t).data) * len(t)
            total_acc += float(F.accuracy(y, t).data) * len(t)
            n += len(t)
    return total_loss / n, total_acc / n


def train(epochs=1000, batch_size=30, hidden=10, lr=1.0, seed=0, verbose=True):
    """Train on Spiral(train=True); returns the model and the per-epoch history."""
    np.random.seed(seed)  # noqa: NPY002  (dezero draws from the global RNG, like the book)
    train_set, test_set = Spiral(train=True), Spiral(train=False)
    train_loader = DataLoader(train_set, batch_size)
    test_loader = DataLoader(test_set, batch_size, shuffle=False)
    model = MLP((hidden, 3))
    optimizer = optimizers.SGD(lr).setup(model)
    history = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    for epoch in range(epochs):
        total_loss, total_acc = 0.0, 0.0
        for x, t in train_loader:
            y = model(x)
            loss = F.softmax_cross_entropy(y, t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            total_loss += float(loss.data) * len(t)
            total_acc += float(F.accuracy(y, t).data) * len(t)
        history["train_loss"].append(total_loss / len(train_set))
        history["train_acc"].append(total_acc / len(train_set))
        test_loss, test_acc = evaluate(model, test_loader)
        history["test_loss"].append(test_loss)
        history["test_acc"].append(test_acc)
        if verbose and ((epoch + 1) % 50 == 0 or epoch == 0 or epoch + 1 == epochs):
            print(
                f"epoch {epoch + 1:3d}  train loss {history['train_loss'][-1]:.4f} "
                f"acc {history['train_acc'][-1]:.4f}  test loss {test_loss:.4f} "
                f"acc {test_acc:.4f}"
            )
    return model, history


def plot(model, history, path):
    """Loss/accuracy curves and the decision regions over the test points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        axes[0].plot(epochs, history[key], label=label)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    for key, label in (("train_acc", "train"), ("test_acc", "test")):
        axes[1].plot(epochs, history[key], label=label)
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in axes[:2]:
        ax.legend()
        ax.grid(alpha=0.3)

    xx, yy = np.meshgrid(np.linspace(-1.1, 1.1, 300), np.linspace(-1.1, 1.1, 300))
    grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float32)
    with dezero.no_grad():
        regions = model(grid).data.argmax(axis=1).reshape(xx.shape)
    axes[2].contourf(xx, yy, regions, alpha=0.3, cmap="brg")
    test = Spiral(train=False)
    axes[2].scatter(test.data[:, 0], test.data[:, 1], c=test.label, s=12, cmap="brg")
    axes[2].set(title="decision regions (test points)", aspect="equal")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the weights and the plot")
    args = parser.parse_args(argv)

    model, history = train(args.epochs, args.batch_size, args.hidden, args.lr, args.seed)
    print(f"final test accuracy on Spiral(train=False): {history['test_acc'][-1]:.4f}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        weights = os.path.join(args.out, "spiral_mlp.npz")
        model.save_weights(weights)
        picture = os.path.join(args.out, "spiral.png")
        plot(model, history, picture)
        print(f"saved {weights} and {picture}")
    return history


if __name__ == "__main__":
    main()
