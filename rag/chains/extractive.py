"""Extractive answers: a span copied from a context, and the check that proves it was.

Two ways to get one:

- a generator with ``generate_extractive`` (``generator.llama_cpp``) decodes under a constraint,
  so the span is copied by construction (:mod:`rag.connectors.generators._spans`);
- any other generator (``generator.openai``) is asked for a quote in the form ``[2] "..."``;
  :func:`find_quote` then looks for it in the contexts. Only a quote found verbatim (up to
  whitespace) is grounded; anything else is kept as the answer text with ``grounded`` false.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NO_ANSWER = "I don't know."
"""The answer text when the model abstains (no span)."""


# [2] "quote", [2]: "quote", or a bare "quote"; straight or curly double quotes.
_QUOTE = re.compile(r'(?:\[\s*(\d+)\s*\]\s*:?\s*)?["\u201c](.+?)["\u201d]', re.DOTALL)
_LEADING_CITATION = re.compile(r"^\s*\[\s*(\d+)\s*\]\s*:?\s*")
_SPACE = re.compile(r"\s+")


@dataclass
class QuoteMatch:
    """Where a quote was found: a context (0-based position) and character offsets."""

    context: int
    start: int
    end: int


@dataclass
class Quote:
    """A quote parsed from a model's reply, with the context number it named (if any)."""

    text: str
    index: int | None = None


def parse_quote(reply: str) -> Quote | None:
    """The quote of a reply written as ``[2] "text"`` (or ``"text"``, or ``[2] text``).

    Example:
        >>> parse_quote('[2] "in 1995"')
        Quote(text='in 1995', index=2)
        >>> parse_quote("I don't know.") is None
        True
    """
    match = _QUOTE.search(reply)
    if match is not None:
        text = match.group(2).strip()
        return Quote(text, int(match.group(1)) if match.group(1) else None) if text else None
    cited = _LEADING_CITATION.match(reply)
    if cited is not None:
        text = reply[cited.end() :].strip()
        return Quote(text, int(cited.group(1))) if text else None
    return None


def find_quote(
    quote: str, contexts: Sequence[str], *, prefer: int | None = None
) -> QuoteMatch | None:
    """Find ``quote`` verbatim in ``contexts``, up to runs of whitespace.

    ``prefer`` (0-based) is searched first (the context the model named), then the others in
    order. Matching is case-sensitive: a quote that changes a letter is not a quote.

    Example:
        >>> find_quote("FAISS  stores\\nvectors", ["x", "FAISS stores vectors on disk."])
        QuoteMatch(context=1, start=0, end=20)
        >>> find_quote("faiss stores vectors", ["FAISS stores vectors."]) is None
        True
    """
    words = quote.split()
    if not words:
        return None
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
    order = list(range(len(contexts)))
    if prefer is not None and 0 <= prefer < len(contexts):
        order.remove(prefer)
        order.insert(0, prefer)
    for number in order:
        found = pattern.search(contexts[number])
        if found is not None:
            return QuoteMatch(number, found.start(), found.end())
    return None


def normalize_space(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def verified(text: str, context: str, start: int, end: int) -> bool:
    """Whether ``text`` is exactly ``context[start:end]`` up to whitespace (and not empty)."""
    return bool(text.strip()) and normalize_space(context[start:end]) == normalize_space(text)


def span_dict(index: int, context_id: str, start: int, end: int, **extra: Any) -> dict[str, Any]:
    return {"index": index, "id": context_id, "start": start, "end": end, **extra}


# --- Where an extractive answer starts: the question's sentence and the answer type ----------


# A sentence ends at ., ! or ? before a capital or digit, at a blank line, and before a line that
# starts a Markdown heading or list item; a single line break inside a paragraph (hard-wrapped
# text) does not end one. Nor does the period of an initial ("Herbert A. Simon", "U.S.") or of a
# title or short form that is mostly followed by a name or number ("St. Louis", "No. 5").
