"""``retriever.hybrid``: fuse the rankings of several retrievers (dense + BM25, typically).

Each retriever is asked for ``candidates`` hits with the same query and filters; the lists are
fused by reciprocal rank (``fusion: rrf``, k=60) or by a weighted sum of min-max normalized
scores (``fusion: weighted``); optionally the fused candidates are re-picked with maximal
marginal relevance (``mmr: true``, needs an ``embedder``) so near-duplicates do not crowd the
top. The math lives in :mod:`rag.connectors.retrievers.fusion`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.connectors.retrievers.fusion import (
    RRF_K,
    maximal_marginal_relevance,
    reciprocal_rank_fusion,
    weighted_score_fusion,
)
from rag.core.component import Component
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.filters import parse_filter
from rag.core.protocols import Filters

FUSIONS = ("rrf", "weighted")


class HybridRetriever(Component):
    """Several retrievers, one fused ranking.

    Args:
        retrievers: The retrievers to fuse (``["@dense", "@bm25"]`` in a pipeline file).
        k: Hits to return by default.
        fusion: ``rrf`` (reciprocal rank fusion) or ``weighted`` (normalized score sum).
        weights: One weight per retriever (default: equal).
        rrf_k: The RRF constant.
        candidates: Hits asked from each retriever; default ``max(2 * k, 50)``.
        mmr: Re-pick the fused candidates by maximal marginal relevance.
        mmr_lambda: MMR's λ (1 = relevance only, 0 = diversity only).
        embedder: Embeds the query and the candidates for MMR (required when ``mmr``).
        filters: Default metadata filter, merged (``$and``) with filters given at run time
            and passed to every retriever.

    Example:
        >>> hybrid = HybridRetriever(retrievers=[dense, bm25], k=5)  # doctest: +SKIP
        >>> [h.chunk.source for h in hybrid.retrieve("hnsw graph")]  # doctest: +SKIP
        ['examples/corpus/hnsw.md', ...]
    """

    outputs = {"hits": list[Hit]}

    def __init__(
        self,
        *,
        retrievers: list[Component],
        k: int = 10,
        fusion: str = "rrf",
        weights: list[float] | None = None,
        rrf_k: int = RRF_K,
        candidates: int | None = None,
        mmr: bool = False,
        mmr_lambda: float = 0.5,
        embedder: Component | None = None,
        filters: dict[str, Any] | None = None,
    ) -> None:
        if not retrievers:
            raise ConfigError("retriever.hybrid needs at least one retriever", field="retrievers")
        if fusion not in FUSIONS:
            raise ConfigError(
                f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}", field="fusion"
            )
        if weights is not None and len(weights) != len(retrievers):
            raise ConfigError(
                f"{len(weights)} weights for {len(retrievers)} retrievers; give one per retriever",
                field="weights",
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
        self.candidates = candidates
        self.mmr = mmr
        self.mmr_lambda = mmr_lambda
        self.embedder = embedder
        self.filters = filters

    def warm_up(self) -> None:
        for retriever in self.retrievers:
            retriever.warm_up()
        if self.embedder is not None:
            self.embedder.warm_up()

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
        if self.fusion == "rrf":
            fused = reciprocal_rank_fusion(
                [[h.id for h in hits] for hits in results], k=self.rrf_k, weights=self.weights
            )
        else:
            fused = weighted_score_fusion(
                [[(h.id, h.score) for h in hits] for hits in results], weights=self.weights
            )
        return [Hit(chunks[doc_id], score) for doc_id, score in fused[:k]]

    def _diversify(self, query_vector: np.ndarray, hits: list[Hit], k: int) -> list[Hit]:
        if not hits:
            return hits
        vectors = self.embedder.embed_documents([h.chunk.text for h in hits])  # type: ignore[union-attr]
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
        limit = k or self.k
        merged = self._filters(filters)
        depth = self._depth(limit)
        per_retriever = []
        for retriever in self.retrievers:
            batch = getattr(retriever, "retrieve_batch", None)
            if batch is not None:
                per_retriever.append(batch(list(queries), k=depth, filters=merged))
            else:
                per_retriever.append(
                    [retriever.retrieve(q, k=depth, filters=merged) for q in queries]  # type: ignore[attr-defined]
                )
        answers = []
        for position, query in enumerate(queries):
            results = [lists[position] for lists in per_retriever]
            if not self.mmr:
                answers.append(self.fuse(results, k=limit))
                continue
            pool = self.fuse(results, k=depth)
            query_vector = self.embedder.embed_query(query)  # type: ignore[union-attr]
            answers.append(self._diversify(np.asarray(query_vector), pool, limit))
        return answers

    def run(
        self, query: str, k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"hits": self.retrieve(query, k=k, filters=filters)}
