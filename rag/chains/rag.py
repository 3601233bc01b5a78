"""``chain.rag``: question -> retrieve -> prompt -> generate -> :class:`~rag.chains.answer.Answer`.

The prompt is built in one visible place, :meth:`RagChain.build_messages`, from three templates that
are constructor parameters (and so YAML fields): ``system_prompt``, ``prompt_template`` (with
``{question}`` and ``{contexts}``) and ``context_template`` (one numbered context). Contexts are
fitted to the generator's context window with the generator's own tokenizer: the lowest-ranked are
trimmed or dropped so that prompt plus ``max_tokens`` never overflow.

Answer styles (``answer_style``): ``sentences`` (a few cited sentences), ``concise`` (a short
answer, then its citation) and ``extractive`` (a span copied verbatim from one context, cited by
construction; ``Answer.grounded`` is true only when the copy is proven, see
:mod:`rag.chains.extractive`). The style picks the ``{instruction}`` of the prompt template from
``instructions`` and the stop sequences that keep the prompt's format out of the answer.
``concise`` with a generator that takes an answer prefix (a local model) and ranked
``extractive`` are *focused*: the model reads only the best-matching sentences of the contexts
(see :mod:`rag.chains.concise`).

With tools, the chain runs a bounded loop: at most ``max_steps`` generator calls; a tool call's
result (or its error, as text) goes back to the model; the last allowed call offers no tool, so
the loop always ends with an answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from rag.chains import concise, extractive, span_ranking
from rag.chains.answer import Answer, AnswerSpan, Citation, Context, parse_citations
from rag.chains.mcp_tools import connect_tools, parse_mcp_servers
from rag.chains.tools import Tool, ToolRegistry, default_tools, run_tool_call
from rag.core.component import Component
from rag.core.errors import ConfigError, GenerationError
from rag.core.generation import GenerationResult, Message, Span, Usage
from rag.core.threads import iterate_in_thread
from rag.core.tracing import NOOP_SPAN, Tracing, end_span, tracer_for

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

ANSWER_STYLES = ("sentences", "concise", "extractive")
DEFAULT_INSTRUCTIONS: dict[str, str] = {
    "sentences": (
        "Answer in two or three sentences. After each sentence write the number of the context "
        "it comes from in square brackets, like [1]."
    ),
    "concise": (
        "Answer in a few words, then write the number of the context the answer comes from in "
        "square brackets, like: Paris [1]"
    ),
    "extractive": "Answer with the exact words from one context.",
    "focused": "Answer in a few words.",
}
"""The ``{instruction}`` of the prompt template for each answer style."""
# Stop sequences per style: the answer ends before the model starts writing the prompt's own
# format (a new numbered context, a new question); concise answers are one line.
STYLE_STOPS: dict[str, list[str]] = {
    "sentences": ["\n\n[", "\nQuestion:", "\nContext:", "\nContexts:", "(source:"],
    "concise": ["\n", ". ", "Question:", "(source:"],
    "extractive": ["\n"],  # the quoted-span fallback: one line
}
# The quoted-span fallback for generators without extractive decoding (generator.openai).
QUOTE_INSTRUCTION = (
    "Reply with the shortest exact quote from one context that answers the question, written as "
    'the context number and the quote in double quotes, like: [2] "the quoted words". If no '
    f"context answers it, reply: {extractive.NO_ANSWER}"
)
DEFAULT_ANSWER_PREFIX = "The answer is"
DEFAULT_SPAN_PRIOR = {"sentences": 1, "type_bonus": 2.0, "distance_weight": 0.5}
"""``span_prior`` of an extractive chain: see :class:`rag.chains.extractive.StartPrior`."""
FOCUSED_SPAN_SENTENCES = 2
"""``focus_sentences`` of ranked extractive answers: the sentences the candidate spans come from."""
SPAN_SEARCHES = ("ranked", "greedy")
"""``span_search`` values: see :class:`RagChain`."""
DEFAULT_SPAN_END_BIAS = 3.0  # measured on 15 XQuAD questions outside the benchmark sample
# ``instructions`` keys: one per style, "quote" for extractive without constrained decoding and
# "focused" for focused concise answers.
INSTRUCTION_KEYS = (*ANSWER_STYLES, "quote", "focused")

PROMPT_FIELDS = ("question", "contexts", "instruction")
REQUIRED_PROMPT_FIELDS = ("question", "contexts")
CONTEXT_FIELDS = ("index", "text", "source", "id", "score")
CONTEXT_SEPARATOR = "\n\n"
RETRIEVAL_TOOL = "search_documents"


def _template_fields(
    template: str, *, field: str, required: Sequence[str], allowed: Sequence[str]
) -> None:
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


class RagChain(Component):
    """Answer a question from retrieved contexts, with citations (and optional tools).

    Args:
        retriever: Any component with ``retrieve(query, k=, filters=)`` (dense, BM25, hybrid).
        generator: A generator (``generator.llama_cpp``, ``generator.openai``).
        prompt_template: The user message; must contain ``{question}`` and ``{contexts}``.
        system_prompt: The system message (empty: none).
        context_template: One numbered context; fields ``{index}``, ``{text}``, ``{source}``,
            ``{id}``, ``{score}``.
        k: Contexts retrieved per question.
        answer_style: ``sentences``, ``concise`` or ``extractive`` (see the module docstring).
        instructions: The ``{instruction}`` text per style (default :data:`DEFAULT_INSTRUCTIONS`);
            for ``extractive``, a generator without constrained decoding gets the ``quote``
            entry (default :data:`QUOTE_INSTRUCTION`): a quoted span, checked afterwards.
        stop: Stop sequences (default: :data:`STYLE_STOPS` of the style), added to the
            generator's own.
        answer_prefix: ``extractive`` and focused ``concise`` with a local model: the text the
            answer turn starts with, so the next words are the answer (not returned).
        max_span_tokens: ``extractive``: longest copied span, in tokens.
        min_span_logprob: ``extractive``: abstain ("I don't know", ``grounded`` false) when the
            model's log-probability of the span's first token is below this; ``None`` never
            abstains.
        span_end_bias: ``extractive`` with a local model: added to the log-probability of ending
            the span when it is weighed against copying on (a model that copies prefers to go
            on; larger values give shorter spans).
        span_prior: ``extractive`` with a local model: where spans start. ``sentences``: spans
            start only in this many sentences of the contexts, those sharing most words with
            the question; ``type_bonus``: added to a start that fits the answer type (``who``:
            a name, ``when``: a year, ``how many``: a number); ``distance_weight``: penalty per
            log word of distance from the question's words. Missing keys take
            :data:`DEFAULT_SPAN_PRIOR`; ``None`` lets the model start anywhere.
        span_search: ``extractive`` with a local model: ``ranked`` (default) lists the short
            phrases of the sentences sharing most rare words with the question, ranks them
            (:mod:`rag.chains.span_ranking`) and lets the model's log-probabilities of the best
            ``span_candidates`` decide; ``greedy`` decodes token by token under the span
            constraint (``span_prior`` and ``span_end_bias`` apply to ``greedy`` only).
            Both only ever return a span of a context.
        span_candidates: ``ranked``: how many of the best-ranked spans the model scores.
        focus_sentences: ``concise`` and ranked ``extractive``: the model reads only this many
            sentences of the contexts, those sharing most rare words with the question, with no
            system prompt, and its answer turn opens with ``answer_prefix``; the answer cites
            the context it was read from, and is "I don't know." when no sentence shares a
            content word with the question. ``None`` (default): for ``concise`` 1 with
            generators that take an answer prefix (local models; SmolLM2-135M restates whole
            passages otherwise) and 0 with others; for ranked ``extractive`` 2, the sentences
            the candidate spans come from, of which the model reads those that hold one of the
            ``span_candidates`` best-ranked spans. 0: all contexts, as for the other styles.
            Not used when tools are offered.
        tools: Tool names of the tool registry (or callables, from Python); import paths only with
            ``RAGLINE_ALLOW_IMPORTS=1``.
        retrieval_tool: Also offer the retriever as the ``search_documents`` tool (agentic
            retrieval); results join the numbered contexts, so they can be cited.
        retrieve_first: Retrieve for the question before the first call (turn off to let the
            model decide what to search with ``retrieval_tool``).
        max_steps: Most generator calls per question (tool rounds plus the final answer).
        min_context_tokens: A context is trimmed to fit only if at least this many of its tokens
            fit; otherwise it is dropped.
        tool_registry: Where tool names are looked up (default: the built-in tools).
        mcp_servers: MCP servers whose tools the model may call, each ``{"command": [...]}``
            (stdio) or ``{"url": ..., "api_key_env": VAR}`` (streamable HTTP), optionally with
            ``prefix`` and ``tools`` (an allow-list); see :mod:`rag.chains.mcp_tools`.
        tracer_provider: An OpenTelemetry tracer provider for this chain's spans (default:
            from the environment, see :mod:`rag.core.tracing`); code, not configuration.

    Example:
        >>> chain = RagChain(retriever=retriever, generator=generator, k=3)  # doctest: +SKIP
        >>> answer = chain.ask("What does FAISS store?")  # doctest: +SKIP
        >>> answer.text, [c.source for c in answer.citations]  # doctest: +SKIP
        ('FAISS stores dense vectors [1].', ['examples/corpus/faiss.md'])
        >>> print(answer.prompt)  # the exact user message sent  # doctest: +SKIP
    """

    outputs = {"answer": Answer}

    def __init__(
        self,
        *,
        retriever: Component,
        generator: Component,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        context_template: str = DEFAULT_CONTEXT_TEMPLATE,
        k: int = 5,
        answer_style: str = "sentences",
        instructions: dict[str, str] | None = None,
        stop: list[str] | None = None,
        answer_prefix: str = DEFAULT_ANSWER_PREFIX,
        max_span_tokens: int = 16,
        min_span_logprob: float | None = None,
        span_end_bias: float = DEFAULT_SPAN_END_BIAS,
        span_prior: dict[str, float] | None = DEFAULT_SPAN_PRIOR,
        span_search: str = "ranked",
        span_candidates: int = 10,
        focus_sentences: int | None = None,
        tools: list[Any] | None = None,
        retrieval_tool: bool = False,
        retrieve_first: bool = True,
        max_steps: int = 4,
        min_context_tokens: int = 32,
        tool_registry: ToolRegistry | None = None,
        mcp_servers: list[dict[str, Any]] | None = None,
        tracer_provider: Any | None = None,
    ) -> None:
        _template_fields(
            prompt_template,
            field="prompt_template",
            required=REQUIRED_PROMPT_FIELDS,
            allowed=PROMPT_FIELDS,
        )
        if answer_style not in ANSWER_STYLES:
            raise ConfigError(
                f"unknown answer_style {answer_style!r}; allowed: {', '.join(ANSWER_STYLES)}",
                field="answer_style",
            )
        unknown_styles = sorted(set(instructions or {}) - set(INSTRUCTION_KEYS))
        if unknown_styles:
            raise ConfigError(
                f"instructions names unknown answer style(s) {', '.join(unknown_styles)}; "
                f"allowed: {', '.join(INSTRUCTION_KEYS)}",
                field="instructions",
            )
        if max_span_tokens < 1:
            raise ConfigError(f"max_span_tokens must be at least 1, got {max_span_tokens}")
        if span_search not in SPAN_SEARCHES:
            raise ConfigError(
                f"unknown span_search {span_search!r}; allowed: {', '.join(SPAN_SEARCHES)}",
                field="span_search",
            )
        if span_candidates < 1:
            raise ConfigError(
                f"span_candidates must be at least 1, got {span_candidates}",
                field="span_candidates",
            )
        if focus_sentences is not None and focus_sentences < 0:
            raise ConfigError(
                f"focus_sentences must be 0 (off) or more, got {focus_sentences}",
                field="focus_sentences",
            )
        if span_prior is not None:
            unknown_keys = sorted(set(span_prior) - set(DEFAULT_SPAN_PRIOR))
            if unknown_keys:
                raise ConfigError(
                    f"span_prior has unknown key(s) {', '.join(unknown_keys)}; "
                    f"allowed: {', '.join(DEFAULT_SPAN_PRIOR)}",
                    field="span_prior",
                )
            if int(span_prior.get("sentences", 1)) < 1:
                raise ConfigError(
                    f"span_prior.sentences must be at least 1, got {span_prior['sentences']}",
                    field="span_prior",
                )
        _template_fields(
            context_template,
            field="context_template",
            required=("text",),
            allowed=CONTEXT_FIELDS,
        )
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {max_steps}")
        if not hasattr(retriever, "retrieve"):
            raise ConfigError(
                f"retriever must have retrieve(query, k=, filters=); "
                f"{type(retriever).__name__} does not"
            )
        if not hasattr(generator, "generate"):
            raise ConfigError(
                f"generator must have generate(messages, ...); {type(generator).__name__} does not"
            )
        self.retriever = retriever
        self.generator = generator
        self.prompt_template = prompt_template
        self.system_prompt = system_prompt
        self.context_template = context_template
        self.k = k
        self.answer_style = answer_style
        self.instructions = dict(instructions) if instructions is not None else None
        self.stop = list(stop) if stop is not None else None
        self.answer_prefix = answer_prefix
        self.max_span_tokens = max_span_tokens
        self.min_span_logprob = min_span_logprob
        self.span_end_bias = span_end_bias
        self.span_prior = dict(span_prior) if span_prior is not None else None
        self.span_search = span_search
        self.span_candidates = span_candidates
        self.focus_sentences = focus_sentences
        self.tools = list(tools or [])
        self.retrieval_tool = retrieval_tool
        self.retrieve_first = retrieve_first
        self.max_steps = max_steps
        self.min_context_tokens = min_context_tokens
        registry = tool_registry or default_tools
        self._tools: dict[str, Tool] = {}
        for spec in self.tools:
            tool = registry.resolve(spec)
            self._tools[tool.name] = tool
        self.mcp_servers = parse_mcp_servers(mcp_servers)
        self._mcp_tools: dict[str, Tool] = {}
        self.tracer_provider = tracer_provider
        self._warm_lock = threading.Lock()
        self._warmed = False

    @property
    def init_parameters(self) -> dict[str, Any]:
        params = super().init_parameters
        params.pop("tool_registry", None)  # code, not configuration
        params.pop("tracer_provider", None)
        params["mcp_servers"] = [server.to_dict() for server in self.mcp_servers]
        params["tools"] = [_tool_reference(t) for t in self.tools]
        return params

    def warm_up(self) -> None:
        """Warm up the retriever and the generator (once)."""
        with self._warm_lock:
            if not self._warmed:
                self.retriever.warm_up()
                self.generator.warm_up()
                if self.mcp_servers:
                    self._mcp_tools = connect_tools(self.mcp_servers, taken=self._tools)
                self._warmed = True

    # -- prompt --------------------------------------------------------------------------------
    def format_context(self, context: Context) -> str:
        return self.context_template.format(
            index=context.index,
            text=context.text,
            source=context.source,
            id=context.id,
            score="" if context.score is None else f"{context.score:.3f}",
        )

    @property
    def decodes_extractively(self) -> bool:
        """Whether ``extractive`` answers come from constrained decoding (else a checked quote)."""
        return self.answer_style == "extractive" and hasattr(self.generator, "generate_extractive")

    @property
    def focused(self) -> int:
        """How many sentences a ``concise`` or ranked ``extractive`` answer reads (0: all
        contexts; see ``focus_sentences``)."""
        if self.answer_style == "concise":
            if self.focus_sentences is not None:
                return self.focus_sentences
            return 1 if getattr(self.generator, "takes_answer_prefix", False) else 0
        if self.ranks_spans:
            return FOCUSED_SPAN_SENTENCES if self.focus_sentences is None else self.focus_sentences
        return 0

    @property
    def ranks_spans(self) -> bool:
        """Whether extractive answers come from ``span_search: ranked`` (spans scored by the
        model's log-probabilities)."""
        return (
            self.decodes_extractively
            and self.span_search == "ranked"
            and hasattr(self.generator, "score_spans")
        )

    def build_focused_messages(
        self, question: str, contexts: Sequence[Context]
    ) -> tuple[list[concise.FocusSentence], list[Message]]:
        """The sentences a focused answer (``concise``, ranked ``extractive``) reads, and its
        message: those sentences as the contexts (numbered as their contexts), no system
        prompt. No sentences when none shares a content word with the question. Ranked
        ``extractive`` shows only the sentences that hold one of the spans the model scores."""
        shown, messages, _ = self._focus(question, contexts)
        return shown, messages

    def _focus(
        self, question: str, contexts: Sequence[Context]
    ) -> tuple[list[concise.FocusSentence], list[Message], list[span_ranking.SpanCandidate]]:
        """:meth:`build_focused_messages`, and for ranked ``extractive`` the spans to score."""
        shown = concise.focus(question, [c.text for c in contexts], self.focused)
        spans: list[span_ranking.SpanCandidate] = []
        if self.ranks_spans:
            spans = self._top_spans(question, contexts)
            holding = [s for s in shown if any(_holds(s, span) for span in spans)]
            shown = holding or shown
        instruction = self.instruction
        if self.answer_style == "concise":
            instruction = (self.instructions or {}).get("focused", DEFAULT_INSTRUCTIONS["focused"])
        sentences = [replace(contexts[s.context], text=s.text) for s in shown]
        return shown, [self._user_message(question, sentences, instruction)], spans

    def _top_spans(
        self, question: str, contexts: Sequence[Context]
    ) -> list[span_ranking.SpanCandidate]:
        """The ``span_candidates`` best-ranked spans of the best sentences (as many as a focused
        answer reads, :data:`FOCUSED_SPAN_SENTENCES` when it reads all contexts)."""
        found = span_ranking.candidate_spans(
            question,
            [c.text for c in contexts],
            sentences=self.focused or FOCUSED_SPAN_SENTENCES,
        )
        return span_ranking.rank_spans(found)[: self.span_candidates]

    @property
    def instruction(self) -> str:
        """The ``{instruction}`` of the prompt for this chain's answer style and generator."""
        given = self.instructions or {}
        if self.answer_style == "extractive" and not self.decodes_extractively:
            return given.get("quote", QUOTE_INSTRUCTION)
        return given.get(self.answer_style, DEFAULT_INSTRUCTIONS[self.answer_style])

    @property
    def stop_sequences(self) -> list[str]:
        """Stop sequences sent with each final answer call (the chain's, then the generator's)."""
        own = STYLE_STOPS[self.answer_style] if self.stop is None else self.stop
        theirs = [s for s in getattr(self.generator, "stop", None) or [] if s not in own]
        return [*own, *theirs]

    def _start_prior(self, question: str, contexts: Sequence[Context]) -> Any:
        """The :class:`~rag.chains.extractive.StartPrior` of ``span_prior`` (``None``: off)."""
        if self.span_prior is None:
            return None
        options = {**DEFAULT_SPAN_PRIOR, **self.span_prior}
        return extractive.StartPrior(
            question,
            [c.text for c in contexts],
            top_sentences=int(options["sentences"]),
            type_bonus=float(options["type_bonus"]),
            distance_weight=float(options["distance_weight"]),
        )

    def _ranked_span(
        self,
        question: str,
        messages: list[Message],
        contexts: Sequence[Context],
        spans: list[span_ranking.SpanCandidate] | None,
    ) -> GenerationResult:
        """The extractive answer of ``span_search: ranked``: the best-ranked spans (``spans``,
        or found here when ``None``), scored by the model (an abstention when no sentence shares
        a content word with the question, or when the chosen span's first token is below
        ``min_span_logprob``)."""
        if spans is None:
            spans = self._top_spans(question, contexts)
        prompt_tokens = self._count(messages, None)
        if not spans:
            return GenerationResult(
                text="", usage=Usage(prompt_tokens=prompt_tokens), finish_reason="abstain"
            )
        logprobs = self.generator.score_spans(  # type: ignore[attr-defined]
            messages, [s.text for s in spans], answer_prefix=self.answer_prefix
        )
        best, scored = span_ranking.choose_span(spans, logprobs)
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=scored.tokens)
        if self.min_span_logprob is not None and scored.first < self.min_span_logprob:
            return GenerationResult(text="", usage=usage, finish_reason="abstain")
        span = Span(best.context, best.start, best.end, logprob=scored.first)
        return GenerationResult(text=best.text, usage=usage, finish_reason="stop", span=span)

    def with_style(self, answer_style: str) -> RagChain:
        """A copy of this chain (same retriever and generator objects) answering in another style.

        Raises:
            ConfigError: ``answer_style`` is not one of :data:`ANSWER_STYLES`.
        """
        params = {
            name: getattr(self, name)
            for name in (
                "prompt_template",
                "system_prompt",
                "context_template",
                "k",
                "instructions",
                "stop",
                "answer_prefix",
                "max_span_tokens",
                "min_span_logprob",
                "span_end_bias",
                "span_prior",
                "span_search",
                "span_candidates",
                "focus_sentences",
                "tools",
                "retrieval_tool",
                "retrieve_first",
                "max_steps",
                "min_context_tokens",
            )
        }
        chain = RagChain(
            retriever=self.retriever, generator=self.generator, answer_style=answer_style, **params
        )
        chain._tools = dict(self._tools)
        chain._warmed = self._warmed
        return chain

    def build_messages(self, question: str, contexts: Sequence[Context]) -> list[Message]:
        """The messages sent for ``question`` with ``contexts`` (the one place prompts are made)."""
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append(self._user_message(question, contexts, self.instruction))
        return messages

    def _user_message(
        self, question: str, contexts: Sequence[Context], instruction: str
    ) -> Message:
        blocks = CONTEXT_SEPARATOR.join(self.format_context(c) for c in contexts)
        prompt = self.prompt_template.format(
            question=question, contexts=blocks, instruction=instruction
        )
        return {"role": "user", "content": prompt}

    def _count(self, messages: Sequence[Message], tools: list[dict[str, Any]] | None) -> int:
        counter = getattr(self.generator, "count_message_tokens", None)
        if counter is not None:
            return int(counter(messages, tools))
        count = self.generator.count_tokens  # type: ignore[attr-defined]
        return sum(int(count(str(m.get("content") or ""))) + 4 for m in messages)

    def _reserve(self) -> int:
        if self.decodes_extractively:
            prefix = int(self.generator.count_tokens(self.answer_prefix))  # type: ignore[attr-defined]
            return self.max_span_tokens + prefix + 8  # +8: the span may run on to a word's end
        return int(getattr(self.generator, "max_tokens", 256))

    def fit_contexts(
        self,
        question: str,
        candidates: Sequence[Context],
        tools: list[dict[str, Any]] | None = None,
    ) -> tuple[list[Context], int]:
        """Contexts that fit the generator's window, highest-ranked first, and how many were
        dropped. The last one kept may be trimmed.

        Raises:
            GenerationError: the question alone (with the templates and ``max_tokens``) does not
                fit the context window.
        """
        window = int(self.generator.context_window)  # type: ignore[attr-defined]
        reserve = self._reserve()
        base = self._count(self.build_messages(question, []), tools)
        if base + reserve > window:
            raise GenerationError(
                f"the question does not fit: the prompt without contexts is {base} tokens and "
                f"{reserve} are reserved for the answer (max_tokens), but the generator's context "
                f"window is {window}. Shorten the question or raise the context size"
            )
        count_tokens = self.generator.count_tokens  # type: ignore[attr-defined]
        budget = window - reserve - base
        kept: list[Context] = []
        for context in candidates:
            block = self.format_context(context) + CONTEXT_SEPARATOR
            cost = int(count_tokens(block)) + 1  # +1: tokens may merge at the joins
            if cost <= budget:
                kept.append(context)
                budget -= cost
                continue
            empty = Context(**{**context.__dict__, "text": ""})
            overhead = int(count_tokens(self.format_context(empty) + CONTEXT_SEPARATOR)) + 2
            room = budget - overhead
            if room >= self.min_context_tokens:
                trimmed = self.generator.truncate(context.text, room)  # type: ignore[attr-defined]
                kept.append(Context(**{**context.__dict__, "text": trimmed, "trimmed": True}))
            dropped = len(candidates) - len(kept)
            break
        else:
            dropped = 0
        # The per-context sums are estimates at the joins; the rendered prompt decides.
        while kept and self._count(self.build_messages(question, kept), tools) + reserve > window:
            kept.pop()
            dropped += 1
        return kept, dropped

    # -- tools ---------------------------------------------------------------------------------
    def _tool_set(
        self, contexts: list[Context], k: int, filters: dict[str, Any] | None
    ) -> dict[str, Tool]:
        tools = {**self._mcp_tools, **self._tools}
        if self.retrieval_tool:

            def search_documents(query: str) -> str:
                """Search the document collection; returns numbered passages to cite.

                Args:
                    query: What to search for.
                """
                by_id = {c.id: c for c in contexts}
                lines = []
                for hit in self.retriever.retrieve(query, k=k, filters=filters):  # type: ignore[attr-defined]
                    context = by_id.get(hit.chunk.id)
                    if context is None:  # new passages get the next numbers, so they can be cited
                        context = Context.from_hit(len(contexts) + 1, hit)
                        contexts.append(context)
                        by_id[context.id] = context
                    lines.append(self.format_context(context))
                return CONTEXT_SEPARATOR.join(lines) or "no passages found"

            tools[RETRIEVAL_TOOL] = Tool.from_function(search_documents)
        return tools

    # -- running -------------------------------------------------------------------------------
    def _steps(
        self, question: str, filters: dict[str, Any] | None, k: int | None, stream: bool
    ) -> Iterator[str | Answer]:
        """The whole chain as one iterator: text pieces (when streaming), then the Answer,
        traced as one ``ragline.ask`` span (see :mod:`rag.core.tracing`)."""
        tracing = tracer_for(self.tracer_provider)
        if not tracing.enabled:
            yield from self._run_steps(question, filters, k, stream, tracing, NOOP_SPAN)
            return
        root = tracing.start_span("ragline.ask", {"ragline.stream": stream})
        start, error = time.perf_counter(), None
        try:
            for item in self._run_steps(question, filters, k, stream, tracing, root):
                if isinstance(item, Answer):
                    root.set_attributes(_usage_attributes(item.usage))
                    root.set_attribute("ragline.steps", item.steps)
                yield item
        except Exception as err:
            error = err
            raise
        finally:
            end_span(root, seconds=time.perf_counter() - start, error=error)

    def _run_steps(
        self,
        question: str,
        filters: dict[str, Any] | None,
        k: int | None,
        stream: bool,
        tracing: Tracing,
        root: Any,
    ) -> Iterator[str | Answer]:
        self.warm_up()
        timings = {"retrieve": 0.0, "prompt": 0.0, "generate": 0.0, "tools": 0.0}
        start = time.perf_counter()
        k = k or self.k
        hits = []
        if self.retrieve_first:
            with tracing.span("ragline.retrieve", {"ragline.k": k}, parent=root) as span:
                hits = self.retriever.retrieve(question, k=k, filters=filters)  # type: ignore[attr-defined]
                span.set_attribute("ragline.hits", len(hits))
        timings["retrieve"] = time.perf_counter() - start
        mark = time.perf_counter()
        candidates = [Context.from_hit(i, hit) for i, hit in enumerate(hits, start=1)]
        contexts: list[Context] = []
        tools = self._tool_set(contexts, k, filters)
        schemas = [t.schema() for t in tools.values()] or None
        kept, dropped = self.fit_contexts(question, candidates, schemas)
        contexts.extend(kept)
        messages = self.build_messages(question, kept)
        prompt = str(messages[-1]["content"])
        timings["prompt"] = time.perf_counter() - mark
        span = tracing.start_span("ragline.prompt", parent=root)
        span.set_attributes({"ragline.contexts": len(kept), "ragline.dropped_contexts": dropped})
        end_span(span, seconds=timings["prompt"])

        usage = Usage()
        outcomes: list[dict[str, Any]] = []
        result: GenerationResult | None = None
        steps = 0
        hit_max_steps = False
        while schemas and steps < self.max_steps - 1:
            steps += 1
            mark = time.perf_counter()
            with tracing.span("ragline.generate", {"ragline.step": steps}, parent=root) as span:
                step_result = self.generator.generate(messages, tools=schemas)  # type: ignore[attr-defined]
                span.set_attributes(_usage_attributes(step_result.usage))
            timings["generate"] += time.perf_counter() - mark
            assert isinstance(step_result, GenerationResult)
            usage = _add(usage, step_result.usage)
            if not step_result.tool_calls:
                # An extractive answer is decoded below, with the tool results in the messages.
                result = None if self.answer_style == "extractive" else step_result
                break
            mark = time.perf_counter()
            messages = [*messages, _assistant_turn(step_result)]
            for call in step_result.tool_calls:
                with tracing.span(
                    "ragline.tool_call", {"ragline.tool": call.name}, parent=root
                ) as tool_span:
                    outcome = run_tool_call(tools, call)
                    if outcome.error:
                        tool_span.set_attribute("ragline.tool_error", outcome.error)
                outcomes.append(outcome.to_dict())
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "name": call.name,
                        "content": outcome.content,
                    }
                )
            timings["tools"] += time.perf_counter() - mark
        else:
            hit_max_steps = bool(schemas) and steps > 0  # the last step still asked for tools
        shown: list[concise.FocusSentence] = []
        spans: list[span_ranking.SpanCandidate] | None = None
        if result is None and self.focused and not schemas:
            shown, messages, spans = self._focus(question, contexts)
            prompt = str(messages[-1]["content"])
            if not shown:  # no sentence shares a word with the question: nothing to read
                result = GenerationResult(
                    text="", usage=Usage(prompt_tokens=0), finish_reason="abstain"
                )
        if result is not None:
            if stream and result.text:
                yield result.text
        elif self.decodes_extractively:
            steps += 1
            mark = time.perf_counter()
            with tracing.span(
                "ragline.generate", {"ragline.step": steps, "ragline.extractive": True}, parent=root
            ) as generate_span:
                if self.ranks_spans:
                    result = self._ranked_span(question, messages, contexts, spans)
                else:
                    result = self.generator.generate_extractive(  # type: ignore[attr-defined]
                        messages,
                        [c.text for c in contexts],
                        answer_prefix=self.answer_prefix,
                        max_span_tokens=self.max_span_tokens,
                        min_logprob=self.min_span_logprob,
                        avoid_start_words=extractive.avoid_start_words(question),
                        end_bias=self.span_end_bias,
                        start_prior=self._start_prior(question, contexts),
                    )
                generate_span.set_attributes(_usage_attributes(result.usage))
            timings["generate"] += time.perf_counter() - mark
            usage = _add(usage, result.usage)
            if stream and result.text:
                yield result.text
        else:
            steps += 1
            options: dict[str, Any] = {"tool_choice": "none"} if schemas else {}
            options["stop"] = self.stop_sequences
            if shown and getattr(self.generator, "takes_answer_prefix", False):
                options["answer_prefix"] = self.answer_prefix
            mark = time.perf_counter()
            generate_span = tracing.start_span(
                "ragline.generate", {"ragline.step": steps}, parent=root
            )
            if stream and not shown:  # a focused reply is cleaned first, then yielded whole
                pieces = self.generator.generate(  # type: ignore[attr-defined]
                    messages, tools=schemas, stream=True, **options
                )
                try:
                    for piece in pieces:
                        if isinstance(piece, GenerationResult):
                            result = piece
                        else:
                            timings.setdefault("first_token", time.perf_counter() - start)
                            yield piece
                finally:
                    # An abandoned stream releases the generator (and its model lock) now.
                    getattr(pieces, "close", lambda: None)()
            else:
                result = self.generator.generate(messages, tools=schemas, **options)  # type: ignore[attr-defined]
            timings["generate"] += time.perf_counter() - mark
            if not isinstance(result, GenerationResult):
                raise GenerationError(
                    f"{type(self.generator).__name__} returned no GenerationResult"
                )
            generate_span.set_attributes(_usage_attributes(result.usage))
            end_span(generate_span, seconds=time.perf_counter() - mark)
            usage = _add(usage, result.usage)
        text = result.text
        grounded = False
        span: AnswerSpan | None = None
        if self.answer_style == "extractive":
            text, citations, invalid, span = _extractive_answer(result, contexts)
            grounded = span is not None
        elif self.focused and not schemas:
            text, citations, invalid = _focused_answer(result, question, shown, contexts)
            if stream:
                yield text
        else:
            text = _citation_last(text)
            citations, invalid = parse_citations(text, contexts)
        timings["total"] = time.perf_counter() - start
        yield Answer(
            question=question,
            text=text,
            citations=citations,
            contexts=list(contexts),
            prompt=prompt,
            messages=messages,
            usage=usage,
            tool_calls=outcomes,
            timings=timings,
            invalid_citations=invalid,
            dropped_contexts=dropped,
            steps=steps,
            finish_reason="max_steps" if hit_max_steps else result.finish_reason,
            answer_style=self.answer_style,
            grounded=grounded,
            span=span,
        )

    def ask(
        self, question: str, *, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> Answer:
        """Answer ``question``.

        Args:
            question: The question.
            filters: Metadata filter for retrieval (see :mod:`rag.core.filters`).
            k: Contexts to retrieve (default: the chain's ``k``).

        Raises:
            GenerationError: the question does not fit the context window, or the generator failed.
        """
        *_, answer = self._steps(question, filters, k, stream=False)
        assert isinstance(answer, Answer)
        return answer

    def run(
        self, question: str, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> dict[str, Any]:
        """Pipeline entry point: ``{"answer": Answer}``."""
        return {"answer": self.ask(question, filters=filters, k=k)}

    def stream(
        self, question: str, *, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> Iterator[str | Answer]:
        """Text pieces of the answer as they are generated, then the final :class:`Answer`."""
        return self._steps(question, filters, k, stream=True)

    async def arun(
        self, question: str, *, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> Answer:
        """:meth:`ask` in a worker thread, for use inside a running event loop."""
        return await asyncio.to_thread(self.ask, question, filters=filters, k=k)

    async def astream(
        self, question: str, *, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> AsyncIterator[str | Answer]:
        """:meth:`stream` for a running event loop: generation runs in a worker thread and hands
        pieces over through a queue, so the loop never blocks."""
        async for piece in iterate_in_thread(lambda: self.stream(question, filters=filters, k=k)):
            yield piece


def _usage_attributes(usage: Usage) -> dict[str, int]:
    """Token counts under the OpenTelemetry GenAI semantic-convention names."""
    return {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
    }


_LEADING_CITATION = re.compile(r"^\s*(\[\s*\d+(?:\s*,\s*\d+)*\s*\])[\s:.-]*")
_LEADING_LABEL = re.compile(r"^\s*(?:contexts?|answer)\s*:\s*", re.IGNORECASE)


def _citation_last(text: str) -> str:
    """``"[2] Paris."`` -> ``"Paris. [2]"``: a small model that starts with the context's number
    (the prompt's format) has its citation moved to where the instruction asked for it, and a
    leading ``Context:`` label copied from the prompt is dropped.

    >>> _citation_last("[2] Paris is the capital.")
    'Paris is the capital. [2]'
    """
    text = _LEADING_LABEL.sub("", text, count=1)  # "Context:\n[1] ..." (the prompt's label)
    match = _LEADING_CITATION.match(text)
    if match is None or not text[match.end() :].strip():
        return text
    return f"{text[match.end() :].rstrip()} {match.group(1)}"


def _holds(sentence: concise.FocusSentence, span: span_ranking.SpanCandidate) -> bool:
    return sentence.context == span.context and sentence.start <= span.start < sentence.end


def _focused_answer(
    result: GenerationResult,
    question: str,
    shown: Sequence[concise.FocusSentence],
    contexts: Sequence[Context],
) -> tuple[str, list[Citation], int]:
    """Text, citations and invalid citation count of a focused ``concise`` answer: the reply
    cleaned (see :func:`rag.chains.concise.cited_reply`) and cited to the context it was read
    from; "I don't know." when nothing was shown or nothing is left."""
    text, cited = concise.cited_reply(result.text, question, shown) if shown else ("", 0)
    if not text:
        return extractive.NO_ANSWER, [], 0
    context = contexts[cited]
    return f"{text} [{context.index}]", [Citation(context.index, context.id, context.source)], 0


def _extractive_answer(
    result: GenerationResult, contexts: Sequence[Context]
) -> tuple[str, list[Citation], int, AnswerSpan | None]:
    """Text, citations, invalid citation count and the proven span (``None``: not grounded)."""
    texts = [c.text for c in contexts]
    if result.span is not None:  # constrained decoding: check the copy all the same
        found = result.span
        if 0 <= found.context < len(contexts) and extractive.verified(
            result.text, texts[found.context], found.start, found.end
        ):
            context = contexts[found.context]
            span = AnswerSpan(context.index, context.id, found.start, found.end, found.logprob)
            return result.text, [Citation(context.index, context.id, context.source)], 0, span
        raise GenerationError(
            f"the generator returned span {found} of context {found.context + 1}, which is not "
            f"the text it returned ({result.text!r}); the answer cannot be proven"
        )
    reply = result.text.strip()
    if not reply or reply.rstrip(".").lower() == extractive.NO_ANSWER.rstrip(".").lower():
        return extractive.NO_ANSWER, [], 0, None
    quote = extractive.parse_quote(reply)
    if quote is not None:
        by_index = {c.index: n for n, c in enumerate(contexts)}
        prefer = by_index.get(quote.index) if quote.index is not None else None
        match = extractive.find_quote(quote.text, texts, prefer=prefer)
        if match is not None:
            context = contexts[match.context]
            text = context.text[match.start : match.end]
            span = AnswerSpan(context.index, context.id, match.start, match.end)
            return text, [Citation(context.index, context.id, context.source)], 0, span
    citations, invalid = parse_citations(reply, contexts)
    text = quote.text if quote is not None else reply
    return text, citations, invalid, None  # not found verbatim: kept, but not grounded


def _add(total: Usage, more: Usage) -> Usage:
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
    )


def _assistant_turn(result: GenerationResult) -> Message:
    return {
        "role": "assistant",
        "content": result.text or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in result.tool_calls
        ],
    }


def _tool_reference(tool: str | Callable[..., Any] | Tool) -> str:
    """How a tool is written in YAML: its registered name or ``module:qualname``."""
    if isinstance(tool, str):
        return tool
    function = tool.function if isinstance(tool, Tool) else tool
    return f"{function.__module__}:{function.__qualname__}"
