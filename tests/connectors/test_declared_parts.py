"""The built-in connectors have the optional abilities and configuration that callers check with
``isinstance`` (rag.core.protocols), so a renamed method or attribute fails here instead of
silently switching a caller to its slow or error path (``rag search --queries`` one query at a
time, ingest refusing to guess where its records live)."""

from __future__ import annotations

import pytest

from rag.connectors.embedders.http import HttpEmbedder
from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
from rag.connectors.retrievers.bm25 import BM25Retriever
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.retrievers.hybrid import HybridRetriever
from rag.connectors.retrievers.parent import ParentRetriever
from rag.connectors.retrievers.query_strategies import HydeRetriever, MultiQueryRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.connectors.stores.milvus import MilvusStore
from rag.connectors.stores.pgvector import PgvectorStore
from rag.connectors.stores.pinecone import PineconeStore
from rag.connectors.stores.qdrant import QdrantStore
from rag.connectors.stores.weaviate import WeaviateStore
from rag.core.protocols import (
    EmbedsQueries,
    HasDimension,
    HasTokenizer,
    Retriever,
    RetrievesBatches,
    StoredAtPath,
    StoredAtUri,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "retriever",
    [
        BM25Retriever,
        DenseRetriever,
        HybridRetriever,
        ParentRetriever,
        MultiQueryRetriever,
        HydeRetriever,
    ],
    ids=lambda cls: cls.__name__,
)
def test_every_builtin_retriever_answers_batches(retriever: type) -> None:
    assert issubclass(retriever, Retriever)
    assert issubclass(retriever, RetrievesBatches)


@pytest.mark.parametrize("embedder", [SentenceTransformersEmbedder, HttpEmbedder])
def test_builtin_embedders_embed_queries_in_one_call(embedder: type) -> None:
    assert issubclass(embedder, EmbedsQueries)


def test_a_plain_object_has_none_of_these_abilities() -> None:
    for ability in (RetrievesBatches, EmbedsQueries, HasTokenizer, HasDimension, StoredAtPath):
        assert not isinstance(object(), ability)


# (store, its init parameters, StoredAtPath, StoredAtUri): built, never opened
STORES = [
    (FaissStore, {"path": "index"}, True, False),
    (QdrantStore, {"path": "qdrant"}, True, False),
    (MilvusStore, {"uri": "milvus.db"}, False, True),
    (PgvectorStore, {}, False, False),
    (PineconeStore, {"host": "https://never-opened.example"}, False, False),
    (WeaviateStore, {}, False, False),
]


@pytest.mark.parametrize(
    ("cls", "params", "at_path", "at_uri"), STORES, ids=[s[0].__name__ for s in STORES]
)
def test_store_configuration_is_declared(
    cls: type, params: dict[str, str], at_path: bool, at_uri: bool
) -> None:
    store = cls(**params)
    assert isinstance(store, HasDimension)
    assert store.dimension is None or isinstance(store.dimension, int)
    assert isinstance(store, StoredAtPath) is at_path
    assert isinstance(store, StoredAtUri) is at_uri


def test_an_embedder_with_a_tokenizer_declares_both_parts() -> None:
    class Local:
        tokenizer = staticmethod(lambda texts, **options: {"input_ids": [[1, 2]] * len(texts)})
        max_seq_length = 128

    class HalfDeclared:
        tokenizer = None

    assert isinstance(Local(), HasTokenizer)
    assert not isinstance(HalfDeclared(), HasTokenizer)
