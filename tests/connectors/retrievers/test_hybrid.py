"""retriever.hybrid: fusion wiring with stub retrievers, then dense + BM25 for real."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rag.connectors.retrievers.bm25 import BM25Retriever
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.retrievers.hybrid import HybridRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.core.component import Component
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.filters import matches, parse_filter


class FixedRetriever(Component):
    """Answers every query with the same ranked ids (filtered by metadata)."""

    outputs = {"hits": list[Hit]}

    def __init__(self, *, ranking: list[str], scores: list[float] | None = None) -> None:
        self.ranking = ranking
        self.scores = scores
        self.calls: list[tuple[str, int, Any]] = []

    def retrieve(self, query, *, k=None, filters=None):
        self.calls.append((query, k, filters))
        node = parse_filter(filters)
        scores = self.scores or [float(len(self.ranking) - i) for i in range(len(self.ranking))]
        hits = [
            Hit(
                Chunk(id=i, text=f"text {i}", metadata={"source": i, "odd": int(i[1:]) % 2 == 1}), s
            )
            for i, s in zip(self.ranking, scores)
        ]
        return [h for h in hits if matches(node, h.chunk.metadata)][:k]

    def run(self, query: str) -> dict:
        return {"hits": self.retrieve(query)}


class AxisEmbedder(Component):
    """Embeds 'dN' texts on fixed vectors: d1 and d2 are near duplicates."""

    VECTORS = {"d1": [1.0, 0.0], "d2": [0.98, -0.1], "d3": [0.5, 0.85], "d4": [0.0, 1.0]}

    def embed_documents(self, texts):
        return np.array([self.VECTORS[t.split()[-1]] for t in texts])

    def embed_query(self, text):
        return np.array([1.0, 0.3])


@pytest.mark.unit
def test_rrf_fuses_and_passes_depth_and_filters():
    a = FixedRetriever(ranking=["d1", "d2", "d3"])
    b = FixedRetriever(ranking=["d3", "d4", "d1"])
    hybrid = HybridRetriever(retrievers=[a, b], k=2, candidates=7, filters={"odd": True})
    hits = hybrid.retrieve("q", filters={"source": {"$ne": "d5"}})
    assert [h.id for h in hits] == ["d1", "d3"]
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 62)
    expected_filter = {"$and": [{"odd": True}, {"source": {"$ne": "d5"}}]}
    assert a.calls == [("q", 7, expected_filter)] and b.calls == a.calls
    assert hybrid.run(query="q")["hits"][0].id == "d1"


@pytest.mark.unit
def test_weighted_fusion_and_weights():
    a = FixedRetriever(ranking=["d1", "d2"], scores=[10.0, 0.0])
    b = FixedRetriever(ranking=["d2", "d1"], scores=[0.9, 0.8])
    even = HybridRetriever(retrievers=[a, b], fusion="weighted")
    assert [(h.id, round(h.score, 3)) for h in even.retrieve("q")] == [("d1", 1.0), ("d2", 1.0)]
    leaning = HybridRetriever(retrievers=[a, b], fusion="weighted", weights=[1.0, 3.0])
    assert [h.id for h in leaning.retrieve("q")] == ["d2", "d1"]


@pytest.mark.unit
def test_mmr_drops_near_duplicates():
    a = FixedRetriever(ranking=["d1", "d2", "d3", "d4"])
    plain = HybridRetriever(retrievers=[a], k=2)
    assert [h.id for h in plain.retrieve("q")] == ["d1", "d2"]
    diverse = HybridRetriever(
        retrievers=[a], k=2, mmr=True, mmr_lambda=0.7, embedder=AxisEmbedder()
    )
    assert [h.id for h in diverse.retrieve("q")] == ["d1", "d3"]


@pytest.mark.unit
def test_configuration_errors_name_the_fix():
    a = FixedRetriever(ranking=["d1"])
    with pytest.raises(ConfigError, match="fusion must be one of rrf, weighted"):
        HybridRetriever(retrievers=[a], fusion="borda")
    with pytest.raises(ConfigError, match="one per retriever"):
        HybridRetriever(retrievers=[a], weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="embedder"):
        HybridRetriever(retrievers=[a], mmr=True)
    with pytest.raises(ConfigError, match="at least one"):
        HybridRetriever(retrievers=[])


@pytest.mark.integration
def test_dense_plus_bm25_finds_what_each_alone_misses(embedder):
    texts = {
        "exact": "Error code E1234 means the flux capacitor overheated.",
        "meaning": "Felines are small domesticated animals that purr when content.",
        "other1": "Stock markets fell sharply on Tuesday.",
        "other2": "The recipe needs two cups of flour and one egg.",
    }
    chunks = [Chunk(id=k, text=t, metadata={"source": f"{k}.md"}) for k, t in texts.items()]
    for chunk, vector in zip(chunks, embedder.embed_documents(list(texts.values()))):
        chunk.embedding = vector
    store = FaissStore()
    store.write(chunks)
    dense = DenseRetriever(embedder=embedder, store=store, k=2)
    bm25 = BM25Retriever(store=store, k=2)
    hybrid = HybridRetriever(retrievers=[dense, bm25], k=2)
    query = "what does E1234 mean for my cat's purring"
    assert {h.id for h in hybrid.retrieve(query)} == {"exact", "meaning"}
    batch = hybrid.retrieve_batch([query, "flour egg recipe"], k=1)
    assert batch[1][0].id == "other2"
