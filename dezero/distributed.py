"""dezero.distributed: data-parallel training over MPI, one process per core, GPU or host.

The only module of dezero that imports mpi4py (lazily, in :func:`init`). Start the same
program once per process with ``mpiexec``; every process holds a full replica of the model,
trains on its own share of each global batch, and the gradients are averaged across the
processes ("ranks") before every update, so that all replicas stay identical::

    comm = distributed.init()                      # size 1 without mpiexec
    train = distributed.scatter_dataset(MNIST(train=True), comm, shuffle=True)
    model = MLP((1000, 10))
    optimizer = distributed.DistributedOptimizer(optimizers.Adam(), comm).setup(model)
    for x, t in DataLoader(train, batch_size=100 // comm.size):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()                         # averages the gradients, then updates

    mpiexec -n 2 python train.py                   # pip install "dezero-next[mpi]"

How it works
------------
- Gradients are packed (scaled by ``1/size`` on the way) into a few contiguous buffers
  ("buckets") of at most ``bucket_size`` bytes (default 25 MiB; one bucket per dtype and
  device at least), each reduced with one MPI ``Allreduce`` in place; the buffers are
  allocated once per model layout and reused on every step. Each buffer has its
  parameters' dtype (float64 models reduce in float64; float16 is carried as float32 over
  MPI). After the reduction each ``param.grad`` is a view into its bucket, valid until the
  next reduction.
- A parameter without a gradient on some rank (an unused branch) contributes zeros; its
  averaged gradient is still ``sum / size``. A parameter without a gradient on every rank
  keeps ``grad = None``, as in single-process training. A small integer allreduce per step
  carries these flags and a fingerprint of the parameter layout, so ranks whose models
  differ get an error instead of a hang.
- The allreduce is not overlapped with backward: on CPUs the ranks already use every core
  for the backward pass, and ``benchmarks/bench_distributed.py`` measures the reduction at a
  few percent of a step, which bounds what overlap could win.
- GPU: :func:`init` makes device ``local_rank % device_count`` current (call it before moving
  a model to the GPU). Where CuPy has NCCL and every rank has a device of its own, buckets
  are reduced by NCCL on the device; otherwise (ranks sharing a GPU, no NCCL) they are staged
  through host memory and reduced over MPI. ``repr(comm)`` shows which.
- Faults: with more than one rank, any rank that ends with a non-zero status ends every rank
  within seconds (instead of leaving the others blocked in an allreduce): an uncaught
  exception prints the rank and its traceback and calls ``MPI_Abort``; ``sys.exit(n)`` /
  ``raise SystemExit(n)`` with a non-zero ``n`` says so and calls ``MPI_Abort(n)`` at exit;
  a signal ends the process without MPI_Finalize, which ``mpiexec`` turns into the end of
  the job. Ctrl-C does the same, also on a rank blocked inside MPI (a watcher thread aborts
  the job if the main thread has not within 2 seconds). A rank that ends with status 0
  before the others waits for them at MPI_Finalize, as usual.
- BatchNorm keeps per-rank statistics: each rank normalises with the mean and variance of its
  own share of the batch and updates its own running averages (what ChainerMN and PyTorch
  DDP do without SyncBatchNorm). Gradients are still averaged, so the parameters stay
  identical; only the running statistics differ between ranks (rank 0's are the ones
  checkpointed). With BatchNorm the result therefore depends on the per-rank batch size,
  not only on the global one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import OrderedDict
from typing import Any

import numpy as np

from dezero import cuda
from dezero.core import Parameter, Variable
from dezero.dataloaders import DataLoader
from dezero.layers import Layer

__all__ = ["DEFAULT_BUCKET_SIZE", "Communicator", "DistributedDataLoader",
           "DistributedOptimizer", "GradientAveraging", "init", "mpiexec_command",
           "scatter_dataset"]

DEFAULT_BUCKET_SIZE = 25 * 2**20  # bytes per gradient bucket (PyTorch DDP's default)
_ABORT_GRACE_S = 2.0  # after Ctrl-C, how long the main thread has to abort by itself
_OUTPUT_GRACE_S = 0.5  # before MPI_Abort, for the launcher to forward the error message
_OPS = ("sum", "mean")


def _import_mpi():
    """``mpi4py.MPI``, or an ImportError that names the extra to install."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as e:  # RuntimeError: mpi4py without an MPI library
        raise ImportError(
            f"dezero.distributed needs mpi4py and an MPI library ({type(e).__name__}: {e}); "
            f'install them with `pip install "dezero-next[mpi]"` (mpi4py and the mpich wheel, '
            f"which ships mpiexec), or install mpi4py against your system's MPI"
        ) from e
    return MPI


_world: Communicator | None = None


def init(*, bucket_size: int | None = None, gpu_transport: str = "auto") -> Communicator:
    """The world communicator: every process started by ``mpiexec`` (size 1 without it).

    The first call initialises MPI (through mpi4py), selects the GPU from the local rank
    where CuPy has a device, and, when there is more than one rank, installs the handlers
    that abort the whole job on an uncaught exception or Ctrl-C. Later calls return the same
    object.

    Parameters
    ----------
    bucket_size : int, optional
        Largest gradient bucket in bytes (default ``DEFAULT_BUCKET_SIZE``, 25 MiB).
    gpu_transport : {"auto", "nccl", "host"}
        How CuPy arrays are reduced: NCCL on the device, or staged through host memory
        over MPI. "auto" takes NCCL where CuPy has it and every rank has its own GPU.

    Raises
    ------
    ImportError
        mpi4py (or an MPI library) is missing; the message names the extra ``dezero-next[mpi]``.

    Examples
    --------
    >>> from dezero import distributed
    >>> comm = distributed.init()          # run without mpiexec: a world of one
    >>> comm.rank, comm.size, comm.is_root
    (0, 1, True)
    >>> comm.allreduce(np.array([1.0, 2.0]), op="mean")
    array([1., 2.])
    """
    global _world
    if gpu_transport not in ("auto", "nccl", "host"):
        raise ValueError(f"gpu_transport must be 'auto', 'nccl' or 'host', got {gpu_transport!r}")
    if _world is None:
        MPI = _import_mpi()
        _world = Communicator(MPI.COMM_WORLD.Dup(), bucket_size=bucket_size or
                              DEFAULT_BUCKET_SIZE, gpu_transport=gpu_transport)
        if _world.size > 1:
            _install_fault_handlers(_world)
    elif bucket_size is not None:
        _world.bucket_size = bucket_size
    return _world


# =============================================================================
# Communicator
# =============================================================================
def _named(target) -> list[tuple[str, Parameter]]:
    """``(name, parameter)`` pairs of a Layer, of a sequence of Parameters, or given."""
    if isinstance(target, Layer):
        return list(target.named_params())
    try:
        params = list(target)
    except TypeError:
        raise TypeError(f"expected a Layer/Model or a sequence of Parameters, got "
                        f"{type(target).__name__}") from None
    if params and all(isinstance(e, tuple) and len(e) == 2 for e in params):
        return params
    bad = [type(p).__name__ for p in params if not isinstance(p, Parameter)]
    if bad:
        raise TypeError(f"expected a Layer/Model or a sequence of Parameters, got {bad[0]}")
    return [(str(i), p) for i, p in enumerate(params)]


def _meta(name: str, data) -> tuple:
    if data is None:
        return (name, None, None)
    return (name, tuple(data.shape), np.dtype(data.dtype).name)


def _describe_meta(shape, dtype) -> str:
    return "uninitialised (data None)" if shape is None else f"shape {shape} {dtype}"


def _mismatch(ref: list, other: list, rank: int, kind: str) -> str:
    """Say how rank ``rank``'s list of (name, shape, dtype) differs from rank 0's."""
    a = {m[0]: m[1:] for m in ref}
    b = {m[0]: m[1:] for m in other}
    for name, (shape, dtype) in a.items():
        if name not in b:
            return f"{kind} {name!r} exists on rank 0 but not on rank {rank}"
        if b[name] != (shape, dtype):
            return (f"{kind} {name!r} differs across ranks: rank 0 has "
                    f"{_describe_meta(shape, dtype)}, rank {rank} has {_describe_meta(*b[name])}")
    for name in b:
        if name not in a:
            return f"{kind} {name!r} exists on rank {rank} but not on rank 0"
    return (f"the {kind}s come in a different order on rank {rank} than on rank 0: "
            f"{[m[0] for m in other]} vs {[m[0] for m in ref]}")


class _Bucket:
    """One contiguous buffer holding the gradients of consecutive parameters."""

    __slots__ = ("buffer", "dtype", "entries", "host")

    def __init__(self, xp, dtype, entries, total, host_staged):
        self.dtype = np.dtype(dtype)  # the parameters' dtype
        wire = np.float32 if self.dtype == np.float16 and (xp is np or host_staged) else dtype
        self.entries = entries  # (index in the parameter list, offset, size, shape)
        self.buffer = xp.empty(total, dtype=wire)
        self.host = np.empty(total, dtype=wire) if host_staged else None


class _Layout:
    """The buckets for one list of parameters (names, shapes, dtypes, devices)."""

    def __init__(self, signature, bucket_size: int, host_staged: bool):
        self.signature = signature
        digest = hashlib.blake2b(repr(signature).encode(), digest_size=7).digest()
        self.key = int.from_bytes(digest, "little")  # fits in int64, also negated
        self.header = np.zeros(2, dtype=np.int64)
        self.flags = np.zeros(2 + len(signature), dtype=np.int64)
        self.buckets: list[_Bucket] = []
        groups: dict[tuple, list] = {}  # (dtype, on gpu) -> parameter indices, in order
        for i, (_, shape, dtype, gpu) in enumerate(signature):
            groups.setdefault((dtype, gpu), []).append((i, shape))
        for (dtype, gpu), members in groups.items():
            xp = cuda.cupy if gpu else np
            itemsize = np.dtype(dtype).itemsize
            entries, total = [], 0
            for i, shape in members:
                size = int(np.prod(shape, dtype=np.int64))
                if entries and (total + size) * itemsize > bucket_size:
                    self.buckets.append(_Bucket(xp, dtype, entries, total, gpu and host_staged))
                    entries, total = [], 0
                entries.append((i, total, size, shape))
                total += size
            if entries:
                self.buckets.append(_Bucket(xp, dtype, entries, total, gpu and host_staged))

    @property
    def nbytes(self) -> int:
        return sum(b.buffer.nbytes for b in self.buckets)


class Communicator:
    """A group of ranks (processes) that reduce arrays together; made by :func:`init`.

    Attributes: ``rank`` (0..size-1), ``size``, ``local_rank`` (rank among the processes on
    this host), ``local_size``, ``is_root`` (rank 0), ``device`` (the GPU id this rank uses,
    or None), ``gpu_transport`` ("nccl", "host" or None), ``bucket_size`` (bytes) and
    ``mpi_comm`` (the mpi4py communicator, a duplicate of ``COMM_WORLD``).
    """

    def __init__(self, mpi_comm, bucket_size: int = DEFAULT_BUCKET_SIZE,
                 gpu_transport: str = "auto"):
        MPI = _import_mpi()
        self._MPI = MPI
        self.mpi_comm = mpi_comm
        self.rank: int = mpi_comm.Get_rank()
        self.size: int = mpi_comm.Get_size()
        node = mpi_comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank: int = node.Get_rank()
        self.local_size: int = node.Get_size()
        node.Free()
        self._layouts: OrderedDict = OrderedDict()
        self.bucket_size = bucket_size
        self._nccl = None
        self.device: int | None = None
        self.gpu_transport: str | None = self._choose_gpu(gpu_transport)

    # --- set-up -------------------------------------------------------------------
    @property
    def bucket_size(self) -> int:
        return self._bucket_size

    @bucket_size.setter
    def bucket_size(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"bucket_size must be a positive number of bytes, got {value!r}")
        self._bucket_size = int(value)
        self._layouts.clear()

    def _choose_gpu(self, requested: str) -> str | None:
        if requested not in ("auto", "nccl", "host"):
            raise ValueError(
                f"gpu_transport must be 'auto', 'nccl' or 'host', got {requested!r}"
            )
        nccl_ok = 0
        if cuda.gpu_enable:
            count = cuda.cupy.cuda.runtime.getDeviceCount()
            self.device = self.local_rank % count
            cuda.cupy.cuda.Device(self.device).use()
            nccl_ok = int(cuda.get_nccl() is not None and self.local_size <= count)
        # every rank must pick the same transport
        nccl_ok = self.mpi_comm.allreduce(nccl_ok, op=self._MPI.MIN)
        if self.device is None:
            return None
        if requested == "nccl" and not nccl_ok:
            raise ValueError(
                "gpu_transport='nccl': NCCL needs CuPy's NCCL bindings and one GPU per rank "
                "on every host; use gpu_transport='host' or 'auto'"
            )
        return "nccl" if nccl_ok and requested != "host" else "host"

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        lib = " ".join(self._MPI.Get_library_version().replace("Version:", "").split()[:2])
        if self.device is None:
            gpu = "none"
        elif self.gpu_transport == "nccl":
            gpu = f"device {self.device}, NCCL"
        else:
            gpu = f"device {self.device}, staged through host memory over MPI"
        return (f"Communicator(rank={self.rank}, size={self.size}, local_rank="
                f"{self.local_rank}, mpi={lib!r}, gpu={gpu!r}, bucket_size={self.bucket_size})")

    # --- collectives ------------------------------------------------------------
    def barrier(self) -> None:
        """Wait until every rank has called ``barrier()``."""
        self.mpi_comm.Barrier()

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``obj`` (any picklable object), returned on every rank."""
        self._check_root(root)
        return self.mpi_comm.bcast(obj, root=root)

    def _check_root(self, root: int) -> None:
        if not 0 <= root < self.size:
            raise ValueError(f"root must be a rank in 0..{self.size - 1}, got {root}")

    def allreduce(self, array, op: str = "sum"):
        """The elementwise sum (``op="sum"``) or mean (``op="mean"``) of ``array`` over ranks.

        ``array`` is a NumPy or CuPy array, a Variable (its data is used) or a number; the
        result is a new array on the same device (``array`` is left unchanged); "mean" of
        an integer array is float64.

        >>> comm = init()
        >>> x = np.arange(3)
        >>> comm.allreduce(x), x
        (array([0, 1, 2]), array([0, 1, 2]))
        """
        if op not in _OPS:
            raise ValueError(f"op must be 'sum' or 'mean', got {op!r}")
        data = array.data if isinstance(array, Variable) else array
        if isinstance(data, cuda.array_types) and not isinstance(data, np.ndarray):
            xp = cuda.cupy
            out = xp.ascontiguousarray(data).copy()
        else:
            xp = np
            out = np.array(data, copy=True, order="C")
        if out.dtype == np.float16 and (xp is np or self.gpu_transport != "nccl"):
            out = out.astype(np.float32)  # MPI has no portable float16 sum
        self._reduce_inplace(out, None)
        if op == "mean":
            if out.dtype.kind in "biu":
                out = out / self.size
            else:
                out /= self.size
        dtype = np.asarray(data).dtype if xp is np else data.dtype
        if out.dtype != dtype and dtype == np.float16:
            out = out.astype(dtype)
        return out

    def _reduce_inplace(self, buf, host) -> None:
        """Sum ``buf`` (contiguous, NumPy or CuPy) over all ranks, in place."""
        if self.size == 1:
            return
        MPI = self._MPI
        if isinstance(buf, np.ndarray):
            self.mpi_comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        elif self.gpu_transport == "nccl":
            self._nccl_allreduce(buf)
        else:  # staged through host memory
            if host is None:
                host = cuda.as_numpy(buf)
            else:
                buf.get(out=host)
            self.mpi_comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            buf.set(host)

    def _nccl_allreduce(self, buf) -> None:
        nccl = cuda.get_nccl()
        if self._nccl is None:
            uid = nccl.get_unique_id() if self.rank == 0 else None
            uid = self.mpi_comm.bcast(uid, root=0)
            self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
        dtypes = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                  "float64": nccl.NCCL_FLOAT64, "int32": nccl.NCCL_INT32,
                  "int64": nccl.NCCL_INT64}
        kind = dtypes.get(buf.dtype.name)
        if kind is None:
            raise TypeError(f"NCCL allreduce: unsupported dtype {buf.dtype}")
        stream = cuda.cupy.cuda.get_current_stream()
        self._nccl.allReduce(buf.data.ptr, buf.data.ptr, buf.size, kind, nccl.NCCL_SUM,
                             stream.ptr)

    def _bcast_inplace(self, array, root: int) -> None:
        """Overwrite ``array`` (NumPy or CuPy) with rank ``root``'s, as raw bytes."""
        if isinstance(array, np.ndarray):
            flat = array.reshape(-1)
            if flat.base is None or not array.flags.c_contiguous:  # reshape copied
                flat = np.ascontiguousarray(array).reshape(-1)
                self.mpi_comm.Bcast(flat.view(np.uint8), root=root)
                array[...] = flat.reshape(array.shape)
            else:
                self.mpi_comm.Bcast(flat.view(np.uint8), root=root)
        else:
            host = np.ascontiguousarray(cuda.as_numpy(array)).reshape(-1)
            self.mpi_comm.Bcast(host.view(np.uint8), root=root)
            array[...] = cuda.cupy.asarray(host.reshape(array.shape))

    def check_consistent(self, meta: list, what: str, kind: str = "parameter") -> None:
        """Raise the same ValueError on every rank when ranks' ``(name, shape, dtype)``
        lists differ; the message names the first parameter that differs."""
        everyone = self.mpi_comm.allgather(meta)
        for r, other in enumerate(everyone[1:], 1):
            if other != everyone[0]:
                raise ValueError(f"{what}: {_mismatch(everyone[0], other, r, kind)}")

    def bcast_params(self, model, root: int = 0) -> None:
        """Overwrite every parameter (and buffer, such as BatchNorm's running statistics)
        of ``model`` with rank ``root``'s.

        ``model`` is a Layer/Model or a sequence of Parameters. Parameters still
        uninitialised (lazy layers before their first call) are left alone.

        Raises
        ------
        ValueError
            On every rank, when a parameter's name, shape or dtype differs across ranks
            (the message names it).
        """
        self._check_root(root)
        named = _named(model)
        arrays = [(n, p.data) for n, p in named]
        if isinstance(model, Layer):
            arrays += [("buffer " + n, b) for n, b in model.named_buffers()]
        self.check_consistent([_meta(n, a) for n, a in arrays], "bcast_params")
        if self.size == 1:
            return
        for _, a in arrays:
            if a is not None:
                self._bcast_inplace(a, root)

    def _layout(self, named) -> _Layout:
        signature = tuple(
            (n, tuple(p.data.shape), np.dtype(p.data.dtype).name,
             not isinstance(p.data, np.ndarray))
            for n, p in named
        )
        layout = self._layouts.get(signature)
        if layout is None:
            layout = _Layout(signature, self.bucket_size, self.gpu_transport == "host")
            self._layouts[signature] = layout
            while len(self._layouts) > 4:  # a few models at once; drop the oldest
                self._layouts.popitem(last=False)
        else:
            self._layouts.move_to_end(signature)
        return layout

    def allreduce_grads(self, model) -> None:
        """Replace every gradient of ``model`` by its mean over the ranks, in place.

        ``model`` is a Layer/Model or a sequence of Parameters. Gradients travel packed in
        buckets (see the module docstring); a parameter with no gradient on this rank
        counts as zeros, and one with no gradient on any rank keeps ``grad = None``.
        Uninitialised parameters (data None) are skipped.

        Raises
        ------
        ValueError
            On every rank, when the ranks' parameters (names, shapes, dtypes) differ.
        """
        named = [(n, p) for n, p in _named(model) if p.data is not None]
        if self.size == 1 or not named:
            return
        layout = self._layout(named)
        MPI = self._MPI
        # a fixed-size header first: ranks with other parameter counts would otherwise
        # meet in an allreduce of flags of different lengths (MPI's "Message truncated")
        header = layout.header
        header[0], header[1] = layout.key, -layout.key
        self.mpi_comm.Allreduce(MPI.IN_PLACE, header, op=MPI.MAX)
        if header[0] != -header[1]:  # max(key) != min(key): the layouts differ
            self.check_consistent([_meta(n, p.data) for n, p in named], "allreduce_grads")
            raise ValueError("allreduce_grads: the ranks' parameters differ (devices or order)")
        flags = layout.flags
        flags[0], flags[1] = layout.key, -layout.key
        for i, (_, p) in enumerate(named):
            flags[2 + i] = p.grad is not None
        self.mpi_comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
        if flags[0] != -flags[1]:  # max(key) != min(key): the layouts differ
            self.check_consistent([_meta(n, p.data) for n, p in named], "allreduce_grads")
            raise ValueError("allreduce_grads: the ranks' parameters differ (devices or order)")
        scale = 1.0 / self.size
        for bucket in layout.buckets:
            buf = bucket.buffer
            xp = np if isinstance(buf, np.ndarray) else cuda.cupy
            for i, off, size, _ in bucket.entries:
                g = named[i][1].grad
                if g is None:
                    buf[off:off + size] = 0
                else:  # scaled while packed: the mean needs no second pass over the buffer
                    xp.multiply(g.data.reshape(-1), scale, out=buf[off:off + size])
            self._reduce_inplace(buf, bucket.host)
            for i, off, size, shape in bucket.entries:
                if flags[2 + i]:
                    g = buf[off:off + size].reshape(shape)
                    if g.dtype != bucket.dtype:
                        g = g.astype(bucket.dtype)
                    named[i][1].grad = Variable(g)


# =============================================================================
# DistributedOptimizer
# =============================================================================
class DistributedOptimizer:
    """Make an optimizer average the gradients over the ranks before every step.

    It adds one gradient hook to the optimizer, first in its pipeline (before every other
    hook, those added earlier included): the mean over the ranks of each gradient, packed
    in buckets (``Communicator.allreduce_grads``). Everything else is the wrapped optimizer:
    attributes are read from and written to it (``t``, the learning rate that schedules
    set, ``state_dict``, ``add_hook`` ...), so schedules and checkpoints work unchanged, and
    hooks such as WeightDecay and ClipGrad see the averaged gradients. Since the averaging
    is part of the optimizer's ``update()``, a ``dezero.jit`` step replays it too.

    ``setup(model)`` checks that every rank has the same parameters (names, shapes, dtypes;
    a ValueError naming the first that differs) and broadcasts rank 0's values (and
    buffers), so ranks that started from different random weights become identical.
    Parameters still uninitialised then (lazy layers) are broadcast as soon as they exist, at
    the first ``update()`` at the latest: for the first step to match single-process
    training, give layers their ``in_size`` or run one forward pass before ``setup``.

    >>> from dezero import optimizers
    >>> from dezero.models import MLP
    >>> model = MLP((3, 2))
    >>> opt = DistributedOptimizer(optimizers.SGD(lr=0.1)).setup(model)
    >>> opt.lr
    0.1
    """

    _own = ("optimizer", "comm", "averaging")

    def __init__(self, optimizer, comm: Communicator | None = None):
        from dezero.optimizers import Optimizer

        if isinstance(optimizer, DistributedOptimizer) or any(
                isinstance(h, GradientAveraging) for h in getattr(optimizer, "hooks", ())):
            raise TypeError("the optimizer is already a DistributedOptimizer")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"DistributedOptimizer wraps a dezero Optimizer, got {type(optimizer).__name__}"
            )
        comm = comm if comm is not None else init()
        averaging = GradientAveraging(comm, optimizer)
        optimizer.hooks.insert(0, averaging)
        object.__setattr__(self, "optimizer", optimizer)
        object.__setattr__(self, "comm", comm)
        object.__setattr__(self, "averaging", averaging)

    def __getattr__(self, name):
        if name in DistributedOptimizer._own:  # not set yet (during unpickling)
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):
        if name in DistributedOptimizer._own:
            object.__setattr__(self, name, value)
        else:
            setattr(self.optimizer, name, value)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({type(self.optimizer).__name__}, {self.comm!r})"

    def setup(self, target):
        """Attach to ``target`` (on every rank) and broadcast rank 0's parameters."""
        self.optimizer.setup(target)
        named = _named(target)
        self.comm.check_consistent([_meta(n, p.data) for n, p in named],
                                   "DistributedOptimizer.setup")
        self.comm.bcast_params(target)
        self.averaging.pending = [n for n, p in named if p.data is None]
        return self

    def update(self) -> None:
        """The wrapped optimizer's ``update()`` (which averages first)."""
        self.optimizer.update()


class GradientAveraging:
    """The gradient hook that ``DistributedOptimizer`` adds: ``update_grads(params, grads)``
    returns the mean of each gradient over the ranks (None where no rank has one), after
    broadcasting rank 0's values of parameters that lazy layers created since ``setup``."""

    def __init__(self, comm: Communicator, optimizer):
        self.comm = comm
        self.optimizer = optimizer
        self.pending: list[str] = []  # parameters still uninitialised at setup

    def update_grads(self, params, grads):
        named = [(n, p) for n, p in self.optimizer.named_params() if p.data is not None]
        if self.pending:
            self._sync_new(dict(named))
        for p, g in zip(params, grads):  # the gradients as they stand at this point
            if g is None:
                p.grad = None
            elif p.grad is None or p.grad.data is not g:
                p.grad = Variable(g)
        self.comm.allreduce_grads(named)
        return [None if p.grad is None else p.grad.data for p in params]

    def _sync_new(self, named: dict) -> None:
        meta = [_meta(n, named[n].data if n in named else None) for n in self.pending]
        self.comm.check_consistent(meta, "DistributedOptimizer.update (lazily created)")
        ready = [n for n in self.pending if n in named]
        if self.comm.size > 1:
            for n in ready:
                self.comm._bcast_inplace(named[n].data, 0)
        self.pending = [n for n in self.pending if n not in ready]


# =============================================================================
# Data
# =============================================================================
class _Shard:
    """The samples of ``dataset`` at ``indices``, keeping its batched gathering."""

    def __init__(self, dataset, indices: np.ndarray):
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        n = len(self.indices)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"shard indices must be integers, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a shard of length {n}")
        return self.dataset[int(self.indices[i])]

    def get_batch(self, indices):
        picked = self.indices[np.asarray(indices)]
        get_batch = getattr(self.dataset, "get_batch", None)
        if get_batch is not None:
            return get_batch(picked)
        samples = [self.dataset[int(i)] for i in picked]
        x = np.stack([np.asarray(s[0]) for s in samples])
        if all(s[1] is None for s in samples):
            return x, None
        return x, np.stack([np.asarray(s[1]) for s in samples])

    def __repr__(self) -> str:
        return f"_Shard({len(self)} of {len(self.dataset)} samples)"


def scatter_dataset(dataset, comm: Communicator, shuffle: bool = False, seed: int = 0):
    """This rank's shard of ``dataset``: equal-length shards whose union is the dataset.

    The order is ``0..N-1``, or with ``shuffle`` a permutation drawn from
    ``np.random.RandomState(seed)`` (the same on every rank, no communication; NumPy's
    global generator is left alone). Rank ``r`` gets the ``r``-th of ``size`` consecutive
    chunks of that order. When ``N`` is not a multiple of ``size``, the first
    ``size - N % size`` samples of the order are appended to it, so every shard has
    ``ceil(N / size)`` samples (every rank runs the same number of steps, which collective
    training needs) and those few samples are seen twice per epoch (as in ChainerMN).
    Shards are disjoint when ``size`` divides ``N``.

    The shard supports ``len``, indexing and ``get_batch`` (used by DataLoader); its
    ``indices`` attribute holds the dataset indices it covers.

    Raises
    ------
    ValueError
        When the data set is empty, or its length differs across ranks.

    >>> shard = scatter_dataset(np.arange(10.0).reshape(5, 2), init())
    >>> len(shard), shard.indices
    (5, array([0, 1, 2, 3, 4]))
    """
    if not isinstance(comm, Communicator):
        raise TypeError(f"scatter_dataset: comm must be a Communicator (distributed.init()), "
                        f"got {type(comm).__name__}")
    n = len(dataset)
    lengths = comm.mpi_comm.allgather(n)
    if len(set(lengths)) != 1:
        raise ValueError(f"scatter_dataset: the data set's length differs across ranks: {lengths}")
    if n == 0:
        raise ValueError("scatter_dataset: the data set is empty")
    order = np.random.RandomState(seed).permutation(n) if shuffle else np.arange(n)
    per_rank = -(-n // comm.size)
    extra = per_rank * comm.size - n
    if extra:
        order = np.concatenate([order, order[np.arange(extra) % n]])
    return _Shard(dataset, order[comm.rank * per_rank:(comm.rank + 1) * per_rank])


class DistributedDataLoader(DataLoader):
    """Global batches of ``batch_size`` samples, each split across the ranks of ``comm``.

    Every rank draws the same order of the whole data set per epoch from a Generator of
    its own seeded with ``seed`` (no communication). Global batch ``i`` is
    ``order[i*B:(i+1)*B]``; rank ``r`` gets the ``r``-th of ``comm.size`` contiguous parts
    of it (equal when ``size`` divides ``B``, else differing by one sample). The sequence
    of global batches does not depend on the number of ranks: N ranks train on the batches
    one process would, and ``state_dict()`` (the order, the position in the epoch and the
    Generator's state) resumes on any number of ranks. A final global batch with fewer
    samples than ranks is dropped (a rank would get none). Otherwise a DataLoader: ``len``
    is the number of (global) batches per epoch, ``gpu`` gives CuPy batches.

    Contrast :func:`scatter_dataset`, which gives each rank a fixed shard for every epoch
    (ChainerMN's way) to use with a plain DataLoader.

    >>> pairs = [(x, x % 2) for x in range(10)]           # or a Dataset
    >>> loader = DistributedDataLoader(pairs, batch_size=4, shuffle=False)  # on init()
    >>> [x.tolist() for x, t in loader]   # a world of one: this rank gets all of each batch
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """

    def __init__(self, dataset, batch_size, comm: Communicator | None = None,
                 shuffle: bool = True, seed: int = 0, gpu: bool = False):
        self.comm = comm if comm is not None else init()
        if isinstance(batch_size, (int, np.integer)) and 0 < batch_size < self.comm.size:
            raise ValueError(
                f"DistributedDataLoader: batch_size {batch_size} (the global batch) is smaller "
                f"than the number of ranks, {self.comm.size}"
            )
        super().__init__(dataset, batch_size, shuffle=shuffle, gpu=gpu, rng=seed,
                         part=(self.comm.rank, self.comm.size))

    @property
    def generator(self) -> np.random.Generator:
        """The loader's own Generator (seeded with ``seed``): the orders of the epochs."""
        return self.rng

    def state_dict(self) -> dict:
        """``{'index': the epoch's order, 'iteration': position, 'rng': Generator state}``:
        the same on every rank, and valid for any number of ranks."""
        state = super().state_dict()
        del state["batch_size"]  # the global batch: the same on any number of ranks
        return state

    def load_state_dict(self, state) -> None:
        """Restore ``state_dict()``; the next ``for`` loop continues from the saved batch.

        Also takes a plain DataLoader's state (its order and position; when it drew from
        NumPy's global generator, ``'rng'`` is None and later epochs come from this loader's
        own Generator), so a single-process run resumes distributed.

        Raises:
            ValueError: missing keys, an order of another length than the data set, or a
                position outside the epoch; nothing is changed then.
        """
        if hasattr(state, "keys") and "rng" in state and state["rng"] is None:
            state = {**state, "rng": self.rng.bit_generator.state}
        super().load_state_dict(state)


def mpiexec_command(python: str | None = None) -> list[str] | None:
    """The ``mpiexec`` to launch ``python``'s ranks with, as a command list, or None.

    The one beside the Python executable comes first (the mpich wheel of ``dezero-next[mpi]``
    installs it there), then the first on ``PATH`` (a system MPI). Open MPI gets
    ``--oversubscribe`` (more ranks than cores) and, as root, ``--allow-run-as-root``.
    Used by the tests and benchmarks; does not import mpi4py.
    """
    beside = os.path.join(os.path.dirname(python or sys.executable), "mpiexec")
    path = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if path is None:
        return None
    try:
        probe = subprocess.run([path, "--version"], capture_output=True, text=True,
                               timeout=60, check=False)
        version = probe.stdout + probe.stderr
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    command = [path]
    if "Open MPI" in version or "OpenRTE" in version:
        command.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-run-as-root")
    return command


# =============================================================================
# Faults: one rank's error ends the job
# =============================================================================
def _abort_on_failed_exit(rank: int, size: int, abort) -> None:
    """A rank that ends with a non-zero status (``sys.exit(3)``, ``raise SystemExit(3)``,
    ``exit(3)``) aborts the job; otherwise its MPI_Finalize at exit would wait for ranks that
    wait for it. (A signal ends the process without MPI_Finalize, which the launcher turns
    into the end of the job; an uncaught exception goes through ``excepthook``.)

    The status is recorded where Python code asks to exit: ``sys.exit`` and ``SystemExit``
    (the name in ``builtins``, a subclass that records its code) are wrapped while MPI runs
    with more than one rank.
    """
    import atexit
    import builtins

    status: list = [None]
    real_exit = sys.exit

    def exit_recording(code=None):
        status[0] = code
        real_exit(code)

    class SystemExit(builtins.SystemExit):
        def __init__(self, *args):
            super().__init__(*args)
            status[0] = self.code

    sys.exit = exit_recording
    builtins.SystemExit = SystemExit

    def at_exit() -> None:
        code = status[0]
        if code is None or code == 0:
            return
        n = code if isinstance(code, int) and not isinstance(code, bool) else 1
        sys.stderr.write(f"[dezero.distributed] rank {rank} of {size} is exiting with status "
                         f"{code!r}: aborting all ranks (MPI_Abort)\n")
        abort(n)

    atexit.register(at_exit)


def _install_fault_handlers(comm: Communicator) -> None:
    """An uncaught exception (or Ctrl-C) on any rank prints it and aborts every rank."""
    MPI = comm._MPI
    rank, size = comm.rank, comm.size
    previous = sys.excepthook

    def abort(code: int) -> None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            # the launcher forwards output asynchronously: give the message time to get out
            # before MPI_Abort tears the job down
            time.sleep(_OUTPUT_GRACE_S)
        finally:
            MPI.COMM_WORLD.Abort(code)

    def excepthook(etype, value, tb):
        if not isinstance(value, BaseException):  # not a real exception: leave it alone
            previous(etype, value, tb)
            return
        text = "".join(traceback.format_exception(etype, value, tb))
        sys.stderr.write(
            f"[dezero.distributed] rank {rank} of {size} raised {etype.__name__}: aborting "
            f"all ranks (MPI_Abort)\n" + "".join(f"[rank {rank}] {line}"
                                                 for line in text.splitlines(True))
        )
        abort(130 if issubclass(etype, KeyboardInterrupt) else 1)

    sys.excepthook = excepthook
    _abort_on_failed_exit(rank, size, abort)

    # Ctrl-C reaches a rank blocked inside an MPI call only as a flag that Python checks
    # when the call returns, which it never does if another rank is gone. The signal module
    # writes the signal number to a "wakeup" pipe at once, from C; a thread reads it and
    # aborts the job if the main thread has not done so itself within the grace period.
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (ValueError, OSError):
        old = None
    if old != -1:  # someone else (an event loop) owns the wakeup fd: leave it to them
        if old is not None:
            signal.set_wakeup_fd(old)
        os.close(r)
        os.close(w)
        return
    main = threading.main_thread()

    def watch() -> None:
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                time.sleep(_ABORT_GRACE_S)
                frame = sys._current_frames().get(main.ident)
                where = "".join(traceback.format_stack(frame)) if frame is not None else ""
                sys.stderr.write(
                    f"[dezero.distributed] rank {rank} of {size} interrupted (Ctrl-C) while "
                    f"blocked; aborting all ranks (MPI_Abort). It was at:\n"
                    + "".join(f"[rank {rank}] {line}" for line in where.splitlines(True))
                )
                abort(130)

    threading.Thread(target=watch, name="dezero-distributed-sigint", daemon=True).start()

