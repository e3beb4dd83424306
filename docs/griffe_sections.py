"""A griffe extension for the API reference: read dezero's docstrings as the doctests do.

dezero's docstrings are NumPy style, but many put a paragraph of prose after their
Parameters section, or a doctest after the prose, without a section header, which reads well
as text and runs as a doctest. The NumPy parser would take that prose for parameters and the
doctest output for Markdown. This extension adds the missing headers when the reference is
built (the source stays as it is): a paragraph that follows a Parameters-like section and is
not a parameter line opens a ``Notes`` section, and a ``>>>`` line outside an ``Examples``
section opens one.
"""

from __future__ import annotations

import re

from griffe import Extension

_ENTRY_SECTIONS = {"parameters", "other parameters", "attributes", "raises", "warns",
                   "returns", "yields", "receives"}
_PARAM = re.compile(r"^\*{0,2}\w+(\s*,\s*\*{0,2}\w+)*(\s+:.*)?$")


def add_sections(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and nxt.strip() and set(nxt.strip()) == {"-"} and not line[0].isspace():
            section = line.strip().lower()
            out += [line, nxt]
            i += 2
            continue
        if line.startswith(">>>") and section != "examples":
            if out and out[-1].strip():
                out.append("")
            out += ["Examples", "--------"]
            section = "examples"
        elif (section in _ENTRY_SECTIONS and line.strip() and not line[0].isspace()
              and out and not out[-1].strip() and not _PARAM.match(line.strip())):
            out += ["Notes", "-----"]
            section = "notes"
        out.append(line)
        i += 1
    return "\n".join(out)


class NumpySections(Extension):
    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = add_sections(obj.docstring.value)
