"""Export the MNIST MLP to ONNX and run it in onnxruntime.

The model is the MLP of ``examples/mnist.py`` (784-1000-1000-10, ReLU). With ``--weights``
it loads weights saved by that example (``mnist_out/mnist_mlp.npz``, or a ``.safetensors``
file); otherwise it trains one epoch first. It then

1. saves the weights as ``mnist_mlp.safetensors`` (readable by any safetensors reader),
2. exports the model with ``dezero.onnx.export`` (symbolic batch axis) to ``mnist_mlp.onnx``,
3. runs the ONNX model in onnxruntime over the MNIST test set, in batches of
   ``--eval-batch`` (a batch size other than the one it was exported with), and prints the
   largest difference from dezero's own outputs and onnxruntime's test accuracy.

    python examples/export_onnx.py [--weights PATH] [--epochs 1] [--hidden 1000]
                                   [--out export_out] [--data-dir DIR] [--limit N]

Needs the extras ``onnx`` and ``safetensors`` (``pip install "dezero-next[onnx,safetensors]"``).
MNIST is read from the cache folder (``~/.dezero``, ``DEZERO_DATA_DIR`` or ``--data-dir``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dezero
import dezero.functions as F
from dezero import optimizers
from dezero.dataloaders import DataLoader
from dezero.models import MLP


def build_parser():
    parser = argparse.ArgumentParser(
        description="Export the MNIST MLP to ONNX and check it with onnxruntime."
    )
    parser.add_argument("--weights", default=None,
                        help="weights saved by examples/mnist.py (.npz or .safetensors); "
                             "without it, train --epochs first")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=1000, help="width of the 2 hidden layers")
    parser.add_argument("--eval-batch", type=int, default=1000,
                        help="batch size for the onnxruntime run over the test set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="export_out", help="folder for the exported files")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the MNIST .gz files (sets DEZERO_DATA_DIR)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training and test images (quick runs)")
    return parser


def train(model, train_set, epochs, batch_size):
    optimizer = optimizers.MomentumSGD(0.1).setup(model)
    loader = DataLoader(train_set, batch_size)
    for epoch in range(1, epochs + 1):
        start, total, n = time.perf_counter(), 0.0, 0
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            total += float(loss.data) * len(t)
            n += len(t)
        print(f"epoch {epoch}/{epochs}  train loss {total / n:.4f}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)


class Arrays:
    """Samples held as two arrays (the first ``--limit`` training images)."""

    def __init__(self, x, t):
        self.x, self.t = x, t

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.t[i]

    def get_batch(self, indices):
        return self.x[indices], self.t[indices]


def take(dataset, limit):
    """The first ``limit`` samples of ``dataset`` as two arrays (all of them without limit)."""
    n = len(dataset) if not limit else min(limit, len(dataset))
    return dataset.get_batch(np.arange(n))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.eval_batch < 1:
        parser.error("--epochs, --batch-size and --eval-batch must be at least 1")
    if args.data_dir:
        os.environ["DEZERO_DATA_DIR"] = os.path.abspath(os.path.expanduser(args.data_dir))
    try:
        import onnxruntime as ort

        from dezero import onnx as dezero_onnx
    except ImportError:
        parser.error('needs onnx and onnxruntime: pip install "dezero-next[onnx]"')
    from dezero.datasets import MNIST
    from dezero.utils import DownloadError

    np.random.seed(args.seed)  # noqa: NPY002  (dezero draws from the global RNG, like the book)
    try:
        train_set, test_set = MNIST(train=True), MNIST(train=False)
    except (DownloadError, ValueError, OSError) as e:
        print(f"MNIST is not available: {e}\nPass --data-dir with the four MNIST .gz files.")
        return 1

    model = MLP((args.hidden, args.hidden, 10), activation=F.relu)
    if args.weights:
        model(np.zeros((1, 784), dtype=np.float32))  # create the weights, then load them
        model.load_weights(args.weights)
        print(f"loaded {args.weights}")
    else:
        if args.limit:
            train_set = Arrays(*take(train_set, args.limit))
        train(model, train_set, args.epochs, args.batch_size)

    os.makedirs(args.out, exist_ok=True)
    weights = os.path.join(args.out, "mnist_mlp.safetensors")
    model.save_weights(weights)
    path = os.path.join(args.out, "mnist_mlp.onnx")
    x_test, t_test = take(test_set, args.limit)
    start = time.perf_counter()
    proto = dezero_onnx.export(model, x_test[:args.batch_size], path,
                               input_names=["image"], output_names=["logits"])
    print(f"exported {path} ({os.path.getsize(path) / 1e6:.1f} MB, opset "
          f"{proto.opset_import[0].version}, {len(proto.graph.node)} nodes) in "
          f"{time.perf_counter() - start:.2f} s; weights in {weights}")

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    worst, correct = 0.0, 0
    with dezero.test_mode(), dezero.no_grad():
        for i in range(0, len(x_test), args.eval_batch):
            x, t = x_test[i:i + args.eval_batch], t_test[i:i + args.eval_batch]
            (logits,) = session.run(None, {"image": x})
            want = model(x).data
            worst = max(worst, float(np.max(np.abs(logits - want))))
            correct += int(np.sum(logits.argmax(axis=1) == t))
    accuracy = correct / len(x_test)
    print(f"largest difference between onnxruntime and dezero: {worst:.3g}")
    print(f"onnxruntime test accuracy: {100 * accuracy:.2f}% ({len(x_test)} test images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
