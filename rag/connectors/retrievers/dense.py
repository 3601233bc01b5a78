"""``retriever.dense``: embed the query, search a vector store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag.core.component import Component, warm_up_parts
from rag.core.documents import Hit
from rag.core.filters import parse_filter
from rag.core.protocols import Embedder, Filters, VectorStore


class DenseRetriever(Component):
    """Nearest chunks to the query's embedding, optionally filtered and thresholded.

    Args:
        embedder: The embedder that embedded the stored chunks.
        store: Any vector store.
        k: Hits to return by default.
        filters: Default metadata filter, merged (``$and``) with filters given at run time.
        score_threshold: Drop hits scoring below this value.

    Example:
        >>> # Needs a loaded embedder and an ingested store.
        >>> retriever = DenseRetriever(embedder=embedder, store=store, k=5)  # doctest: +SKIP
        >>> retriever.run(query="What is FAISS?")["hits"][0].chunk.source  # doctest: +SKIP
        'examples/corpus/faiss.md'
    """

    outputs = {"hits": list[Hit]}

    def __init__(
        self,
        *,
        embedder: Embedder,
        store: VectorStore,
        k: int = 10,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        parse_filter(filters)  # fail at construction, not at the first query
        self.embedder = embedder
        self.store = store
        self.k = k
        self.filters = filters
        self.score_threshold = score_threshold

    def warm_up(self) -> None:
        warm_up_parts(self.embedder, self.store)

    def _filters(self, filters: Filters | None) -> Filters | None:
        if self.filters and filters:
            return {"$and": [dict(self.filters), dict(filters)]}
        return filters or self.filters

    def _threshold(self, hits: list[Hit]) -> list[Hit]:
        if self.score_threshold is None:
            return hits
        return [h for h in hits if h.score >= self.score_threshold]

    def retrieve(
        self, query: str, *, k: int | None = None, filters: Filters | None = None
    ) -> list[Hit]:
        """Hits for one query."""
        vector = self.embedder.embed_query(query)
        merged = self._filters(filters)
        return self._threshold(self.store.search(vector, k=k or self.k, filters=merged))

    def retrieve_batch(
        self, queries: Sequence[str], *, k: int | None = None, filters: Filters | None = None
    ) -> list[list[Hit]]:
        """Hits for many queries; queries are embedded in batches."""
        embed_many = getattr(self.embedder, "embed_queries", None)
        vectors = (
            embed_many(list(queries))
            if embed_many
            else [self.embedder.embed_query(q) for q in queries]
        )
        merged = self._filters(filters)
        return [
            self._threshold(self.store.search(v, k=k or self.k, filters=merged)) for v in vectors
        ]

    def run(
        self, query: str, k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"hits": self.retrieve(query, k=k, filters=filters)}
