"""The answer-style seam: :class:`AnswerStyle`, what a style is given and what it returns.

``chain.rag`` retrieves, fits the contexts into the prompt, runs the tool loop, then hands over to
its answer style, which builds the messages it sends (if any), generates, and finishes the reply
into text, citations and grounding (a :class:`Draft`). The chain turns the draft into an
:class:`~rag.chains.answer.Answer`. A style is a registered component (``style.evidence``,
``style.extractive``, ``style.concise``, ``style.sentences``) holding only its own parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from rag.chains.answer import AnswerSpan, Citation, Context
from rag.chains.prompt import PromptBuilder
from rag.core.component import Component
from rag.core.generation import GenerationResult, Message, Usage
from rag.core.protocols import Closable

NO_ANSWER = "I don't know."
"""The answer of a style that finds nothing to answer with (``grounded`` false)."""


@dataclass
class StyleRequest:
    """What the chain hands an answer style after retrieval and the tool loop.

    Attributes:
        question: The question.
        contexts: The numbered contexts that fit the prompt (tool results included).
        generator: The chain's generator.
        prompt: The chain's prompt builder (its templates).
        messages: The full messages so far: the system and user turns built with the style's
            :meth:`AnswerStyle.instruction`, then any tool turns.
        tools: The tool schemas offered (``None``: no tools).
        tool_reply: The model's final reply of the tool loop, when it answered there.
        stream: Whether the caller streams (yield text pieces as they come).
    """

    question: str
    contexts: list[Context]
    generator: Any
    prompt: PromptBuilder
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    tool_reply: GenerationResult | None = None
    stream: bool = False


@dataclass
class Draft:
    """What an answer style returns; the chain makes it an :class:`~rag.chains.answer.Answer`.

    Attributes:
        text: The answer text.
        citations: The contexts it cites.
        invalid_citations: Citation marks naming no given context (dropped).
        grounded: True only when every answer word is proven to be copied from a cited context.
        spans: Where the grounded pieces were copied from (offsets in the contexts' texts).
        messages: The messages of the style's own generator call (``[]``: none was made).
        usage: Tokens the style's generator calls used.
        calls: Generator calls the style made.
        finish_reason: Why it stopped (``stop``, ``length``, ``abstain``, ...).
    """

    text: str
    citations: list[Citation] = field(default_factory=list)
    invalid_citations: int = 0
    grounded: bool = False
    spans: list[AnswerSpan] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    calls: int = 0
    finish_reason: str | None = "stop"


@runtime_checkable
class AnswerStyle(Protocol):
    """How a chain turns retrieved contexts into an answer.

    ``warm_up(generator)`` checks the generator's abilities (:mod:`rag.core.abilities`) and loads
    what the style needs; ``instruction``/``reserve_tokens`` shape the chain's full prompt;
    ``answer`` builds the messages, generates and finishes, yielding text pieces when
    streaming and then one :class:`Draft`; ``uses_tools`` says whether the chain's tool loop
    runs before ``answer`` (false for a style that reads only the contexts).
    """

    name: str
    uses_tools: bool

    def warm_up(self, generator: Any = None) -> None: ...

    def instruction(self, generator: Any) -> str: ...

    def reserve_tokens(self, generator: Any) -> int: ...

    def calls_generator(self, request: StyleRequest) -> bool: ...

    def answer(self, request: StyleRequest) -> Iterator[str | Draft]: ...


@runtime_checkable
class _CapsAnswer(Protocol):
    """A generator configured with the longest answer it writes, in tokens."""

    max_tokens: int


@runtime_checkable
class _StopsOn(Protocol):
    """A generator configured with stop sequences of its own."""

    stop: list[str] | None


class Style(Component):
    """Base class of the built-in styles: a component whose ``run`` answers a request."""

    name: ClassVar[str] = ""
    uses_tools: ClassVar[bool] = True
    """Whether the chain offers the model its tools before :meth:`answer` (the tool loop)."""
    takes_embedder: ClassVar[bool] = False
    """Whether it takes an ``embedder``: a style named by a string (``answer_style:
    evidence``, ``rag ask --style evidence``) gets the chain retriever's embedding model."""
    outputs = {"draft": Draft}

    def warm_up(self, generator: Any = None) -> None:
        """Check ``generator``'s abilities (none needed here)."""

    def instruction(self, generator: Any) -> str:
        """The ``{instruction}`` of the chain's full prompt."""
        return ""

    def reserve_tokens(self, generator: Any) -> int:
        """Tokens of the context window kept free for the answer."""
        return int(generator.max_tokens) if isinstance(generator, _CapsAnswer) else 256

    def calls_generator(self, request: StyleRequest) -> bool:
        """Whether answering ``request`` calls the generator (then traced as a
        ``ragline.generate`` span): not when the tool loop's reply is the answer."""
        return request.tool_reply is None

    def answer(self, request: StyleRequest) -> Iterator[str | Draft]:  # pragma: no cover
        raise NotImplementedError

    def run(self, request: StyleRequest) -> dict[str, Any]:
        """``{"draft": Draft}`` for ``request`` (not streamed)."""
        *_, draft = self.answer(request)
        return {"draft": draft}


def add_usage(total: Usage, more: Usage) -> Usage:
    """The sum of two token counts."""
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
    )


def generator_stops(own: list[str], generator: Any) -> list[str]:
    """``own`` stop sequences, then the generator's configured ones (a per-call ``stop`` replaces
    the generator's, so both are sent)."""
    configured = generator.stop if isinstance(generator, _StopsOn) else None
    theirs = [s for s in configured or [] if s not in own]
    return [*own, *theirs]


def generate(
    generator: Any, messages: list[Message], *, stream: bool, **options: Any
) -> Iterator[str | GenerationResult]:
    """One generator call: text pieces when ``stream``, then the :class:`GenerationResult`.

    Raises:
        GenerationError: the generator returned no :class:`GenerationResult`.
    """
    from rag.core.errors import GenerationError

    result: Any = None
    if stream:
        pieces = generator.generate(messages, stream=True, **options)
        try:
            for piece in pieces:
                if isinstance(piece, GenerationResult):
                    result = piece
                else:
                    yield piece
        finally:
            # An abandoned stream releases the generator (and its model lock) now.
            if isinstance(pieces, Closable):
                pieces.close()
    else:
        result = generator.generate(messages, **options)
    if not isinstance(result, GenerationResult):
        raise GenerationError(f"{type(generator).__name__} returned no GenerationResult")
    yield result
