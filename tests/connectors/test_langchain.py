"""LangChain bridges with the real embedder and FAISS: ragline in LangChain and the reverse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="pip install 'ragline[langchain]'")

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document as LCDocument
from langchain_core.vectorstores import InMemoryVectorStore

from rag.connectors.langchain import (
    LangChainEmbedder,
    LangChainLoader,
    LangChainStore,
    RaglineEmbeddings,
    RaglineRetriever,
    RaglineVectorStore,
)
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.core import Chunk, DuplicateIdError, Pipeline
from rag.pipelines.ingest import run_ingest
from rag.pipelines.splitters import RecursiveSplitter
from rag.pipelines.writer import StoreWriter

pytestmark = pytest.mark.integration

ANIMALS = {
    "okapi": "The okapi is a giraffid mammal of the Congo rainforest.",
    "capybara": "The capybara is the largest living rodent, from South America.",
    "axolotl": "The axolotl is a salamander that keeps its gills as an adult.",
}


class ParagraphLoader(BaseLoader):
    """A real LangChain loader: one document per paragraph of a text file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def lazy_load(self) -> Iterator[LCDocument]:
        text = Path(self.path).read_text(encoding="utf-8")
        for number, paragraph in enumerate(p for p in text.split("\n\n") if p.strip()):
            yield LCDocument(
                page_content=paragraph, metadata={"source": self.path, "paragraph": number}
            )


@pytest.fixture()
def vectorstore(tmp_path, embedder) -> RaglineVectorStore:
    store = FaissStore(path=str(tmp_path / "index"))
    vs = RaglineVectorStore(store=store, embedding=embedder)  # a ragline embedder is wrapped
    vs.add_texts(
        list(ANIMALS.values()),
        metadatas=[{"animal": name} for name in ANIMALS],
        ids=list(ANIMALS),
    )
    return vs


def test_vectorstore_searches_a_ragline_store(vectorstore):
    found = vectorstore.similarity_search("Which rodent is the biggest?", k=1)
    assert [(d.id, d.metadata) for d in found] == [("capybara", {"animal": "capybara"})]
    filtered = vectorstore.similarity_search(
        "Which rodent is the biggest?", k=3, filter={"animal": {"$in": ["okapi", "axolotl"]}}
    )
    assert {d.id for d in filtered} == {"okapi", "axolotl"}
    scored = vectorstore.similarity_search_with_relevance_scores("amphibian gills", k=3)
    assert scored[0][0].id == "axolotl"
    assert all(0.0 <= score <= 1.0 for _, score in scored)
    assert scored[0][1] > scored[-1][1]


def test_vectorstore_persists_through_the_ragline_store(vectorstore, embedder, tmp_path):
    vectorstore.store.close()
    reopened = RaglineVectorStore(
        store=FaissStore(path=str(tmp_path / "index")), embedding=embedder
    )
    assert [d.id for d in reopened.as_retriever(search_kwargs={"k": 1}).invoke("salamander")] == [
        "axolotl"
    ]
    with pytest.raises(ValueError, match="store="):
        RaglineVectorStore.from_texts(["x"], RaglineEmbeddings(embedder))


def test_ragline_retriever_in_langchain(vectorstore, embedder):
    dense = DenseRetriever(embedder=embedder, store=vectorstore.store, k=2)
    retriever = RaglineRetriever(retriever=dense, filters={"animal": {"$ne": "okapi"}})
    documents = retriever.invoke("rainforest giraffe relative")
    assert len(documents) == 2 and "okapi" not in {d.id for d in documents}
    assert documents[0].metadata["score"] >= documents[1].metadata["score"]
    assert [d.id for d in RaglineRetriever(retriever=dense, k=1).invoke("rainforest giraffe")] == [
        "okapi"
    ]


async def test_ragline_retriever_async(vectorstore, embedder):
    dense = DenseRetriever(embedder=embedder, store=vectorstore.store, k=1)
    documents = await RaglineRetriever(retriever=dense).ainvoke("largest rodent")
    assert [d.id for d in documents] == ["capybara"]


def test_embeddings_round_trip(embedder):
    wrapped = LangChainEmbedder(embeddings=RaglineEmbeddings(embedder))
    texts = list(ANIMALS.values())
    np.testing.assert_allclose(
        wrapped.embed_documents(texts), embedder.embed_documents(texts), atol=1e-6
    )
    np.testing.assert_allclose(
        wrapped.embed_query("okapi"), embedder.embed_query("okapi"), atol=1e-6
    )
    assert wrapped.dimension == embedder.dimension == 384
    assert wrapped.embed_documents([]).shape == (0, 384)


def test_langchain_loader_and_embeddings_in_a_ragline_ingest_pipeline(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "animals.txt").write_text("\n\n".join(ANIMALS.values()))
    (corpus / "broken.txt").write_bytes(b"\xff\xfe\x00 not utf-8")
    lc_embedder = LangChainEmbedder(embeddings=RaglineEmbeddings(embedder))
    store = FaissStore(path=str(tmp_path / "index"))
    ingest = Pipeline("ingest")
    ingest.add_component("loader", LangChainLoader(loader=ParagraphLoader))
    ingest.add_component("splitter", RecursiveSplitter(chunk_size=200, chunk_overlap=0))
    ingest.add_component("embedder", lc_embedder)
    ingest.add_component("writer", StoreWriter(store=store))
    report = run_ingest(ingest, [str(corpus)], progress=False)
    assert report.chunks_written == 3
    assert [e["source"] for e in report.errors] == [(corpus / "broken.txt").as_posix()]
    hits = DenseRetriever(embedder=lc_embedder, store=store, k=1).retrieve("biggest rodent")
    assert "capybara" in hits[0].chunk.text
    assert hits[0].chunk.metadata["paragraph"] == 1
    assert hits[0].chunk.source == (corpus / "animals.txt").as_posix()


def test_langchain_loader_with_a_fixed_loader(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("first\n\nsecond")
    loader = LangChainLoader(loader=ParagraphLoader(str(path)))
    documents = loader.run()["documents"]
    assert [d.text for d in documents] == ["first", "second"]
    assert [d.id for d in documents] == [f"{path}#0", f"{path}#1"]
    assert documents[1].metadata == {"source": str(path), "paragraph": 1}
    failing = LangChainLoader(loader=ParagraphLoader(str(tmp_path / "missing.txt"))).run()
    assert failing["documents"] == [] and "FileNotFoundError" in failing["errors"][0]["error"]


@pytest.fixture()
def lc_store(embedder) -> LangChainStore:
    store = LangChainStore(vectorstore=InMemoryVectorStore(RaglineEmbeddings(embedder)))
    chunks = []
    for name, text in ANIMALS.items():
        chunk = Chunk.create(
            text=text, source_id=f"{name}.md", position=0, metadata={"animal": name}
        )
        chunk.embedding = embedder.embed_documents([text])[0]
        chunks.append(chunk)
    assert store.write(chunks) == 3
    return store


def test_langchain_vectorstore_as_a_ragline_store(lc_store, embedder):
    retriever = DenseRetriever(embedder=embedder, store=lc_store, k=1)
    assert retriever.retrieve("salamander with gills")[0].chunk.source == "axolotl.md"
    hits = retriever.retrieve("salamander", k=3, filters={"animal": {"$ne": "axolotl"}})
    assert len(hits) == 2 and all(h.chunk.metadata["animal"] != "axolotl" for h in hits)
    assert lc_store.count() == 3 and lc_store.count({"animal": "okapi"}) == 1


def test_langchain_store_write_policies_and_delete(lc_store):
    existing = lc_store.get([next(iter(lc_store.vectorstore.store))])[0]
    assert lc_store.write([existing], policy="skip") == 0
    with pytest.raises(DuplicateIdError):
        lc_store.write([existing], policy="fail")
    assert lc_store.delete(ids=[existing.id, "missing"]) == 1
    assert lc_store.count() == 2 and lc_store.get([existing.id]) == []
    with pytest.raises(NotImplementedError, match="by id"):
        lc_store.delete(filters={"animal": "okapi"})
