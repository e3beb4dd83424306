"""The package's layers: imports only go down, tools attach through public names only.

The import graph is built from the source (every ``import`` and ``from ... import``,
also inside functions and under ``TYPE_CHECKING``), with ``dezero/functions/`` and
``dezero/onnx/`` each counted as one module. The layers (STYLE.md):

- L0: cuda, array_utils, download, allocator, parallel, callsite, hints, version
- L1: core, hooks (the engine and its observer protocol)
- L2: functions, functions_conv
- L3, in this order (an edge may go to its own entry or an earlier one): serialization,
  utils, testing, layers, models, optimizers, {datasets, transforms, dataloaders}, text
- L4, the tools: jit, anomaly, profiler, func, onnx, metrics, distributed (none imports
  another)
- L5: training
- outside the graph: the package's ``__init__`` and core_simple (the book's stage-2 core)
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dezero"

# (layer, entry): within L3 the entries are ordered; elsewhere a layer is one entry
LAYERS: dict[str, tuple[int, int]] = {}
for name in ("cuda", "array_utils", "download", "allocator", "parallel", "callsite", "hints",
             "version"):
    LAYERS[name] = (0, 0)
for name in ("core", "hooks"):
    LAYERS[name] = (1, 0)
for name in ("functions", "functions_conv"):
    LAYERS[name] = (2, 0)
for i, group in enumerate((("serialization",), ("utils",), ("testing",), ("layers",),
                           ("models",), ("optimizers",),
                           ("datasets", "transforms", "dataloaders"), ("text",))):
    for name in group:
        LAYERS[name] = (3, i)
TOOLS = ("jit", "anomaly", "profiler", "func", "onnx", "metrics", "distributed")
for name in TOOLS:
    LAYERS[name] = (4, 0)
LAYERS["training"] = (5, 0)
OUTSIDE = ("__init__", "core_simple")


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]  # functions/, onnx/: one module each
    return rel.stem


def _sources() -> dict[str, list[tuple[Path, ast.Module]]]:
    out = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        out[_module_of(path)].append((path, ast.parse(path.read_text(), str(path))))
    return out


SOURCES = _sources()


def _target(name: str | None) -> str | None:
    """The dezero module a dotted import names (``dezero.functions.math`` -> functions)."""
    if not name or not (name == "dezero" or name.startswith("dezero.")):
        return None
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _edges() -> dict[str, dict[str, list[str]]]:
    """module -> {imported module: ["file:line", ...]}"""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module, files in SOURCES.items():
        for path, tree in files:
            for node in ast.walk(tree):
                targets = []
                if isinstance(node, ast.Import):
                    targets = [_target(a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:  # relative: inside a package (functions/, onnx/)
                        continue
                    base = _target(node.module)
                    if base == "__init__":  # from dezero import x, y
                        targets = [a.name for a in node.names]
                    else:
                        targets = [base]
                for t in targets:
                    if (t and t != module and (PACKAGE / f"{t}.py").exists()) or (
                            t and t != module and (PACKAGE / t).is_dir()):
                        edges[module][t].append(f"{path.name}:{node.lineno}")
    return edges


EDGES = _edges()


def test_every_module_has_a_layer():
    unknown = [m for m in SOURCES if m not in LAYERS and m not in OUTSIDE]
    assert unknown == [], f"modules without a layer in the table: {unknown}"


def test_no_import_cycles():
    graph = {m: set(t) for m, t in EDGES.items() if m not in OUTSIDE}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if t in OUTSIDE:
                continue
            if state.get(t) == 1:
                cycle = [*stack[stack.index(t):], t]
                pytest.fail(f"import cycle: {' -> '.join(cycle)} "
                            f"({m} imports {t} at {EDGES[m][t][0]})")
            if state.get(t) is None:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if state.get(m) is None:
            visit(m)


def test_every_import_goes_down_the_layers():
    wrong = []
    for m, targets in EDGES.items():
        if m in OUTSIDE:
            continue
        for t, where in targets.items():
            if t in OUTSIDE:
                wrong.append(f"{m} imports {t} ({where[0]}): nothing may import it")
                continue
            (lm, em), (lt, et) = LAYERS[m], LAYERS[t]
            if lt > lm or (lt == lm == 3 and et > em):
                wrong.append(f"{m} (L{lm}) imports {t} (L{lt}) at {where[0]}")
    assert wrong == [], "imports that go up:\n" + "\n".join(wrong)


def test_no_tool_imports_another():
    wrong = [f"{m} imports {t} at {w[0]}" for m, ts in EDGES.items() if m in TOOLS
             for t, w in ts.items() if t in TOOLS]
    assert wrong == [], "tools importing tools:\n" + "\n".join(wrong)


def _defined_private_names() -> dict[str, set[str]]:
    """module -> the ``_private`` names it defines (module-level names, class attributes and
    methods, and attributes it assigns on any object: ``x._name = ...``)."""
    out: dict[str, set[str]] = defaultdict(set)
    for module, files in SOURCES.items():
        for _, tree in files:
            for node in ast.walk(tree):
                names = []
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.append(node.name)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.append(node.id)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    names.append(node.attr)
                elif isinstance(node, ast.arg):
                    names.append(node.arg)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                        node.value.isidentifier():  # __slots__ entries, setattr names
                    names.append(node.value)
                out[module].update(n for n in names if _private(n))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_reads_another_modules_private_names():
    defined = _defined_private_names()
    owners: dict[str, set[str]] = defaultdict(set)
    for module, names in defined.items():
        for n in names:
            owners[n].add(module)
    wrong = []
    for module, files in SOURCES.items():
        if module in OUTSIDE:
            continue
        for path, tree in files:
            aliases = {}  # local name -> dezero module it stands for
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and not node.level:
                    base = _target(node.module)
                    for a in node.names:
                        if _private(a.name) and base and base != module:
                            wrong.append(f"{path.name}:{node.lineno}: imports {a.name} from "
                                         f"{node.module}")
                        if base == "__init__":
                            aliases[a.asname or a.name] = a.name
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        t = _target(a.name)
                        if t and a.asname:
                            aliases[a.asname] = t
            for node in ast.walk(tree):
                if not isinstance(node, ast.Attribute) or not _private(node.attr):
                    continue
                base = node.value
                if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                    continue
                holder = None
                if isinstance(base, ast.Name) and base.id in aliases:
                    holder = aliases[base.id]
                elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) \
                        and base.value.id == "dezero":
                    holder = base.attr
                if holder is not None:
                    if holder != module:
                        wrong.append(f"{path.name}:{node.lineno}: reads {holder}.{node.attr}")
                    continue
                others = owners.get(node.attr, set()) - {module}
                if others and node.attr not in defined[module]:
                    wrong.append(f"{path.name}:{node.lineno}: reads .{node.attr} of an object "
                                 f"of {'/'.join(sorted(others))}")
    assert wrong == [], "reads of other modules' private names:\n" + "\n".join(sorted(wrong))


def test_the_optimizers_and_func_know_no_tool():
    """optimizers.py never mentions jit or recorders (comments included); func.py never
    rewires the graph (no assignment to ``.creator``); jit never replaces a Function's
    methods."""
    import re

    optimizers = (PACKAGE / "optimizers.py").read_text()
    assert not re.search(r"jit|recorder", optimizers, re.IGNORECASE)
    assert not re.search(r"\.creator\s*=[^=]", (PACKAGE / "func.py").read_text())
    assert not re.search(r"\.(forward|backward_array) = ", (PACKAGE / "jit.py").read_text())
