"""``chain.rag``: question -> retrieve -> prompt -> generate -> :class:`~rag.chains.answer.Answer`.

The chain owns retrieval, the prompt (:class:`~rag.chains.prompt.PromptBuilder`: the templates
``system_prompt``, ``prompt_template`` and ``context_template`` are constructor parameters and so
YAML fields), tools, tracing and streaming. How the retrieved contexts become an answer is the
business of its ``answer_style`` (:mod:`rag.chains.styles`): ``style.evidence`` (the answering
sentence, verbatim; the default with a local model), ``style.extractive``, ``style.concise`` or
``style.sentences`` (the default with a remote model). The style gives the ``{instruction}`` of the
prompt and the tokens to keep free for the answer, then builds the messages it sends, generates
and finishes the reply into text, citations and grounding.

With tools and a generating style, the chain runs a bounded loop: at most ``max_steps`` generator
calls; a tool call's result (or its error, as text) goes back to the model; the last allowed call
offers no tool, so the loop always ends with an answer. ``aask`` and ``astream`` serve asyncio.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from rag.chains.answer import Answer, Context
from rag.chains.mcp_tools import connect_tools, parse_mcp_servers
from rag.chains.prompt import (
    DEFAULT_CONTEXT_TEMPLATE,
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_SYSTEM_PROMPT,
    PromptBuilder,
)
from rag.chains.styles import ANSWER_STYLES, Style, StyleRequest, resolve_style
from rag.chains.styles.base import Draft, add_usage
from rag.chains.styles.extractive import DEFAULT_QUOTE_INSTRUCTION as QUOTE_INSTRUCTION
from rag.chains.tools import (
    RETRIEVAL_TOOL,
    Tool,
    ToolLoop,
    ToolRegistry,
    default_tools,
    retrieval_tool,
    tool_reference,
    usage_attributes,
    warn_unused_tools,
)
from rag.core.component import Component
from rag.core.errors import ConfigError, InvalidInputError
from rag.core.generation import Generator, Message
from rag.core.limits import resolve_k
from rag.core.protocols import Retriever
from rag.core.threads import iterate_in_thread
from rag.core.tracing import NOOP_SPAN, Tracing, end_span, tracer_for

__all__ = [
    "ANSWER_STYLES",
    "DEFAULT_CONTEXT_TEMPLATE",
    "DEFAULT_PROMPT_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "QUOTE_INSTRUCTION",
    "RagChain",
]


class RagChain(Component):
    """Answer a question from retrieved contexts, with citations (and optional tools).

    Args:
        retriever: Any component with ``retrieve(query, k=, filters=)`` (dense, BM25, hybrid).
        generator: A generator (``generator.llama_cpp``, ``generator.openai``).
        prompt_template: The user message; must contain ``{question}`` and ``{contexts}``
            (``{instruction}`` is the answer style's).
        system_prompt: The system message (empty: none).
        context_template: One numbered context; fields ``{index}``, ``{text}``, ``{source}``,
            ``{id}``, ``{score}``.
        k: Contexts retrieved per question.
        answer_style: A style component (YAML: ``{type: style.extractive, init_parameters:
            {...}}``) or a style name for its defaults (``evidence``, ``extractive``,
            ``concise``, ``sentences``); ``None``: ``evidence`` with a local model (a generator
            that takes an answer prefix), else ``sentences``. See :mod:`rag.chains.styles`.
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
        **deprecated: The flat style keys of earlier releases (``instructions``, ``stop``,
            ``answer_prefix``, ``span_search``, ...), moved into the style with a
            ``FutureWarning`` naming the new field; removed in the next release.

    Example:
        >>> # Needs a retriever over an ingested index and a loaded generator.
        >>> chain = RagChain(retriever=retriever, generator=generator, k=3)  # doctest: +SKIP
        >>> answer = chain.ask("What does FAISS store?")  # doctest: +SKIP
        >>> answer.text, [c.source for c in answer.citations]  # doctest: +SKIP
        ('FAISS stores dense vectors.', ['examples/corpus/faiss.md'])
        >>> answer.grounded, answer.answer_style  # doctest: +SKIP
        (True, 'evidence')
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
        answer_style: Style | str | None = None,
        tools: list[Any] | None = None,
        retrieval_tool: bool = False,
        retrieve_first: bool = True,
        max_steps: int = 4,
        min_context_tokens: int = 32,
        tool_registry: ToolRegistry | None = None,
        mcp_servers: list[dict[str, Any]] | None = None,
        tracer_provider: Any | None = None,
        **deprecated: Any,
    ) -> None:
        self.prompt = PromptBuilder(
            system_prompt=system_prompt,
            prompt_template=prompt_template,
            context_template=context_template,
            min_context_tokens=min_context_tokens,
        )
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}", field="k")
        if max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {max_steps}", field="max_steps")
        if not isinstance(retriever, Retriever):
            raise ConfigError(
                f"retriever must have retrieve(query, k=, filters=); "
                f"{type(retriever).__name__} does not",
                field="retriever",
            )
        if not isinstance(generator, Generator):
            raise ConfigError(
                f"generator must have generate(messages, ...), count_tokens and context_window; "
                f"{type(generator).__name__} does not",
                field="generator",
            )
        self.retriever = retriever
        self.generator = generator
        self.style = resolve_style(answer_style, generator, deprecated, retriever)
        self.k = k
        self.tools = list(tools or [])
        self.retrieval_tool = retrieval_tool
        self.retrieve_first = retrieve_first
        self.max_steps = max_steps
        registry = tool_registry or default_tools
        self._tool_registry = registry
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
    def answer_style(self) -> str:
        """The name of this chain's answer style (``evidence``, ``extractive``, ...)."""
        return self.style.name

    @property
    def init_parameters(self) -> dict[str, Any]:
        params = super().init_parameters
        params.pop("tool_registry", None)  # code, not configuration
        params.pop("tracer_provider", None)
        for key in [k for k in params if k not in _PARAMETERS]:
            params.pop(key)  # deprecated flat keys: they live in the style now
            params["answer_style"] = self.style
        params["mcp_servers"] = [server.to_dict() for server in self.mcp_servers]
        params["tools"] = [tool_reference(t) for t in self.tools]
        return params

    def warm_up(self) -> None:
        """Warm up the retriever, the generator and the style (once); the style checks the
        generator's abilities here.

        Raises:
            ConfigError: the style needs an ability the generator lacks.
        """
        with self._warm_lock:
            if not self._warmed:
                self.style.warm_up(self.generator)
                if not self.style.uses_tools:
                    named = [*self._tools, *[RETRIEVAL_TOOL] * self.retrieval_tool]
                    warn_unused_tools(
                        self.answer_style, named, len(self.mcp_servers), self.retrieve_first
                    )
                self.retriever.warm_up()
                self.generator.warm_up()
                if self.mcp_servers:
                    self._mcp_tools = connect_tools(self.mcp_servers, taken=self._tools)
                self._warmed = True

    def with_style(self, answer_style: Style | str) -> RagChain:
        """A copy of this chain (same retriever, generator, tools and MCP servers) answering in
        another style, rebuilt from this chain's init parameters.

        Raises:
            ConfigError: ``answer_style`` is not a known style.
        """
        params = {**self.init_parameters, "answer_style": answer_style}
        params["tools"] = list(self.tools)
        chain = RagChain(
            **params, tool_registry=self._tool_registry, tracer_provider=self.tracer_provider
        )
        chain._mcp_tools = dict(self._mcp_tools)
        chain._warmed = self._warmed
        if self._warmed:
            chain.style.warm_up(self.generator)
        return chain

    # -- prompt --------------------------------------------------------------------------------
    def format_context(self, context: Context) -> str:
        """One context as the model reads it (``context_template``)."""
        return self.prompt.format_context(context)

    @property
    def instruction(self) -> str:
        """The ``{instruction}`` of the full prompt: the answer style's, for this generator."""
        return self.style.instruction(self.generator)

    def build_messages(self, question: str, contexts: list[Context]) -> list[Message]:
        """The full messages for ``question`` with ``contexts`` (system and user turns)."""
        return self.prompt.messages(question, contexts, self.instruction)

    def fit_contexts(
        self,
        question: str,
        candidates: list[Context],
        tools: list[dict[str, Any]] | None = None,
    ) -> tuple[list[Context], int]:
        """Contexts that fit the generator's window, highest-ranked first, and how many were
        dropped (see :meth:`PromptBuilder.fit_contexts`)."""
        return self.prompt.fit_contexts(
            question,
            candidates,
            generator=self.generator,
            instruction=self.instruction,
            reserve=self.style.reserve_tokens(self.generator),
            tools=tools,
        )

    def _tool_set(
        self, contexts: list[Context], k: int, filters: dict[str, Any] | None
    ) -> dict[str, Tool]:
        if not self.style.uses_tools:
            return {}
        tools = {**self._mcp_tools, **self._tools}
        if self.retrieval_tool:
            tools[RETRIEVAL_TOOL] = retrieval_tool(
                self.retriever, contexts, k=k, filters=filters, render=self.format_context
            )
        return tools

    # -- running -------------------------------------------------------------------------------
    def _steps(
        self, question: str, filters: dict[str, Any] | None, k: int | None, stream: bool
    ) -> Iterator[str | Answer]:
        """The whole chain as one iterator: text pieces (when streaming), then the Answer,
        traced as one ``ragline.ask`` span (see :mod:`rag.core.tracing`)."""
        if not isinstance(question, str):
            kind = type(question).__name__
            raise InvalidInputError(f"the question must be text, got {kind}", where="question")
        if not question.strip():
            raise InvalidInputError("the question is blank; ask it in words", where="question")
        tracing = tracer_for(self.tracer_provider)
        if not tracing.enabled:
            yield from self._run_steps(question, filters, k, stream, tracing, NOOP_SPAN)
            return
        root = tracing.start_span("ragline.ask", {"ragline.stream": stream})
        start, error = time.perf_counter(), None
        try:
            for item in self._run_steps(question, filters, k, stream, tracing, root):
                if isinstance(item, Answer):
                    root.set_attributes(usage_attributes(item.usage))
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
        k = resolve_k(k, self.k)
        hits = []
        if self.retrieve_first:
            with tracing.span("ragline.retrieve", {"ragline.k": k}, parent=root) as span:
                hits = self.retriever.retrieve(question, k=k, filters=filters)
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
        timings["prompt"] = time.perf_counter() - mark
        span = tracing.start_span("ragline.prompt", parent=root)
        span.set_attributes({"ragline.contexts": len(kept), "ragline.dropped_contexts": dropped})
        end_span(span, seconds=timings["prompt"])

        loop = ToolLoop(self.generator, tools, schemas, max_steps=self.max_steps)
        messages = loop.run(messages, tracing=tracing, root=root, timings=timings)
        usage, steps = loop.usage, loop.steps

        request = StyleRequest(
            question=question,
            contexts=contexts,
            generator=self.generator,
            prompt=self.prompt,
            messages=messages,
            tools=schemas,
            tool_reply=loop.reply,
            stream=stream,
        )
        mark = time.perf_counter()
        attributes = {"ragline.step": steps + 1, "ragline.answer_style": self.answer_style}
        answer_span = (  # a style that calls no generator adds no generate span
            tracing.start_span("ragline.generate", attributes, parent=root)
            if self.style.calls_generator(request)
            else NOOP_SPAN
        )
        draft: Draft | None = None
        pieces = self.style.answer(request)
        try:
            for piece in pieces:
                if isinstance(piece, Draft):
                    draft = piece
                else:
                    timings.setdefault("first_token", time.perf_counter() - start)
                    yield piece
        finally:
            pieces.close()  # type: ignore[attr-defined]
        if draft is None:
            raise RuntimeError(f"answer style {self.answer_style} returned no Draft")
        timings["generate"] += time.perf_counter() - mark
        answer_span.set_attributes(usage_attributes(draft.usage))
        end_span(answer_span, seconds=time.perf_counter() - mark)
        usage = add_usage(usage, draft.usage)
        steps += draft.calls
        sent = draft.messages or (messages if steps else [])
        user_turns = [m for m in sent if m.get("role") == "user"]
        timings["total"] = time.perf_counter() - start
        yield Answer(
            question=question,
            text=draft.text,
            citations=draft.citations,
            contexts=list(contexts),
            prompt=str(user_turns[-1]["content"]) if user_turns else "",
            messages=sent,
            usage=usage,
            tool_calls=loop.outcomes,
            timings=timings,
            invalid_citations=draft.invalid_citations,
            dropped_contexts=dropped,
            steps=steps,
            finish_reason="max_steps" if loop.hit_max_steps else draft.finish_reason,
            answer_style=self.answer_style,
            grounded=draft.grounded,
            span=draft.spans[0] if draft.spans else None,
            spans=draft.spans,
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
            InvalidInputError: the question is blank.
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

    async def aask(
        self, question: str, *, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> Answer:
        """:meth:`ask` in a worker thread, for use inside a running event loop."""
        return await asyncio.to_thread(self.ask, question, filters=filters, k=k)

    arun = aask  # its name in earlier releases

    async def astream(
        self, question: str, *, filters: dict[str, Any] | None = None, k: int | None = None
    ) -> AsyncIterator[str | Answer]:
        """:meth:`stream` for a running event loop: generation runs in a worker thread and hands
        pieces over through a queue, so the loop never blocks."""
        async for piece in iterate_in_thread(lambda: self.stream(question, filters=filters, k=k)):
            yield piece


_PARAMETERS = frozenset(
    p.name
    for p in inspect.signature(RagChain.__init__).parameters.values()
    if p.kind is p.KEYWORD_ONLY
)
"""The constructor's own parameters (the rest are deprecated style keys)."""
