"""MkDocs hooks of dezero's documentation site, and the Markdown reader its tests share.

The pages are plain Markdown with three kinds of HTML comment that this module gives a
meaning to (a comment is invisible wherever the page is read without the hooks):

``<!-- not-run: REASON -->``
    placed right before a fenced code block: the docs tests do not execute that block
    (every other ``python`` and ``bash`` block runs), and the site shows REASON above it.
``<!-- graph: EXPR -->``
    when the site is built, the page's runnable ``python`` blocks before this comment run in
    one namespace, EXPR is evaluated there to a Variable, and its computational graph is drawn
    with ``dezero.utils.get_dot_graph`` and Graphviz ``dot`` into ``graphs/<page>-<n>.svg``;
    the comment becomes the picture. Nothing is checked in: the pictures exist only in the
    built site.
``<!-- benchmark-results -->``
    becomes the tables of ``benchmarks/results.json``, the file that
    ``python benchmarks/run.py --json benchmarks/results.json`` writes.

``<!-- file: NAME -->``
    placed right before a fenced code block: the block is a file (a script to launch, such
    as one for ``mpiexec``). The docs tests write it into the page's scratch folder instead
    of running it, and the page's bash blocks then run in that folder; the site shows NAME
    as the block's title.

A ``text`` block right after a ``python`` or ``bash`` block is that block's printed output:
the docs tests compare it with what the block prints (doctest's ELLIPSIS and
NORMALIZE_WHITESPACE). A page may declare ``<!-- requires: mnist, gpu, PACKAGE -->``: its
tests are skipped, saying so, where the MNIST files are not on the machine (nothing
downloads in tests), where there is no GPU (the ``gpu`` marker) or where a package is
missing.

tests/test_docs.py imports this file to read the pages exactly as the site build does.
"""

from __future__ import annotations

import contextlib
import io
import json
import linecache
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
RESULTS = ROOT / "benchmarks" / "results.json"

RUNNABLE = ("python", "bash")
OUTPUT = "text"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<info>[^\n`]*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")
_GRAPH = re.compile(r"^\s*<!--\s*graph:\s*(?P<expr>.+?)\s*-->\s*$")
_FILE = re.compile(r"^\s*<!--\s*file:\s*(?P<name>[\w.-]+)\s*-->\s*$")
_REQUIRES = re.compile(r"<!--\s*requires:\s*(?P<what>[\w, -]+?)\s*-->")
_BENCH = re.compile(r"^\s*<!--\s*benchmark-results\s*-->\s*$", re.MULTILINE)


@dataclass
class Block:
    """One fenced code block of a page."""

    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    not_run: str | None = None  # the reason, when marked not runnable
    output: str | None = None  # the expected printed output (a following ``text`` block)
    is_output: bool = False  # this block is the output of the block before it
    file: str | None = None  # written to this file name instead of run


@dataclass
class Graph:
    """A ``<!-- graph: EXPR -->`` comment: drawn after ``after`` blocks have run."""

    expr: str
    line: int
    after: int


@dataclass
class Page:
    path: Path
    blocks: list = field(default_factory=list)
    graphs: list = field(default_factory=list)
    requires: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.relative_to(DOCS).as_posix()


def read_page(path: Path | str, text: str | None = None) -> Page:
    """Parse a Markdown page into its code blocks, graph comments and requirements."""
    path = Path(path)
    if text is None:
        text = path.read_text(encoding="utf-8")
    page = Page(path)
    for m in _REQUIRES.finditer(text):
        page.requires += [w.strip() for w in m.group("what").split(",") if w.strip()]
    lines = text.split("\n")
    i = 0
    pending_reason = pending_file = None
    last_code_end = None  # index of the line after the previous block's closing fence
    while i < len(lines):
        line = lines[i]
        m = _NOT_RUN.match(line)
        if m:
            pending_reason = m.group("reason") or "(no reason given)"
            i += 1
            continue
        m = _GRAPH.match(line)
        if m:
            page.graphs.append(Graph(m.group("expr"), i + 1, len(page.blocks)))
            i += 1
            continue
        m = _FILE.match(line)
        if m:
            pending_file = m.group("name")
            i += 1
            continue
        m = _FENCE.match(line)
        if not m:
            if line.strip():
                pending_reason = pending_file = None
            i += 1
            continue
        fence, indent = m.group("fence"), len(m.group("indent"))
        info = m.group("info").strip().split()
        lang = info[0].lstrip(".{").rstrip("}").lower() if info else ""
        body = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence[0] * len(fence))
            and not lines[j].strip().strip(fence[0])
        ):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 1}: code block is never closed")
        block = Block(lang, "\n".join(body) + "\n", i + 1, pending_reason,
                      file=pending_file)
        previous = page.blocks[-1] if page.blocks else None
        between = lines[last_code_end:i] if last_code_end is not None else ["x"]
        if (lang == OUTPUT and previous is not None and previous.lang in RUNNABLE
                and not any(s.strip() for s in between)):
            block.is_output = True
            previous.output = block.code
        page.blocks.append(block)
        pending_reason = pending_file = None
        last_code_end = j + 1
        i = j + 1
    return page


def pages() -> list[Page]:
    """Every Markdown page under docs/, in path order."""
    return [read_page(p) for p in sorted(DOCS.rglob("*.md"))]


# =============================================================================
# Running a page's blocks (the build's graphs and the tests share this)
# =============================================================================
def run_python(block: Block, namespace: dict, where: str) -> str:
    """Execute one python block in ``namespace``; return what it printed."""
    out = io.StringIO()
    filename = f"{where}:{block.line}"
    # tracebacks show the page's lines: the block's code is its "file"
    linecache.cache[filename] = (len(block.code), None, block.code.splitlines(True), filename)
    with contextlib.redirect_stdout(out):
        exec(compile(block.code, filename, "exec"), namespace)
    return out.getvalue()


def run_bash(block: Block, where: str, cwd: str, timeout: float = 120) -> str:
    """Run one bash block from ``cwd`` with this Python first on PATH and the checkout
    importable; raise RuntimeError with its output when it fails."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["DEZERO_ROOT"] = str(ROOT)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{where}:{block.line}: bash block failed (exit {proc.returncode}):\n"
                           f"{block.code}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def check_output(block: Block, printed: str, where: str) -> None:
    """Compare a block's printed output with the ``text`` block that follows it."""
    if block.output is None:
        return
    import doctest

    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    if not checker.check_output(block.output, printed, flags):
        raise AssertionError(
            f"{where}:{block.line}: the block printed\n{printed}\nbut the page shows\n"
            f"{block.output}"
        )


@contextlib.contextmanager
def _page_environment():
    """Run page code from a scratch folder with the checkout importable and doctest-style
    NumPy printing (as the suite's conftest sets it)."""
    import numpy as np

    old_cwd, old_path = os.getcwd(), list(sys.path)
    old_print = np.get_printoptions()
    if int(np.__version__.split(".")[0]) >= 2:
        np.set_printoptions(legacy="1.25")
    with tempfile.TemporaryDirectory(prefix="dezero-docs-") as tmp:
        sys.path.insert(0, str(ROOT))
        os.chdir(tmp)
        try:
            yield tmp
        finally:
            os.chdir(old_cwd)
            sys.path[:] = old_path
            np.set_printoptions(**old_print)


def render_graphs(page: Page) -> list[bytes]:
    """Run the page's python blocks and draw each of its graph comments as SVG."""
    if not page.graphs:
        return []
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(f"{page.name} has graph pictures, which need Graphviz's 'dot' "
                           "program: install Graphviz (apt-get install graphviz)")
    import numpy as np

    from dezero.utils import get_dot_graph

    svgs = []
    with _page_environment():
        np.random.seed(0)  # noqa: NPY002  (dezero draws from the global RNG)
        namespace: dict = {"__name__": "__docs__"}
        done = 0
        for graph in page.graphs:
            for block in page.blocks[done:graph.after]:
                if (block.lang == "python" and block.not_run is None and not block.is_output
                        and block.file is None):
                    run_python(block, namespace, page.name)
            done = graph.after
            try:
                target = eval(graph.expr, namespace)  # the page's own expression
            except Exception as e:
                raise RuntimeError(f"{page.name}:{graph.line}: graph expression "
                                   f"{graph.expr!r} failed: {e!r}") from e
            proc = subprocess.run([dot, "-Tsvg"], input=get_dot_graph(target, verbose=False),
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{page.name}:{graph.line}: dot failed: {proc.stderr}")
            svgs.append(proc.stdout.encode())
    return svgs


def graph_path(page_name: str, n: int) -> str:
    """Where the n-th graph of a page lies in the site (docs-relative, posix)."""
    stem = page_name[:-3].replace("/", "-")
    return f"graphs/{stem}-{n + 1}.svg"


# =============================================================================
# The benchmark tables
# =============================================================================
def benchmark_markdown(results: dict) -> str:
    """The Markdown of the Benchmarks page's tables, from run.py's JSON results."""
    env = results["environment"]
    out = [
        f"Measured {results['date']} by `{results['command']}` ({results['mode']} mode).",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in env.items()),
        "",
    ]
    for name, bench in results["benchmarks"].items():
        out.append(f"### bench_{name}")
        out.append("")
        if "failed" in bench:
            out += [f"Failed: `{bench['failed']}`", ""]
            continue
        if "skipped" in bench:
            out += [f"Skipped: {bench['skipped']}", ""]
            continue
        for table in bench["tables"]:
            unit = table["unit"]
            first, base = table.get("columns", ("dezero", "torch"))
            base = "PyTorch" if base == "torch" else base
            title, *notes = table["title"].split("\n# ")
            out += [f"**{title}**", "", *(f"{n}  " for n in notes), "",
                    f"| case | {first} ({unit}) | {base} ({unit}) | {first} / {base} |",
                    "|---|---:|---:|---:|"]
            for row in table["rows"]:
                def cell(t):
                    return "-" if t is None else f"{t['median']:.4g} ± {t['iqr']:.2g}"

                ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
                out.append(f"| {row['case']} | {cell(row['dezero'])} | {cell(row['torch'])} "
                           f"| {ratio} |")
            out.append("")
    return "\n".join(out)


# =============================================================================
# MkDocs hooks
# =============================================================================
_graphs: dict = {}  # page name -> list of site paths


def on_files(files, config):
    """Draw every page's graphs and add them to the site as generated files."""
    from mkdocs.structure.files import File

    _graphs.clear()
    for page in pages():
        svgs = render_graphs(page)
        if svgs:
            _graphs[page.name] = []
            for n, svg in enumerate(svgs):
                path = graph_path(page.name, n)
                files.append(File.generated(config, path, content=svg))
                _graphs[page.name].append(path)
    return files


def on_page_markdown(markdown, page, config, files):
    name = page.file.src_uri
    here = posixpath.dirname(name)
    drawn = iter(_graphs.get(name, []))
    blocks = read_page(DOCS / name, markdown).blocks
    titles = {b.line: "Output" for b in blocks if b.is_output}
    titles.update({b.line: b.file for b in blocks if b.file})
    out = []
    for number, line in enumerate(markdown.split("\n"), start=1):
        if number in titles:  # printed output, or a file: the block's title says which
            out.append(f'{line.rstrip()} title="{titles[number]}"')
            continue
        if _FILE.match(line):
            continue
        m = _GRAPH.match(line)
        if m:
            rel = posixpath.relpath(next(drawn), here or ".")
            out.append(f'![The graph of {m.group("expr")}]({rel}){{ .dezero-graph }}')
            continue
        m = _NOT_RUN.match(line)
        if m:
            out.append(f'<p class="not-run">Not run by the docs tests: {m.group("reason")}</p>\n')
            continue
        out.append(line)
    markdown = "\n".join(out)
    if _BENCH.search(markdown):
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
        markdown = _BENCH.sub(lambda _: benchmark_markdown(results), markdown)
    return markdown
