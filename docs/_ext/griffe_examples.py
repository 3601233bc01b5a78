"""A griffe extension for the API reference: ragline's docstrings head their doctests with
``Example:`` (singular), which griffe's Google parser reads as an admonition, so the ``>>>``
lines would render as Markdown text; this renames the header to ``Examples:`` so they render as
Python console blocks (with the ``# doctest:`` flags trimmed). A paragraph of ``>>>`` lines
outside any section gets an ``Examples:`` header for the same reason."""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADER = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Read ``Example:`` as the Google-style ``Examples:`` section."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None or ">>>" not in obj.docstring.value:
            return
        value = _HEADER.sub(r"\1Examples:", obj.docstring.value)
        obj.docstring.value = "\n".join(_sectioned(value.splitlines()))


def _sectioned(lines: list[str]) -> list[str]:
    """Put a bare paragraph of ``>>>`` lines under an ``Examples:`` header."""
    out: list[str] = []
    in_examples = wrapping = False
    for index, line in enumerate(lines):
        stripped = line.strip()
        if re.match(r"^Examples?:$", stripped):
            in_examples = True
        elif wrapping and not stripped:
            wrapping = False
        elif (
            not in_examples
            and not wrapping
            and stripped.startswith(">>>")
            and (index == 0 or not lines[index - 1].strip())
        ):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}Examples:")
            wrapping = True
        out.append(f"    {line}" if wrapping else line)
    return out
