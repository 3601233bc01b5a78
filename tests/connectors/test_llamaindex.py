"""LlamaIndex bridges: real query engines whose retrieval runs through ragline (FAISS, the real
embedder); the LLM is LlamaIndex's ``MockLLM``, which answers with the prompt it was given, so
the answer shows exactly which retrieved text reached the model."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core", reason="pip install 'ragline[llamaindex]'")

from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from rag.connectors.llamaindex import (
    LlamaIndexLoader,
    RaglineEmbedding,
    RaglineRetriever,
    RaglineVectorStore,
    to_ragline_filters,
)
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.core import FilterError, Pipeline
from rag.pipelines.ingest import run_ingest
from rag.pipelines.splitters import RecursiveSplitter
from rag.pipelines.writer import StoreWriter

pytestmark = pytest.mark.integration

FACTS = [
    ("okapi", 1901, "The okapi is a giraffid mammal of the Congo rainforest."),
    ("capybara", 1766, "The capybara is the largest living rodent, from South America."),
    ("axolotl", 1798, "The axolotl is a salamander that keeps its gills as an adult."),
]


@pytest.fixture()
def index(tmp_path, embedder):
    embed_model = RaglineEmbedding(embedder=embedder)
    vector_store = RaglineVectorStore(store=FaissStore(path=str(tmp_path / "index")))
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
    index.insert_nodes(
        [
            TextNode(id_=name, text=text, metadata={"animal": name, "described": year})
            for name, year, text in FACTS
        ]
    )
    return index


def test_a_llamaindex_query_engine_retrieves_through_ragline(index):
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=1)
    response = engine.query("Which rodent is the biggest?")
    assert [n.node.node_id for n in response.source_nodes] == ["capybara"]
    assert "largest living rodent" in str(response)  # the retrieved text reached the LLM
    store = index.vector_store.client
    assert store.count() == 3  # the nodes live in the ragline store


def test_metadata_filters_are_translated(index):
    filters = MetadataFilters(filters=[MetadataFilter(key="described", value=1800, operator=">")])
    retriever = index.as_retriever(similarity_top_k=3, filters=filters)
    assert [n.node.node_id for n in retriever.retrieve("rodent")] == ["okapi"]
    either = MetadataFilters(
        filters=[
            MetadataFilter(key="animal", value="okapi"),
            MetadataFilter(key="animal", value=["axolotl"], operator="in"),
        ],
        condition="or",
    )
    assert to_ragline_filters(either) == {
        "$or": [{"animal": {"$eq": "okapi"}}, {"animal": {"$in": ["axolotl"]}}]
    }
    found = index.as_retriever(similarity_top_k=3, filters=either).retrieve("rodent")
    assert {n.node.node_id for n in found} == {"okapi", "axolotl"}
    with pytest.raises(FilterError, match="text_match"):
        to_ragline_filters(
            MetadataFilters(filters=[MetadataFilter(key="a", value="x", operator="text_match")])
        )


def test_documents_are_deleted_by_ref_doc_id(tmp_path, embedder):
    from llama_index.core import Document as LIDocument
    from llama_index.core import StorageContext

    vector_store = RaglineVectorStore(store=FaissStore(path=str(tmp_path / "index")))
    index = VectorStoreIndex.from_documents(
        [LIDocument(text=text, id_=name) for name, _, text in FACTS],
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=RaglineEmbedding(embedder=embedder),
    )
    assert vector_store.client.count() == 3
    index.delete_ref_doc("okapi")
    assert vector_store.client.count() == 2
    result = vector_store.query(
        VectorStoreQuery(query_embedding=embedder.embed_query("okapi").tolist(), similarity_top_k=3)
    )
    assert {n.ref_doc_id for n in result.nodes} == {"capybara", "axolotl"}  # relationship kept
    restricted = vector_store.query(
        VectorStoreQuery(
            query_embedding=embedder.embed_query("rodent").tolist(),
            similarity_top_k=3,
            doc_ids=["axolotl"],
        )
    )
    assert [n.ref_doc_id for n in restricted.nodes] == ["axolotl"]


def test_a_ragline_retriever_in_a_retriever_query_engine(index, embedder):
    dense = DenseRetriever(embedder=embedder, store=index.vector_store.client, k=2)
    engine = RetrieverQueryEngine.from_args(
        RaglineRetriever(retriever=dense, filters={"animal": {"$ne": "capybara"}}), llm=MockLLM()
    )
    response = engine.query("Which rodent is the biggest?")
    assert len(response.source_nodes) == 2
    assert "capybara" not in {n.node.node_id for n in response.source_nodes}
    assert all(n.node.text in str(response) for n in response.source_nodes)


def test_a_llamaindex_reader_in_a_ragline_ingest_pipeline(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, _, text in FACTS:
        (corpus / f"{name}.md").write_text(f"# {name.title()}\n\n{text}\n")
    store = FaissStore(path=str(tmp_path / "index"))
    ingest = Pipeline("ingest")
    ingest.add_component(
        "loader", LlamaIndexLoader(reader=lambda path: SimpleDirectoryReader(input_files=[path]))
    )
    ingest.add_component("splitter", RecursiveSplitter(chunk_size=100, chunk_overlap=0))
    ingest.add_component("embedder", embedder)
    ingest.add_component("writer", StoreWriter(store=store))
    report = run_ingest(ingest, [str(corpus), str(corpus / "missing.md")], progress=False)
    assert report.chunks_written == 3 and len(report.errors) == 1
    hit = DenseRetriever(embedder=embedder, store=store, k=1).retrieve("salamander gills")[0]
    assert hit.chunk.source == (corpus / "axolotl.md").as_posix()
    assert hit.chunk.metadata["file_name"] == "axolotl.md"  # the reader's metadata is kept
