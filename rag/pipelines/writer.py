"""``writer.store``: the last step of an ingestion pipeline."""

from __future__ import annotations

from typing import Any

from rag.core.component import Component
from rag.core.documents import Chunk
from rag.core.protocols import WritePolicy


class StoreWriter(Component):
    """Write embedded chunks into a vector store.

    Args:
        store: The vector store (shared by reference with the retriever in a pipeline file).
        policy: ``upsert`` (replace), ``skip`` (keep stored) or ``fail`` on an id already stored.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> writer = StoreWriter(store=FaissStore(), policy="upsert")
        >>> writer.run(chunks=[])
        {'written': 0, 'skipped': 0}
    """

    outputs = {"written": int, "skipped": int}

    def __init__(self, *, store: Component, policy: str = "upsert") -> None:
        WritePolicy.parse(policy)
        self.store = store
        self.policy = policy

    def warm_up(self) -> None:
        self.store.warm_up()

    def run(self, chunks: list[Chunk]) -> dict[str, Any]:
        written = self.store.write(chunks, policy=self.policy) if chunks else 0  # type: ignore[attr-defined]
        return {"written": written, "skipped": len(chunks) - written}

    def flush(self) -> None:
        """Persist what the store buffers (FAISS saves its index file)."""
        flush = getattr(self.store, "flush", None)
        if flush is not None:
            flush()
