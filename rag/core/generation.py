"""The generator protocol and the records it exchanges (messages, tool calls, results)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, Any]
"""An OpenAI-style chat message: ``{"role": "user", "content": "..."}``."""


@dataclass
class ToolCall:
    """A request from the model to call a tool."""

    name: str
    arguments: dict[str, Any]
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass
class Usage:
    """Tokens one generator call read and wrote (OpenAI's ``usage`` fields).

    Example:
        >>> Usage(prompt_tokens=12, completion_tokens=3).to_dict()["total_tokens"]
        15
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class Span:
    """A verbatim copy from one of the contexts a generator was given.

    Attributes:
        context: Position of the context in the list given (0-based).
        start: Character offset of the span in that context's text.
        end: Character offset just past the span (``text[start:end]`` is the span).
        logprob: The model's log-probability of the span's first token, unconstrained (how sure
            it was that the answer starts there); ``None`` when unknown.
    """

    context: int
    start: int
    end: int
    logprob: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "start": self.start,
            "end": self.end,
            "logprob": self.logprob,
        }


@dataclass(frozen=True)
class SpanLogprobs:
    """A language model's log-probabilities of writing a span as the answer.

    Attributes:
        first: Of the span's first token.
        total: Of all its tokens, in order.
        end: Of ending the answer right after it (the likeliest end-of-answer token).
        tokens: How many tokens the span is.
    """

    first: float
    total: float
    end: float
    tokens: int


@dataclass
class GenerationResult:
    """What one generator call produced (``span``: set by extractive decoding only)."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    span: Span | None = None


@runtime_checkable
class Generator(Protocol):
    """A local or remote chat model.

    ``generate(..., stream=False)`` returns a :class:`GenerationResult`; with ``stream=True`` it
    returns an iterator of text pieces whose last item is the final :class:`GenerationResult`.
    """

    def generate(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        stream: bool = False,
        **options: Any,
    ) -> GenerationResult | Iterator[str | GenerationResult]: ...

    def count_tokens(self, text: str) -> int: ...

    @property
    def context_window(self) -> int: ...
