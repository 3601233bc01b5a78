"""One YAML pipeline, three stores: the files differ in the store component only, round-trip,
and FAISS and milvus-lite return the same hits for the same filters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rag.core.pipeline import PipelineFile

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
STORE_FILES = [
    EXAMPLES / "ingest.yaml",
    EXAMPLES / "stores" / "milvus.yaml",
    EXAMPLES / "stores" / "weaviate.yaml",
    EXAMPLES / "stores" / "pgvector.yaml",
    EXAMPLES / "stores" / "qdrant.yaml",
    EXAMPLES / "stores" / "pinecone.yaml",
]


@pytest.fixture(autouse=True)
def _locations(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "faiss"))
    monkeypatch.setenv("RAG_MILVUS_URI", str(tmp_path / "milvus.db"))
    monkeypatch.setenv("RAG_QDRANT_PATH", str(tmp_path / "qdrant"))


@pytest.mark.unit
@pytest.mark.parametrize("path", [*STORE_FILES, EXAMPLES / "hybrid.yaml"], ids=lambda p: p.name)
def test_example_round_trips(path):
    app = PipelineFile.load(path)
    again = PipelineFile.load(path, text=app.dump())
    assert again.to_dict() == app.to_dict()
    for name, pipeline in app.pipelines.items():
        assert again.pipeline(name) == pipeline


@pytest.mark.unit
@pytest.mark.parametrize("path", STORE_FILES[1:], ids=lambda p: p.name)
def test_store_files_differ_only_in_the_store(path):
    base = yaml.safe_load((EXAMPLES / "ingest.yaml").read_text())
    other = yaml.safe_load(path.read_text())
    assert other["components"]["store"]["type"] != base["components"]["store"]["type"]
    del base["components"]["store"], other["components"]["store"]
    assert other == base


@pytest.mark.integration
@pytest.mark.slow
def test_faiss_and_milvus_return_the_same_hits(tmp_path):
    pytest.importorskip("milvus_lite")
    sources = [str(p) for p in sorted((EXAMPLES / "corpus").iterdir()) if p.is_file()]
    results = {}
    for path in STORE_FILES[:2]:
        app = PipelineFile.load(path)  # as a user runs it: only the store differs
        # a shared vector cache: the second store's run skips re-embedding the same texts
        app.components["embedder"].cache_dir = str(tmp_path / "embedding-cache")
        ingest, search = app.pipeline("ingest"), app.pipeline("search")
        retriever = search.get_component("retriever")
        written = ingest.run(sources=sources)["writer"]["written"]
        assert written > 10
        answers = []
        for query, filters in [
            ("How does HNSW build its graph?", None),
            ("How does HNSW build its graph?", {"source": {"$ne": sources[0]}}),
            ("ranking functions for keyword search", {"source": {"$in": sources[:3]}}),
        ]:
            hits = retriever.retrieve(query, k=5, filters=filters)
            answers.append([(h.id, round(h.score, 4)) for h in hits])
        results[path.name] = answers
        store = app.components["store"]
        assert store.count() == written
        store.close()
    assert results["milvus.yaml"] == results["ingest.yaml"]
