"""dezero.utils.get_dot_graph / plot_dot_graph: every node once, higher-order graphs, and
clear errors when Graphviz is missing or fails."""

import os
import re
import shutil
import stat
from collections import Counter

import numpy as np
import pytest

import dezero.functions as F
from dezero import Function, Variable, core_simple
from dezero.utils import get_dot_graph, plot_dot_graph

NODE = re.compile(r'^(\d+) \[label="((?:[^"\\]|\\.)*)", color=(orange|lightblue), ')
EDGE = re.compile(r"^(\d+) -> (\d+)$")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


def parse(dot):
    """(list of (id, label, kind) node definitions, list of (src, dst) edges)."""
    lines = dot.strip().splitlines()
    assert lines[0] == "digraph g {" and lines[-1] == "}"
    nodes, edges = [], []
    for line in lines[1:-1]:
        m = NODE.match(line)
        if m:
            kind = "var" if m.group(3) == "orange" else "func"
            nodes.append((int(m.group(1)), m.group(2), kind))
            continue
        m = EDGE.match(line)
        assert m, f"unexpected line in DOT output: {line!r}"
        edges.append((int(m.group(1)), int(m.group(2))))
    return nodes, edges


def walk(output):
    """Independent reference: ids of the functions and variables behind ``output``, and the
    edges (one per input slot: ``x * x`` has two arrows from x)."""
    funcs, variables, edges = set(), {id(output)}, Counter()
    stack = [output.creator] if output.creator is not None else []
    while stack:
        f = stack.pop()
        if id(f) in funcs:
            continue
        funcs.add(id(f))
        for ref in f.outputs:
            if ref() is not None:
                variables.add(id(ref()))
                edges[(id(f), id(ref()))] += 1
        for x in f.inputs:
            variables.add(id(x))
            edges[(id(x), id(f))] += 1
            if x.creator is not None:
                stack.append(x.creator)
    return funcs, variables, edges


def check_each_node_once(output, verbose=False):
    nodes, edges = parse(get_dot_graph(output, verbose=verbose))
    ids = [n[0] for n in nodes]
    assert len(ids) == len(set(ids)), "a node is defined more than once"
    funcs, variables, expected_edges = walk(output)
    assert {n[0] for n in nodes if n[2] == "func"} == funcs
    assert {n[0] for n in nodes if n[2] == "var"} == variables
    assert Counter(edges) == expected_edges
    return nodes, edges


class TwoOutputs(Function):
    def forward(self, x):
        return x * 2, x * 3

    def backward(self, gy0, gy1):
        return gy0 * 2 + gy1 * 3


def test_diamond_graph_each_node_once():
    x = Variable(np.array(2.0), name="x")
    a = F.square(x)
    y = F.exp(a) + F.sin(a)
    y.name = "y"
    nodes, edges = check_each_node_once(y)
    labels = sorted(label for _, label, kind in nodes if kind == "func")
    assert labels == ["Add", "Exp", "Sin", "Square"]
    assert ("x" in [label for _, label, _ in nodes]) and ("y" in [n[1] for n in nodes])
    # x -> Square, Square -> a, a -> Exp, a -> Sin, Exp -> ., Sin -> ., . -> Add x2, Add -> y
    assert len(edges) == 9


def test_multi_output_function_draws_both_outputs_once():
    x = Variable(np.array([1.0, 2.0]), name="x")
    a, b = TwoOutputs()(x)
    y = a * b
    nodes, _ = check_each_node_once(y)
    assert sum(1 for n in nodes if n[1] == "TwoOutputs") == 1


def test_higher_order_derivative_graph_each_node_once():
    x = Variable(np.array(1.0), name="x")
    y = F.tanh(x)
    y.backward(create_graph=True)
    for _ in range(3):
        gx = x.grad
        x.cleargrad()
        gx.backward(create_graph=True)
    gx = x.grad
    gx.name = "gx4"
    nodes, _ = check_each_node_once(gx)
    assert sum(1 for n in nodes if n[1] == "x") == 1  # x is shared by every order
    assert len(nodes) > 50
    first = len(nodes)
    # drawing again gives the same graph (nothing cached or mutated by drawing)
    assert len(parse(get_dot_graph(gx, verbose=False))[0]) == first


def test_verbose_labels_show_shape_and_dtype():
    x = Variable(np.ones((2, 3), dtype=np.float32), name="x")
    y = F.sum(x * 2)
    nodes, _ = check_each_node_once(y, verbose=True)
    labels = {label for _, label, kind in nodes if kind == "var"}
    assert "x: (2, 3) float32" in labels
    assert "() float32" in labels


def test_quotes_in_names_are_escaped():
    x = Variable(np.array(1.0), name='say "hi"')
    nodes, _ = parse(get_dot_graph(x * 2, verbose=False))
    assert any(label == 'say \\"hi\\"' for _, label, _ in nodes)


def test_a_leaf_alone():
    x = Variable(np.array(1.0), name="x")
    nodes, edges = parse(get_dot_graph(x))
    assert [n[2] for n in nodes] == ["var"] and edges == []


def test_core_simple_graphs_draw_too():
    x = core_simple.Variable(np.array(2.0), name="x")
    y = x * x + x
    nodes, edges = check_each_node_once(y)
    assert sorted(n[1] for n in nodes if n[2] == "func") == ["Add", "Mul"]
    assert edges.count((id(x), id(y.creator.inputs[0].creator))) == 2  # x * x: two arrows


@needs_dot
@pytest.mark.parametrize("ext, magic", [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_plot_writes_the_format_of_the_extension(tmp_path, ext, magic):
    x = Variable(np.array(1.0), name="x")
    y = F.sin(x) * x
    target = tmp_path / "sub" / f"graph.{ext}"
    plot_dot_graph(y, verbose=True, to_file=str(target))
    assert target.read_bytes()[: len(magic)] == magic


def test_missing_dot_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(RuntimeError, match=r"Graphviz.*not found.*apt-get install graphviz"):
        plot_dot_graph(Variable(np.array(1.0)) * 2, to_file=str(tmp_path / "g.png"))
    assert not (tmp_path / "g.png").exists()


def test_missing_dot_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no dot anywhere
    with pytest.raises(RuntimeError, match="Install Graphviz"):
        plot_dot_graph(Variable(np.array(1.0)) * 2, to_file=str(tmp_path / "g.png"))


@pytest.mark.skipif(os.name == "nt", reason="uses a shell script as a fake dot")
def test_failing_dot_is_reported(monkeypatch, tmp_path):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Format: \"nope\" not recognized' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"dot failed .*not recognized"):
        plot_dot_graph(Variable(np.array(1.0)) * 2, to_file=str(tmp_path / "g.nope"))
