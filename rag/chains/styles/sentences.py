"""``style.sentences``: two or three generated sentences, each cited (the default of remote models).

The model reads the chain's full prompt (system prompt, every context) with this style's
``instruction``; citation marks it writes (``[2]``) become citations. The text is generated, so
the answer is never ``grounded``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from rag.chains.answer import parse_citations
from rag.chains.styles.base import Draft, Style, StyleRequest, generate, generator_stops
from rag.core.generation import Usage

DEFAULT_INSTRUCTION = (
    "Answer in two or three sentences. After each sentence write the number of the context "
    "it comes from in square brackets, like [1]."
)
# The answer ends before the model starts writing the prompt's own format.
DEFAULT_STOP = ["\n\n[", "\nQuestion:", "\nContext:", "\nContexts:", "(source:"]
_LEADING_CITATION = re.compile(r"^\s*(\[\s*\d+(?:\s*,\s*\d+)*\s*\])[\s:.-]*")
_LEADING_LABEL = re.compile(r"^\s*(?:contexts?|answer)\s*:\s*", re.IGNORECASE)


def citation_last(text: str) -> str:
    """``"[2] Paris."`` -> ``"Paris. [2]"``: a small model that starts with the context's number
    (the prompt's format) has its citation moved to where the instruction asked for it, and a
    leading ``Context:`` label copied from the prompt is dropped.

    >>> citation_last("[2] Paris is the capital.")
    'Paris is the capital. [2]'
    """
    text = _LEADING_LABEL.sub("", text, count=1)
    match = _LEADING_CITATION.match(text)
    if match is None or not text[match.end() :].strip():
        return text
    return f"{text[match.end() :].rstrip()} {match.group(1)}"


class SentencesStyle(Style):
    """Generated sentences with citations, from the chain's full prompt.

    Args:
        instruction: The ``{instruction}`` of the prompt template.
        stop: Stop sequences sent with the answer call (the generator's own are added).

    Example:
        >>> style = SentencesStyle()
        >>> style.to_dict()["type"]
        'style.sentences'
    """

    name = "sentences"

    def __init__(
        self, *, instruction: str = DEFAULT_INSTRUCTION, stop: list[str] | None = None
    ) -> None:
        self.instruction_text = instruction
        self.stop = list(DEFAULT_STOP if stop is None else stop)

    def instruction(self, generator: Any) -> str:
        return self.instruction_text

    def answer(self, request: StyleRequest) -> Iterator[str | Draft]:
        return generated_answer(request, self.stop)


def generated_answer(request: StyleRequest, stop: list[str]) -> Iterator[str | Draft]:
    """The answer the model writes from the chain's full prompt (or its reply in the tool loop),
    with the citation marks it wrote as citations."""
    result = request.tool_reply
    calls = 0
    if result is None:
        options: dict[str, Any] = {"stop": generator_stops(stop, request.generator)}
        if request.tools:
            options.update(tools=request.tools, tool_choice="none")
        calls = 1
        for piece in generate(
            request.generator, request.messages, stream=request.stream, **options
        ):
            if isinstance(piece, str):
                yield piece
            else:
                result = piece
    elif request.stream and result.text:
        yield result.text
    assert result is not None
    text = citation_last(result.text)
    citations, invalid = parse_citations(text, request.contexts)
    yield Draft(
        text=text,
        citations=citations,
        invalid_citations=invalid,
        messages=list(request.messages) if calls else [],
        usage=result.usage if calls else Usage(),
        calls=calls,
        finish_reason=result.finish_reason,
    )
