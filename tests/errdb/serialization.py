"""dezero.serialization: every file format; corrupt or mismatched files change nothing."""

import json
import os
import zipfile

import numpy as np

import dezero.layers as L
from dezero import optimizers
from dezero import serialization as S
from dezero.models import MLP
from dezero.serialization import CheckpointError
from tests.errdb.base import rows


def _model(hidden=4):
    np.random.seed(0)  # noqa: NPY002  (dezero draws initial weights from it)
    model = MLP((hidden, 2))
    model(np.zeros((1, 3), np.float32))
    return model


def _files(ctx):
    """A model, its optimizer after one step, and files of every format (good and bad)."""
    ctx.model = _model()
    ctx.opt = optimizers.Adam().setup(ctx.model)
    x = np.ones((2, 3), np.float32)
    loss = (ctx.model(x) ** 2).sum()
    ctx.model.cleargrads()
    loss.backward()
    ctx.opt.update()
    ctx.model.save_weights(ctx.tmp / "w.npz")
    S.save_checkpoint(ctx.tmp / "c.ckpt", ctx.model, ctx.opt, epoch=1)
    raw = (ctx.tmp / "w.npz").read_bytes()
    (ctx.tmp / "cut.npz").write_bytes(raw[: len(raw) // 2])
    (ctx.tmp / "text.npz").write_text("not an archive")
    with zipfile.ZipFile(ctx.tmp / "pickled.npz", "w") as zf, zf.open("a.npy", "w") as member:
        # an object array: reading it back would need pickle
        np.lib.format.write_array(member, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    ctx.other = _model(hidden=6)


def _st(ctx):
    _files(ctx)
    ctx.model.save_weights(ctx.tmp / "w.safetensors")
    raw = (ctx.tmp / "w.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["l0/W"]["dtype"] = "I32"  # F32 -> I32: the same bytes read as ints around 1e9
    head = json.dumps(header, separators=(",", ":")).encode()
    (ctx.tmp / "i32.safetensors").write_bytes(raw[:8] + head + b" " * (n - len(head))
                                              + raw[8 + n:])
    (ctx.tmp / "cut.safetensors").write_bytes(raw[: len(raw) - 5])
    (ctx.tmp / "text.safetensors").write_text("hello")


def _opened(ctx):
    _st(ctx)
    ctx.file = S.open_safetensors(ctx.tmp / "i32.safetensors")


ENTRIES = [
    *rows("serialization.atomic_write", _files,
          no_folder=(lambda c: _write(S.atomic_write(c.tmp / "no" / "f.bin")), FileNotFoundError,
                     "the folder", "does not exist"),
          folder=(lambda c: _write(S.atomic_write(c.tmp)), IsADirectoryError, "it is a folder"),
          failed=(lambda c: _write(S.atomic_write(c.tmp / "w.npz"), fail=True), RuntimeError,
                  "boom")),
    *rows("serialization.save_npz_atomic", _files,
          objects=(lambda c: S.save_npz_atomic(c.tmp / "w.npz", {"a": np.array([None])}),
                   ValueError, "'a': an array of Python objects (dtype object) cannot be saved"),
          no_folder=(lambda c: S.save_npz_atomic(c.tmp / "x" / "a.npz", {}), FileNotFoundError,
                     "does not exist")),
    *rows("serialization.load_npz", _files,
          missing=(lambda c: S.load_npz(c.tmp / "missing.npz"), FileNotFoundError,
                   "missing.npz"),
          truncated=(lambda c: S.load_npz(c.tmp / "cut.npz"), CheckpointError, "cut.npz",
                     "truncated, corrupted"),
          text=(lambda c: S.load_npz(c.tmp / "text.npz"), CheckpointError, "text.npz"),
          pickled=(lambda c: S.load_npz(c.tmp / "pickled.npz"), CheckpointError,
                   "holds Python objects, which need pickle")),
    *rows("serialization.save_safetensors", _files, needs=("safetensors",),
          complex_=(lambda c: S.save_safetensors(c.tmp / "w.safetensors",
                                                 {"a": np.zeros(2, np.complex64)}),
                    TypeError, "cannot hold dtype complex64"),
          objects=(lambda c: S.save_safetensors(c.tmp / "w.safetensors",
                                                {"a": np.array(["x"])}), TypeError,
                   "cannot hold dtype"),
          name=(lambda c: S.save_safetensors(c.tmp / "w.safetensors", {3: np.zeros(2)}),
                TypeError, "names must be str"),
          reserved=(lambda c: S.save_safetensors(c.tmp / "w.safetensors",
                                                 {"__metadata__": np.zeros(2)}), ValueError,
                    "'__metadata__' is reserved"),
          metadata=(lambda c: S.save_safetensors(c.tmp / "w.safetensors", {},
                                                 metadata={"n": 1}), TypeError,
                    "metadata must map str to str"),
          dezero_key=(lambda c: S.save_safetensors(c.tmp / "w.safetensors", {},
                                                   metadata={"dezero_crc32": "x"}), ValueError,
                      "keys starting with 'dezero_' are reserved")),
    *rows("serialization.load_safetensors", _st, needs=("safetensors",),
          dtype_edit=(lambda c: S.load_safetensors(c.tmp / "i32.safetensors"), CheckpointError,
                      "i32.safetensors", "checksum mismatch for tensor 'l0/W'", "I32"),
          truncated=(lambda c: S.load_safetensors(c.tmp / "cut.safetensors"), CheckpointError,
                     "cut.safetensors", "truncated, corrupted"),
          text=(lambda c: S.load_safetensors(c.tmp / "text.safetensors"), CheckpointError,
                "text.safetensors"),
          npz=(lambda c: S.load_safetensors(c.tmp / "w.npz"), CheckpointError, "w.npz"),
          missing=(lambda c: S.load_safetensors(c.tmp / "no.safetensors"), FileNotFoundError,
                   "no.safetensors")),
    *rows("serialization.open_safetensors", _st, needs=("safetensors",),
          truncated=(lambda c: S.open_safetensors(c.tmp / "cut.safetensors"), CheckpointError,
                     "cut.safetensors"),
          missing=(lambda c: S.open_safetensors(c.tmp / "no.safetensors"), FileNotFoundError,
                   "no.safetensors")),
    *rows("serialization.SafetensorsFile.__getitem__", _opened, needs=("safetensors",),
          edited=(lambda c: c.file["l0/W"], CheckpointError, "checksum mismatch for tensor "
                  "'l0/W'"),
          unknown=(lambda c: c.file["l9/W"], KeyError, "has no tensor 'l9/W'")),
    *rows("serialization.SafetensorsFile.check", _opened, needs=("safetensors",),
          edited=(lambda c: c.file.check(), CheckpointError, "checksum mismatch for tensor "
                  "'l0/W'")),
    *rows("serialization.SafetensorsFile.dtype", _opened, needs=("safetensors",),
          unknown=(lambda c: c.file.dtype("nope"), KeyError, "has no tensor 'nope'")),
    *rows("serialization.SafetensorsFile.shape", _opened, needs=("safetensors",),
          unknown=(lambda c: c.file.shape("nope"), KeyError, "has no tensor 'nope'")),
    *rows("serialization.save_arrays", _files,
          pt=(lambda c: S.save_arrays(c.tmp / "m.pt", {"a": np.zeros(2)}), ValueError,
              "'.pt'", ".npz (NumPy) or .safetensors")),
    *rows("serialization.load_arrays", _files,
          pth=(lambda c: S.load_arrays(c.tmp / "w.pth"), ValueError, "'.pth'",
               ".npz (NumPy) or .safetensors")),
    *rows("serialization.weights_format",
          ckpt=(lambda c: S.weights_format("a.ckpt"), ValueError, "'a.ckpt' has the extension "
                "'.ckpt'")),
    *rows("serialization.save_checkpoint", _files,
          extra=(lambda c: S.save_checkpoint(c.tmp / "c.ckpt", c.model, c.opt, when=object()),
                 TypeError, "checkpoint extra 'when': cannot store a object"),
          keys=(lambda c: S.save_checkpoint(c.tmp / "c.ckpt", c.model, c.opt, d={1: 2}),
                TypeError, "dict keys must be str"),
          no_folder=(lambda c: S.save_checkpoint(c.tmp / "x" / "c.ckpt", c.model),
                     FileNotFoundError, "does not exist")),
    *rows("serialization.load_checkpoint", _files,
          other_model=(lambda c: S.load_checkpoint(c.tmp / "c.ckpt", c.other), CheckpointError,
                       "c.ckpt", "shape mismatch for 'l0/W'"),
          other_optimizer=(lambda c: S.load_checkpoint(c.tmp / "c.ckpt", c.model,
                                                       optimizers.SGD().setup(c.model)),
                           CheckpointError, "belongs to 'Adam', not 'SGD'"),
          weights_file=(lambda c: S.load_checkpoint(c.tmp / "w.npz", c.model), CheckpointError,
                        "is not a dezero checkpoint"),
          truncated=(lambda c: S.load_checkpoint(c.tmp / "cut.npz", c.model), CheckpointError,
                     "truncated"),
          refused_by_check=(lambda c: S.load_checkpoint(c.tmp / "c.ckpt", c.model, c.opt,
                                                        check=_refuse), CheckpointError,
                            "refused")),
    *rows("serialization.checkpoint_fingerprint", _files,
          garbage=(lambda c: S.checkpoint_fingerprint(c.tmp / "text.npz"), CheckpointError,
                   "cannot read the fingerprint", "text.npz"),
          weights=(lambda c: S.checkpoint_fingerprint(c.tmp / "w.npz"), CheckpointError,
                   "not a dezero checkpoint")),
    *rows("serialization.fingerprint_mismatch", _files,
          not_a_model=(lambda c: S.fingerprint_mismatch([], "mlp"), TypeError,
                       "expected a Layer"),
          not_pairs=(lambda c: S.fingerprint_mismatch([1, 2], c.model), TypeError,
                     "a fingerprint is a list of (name, shape) pairs")),
    *rows("serialization.model_fingerprint",
          not_a_model=(lambda c: S.model_fingerprint(3), TypeError, "expected a Layer")),
    *rows("layers.Layer.load_weights", _files,
          other_model=(lambda c: c.other.load_weights(c.tmp / "w.npz"), CheckpointError,
                       "w.npz", "shape mismatch for 'l0/W'"),
          truncated=(lambda c: c.other.load_weights(c.tmp / "cut.npz"), CheckpointError,
                     "cut.npz")),
    *rows("layers.Layer.save_weights", _files,
          pt=(lambda c: c.model.save_weights(c.tmp / "w.pt"), ValueError, "'.pt'")),
]


def _refuse(extra):
    raise CheckpointError("refused by the caller's check")


def _write(manager, fail=False):
    with manager as f:
        f.write(b"new content")
        if fail:
            raise RuntimeError("boom")


EXEMPT = {
    "serialization.CheckpointError": "an exception type",
    "serialization.SafetensorsFile": "made by open_safetensors (see there)",
}
_ = (L, os)
