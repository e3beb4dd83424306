"""glibc's allocator settings for training loops (private; used by examples and benchmarks).

NumPy allocates every intermediate array with ``malloc``. With glibc's defaults, arrays of
a few hundred KiB and more are served by ``mmap`` (the threshold adapts upwards only as
large blocks are freed), and free memory at the top of the heap is handed back to the
system once it exceeds the trim threshold. A training step that allocates and frees the
same arrays every iteration then touches fresh pages again and again: on the GPT example
that was about 7,000 page faults (15 ms of kernel time) per step, where PyTorch's step
in the same process had about 100. Fixed thresholds keep the freed blocks in the heap for
the next step to reuse: the process keeps its peak memory instead of returning it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Ask glibc to serve blocks below ``mmap_threshold`` bytes from the heap and to keep
    up to ``trim_threshold`` free bytes there. Returns True when applied (Linux with glibc),
    False elsewhere (where nothing is changed). Process-wide; call it once, early.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
