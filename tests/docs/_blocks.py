"""Fenced code blocks of the Markdown pages (docs/ and README.md) and their check markers.

A marker is an HTML comment on the line directly above the opening fence::

    <!-- docs-check: needs weaviate -->
    ```bash
    rag ingest examples/corpus --config examples/stores/weaviate.yaml
    ```

Kinds: ``needs WHAT`` (a bash block that needs a service: parsed against the CLI, not run),
``skip REASON`` (neither run nor parsed), ``run`` (a bash block without ``rag`` that the page's
later blocks need, such as one writing a dataset: run in order with them), ``fragment`` (YAML that is a piece of a file: parsed as
YAML only) and ``eval`` (YAML that is an eval file). The convention is written for everyone in
/work/briefs/notes/from-H5a.md and in docs/contributing.md.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASH_LANGUAGES = {"bash", "sh", "shell"}
YAML_LANGUAGES = {"yaml", "yml"}
MARKER_KINDS = {"needs", "skip", "run", "fragment", "eval"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-check:\s*(?P<kind>[\w-]+)\s*(?P<reason>.*?)\s*-->\s*$")
_SUBSTITUTION = re.compile(r"\$\((?:[^()]|\([^()]*\))*\)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_FD_REDIRECT = re.compile(r"(?<=\s)\d+(?=[<>])")
_OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")"}


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and its marker."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: str | None = None  # needs / skip / run / fragment / eval
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of one Markdown file, in order.

    Raises:
        ValueError: a marker of an unknown kind, or a fence left open (naming file and line).
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = (match["info"].split() or [""])[0].strip("{}.").lower()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines):
            close = _FENCE.match(lines[index])
            if close and close["fence"].startswith(fence) and not close["info"].strip():
                break
            body.append(lines[index])
            index += 1
        else:
            raise ValueError(f"{path}:{start + 1}: code fence {fence} is never closed")
        marker = reason = None
        if start > 0:
            marked = _MARKER.match(lines[start - 1])
            if marked:
                marker, reason = marked["kind"], marked["reason"]
                if marker not in MARKER_KINDS:
                    raise ValueError(
                        f"{path}:{start}: unknown docs-check marker '{marker}'; "
                        f"use one of {', '.join(sorted(MARKER_KINDS))}"
                    )
        text = textwrap.dedent("\n".join(line.removeprefix(indent) for line in body))
        found.append(Block(path, start + 1, language, text + "\n", marker, reason or ""))
        index += 1
    return found


def all_blocks(languages: set[str]) -> list[Block]:
    """Every block in the given languages across README.md and docs/."""
    return [b for page in markdown_pages() for b in blocks(page) if b.language in languages]


def rag_commands(script: str) -> list[list[str]]:
    """The argument lists of every ``rag`` call in a shell script (after ``rag``).

    Command substitutions ``$(...)`` are replaced by a placeholder word, comments and
    redirections are dropped, and leading ``VAR=value`` assignments are skipped.

    Example:
        >>> rag_commands("X=1 rag search 'a b' --k 5 > out.txt  # find\\nls | rag stats -c f")
        [['search', 'a b', '--k', '5'], ['stats', '-c', 'f']]
    """
    joined = _SUBSTITUTION.sub("SUBSTITUTED", script.replace("\\\n", " "))
    commands: list[list[str]] = []
    for line in joined.splitlines():
        line = _FD_REDIRECT.sub(" ", line)  # 2>/dev/null, 2>&1: drop the descriptor number
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
        current: list[str] = []
        for word in [*words, ";"]:
            if word in _OPERATORS:
                commands.extend(_rag_args(current))
                current = []
            else:
                current.append(word)
    return commands


def _rag_args(words: list[str]) -> list[list[str]]:
    position = 0
    while position < len(words) and _ASSIGNMENT.match(words[position]):
        position += 1
    if position >= len(words) or words[position] != "rag":
        return []
    args: list[str] = []
    skip_next = False
    for word in words[position + 1 :]:
        if skip_next:
            skip_next = False
            continue
        if set(word) <= set("<>&") or re.fullmatch(r"\d?[<>]+&?\d*", word):
            skip_next = not re.fullmatch(r"\d?>&\d", word)
            continue
        args.append(word)
    return [args]
