"""The error-input table: bad calls of the public API beyond the ops (tests/opdb has those).

PyTorch's OpInfo ``error_inputs``, extended to whole APIs. Each module of this package holds a
list ``ENTRIES`` of ErrorInput rows (a call with bad arguments, a corrupt file or a fault; the
exception; words of its message; a setup) and an ``EXEMPT`` dict: public callables without
rows, each with its reason. tests/test_error_inputs.py runs every row (the exception, its
message, and the state that must be unchanged after it: see ``base``) and fails when a public
callable of the covered modules has neither rows nor a reason.
"""

from tests.errdb import datasets, distributed, gpt, metrics, serialization, tools, training
from tests.errdb.base import Ctx, ErrorInput, assert_same, snapshot

_FILES = [metrics, training, serialization, datasets, gpt, tools, distributed]

ENTRIES: list[ErrorInput] = [e for f in _FILES for e in f.ENTRIES]
EXEMPT: dict[str, str] = {k: v for f in _FILES for k, v in f.EXEMPT.items()}

# the modules whose public callables the coverage test lists (module -> classes to list, or
# None for all of its __all__)
COVERED = {
    "metrics": None,
    "training": None,
    "serialization": None,
    "datasets": None,
    "dataloaders": None,
    "models": ("GPT",),
    "text": None,
    "func": None,
    "hooks": None,
    "anomaly": None,
    "profiler": None,
    "onnx": None,
    "jit": None,
    "distributed": None,
}

__all__ = ["COVERED", "ENTRIES", "EXEMPT", "Ctx", "ErrorInput", "assert_same", "snapshot"]
