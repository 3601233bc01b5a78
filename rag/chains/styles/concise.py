"""``style.concise``: a few words, then the citation of the context they come from.

With ``focus_sentences`` (default: 1 with a generator that takes an answer prefix, a local model;
0 with others) the model reads only that many sentences of the contexts, those sharing most rare
words with the question, with **no system prompt** (``system_prompt: false`` says so), and its
answer turn opens with ``answer_prefix``: a 135M model names the answer from one sentence, but
restates whole passages from four. The reply is cleaned (:func:`rag.chains.concise.cited_reply`)
and cited to the context it was read from. When no sentence shares a content word with the
question the answer is "I don't know." without asking the model. With ``focus_sentences: 0``, or
when tools are offered, the model reads the chain's full prompt and cites with ``[n]`` marks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from rag.chains import concise
from rag.chains.answer import Citation
from rag.chains.styles.base import (
    NO_ANSWER,
    Draft,
    Style,
    StyleRequest,
    generate,
    generator_stops,
)
from rag.chains.styles.sentences import generated_answer
from rag.core.abilities import TakesAnswerPrefix, has
from rag.core.errors import ConfigError
from rag.core.generation import GenerationResult

DEFAULT_INSTRUCTION = (
    "Answer in a few words, then write the number of the context the answer comes from in "
    "square brackets, like: Paris [1]"
)
DEFAULT_FOCUSED_INSTRUCTION = "Answer in a few words."
DEFAULT_STOP = ["\n", ". ", "Question:", "(source:"]
DEFAULT_ANSWER_PREFIX = "The answer is"


class ConciseStyle(Style):
    """A short generated answer and its citation.

    Args:
        instruction: The ``{instruction}`` when the model reads the full prompt.
        focused_instruction: The ``{instruction}`` when it reads the focused sentences.
        focus_sentences: How many best-matching sentences the model reads (0: the full prompt;
            ``None``: 1 with a generator that takes an answer prefix, else 0).
        system_prompt: Whether a focused call sends the chain's system prompt (default false:
            SmolLM2-135M answers better without it).
        answer_prefix: The text a focused answer turn opens with (generators that take one).
        stop: Stop sequences (the generator's own are added).

    Example:
        >>> ConciseStyle(focus_sentences=1).to_dict()["init_parameters"]["focus_sentences"]
        1
    """

    name = "concise"

    def __init__(
        self,
        *,
        instruction: str = DEFAULT_INSTRUCTION,
        focused_instruction: str = DEFAULT_FOCUSED_INSTRUCTION,
        focus_sentences: int | None = None,
        system_prompt: bool = False,
        answer_prefix: str = DEFAULT_ANSWER_PREFIX,
        stop: list[str] | None = None,
    ) -> None:
        if focus_sentences is not None and focus_sentences < 0:
            raise ConfigError(
                f"focus_sentences must be 0 (off) or more, got {focus_sentences}",
                field="focus_sentences",
            )
        self.instruction_text = instruction
        self.focused_instruction = focused_instruction
        self.focus_sentences = focus_sentences
        self.system_prompt = system_prompt
        self.answer_prefix = answer_prefix
        self.stop = list(DEFAULT_STOP if stop is None else stop)

    def focused(self, generator: Any) -> int:
        """How many sentences a focused answer reads with ``generator`` (0: not focused)."""
        if self.focus_sentences is not None:
            return self.focus_sentences
        return 1 if has(generator, TakesAnswerPrefix) else 0

    def instruction(self, generator: Any) -> str:
        return self.instruction_text

    def answer(self, request: StyleRequest) -> Iterator[str | Draft]:
        focus = self.focused(request.generator)
        if request.tool_reply is not None or not focus or request.tools:
            yield from generated_answer(request, self.stop)
            return
        contexts = request.contexts
        shown = concise.focus(request.question, [c.text for c in contexts], focus)
        sentences = [replace(contexts[s.context], text=s.text) for s in shown]
        messages = request.prompt.messages(
            request.question, sentences, self.focused_instruction, system=self.system_prompt
        )
        if not shown:  # no sentence shares a word with the question: nothing to read
            yield Draft(text=NO_ANSWER, messages=messages, finish_reason="abstain")
            return
        options: dict[str, Any] = {"stop": generator_stops(self.stop, request.generator)}
        if has(request.generator, TakesAnswerPrefix):
            options["answer_prefix"] = self.answer_prefix
        *_, result = generate(request.generator, messages, stream=False, **options)
        assert isinstance(result, GenerationResult)
        text, cited = concise.cited_reply(result.text, request.question, shown)
        if not text:
            draft = Draft(text=NO_ANSWER, messages=messages, usage=result.usage, calls=1)
        else:
            context = contexts[cited]
            draft = Draft(
                text=f"{text} [{context.index}]",
                citations=[Citation(context.index, context.id, context.source)],
                messages=messages,
                usage=result.usage,
                calls=1,
                finish_reason=result.finish_reason,
            )
        if request.stream:  # a focused reply is cleaned first, then yielded whole
            yield draft.text
        yield draft
