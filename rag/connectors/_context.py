"""Contextual indexing: the text a chunk is embedded and BM25-indexed as.

A chunk cut from the middle of a document often lacks the words that say what it is about (the
document's title, the section it sits in). ``embedder.sentence_transformers`` and
``retriever.bm25`` take a ``context_template`` such as ``"{title}\\n{text}"`` or
``"{title}\\n{section}\\n{text}"`` and index the rendered text, while the store keeps (and search
shows) the chunk's own text. Fields are the chunk's metadata keys (``title`` from the html, pdf
and jsonl loaders, ``section`` from ``splitter.markdown``, ``source``, ...) and ``text``.

Two rules keep the rendered text free of noise:

- a field that is missing or empty is left out together with the separator that follows it
  (``"{title}\\n{text}"`` of a chunk without a title is the chunk's text alone);
- a field whose value the chunk already starts with (after any Markdown ``#`` marks) is left
  out the same way: the jsonl loader puts a document's title at the start of its text, and a
  Markdown file's title is its first header, so the first chunk is not given its title twice.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from rag.core.errors import ConfigError

_FORMATTER = string.Formatter()


def check_template(template: str | None, *, field: str = "context_template") -> None:
    """Refuse a template that cannot render a chunk.

    Raises:
        ConfigError: naming the problem (no ``{text}``, a positional or malformed field).
    """
    if template is None:
        return
    if not isinstance(template, str):
        raise ConfigError(
            f"{field} must be a string such as '{{title}}\\n{{text}}', got {template!r}",
            field=field,
        )
    try:
        names = [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]
    except ValueError as err:
        raise ConfigError(
            f"{field} {template!r} is not a valid template ({err}); write fields as {{title}}, "
            "and a literal brace as {{ or }}",
            field=field,
        ) from None
    if "text" not in names:
        raise ConfigError(
            f"{field} {template!r} has no {{text}} field: the chunk's own text must be part of "
            "what is indexed; e.g. '{title}\\n{text}'",
            field=field,
        )
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise ConfigError(
            f"{field} {template!r}: field {{{bad[0]}}} is not a metadata key; use plain names "
            "such as {title}, {section}, {source}",
            field=field,
        )


def render(template: str | None, text: str, metadata: Mapping[str, Any]) -> str:
    """The text to index for a chunk of ``text`` with ``metadata`` under ``template``.

    Example:
        >>> render("{title}\\n{text}", "Kickoff was at 6:30.", {"title": "Super Bowl 50"})
        'Super Bowl 50\\nKickoff was at 6:30.'
        >>> render("{title}\\n{text}", "Kickoff was at 6:30.", {})
        'Kickoff was at 6:30.'
        >>> render("{title}\\n{text}", "Super Bowl 50\\n\\nKickoff.", {"title": "Super Bowl 50"})
        'Super Bowl 50\\n\\nKickoff.'
        >>> render("{title}\\n{text}", "# FAISS\\nAn index.", {"title": "FAISS"})
        '# FAISS\\nAn index.'
    """
    if not template:
        return text
    head = text.lstrip().lstrip("#").lstrip()
    parts: list[str] = []
    skip_literal = False
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        if literal and not skip_literal:
            parts.append(literal)
        skip_literal = False
        if name is None:
            continue
        if name == "text":
            parts.append(text)
            continue
        value = metadata.get(name)
        if isinstance(value, (list, tuple)):  # e.g. splitter.markdown's header path
            value = " > ".join(str(v) for v in value)
        rendered = "" if value is None else str(value).strip()
        if conversion or spec:
            rendered = _FORMATTER.format_field(_FORMATTER.convert_field(rendered, conversion), spec)
        if not rendered or head.startswith(rendered):
            skip_literal = True  # drop the separator that follows the left-out field
            continue
        parts.append(rendered)
    return "".join(parts)
