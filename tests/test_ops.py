"""Generic op tests driven by the op table (tests/opdb): every public op, every sample."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import Variable, cuda, no_grad, testing
from tests.opdb import EXEMPT, OPS

# Each op's samples are drawn from a seed derived from its name with a stable hash (Python's
# hash() of a str changes per process), so a failing case replays from its test id.
CASES = []
for _op in OPS:
    _rng = np.random.default_rng(zlib.crc32(_op.name.encode()))
    for _i, _s in enumerate(_op.samples(_rng)):
        CASES.append(pytest.param(_op, _s, id=f"{_op.name}-{_s.name or _i}"))


# (op, sample, path) for every op with several implementations (OpInfo.paths)
PATH_CASES = []
for _op in OPS:
    if not _op.paths:
        continue
    _rng = np.random.default_rng(zlib.crc32(_op.name.encode()))
    for _i, _s in enumerate(_op.samples(_rng)):
        for _name in _op.paths:
            PATH_CASES.append(pytest.param(_op, _s, _name,
                                           id=f"{_op.name}-{_s.name or _i}-{_name}"))


def _convert(args, diff, xp=np, dtype=None, wrap=True):
    out = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            a = xp.asarray(a.astype(dtype) if dtype is not None and a.dtype.kind == "f" else a)
            out.append(Variable(a) if wrap and i in diff else a)
        else:
            out.append(a)
    return out


def _call(op, sample, args):
    return testing.as_output_list(op.op(*args, **sample.kwargs))


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_forward_matches_numpy(op, sample):
    if op.ref is None:
        pytest.skip(f"{op.name} has no NumPy reference: {op.note}")
    ys = _call(op, sample, _convert(sample.args, sample.diff_indices()))
    expected = op.ref(*sample.args, **sample.kwargs)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    assert len(ys) == len(expected), f"{op.name}: {len(ys)} outputs, reference has {len(expected)}"
    for y, e in zip(ys, expected):
        assert isinstance(y, Variable), f"{op.name} returned {type(y).__name__}"
        np.testing.assert_allclose(y.data, e, atol=op.atol, rtol=op.rtol,
                                   err_msg=f"{op.name}[{sample.name}] forward")
        assert y.shape == np.shape(e), f"{op.name}: shape {y.shape} != {np.shape(e)}"


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_backward_matches_numerical(op, sample):
    if not op.grad:
        pytest.skip(f"{op.name} is not differentiable: {op.note}")
    testing.check_backward(
        lambda *a: op.op(*a, **sample.kwargs), list(sample.args), sample.diff_indices(),
        name=f"{op.name}[{sample.name}] float64", atol=op.grad_atol, rtol=op.grad_rtol,
    )


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_double_backward_matches_numerical(op, sample):
    if not (op.grad and op.double_grad):
        pytest.skip(f"{op.name} has no second derivative check: {op.note}")
    testing.check_double_backward(
        lambda *a: op.op(*a, **sample.kwargs), list(sample.args), sample.diff_indices(),
        name=f"{op.name}[{sample.name}] float64", atol=max(op.grad_atol, 1e-5),
        rtol=max(op.grad_rtol, 1e-4),
    )


def _gradient_step(op, sample):
    """A step for dezero.jit: the op's output, its first-order gradients made with
    create_graph, and the second-order gradients of their squared sum."""
    diff = sample.diff_indices()

    def step(*arrays):
        args = [Variable(a) if i in diff else a for i, a in enumerate(arrays)]
        ys = [y for y in _call(op, sample, args) if y.dtype.kind == "f"]
        total = sum(F.sum(y * y) for y in ys)
        gxs = dezero.grad(total, [args[i] for i in diff], create_graph=True)
        gxs = [g for g in gxs if g is not None]
        outs = ys + gxs
        if gxs and op.double_grad:
            outs += [g for g in dezero.grad(sum(F.sum(g * g) for g in gxs),
                                            [args[i] for i in diff]) if g is not None]
        return outs

    return step


def _new_values(a, rng):
    """An argument with new values of the same kind: floats moved by 0.1%, other arrays
    (labels, ids, masks) shuffled (their values stay valid)."""
    if not isinstance(a, np.ndarray):
        return a
    if a.dtype.kind == "f":
        return np.asarray(a * (1 + 1e-3 * rng.standard_normal(a.shape)))
    return rng.permutation(a.ravel()).reshape(a.shape)


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_jit_replays_first_and_second_order_gradients_as_eager(op, sample):
    """Every op's forward and its gradient formulas (first order with create_graph, second
    order) replayed by dezero.jit on new values of every argument (labels and masks too)
    equal the eager run: no wrapper or formula keeps an array of the first call."""
    step = _gradient_step(op, sample)
    jitted = dezero.jit(step)
    rng = np.random.default_rng(0)
    first = list(sample.args)
    jitted(*first)  # the trace
    for _ in range(2):  # new values of the same shapes: replays
        args = [_new_values(a, rng) for a in first]
        eager = step(*args)
        replayed = jitted(*args)
        assert len(replayed) == len(eager)
        for r, e in zip(replayed, eager):
            np.testing.assert_allclose(r.data, e.data, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{op.name}[{sample.name}]: replay != eager")
    assert jitted.stats()["replays"] == 2


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_float32_in_float32_out(op, sample):
    if not op.float32:
        pytest.skip(f"{op.name}: {op.note}")
    diff = sample.diff_indices()
    args32 = _convert(sample.args, diff, dtype=np.float32)
    ys = _call(op, sample, args32)
    ys64 = _call(op, sample, _convert(sample.args, diff))
    for y, y64 in zip(ys, ys64):
        if y64.dtype == np.float64:
            assert y.dtype == np.float32, f"{op.name}: float32 inputs gave {y.dtype} output"
            np.testing.assert_allclose(y.data, y64.data, atol=op.f32_atol, rtol=op.f32_rtol)
    if op.grad:
        total = sum(F.sum(y) for y in ys if y.dtype.kind == "f")
        total.backward()
        for i in diff:
            g = args32[i].grad
            if g is not None:
                assert g.dtype == np.float32, f"{op.name}: gradient of input {i} is {g.dtype}"
                assert g.shape == args32[i].shape


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_nothing_recorded_under_no_grad(op, sample):
    args = _convert(sample.args, sample.diff_indices())
    with no_grad():
        ys = _call(op, sample, args)
    for y in ys:
        assert y.creator is None, f"{op.name} recorded a graph under no_grad"


@pytest.mark.parametrize(("op", "sample"), CASES)
def test_inputs_not_mutated(op, sample):
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in sample.args]
    args = _convert(sample.args, sample.diff_indices(), wrap=False)
    vs = _convert(sample.args, sample.diff_indices())
    ys = _call(op, sample, vs)
    if op.grad:
        sum(F.sum(y) for y in ys if y.dtype.kind == "f").backward()
    _call(op, sample, args)
    for b, a in zip(before, sample.args):
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f"{op.name} mutated an input")


def _outputs_and_grads(op, sample, path, dtype):
    """Under ``path``: the op's outputs and the gradients of sum(outputs * weights) (fixed
    weights, so that every output element matters differently)."""
    diff = sample.diff_indices()
    with op.paths[path]():
        vs = _convert(sample.args, diff, dtype=dtype)
        ys = _call(op, sample, vs)
        rng = np.random.default_rng(7)
        total = sum(F.sum(y * rng.uniform(0.5, 1.5, y.shape).astype(y.dtype)) for y in ys)
        total.backward()
        grads = [vs[i].grad.data.copy() for i in diff if vs[i].grad is not None]
    return [y.data.copy() for y in ys] + grads


@pytest.mark.parametrize(("op", "sample", "path"), PATH_CASES)
def test_every_path_matches_the_reference_and_the_numerical_gradients(op, sample, path):
    reference = next(iter(op.paths))
    for dtype, rtol, atol in ((np.float64, 1e-12, 1e-12), (np.float32, 1e-5, 1e-6)):
        got = _outputs_and_grads(op, sample, path, dtype)
        want = _outputs_and_grads(op, sample, reference, dtype)
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            assert a.dtype == b.dtype == dtype and a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=(
                f"{op.name}[{sample.name}] path {path} vs {reference}, {np.dtype(dtype)}, "
                f"value {i}"))
    fn = lambda *a: op.op(*a, **sample.kwargs)  # noqa: E731
    name = f"{op.name}[{sample.name}] path {path} float64"
    with op.paths[path]():
        testing.check_backward(fn, list(sample.args), sample.diff_indices(), name=name,
                               atol=op.grad_atol, rtol=op.grad_rtol)
        if op.double_grad:
            testing.check_double_backward(fn, list(sample.args), sample.diff_indices(),
                                          name=name, atol=max(op.grad_atol, 1e-5),
                                          rtol=max(op.grad_rtol, 1e-4))


@pytest.mark.gpu
@pytest.mark.parametrize(("op", "sample"), CASES)
def test_gpu_matches_cpu(op, sample):
    cp = cuda.cupy
    diff = sample.diff_indices()
    results = []
    for xp in (np, cp):
        if xp is cp and not cuda.gpu_enable:
            pytest.skip("no GPU")
        vs = _convert(sample.args, diff, xp=xp, dtype=np.float32)
        ys = _call(op, sample, vs)
        grads = []
        if op.grad:
            sum(F.sum(y) for y in ys if y.dtype.kind == "f").backward()
            grads = [None if vs[i].grad is None else cuda.as_numpy(vs[i].grad.data) for i in diff]
        results.append(([cuda.as_numpy(y.data) for y in ys], grads))
    (ys_cpu, g_cpu), (ys_gpu, g_gpu) = results
    for a, b in zip(ys_cpu, ys_gpu):
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4, err_msg=f"{op.name} forward")
    for a, b in zip(g_cpu, g_gpu):
        if a is not None:
            np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4, err_msg=f"{op.name} grad")


def test_every_public_function_is_in_the_table_or_exempt():
    covered = {op.name for op in OPS}
    public = [n for n in F.__all__ if callable(getattr(F, n)) and n[:1].islower()]
    missing = [n for n in public if n not in covered and n not in EXEMPT]
    assert not missing, f"public functions with no op-table entry and no exemption: {missing}"
    for name, reason in EXEMPT.items():
        assert reason.strip(), f"exemption of {name} gives no reason"


def test_samples_are_the_same_in_every_process():
    # a different hash seed in a child process must draw the same inputs (replayable test ids)
    code = (
        "import zlib, numpy as np; from tests.test_ops import CASES; "
        "print(zlib.crc32(b''.join(a.tobytes() for c in CASES[:200] "
        "for a in c.values[1].args if isinstance(a, np.ndarray))))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    here = zlib.crc32(b"".join(a.tobytes() for c in CASES[:200] for a in c.values[1].args
                               if isinstance(a, np.ndarray)))
    assert int(out.stdout.strip()) == here


def test_numerical_gradients_of_a_transposed_input():
    # the op table's channel-major samples are transposed views: the finite differences
    # must perturb the input itself, not a copy of it
    x = np.arange(6.0).reshape(2, 3).T  # (3, 2), not C-contiguous
    g = testing.numerical_vjp(lambda a: a * a, [x], [np.ones((3, 2))], 0)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-6)
