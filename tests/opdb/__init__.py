"""The ONE op table: every public function of dezero.functions (and the core arithmetic).

Family modules each hold a list ``OPS`` of OpInfo; generic tests in tests/test_ops.py read
them all. Adding an op = the Function, the wrapper, one OpInfo line in its family module.

``EXEMPT`` names public functions with no table entry and says why (the coverage test
accepts nothing else).
"""

from tests.opdb import (
    activation,
    array,
    attention,
    conv,
    core,
    embedding,
    evaluation,
    linalg,
    loss,
    math,
    noise,
    normalization,
    reduction,
    rnn,
)
from tests.opdb.base import OpInfo, Sample

_FAMILIES = [core, math, array, reduction, linalg, activation, loss, noise, normalization,
             embedding, rnn, conv, evaluation, attention]

OPS: list[OpInfo] = [op for family in _FAMILIES for op in family.OPS]

# name -> why it has no table entry. Each family module may add to it with its own EXEMPT dict.
EXEMPT: dict[str, str] = {
    name: reason for family in _FAMILIES for name, reason in getattr(family, "EXEMPT", {}).items()
}

__all__ = ["EXEMPT", "OPS", "OpInfo", "Sample"]
