"""Extension points: the protocols a vector store, an embedder and a retriever follow.

A vector store must do what :class:`VectorStore` names. What only some stores can do is an
*ability*, a small runtime-checkable protocol of its own (:class:`Flushable`, :class:`Closable`,
:class:`Clearable`, :class:`Enumerable`, :class:`Fingerprinted`, :class:`ReportsStats`,
:class:`ConcurrentWriters`, :class:`OwnsRecordsLocation`). Callers ask with ``isinstance``, never
with ``getattr``, and the conformance suite (:mod:`rag.testing.store_conformance`) has a test class
per ability.

Where a store keeps its data and how wide its vectors are is configuration, not an ability, and is
declared the same way: :class:`HasDimension`, :class:`StoredAtPath`, :class:`StoredAtUri`. The
optional abilities of embedders and retrievers are here too: :class:`EmbedsQueries`,
:class:`HasTokenizer`, :class:`RetrievesBatches`.

The generator protocol lives in :mod:`rag.core.generation`.

Example:
    >>> class Batched:
    ...     def retrieve(self, query, *, k=None, filters=None):
    ...         return []
    ...     def retrieve_batch(self, queries, *, k=None, filters=None):
    ...         return [[] for _ in queries]
    >>> isinstance(Batched(), RetrievesBatches), isinstance(object(), RetrievesBatches)
    (True, False)
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
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
class Flushable(Protocol):
    """A store that buffers writes: ``flush()`` makes every written chunk durable and searchable."""

    def flush(self) -> None: ...


@runtime_checkable
class Closable(Protocol):
    """A store holding a connection, a file lock or a server process that ``close()`` releases.

    A stream of generated text (a generator) has the same shape: closing it releases the model.
    """

    def close(self) -> None: ...


@runtime_checkable
class Clearable(Protocol):
    """A store that can drop every chunk at once (``rag ingest --mode rebuild``)."""

    def clear(self) -> None: ...


@runtime_checkable
class Enumerable(Protocol):
    """A store that lists what it holds: every id, and every chunk in batches.

    BM25 rebuilds its index from ``iter_chunks``; ingest checks lost chunks with ``ids``.
    """

    def ids(self) -> list[str]: ...

    def iter_chunks(self, batch_size: int = ...) -> Iterator[Chunk]: ...


@runtime_checkable
class Fingerprinted(Protocol):
    """A store whose contents have a cheap fingerprint that changes whenever they change."""

    def fingerprint(self) -> str: ...


@runtime_checkable
class ReportsStats(Protocol):
    """A store that describes itself (chunks, dimension, index, location) for ``rag stats``."""

    def stats(self) -> dict[str, Any]: ...


@runtime_checkable
class ConcurrentWriters(Protocol):
    """A store that says whether several processes may write to it at once (Ray ingest)."""

    @property
    def concurrent_writers(self) -> bool: ...


@runtime_checkable
class OwnsRecordsLocation(Protocol):
    """A store that names where ingest keeps its records (a server store has no local path).

    ``records_location()`` is a method (as the stores have always had it): a SQLite file path,
    or ``":memory:"`` for a store that lives in memory.
    """

    def records_location(self) -> str: ...


STORE_ABILITIES: tuple[type, ...] = (
    Flushable,
    Closable,
    Clearable,
    Enumerable,
    Fingerprinted,
    ReportsStats,
    ConcurrentWriters,
    OwnsRecordsLocation,
)
"""Every optional store ability, in the order the conformance suite checks them."""


@runtime_checkable
class HasDimension(Protocol):
    """A store that knows its vector size: ``dimension`` (``None`` until its first write)."""

    dimension: int | None


@runtime_checkable
class StoredAtPath(Protocol):
    """A store kept in a local directory ``path`` (``None``: it lives in memory)."""

    path: str | None


@runtime_checkable
class StoredAtUri(Protocol):
    """A store reached at ``uri`` (a server address, or a local database file) as ``collection``."""

    uri: str | None
    collection: str


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


@runtime_checkable
class RetrievesBatches(Protocol):
    """A retriever that answers many queries at once (embedding them in batches).

    ``retriever.dense``, ``retriever.bm25``, ``retriever.hybrid``, ``retriever.parent`` and the
    query strategies have it; a retriever without it is asked one query at a time.
    """

    def retrieve_batch(
        self, queries: Sequence[str], *, k: int | None = None, filters: Filters | None = None
    ) -> list[list[Hit]]: ...


@runtime_checkable
class EmbedsQueries(Protocol):
    """An embedder that embeds many queries in one call (one row per query)."""

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class HasTokenizer(Protocol):
    """An embedder with a local tokenizer (a Hugging Face one: ``tokenizer(texts, ...)``) and the
    longest input it embeds, in tokens; used to report token usage.

    Check it after ``warm_up()``: on Python 3.11 ``isinstance`` reads the properties.
    """

    @property
    def tokenizer(self) -> Any: ...

    @property
    def max_seq_length(self) -> int: ...
