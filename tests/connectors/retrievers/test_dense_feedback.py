"""retriever.dense ``feedback``: Rocchio pseudo-relevance feedback over stored vectors."""

from __future__ import annotations

import numpy as np
import pytest

from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.core.component import Component
from rag.core.documents import Chunk
from rag.core.errors import ConfigError
from rag.core.pipeline import PipelineFile

pytestmark = pytest.mark.unit


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


# q is nearest to a; a's neighbours b and c point away from q's other side, d sits there
VECTORS = {
    "a": unit(1.0, 0.2, 0.0),
    "b": unit(0.8, 0.6, 0.0),
    "c": unit(0.7, 0.7, 0.1),
    "d": unit(0.9, -0.45, 0.0),
}
QUERY = unit(1.0, 0.0, 0.0)


class FixedEmbedder(Component):
    def embed_query(self, text: str) -> np.ndarray:
        return QUERY

    def embed_documents(self, texts):
        return np.stack([VECTORS[t] for t in texts])


@pytest.fixture
def store():
    store = FaissStore()
    chunks = []
    for name, vector in VECTORS.items():
        chunk = Chunk.create(text=name, source_id=f"{name}.md", position=0)
        chunk.embedding = vector
        chunks.append(chunk)
    store.write(chunks)
    return store


def test_feedback_moves_the_query_toward_its_first_hits(store):
    plain = DenseRetriever(embedder=FixedEmbedder(), store=store, k=4)
    fed = DenseRetriever(
        embedder=FixedEmbedder(), store=store, k=4, feedback=2, feedback_weight=1.0
    )
    first = plain.retrieve("q")
    assert [h.chunk.text for h in first][:2] == ["a", "d"]
    # Rocchio by hand: q + 1.0 * mean(a, d), normalized; scores are inner products with it
    moved = QUERY + (VECTORS["a"] + VECTORS["d"]) / 2
    moved /= np.linalg.norm(moved)
    assert np.allclose(fed.fed_back(QUERY, first), moved, atol=1e-6)
    hits = fed.retrieve("q")
    expected = sorted(VECTORS, key=lambda n: -float(VECTORS[n] @ moved))
    assert [h.chunk.text for h in hits] == expected
    assert [h.score for h in hits] == pytest.approx([float(VECTORS[n] @ moved) for n in expected])
    assert fed.retrieve_batch(["q", "q"]) == [hits, hits]


def test_feedback_changes_the_ranking(store):
    plain = DenseRetriever(embedder=FixedEmbedder(), store=store, k=4)
    fed = DenseRetriever(
        embedder=FixedEmbedder(), store=store, k=4, feedback=1, feedback_weight=2.0
    )
    # fed back with a alone, b (a's neighbour) overtakes d
    assert [h.chunk.text for h in plain.retrieve("q")] == ["a", "d", "b", "c"]
    assert [h.chunk.text for h in fed.retrieve("q")] == ["a", "b", "d", "c"]


def test_feedback_zero_searches_once(store):
    calls = []
    search = store.search
    store.search = lambda *a, **kw: calls.append(1) or search(*a, **kw)  # type: ignore[method-assign]
    DenseRetriever(embedder=FixedEmbedder(), store=store, feedback=0).retrieve("q")
    DenseRetriever(embedder=FixedEmbedder(), store=store, feedback=2).retrieve("q")
    assert len(calls) == 3


def test_a_store_without_vectors_is_named(store):
    store.get = lambda ids: [Chunk(id=i, text="x") for i in ids]  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match="FaissStore.get\\(\\) returned chunks without"):
        DenseRetriever(embedder=FixedEmbedder(), store=store, feedback=2).retrieve("q")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feedback": -1}, "feedback must be a whole number >= 0"),
        ({"feedback": True}, "feedback must be a whole number >= 0"),
        ({"feedback": 2, "feedback_weight": -0.5}, "feedback_weight must be a finite number"),
        ({"feedback": 2, "feedback_weight": float("nan")}, "feedback_weight must be a finite"),
    ],
)
def test_bad_feedback_settings(store, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DenseRetriever(embedder=FixedEmbedder(), store=store, **kwargs)


def test_feedback_in_a_pipeline_file_round_trips(tmp_path):
    text = f"""
components:
  store: {{type: store.faiss, init_parameters: {{path: {tmp_path}/idx}}}}
  embedder: {{type: embedder.sentence_transformers, init_parameters: {{model: all-MiniLM-L6-v2}}}}
  dense:
    type: retriever.dense
    init_parameters: {{embedder: "@embedder", store: "@store", feedback: 3, feedback_weight: 0.5}}
pipelines:
  search: {{components: [dense]}}
"""
    loaded = PipelineFile.load("p.yaml", text=text)
    dense = loaded.components["dense"]
    assert (dense.feedback, dense.feedback_weight) == (3, 0.5)
    assert PipelineFile.load("p.yaml", text=loaded.dump()).to_dict() == loaded.to_dict()
