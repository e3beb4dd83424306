"""Train a multi-layer perceptron on MNIST (60,000 training, 10,000 test images).

The model is the book's MLP with ReLU: 784-1000-1000-10. By default it trains with
MomentumSGD (lr 0.1, momentum 0.9) whose learning rate follows a cosine curve down to 0
over the run, batches of 100, for 10 epochs, and reaches about 98.5% test accuracy. The loop
is ``dezero.training.Trainer``: a progress bar on a terminal (one line per epoch otherwise)
with the training and test loss and accuracy. ``--out`` receives the weights
(``mnist_mlp.npz``), the history (``history.json``, ``history.csv``), a plot of the curves
(``mnist_curves.png``) and a checkpoint per epoch (``checkpoints/``, the newest kept), from
which ``--resume`` continues bit for bit.

``--distributed`` trains data-parallel over MPI: start it with ``mpiexec -n N`` (``pip
install "dezero-next[mpi]"``; ``make train-distributed NP=N``). Every rank holds the model, each
global batch of ``--batch-size`` is split across the ranks (``DistributedDataLoader``: the
same batches on any number of ranks), the gradients are averaged before every update
(``DistributedOptimizer``), the test metrics are summed over the ranks, and only rank 0
prints and writes files. ``--resume`` works with any number of ranks.

    python examples/mnist.py [--epochs 10] [--batch-size 100] [--optimizer momentum]
                             [--lr LR] [--hidden 1000] [--seed 0] [--out mnist_out]
                             [--data-dir DIR] [--limit N] [--resume] [--gpu]
                             [--distributed] [--jit]

MNIST is read from ``--data-dir``, else the cache folder (``DEZERO_DATA_DIR`` or
``~/.dezero``), where it is downloaded when missing. Without ``--data-dir``, when MNIST cannot
be had (offline), the script says which files to put where and trains on the built-in Spiral
data instead; a ``--data-dir`` without the files is an error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import dezero.functions as F
from dezero import DataLoader, cuda, no_grad, optimizers
from dezero.metrics import Accuracy
from dezero.models import MLP
from dezero.training import CSVLogger, CurvePlot, ModelCheckpoint, Trainer

# name -> (optimizer class, default learning rate or None when it takes none)
OPTIMIZERS = {
    "sgd": (optimizers.SGD, 0.1),
    "momentum": (optimizers.MomentumSGD, 0.1),
    "adagrad": (optimizers.AdaGrad, 0.01),
    "adadelta": (optimizers.AdaDelta, None),
    "adam": (optimizers.Adam, 0.001),
    "adamw": (optimizers.AdamW, 0.001),
}


def load_data(data_dir, limit, say=print):
    """(train, test, name): MNIST, or Spiral when MNIST cannot be had and no --data-dir is set."""
    from dezero.datasets import MNIST, Spiral
    from dezero.utils import DownloadError

    try:
        train_set, test_set = MNIST(train=True), MNIST(train=False)
    except (DownloadError, ValueError, OSError) as e:
        if data_dir:
            raise SystemExit(f"error: --data-dir {data_dir!r} does not hold MNIST: {e}") from None
        say(f"MNIST is not available: {e}\nTraining on the built-in Spiral data instead.",
            flush=True)
        return Spiral(train=True), Spiral(train=False), "Spiral (MNIST unavailable)"
    for ds in (train_set, test_set) if limit else ():
        ds.data, ds.label = ds.data[:limit], ds.label[:limit]
    return train_set, test_set, "MNIST"


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train an MLP (784-1000-1000-10, ReLU) on MNIST with dezero.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="momentum")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: sgd/momentum 0.1, adagrad 0.01, "
                        "adam/adamw 0.001; adadelta takes none)")
    parser.add_argument("--schedule", choices=["cosine", "none"], default="cosine",
                        help="learning-rate schedule over the whole run")
    parser.add_argument("--hidden", type=int, default=1000, help="width of the 2 hidden layers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="mnist_out", help="folder for what the run writes")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four MNIST .gz files (sets DEZERO_DATA_DIR)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training and N test images (quick runs)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in OUT/checkpoints")
    parser.add_argument("--gpu", action="store_true", help="train on the GPU (CuPy)")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over MPI: run under mpiexec -n N; the global batch "
                        "is split across the ranks (needs dezero-next[mpi])")
    parser.add_argument("--jit", action="store_true",
                        help="record the training step once and replay it (dezero.jit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in ("epochs", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got "
                         f"{getattr(args, flag)}")
    if args.optimizer == "adadelta" and args.lr is not None:
        parser.error("--lr: adadelta has no learning rate")
    if args.gpu and not cuda.gpu_enable:
        parser.error("--gpu needs CuPy and a CUDA device, and none was found")
    if args.data_dir:
        os.environ["DEZERO_DATA_DIR"] = os.path.abspath(os.path.expanduser(args.data_dir))
    comm = None
    if args.distributed:
        from dezero import distributed

        comm = distributed.init()  # first: it picks this rank's GPU from its local rank
    root = comm is None or comm.is_root
    say = print if root else (lambda *a, **k: None)

    np.random.seed(args.seed)  # noqa: NPY002  (dezero draws from the global RNG, like the book)
    if args.gpu:
        cuda.cupy.random.seed(args.seed)

    train_set, test_set, name = load_data(args.data_dir, args.limit, say)
    epochs, batch_size, sizes = args.epochs, args.batch_size, (args.hidden, args.hidden, 10)
    if name != "MNIST":
        # 300 points: smaller batches and more epochs make as many updates as a short MNIST
        # run; a narrower net suits 2-D inputs
        epochs, batch_size = epochs * 30, 30
        sizes = (min(args.hidden, 100), min(args.hidden, 100), 3)

    model = MLP(sizes, activation=F.relu)
    if args.gpu:
        model.to_gpu()
    cls, default_lr = OPTIMIZERS[args.optimizer]
    lr = args.lr if args.lr is not None else default_lr
    optimizer = cls() if default_lr is None else cls(lr)
    if comm is None:
        train_loader = DataLoader(train_set, batch_size, gpu=args.gpu)
        test_loader = DataLoader(test_set, max(batch_size, 1000), shuffle=False, gpu=args.gpu)
    else:
        if batch_size < comm.size:
            parser.error(f"--batch-size {batch_size} is smaller than the {comm.size} ranks")
        # create the weights now, so that setup broadcasts rank 0's before the first step
        x0 = np.asarray(train_set[0][0])[None]
        with no_grad():
            model(cuda.as_cupy(x0) if args.gpu else x0)
        optimizer = distributed.DistributedOptimizer(optimizer, comm)
        # global batches split across the ranks: the same batches on any number of ranks
        train_loader = distributed.DistributedDataLoader(train_set, batch_size, comm,
                                                         seed=args.seed, gpu=args.gpu)
        test_loader = distributed.DistributedDataLoader(test_set, max(batch_size, 1000), comm,
                                                        shuffle=False, gpu=args.gpu)
        say(comm)
    optimizer.setup(model)
    scheduler = None
    if args.schedule == "cosine" and optimizer.lr_attr is not None:
        scheduler = optimizers.CosineAnnealingLR(optimizer, T_max=epochs * len(train_loader))
    stem = "mnist" if name == "MNIST" else "spiral"
    checkpoints = os.path.join(args.out, "checkpoints")
    callbacks = [CSVLogger(os.path.join(args.out, "history.csv")),
                 ModelCheckpoint(checkpoints, keep_last=1, monitor=None)]
    plot = os.path.join(args.out, f"{stem}_curves.png")
    if importlib.util.find_spec("matplotlib"):
        callbacks.append(CurvePlot(plot, title=name))
    else:
        plot = None
        say("matplotlib is not installed: no plot (pip install matplotlib)")
    trainer = Trainer(model, optimizer, F.softmax_cross_entropy, train_loader, test_loader,
                      metrics=[Accuracy()], callbacks=callbacks, scheduler=scheduler,
                      comm=comm, progress=False if args.no_progress else None, jit=args.jit)
    say(f"{name}: {len(train_set)} training / {len(test_set)} test samples (val_* below); "
          f"MLP{sizes} ReLU; {args.optimizer} lr {lr} ({args.schedule} schedule); "
          f"batch {batch_size}; {epochs} epoch{'s' if epochs != 1 else ''}; "
          f"{'GPU' if args.gpu else 'CPU'}"
          + (f"; {comm.size} ranks, {batch_size // comm.size} samples each per batch"
             if comm is not None else ""), flush=True)
    resume = None
    if args.resume:
        if comm is None:  # the weights must exist for their shapes to be compared
            with no_grad():
                model(np.asarray(train_set[0][0])[None])
        # the newest checkpoint of this model (another data set's run may share the folder)
        resume = ModelCheckpoint.latest(checkpoints, model)
        say(f"resuming from {resume}" if resume else "no checkpoint yet: starting afresh")
    try:
        history = trainer.fit(epochs, resume=resume)
    except KeyboardInterrupt:
        # the Trainer stopped between two batches: what it holds continues bit for bit
        path = os.path.join(checkpoints, ModelCheckpoint.checkpoint_name(trainer.epoch,
                                                                         trainer.iteration))
        if root:
            os.makedirs(checkpoints, exist_ok=True)
        trainer.save_checkpoint(path)
        again = " ".join(["python", "examples/mnist.py", *(argv if argv is not None
                                                            else sys.argv[1:])])
        if "--resume" not in again:
            again += " --resume"
        say(f"saved {path}; continue with: {again}  (make train ARGS=\"... --resume\")",
            flush=True)
        raise SystemExit(130) from None
    if not root:  # rank 0 writes the files
        return {"dataset": name, "history": history, "weights": None, "plot": plot}

    weights = os.path.join(args.out, f"{stem}_mlp.npz")
    model.save_weights(weights)
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({"dataset": name, "args": vars(args), "history": history}, f, indent=1)
    print(f"final test accuracy ({name}, {len(test_set)} test samples): "
          f"{100 * history[-1]['val_acc']:.2f}%\nsaved {weights} and the rest in {args.out}")
    return {"dataset": name, "history": history, "weights": weights, "plot": plot}


if __name__ == "__main__":
    main()
