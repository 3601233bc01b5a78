"""Optional generator abilities, declared as small runtime-checkable Protocols.

Every generator can ``generate(messages, ...)`` (:class:`rag.core.generation.Generator`). Some can
do more, and an answer style that needs more checks it here, through these Protocols, never with
``hasattr``:

- :class:`CountsTokens`: ``count_tokens(text)``, ``truncate(text, n)`` and ``context_window``
  (fitting contexts to the window);
- :class:`CountsMessageTokens`: the exact prompt tokens of chat messages;
- :class:`TakesAnswerPrefix`: ``generate(..., answer_prefix="The answer is")`` opens the answer turn
  with given text (local models; a remote chat API cannot);
- :class:`ScoresSpans`: ``score_spans(messages, spans, answer_prefix=)``, the model's
  log-probabilities of answering with each span;

and one of a local model of any kind, :class:`RunsOnDevice` (a ``device`` setting, which
``style.evidence`` follows with its cross-encoder).

:func:`require` turns a missing ability into a :class:`~rag.core.errors.ConfigError` that names
who needs it, the generator, and the alternative.

Example:
    >>> class Echo:
    ...     def score_spans(self, messages, spans, *, answer_prefix=""):
    ...         return []
    >>> isinstance(Echo(), ScoresSpans), isinstance(Echo(), CountsTokens)
    (True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from rag.core.errors import ConfigError
from rag.core.generation import Message, SpanLogprobs


@runtime_checkable
class CountsTokens(Protocol):
    """Counts and cuts text in the model's own tokens, and knows its context window."""

    def count_tokens(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str: ...

    @property
    def context_window(self) -> int: ...


@runtime_checkable
class CountsMessageTokens(Protocol):
    """Counts the exact prompt tokens of chat messages (chat template and tools included)."""

    def count_message_tokens(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None
    ) -> int: ...


@runtime_checkable
class TakesAnswerPrefix(Protocol):
    """``generate(..., answer_prefix=...)`` opens the answer turn with given text.

    A generator declares it with the class attribute ``takes_answer_prefix = True``.
    """

    takes_answer_prefix: bool


@runtime_checkable
class ScoresSpans(Protocol):
    """The model's log-probabilities of answering ``messages`` with each of ``spans``."""

    def score_spans(
        self, messages: Sequence[Message], spans: Sequence[str], *, answer_prefix: str = ""
    ) -> list[SpanLogprobs]: ...


@runtime_checkable
class RunsOnDevice(Protocol):
    """A local torch model's ``device`` setting: ``auto`` (CUDA when torch sees a GPU),
    ``cpu``, ``cuda``, ``cuda:1``, ... (``embedder.sentence_transformers`` has one)."""

    device: str


ABILITIES: dict[type, str] = {
    CountsTokens: "token counting (count_tokens, truncate, context_window)",
    CountsMessageTokens: "message token counting (count_message_tokens)",
    TakesAnswerPrefix: "an answer prefix (generate(..., answer_prefix=))",
    ScoresSpans: "span scoring (score_spans)",
}
"""Each ability and how it is described in error messages."""


def has(generator: Any, ability: type) -> bool:
    """Whether ``generator`` has ``ability`` (for :class:`TakesAnswerPrefix`: declared true).

    Example:
        >>> has(object(), ScoresSpans)
        False
    """
    if ability is TakesAnswerPrefix:
        return bool(getattr(type(generator), "takes_answer_prefix", False))  # a class flag
    return isinstance(generator, ability)


def require(generator: Any, ability: type, *, needed_by: str, alternative: str) -> None:
    """Raise a :class:`ConfigError` unless ``generator`` has ``ability``.

    Args:
        generator: The generator to check.
        ability: One of the Protocols of this module.
        needed_by: Who needs it, e.g. ``"style.extractive with span_search: ranked"``.
        alternative: What to use instead, e.g. ``"use style.evidence"``.

    Raises:
        ConfigError: the generator lacks the ability; the message names both and the fix.
    """
    if not has(generator, ability):
        raise ConfigError(
            f"{needed_by} needs {ABILITIES.get(ability, ability.__name__)}, which the generator "
            f"{type(generator).__name__} does not have; {alternative}"
        )
