"""Extension points: the protocols a vector store, an embedder and a retriever follow.

The generator protocol lives in :mod:`rag.core.generation`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.core.documents import Chunk, Hit

Filters = Mapping[str, Any]


class WritePolicy(str, enum.Enum):
    """What a store does with a chunk whose id is already stored."""

    UPSERT = "upsert"
    """Replace the stored chunk."""
    SKIP = "skip"
    """Keep the stored chunk, drop the new one."""
    FAIL = "fail"
    """Raise :class:`~rag.core.errors.DuplicateIdError` and write nothing of the batch."""

    @classmethod
    def parse(cls, value: WritePolicy | str) -> WritePolicy:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown write policy {value!r}; use one of: upsert, skip, fail"
            ) from None


@runtime_checkable
class VectorStore(Protocol):
    """A persistent collection of chunks with their vectors.

    ``write`` returns the number of chunks written (skipped ones excluded); ``search`` applies
    ``filters`` (the grammar of :mod:`rag.core.filters`) *before* ranking, so it returns ``k``
    hits whenever ``k`` matching chunks exist; ``delete`` takes ids or filters and returns the
    number deleted.
    """

    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = ...) -> int: ...

    def search(
        self, vector: np.ndarray, k: int = ..., filters: Filters | None = ...
    ) -> list[Hit]: ...

    def delete(self, ids: Sequence[str] | None = ..., filters: Filters | None = ...) -> int: ...

    def count(self, filters: Filters | None = ...) -> int: ...

    def get(self, ids: Sequence[str]) -> list[Chunk]: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors (rows L2-normalized when the embedder normalizes)."""

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


@runtime_checkable
class Retriever(Protocol):
    """Anything that answers a query with ranked hits."""

    def retrieve(
        self, query: str, *, k: int | None = None, filters: Filters | None = None
    ) -> list[Hit]: ...
