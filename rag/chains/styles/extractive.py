"""``style.extractive``: a short span copied verbatim from one context, cited by construction.

Two ways to find the span (``span_search``):

- ``ranked`` (default with a generator that scores spans, a local model): the short phrases of
  the sentences sharing most rare words with the question are ranked
  (:mod:`rag.chains.span_ranking`) and the model's log-probabilities of the best
  ``span_candidates`` decide. The model reads only the sentences holding those spans (up to
  ``focus_sentences``), with **no system prompt** (``system_prompt: false``), its answer turn
  opened with ``answer_prefix``.
- ``quote`` (default with other generators, e.g. ``generator.openai``): the model is asked for a
  quote (``quote_instruction``), which is then looked for in the contexts; only a quote found
  verbatim is grounded.

``Answer.grounded`` is true only when the span was checked against its context.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from rag.chains import concise, extractive, span_ranking
from rag.chains.answer import AnswerSpan, Citation, Context, parse_citations
from rag.chains.styles.base import NO_ANSWER, Draft, Style, StyleRequest, generate
from rag.core.abilities import ScoresSpans, has, require
from rag.core.errors import ConfigError, GenerationError
from rag.core.generation import GenerationResult, Message, Span, Usage

DEFAULT_INSTRUCTION = "Answer with the exact words from one context."
DEFAULT_QUOTE_INSTRUCTION = (
    "Reply with the shortest exact quote from one context that answers the question, written as "
    'the context number and the quote in double quotes, like: [2] "the quoted words". If no '
    f"context answers it, reply: {NO_ANSWER}"
)
DEFAULT_ANSWER_PREFIX = "The answer is"
SPAN_SEARCHES = ("ranked", "quote")
SPAN_RESERVE = 24
"""Tokens kept free for a ranked span (the candidates are at most 8 words)."""
FOCUSED_SPAN_SENTENCES = 2


class ExtractiveStyle(Style):
    """A span of one context, proven to be copied (``grounded``), with its offsets.

    Args:
        span_search: ``ranked`` or ``quote`` (``None``: ``ranked`` when the
            generator scores spans, else ``quote``); see the module docstring.
        span_candidates: ``ranked``: how many of the best-ranked spans the model scores.
        focus_sentences: ``ranked``: the sentences the spans come from; the model reads those
            holding a candidate (0: the chain's full prompt).
        system_prompt: Whether a focused ``ranked`` call sends the chain's system prompt.
        answer_prefix: The text the answer turn opens with (``ranked``).
        min_span_logprob: Abstain ("I don't know.", not grounded) when the model's
            log-probability of the span's first token is below this (``None``: never).
        instruction: The ``{instruction}`` of the full prompt (``ranked``).
        quote_instruction: The ``{instruction}`` for ``quote``.
        span_weights: ``ranked``: a weights file written by ``benchmarks/fit_span_ranker.py
            --out`` (``None``: the built-in :data:`rag.chains.span_ranking.BUILT_IN`).

    Example:
        >>> ExtractiveStyle(span_search="quote").to_dict()["type"]
        'style.extractive'
    """

    name = "extractive"

    def __init__(
        self,
        *,
        span_search: str | None = None,
        span_candidates: int = 10,
        focus_sentences: int = FOCUSED_SPAN_SENTENCES,
        system_prompt: bool = False,
        answer_prefix: str = DEFAULT_ANSWER_PREFIX,
        min_span_logprob: float | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
        quote_instruction: str = DEFAULT_QUOTE_INSTRUCTION,
        span_weights: str | None = None,
    ) -> None:
        if span_search is not None and span_search not in SPAN_SEARCHES:
            raise ConfigError(
                f"unknown span_search {span_search!r}; allowed: {', '.join(SPAN_SEARCHES)}",
                field="span_search",
            )
        if span_candidates < 1:
            raise ConfigError(
                f"span_candidates must be at least 1, got {span_candidates}",
                field="span_candidates",
            )
        if focus_sentences < 0:
            raise ConfigError(
                f"focus_sentences must be 0 (off) or more, got {focus_sentences}",
                field="focus_sentences",
            )
        self.span_search = span_search
        self.span_candidates = span_candidates
        self.focus_sentences = focus_sentences
        self.system_prompt = system_prompt
        self.answer_prefix = answer_prefix
        self.min_span_logprob = min_span_logprob
        self.instruction_text = instruction
        self.quote_instruction = quote_instruction
        self.span_weights = span_weights

    @property
    def ranking(self) -> span_ranking.RankingWeights:
        """The weights ``ranked`` scores spans with (``span_weights``, read once).

        Raises:
            ConfigError: the ``span_weights`` file cannot be read or lacks a table.
        """
        if self.span_weights is None:
            return span_ranking.BUILT_IN
        return span_ranking.read_weights(str(self.span_weights))

    def search(self, generator: Any) -> str:
        """The span search used with ``generator``."""
        if self.span_search is not None:
            return self.span_search
        return "ranked" if has(generator, ScoresSpans) else "quote"

    def warm_up(self, generator: Any = None) -> None:
        """Check that ``generator`` can do this style's span search.

        Raises:
            ConfigError: ``ranked`` without span scoring; the message names the generator
                and the alternative. A ``span_weights`` file that cannot be read.
        """
        if self.span_weights is not None:  # a bad file fails here, not at the first question
            span_ranking.read_weights(str(self.span_weights))
        if generator is None:
            return
        search = self.search(generator)
        fix = "set span_search: quote, or use answer_style: style.evidence"
        if search == "ranked":
            require(
                generator,
                ScoresSpans,
                needed_by="style.extractive with span_search: ranked",
                alternative=fix,
            )

    def instruction(self, generator: Any) -> str:
        if self.search(generator) == "quote":
            return self.quote_instruction
        return self.instruction_text

    def reserve_tokens(self, generator: Any) -> int:
        if self.search(generator) == "quote":
            return super().reserve_tokens(generator)
        prefix = int(generator.count_tokens(self.answer_prefix))
        return SPAN_RESERVE + prefix

    def calls_generator(self, request: StyleRequest) -> bool:
        return True  # the span is found afresh, with the tool results in the messages

    def answer(self, request: StyleRequest) -> Iterator[str | Draft]:
        search = self.search(request.generator)
        if search == "ranked":
            messages, result = self._ranked(request)
        else:
            messages = request.messages
            options: dict[str, Any] = {"stop": ["\n"]}
            if request.tools:
                options.update(tools=request.tools, tool_choice="none")
            *_, final = generate(request.generator, messages, stream=False, **options)
            assert isinstance(final, GenerationResult)
            result = final
        draft = _finish(result, request.contexts)
        draft.messages, draft.usage = messages, result.usage
        draft.calls = (
            0 if result.finish_reason == "abstain" and not result.usage.total_tokens else 1
        )
        if request.stream and draft.text:
            yield draft.text
        yield draft

    def top_spans(
        self, question: str, contexts: Sequence[Context]
    ) -> list[span_ranking.SpanCandidate]:
        """The ``span_candidates`` best spans the model scores (``ranked``): the span ranker's
        order, without the spans that cannot answer the question
        (:func:`rag.chains.span_ranking.fits_question`: no date for "who", no year for "how
        many").

        Example:
            >>> from rag.chains.answer import Context
            >>> text = "In May 1756 the Marquis de Montcalm led the French army."
            >>> contexts = [Context(index=1, id="c1", source="war.txt", text=text)]
            >>> found = [s.text for s in ExtractiveStyle().top_spans("Who led the army?", contexts)]
            >>> "May 1756" in found, "Marquis de Montcalm" in found
            (False, True)
        """
        found = span_ranking.candidate_spans(
            question,
            [c.text for c in contexts],
            sentences=self.focus_sentences or FOCUSED_SPAN_SENTENCES,
        )
        fitting = [
            span
            for span in span_ranking.rank_spans(found, self.ranking.spans)
            if span_ranking.fits_question(
                question, contexts[span.context].text, span.start, span.end
            )
        ]
        return fitting[: self.span_candidates]

    def focused_messages(
        self, request: StyleRequest
    ) -> tuple[list[concise.FocusSentence], list[Message], list[Any]]:
        """The sentences the model reads (those holding one of the spans it scores), its
        messages, and the spans."""
        contexts = request.contexts
        spans = self.top_spans(request.question, contexts)
        if not self.focus_sentences or request.tools:
            return [], request.messages, spans
        shown = concise.focus(request.question, [c.text for c in contexts], self.focus_sentences)
        holding = [s for s in shown if any(_holds(s, span) for span in spans)]
        shown = holding or shown
        sentences = [replace(contexts[s.context], text=s.text) for s in shown]
        messages = request.prompt.messages(
            request.question, sentences, self.instruction_text, system=self.system_prompt
        )
        return shown, messages, spans

    def _ranked(self, request: StyleRequest) -> tuple[list[Message], GenerationResult]:
        shown, messages, spans = self.focused_messages(request)
        if not spans or (self.focus_sentences and not request.tools and not shown):
            return messages, GenerationResult(text="", finish_reason="abstain")
        generator = request.generator
        prompt_tokens = request.prompt.count(generator, messages)
        logprobs = generator.score_spans(
            messages, [s.text for s in spans], answer_prefix=self.answer_prefix
        )
        best, scored = span_ranking.choose_span(spans, logprobs, self.ranking.model)
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=scored.tokens)
        if self.min_span_logprob is not None and scored.first < self.min_span_logprob:
            return messages, GenerationResult(text="", usage=usage, finish_reason="abstain")
        # "3.7 million", "March 30, 1970": the whole number or date the span is part of
        text = request.contexts[best.context].text
        start, end = span_ranking.complete_span(request.question, text, best.start, best.end)
        span = Span(best.context, start, end, logprob=scored.first)
        return messages, GenerationResult(
            text=extractive.normalize_space(text[start:end]),
            usage=usage,
            finish_reason="stop",
            span=span,
        )


def _holds(sentence: concise.FocusSentence, span: span_ranking.SpanCandidate) -> bool:
    return sentence.context == span.context and sentence.start <= span.start < sentence.end


def _finish(result: GenerationResult, contexts: Sequence[Context]) -> Draft:
    """The draft of an extractive reply: a proven span (grounded), a quote found verbatim
    (grounded), "I don't know.", or a reply not found in the contexts (kept, not grounded)."""
    texts = [c.text for c in contexts]
    if result.span is not None:  # a span from the generator: check the copy all the same
        found = result.span
        if 0 <= found.context < len(contexts) and extractive.verified(
            result.text, texts[found.context], found.start, found.end
        ):
            context = contexts[found.context]
            span = AnswerSpan(context.index, context.id, found.start, found.end, found.logprob)
            return Draft(
                text=result.text,
                citations=[Citation(context.index, context.id, context.source)],
                grounded=True,
                spans=[span],
                finish_reason=result.finish_reason,
            )
        raise GenerationError(
            f"the generator returned span {found} of context {found.context + 1}, which is not "
            f"the text it returned ({result.text!r}); the answer cannot be proven"
        )
    reply = result.text.strip()
    if not reply or reply.rstrip(".").lower() == NO_ANSWER.rstrip(".").lower():
        return Draft(text=NO_ANSWER, finish_reason=result.finish_reason or "abstain")
    quote = extractive.parse_quote(reply)
    if quote is not None:
        by_index = {c.index: n for n, c in enumerate(contexts)}
        prefer = by_index.get(quote.index) if quote.index is not None else None
        match = extractive.find_quote(quote.text, texts, prefer=prefer)
        if match is not None:
            context = contexts[match.context]
            return Draft(
                text=context.text[match.start : match.end],
                citations=[Citation(context.index, context.id, context.source)],
                grounded=True,
                spans=[AnswerSpan(context.index, context.id, match.start, match.end)],
                finish_reason=result.finish_reason,
            )
    citations, invalid = parse_citations(reply, contexts)
    text = quote.text if quote is not None else reply
    return Draft(
        text=text,
        citations=citations,
        invalid_citations=invalid,
        finish_reason=result.finish_reason,
    )
