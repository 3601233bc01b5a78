"""Query strategies: a generator rewrites the query before any retriever searches it.

- ``retriever.multi_query``: the generator writes ``num_queries`` rephrasings of the question
  (one per line); the wrapped retriever answers each, and the lists (with the original query's)
  are fused by reciprocal rank.
- ``retriever.hyde``: Hypothetical Document Embeddings (Gao et al., 2022, arXiv:2212.10496):
  the generator writes a passage that *would* answer the question; the passage is searched (it
  looks like the documents, where the question does not), and its ranking is fused by reciprocal
  rank with the original query's. Searching text rather than averaging vectors keeps HyDE usable
  with any retriever (dense, BM25, hybrid).

Both wrap any retriever and any generator, and both are defensive: when the generator fails or
writes nothing usable, the plain query is searched and a warning is logged, so a model outage
degrades retrieval instead of breaking it. The prompts are parameters (visible in YAML), and
``run()`` returns the queries actually searched next to the hits.

Example:
    >>> from rag.connectors.retrievers.query_strategies import parse_queries
    >>> parse_queries("1. What is HNSW?\\n2) hnsw graph index\\n- What is HNSW?", limit=3)
    ['What is HNSW?', 'hnsw graph index']
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from rag.connectors.retrievers.fusion import RRF_K, reciprocal_rank_fusion
from rag.core.component import Component
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.generation import GenerationResult, Message
from rag.core.limits import resolve_k
from rag.core.protocols import Filters, Retriever, RetrievesBatches
from rag.core.tracing import current_span

logger = logging.getLogger("rag.retrievers")

DEFAULT_MULTI_QUERY_PROMPT = (
    "Write {n} different search queries that would find documents answering the question "
    "below. Use other words than the question. Write one query per line, with no numbering and "
    "no other text.\n\nQuestion: {query}"
)
DEFAULT_HYDE_PROMPT = (
    "Write a short passage, like one from a reference document, that answers the question "
    "below.\n\nQuestion: {query}\n\nPassage:"
)

_LIST_MARKER = re.compile(r"^\s*(?:[-*•]+|\(?\d+[.)\]:]|Q\d*[:.)])\s*", re.IGNORECASE)


def parse_queries(text: str, *, limit: int, exclude: Sequence[str] = ()) -> list[str]:
    """Queries in a model's reply: one per line, list markers and quotes removed, duplicates
    (case-insensitive, and anything in ``exclude``) dropped, at most ``limit``.

    Example:
        >>> parse_queries('"faiss index types"\\nFAISS index types\\n\\n', limit=5)
        ['faiss index types']
    """
    seen = {q.strip().casefold() for q in exclude}
    queries: list[str] = []
    for line in text.splitlines():
        query = _LIST_MARKER.sub("", line).strip().strip("\"'`").strip()
        key = query.casefold()
        if len(query) < 2 or key in seen:
            continue
        seen.add(key)
        queries.append(query)
        if len(queries) >= limit:
            break
    return queries


def _check_template(template: str, *, field: str, fields: Sequence[str]) -> None:
    try:
        template.format(**{name: "" for name in fields})
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"{field} may use only {', '.join('{' + f + '}' for f in fields)} "
            f"(write literal braces as '{{{{' and '}}}}'): {type(err).__name__}: {err}",
            field=field,
        ) from None
    if "{query}" not in template:
        raise ConfigError(f"{field} must contain {{query}}", field=field)


@runtime_checkable
class _Generates(Protocol):
    """What a query strategy asks of its generator: only ``generate`` (the whole
    :class:`~rag.core.generation.Generator` also counts tokens, which a rewrite does not need)."""

    def generate(self, messages: Any, **options: Any) -> Any: ...


class _RewritingRetriever(Component):
    """Shared machinery: ask the generator for texts, search each, fuse by RRF."""

    outputs = {"hits": list[Hit], "queries": list[str]}
    _kind = ""
    retriever: Any
    generator: Any
    include_original: bool
    k: int
    candidates: int | None
    rrf_k: int
    max_tokens: int | None

    def _setup(
        self,
        *,
        retriever: Component,
        generator: Component,
        k: int,
        candidates: int | None,
        rrf_k: int,
        max_tokens: int | None,
    ) -> None:
        if not isinstance(retriever, Retriever):
            raise ConfigError(
                f"retriever must have retrieve(query, k=, filters=); "
                f"{type(retriever).__name__} does not",
                field="retriever",
            )
        if not isinstance(generator, _Generates):
            raise ConfigError(
                f"generator must have generate(messages, ...); {type(generator).__name__} does not",
                field="generator",
            )
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}", field="k")
        if candidates is not None and candidates < 1:
            raise ConfigError(
                f"candidates must be at least 1, got {candidates}", field="candidates"
            )
        if rrf_k < 0:
            raise ConfigError(f"rrf_k must not be negative, got {rrf_k}", field="rrf_k")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(
                f"max_tokens must be at least 1, got {max_tokens}", field="max_tokens"
            )

    def warm_up(self) -> None:
        self.retriever.warm_up()
        self.generator.warm_up()

    # -- overridden by each strategy -----------------------------------------------------------
    def _messages(self, query: str) -> list[Message]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _texts(self, reply: str, query: str) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def _generate(self, query: str) -> list[str]:
        """The generated texts to search; ``[]`` (with a warning) when the generator fails."""
        options: dict[str, Any] = {}
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        try:
            result = self.generator.generate(self._messages(query), **options)
        except Exception as err:  # any failure: search the plain query instead
            logger.warning(
                "%s: the generator failed (%s: %s); searching the plain query %r only",
                self._kind,
                type(err).__name__,
                err,
                query,
            )
            return []
        text = result.text if isinstance(result, GenerationResult) else str(result or "")
        texts = self._texts(text, query)
        if not texts:
            logger.warning(
                "%s: the generator wrote no usable text (%r); searching the plain query %r only",
                self._kind,
                text[:200],
                query,
            )
        return texts

    def expand(self, query: str) -> list[str]:
        """Every text searched for ``query``: the original first (when kept), then the
        generated ones. Only the original when the generator fails."""
        generated = self._generate(query)
        texts = ([query] if self.include_original or not generated else []) + generated
        span = current_span()
        if span is not None:
            span.set_attribute(f"ragline.{self._kind}.queries", texts)
            span.set_attribute(f"ragline.{self._kind}.fallback", not generated)
        return texts

    def _depth(self, k: int) -> int:
        return self.candidates or max(2 * k, 50)

    def search(self, texts: Sequence[str], *, k: int, filters: Filters | None) -> list[Hit]:
        """Search each text with the wrapped retriever and fuse the lists by RRF."""
        depth = self._depth(k) if len(texts) > 1 else k
        if isinstance(self.retriever, RetrievesBatches):
            results = self.retriever.retrieve_batch(list(texts), k=depth, filters=filters)
        else:
            results = [self.retriever.retrieve(t, k=depth, filters=filters) for t in texts]
        if len(results) == 1:
            return list(results[0][:k])
        chunks: dict[str, Chunk] = {}
        for hits in results:
            for hit in hits:
                chunks.setdefault(hit.id, hit.chunk)
        fused = reciprocal_rank_fusion([[h.id for h in hits] for hits in results], k=self.rrf_k)
        return [Hit(chunks[doc_id], score) for doc_id, score in fused[:k]]

    def retrieve(
        self, query: str, *, k: int | None = None, filters: Filters | None = None
    ) -> list[Hit]:
        """Fused hits for ``query`` and its generated rewrites."""
        limit = resolve_k(k, self.k)  # refused before the model writes rewrites
        return self.search(self.expand(query), k=limit, filters=filters)

    def retrieve_batch(
        self, queries: Sequence[str], *, k: int | None = None, filters: Filters | None = None
    ) -> list[list[Hit]]:
        """:meth:`retrieve` for each query (each needs its own generator call)."""
        return [self.retrieve(q, k=k, filters=filters) for q in queries]

    def run(
        self, query: str, k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        limit = resolve_k(k, self.k)
        texts = self.expand(query)
        return {"hits": self.search(texts, k=limit, filters=filters), "queries": texts}


class MultiQueryRetriever(_RewritingRetriever):
    """``retriever.multi_query``: search rephrasings of the query too, fuse by RRF.

    Args:
        retriever: Any retriever (dense, BM25, hybrid, ...).
        generator: Any generator; it is asked for ``num_queries`` rephrasings, one per line.
        num_queries: Rephrasings to search besides the original query.
        prompt_template: The user message; ``{query}`` and ``{n}`` are filled in.
        include_original: Also search the original query (recommended).
        k: Hits to return by default.
        candidates: Hits asked per searched query; default ``max(2 * k, 50)``.
        rrf_k: The RRF constant.
        max_tokens: Most tokens the generator may write (default: the generator's own).

    Example:
        >>> multi = MultiQueryRetriever(retriever=dense, generator=llm)  # doctest: +SKIP
        >>> out = multi.run(query="how do plates buckle under heat?")  # doctest: +SKIP
        >>> out["queries"]  # the original, then the model's rephrasings  # doctest: +SKIP
        ['how do plates buckle under heat?', 'thermal buckling of plates', ...]
    """

    _kind = "multi_query"

    def __init__(
        self,
        *,
        retriever: Component,
        generator: Component,
        num_queries: int = 3,
        prompt_template: str = DEFAULT_MULTI_QUERY_PROMPT,
        include_original: bool = True,
        k: int = 10,
        candidates: int | None = None,
        rrf_k: int = RRF_K,
        max_tokens: int | None = 96,
    ) -> None:
        self._setup(
            retriever=retriever,
            generator=generator,
            k=k,
            candidates=candidates,
            rrf_k=rrf_k,
            max_tokens=max_tokens,
        )
        if num_queries < 1:
            raise ConfigError(
                f"num_queries must be at least 1, got {num_queries}", field="num_queries"
            )
        _check_template(prompt_template, field="prompt_template", fields=("query", "n"))
        self.retriever = retriever
        self.generator = generator
        self.num_queries = num_queries
        self.prompt_template = prompt_template
        self.include_original = include_original
        self.k = k
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.max_tokens = max_tokens

    def _messages(self, query: str) -> list[Message]:
        prompt = self.prompt_template.format(query=query, n=self.num_queries)
        return [{"role": "user", "content": prompt}]

    def _texts(self, reply: str, query: str) -> list[str]:
        return parse_queries(reply, limit=self.num_queries, exclude=[query])


class HydeRetriever(_RewritingRetriever):
    """``retriever.hyde``: search a generated answer passage, fused with the query by RRF.

    Args:
        retriever: Any retriever (dense, BM25, hybrid, ...).
        generator: Any generator; it writes the hypothetical passage.
        prompt_template: The user message; ``{query}`` is filled in.
        include_original: Also search the original query and fuse (recommended with small
            models, whose passages can drift off topic).
        k: Hits to return by default.
        candidates: Hits asked per searched text; default ``max(2 * k, 50)``.
        rrf_k: The RRF constant.
        max_tokens: Most tokens of the passage (default 128).

    Example:
        >>> # Needs a retriever and a loaded generator.
        >>> hyde = HydeRetriever(retriever=dense, generator=llm)  # doctest: +SKIP
        >>> hyde.run(query="what is the drag of a slender cone?")["queries"][1]  # doctest: +SKIP
        'The drag of a slender cone at supersonic speed is ...'
    """

    _kind = "hyde"

    def __init__(
        self,
        *,
        retriever: Component,
        generator: Component,
        prompt_template: str = DEFAULT_HYDE_PROMPT,
        include_original: bool = True,
        k: int = 10,
        candidates: int | None = None,
        rrf_k: int = RRF_K,
        max_tokens: int | None = 128,
    ) -> None:
        self._setup(
            retriever=retriever,
            generator=generator,
            k=k,
            candidates=candidates,
            rrf_k=rrf_k,
            max_tokens=max_tokens,
        )
        _check_template(prompt_template, field="prompt_template", fields=("query",))
        self.retriever = retriever
        self.generator = generator
        self.prompt_template = prompt_template
        self.include_original = include_original
        self.k = k
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.max_tokens = max_tokens

    def _messages(self, query: str) -> list[Message]:
        return [{"role": "user", "content": self.prompt_template.format(query=query)}]

    def _texts(self, reply: str, query: str) -> list[str]:
        passage = " ".join(reply.split())
        return [passage] if len(passage) >= 2 and passage.casefold() != query.casefold() else []
