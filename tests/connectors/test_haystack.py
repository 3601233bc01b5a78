"""rag.connectors.haystack: Haystack's own DocumentStore test suite over two ragline stores,
the filter translation, and a Haystack pipeline answering over examples/corpus."""

from __future__ import annotations

import os
import shutil
import uuid

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # before Haystack is imported

import numpy as np
import pytest

pytest.importorskip("haystack", reason="Haystack is not installed: pip install 'ragline[haystack]'")

from haystack import Document, Pipeline
from haystack.components.builders import PromptBuilder
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.errors import FilterError
from haystack.testing.document_store import DocumentStoreBaseTests

from rag.chains.rag import RagChain
from rag.connectors.haystack import (
    NO_EMBEDDING_KEY,
    RaglineChain,
    RaglineDocumentStore,
    RaglineEmbeddingRetriever,
    RaglineRetriever,
    to_ragline_filters,
)
from rag.connectors.stores.faiss import FaissStore
from rag.core.errors import InvalidInputError
from rag.pipelines.ingest import run_ingest
from tests.serve.conftest import CORPUS, build_app_file

DIMENSION = 768  # the size of the vectors in Haystack's filterable_docs


class RaglineStoreTests(DocumentStoreBaseTests):
    """Haystack's DocumentStoreBaseTests, with the two comparisons a ragline store changes."""

    def assert_documents_are_equal(self, received, expected):
        """Haystack's in-memory store returns documents in insertion order and keeps embeddings
        as Python floats; ragline stores return them in their own order (FAISS: insertion,
        Milvus: primary key) and keep float32 vectors. So: same ids, and every field equal,
        embeddings to float32 precision."""
        assert sorted(d.id for d in received) == sorted(d.id for d in expected)
        by_id = {d.id: d for d in expected}
        for document in received:
            want = by_id[document.id]
            got_fields = document.to_dict(flatten=False)
            want_fields = want.to_dict(flatten=False)
            got_vector, want_vector = got_fields.pop("embedding"), want_fields.pop("embedding")
            assert got_fields == want_fields
            assert (got_vector is None) == (want_vector is None)
            if want_vector is not None:
                assert np.array_equal(
                    np.asarray(got_vector, np.float32), np.asarray(want_vector, np.float32)
                )

    def test_write_documents(self, document_store):
        """The default policy (DuplicatePolicy.NONE) fails on a duplicate, as in memory."""
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


@pytest.mark.integration
class TestHaystackSuiteOnFaiss(RaglineStoreTests):
    @pytest.fixture
    def document_store(self):
        return RaglineDocumentStore(FaissStore(), embedding_dim=DIMENSION)


@pytest.mark.integration
class TestHaystackSuiteOnMilvusLite(RaglineStoreTests):
    """One collection for the class, emptied after each test: creating and loading a
    milvus-lite collection per test costs seconds, clearing one costs milliseconds."""

    @pytest.fixture(scope="class")
    @classmethod
    def milvus_store(cls, tmp_path_factory):
        pytest.importorskip("milvus_lite", reason="pip install 'ragline[milvus]'")
        from rag.connectors.stores.milvus import MilvusStore

        uri = str(tmp_path_factory.mktemp("hs-milvus") / "h.db")
        # a collection name of its own: pymilvus caches schemas per address and name
        store = MilvusStore(uri=uri, collection=f"hs_{uuid.uuid4().hex[:8]}")
        yield store
        store.close()

    @pytest.fixture
    def document_store(self, milvus_store):
        yield RaglineDocumentStore(milvus_store, embedding_dim=DIMENSION)
        milvus_store.clear()
        assert milvus_store.count() == 0


# -- the filter translation ------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("haystack", "ragline"),
    [
        ({"field": "meta.year", "operator": "==", "value": 2020}, {"year": {"$eq": 2020}}),
        ({"field": "year", "operator": "!=", "value": "x"}, {"year": {"$ne": "x"}}),
        ({"field": "meta.year", "operator": "==", "value": None}, {"year": {"$exists": False}}),
        ({"field": "meta.year", "operator": "!=", "value": None}, {"year": {"$exists": True}}),
        (
            {"field": "meta.year", "operator": ">", "value": None},
            {"$and": [{"year": {"$exists": True}}, {"year": {"$exists": False}}]},
        ),
        (
            {"field": "meta.d", "operator": "<=", "value": "2020-01-01"},
            {"d": {"$lte": "2020-01-01"}},
        ),
        ({"field": "meta.n", "operator": "not in", "value": [1, 2]}, {"n": {"$nin": [1, 2]}}),
        (
            {"field": "meta.n", "operator": "in", "value": [1, None]},
            {"$or": [{"n": {"$in": [1]}}, {"n": {"$exists": False}}]},
        ),
        (
            {
                "operator": "NOT",
                "conditions": [
                    {"field": "meta.a", "operator": "==", "value": 1},
                    {
                        "operator": "OR",
                        "conditions": [{"field": "meta.b", "operator": "<", "value": 2}],
                    },
                ],
            },
            {"$not": {"$and": [{"a": {"$eq": 1}}, {"$or": [{"b": {"$lt": 2}}]}]}},
        ),
    ],
)
def test_filters_translate_to_ragline_grammar(haystack, ragline):
    assert to_ragline_filters(haystack) == ragline


@pytest.mark.unit
@pytest.mark.parametrize(
    ("haystack", "message"),
    [
        ({"field": "meta.n", "operator": ">", "value": "1"}, "'1' is not an ISO-8601 date"),
        ({"field": "meta.n", "operator": "in", "value": (1, 2)}, "'in' takes a list, got tuple"),
        ({"field": "meta.n", "operator": "==", "value": [1]}, "'==' compares one value"),
        ({"field": "meta.n", "operator": "~", "value": 1}, "'~' is not a comparison"),
        ({"field": "content", "operator": "==", "value": "x"}, "filter on metadata only"),
        ({"field": "meta.n", "operator": ">", "value": True}, "not booleans"),
        (
            {"field": "meta.n", "operator": "==", "value": float("nan")},
            "nan is not a finite number",
        ),
        ({"conditions": []}, "needs 'operator'"),
        ({"operator": "AND"}, "needs 'conditions'"),
        (
            {"operator": "XOR", "conditions": [{"field": "meta.a", "operator": "==", "value": 1}]},
            "use one of AND, OR, NOT",
        ),
        (
            {"operator": "AND", "conditions": [{"field": "meta.a", "value": 1}]},
            r"conditions\[0\]: a comparison needs",
        ),
    ],
)
def test_malformed_filters_are_haystack_filter_errors(haystack, message):
    with pytest.raises(FilterError, match=message):
        to_ragline_filters(haystack)


# -- beyond the protocol -------------------------------------------------------------------------
def _unit(seed: int, size: int = 8) -> list[float]:
    vector = np.random.default_rng(seed).normal(size=size)
    return (vector / np.linalg.norm(vector)).tolist()


@pytest.mark.integration
def test_embedding_retrieval_skips_documents_without_embedding():
    store = RaglineDocumentStore(FaissStore(), embedding_dim=8)
    docs = [
        Document(id=f"d{i}", content=f"doc {i}", meta={"i": i}, embedding=_unit(i))
        for i in range(5)
    ]
    store.write_documents([*docs, Document(id="bare", content="no vector")])
    hits = store.embedding_retrieval(_unit(3), top_k=10)
    assert hits[0].id == "d3" and "bare" not in [d.id for d in hits]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5) and hits[0].embedding is None
    filtered = store.embedding_retrieval(
        _unit(3),
        filters={"field": "meta.i", "operator": "<", "value": 2},
        top_k=10,
        return_embedding=True,
    )
    assert sorted(d.id for d in filtered) == ["d0", "d1"] and len(filtered[0].embedding) == 8
    (bare,) = store.get_documents_by_id(["bare"])
    assert bare.embedding is None and NO_EMBEDDING_KEY not in bare.meta
    retriever = RaglineEmbeddingRetriever(document_store=store, top_k=2)
    assert retriever.run(query_embedding=_unit(4))["documents"][0].id == "d4"
    with pytest.raises(ValueError, match="top_k must be at least 1, got 0"):  # was the default
        retriever.run(query_embedding=_unit(4), top_k=0)


@pytest.mark.integration
def test_content_none_blob_and_sparse_embedding_round_trip():
    store = RaglineDocumentStore(FaissStore(), embedding_dim=4)
    doc = Document(
        id="b",
        content=None,
        blob=ByteStream(data=b"\x00\x01PDF", mime_type="application/pdf"),
        sparse_embedding=SparseEmbedding(indices=[1, 7], values=[0.5, 0.25]),
        meta={"kind": "file"},
    )
    store.write_documents([doc])
    assert store.filter_documents() == [doc]


@pytest.mark.integration
def test_reserved_meta_keys_are_refused():
    store = RaglineDocumentStore(FaissStore(), embedding_dim=4)
    with pytest.raises(ValueError, match="reserved"):
        store.write_documents([Document(content="x", meta={NO_EMBEDDING_KEY: 1})])


@pytest.mark.unit
def test_store_and_components_round_trip_through_dicts(tmp_path):
    store = RaglineDocumentStore(FaissStore(path=str(tmp_path / "i")), embedding_dim=4)
    data = store.to_dict()
    assert data["init_parameters"]["store"]["type"] == "store.faiss"
    again = RaglineDocumentStore.from_dict(data)
    assert again.to_dict() == data
    retriever = RaglineEmbeddingRetriever(document_store=store, top_k=3)
    assert RaglineEmbeddingRetriever.from_dict(retriever.to_dict()).to_dict() == retriever.to_dict()


# -- ragline retrievers and chains inside a Haystack pipeline ------------------------------------
@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory, embedder):
    corpus = tmp_path_factory.mktemp("hs-corpus")
    shutil.copytree(CORPUS, corpus, dirs_exist_ok=True)
    app_file = build_app_file(tmp_path_factory.mktemp("hs-index") / "index", embedder, None)
    report = run_ingest(app_file.pipeline("ingest"), [str(corpus)], progress=False)
    assert report.chunks_written > 0 and not report.errors
    return app_file.pipeline("search").get_component("retriever")


@pytest.mark.integration
def test_a_ragline_retriever_feeds_a_haystack_prompt_builder(corpus_index):
    pipeline = Pipeline()
    pipeline.add_component("retriever", RaglineRetriever(corpus_index, top_k=2))
    pipeline.add_component(
        "prompt",
        PromptBuilder(
            template="{% for d in documents %}[{{ d.meta.source }}] {{ d.content }}\n{% endfor %}Q: {{ query }}",
            required_variables=["documents", "query"],
        ),
    )
    pipeline.connect("retriever.documents", "prompt.documents")
    result = pipeline.run(
        {"retriever": {"query": "What is FAISS?"}, "prompt": {"query": "What is FAISS?"}}
    )
    prompt = result["prompt"]["prompt"]
    assert "faiss.md]" in prompt and prompt.endswith("Q: What is FAISS?")
    filtered = RaglineRetriever(corpus_index).run(
        query="What is FAISS?",
        filters={"field": "meta.source", "operator": "!=", "value": "x"},
        top_k=3,
    )["documents"]
    assert len(filtered) == 3 and all(d.score is not None for d in filtered)
    with pytest.raises(InvalidInputError, match="k: must be a whole number"):  # was the default
        RaglineRetriever(corpus_index, top_k=2).run(query="What is FAISS?", top_k=0)


@pytest.mark.integration
def test_a_haystack_pipeline_answers_over_the_example_corpus(corpus_index, local_generator):
    chain = RagChain(retriever=corpus_index, generator=local_generator, k=2)
    pipeline = Pipeline()
    pipeline.add_component("rag", RaglineChain(chain))
    result = pipeline.run({"rag": {"query": "What is FAISS?"}})["rag"]
    (reply,) = result["replies"]
    assert reply.strip()
    assert any(d.meta["source"].endswith("faiss.md") for d in result["documents"])
    # what is cited is the answer style's business; it is always among the contexts given
    assert {c["id"] for c in result["answer"]["citations"]} <= {d.id for d in result["documents"]}


@pytest.mark.unit
def test_components_refuse_what_is_not_ragline():
    with pytest.raises(ValueError, match="ragline retriever"):
        RaglineRetriever(object())
    with pytest.raises(ValueError, match="ragline chain"):
        RaglineChain(object())
