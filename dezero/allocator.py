"""The C library's allocator settings for training loops (glibc on Linux; elsewhere nothing).

NumPy allocates every array with ``malloc``. With glibc's defaults, arrays of a few
hundred KiB and more are served by ``mmap`` (the threshold adapts upwards only as large
blocks are freed), and free memory at the top of the heap is handed back to the system
once it exceeds 128 KiB. A training step allocates and frees the same arrays every
iteration, so each step touches fresh pages again: measured on the GPT example, about
7,000 page faults (15 ms of kernel time) per step, where PyTorch, whose CPU allocator
keeps its blocks, had about 100.

So importing dezero asks glibc (once, process-wide) to serve blocks below 64 MiB from the
heap and to keep up to 512 MiB of freed memory there for the next step to reuse
(:func:`keep_freed_memory`). The process then keeps its peak memory instead of returning
it between steps; the peak itself does not grow. To leave the allocator alone, set the
environment variable ``DEZERO_KEEP_FREED_MEMORY=0`` before importing dezero, or call
:func:`return_freed_memory` (glibc's default thresholds again) at any time;
:func:`trim` hands the memory that is free right now back to the system.

>>> from dezero import allocator
>>> allocator.is_keeping() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["is_keeping", "keep_freed_memory", "return_freed_memory", "trim"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GLIBC_DEFAULT = 128 * 1024  # both thresholds' documented defaults
_state = {"keeping": False, "libc": None}


def _libc():
    """glibc's handle, or None (not Linux, or a C library without mallopt, e.g. musl)."""
    if _state["libc"] is None:
        lib = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.mallopt.restype = ctypes.c_int
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                lib.malloc_trim.restype = ctypes.c_int
            except (OSError, AttributeError):
                lib = False
        _state["libc"] = lib
    return _state["libc"] or None


def _set(mmap_threshold: int, trim_threshold: int) -> bool:
    lib = _libc()
    if lib is None:
        return False
    return bool(lib.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        lib.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Serve blocks below ``mmap_threshold`` bytes from the heap and keep up to
    ``trim_threshold`` free bytes there. Returns True when applied (Linux with glibc),
    False elsewhere (where nothing is changed). Process-wide; importing dezero calls it
    unless ``DEZERO_KEEP_FREED_MEMORY=0``.
    """
    if mmap_threshold < 0 or trim_threshold < 0:
        raise ValueError(f"keep_freed_memory: thresholds must be non-negative, got "
                         f"{mmap_threshold} and {trim_threshold}")
    applied = _set(mmap_threshold, trim_threshold)
    _state["keeping"] = _state["keeping"] or applied
    return applied


def return_freed_memory() -> bool:
    """Set glibc's default thresholds (128 KiB each) again: freed memory goes back to the
    system, at the cost of fresh page faults every step. Returns True when applied."""
    applied = _set(_GLIBC_DEFAULT, _GLIBC_DEFAULT)
    if applied:
        _state["keeping"] = False
    return applied


def is_keeping() -> bool:
    """Whether :func:`keep_freed_memory`'s setting is in force in this process."""
    return _state["keeping"]


def trim() -> bool:
    """Hand the heap's free memory back to the system now (``malloc_trim``); True if some
    was released."""
    lib = _libc()
    return bool(lib.malloc_trim(0)) if lib is not None else False


def _apply_default() -> None:
    if os.environ.get("DEZERO_KEEP_FREED_MEMORY", "1").strip().lower() in (
            "0", "false", "no", "off"):
        return
    keep_freed_memory()


_apply_default()
