"""A griffe extension for the API reference: ragline's docstrings head their doctests with
``Example:`` (singular), which griffe's Google parser reads as an admonition, so the ``>>>``
lines would render as Markdown text; this renames the header to ``Examples:`` so they render as
Python console blocks (with the ``# doctest:`` flags trimmed). A paragraph of ``>>>`` lines
outside any section gets an ``Examples:`` header for the same reason, and Sphinx roles
(``:class:`~rag.core.documents.Document` ``) become inline code (``Document``)."""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADER = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|mod|func|meth|attr|exc|data|obj):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    target = match[2]
    return f"`{target.rsplit('.', 1)[-1] if match[1] else target}`"


class ExampleSections(griffe.Extension):
    """Read ``Example:`` as the Google-style ``Examples:`` section."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        value = _ROLE.sub(_role, obj.docstring.value)
        if ">>>" in value:
            value = "\n".join(_sectioned(_HEADER.sub(r"\1Examples:", value).splitlines()))
        obj.docstring.value = value


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
