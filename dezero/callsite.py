"""Where in the user's code something happens: ``user_location()`` gives ``"file:line"``.

The one finder of "the user's line" for every tool that reports one (``dezero.jit``'s
capture errors, anomaly detection, the ONNX exporter, the profiler). It imports nothing of
dezero (layer L0).
"""

from __future__ import annotations

import os
import sys

__all__ = ["user_location"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# the engine and the op library: a model's own line is the first frame outside these
_ENGINE = tuple(_PACKAGE + name for name in ("core.py", "hooks.py", "callsite.py",
                                              "functions" + os.sep, "functions_conv.py"))


def user_location(stop_at: str | None = None) -> str:
    """``"file:line"`` of the innermost frame of the code running now outside the dezero
    package: the line of the user's code that led here.

    Parameters
    ----------
    stop_at : str, optional
        A file of a dezero tool that runs models itself (the ONNX exporter calls a model's
        ``forward``): frames from that file on belong to the tool, not to the model. When the
        walk reaches one before any frame outside dezero, the answer is the innermost frame
        outside the engine and the op library (a dezero model's or layer's own line).

    Returns
    -------
    str
        ``"path/to/file.py:42"``, or ``"<unknown>"``.

    Examples
    --------
    >>> user_location().startswith("<doctest")
    True
    """
    frame = sys._getframe(1)
    if stop_at is not None:
        stop_at = os.path.abspath(stop_at)
        while frame is not None and frame.f_code.co_filename == stop_at:
            frame = frame.f_back  # the tool's own frames, where the walk starts
    inner = None
    while frame is not None:
        file = frame.f_code.co_filename
        if stop_at is not None and file == stop_at:
            break
        if not file.startswith(_PACKAGE):
            return f"{file}:{frame.f_lineno}"
        if inner is None and not file.startswith(_ENGINE):
            inner = f"{file}:{frame.f_lineno}"
        frame = frame.f_back
    return inner or "<unknown>"
