"""dezero.distributed in a world of one (no mpiexec; the multi-rank faults run under a real
mpiexec in tests/test_distributed_faults.py)."""

import numpy as np

from dezero import optimizers
from dezero.models import MLP
from tests.errdb.base import rows

PAIRS = list(zip(np.arange(10), np.arange(10) % 2))


def _D():
    from dezero import distributed

    return distributed


def _world(ctx):
    D = _D()
    ctx.comm = D.init()
    ctx.loader = D.DistributedDataLoader(PAIRS, 4, ctx.comm)
    next(iter(ctx.loader))  # mid-epoch
    np.random.seed(0)  # noqa: NPY002  (dezero draws initial weights from it)
    ctx.model = MLP((3,))
    ctx.model(np.zeros((1, 2), np.float32))
    ctx.opt = _D().DistributedOptimizer(optimizers.SGD(), ctx.comm).setup(ctx.model)


M = ("mpi4py",)
ENTRIES = [
    *rows("distributed.init", _world, needs=M,
          bucket=(lambda c: _D().init(bucket_size=0), ValueError,
                  "bucket_size must be a positive number of bytes"),
          transport=(lambda c: _D().init(gpu_transport="fast"), ValueError,
                     "gpu_transport must be 'auto', 'nccl' or 'host'")),
    *rows("distributed.Communicator.allreduce", _world, needs=M,
          op=(lambda c: c.comm.allreduce(np.ones(2), op="max"), ValueError,
              "op must be 'sum' or 'mean', got 'max'")),
    *rows("distributed.Communicator.bcast", _world, needs=M,
          root=(lambda c: c.comm.bcast(1, root=3), ValueError, "root must be a rank in 0..0")),
    *rows("distributed.Communicator.bcast_params", _world, needs=M,
          root=(lambda c: c.comm.bcast_params(c.model, root=-1), ValueError,
                "root must be a rank in 0..0, got -1"),
          not_a_model=(lambda c: c.comm.bcast_params(3), TypeError,
                       "expected a Layer/Model or a sequence of Parameters, got int")),
    *rows("distributed.Communicator.allreduce_grads", _world, needs=M,
          not_a_model=(lambda c: c.comm.allreduce_grads("model"), TypeError,
                       "expected a Layer/Model or a sequence of Parameters, got str")),
    *rows("distributed.Communicator.bucket_size", _world, needs=M,
          negative=(lambda c: setattr(c.comm, "bucket_size", -5), ValueError,
                    "bucket_size must be a positive number of bytes, got -5")),
    *rows("distributed.scatter_dataset", _world, needs=M,
          empty=(lambda c: _D().scatter_dataset([], c.comm), ValueError,
                 "scatter_dataset: the data set is empty"),
          not_a_comm=(lambda c: _D().scatter_dataset(PAIRS, 3), TypeError,
                      "comm must be a Communicator")),
    *rows("distributed.DistributedDataLoader", _world, needs=M,
          zero=(lambda c: _D().DistributedDataLoader(PAIRS, 0, c.comm), ValueError,
                "batch_size must be a positive int"),
          float_size=(lambda c: _D().DistributedDataLoader(PAIRS, 2.5, c.comm), TypeError,
                      "batch_size must be an int")),
    *rows("distributed.DistributedDataLoader.load_state_dict", _world, needs=M,
          other_data=(lambda c: c.loader.load_state_dict(
              {"index": np.arange(5), "iteration": 0, "rng": None}), ValueError,
              "the saved order has shape (5,), expected (10,)"),
          position=(lambda c: c.loader.load_state_dict(
              {"index": np.arange(10), "iteration": 9, "rng": None}), ValueError,
              "position 9 is outside an epoch of 3 batches"),
          missing=(lambda c: c.loader.load_state_dict({}), ValueError, "missing keys"),
          other_batch=(lambda c: c.loader.load_state_dict(
              dict(c.loader.state_dict(), batch_size=5)), ValueError,
              "batch_size 5, and this loader has batch_size 4")),
    *rows("distributed.DistributedOptimizer", _world, needs=M,
          not_an_optimizer=(lambda c: _D().DistributedOptimizer(3, c.comm), TypeError,
                            "DistributedOptimizer wraps a dezero Optimizer, got int")),
    *rows("distributed.DistributedOptimizer.setup", _world, needs=M,
          text=(lambda c: _D().DistributedOptimizer(optimizers.SGD(), c.comm).setup("x"),
                TypeError, "setup() takes a Layer/Model")),
    *rows("distributed.DistributedOptimizer.update", _world, needs=M,
          no_setup=(lambda c: _D().DistributedOptimizer(optimizers.SGD(), c.comm).update(),
                    RuntimeError, "has no target: call optimizer.setup(model)")),
    *rows("distributed.mpiexec_command", needs=M,
          python=(lambda c: _D().mpiexec_command(python=3), TypeError, "expected str")),
]

EXEMPT = {
    "distributed.Communicator": "made by init() (see distributed.init)",
    "distributed.Communicator.is_root": "a property",
    "distributed.Communicator.barrier": "takes no argument",
    "distributed.Communicator.check_consistent": "raises the same ValueError on every rank "
                                                  "when ranks differ: tests/test_distributed.py "
                                                  "and test_distributed_faults.py (mpiexec)",
    "distributed.DistributedDataLoader.state_dict": "takes no argument",
    "distributed.DistributedDataLoader.generator": "a read-only property (the loader's own "
                                                   "Generator)",
    "distributed.GradientAveraging": "made by DistributedOptimizer (see its rows)",
    "distributed.GradientAveraging.update_grads": "called by the optimizer's update() with its "
                                                  "own parameters and gradients",
}
