"""Judge metrics: a configured generator scores faithfulness and answer relevance.

The prompts are module constants (nothing hidden) and the judge answers with one line
``Score: N`` on a 1-5 scale, mapped to ``(N - 1) / 4`` in [0, 1]. A call that raises or returns
no parseable score is retried ``retries`` times; then the row is recorded as failed (``None``),
and the runner counts failures per metric (``faithfulness_failed``) instead of averaging a NaN.

Example:
    >>> from rag.core.generation import GenerationResult
    >>> class Fixed:
    ...     def generate(self, messages, **options):
    ...         return GenerationResult(text="Score: 5")
    >>> Judge(Fixed()).score("faithfulness", question="q", answer="a", contexts=[])
    1.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rag.core.errors import ConfigError
from rag.core.generation import GenerationResult

__all__ = ["JUDGE_PROMPTS", "Judge", "parse_score"]

JUDGE_PROMPTS: dict[str, str] = {
    "faithfulness": (
        "You check whether an answer is supported by the given context passages.\n\n"
        "Context:\n{contexts}\n\nQuestion: {question}\nAnswer: {answer}\n\n"
        "Rate how much of the answer is supported by the context, from 1 (nothing is "
        "supported, or it contradicts the context) to 5 (every claim is supported). "
        "Reply with one line: Score: <1-5>"
    ),
    "answer_relevance": (
        "You check whether an answer addresses the question.\n\n"
        "Question: {question}\nAnswer: {answer}\n\n"
        "Rate how directly and completely the answer addresses the question, from 1 (off "
        "topic or a refusal) to 5 (fully answers it). Reply with one line: Score: <1-5>"
    ),
}

_SCORE = re.compile(r"score\s*[:=]?\s*([1-5])(?:\s*/\s*5)?", re.IGNORECASE)
_BARE = re.compile(r"^\s*([1-5])\s*$")


def parse_score(text: str) -> float | None:
    """``Score: 4`` (or a bare ``4``) -> 0.75; anything else -> ``None``.

    >>> parse_score("Reasoning...\\nScore: 4"), parse_score("no idea")
    (0.75, None)
    """
    match = _SCORE.search(text) or _BARE.match(text)
    if not match:
        return None
    return (int(match.group(1)) - 1) / 4


def _context_text(contexts: Sequence[Any], limit: int) -> str:
    parts = []
    for index, context in enumerate(contexts, start=1):
        text = context.get("text", "") if isinstance(context, Mapping) else str(context)
        parts.append(f"[{index}] {text}")
    return "\n".join(parts)[:limit]


class Judge:
    """Scores answers with any generator (``generate(messages) -> GenerationResult``).

    Args:
        generator: The judge model.
        retries: Extra attempts after a failed or unparseable call.
        max_context_chars: Context characters put in the prompt.
        prompts: Override :data:`JUDGE_PROMPTS` (same placeholders).
    """

    def __init__(
        self,
        generator: Any,
        *,
        retries: int = 2,
        max_context_chars: int = 6000,
        prompts: Mapping[str, str] | None = None,
    ) -> None:
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}", field="judge.retries")
        self.generator = generator
        self.retries = retries
        self.max_context_chars = max_context_chars
        self.prompts = {**JUDGE_PROMPTS, **(prompts or {})}
        self.last_prompt: str | None = None
        self.errors: list[str] = []

    def messages(
        self, metric: str, *, question: str, answer: str, contexts: Sequence[Any]
    ) -> list[dict[str, str]]:
        """The chat messages sent for ``metric`` (inspectable, as every prompt in ragline)."""
        if metric not in self.prompts:
            raise ConfigError(
                f"unknown judge metric '{metric}'. Valid: {', '.join(self.prompts)}",
                field="judge.metrics",
            )
        prompt = self.prompts[metric].format(
            question=question,
            answer=answer,
            contexts=_context_text(contexts, self.max_context_chars),
        )
        return [{"role": "user", "content": prompt}]

    def score(
        self, metric: str, *, question: str, answer: str, contexts: Sequence[Any]
    ) -> float | None:
        """A score in [0, 1], or ``None`` after ``1 + retries`` failed attempts."""
        messages = self.messages(metric, question=question, answer=answer, contexts=contexts)
        self.last_prompt = messages[0]["content"]
        for _attempt in range(1 + self.retries):
            try:
                result = self.generator.generate(messages, temperature=0.0, max_tokens=16)
            except TypeError:
                # generators without these options are still usable as judges
                try:
                    result = self.generator.generate(messages)
                except Exception as err:
                    self.errors.append(f"{type(err).__name__}: {err}")
                    continue
            except Exception as err:  # a failed judge call is retried, then recorded
                self.errors.append(f"{type(err).__name__}: {err}")
                continue
            # the Generator protocol returns a GenerationResult; a bare judge may return text
            reply = result.text if isinstance(result, GenerationResult) else str(result)
            value = parse_score(reply)
            if value is not None:
                return value
            self.errors.append(f"unparseable judge reply: {reply!r}")
        return None
