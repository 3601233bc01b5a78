"""``RaglineVectorStore`` passes LangChain's standard vector store suite (sync and async)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("langchain_tests", reason="pip install langchain-tests (the dev extra)")

from langchain_tests.integration_tests import VectorStoreIntegrationTests

from rag.connectors.langchain import RaglineVectorStore
from rag.connectors.stores.faiss import FaissStore


@pytest.mark.integration
class TestRaglineVectorStoreOnFaiss(VectorStoreIntegrationTests):
    """A FAISS store on disk; the suite's fake embeddings are not normalized, hence L2."""

    @pytest.fixture()
    def vectorstore(self, tmp_path) -> Iterator[RaglineVectorStore]:
        store = FaissStore(path=str(tmp_path / "index"), metric="l2")
        yield RaglineVectorStore(store=store, embedding=self.get_embeddings())
        store.close()
