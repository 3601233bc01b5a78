"""``store.pinecone``: chunks in a Pinecone index (serverless or pod), one namespace per store.

The index is made beforehand (Pinecone's console or control-plane API) with the embedder's
dimension and the ``dotproduct`` metric (or ``cosine`` for normalized embeddings); the store
reads and writes vectors through the data plane at the index's ``host``. One vector per chunk,
with this metadata (Pinecone metadata is flat: strings, numbers, booleans, lists of strings)::

    _text        the chunk text               _meta       the metadata as written (JSON)
    _present     metadata keys holding a non-null value
    s:<key>      string values of <key>       b:<key>     booleans, as "true"/"false"
    n:<key>      numbers, as canonical strings (for equality: lists of numbers are not allowed)
    nmin:<key>   smallest number              nmax:<key>  largest number (for $gt ...)

:func:`to_pinecone_filter` maps the grammar of :mod:`rag.core.filters` onto Pinecone's filter
language exactly: ``$eq``/``$in`` become ``$in`` on the typed lists (a list matches when an
element does), ``$gt 2020`` becomes ``nmax:<key> $gt 2020``, and negations (``$ne``, ``$nin``,
``$not``, which Pinecone lacks) are pushed down to the leaves, each guarded by ``$exists:
false`` so that a chunk without the field matches as the grammar says whatever Pinecone does
with missing fields. Pinecone cannot order strings: ``$gt`` on a string raises
:class:`~rag.core.errors.FilterError` saying so. Filters are sent as JSON objects by the
official client; values are never pasted into text.

Requests stay within Pinecone's limits: at most ``batch_size`` (≤ 1,000) vectors and 2 MB per
upsert, 100 ids per fetch, 1,000 per delete, ``top_k`` ≤ 10,000; metadata over 40 KB is refused
before anything is sent. Throttling (429) and server errors (5xx) are retried with exponential
backoff, on top of the client's own retries. Pinecone is eventually consistent: a write may take
a moment to show in queries and counts.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from rag.connectors._deps import require
from rag.connectors.stores._base import CountedFingerprint, ScannedStats, StoreBase, WritesThrough
from rag.connectors.stores._common import (
    apply_write_policy,
    batched,
    check_delete_arguments,
    check_k,
    query_vector,
)
from rag.connectors.stores._pinecone_filters import (
    number_key,
    to_pinecone_filter,
    vector_metadata,
)
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError, RagError, StoreUnavailableError
from rag.core.filters import FilterNode, matches, parse_filter
from rag.core.protocols import Filters, WritePolicy
from rag.core.secrets import Secret

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_TOP_K",
    "MAX_UPSERT_VECTORS",
    "PineconeStore",
    "number_key",
    "to_pinecone_filter",
    "vector_metadata",
]

MAX_METADATA_BYTES = 40_960
MAX_UPSERT_VECTORS = 1_000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_TOP_K = 10_000
_FETCH_IDS = 100  # ids travel in the URL of a fetch: keep it short
_DELETE_IDS = 1_000
_LIST_PAGE = 100
T = TypeVar("T")


def _pinecone() -> Any:
    return require("pinecone", package="pinecone", extra="pinecone", purpose="store.pinecone")


# -- the store ----------------------------------------------------------------------------------
class PineconeStore(WritesThrough, CountedFingerprint, ScannedStats, StoreBase):
    """Chunks in one namespace of a Pinecone index, through the official ``pinecone`` client.

    Args:
        host: The index's data-plane host, as Pinecone's console shows it
            (``https://docs-abc123.svc.aped-4627-b74a.pinecone.io``).
        api_key: API key as an environment reference; ``${PINECONE_API_KEY}`` by default.
        namespace: Namespace of the index that holds this store's chunks (``""``: default).
        dimension: Expected vector size; checked against the index when given.
        batch_size: Vectors per upsert request (at most 1,000; requests also stay under 2 MB).
        max_retries: Extra attempts after a 429 or 5xx answer the client gave up on.
        retry_backoff: First wait in seconds before such a retry (doubled each time).
        timeout: Seconds for one HTTP attempt.

    Example:
        >>> # Needs a Pinecone index and PINECONE_API_KEY.
        >>> store = PineconeStore(host="https://docs-abc123.svc.pinecone.io", namespace="docs")
        >>> store.count({"source": "a.md"})  # doctest: +SKIP
        3
    """

    fingerprint_name = "pinecone"

    #: Several processes may write at once: Pinecone is a service.
    concurrent_writers = True

    def __init__(
        self,
        *,
        host: str,
        api_key: Secret | None = None,
        namespace: str = "",
        dimension: int | None = None,
        batch_size: int = 100,
        max_retries: int = 5,
        retry_backoff: float = 0.5,
        timeout: float = 30.0,
    ) -> None:
        parsed = urlparse(host if "://" in host else f"https://{host}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"host {host!r} must be the index's host, such as "
                "https://docs-abc123.svc.aped-4627-b74a.pinecone.io",
                field="host",
            )
        if not 1 <= batch_size <= MAX_UPSERT_VECTORS:
            raise ConfigError(
                f"batch_size must be 1 to {MAX_UPSERT_VECTORS} (Pinecone's limit per upsert), "
                f"got {batch_size}",
                field="batch_size",
            )
        if max_retries < 0:
            raise ConfigError(
                f"max_retries must be 0 or more, got {max_retries}", field="max_retries"
            )
        self.host = host
        self.api_key = api_key
        self.namespace = namespace
        self.dimension = dimension
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.timeout = timeout
        self._index: Any = None
        super().__init__()

    # -- connection ---------------------------------------------------------------------------
    def _is_open(self) -> bool:
        return self._index is not None

    def _open(self) -> None:
        pinecone = _pinecone()
        key = (self.api_key or Secret("PINECONE_API_KEY")).resolve()
        host = self.host if "://" in self.host else f"https://{self.host}"
        index = pinecone.Index(host=host, api_key=key, timeout=self.timeout)
        self._index = index
        try:
            stats = self._call(index.describe_index_stats)
        except Exception:
            self._index = None
            index.close()
            raise
        stored = int(stats.dimension) if stats.dimension else None
        if stored is not None and self.dimension is not None and stored != self.dimension:
            self._index = None
            index.close()
            raise ConfigError(
                f"Pinecone index at {self.host} holds {stored}-dimensional vectors but "
                f"dimension={self.dimension} was configured; use the matching embedder or "
                "another index",
                field="dimension",
            )
        self.dimension = stored or self.dimension

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the client, retrying 429/5xx answers; an unreachable host is one clear error."""
        errors = require(
            "pinecone.errors", package="pinecone", extra="pinecone", purpose="store.pinecone"
        )
        delay = self.retry_backoff
        for attempt in range(self.max_retries + 1):
            try:
                return method(*args, **kwargs)
            except errors.ApiError as err:
                # why: the client sets status_code only when the server answered at all
                status = int(getattr(err, "status_code", 0) or 0)  # pinecone client, see above
                if (status == 429 or status >= 500) and attempt < self.max_retries:
                    time.sleep(delay * (1 + random.random() * 0.25))
                    delay *= 2
                    continue
                if status in (401, 403):
                    raise ConfigError(
                        f"Pinecone refused the API key for {self.host} ({status}); check "
                        f"api_key ({self.api_key or '${PINECONE_API_KEY}'})",
                        field="api_key",
                    ) from None
                raise RagError(f"Pinecone at {self.host} answered {status}: {err}") from None
            except (errors.PineconeConnectionError, errors.PineconeTimeoutError) as err:
                raise StoreUnavailableError(
                    "store.pinecone", self.host, "host", _reason(err)
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def index(self) -> Any:
        """The ``pinecone.Index`` data-plane client (opened on first use)."""
        self.warm_up()
        return self._index

    def _total(self) -> int:
        stats = self._call(self._index.describe_index_stats)
        namespaces = stats.namespaces or {}
        summary = namespaces.get(self.namespace)
        if summary is None and not self.namespace:  # newer API versions name it "__default__"
            summary = namespaces.get("__default__")
        return int(summary.vector_count) if summary is not None else 0

    # -- writing ------------------------------------------------------------------------------
    def _records(self, chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
        missing = [c.id for c in chunks if c.embedding is None]
        if missing:
            raise ValueError(
                f"{len(missing)} chunk(s) have no embedding (first: {missing[0]}); run an "
                "embedder before writing to a vector store"
            )
        records = []
        for chunk in chunks:
            vector = np.asarray(chunk.embedding, dtype=np.float32).reshape(-1)
            if self.dimension is not None and vector.shape[0] != self.dimension:
                raise ValueError(
                    f"chunk {chunk.id} has a {vector.shape[0]}-dimensional vector but the "
                    f"Pinecone index holds dimension {self.dimension}; use the same embedder "
                    "for every write"
                )
            if not chunk.id.isascii() or not 0 < len(chunk.id) <= 512:
                raise ValueError(
                    f"chunk id {chunk.id[:40]!r} is not 1-512 ASCII characters, as Pinecone "
                    "requires of vector ids"
                )
            metadata = vector_metadata(chunk)
            size = len(json.dumps(metadata, ensure_ascii=False).encode())
            if size > MAX_METADATA_BYTES:
                raise ValueError(
                    f"chunk {chunk.id} needs {size} bytes of Pinecone metadata (its text, its "
                    f"metadata and their filterable copies), over Pinecone's 40 KB limit per "
                    "vector; split the text smaller or keep less metadata"
                )
            records.append({"id": chunk.id, "values": vector.tolist(), "metadata": metadata})
        return records

    def _existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for part in batched(ids, _FETCH_IDS):
            response = self._call(self._index.fetch, ids=part, namespace=self.namespace)
            found.update(response.vectors)
        return found

    def _upsert_batches(self, records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        size = 0
        for record in records:
            record_size = len(json.dumps(record, ensure_ascii=False).encode()) + 2
            if batch and (
                len(batch) >= self.batch_size or size + record_size > MAX_REQUEST_BYTES * 0.9
            ):
                yield batch
                batch, size = [], 0
            batch.append(record)
            size += record_size
        if batch:
            yield batch

    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = WritePolicy.UPSERT) -> int:
        """Store chunks (each must carry an embedding). Returns how many were written."""
        policy = WritePolicy.parse(policy)
        if not chunks:
            return 0
        with self._lock:
            self.warm_up()
            records = self._records(chunks)
            unique = {r["id"]: r for r in records}  # the last one wins inside a batch
            unique = apply_write_policy(unique, policy, self._existing)
            if not unique:
                return 0
            for batch in self._upsert_batches(list(unique.values())):
                self._call(
                    self._index.upsert, vectors=batch, namespace=self.namespace, show_progress=False
                )
            self._changed()
            return len(unique)

    def _matching_ids(self, node: FilterNode | None) -> list[str]:
        """Ids of the chunks matching ``node`` (every id when ``None``)."""
        where = to_pinecone_filter(node)
        if where is False:
            return []
        total = self._total()
        if total == 0:
            return []
        if total <= MAX_TOP_K:  # one query returns every match
            response = self._call(
                self._index.query,
                vector=self._probe(),
                top_k=min(total, MAX_TOP_K),
                filter=None if where is True else where,
                namespace=self.namespace,
            )
            return [m.id for m in response.matches]
        # more chunks than one query returns: list every id, match the fetched metadata here
        found = []
        for part in batched(self._list_ids(), _FETCH_IDS):
            for chunk in self._fetch(part, with_values=False):
                if matches(node, chunk.metadata):
                    found.append(chunk.id)
        return found

    def _probe(self) -> list[float]:
        dimension = int(self.dimension or 1)
        return [1.0 / math.sqrt(dimension)] * dimension  # any nonzero vector: scores unused

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        """Delete by ids and/or filters (both given: chunks matching both). Returns the count."""
        check_delete_arguments(ids, filters)
        node = parse_filter(filters)
        to_pinecone_filter(node)  # refuse what Pinecone cannot express before reading
        with self._lock:
            self.warm_up()
            if ids is None:
                doomed = self._matching_ids(node)
            else:
                doomed = [
                    c.id
                    for part in batched(ids, _FETCH_IDS)
                    for c in self._fetch(part, with_values=False)
                    if matches(node, c.metadata)
                ]
            for part in batched(doomed, _DELETE_IDS):
                self._call(self._index.delete, ids=part, namespace=self.namespace)
            if doomed:
                self._changed()
            return len(set(doomed))

    def clear(self) -> None:
        """Delete every chunk of this namespace."""
        with self._lock:
            self.warm_up()
            if self._total():
                self._call(self._index.delete, delete_all=True, namespace=self.namespace)
                self._changed()

    def _close(self) -> None:
        self._index.close()
        self._index = None

    # -- reading ------------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The ``k`` (at most 10,000) nearest chunks among those matching ``filters``."""
        node = parse_filter(filters)
        check_k(k)
        where = to_pinecone_filter(node)
        with self._lock:
            self.warm_up()
            query = query_vector(vector, self.dimension)
            if where is False:
                return []
            response = self._call(
                self._index.query,
                vector=query.tolist(),
                top_k=min(k, MAX_TOP_K),
                filter=None if where is True else where,
                namespace=self.namespace,
                include_metadata=True,
            )
            return [Hit(_chunk(m.id, m.metadata), float(m.score)) for m in response.matches]

    def count(self, filters: Filters | None = None) -> int:
        node = parse_filter(filters)
        to_pinecone_filter(node)
        with self._lock:
            self.warm_up()
            if node is None:
                return self._total()
            return len(self._matching_ids(node))

    def _fetch(self, ids: Sequence[str], *, with_values: bool = True) -> list[Chunk]:
        response = self._call(self._index.fetch, ids=list(ids), namespace=self.namespace)
        chunks = []
        for vid, vector in response.vectors.items():
            chunk = _chunk(vid, vector.metadata)
            if with_values:
                chunk.embedding = np.asarray(vector.values, dtype=np.float32)
            chunks.append(chunk)
        return chunks

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, with embeddings, in the order asked (unknown ids are left out)."""
        with self._lock:
            self.warm_up()
            id_list = list(ids)
            found = {c.id: c for part in batched(id_list, _FETCH_IDS) for c in self._fetch(part)}
            return [found[i] for i in id_list if i in found]

    def _list_ids(self) -> Iterator[str]:
        token = None
        while True:
            page = self._call(
                self._index.list_paginated,
                limit=_LIST_PAGE,
                pagination_token=token,
                namespace=self.namespace,
            )
            yield from (item.id for item in page.vectors)
            token = page.pagination.next if page.pagination is not None else None
            if not token:
                return

    def ids(self) -> list[str]:
        """Every stored chunk id (Pinecone's list operation: serverless indexes)."""
        with self._lock:
            self.warm_up()
            return list(self._list_ids())

    def iter_chunks(self, batch_size: int = _FETCH_IDS) -> Iterator[Chunk]:
        """Every stored chunk (without embedding)."""
        for part in batched(self.ids(), min(batch_size, _FETCH_IDS)):
            with self._lock:
                yield from self._fetch(part, with_values=False)

    def records_location(self) -> str:
        """Where ``writer.store`` keeps ingestion records by default: a local SQLite file under
        ``.rag/records/`` named after the index host and namespace."""
        import re
        from pathlib import Path

        host = urlparse(self.host if "://" in self.host else f"https://{self.host}").hostname
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"pinecone-{host}-{self.namespace or 'default'}")
        return str(Path(".rag") / "records" / f"{name}.records.sqlite")


def _chunk(vector_id: str, metadata: dict[str, Any] | None) -> Chunk:
    metadata = metadata or {}
    return Chunk(
        id=vector_id,
        text=str(metadata.get("_text", "")),
        metadata=json.loads(metadata.get("_meta", "{}")),
    )


def _reason(err: BaseException) -> str:
    seen: BaseException = err
    while seen.__cause__ or seen.__context__:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    text = str(seen).strip() or type(seen).__name__
    return text.splitlines()[0]
