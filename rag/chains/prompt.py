"""The one place prompts are made: :class:`PromptBuilder`.

Three templates, all constructor parameters of ``chain.rag`` (and so YAML fields), make every
message a chain sends: ``system_prompt``, ``prompt_template`` (with ``{question}``,
``{contexts}`` and ``{instruction}``, the last given by the answer style) and
``context_template`` (one numbered context). Answer styles that show the model fewer words (the
best sentences only) call the same builder with those sentences as the contexts.

Contexts are fitted to the generator's context window with the generator's own tokenizer
(:meth:`PromptBuilder.fit_contexts`): the lowest-ranked are trimmed or dropped so that the prompt
plus the tokens reserved for the answer never overflow.

Example:
    >>> from rag.chains.answer import Context
    >>> builder = PromptBuilder()
    >>> messages = builder.messages("Who?", [Context(1, "c1", "a.md", "Ann.")], "Be brief.")
    >>> print(messages[-1]["content"])
    Contexts:
    [1] Ann.
    <BLANKLINE>
    Question: Who?
    <BLANKLINE>
    Be brief.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

from rag.chains.answer import Context
from rag.core.abilities import CountsMessageTokens, CountsTokens, require
from rag.core.errors import ConfigError, GenerationError
from rag.core.generation import Message

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions using only the numbered contexts you are given. Cite the contexts "
    "you use by their number in square brackets, like [1]. If the contexts do not contain the "
    "answer, say that you do not know."
)
# The instruction sits after the question: small local models follow the last thing they read
# (SmolLM2-135M cites almost never when it is only in the system prompt).
DEFAULT_PROMPT_TEMPLATE = "Contexts:\n{contexts}\n\nQuestion: {question}\n\n{instruction}"
# No source path in the context line: small models copied "[2] (source: a.html) ..." into answers.
DEFAULT_CONTEXT_TEMPLATE = "[{index}] {text}"

PROMPT_FIELDS = ("question", "contexts", "instruction")
REQUIRED_PROMPT_FIELDS = ("question", "contexts")
CONTEXT_FIELDS = ("index", "text", "source", "id", "score")
CONTEXT_SEPARATOR = "\n\n"


def check_template(
    template: str, *, field: str, required: Sequence[str], allowed: Sequence[str]
) -> None:
    """Raise a :class:`ConfigError` naming ``field`` when ``template`` misses a required field
    or uses an unknown one."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ConfigError(f"{field} is not a valid template: {err}") from None
    missing = [n for n in required if n not in names]
    if missing:
        raise ConfigError(
            f"{field} must contain {', '.join('{' + n + '}' for n in missing)} "
            f"(write literal braces as '{{{{' and '}}}}')"
        )
    unknown = sorted(n for n in names if n not in allowed)
    if unknown:
        raise ConfigError(
            f"{field} uses unknown field(s) {', '.join('{' + n + '}' for n in unknown)}; "
            f"available: {', '.join('{' + n + '}' for n in allowed)}"
        )


class PromptBuilder:
    """Renders the chain's templates into chat messages and fits contexts to a window.

    Args:
        system_prompt: The system message (empty: none).
        prompt_template: The user message; must contain ``{question}`` and ``{contexts}``.
        context_template: One numbered context; fields ``{index}``, ``{text}``, ``{source}``,
            ``{id}``, ``{score}``.
        min_context_tokens: A context is trimmed to fit only if at least this many of its tokens
            fit; otherwise it is dropped.

    Raises:
        ConfigError: a template misses a required field or uses an unknown one.
    """

    def __init__(
        self,
        *,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        context_template: str = DEFAULT_CONTEXT_TEMPLATE,
        min_context_tokens: int = 32,
    ) -> None:
        check_template(
            prompt_template,
            field="prompt_template",
            required=REQUIRED_PROMPT_FIELDS,
            allowed=PROMPT_FIELDS,
        )
        check_template(
            context_template, field="context_template", required=("text",), allowed=CONTEXT_FIELDS
        )
        self.system_prompt = system_prompt
        self.prompt_template = prompt_template
        self.context_template = context_template
        self.min_context_tokens = min_context_tokens

    def format_context(self, context: Context) -> str:
        """One context as the model reads it."""
        return self.context_template.format(
            index=context.index,
            text=context.text,
            source=context.source,
            id=context.id,
            score="" if context.score is None else f"{context.score:.3f}",
        )

    def user_message(self, question: str, contexts: Sequence[Context], instruction: str) -> Message:
        """The user turn: ``prompt_template`` with the numbered contexts and ``instruction``."""
        blocks = CONTEXT_SEPARATOR.join(self.format_context(c) for c in contexts)
        prompt = self.prompt_template.format(
            question=question, contexts=blocks, instruction=instruction
        )
        return {"role": "user", "content": prompt}

    def messages(
        self,
        question: str,
        contexts: Sequence[Context],
        instruction: str,
        *,
        system: bool = True,
    ) -> list[Message]:
        """The system turn (when ``system`` and ``system_prompt`` is set), then the user turn."""
        messages: list[Message] = []
        if system and self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append(self.user_message(question, contexts, instruction))
        return messages

    @staticmethod
    def count(
        generator: Any, messages: Sequence[Message], tools: list[dict[str, Any]] | None = None
    ) -> int:
        """Prompt tokens of ``messages``: exact when the generator counts messages, else the sum
        of the contents plus 4 per message."""
        if isinstance(generator, CountsMessageTokens):
            return int(generator.count_message_tokens(messages, tools))
        require(generator, CountsTokens, needed_by="chain.rag", alternative="use generator.openai")
        return sum(int(generator.count_tokens(str(m.get("content") or ""))) + 4 for m in messages)

    def fit_contexts(
        self,
        question: str,
        candidates: Sequence[Context],
        *,
        generator: Any,
        instruction: str,
        reserve: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> tuple[list[Context], int]:
        """Contexts that fit the generator's window, highest-ranked first, and how many were
        dropped. The last one kept may be trimmed.

        Raises:
            GenerationError: the question alone (with the templates and ``reserve`` tokens for
                the answer) does not fit the context window.
        """
        require(generator, CountsTokens, needed_by="chain.rag", alternative="use generator.openai")
        window = int(generator.context_window)
        base = self.count(generator, self.messages(question, [], instruction), tools)
        if base + reserve > window:
            raise GenerationError(
                f"the question does not fit: the prompt without contexts is {base} tokens and "
                f"{reserve} are reserved for the answer (max_tokens), but the generator's context "
                f"window is {window}. Shorten the question or raise the context size"
            )
        budget = window - reserve - base
        kept: list[Context] = []
        dropped = 0
        for context in candidates:
            block = self.format_context(context) + CONTEXT_SEPARATOR
            cost = int(generator.count_tokens(block)) + 1  # +1: tokens may merge at the joins
            if cost <= budget:
                kept.append(context)
                budget -= cost
                continue
            empty = Context(**{**context.__dict__, "text": ""})
            overhead = int(generator.count_tokens(self.format_context(empty) + CONTEXT_SEPARATOR))
            room = budget - overhead - 2
            if room >= self.min_context_tokens:
                trimmed = generator.truncate(context.text, room)
                kept.append(Context(**{**context.__dict__, "text": trimmed, "trimmed": True}))
            dropped = len(candidates) - len(kept)
            break
        # The per-context sums are estimates at the joins; the rendered prompt decides.
        while kept and (
            self.count(generator, self.messages(question, kept, instruction), tools) + reserve
            > window
        ):
            kept.pop()
            dropped += 1
        return kept, dropped
