"""Each store declares the abilities its test module runs, checked without a server, so a store
whose suite skips here (Weaviate without WEAVIATE_URL) is still held to its declaration; and each
serializes under its short type name, wherever its class is defined (the Ray writers rebuild
stores from ``to_dict()``)."""

from __future__ import annotations

import pytest

from rag.connectors.stores._base import StoreBase
from rag.connectors.stores.faiss import FaissStore
from rag.connectors.stores.milvus import MilvusStore
from rag.connectors.stores.pgvector import PgvectorStore
from rag.connectors.stores.pinecone import PineconeStore
from rag.connectors.stores.qdrant import QdrantStore
from rag.connectors.stores.weaviate import WeaviateStore
from rag.core.protocols import STORE_ABILITIES, VectorStore
from rag.testing.store_conformance import ABILITY_CONFORMANCE, declared_abilities
from tests.connectors.stores.abilities import (
    FaissAbilities,
    MilvusAbilities,
    PgvectorAbilities,
    PineconeAbilities,
    QdrantAbilities,
    WeaviateAbilities,
)

pytestmark = pytest.mark.unit

STORES = [
    (FaissStore, {}, FaissAbilities),
    (MilvusStore, {"uri": "never-opened.db"}, MilvusAbilities),
    (PgvectorStore, {}, PgvectorAbilities),
    (QdrantStore, {}, QdrantAbilities),
    (PineconeStore, {"host": "https://never-opened.example"}, PineconeAbilities),
    (WeaviateStore, {}, WeaviateAbilities),
]


def _tested(mixin: type) -> set[type]:
    return {cls.ability for cls in mixin.__mro__ if cls in ABILITY_CONFORMANCE.values()}


@pytest.mark.parametrize(("cls", "options", "mixin"), STORES, ids=[s[0].__name__ for s in STORES])
def test_store_declares_what_its_tests_run(cls, options, mixin):
    store = cls(**options)  # no connection: a store connects in warm_up
    assert isinstance(store, VectorStore) and isinstance(store, StoreBase)
    assert declared_abilities(store) == _tested(mixin)


def test_every_ability_has_a_conformance_class():
    assert set(ABILITY_CONFORMANCE) == set(STORE_ABILITIES)


@pytest.mark.parametrize(("cls", "options", "mixin"), STORES, ids=[s[0].__name__ for s in STORES])
def test_store_serializes_under_its_short_name(cls, options, mixin):
    short = "store." + cls.__name__.removesuffix("Store").lower()
    data = cls(**options).to_dict()
    assert data["type"] == short
    assert type(cls.from_dict(data)) is cls
