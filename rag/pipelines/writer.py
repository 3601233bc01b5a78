"""``writer.store``: the last step of an ingestion pipeline."""

from __future__ import annotations

import threading
from typing import Any

from rag.core.component import Component, warm_up_parts
from rag.core.documents import Chunk
from rag.core.errors import ConfigError
from rag.core.protocols import Flushable, VectorStore, WritePolicy
from rag.pipelines.records import RecordStore, default_records_path


class StoreWriter(Component):
    """Write embedded chunks into a vector store.

    Run as a pipeline node it simply writes what it is given;
    :func:`rag.pipelines.ingest.run_ingest` additionally keeps ingestion records (content
    hash and chunk ids per source) so re-runs are incremental and an interrupted run resumes
    without duplicates; see :mod:`rag.pipelines.records`.

    Args:
        store: The vector store (shared by reference with the retriever in a pipeline file).
        policy: ``upsert`` (replace), ``skip`` (keep stored) or ``fail`` on an id already stored.
        batch_size: Chunks per store write. The ingestion runners embed and write in windows
            of this many chunks: larger windows sort by length better (less padding), smaller
            ones use less memory.
        records_path: SQLite file of the ingestion records. ``None`` derives it from the store
            (``<path>/records.sqlite`` for ``store.faiss``, ``<uri>.<collection>.records.sqlite``
            for milvus-lite); a store without a local location (a Milvus or Weaviate server)
            needs one for ``--mode incremental|full``.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> writer = StoreWriter(store=FaissStore(), policy="upsert")
        >>> writer.run(chunks=[])
        {'written': 0, 'skipped': 0}
    """

    outputs = {"written": int, "skipped": int}

    def __init__(
        self,
        *,
        store: VectorStore,
        policy: str = "upsert",
        batch_size: int = 1024,
        records_path: str | None = None,
    ) -> None:
        WritePolicy.parse(policy)
        if batch_size < 1:
            raise ConfigError(
                f"batch_size must be at least 1, got {batch_size}", field="batch_size"
            )
        self.store = store
        self.policy = policy
        self.batch_size = batch_size
        self.records_path = records_path
        self._records: RecordStore | None = None
        self._records_lock = threading.Lock()

    def warm_up(self) -> None:
        warm_up_parts(self.store)

    @property
    def records(self) -> RecordStore:
        """The ingestion records of this writer's store (opened on first use)."""
        with self._records_lock:
            if self._records is None:
                self._records = RecordStore(
                    default_records_path(self.store, records_path=self.records_path)
                )
            return self._records

    def run(self, chunks: list[Chunk]) -> dict[str, Any]:
        written = self.store.write(chunks, policy=self.policy) if chunks else 0
        return {"written": written, "skipped": len(chunks) - written}

    def flush(self) -> None:
        """Persist what the store buffers (FAISS saves its index file)."""
        if isinstance(self.store, Flushable):
            self.store.flush()
