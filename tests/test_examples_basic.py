"""The book's first three stages as runnable examples: each main() runs and prints the numbers
the book shows (examples/seed.py, taylor_sin.py, rosenbrock.py, newton.py, tanh_graph.py)."""

import importlib.util
import math
import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("core", ["full", "simple"])
def test_seed(core, capsys):
    grad = load("seed").main(["--core", core])
    assert grad == 3.297442541400256  # exactly what the book prints
    assert "x.grad = 3.297442541400256" in capsys.readouterr().out


def test_seed_other_point():
    x = 0.3
    assert load("seed").main(["--x", str(x)]) == pytest.approx(4 * x * math.exp(2 * x * x))


@pytest.mark.parametrize("method", ["hand", "graph"])
def test_newton_reaches_one_in_at_most_seven_iterations(method, capsys):
    result = load("newton").main(["--method", method])[method]
    assert result["x"] == 1.0
    assert result["iterations"] <= 7
    xs = result["trajectory"]
    assert xs[0] == 2.0
    assert xs[1] == pytest.approx(1.4545454545454546, abs=1e-15)
    assert "reached x = 1.0 in" in capsys.readouterr().out


def test_newton_both_ways_agree():
    results = load("newton").main([])
    assert results["hand"]["trajectory"] == pytest.approx(results["graph"]["trajectory"],
                                                          rel=1e-14)


def test_taylor_sin(capsys):
    result = load("taylor_sin").main([])
    # the 4th derivative of sin at 1.0, taken through create_graph, is sin(1.0)
    d = result["derivatives"]
    assert len(d) == 4
    assert abs(d[3] - math.sin(1.0)) <= 1e-12
    assert abs(d[0] - math.cos(1.0)) <= 1e-12
    assert abs(d[1] + math.sin(1.0)) <= 1e-12
    # the book's numbers for the series cut at 1e-4 at pi/4
    assert result["taylor_value"] == pytest.approx(0.7071064695751781, abs=1e-15)
    assert result["taylor_grad"] == pytest.approx(0.7071032148228457, abs=1e-15)
    assert result["sin_value"] == pytest.approx(math.sin(math.pi / 4), abs=1e-15)
    assert result["terms"] == 4
    out = capsys.readouterr().out
    assert "order 4" in out and "functions" in out


def test_taylor_sin_graph_grows_and_converges():
    small = load("taylor_sin").main(["--threshold", "1e-4", "--order", "1"])
    big = load("taylor_sin").main(["--threshold", "1e-150", "--order", "1"])
    assert big["terms"] > small["terms"]
    assert big["functions"] > small["functions"] and big["variables"] > small["variables"]
    assert big["taylor_value"] == pytest.approx(math.sin(math.pi / 4), abs=1e-15)
    assert big["taylor_grad"] == pytest.approx(math.cos(math.pi / 4), abs=1e-15)


@needs_dot
def test_taylor_sin_picture(tmp_path):
    result = load("taylor_sin").main(["--order", "1", "--out", str(tmp_path)])
    assert Path(result["picture"]).read_bytes()[:8] == PNG_MAGIC


def test_rosenbrock_descends_towards_one_one(capsys):
    rosen = load("rosenbrock")
    few = rosen.main(["--iters", "300"])
    more = rosen.main(["--iters", "1500"])
    assert few["loss"] < few["start_loss"]
    assert more["loss"] < few["loss"]
    dist = [math.hypot(r["x0"] - 1, r["x1"] - 1) for r in (few, more)]
    assert dist[1] < dist[0]
    assert "(minimum at (1, 1))" in capsys.readouterr().out


def test_rosenbrock_simple_core_gives_the_same_iterates():
    rosen = load("rosenbrock")
    full = rosen.main(["--iters", "200", "--core", "full"])
    simple = rosen.main(["--iters", "200", "--core", "simple"])
    assert (full["x0"], full["x1"]) == (simple["x0"], simple["x1"])


@pytest.mark.slow
def test_rosenbrock_default_run_gets_close():
    result = load("rosenbrock").main([])  # 10,000 steps at lr 0.001, as in the book
    assert abs(result["x0"] - 1) < 0.01 and abs(result["x1"] - 1) < 0.02


@needs_dot
def test_tanh_graph_picture(tmp_path, capsys):
    result = load("tanh_graph").main(["--order", "3", "--out", str(tmp_path / "pics")])
    picture = Path(result["picture"])
    assert picture.parent == tmp_path / "pics"
    assert picture.read_bytes()[:8] == PNG_MAGIC
    assert result["value"] == pytest.approx(result["exact"], rel=1e-12)
    assert result["functions"] > 10
    assert "picture written to" in capsys.readouterr().out


def test_tanh_derivatives_match_the_polynomial():
    tanh_graph = load("tanh_graph")
    t = math.tanh(0.5)
    assert tanh_graph.exact_tanh_derivative(0.5, 1) == pytest.approx(1 - t * t, rel=1e-14)
    assert tanh_graph.exact_tanh_derivative(0.5, 2) == pytest.approx(-2 * t * (1 - t * t))
    sizes = []
    for order in (1, 2, 3, 4):
        _, gx = tanh_graph.tanh_derivative_graph(0.5, order)
        assert float(gx.data) == pytest.approx(tanh_graph.exact_tanh_derivative(0.5, order),
                                               rel=1e-12)
        sizes.append(gx.generation)
    assert sizes == sorted(sizes)
    with pytest.raises(ValueError, match="order must be at least 1"):
        tanh_graph.tanh_derivative_graph(0.5, 0)


def test_newton_hessian_reaches_the_rosenbrock_minimum(capsys):
    result = load("newton_hessian").main([])
    assert result["x"] == pytest.approx([1.0, 1.0], abs=1e-12)
    assert result["iterations"] <= 8  # gradient descent (step 28) needs tens of thousands
    xs = result["trajectory"]
    # the first step by hand: at x = (0, 2), grad f = (-2, 400) and H = [[-798, 0], [0, 200]]
    assert xs[1] == pytest.approx([0.0 - (-2.0 / -798.0), 2.0 - 2.0], abs=1e-14)
    assert "reached x = (1.000000, 1.000000)" in capsys.readouterr().out


def test_newton_hessian_argument_error(capsys):
    with pytest.raises(SystemExit):
        load("newton_hessian").main(["--max-iters", "-1"])
    assert "--max-iters must be >= 0" in capsys.readouterr().err
