"""retriever.hybrid: fusion wiring with stub retrievers, then dense + BM25 for real."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rag.connectors.retrievers.bm25 import BM25Retriever
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.retrievers.hybrid import HybridRetriever, document_id
from rag.connectors.stores.faiss import FaissStore
from rag.core.component import Component
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError, InvalidInputError
from rag.core.filters import matches, parse_filter
from rag.core.pipeline import PipelineFile


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
@pytest.mark.parametrize("k", [0, -1, 2.5, "3", True])
def test_a_per_call_k_that_is_not_a_whole_number_of_at_least_1_is_refused(k):
    # 0 used to mean "the default" and -1 returned hits anyway
    a = FixedRetriever(ranking=["d1", "d2", "d3"])
    hybrid = HybridRetriever(retrievers=[a], k=2)
    with pytest.raises(InvalidInputError, match=r"k: must be a whole number of at least 1"):
        hybrid.retrieve("q", k=k)
    with pytest.raises(InvalidInputError, match=f"got {k!r}"):
        hybrid.retrieve_batch(["q"], k=k)
    assert a.calls == []  # refused before any retriever was asked
    assert [h.id for h in hybrid.retrieve("q", k=None)] == ["d1", "d2"]  # None: the default


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


class ChunkRetriever(Component):
    """Answers every query with fixed chunks ``(chunk id, document id)``, scored by rank."""

    outputs = {"hits": list[Hit]}

    def __init__(self, *, ranking: list[tuple[str, str | None]], key: str = "doc_id") -> None:
        self.ranking = ranking
        self.key = key

    def retrieve(self, query, *, k=None, filters=None):
        hits = []
        for rank, (chunk_id, document) in enumerate(self.ranking):
            metadata = {"source": f"{chunk_id}.md"}
            if document is not None:
                metadata[self.key] = document
            hits.append(Hit(Chunk(id=chunk_id, text=chunk_id, metadata=metadata), 10.0 - rank))
        return hits[:k]

    def run(self, query: str) -> dict:
        return {"hits": self.retrieve(query)}


@pytest.mark.unit
def test_document_level_fusion_counts_a_document_once():
    # doc A fills the top of the dense list with three chunks; doc C is second everywhere
    dense = ChunkRetriever(ranking=[("a1", "A"), ("a2", "A"), ("a3", "A"), ("c1", "C")])
    lexical = ChunkRetriever(ranking=[("b1", "B"), ("c2", "C")])
    by_document = HybridRetriever(retrievers=[dense, lexical], k=3)
    assert by_document.level == "document"  # the default
    hits = by_document.retrieve("q")
    assert [h.id for h in hits] == ["c2", "a1", "b1"]
    assert hits[0].score == pytest.approx(1 / 62 + 1 / 62)
    two_each = HybridRetriever(retrievers=[dense, lexical], k=4, chunks_per_document=2)
    assert [h.id for h in two_each.retrieve("q")] == ["c2", "c1", "a1", "a2"]
    by_chunk = HybridRetriever(retrievers=[dense, lexical], k=3, level="chunk")
    assert [h.id for h in by_chunk.retrieve("q")] == ["a1", "b1", "a2"]


@pytest.mark.unit
def test_document_is_doc_id_else_source():
    assert document_id(Chunk(id="x", text="t", metadata={"source": "s.md", "doc_id": 7})) == "7"
    assert document_id(Chunk(id="x", text="t", metadata={"source": "s.md"})) == "s.md"
    # two chunks of one source file are one document when there is no doc_id
    dense = ChunkRetriever(ranking=[("x1", "f.md"), ("x2", "f.md"), ("y1", "g.md")], key="source")
    hybrid = HybridRetriever(retrievers=[dense], k=5)
    assert [h.id for h in hybrid.retrieve("q")] == ["x1", "y1"]


@pytest.mark.unit
def test_configuration_errors_name_the_fix():
    a = FixedRetriever(ranking=["d1"])
    with pytest.raises(
        ConfigError, match="fusion must be one of rrf, weighted, zscore, got 'borda'"
    ):
        HybridRetriever(retrievers=[a], fusion="borda")
    with pytest.raises(ConfigError, match="one per retriever"):
        HybridRetriever(retrievers=[a], weights=[1.0, 2.0])
    for bad in ([-1.0], [0.0], ["heavy"], [float("nan")], [True]):
        with pytest.raises(ConfigError, match="weights must be finite numbers >= 0") as err:
            HybridRetriever(retrievers=[a], weights=bad)
        assert err.value.field == "weights"
    with pytest.raises(ConfigError, match="weights must be a list"):
        HybridRetriever(retrievers=[a], weights=2.0)
    with pytest.raises(ConfigError, match="rrf_k must be a whole number >= 0"):
        HybridRetriever(retrievers=[a], rrf_k=-5)
    with pytest.raises(ConfigError, match="level must be one of document, chunk, got 'page'"):
        HybridRetriever(retrievers=[a], level="page")
    with pytest.raises(ConfigError, match="chunks_per_document must be a whole number >= 1"):
        HybridRetriever(retrievers=[a], chunks_per_document=0)
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


@pytest.mark.unit
def test_bad_fusion_in_a_pipeline_file_is_a_config_error(tmp_path):
    text = f"""
components:
  store: {{type: store.faiss, init_parameters: {{path: {tmp_path}/idx}}}}
  bm25: {{type: retriever.bm25, init_parameters: {{store: "@store"}}}}
  hybrid:
    type: retriever.hybrid
    init_parameters: {{retrievers: ["@bm25"], fusion: %s, weights: %s}}
pipelines:
  search: {{components: [hybrid]}}
"""
    good = PipelineFile.load("p.yaml", text=text % ("rrf", "[1.0]"))
    again = PipelineFile.load("p.yaml", text=good.dump())
    assert again.to_dict() == good.to_dict()
    assert again.components["hybrid"].level == "document"
    zscore = PipelineFile.load("p.yaml", text=text % ("zscore", "[1.0]"))
    assert zscore.components["hybrid"].fusion == "zscore"
    assert PipelineFile.load("p.yaml", text=zscore.dump()).to_dict() == zscore.to_dict()
    with pytest.raises(ConfigError, match="rrf, weighted, zscore"):
        PipelineFile.load("p.yaml", text=text % ("z-score", "[1.0]"))
    with pytest.raises(ConfigError, match="rrf, weighted"):
        PipelineFile.load("p.yaml", text=text % ("mean", "[1.0]"))
    with pytest.raises(ConfigError, match="weights must be finite numbers >= 0"):
        PipelineFile.load("p.yaml", text=text % ("rrf", "[-2]"))
