import numpy as np
import pytest

from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.core.documents import Chunk

pytestmark = pytest.mark.integration

TEXTS = {
    "cats.md": "Cats are small domesticated felines that purr.",
    "dogs.md": "Dogs are loyal animals that bark.",
    "faiss.md": "FAISS searches dense vectors quickly.",
    "milvus.md": "Milvus is a vector database server.",
}


@pytest.fixture(scope="module")
def retriever(embedder):
    store = FaissStore()
    chunks = [
        Chunk.create(
            text=t,
            source_id=s,
            position=0,
            metadata={"topic": "pets" if s in ("cats.md", "dogs.md") else "ir"},
        )
        for s, t in TEXTS.items()
    ]
    vectors = embedder.embed_documents([c.text for c in chunks])
    for c, v in zip(chunks, vectors):
        c.embedding = v
    store.write(chunks)
    return DenseRetriever(embedder=embedder, store=store, k=2)


def test_retrieve_ranks_by_meaning(retriever):
    hits = retriever.retrieve("vector similarity search library")
    assert [h.chunk.source for h in hits] == ["faiss.md", "milvus.md"]
    assert hits[0].score > hits[1].score


def test_filters_merge_with_defaults(retriever):
    hits = retriever.retrieve("vector search", k=4, filters={"topic": "pets"})
    assert {h.chunk.source for h in hits} == {"cats.md", "dogs.md"}
    narrowed = DenseRetriever(
        embedder=retriever.embedder, store=retriever.store, k=4, filters={"topic": "pets"}
    )
    assert [h.chunk.source for h in narrowed.retrieve("x", filters={"source": "dogs.md"})] == [
        "dogs.md"
    ]


def test_score_threshold_and_batch(retriever):
    strict = DenseRetriever(
        embedder=retriever.embedder, store=retriever.store, k=4, score_threshold=0.99
    )
    assert strict.retrieve("vector search") == []
    batch = retriever.retrieve_batch(["cats purring", "dense vectors"])
    assert [b[0].chunk.source for b in batch] == ["cats.md", "faiss.md"]
    assert np.isclose(batch[1][0].score, retriever.retrieve("dense vectors")[0].score, atol=1e-5)


def test_run_output_and_bad_k(retriever):
    assert len(retriever.run(query="dogs", k=1)["hits"]) == 1
    with pytest.raises(ValueError, match="k must be at least 1"):
        DenseRetriever(embedder=retriever.embedder, store=retriever.store, k=0)
