"""``retriever.hybrid``: fuse the rankings of several retrievers (dense + BM25, typically).

Each retriever is asked for ``candidates`` hits with the same query and filters; the lists are
fused by reciprocal rank (``fusion: rrf``, k=60), by a weighted sum of min-max normalized
scores (``fusion: weighted``) or of z-scores (``fusion: zscore``: each list's scores
standardized over its candidates). With ``level: document`` (the default) the fusion ranks
*documents* (chunk metadata ``doc_id``, else ``source``): a document takes the rank of its best
chunk in each list, so a document that many chunks match counts once per retriever, and each
fused document is returned as its best ``chunks_per_document`` chunks. ``level: chunk`` fuses
chunks as independent items. Optionally the fused candidates are re-picked with maximal
marginal relevance (``mmr: true``, needs an ``embedder``) so near-duplicates do not crowd the
top. The math lives in :mod:`rag.connectors.retrievers.fusion`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.connectors.retrievers.fusion import (
    FUSIONS,
    RRF_K,
    document_fusion,
    fuse,
    maximal_marginal_relevance,
)
from rag.core.component import Component, warm_up_parts
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.filters import parse_filter
from rag.core.limits import resolve_k
from rag.core.protocols import Embedder, Filters, Retriever, RetrievesBatches

LEVELS = ("document", "chunk")


def document_id(chunk: Chunk) -> str:
    """The document of a chunk: its ``doc_id`` metadata, else its ``source``, else its id."""
    metadata = chunk.metadata
    value = metadata.get("doc_id")
    if value is None:
        value = metadata.get("source")
    return chunk.id if value is None else str(value)


def _check_weights(weights: Any, count: int) -> None:
    if weights is None:
        return
    if not isinstance(weights, (list, tuple)):
        raise ConfigError(
            f"weights must be a list of numbers, one per retriever, got {weights!r}",
            field="weights",
        )
    if len(weights) != count:
        raise ConfigError(
            f"{len(weights)} weights for {count} retrievers; give one per retriever",
            field="weights",
        )
    bad = [
        w
        for w in weights
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0
    ]
    if bad or not any(w > 0 for w in weights):
        raise ConfigError(
            f"weights must be finite numbers >= 0, at least one > 0, got {list(weights)!r}",
            field="weights",
        )


class HybridRetriever(Component):
    """Several retrievers, one fused ranking.

    Args:
        retrievers: The retrievers to fuse (``["@dense", "@bm25"]`` in a pipeline file).
        k: Hits to return by default.
        fusion: ``rrf`` (reciprocal rank fusion), ``weighted`` (min-max normalized score
            sum) or ``zscore`` (z-score sum; uses how far a score stands out of its list).
        weights: One non-negative weight per retriever (default: equal).
        rrf_k: The RRF constant.
        level: ``document`` fuses documents ranked by their best chunk, ``chunk`` fuses chunks.
        chunks_per_document: With ``level: document``, chunks returned per fused document.
        candidates: Hits asked from each retriever; default ``max(2 * k, 50)``.
        mmr: Re-pick the fused candidates by maximal marginal relevance.
        mmr_lambda: MMR's λ (1 = relevance only, 0 = diversity only).
        embedder: Embeds the query and the candidates for MMR (required when ``mmr``).
        filters: Default metadata filter, merged (``$and``) with filters given at run time
            and passed to every retriever.

    The example pipelines use ``fusion="zscore"``, ``weights=[1.0, 0.85]`` (dense, BM25),
    ``candidates=100``, ``level="document"`` and ``chunks_per_document=2``, chosen with
    ``benchmarks/retrieval_quality.py`` (see docs/how-to/retrieval-tuning.md).

    Example:
        >>> # Needs dense and BM25 retrievers over an ingested index.
        >>> hybrid = HybridRetriever(retrievers=[dense, bm25], k=5)  # doctest: +SKIP
        >>> [h.chunk.source for h in hybrid.retrieve("hnsw graph")]  # doctest: +SKIP
        ['examples/corpus/hnsw.md', ...]
    """

    outputs = {"hits": list[Hit]}

    def __init__(
        self,
        *,
        retrievers: list[Retriever],
        k: int = 10,
        fusion: str = "rrf",
        weights: list[float] | None = None,
        rrf_k: int = RRF_K,
        level: str = "document",
        chunks_per_document: int = 1,
        candidates: int | None = None,
        mmr: bool = False,
        mmr_lambda: float = 0.5,
        embedder: Embedder | None = None,
        filters: dict[str, Any] | None = None,
    ) -> None:
        if not retrievers:
            raise ConfigError("retriever.hybrid needs at least one retriever", field="retrievers")
        if fusion not in FUSIONS:
            raise ConfigError(
                f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}", field="fusion"
            )
        _check_weights(weights, len(retrievers))
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 0:
            raise ConfigError(
                f"rrf_k must be a whole number >= 0 (60 in the RRF paper), got {rrf_k!r}",
                field="rrf_k",
            )
        if level not in LEVELS:
            raise ConfigError(
                f"level must be one of {', '.join(LEVELS)}, got {level!r}", field="level"
            )
        if (
            isinstance(chunks_per_document, bool)
            or not isinstance(chunks_per_document, int)
            or chunks_per_document < 1
        ):
            raise ConfigError(
                f"chunks_per_document must be a whole number >= 1, got {chunks_per_document!r}",
                field="chunks_per_document",
            )
        if mmr and embedder is None:
            raise ConfigError(
                "mmr: true needs an embedder to compare candidates; add embedder: '@embedder'",
                field="embedder",
            )
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        parse_filter(filters)
        self.retrievers = retrievers
        self.k = k
        self.fusion = fusion
        self.weights = weights
        self.rrf_k = rrf_k
        self.level = level
        self.chunks_per_document = chunks_per_document
        self.candidates = candidates
        self.mmr = mmr
        self.mmr_lambda = mmr_lambda
        self.embedder = embedder
        self.filters = filters

    def warm_up(self) -> None:
        warm_up_parts(*self.retrievers, self.embedder)

    def _filters(self, filters: Filters | None) -> Filters | None:
        if self.filters and filters:
            return {"$and": [dict(self.filters), dict(filters)]}
        return filters or self.filters

    def _depth(self, k: int) -> int:
        return self.candidates or max(2 * k, 50)

    def fuse(self, results: Sequence[Sequence[Hit]], *, k: int) -> list[Hit]:
        """Fuse one query's hit lists (one per retriever) into the top ``k``."""
        chunks: dict[str, Chunk] = {}
        for hits in results:
            for hit in hits:
                chunks.setdefault(hit.id, hit.chunk)
        scored = [[(h.id, h.score) for h in hits] for hits in results]
        if self.level == "document":
            fused = document_fusion(
                scored,
                {chunk_id: document_id(chunk) for chunk_id, chunk in chunks.items()},
                fusion=self.fusion,
                k=self.rrf_k,
                weights=self.weights,
                chunks_per_document=self.chunks_per_document,
            )
        else:
            fused = fuse(scored, fusion=self.fusion, k=self.rrf_k, weights=self.weights)
        return [Hit(chunks[chunk_id], score) for chunk_id, score in fused[:k]]

    def _diversify(
        self, embedder: Embedder, query_vector: np.ndarray, hits: list[Hit], k: int
    ) -> list[Hit]:
        if not hits:
            return hits
        vectors = embedder.embed_documents([h.chunk.text for h in hits])
        order = maximal_marginal_relevance(
            query_vector, np.asarray(vectors), k=k, lambda_mult=self.mmr_lambda
        )
        return [hits[i] for i in order]

    def retrieve(
        self, query: str, *, k: int | None = None, filters: Filters | None = None
    ) -> list[Hit]:
        """Fused hits for one query."""
        return self.retrieve_batch([query], k=k, filters=filters)[0]

    def retrieve_batch(
        self, queries: Sequence[str], *, k: int | None = None, filters: Filters | None = None
    ) -> list[list[Hit]]:
        """Fused hits for many queries (each retriever answers the batch its own way)."""
        limit = resolve_k(k, self.k)
        merged = self._filters(filters)
        depth = self._depth(limit)
        per_retriever = []
        for retriever in self.retrievers:
            if isinstance(retriever, RetrievesBatches):
                per_retriever.append(
                    retriever.retrieve_batch(list(queries), k=depth, filters=merged)
                )
            else:
                per_retriever.append(
                    [retriever.retrieve(q, k=depth, filters=merged) for q in queries]
                )
        answers = []
        for position, query in enumerate(queries):
            results = [lists[position] for lists in per_retriever]
            if not self.mmr or self.embedder is None:  # mmr without an embedder: refused in init
                answers.append(self.fuse(results, k=limit))
                continue
            pool = self.fuse(results, k=depth)
            query_vector = self.embedder.embed_query(query)
            answers.append(self._diversify(self.embedder, np.asarray(query_vector), pool, limit))
        return answers

    def run(
        self, query: str, k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"hits": self.retrieve(query, k=k, filters=filters)}
