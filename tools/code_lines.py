"""Count code lines (no docstrings, comments or blank lines) and check the engine's budgets.

    python tools/code_lines.py            # the table and the checks; exit 1 if one fails

Budgets (issue "One engine, one protocol"): core.py <= 550 code lines, Variable.backward <= 25,
jit.py <= 600, and at most 10 Functions that carry both a Variable-level ``backward`` and an
array-level ``backward_array``, each with its reason in a comment that starts with
``# both forms:`` right above its ``def backward``.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dezero"
BUDGETS = {"dezero/core.py": 550, "dezero/jit.py": 600}
BACKWARD_BUDGET = 25
BOTH_FORMS_BUDGET = 10


def code_lines(source: str, first: int = 1, last: int | None = None) -> int:
    """The number of lines in ``[first, last]`` that hold code: not blank, not only a comment,
    not part of a docstring."""
    tree = ast.parse(source)
    doc_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        for n in range(tok.start[0], tok.end[0] + 1):
            lines.add(n)
    last = last if last is not None else source.count("\n") + 1
    return len({n for n in lines - doc_lines if first <= n <= last})


def method_lines(path: Path, cls: str, method: str) -> int:
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    return code_lines(source, item.lineno, item.end_lineno)
    raise LookupError(f"{cls}.{method} not found in {path}")


def both_forms() -> list[tuple[str, str, str]]:
    """(file, class, reason) for every class in the package that defines both ``backward``
    and ``backward_array`` itself."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "core_simple.py":  # the book's stage-2 core: no array form at all
            continue
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.ClassDef):
                continue
            defs = {item.name: item for item in node.body if isinstance(item, ast.FunctionDef)}
            if "backward" in defs and "backward_array" in defs:
                above = lines[defs["backward"].lineno - 2].strip()
                reason = above[len("# both forms:"):].strip() if above.startswith(
                    "# both forms:") else ""
                out.append((str(path.relative_to(ROOT)), node.name, reason))
    return out


def main() -> int:
    failures = []
    print(f"{'what':44s} {'code lines':>10s} {'budget':>7s}")
    for rel, budget in BUDGETS.items():
        n = code_lines((ROOT / rel).read_text())
        print(f"{rel:44s} {n:10d} {budget:7d}")
        if n > budget:
            failures.append(f"{rel}: {n} code lines > {budget}")
    n = method_lines(PACKAGE / "core.py", "Variable", "backward")
    print(f"{'Variable.backward':44s} {n:10d} {BACKWARD_BUDGET:7d}")
    if n > BACKWARD_BUDGET:
        failures.append(f"Variable.backward: {n} code lines > {BACKWARD_BUDGET}")
    both = both_forms()
    print(f"\nFunctions with both a Variable and an array backward: {len(both)} "
          f"(budget {BOTH_FORMS_BUDGET})")
    for rel, cls, reason in both:
        print(f"  {rel}: {cls}: {reason or 'NO REASON GIVEN'}")
        if not reason:
            failures.append(f"{rel}: {cls} has both forms without a '# both forms:' reason")
    if len(both) > BOTH_FORMS_BUDGET:
        failures.append(f"{len(both)} Functions with both forms > {BOTH_FORMS_BUDGET}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
