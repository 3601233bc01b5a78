"""The records a chain returns: :class:`Answer`, its numbered :class:`Context` and
:class:`Citation` entries, and :func:`parse_citations`, which maps ``[2]`` back to a chunk."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.core.documents import Hit
from rag.core.generation import Message, Usage

# "[2]", "[1, 3]", "[1][2]"; a number inside brackets with optional commas between numbers.
CITATION_MARK = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]")
"""A citation in an answer: ``[2]`` or ``[1, 3]`` (the numbers in group 1)."""


@dataclass
class Context:
    """A retrieved chunk as it was numbered (and possibly trimmed) in the prompt."""

    index: int
    id: str
    source: str
    text: str
    score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    trimmed: bool = False

    @classmethod
    def from_hit(cls, index: int, hit: Hit) -> Context:
        return cls(
            index=index,
            id=hit.chunk.id,
            source=hit.chunk.source,
            text=hit.chunk.text,
            score=float(hit.score),
            metadata=dict(hit.chunk.metadata),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "source": self.source,
            "score": self.score,
            "text": self.text,
            "metadata": self.metadata,
            "trimmed": self.trimmed,
        }


@dataclass
class Citation:
    """A context the answer cites: its number in the prompt, chunk id and source."""

    index: int
    id: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "index": self.index}


def parse_citations(text: str, contexts: Sequence[Context]) -> tuple[list[Citation], int]:
    """Citations of ``text`` that name a given context, and the count of those that do not.

    Each cited context appears once, in order of first citation.

    Example:
        >>> ctx = [Context(index=1, id="c1", source="a.md", text="...")]
        >>> cited, invalid = parse_citations("Yes [1], see also [1, 4].", ctx)
        >>> [c.id for c in cited], invalid
        (['c1'], 1)
    """
    by_index = {c.index: c for c in contexts}
    cited: dict[int, Citation] = {}
    invalid = 0
    for match in CITATION_MARK.finditer(text):
        for number in re.split(r"\s*,\s*", match.group(1)):
            context = by_index.get(int(number))
            if context is None:
                invalid += 1
            elif context.index not in cited:
                cited[context.index] = Citation(context.index, context.id, context.source)
    return list(cited.values()), invalid


@dataclass
class AnswerSpan:
    """Where an extractive answer was copied from: ``contexts[index].text[start:end]``.

    Attributes:
        index: The context's number in the prompt (as cited, ``[index]``).
        id: The chunk id of that context.
        start: Character offset of the answer in the context's text.
        end: Character offset just past it.
        logprob: The model's log-probability of the first token (constrained decoding only).
    """

    index: int
    id: str
    start: int
    end: int
    logprob: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "index": self.index,
            "id": self.id,
            "start": self.start,
            "end": self.end,
        }
        if self.logprob is not None:
            data["logprob"] = round(self.logprob, 4)
        return data


@dataclass
class Answer:
    """What a chain produced, with everything needed to check it.

    ``to_dict()`` is the shape of ``rag ask --json``:
    ``{"answer", "citations", "contexts", "prompt", "timings", ...}``.

    Attributes:
        question: The question asked.
        text: The generated answer.
        citations: Contexts the answer cites (chunk id and source), each once.
        contexts: The numbered contexts given to the model, with retrieval scores.
        prompt: The user prompt rendered from the prompt template.
        messages: The exact messages of the last generator call (system, user, tool turns).
        usage: Tokens used, summed over every generator call.
        tool_calls: Each tool call with its arguments and its result or error.
        timings: Seconds per stage: ``retrieve``, ``prompt``, ``generate``, ``tools``, ``total``.
        invalid_citations: Citations of numbers that were not given as contexts (dropped).
        dropped_contexts: Retrieved contexts left out because the context window was full.
        steps: Generator calls made.
        finish_reason: Why the last call stopped (``stop``, ``length``, ``max_steps``,
            ``abstain``, ...).
        answer_style: The style's name: ``evidence``, ``extractive``, ``concise`` or
            ``sentences``.
        grounded: True only when every answer word is proven to come from a cited context: a
            span or sentence copied from it and checked against it (never guessed).
        span: The first proven span of a grounded answer, else ``None``.
        spans: Every proven span, in the order of the text (``style.evidence``: the factoid
            span, then its sentence); character offsets into the cited contexts' texts.
    """

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)
    prompt: str = ""
    messages: list[Message] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    invalid_citations: int = 0
    dropped_contexts: int = 0
    steps: int = 0
    finish_reason: str | None = None
    answer_style: str = "sentences"
    grounded: bool = False
    span: AnswerSpan | None = None
    spans: list[AnswerSpan] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "contexts": [c.to_dict() for c in self.contexts],
            "prompt": self.prompt,
            "messages": self.messages,
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
            "usage": self.usage.to_dict(),
            "tool_calls": self.tool_calls,
            "invalid_citations": self.invalid_citations,
            "dropped_contexts": self.dropped_contexts,
            "steps": self.steps,
            "finish_reason": self.finish_reason,
            "answer_style": self.answer_style,
            "grounded": self.grounded,
            "span": self.span.to_dict() if self.span is not None else None,
            "spans": [s.to_dict() for s in self.spans],
        }

    def __str__(self) -> str:
        return self.text
