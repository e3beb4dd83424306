"""The book's utilities: graph pictures, numerical gradients and array comparisons.

The book's other names live where they belong and are re-exported here: the array helpers
(``sum_to``, ``logsumexp``, ``pair``, ...) in ``dezero.array_utils``, the downloads
(``get_file``, ``cache_dir``, ...) in ``dezero.download``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np

from dezero import cuda
from dezero.array_utils import (
    get_conv_outsize,
    get_deconv_outsize,
    logsumexp,
    pair,
    reshape_sum_backward,
    sum_to,
)
from dezero.core import Variable, as_variable
from dezero.download import (
    ChecksumError,
    DownloadError,
    OfflineError,
    cache_dir,
    get_cache_dir,
    get_file,
)

__all__ = [
    "ChecksumError",
    "DownloadError",
    "OfflineError",
    "array_allclose",
    "array_equal",
    "cache_dir",
    "get_cache_dir",
    "get_conv_outsize",
    "get_deconv_outsize",
    "get_dot_graph",
    "get_file",
    "gradient_check",
    "logsumexp",
    "numerical_grad",
    "pair",
    "plot_dot_graph",
    "reshape_sum_backward",
    "sum_to",
]


# =============================================================================
# Graph pictures (Graphviz)
# =============================================================================
def _dot_var(v: Variable, verbose: bool = False) -> str:
    name = "" if v.name is None else v.name
    if verbose and v.data is not None:
        if v.name is not None:
            name += ": "
        name += f"{v.shape} {v.dtype}"
    name = name.replace('"', '\\"')
    return f'{id(v)} [label="{name}", color=orange, style=filled]\n'


def _dot_func(f) -> str:
    lines = [f'{id(f)} [label="{type(f).__name__}", color=lightblue, style=filled, shape=box]\n']
    for x in f.inputs:
        lines.append(f"{id(x)} -> {id(f)}\n")
    for ref in f.outputs:
        y = ref()
        if y is not None:
            lines.append(f"{id(f)} -> {id(y)}\n")
    return "".join(lines)


def get_dot_graph(output: Variable, verbose: bool = True) -> str:
    """Return the DOT source of the graph that produced ``output``.

    Every Variable and Function appears exactly once, also when the graph is itself the
    graph of a derivative (``create_graph=True``).

    >>> import numpy as np
    >>> from dezero.core import Variable
    >>> x = Variable(np.array(1.0), name="x")
    >>> print(get_dot_graph(x * 2, verbose=False).splitlines()[0])
    digraph g {
    """
    parts = [_dot_var(output, verbose)]
    seen_vars = {id(output)}
    seen_funcs: set = set()
    stack = []
    if output.creator is not None:
        stack.append(output.creator)
        seen_funcs.add(id(output.creator))
    while stack:
        f = stack.pop()
        parts.append(_dot_func(f))
        for ref in f.outputs:  # outputs other than the one we came from (multi-output ops)
            y = ref()
            if y is not None and id(y) not in seen_vars:
                seen_vars.add(id(y))
                parts.append(_dot_var(y, verbose))
        for x in f.inputs:
            if id(x) not in seen_vars:
                seen_vars.add(id(x))
                parts.append(_dot_var(x, verbose))
            if x.creator is not None and id(x.creator) not in seen_funcs:
                seen_funcs.add(id(x.creator))
                stack.append(x.creator)
    return "digraph g {\n" + "".join(parts) + "}"


def plot_dot_graph(output: Variable, verbose: bool = True, to_file: str = "graph.png"):
    """Draw the graph of ``output`` into ``to_file`` with Graphviz ``dot``.

    The format follows the file's extension (png, svg, pdf, ...). Raises RuntimeError with
    install instructions when ``dot`` is missing, and with dot's message when it fails.
    In Jupyter, returns an ``IPython.display.Image`` of the picture.
    """
    dot_graph = get_dot_graph(output, verbose)
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "plot_dot_graph needs the Graphviz 'dot' program, which was not found on PATH. "
            "Install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), "
            "`brew install graphviz` (macOS) or `conda install graphviz`."
        )
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    parent = os.path.dirname(os.path.abspath(to_file))
    os.makedirs(parent, exist_ok=True)
    proc = subprocess.run(
        [dot, f"-T{extension}", "-o", to_file],
        input=dot_graph.encode(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"Graphviz dot failed to write {to_file!r} (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    try:  # show the picture inline when running under IPython/Jupyter
        from IPython import get_ipython

        if get_ipython() is not None:
            from IPython.display import Image

            return Image(filename=to_file)
    except ImportError:
        pass
    return None


# =============================================================================
# Gradient checking (the book's helpers; see dezero.testing for the strict versions)
# =============================================================================
def numerical_grad(f, x, *args, eps=1e-4, **kwargs):
    """Central-difference gradient of ``sum(f(x, *args, **kwargs))`` with respect to ``x``.

    ``x`` is a Variable or an array; the result is an array of ``x``'s shape.

    >>> numerical_grad(lambda v: v * v, np.array(3.0))
    array(6.)
    """
    x = x.data if isinstance(x, Variable) else x
    xp = cuda.get_array_module(x)
    if xp is not np:
        np_x = cuda.as_numpy(x)
    else:
        np_x = x
    grad = np.zeros_like(np_x, dtype=np.float64 if np_x.dtype.kind != "f" else np_x.dtype)
    it = np.nditer(np_x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        idx = it.multi_index
        tmp = np_x[idx].copy()
        np_x[idx] = tmp + eps
        y1 = f(as_variable(xp.asarray(np_x) if xp is not np else np_x), *args, **kwargs)
        y1 = float(cuda.as_numpy(y1.data if isinstance(y1, Variable) else y1).sum())
        np_x[idx] = tmp - eps
        y2 = f(as_variable(xp.asarray(np_x) if xp is not np else np_x), *args, **kwargs)
        y2 = float(cuda.as_numpy(y2.data if isinstance(y2, Variable) else y2).sum())
        np_x[idx] = tmp
        grad[idx] = (y1 - y2) / (2 * eps)
        it.iternext()
    return grad


def gradient_check(f, x, *args, rtol=1e-4, atol=1e-5, **kwargs):
    """Compare backprop with central differences for ``sum(f(x))``; True when they agree.

    On disagreement, prints the shapes and the worst values (as the book does) and returns
    False. ``dezero.testing.check_backward`` is the strict variant that raises.

    >>> from dezero.functions import sin
    >>> gradient_check(sin, np.random.rand(3))
    True
    """
    x = as_variable(x)
    x.data = x.data.astype(np.float64)
    num_grad = numerical_grad(f, x, *args, **kwargs)
    y = f(x, *args, **kwargs)
    y.backward()
    bp_grad = x.grad.data
    assert bp_grad.shape == num_grad.shape
    res = array_allclose(num_grad, bp_grad, atol=atol, rtol=rtol)
    if not res:
        print()
        print("========== FAILED (Gradient Check) ==========")
        print("Numerical Grad")
        print(f" shape: {num_grad.shape}")
        print(f" values: {num_grad.flatten()[:10]} ...")
        print("Backprop Grad")
        print(f" shape: {bp_grad.shape}")
        print(f" values: {cuda.as_numpy(bp_grad).flatten()[:10]} ...")
    return res


def array_equal(a, b):
    """True if ``a`` and ``b`` (Variables or arrays on any device) are equal elementwise.

    >>> array_equal(np.ones(2), np.ones(2))
    True
    """
    a = cuda.as_numpy(a.data if isinstance(a, Variable) else a)
    b = cuda.as_numpy(b.data if isinstance(b, Variable) else b)
    return bool(np.array_equal(a, b))


def array_allclose(a, b, rtol=1e-4, atol=1e-5):
    """True if ``a`` and ``b`` (Variables or arrays on any device) are close elementwise.

    >>> array_allclose(np.ones(2), np.ones(2) + 1e-7)
    True
    """
    a = cuda.as_numpy(a.data if isinstance(a, Variable) else a)
    b = cuda.as_numpy(b.data if isinstance(b, Variable) else b)
    return bool(np.allclose(a, b, atol=atol, rtol=rtol))
