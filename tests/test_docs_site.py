"""The documentation site: `mkdocs build --strict` passes, and the pages work in Chromium.

The build (what `make docs` runs) goes into a temporary folder. The browser part serves it on
127.0.0.1 and opens the index page and a tutorial page in headless Chromium: a screenshot of
each, and a DOM dump of a small check page (served by the test, not part of the site) that
loads the page in a same-origin frame and reports its title, its navigation links and the
natural size of its graph pictures. It is skipped where Chromium is missing; CI installs
Debian's chromium (.ci/run).
"""

import functools
import http.server
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = "tutorials/mnist-mlp/"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
    "--disable-extensions", "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if shutil.which("dot") is None:
        pytest.skip("the site's graph pictures need Graphviz 'dot'")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_build_has_every_page(site):
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    assert len(pages) >= 12, pages
    for page in ("index.html", "concepts/index.html", "book/index.html",
                 "benchmarks/index.html", "troubleshooting/index.html",
                 f"{TUTORIAL}index.html", "api/dezero/index.html", "api/functions/index.html"):
        assert page in pages


def test_api_reference_carries_the_docstrings(site):
    html = (site / "api" / "dezero" / "index.html").read_text()
    assert "create_graph" in html and "retain_grad" in html
    assert "Accumulate d(self)/d(leaf)" in html  # Variable.backward's own words
    functions = (site / "api" / "functions" / "index.html").read_text()
    assert "softmax_cross_entropy" in functions and "conv2d" in functions


def test_graph_pictures_are_generated_svg(site):
    svgs = sorted((site / "graphs").glob("*.svg"))
    assert len(svgs) >= 3
    for svg in svgs:
        assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    index = (site / "index.html").read_text()
    assert 'src="graphs/index-1.svg"' in index


def test_benchmark_page_is_generated(site):
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    html = (site / "benchmarks" / "index.html").read_text()
    assert results["date"] in html
    assert "benchmark-results" not in html  # the marker was replaced by the tables


# =============================================================================
# In a real browser
# =============================================================================
CHECK_PAGE = b"""<!doctype html><html><head><title>check</title></head><body>
<pre id="result">pending</pre><iframe id="frame" width="1280" height="900"></iframe>
<script>
const frame = document.getElementById("frame");
frame.onload = () => {
  const d = frame.contentDocument;
  const links = d.querySelectorAll("nav.md-nav--primary a.md-nav__link");
  document.getElementById("result").textContent = JSON.stringify({
    title: d.title,
    nav: Array.from(links).map(a => a.textContent.trim()).filter(Boolean),
    h1: (d.querySelector("h1") || {textContent: ""}).textContent,
    graphs: Array.from(d.querySelectorAll("img.dezero-graph")).map(
      i => ({src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth,
             height: i.naturalHeight})),
  });
};
frame.src = new URLSearchParams(location.search).get("page");
</script></body></html>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (CI installs Debian's chromium)")


@pytest.fixture(scope="module")
def served(site):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/__check__.html"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(CHECK_PAGE)))
                self.end_headers()
                self.wfile.write(CHECK_PAGE)
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _run_chromium(chromium, tmp_path, *args):
    profile = tmp_path / "profile"  # a fresh profile each run
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("page, title", [("", "dezero"),
                                         (TUTORIAL, "MNIST MLP, your own loop - dezero")])
def test_page_in_chromium(served, page, title, tmp_path):
    chromium = _chromium()
    shot = tmp_path / "page.png"
    _run_chromium(chromium, tmp_path, "--window-size=1280,900", "--virtual-time-budget=5000",
                  f"--screenshot={shot}", f"{served}/{page}")
    width, height = _png_size(shot)
    assert (width, height) == (1280, 900)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    print(f"screenshot of /{page}: {width}x{height} px, {shot.stat().st_size} bytes")
    keep = os.environ.get("DEZERO_DOCS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / f"{page.strip('/').replace('/', '-') or 'index'}.png")

    dom = _run_chromium(chromium, tmp_path, "--virtual-time-budget=10000", "--dump-dom",
                        f"{served}/__check__.html?page=/{page}")
    m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert m and m.group(1) != "pending", dom[-2000:]
    result = json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<")
                        .replace("&gt;", ">").replace("&quot;", '"'))
    assert result["title"] == title
    for entry in ("Getting started", "Concepts", "MNIST MLP, your own loop", "From the book",
                  "dezero.functions", "Benchmarks", "Troubleshooting"):
        assert entry in result["nav"], result["nav"]
    assert result["graphs"], f"no graph picture on /{page}"
    for graph in result["graphs"]:
        assert graph["complete"] and graph["width"] > 50 and graph["height"] > 50, graph
