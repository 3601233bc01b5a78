"""retriever.parent over real FAISS and the real embedder, in Python, YAML and the CLI."""

import json
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.retrievers.parent import ParentRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.core.documents import Chunk, Document
from rag.core.errors import ConfigError
from rag.pipelines.parents import ParentChildSplitter, SentenceWindowSplitter
from rag.pipelines.splitters import MarkdownSplitter, SentenceSplitter

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

DOCS = {
    "pets.md": (
        "# Pets\n\n"
        "## Cats\nCats purr when they are content. They sleep for most of the day. "
        "A cat grooms its fur with a rough tongue.\n\n"
        "## Dogs\nDogs bark at strangers. They need a walk every day. "
        "Many dogs love to fetch a ball."
    ),
    "search.md": (
        "# Search\n\n"
        "## HNSW\nHNSW builds a layered proximity graph. Queries descend from the top layer. "
        "The graph gives fast approximate nearest neighbour search.\n\n"
        "## BM25\nBM25 scores documents by term frequency. Rare terms weigh more. "
        "Long documents are normalized by length."
    ),
}


def embed_into(store, chunks, embedder):
    vectors = embedder.embed_documents([c.text for c in chunks])
    for chunk, vector in zip(chunks, vectors):
        chunk.embedding = vector
    store.write(chunks)


def documents():
    return [Document(id=name, text=text) for name, text in DOCS.items()]


@pytest.fixture(scope="module")
def parent_store(embedder, tmp_path_factory):
    splitter = ParentChildSplitter(
        parent=MarkdownSplitter(chunk_size=2000, chunk_overlap=0),
        child=SentenceSplitter(chunk_size=60, chunk_overlap=0),
    )
    chunks = splitter.run(documents=documents())["chunks"]
    path = tmp_path_factory.mktemp("parent") / "index"
    store = FaissStore(path=str(path))
    embed_into(store, chunks, embedder)
    return store, chunks, path


def test_children_are_searched_and_their_sections_returned(parent_store, embedder):
    store, chunks, _ = parent_store
    dense = DenseRetriever(embedder=embedder, store=store, k=10)
    retriever = ParentRetriever(retriever=dense, k=2)
    hits = retriever.retrieve("Which animal purrs?")
    sections = {c.metadata["parent_id"]: c.metadata["parent_text"] for c in chunks}
    top = hits[0]
    assert top.chunk.id in sections and top.chunk.text == sections[top.chunk.id]
    assert top.chunk.text.startswith("## Cats") and "rough tongue" in top.chunk.text
    assert top.chunk.metadata["matched_text"] in top.chunk.text
    assert top.chunk.metadata["matched_id"] in {c.id for c in chunks}
    assert top.chunk.metadata["section"] == "Pets > Cats"
    assert "parent_text" not in top.chunk.metadata
    assert top.score == dense.retrieve("Which animal purrs?", k=1)[0].score
    # one hit per section, even though every section has several children
    many = retriever.retrieve("animals and search", k=5)
    assert len(many) == 5 and len({h.chunk.id for h in many}) == 5
    assert [h.score for h in many] == sorted((h.score for h in many), reverse=True)


def test_sections_survive_reopening_the_store(parent_store, embedder):
    _, _, path = parent_store
    reopened = FaissStore(path=str(path))
    retriever = ParentRetriever(retriever=DenseRetriever(embedder=embedder, store=reopened), k=1)
    (hit,) = retriever.retrieve("layered proximity graph")
    assert hit.chunk.text.startswith("## HNSW") and "approximate nearest" in hit.chunk.text
    assert hit.chunk.source == "search.md"


def test_filters_and_batches_pass_through(parent_store, embedder):
    store, _, _ = parent_store
    retriever = ParentRetriever(retriever=DenseRetriever(embedder=embedder, store=store), k=3)
    hits = retriever.retrieve("graph search", filters={"source": "pets.md"})
    assert hits and {h.chunk.source for h in hits} == {"pets.md"}
    queries = ["Which animal purrs?", "term frequency scoring"]
    batch = retriever.retrieve_batch(queries, k=2)
    assert [[h.chunk.id for h in hits] for hits in batch] == [
        [h.chunk.id for h in retriever.retrieve(q, k=2)] for q in queries
    ]
    assert retriever.run(query="term frequency scoring", k=1)["hits"][0].chunk.text.startswith(
        "## BM25"
    )


def test_sentence_window_mode(embedder):
    text = (
        "BM25 scores documents by term frequency. HNSW builds a layered proximity graph. "
        "Queries descend from the top layer. The graph gives fast approximate nearest "
        "neighbour search. Rare terms weigh more in BM25."
    )
    chunks = SentenceWindowSplitter(window_size=1).run(
        documents=[Document(id="search.md", text=text)]
    )["chunks"]
    store = FaissStore()
    embed_into(store, chunks, embedder)
    retriever = ParentRetriever(
        retriever=DenseRetriever(embedder=embedder, store=store), mode="window", k=1
    )
    (hit,) = retriever.retrieve("Queries descend from the top layer")
    assert hit.chunk.metadata["matched_text"] == "Queries descend from the top layer."
    assert hit.chunk.text == (
        "HNSW builds a layered proximity graph. Queries descend from the top layer. "
        "The graph gives fast approximate nearest neighbour search."
    )
    assert hit.chunk.id == hit.chunk.metadata["matched_id"]


def test_chunks_without_context_pass_through_with_a_warning(embedder, caplog):
    store = FaissStore()
    plain = [Chunk.create(text="Cats purr.", source_id="plain.md", position=0)]
    embed_into(store, plain, embedder)
    retriever = ParentRetriever(retriever=DenseRetriever(embedder=embedder, store=store), k=1)
    with caplog.at_level(logging.WARNING, logger="rag.connectors.retrievers.parent"):
        (hit,) = retriever.retrieve("cats")
    assert (hit.chunk.id, hit.chunk.text, hit.chunk.metadata) == (
        plain[0].id,
        plain[0].text,
        plain[0].metadata,
    )
    assert "no 'parent_text' metadata" in caplog.text and "splitter.parent" in caplog.text


def test_round_trip_and_bad_parameters(embedder):
    dense = DenseRetriever(embedder=embedder, store=FaissStore(), k=4)
    retriever = ParentRetriever(retriever=dense, mode="window", k=2, candidates=8)
    data = retriever.to_dict()
    assert data["type"] == "retriever.parent"
    assert data["init_parameters"]["retriever"]["type"] == "retriever.dense"
    assert ParentRetriever.from_dict(data) == retriever
    with pytest.raises(ConfigError, match="mode must be one of parent, window"):
        ParentRetriever(retriever=dense, mode="section")
    with pytest.raises(ConfigError, match="retriever must have retrieve"):
        ParentRetriever(retriever=embedder)
    with pytest.raises(ConfigError, match="k must be at least 1"):
        ParentRetriever(retriever=dense, k=0)
    with pytest.raises(ConfigError, match=r"candidates \(2\) must be at least k \(3\)"):
        ParentRetriever(retriever=dense, k=3, candidates=2)


def test_example_pipeline_file_through_the_cli(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(EXAMPLES / "corpus", corpus)
    config = tmp_path / "parent.yaml"
    config.write_text(
        (EXAMPLES / "parent.yaml")
        .read_text()
        .replace("${RAG_INDEX_DIR:-.rag/parent-index}", str(tmp_path / "index"))
        .replace("device: auto", "device: cpu")
    )
    runner = CliRunner()
    ingest = runner.invoke(
        app, ["ingest", str(corpus), "--config", str(config), "--json", "--quiet"]
    )
    assert ingest.exit_code == 0, ingest.output
    assert json.loads(ingest.stdout)["errors"] == []
    search = runner.invoke(
        app, ["search", "How does HNSW work?", "--config", str(config), "--json", "--k", "3"]
    )
    assert search.exit_code == 0, search.output
    hits = json.loads(search.stdout)["hits"]
    assert len(hits) == 3 and len({h["id"] for h in hits}) == len(hits)
    assert hits[0]["metadata"]["source"].endswith("hnsw.html")
    assert hits[0]["metadata"]["matched_text"] in hits[0]["text"]
    children = runner.invoke(
        app,
        ["search", "How does HNSW work?", "--config", str(config), "--json", "--pipeline", "child"],
    )
    child_hits = json.loads(children.stdout)["hits"]
    assert child_hits[0]["metadata"]["parent_id"] == hits[0]["id"]
    assert len(hits[0]["text"]) > len(child_hits[0]["text"])
