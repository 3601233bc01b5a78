"""store.faiss against the shared conformance suite, flat and HNSW."""

from __future__ import annotations

import pytest

from rag.connectors.stores.faiss import FaissStore
from rag.testing import StoreConformance

pytestmark = pytest.mark.integration


class TestFaissFlat(StoreConformance):
    @pytest.fixture(scope="class")
    def store_factory(self, tmp_path_factory):
        root = tmp_path_factory.mktemp("faiss-flat")
        return lambda name: FaissStore(path=str(root / name), index="flat")


class TestFaissHnsw(StoreConformance):
    @pytest.fixture(scope="class")
    def store_factory(self, tmp_path_factory):
        root = tmp_path_factory.mktemp("faiss-hnsw")
        return lambda name: FaissStore(path=str(root / name), index="hnsw", hnsw_m=16)


class TestFaissInMemory(StoreConformance):
    persistent = False

    @pytest.fixture(scope="class")
    def store_factory(self):
        return lambda name: FaissStore()

    def test_ten_thousand_chunk_batch(self, store):
        pytest.skip("covered by TestFaissFlat; one 10k batch per store")
