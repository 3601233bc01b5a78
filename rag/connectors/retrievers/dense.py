"""``retriever.dense``: embed the query, search a vector store.

With ``feedback: N`` the retriever does pseudo-relevance feedback in the style of Rocchio
(1971): the query vector is moved toward the mean vector of its first ``N`` hits,
``q' = (q + feedback_weight · mean(v_1..v_N)) / ‖…‖``, and the store is searched again with
``q'`` (same ``k``, same filters). The top hits of a first search usually share the words and
topic the query is after, so the second search finds documents phrased like them that the
short query alone missed. It costs one more search and a ``store.get`` of ``N`` vectors per
query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.core.component import Component, warm_up_parts
from rag.core.documents import Hit
from rag.core.errors import ConfigError
from rag.core.filters import parse_filter
from rag.core.limits import resolve_k
from rag.core.protocols import Embedder, EmbedsQueries, Filters, VectorStore


class DenseRetriever(Component):
    """Nearest chunks to the query's embedding, optionally filtered and thresholded.

    Args:
        embedder: The embedder that embedded the stored chunks.
        store: Any vector store.
        k: Hits to return by default.
        filters: Default metadata filter, merged (``$and``) with filters given at run time.
        score_threshold: Drop hits scoring below this value.
        feedback: Pseudo-relevance feedback: move the query vector toward the mean vector of
            its first ``feedback`` hits and search again; 0 (the default) searches once.
        feedback_weight: How far the query moves toward that mean (Rocchio's β; the query
            itself weighs 1).

    Example:
        >>> # Needs a loaded embedder and an ingested store.
        >>> retriever = DenseRetriever(embedder=embedder, store=store, k=5)  # doctest: +SKIP
        >>> retriever.run(query="What is FAISS?")["hits"][0].chunk.source  # doctest: +SKIP
        'examples/corpus/faiss.md'
        >>> with_feedback = DenseRetriever(
        ...     embedder=embedder, store=store, feedback=3, feedback_weight=0.5
        ... )  # doctest: +SKIP
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
        feedback: int = 0,
        feedback_weight: float = 0.5,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        parse_filter(filters)  # fail at construction, not at the first query
        if isinstance(feedback, bool) or not isinstance(feedback, int) or feedback < 0:
            raise ConfigError(
                f"feedback must be a whole number >= 0 (hits fed back; 0 = off), got {feedback!r}",
                field="feedback",
            )
        if (
            isinstance(feedback_weight, bool)
            or not isinstance(feedback_weight, (int, float))
            or not np.isfinite(feedback_weight)
            or feedback_weight < 0
        ):
            raise ConfigError(
                f"feedback_weight must be a finite number >= 0 (0.5 in the examples), got "
                f"{feedback_weight!r}",
                field="feedback_weight",
            )
        self.embedder = embedder
        self.store = store
        self.k = k
        self.filters = filters
        self.score_threshold = score_threshold
        self.feedback = feedback
        self.feedback_weight = feedback_weight

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

    def _search(self, vector: Any, k: int, filters: Filters | None) -> list[Hit]:
        hits = self.store.search(vector, k=k, filters=filters)
        if self.feedback and hits and self.feedback_weight > 0:
            hits = self.store.search(self.fed_back(vector, hits), k=k, filters=filters)
        return self._threshold(hits)

    def fed_back(self, vector: Any, hits: Sequence[Hit]) -> np.ndarray:
        """The query vector moved toward the mean stored vector of the first ``feedback`` hits.

        Raises:
            ConfigError: when the store returns the hits' chunks without their vectors.
        """
        ids = [h.id for h in hits[: self.feedback]]
        chunks = self.store.get(ids)
        if any(c.embedding is None for c in chunks) or not chunks:
            raise ConfigError(
                f"retriever.dense feedback: {type(self.store).__name__}.get() returned chunks "
                "without their vectors, which feedback averages; set feedback: 0 for this store",
                field="feedback",
            )
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        centroid = np.mean([np.asarray(c.embedding, dtype=np.float32) for c in chunks], axis=0)
        moved = query + np.float32(self.feedback_weight) * centroid
        norm = float(np.linalg.norm(moved))
        return moved / norm if norm > 0 else query

    def retrieve(
        self, query: str, *, k: int | None = None, filters: Filters | None = None
    ) -> list[Hit]:
        """Hits for one query."""
        vector = self.embedder.embed_query(query)
        return self._search(vector, resolve_k(k, self.k), self._filters(filters))

    def retrieve_batch(
        self, queries: Sequence[str], *, k: int | None = None, filters: Filters | None = None
    ) -> list[list[Hit]]:
        """Hits for many queries; queries are embedded in batches."""
        vectors = (
            self.embedder.embed_queries(list(queries))
            if isinstance(self.embedder, EmbedsQueries)
            else [self.embedder.embed_query(q) for q in queries]
        )
        merged = self._filters(filters)
        return [self._search(v, resolve_k(k, self.k), merged) for v in vectors]

    def run(
        self, query: str, k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"hits": self.retrieve(query, k=k, filters=filters)}
