"""dezero.allocator: the allocator setting that importing dezero applies, and its switches.
Each case runs in a child process: the setting is process-wide."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLIBC = sys.platform.startswith("linux") and "glibc" in " ".join(
    __import__("platform").libc_ver())


def _child(code, **env):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env}, timeout=120, check=True)
    return proc.stdout.strip()


def test_importing_dezero_keeps_freed_memory_unless_switched_off():
    code = "import dezero; print(dezero.allocator.is_keeping())"
    assert _child(code, DEZERO_KEEP_FREED_MEMORY="1") == str(GLIBC)
    for off in ("0", "off", "false"):
        assert _child(code, DEZERO_KEEP_FREED_MEMORY=off) == "False"


def test_return_freed_memory_restores_the_defaults():
    code = ("import dezero; from dezero import allocator as a; "
            "print(a.is_keeping(), a.return_freed_memory(), a.is_keeping(), "
            "a.keep_freed_memory(), a.is_keeping(), a.trim() in (True, False))")
    expect = "True True False True True True" if GLIBC else "False False False False False True"
    assert _child(code) == expect


def test_bad_thresholds_are_refused():
    from dezero import allocator

    with pytest.raises(ValueError, match="thresholds must be non-negative"):
        allocator.keep_freed_memory(-1)


def test_no_benchmark_or_example_calls_a_private_dezero_name():
    """What a benchmark measures and an example shows is what users get: public API only."""
    private = re.compile(r"\bdezero(?:\.\w+)*\._(?!_)\w+"  # dezero._allocator.x
                         r"|from dezero(?:\.\w+)* import[^\n]*\b_(?!_)\w+")  # import _x
    offenders = []
    for folder in ("benchmarks", "examples"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if private.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
