"""Runs the error-input table (tests/errdb): every row raises the promised exception, with the
promised words, and leaves everything as it was; every public callable of the covered modules
has rows or a written reason."""

import importlib
import inspect
from collections import Counter

import pytest

from tests.errdb import COVERED, ENTRIES, EXEMPT, Ctx, assert_same, snapshot

# public methods beyond the plain names: the protocol a user calls through syntax
_DUNDERS = ("__getitem__", "__call__")


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_error_input(entry, tmp_path):
    for module in entry.needs:
        pytest.importorskip(module)
    ctx = Ctx(tmp_path)
    if entry.setup is not None:
        entry.setup(ctx)
    before = snapshot(ctx)
    with pytest.raises(entry.error) as info:
        entry.call(ctx)
    message = str(info.value)
    missing = [w for w in entry.words if w not in message]
    assert not missing, f"the message lacks {missing}: {message!r}"
    assert_same(before, snapshot(ctx), "state")


def public_callables() -> list[str]:
    """``module.name`` for every function and class of the covered modules' ``__all__``, and
    ``module.Class.method`` for every public method (or property) a class defines itself."""
    out = []
    for short, classes in COVERED.items():
        module = importlib.import_module(f"dezero.{short}")
        names = classes if classes is not None else module.__all__
        for name in names:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                out.append(f"{short}.{name}")
                for attr, value in vars(obj).items():
                    if attr.startswith("_") and attr not in _DUNDERS:
                        continue
                    if callable(value) or isinstance(value, (property, classmethod,
                                                             staticmethod)) or attr.isupper():
                        out.append(f"{short}.{name}.{attr}")
            elif callable(obj):
                out.append(f"{short}.{name}")
    return out


def test_every_public_callable_has_rows_or_a_reason():
    public = public_callables()
    covered = {e.target for e in ENTRIES}
    missing = [name for name in public if name not in covered and name not in EXEMPT]
    assert not missing, f"public callables with neither error-input rows nor a reason: {missing}"
    assert all(isinstance(r, str) and len(r) >= 10 for r in EXEMPT.values())
    stale = [name for name in EXEMPT if name not in public]
    assert not stale, f"reasons for names that are not public callables: {stale}"


def test_every_row_targets_something_that_exists():
    for target in {e.target for e in ENTRIES}:
        module, *path = target.split(".")
        obj = importlib.import_module(f"dezero.{module}")
        for part in path:
            obj = getattr(obj, part)
    ids = Counter(e.id for e in ENTRIES)
    assert [i for i, n in ids.items() if n > 1] == []


def rows_per_module() -> dict[str, int]:
    """For the closing note: the number of rows per module."""
    return dict(Counter(e.target.split(".")[0] for e in ENTRIES))


if __name__ == "__main__":
    print(rows_per_module(), len(ENTRIES))
