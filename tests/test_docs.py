"""The documentation's code: every block of every page under docs/ runs here.

The pages are read by docs/hooks.py, the same reader the site build uses. The python blocks
of one page share one namespace and run in order from a scratch folder; a ``text`` block
right after a python block is what that block must print; bash blocks run from the checkout
with this Python first on PATH. A block marked ``<!-- not-run: REASON -->`` is left out, and
the reason is shown on the site. The site build itself and the browser check are in
tests/test_docs_site.py.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _load_hooks():
    spec = importlib.util.spec_from_file_location("dezero_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()
PAGES = hooks.pages()
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _mnist_dir():
    for folder in (os.environ.get("DEZERO_DATA_DIR"),
                   ROOT.parent / "shared" / "data" / "mnist",
                   Path.home() / ".dezero"):
        if folder and all(Path(folder, f).exists() for f in MNIST_FILES):
            return str(Path(folder).resolve())
    return None


def test_the_site_has_its_pages():
    names = [p.name for p in PAGES]
    assert len(names) >= 12, names
    for name in ("index.md", "getting-started.md", "concepts.md", "book.md",
                 "benchmarks.md", "troubleshooting.md", "tutorials/mnist-mlp.md",
                 "api/dezero.md"):
        assert name in names
    assert sum(len(p.blocks) for p in PAGES) >= 50


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_block_runs_or_says_why(page):
    for block in page.blocks:
        where = f"{page.name}:{block.line}"
        if block.not_run is not None:
            assert len(block.not_run) >= 10, f"{where}: say why the block is not run"
        elif block.is_output:
            pass
        else:
            assert block.lang in hooks.RUNNABLE, (
                f"{where}: a {block.lang or 'plain'} block must be python, bash, the text "
                "output of the python block before it, or marked <!-- not-run: REASON -->")


def _runnable_pages():
    """Pages with code to run; a page that declares ``<!-- requires: gpu -->`` carries the
    ``gpu`` marker (skipped without CuPy and a device, run by tools/gpu_check.sh), one that
    trains on MNIST the ``slow`` marker."""
    for page in PAGES:
        if any(b.lang in hooks.RUNNABLE and b.not_run is None for b in page.blocks):
            marks = [pytest.mark.gpu] if "gpu" in page.requires else []
            if "mnist" in page.requires:  # real MNIST training, as the examples' tests
                marks.append(pytest.mark.slow)
            yield pytest.param(page, id=page.name, marks=marks)


@pytest.mark.parametrize("page", list(_runnable_pages()))
def test_page_code_runs(page, tmp_path, monkeypatch):
    for need in page.requires:
        if need == "mnist":
            folder = _mnist_dir()
            if folder is None:
                pytest.skip(f"{page.name} trains on MNIST, whose files are not on this "
                            "machine (set DEZERO_DATA_DIR)")
            monkeypatch.setenv("DEZERO_DATA_DIR", folder)
        elif need != "gpu":  # an optional package, e.g. onnx
            pytest.importorskip(need, reason=f"{page.name} needs the package {need!r}")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    # bash runs from the checkout, or beside the files the page writes
    bash_cwd = tmp_path if any(b.file for b in page.blocks) else ROOT
    for block in page.blocks:
        if block.not_run is not None or block.is_output:
            continue
        where = f"docs/{page.name}"
        if block.file is not None:
            (tmp_path / block.file).write_text(block.code)
            continue
        if block.lang == "python":
            printed = hooks.run_python(block, namespace, where)
        elif block.lang == "bash":
            printed = hooks.run_bash(block, where, cwd=str(bash_cwd))
        else:  # test_every_block_runs_or_says_why reports it
            continue
        hooks.check_output(block, printed, where)


# =============================================================================
# The reader itself
# =============================================================================
def test_reader_blocks_outputs_and_markers(tmp_path):
    page = hooks.read_page(tmp_path / "demo.md", "\n".join([
        "# Demo",
        "<!-- requires: mnist -->",
        "```python",
        "x = 1",
        "print(x)",
        "```",
        "",
        "```text",
        "1",
        "```",
        "",
        "<!-- graph: y -->",
        "",
        "<!-- not-run: needs a CUDA GPU -->",
        "```python",
        "import cupy",
        "```",
        "Some prose.",
        "```text",
        "not an output: prose stands between",
        "```",
        "<!-- file: job.py -->",
        "```python",
        "print('launched')",
        "```",
    ]))
    assert page.requires == ["mnist"]
    assert [(b.lang, b.line) for b in page.blocks] == [("python", 3), ("text", 8),
                                                      ("python", 15), ("text", 19),
                                                      ("python", 23)]
    first, output, gpu, lone, job = page.blocks
    assert job.file == "job.py" and first.file is None and job.not_run is None
    assert first.output == "1\n" and output.is_output and first.not_run is None
    assert gpu.not_run == "needs a CUDA GPU" and gpu.output is None
    assert not lone.is_output
    assert [(g.expr, g.after) for g in page.graphs] == [("y", 2)]


def test_output_mismatch_names_the_line(tmp_path):
    page = hooks.read_page(tmp_path / "p.md", "```python\nprint(2)\n```\n\n```text\n3\n```\n")
    block = page.blocks[0]
    printed = hooks.run_python(block, {}, "p.md")
    with pytest.raises(AssertionError, match=r"p.md:1: the block printed\n2\n"):
        hooks.check_output(block, printed, "p.md")


def test_unclosed_block_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"p.md:2: code block is never closed"):
        hooks.read_page(tmp_path / "p.md", "text\n```python\nx = 1\n")


def test_benchmark_page_comes_from_the_results_file():
    results = json.loads(hooks.RESULTS.read_text())
    assert results["mode"] == "full", "the committed results must come from a full run"
    markdown = hooks.benchmark_markdown(results)
    for name, bench in results["benchmarks"].items():
        assert f"### bench_{name}" in markdown
        for table in bench.get("tables", []):
            title = table["title"].split("\n# ")[0]  # what follows are notes under it
            assert f"**{title}**" in markdown
            for row in table["rows"]:
                if row["ratio"] is not None:
                    assert f"| {row['case']} |" in markdown
                    assert f"{row['ratio']:.2f}x |" in markdown


def test_graph_pictures_are_drawn_at_build_time():
    if not hooks.shutil.which("dot"):
        pytest.skip("Graphviz 'dot' is not installed")
    page = next(p for p in PAGES if p.name == "concepts.md")
    svgs = hooks.render_graphs(page)
    assert len(svgs) == len(page.graphs) >= 2
    for svg in svgs:
        assert b"<svg" in svg and b"Tanh" in svg
    assert not list(DOCS.rglob("*.svg")) and not list(DOCS.rglob("*.png")), \
        "graph pictures are drawn when the site is built, never checked in"


def test_pages_leave_numpy_printing_as_it_was():
    before = np.get_printoptions()
    hooks.render_graphs(next(p for p in PAGES if p.name == "index.md"))
    assert np.get_printoptions() == before
