"""``store.qdrant``: chunks in a Qdrant collection, embedded (``path=``) or on a server (``url=``).

``path`` runs Qdrant's local mode inside this process (a directory on disk, nothing to start);
``url`` talks to a Qdrant server; neither keeps the collection in memory. One point per chunk:
its id is a UUIDv5 of the chunk id, the vector is the chunk's embedding, and the payload is::

    chunk_id   the chunk id                 text      the chunk text
    metadata   the metadata as written      present   metadata keys holding a non-null value
    s_<key>    string values of <key>       n_<key>   numbers (booleans are never numbers)
    b_<key>    booleans

A key of lower-case letters, digits and underscores is used as is; any other key is hex-encoded
(``s__6c616e67``), so a key holding a dot, a bracket or a quote can never be read as a Qdrant
payload path. With values split by type, :func:`to_qdrant_filter` is exact for the grammar of
:mod:`rag.core.filters` using Qdrant's own ``Filter`` models (values travel as typed model fields,
never as text): ``$eq`` on a string is ``MatchValue`` on ``s_<key>`` (a list matches when an
element does), a number is a ``Range`` with equal bounds on ``n_<key>`` (``2020 == 2020.0``), and
``$ne``/``$nin``/``$not`` are ``must_not``. Qdrant has no range over strings, so ``$gt`` on a
string is resolved by reading that key's string values and matching the point ids
(``HasIdCondition``); it costs a scan of the points holding the key.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from rag.connectors._deps import require
from rag.connectors.stores._base import (
    ClearsByIds,
    CountedFingerprint,
    ScannedStats,
    StoreBase,
    WritesThrough,
)
from rag.connectors.stores._common import (
    apply_write_policy,
    batched,
    check_choice,
    check_delete_arguments,
    check_k,
    chunk_vectors,
    query_vector,
)
from rag.connectors.stores._qdrant_filters import (
    StringRange,
    chunk_payload,
    field_name,
    point_id,
    qdrant_models,
    to_qdrant_filter,
)
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError, StoreUnavailableError
from rag.core.filters import Field, parse_filter
from rag.core.protocols import Filters, WritePolicy
from rag.core.secrets import Secret

__all__ = [
    "BASE_FIELDS",
    "METRICS",
    "QdrantStore",
    "StringRange",
    "chunk_payload",
    "field_name",
    "point_id",
    "to_qdrant_filter",
]

METRICS = ("ip", "l2", "cosine")
BASE_FIELDS = ("chunk_id", "text", "metadata", "present")
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_BATCH = 256
_ORDER = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _qdrant() -> Any:
    return require("qdrant_client", package="qdrant-client", extra="qdrant", purpose="store.qdrant")


# -- the store ----------------------------------------------------------------------------------
class QdrantStore(WritesThrough, ClearsByIds, CountedFingerprint, ScannedStats, StoreBase):
    """Chunks in a Qdrant collection: local mode in a directory, or a Qdrant server.

    Args:
        path: Directory of Qdrant's local mode (embedded; one process at a time).
        url: A Qdrant server, such as ``http://localhost:6333``. Leave both ``path`` and
            ``url`` out for an in-memory collection that lives as long as the store object.
        collection: Collection name.
        api_key: Server API key as an environment reference such as ``${QDRANT_API_KEY}``.
        metric: ``ip`` (inner product; cosine on normalized vectors), ``l2`` or ``cosine``.
        dimension: Vector size; taken from the first write (or the existing collection).
        indexed_fields: Metadata keys to build payload indexes for on a server, with their
            type (``keyword``, ``float``, ``bool``), e.g. ``{"source": "keyword"}``; local
            mode has no payload indexes and ignores it.
        hnsw_ef: Search effort of the HNSW index on a server (raised to ``k`` per query).
        timeout: Seconds to wait for a server request.

    Example:
        >>> # Writes a local Qdrant collection; the store conformance suite covers it.
        >>> import numpy as np
        >>> from rag.core import Chunk
        >>> store = QdrantStore(path=".rag/qdrant", collection="docs")
        >>> chunk = Chunk.create(text="hello", source_id="a.md", position=0)
        >>> chunk.embedding = np.array([1.0, 0.0], dtype="float32")
        >>> store.write([chunk])  # doctest: +SKIP
        1
        >>> store.search(chunk.embedding, k=1, filters={"source": "a.md"})[0].chunk.text
        ... # doctest: +SKIP
        'hello'
    """

    fingerprint_name = "qdrant"

    def __init__(
        self,
        *,
        path: str | None = None,
        url: str | None = None,
        collection: str = "ragline",
        api_key: Secret | None = None,
        metric: str = "ip",
        dimension: int | None = None,
        indexed_fields: dict[str, str] | None = None,
        hnsw_ef: int = 128,
        timeout: int = 30,
    ) -> None:
        check_choice(metric, METRICS, "metric")
        if path and url:
            raise ConfigError(
                "give either path (local mode, a directory) or url (a Qdrant server), not both",
                field="url",
            )
        if url is not None:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ConfigError(
                    f"url {url!r} must be an http(s) address such as http://localhost:6333",
                    field="url",
                )
        if not _COLLECTION_NAME.fullmatch(collection):
            raise ConfigError(
                f"collection {collection!r} must be letters, digits, '_' or '-', e.g. 'docs'",
                field="collection",
            )
        for key, kind in (indexed_fields or {}).items():
            check_choice(kind, ("keyword", "float", "bool"), f"indexed_fields.{key}")
        self.path = path
        self.url = url
        self.collection = collection
        self.api_key = api_key
        self.metric = metric
        self.dimension = dimension
        self.indexed_fields = indexed_fields
        self.hnsw_ef = hnsw_ef
        self.timeout = timeout
        self._client: Any = None
        self._exists = False
        super().__init__()

    # -- connection ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        """Whether the collection lives in this process (local mode or in memory)."""
        return self.url is None

    @property
    def concurrent_writers(self) -> bool:
        """Whether several processes may write at once (a server, not local mode)."""
        return not self.is_local

    def _is_open(self) -> bool:
        return self._client is not None

    def _open(self) -> None:
        qdrant = _qdrant()
        if self.url is not None:
            api_key = self.api_key.resolve() if self.api_key is not None else None
            # check_compatibility=False: the version probe would warn about an unreachable
            # server before the first call reports it (as one clear error, see _call)
            client = qdrant.QdrantClient(
                url=self.url, api_key=api_key, timeout=self.timeout, check_compatibility=False
            )
        elif self.path:
            Path(self.path).expanduser().mkdir(parents=True, exist_ok=True)
            try:
                client = qdrant.QdrantClient(path=str(Path(self.path).expanduser()))
            except RuntimeError as err:  # portalocker: another client holds the directory
                raise ConfigError(
                    f"Qdrant local storage {self.path} is open in another process or store "
                    f"({err}); close it, or use a Qdrant server (url) for several processes",
                    field="path",
                ) from None
        else:
            client = qdrant.QdrantClient(location=":memory:")
        self._client = client
        try:
            self._look_for_collection()
        except Exception:
            self._client = None
            client.close()
            raise

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``method(...)`` of the client, turning "cannot connect" into one clear error."""
        try:
            return method(*args, **kwargs)
        except Exception as err:
            if self.url is not None and _is_connection_error(err):
                raise StoreUnavailableError("store.qdrant", self.url, "url", _reason(err)) from None
            raise

    def _tune_local_storage(self) -> None:
        """Let local mode's SQLite file commit without an fsync per point.

        qdrant-client's local mode commits every point on its own; with SQLite's defaults each
        commit waits for the disk (~25 ms: a 10,000-chunk write took minutes). Write-ahead
        logging with ``synchronous=NORMAL`` keeps every committed point across a killed process
        (only an operating-system crash can lose the last commits) at a small fraction of the
        cost. Reaches into the client's local storage: if that changes, writes are only slower.
        """
        # why: the local storage is qdrant-client's private detail; if its shape changes, the
        # probes below find nothing and writes are only slower
        local = getattr(self._client, "_client", None)  # qdrant-client-private, see above
        collection = getattr(local, "collections", {}).get(self.collection)  # local mode only
        connection = getattr(getattr(collection, "storage", None), "storage", None)  # private
        if isinstance(connection, sqlite3.Connection):
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")

    def _look_for_collection(self) -> None:
        self._exists = bool(self._call(self._client.collection_exists, self.collection))
        if not self._exists:
            return
        if self.path:
            self._tune_local_storage()
        info = self._call(self._client.get_collection, self.collection)
        vectors = info.config.params.vectors
        if not isinstance(vectors, qdrant_models().VectorParams):  # named vectors: a dict
            raise ConfigError(
                f"collection '{self.collection}' uses named vectors, so it was not created by "
                "ragline; use another collection name",
                field="collection",
            )
        size = vectors.size
        if self.dimension is not None and int(size) != self.dimension:
            raise ConfigError(
                f"collection '{self.collection}' holds {size}-dimensional vectors but "
                f"dimension={self.dimension} was configured; use another collection or the "
                "matching embedder",
                field="dimension",
            )
        stored_metric = {v: k for k, v in self._distances().items()}.get(vectors.distance)
        if stored_metric is not None and stored_metric != self.metric:
            raise ConfigError(
                f"collection '{self.collection}' was created with metric '{stored_metric}', "
                f"not '{self.metric}'; set metric: {stored_metric}",
                field="metric",
            )
        self.dimension = int(size)

    def _distances(self) -> dict[str, Any]:
        distance = qdrant_models().Distance
        return {"ip": distance.DOT, "l2": distance.EUCLID, "cosine": distance.COSINE}

    @property
    def client(self) -> Any:
        """The ``qdrant_client.QdrantClient`` (opened on first use)."""
        self.warm_up()
        return self._client

    def _create(self, dimension: int) -> None:
        models = qdrant_models()
        self._call(
            self._client.create_collection,
            self.collection,
            vectors_config=models.VectorParams(
                size=dimension, distance=self._distances()[self.metric]
            ),
        )
        if not self.is_local:
            schema = models.PayloadSchemaType
            fields = {"chunk_id": schema.KEYWORD, "present": schema.KEYWORD}
            kinds = {"keyword": ("s", schema.KEYWORD), "float": ("n", schema.FLOAT)}
            kinds["bool"] = ("b", schema.BOOL)
            for key, kind in (self.indexed_fields or {}).items():
                prefix, field_schema = kinds[kind]
                fields[field_name(prefix, key)] = field_schema
            for name, field_schema in fields.items():
                self._call(
                    self._client.create_payload_index,
                    self.collection,
                    field_name=name,
                    field_schema=field_schema,
                    wait=True,
                )
        if self.path:
            self._tune_local_storage()
        self.dimension = dimension
        self._exists = True

    # -- writing ------------------------------------------------------------------------------
    def _existing(self, chunk_ids: Sequence[str]) -> set[str]:
        if not self._exists or not chunk_ids:
            return set()
        found: set[str] = set()
        for part in batched(chunk_ids, _BATCH * 4):
            points = self._call(
                self._client.retrieve,
                self.collection,
                ids=[point_id(i) for i in part],
                with_payload=["chunk_id"],
                with_vectors=False,
            )
            found.update(p.payload["chunk_id"] for p in points)
        return found

    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = WritePolicy.UPSERT) -> int:
        """Store chunks (each must carry an embedding). Returns how many were written."""
        policy = WritePolicy.parse(policy)
        if not chunks:
            return 0
        models = qdrant_models()
        with self._lock:
            self.warm_up()
            if not self._exists and not self.is_local:
                self._look_for_collection()  # another process may have created it
            vectors = chunk_vectors(chunks, self.dimension, f"collection '{self.collection}'")
            unique = {c.id: (c, v) for c, v in zip(chunks, vectors)}  # the last one wins
            unique = apply_write_policy(unique, policy, self._existing)
            if not unique:
                return 0
            if not self._exists:
                self._create(vectors[0].shape[0])
            points = [
                models.PointStruct(id=point_id(c.id), vector=v.tolist(), payload=chunk_payload(c))
                for c, v in unique.values()
            ]
            for start in range(0, len(points), _BATCH):
                self._call(
                    self._client.upsert,
                    self.collection,
                    points=points[start : start + _BATCH],
                    wait=True,
                )
            self._changed()
            return len(points)

    def _filter(self, filters: Filters | None) -> Any:
        return to_qdrant_filter(parse_filter(filters), self._string_range)

    def _string_range(self, node: Field) -> list[str]:
        """Point ids whose string values of ``node.name`` compare true with ``node.value``."""
        models = qdrant_models()
        name = field_name("s", node.name)
        has_strings = models.Filter(
            must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=name))]
        )
        compare = _ORDER[node.op]
        return [
            str(point.id)
            for point in self._scroll(has_strings, payload=[name])
            if any(isinstance(v, str) and compare(v, node.value) for v in point.payload[name])
        ]

    def _scroll(self, where: Any, payload: Any, batch_size: int = 1000) -> Iterator[Any]:
        offset = None
        while True:
            points, offset = self._call(
                self._client.scroll,
                self.collection,
                scroll_filter=where,
                limit=batch_size,
                offset=offset,
                with_payload=payload,
                with_vectors=False,
            )
            yield from points
            if offset is None:
                return

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        """Delete by ids and/or filters (both given: chunks matching both). Returns the count."""
        check_delete_arguments(ids, filters)
        parse_filter(filters)  # a bad filter is refused before anything is read
        models = qdrant_models()
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            where = self._filter(filters)
            if where is False:
                return 0
            doomed: list[str] = []
            if ids is None:
                doomed = [str(p.id) for p in self._scroll(None if where is True else where, False)]
            else:
                for part in batched(ids, _BATCH * 4):
                    by_id = models.HasIdCondition(has_id=[point_id(i) for i in part])
                    condition = models.Filter(must=[by_id] + ([] if where is True else [where]))
                    doomed.extend(str(p.id) for p in self._scroll(condition, False))
            for part in batched(doomed, _BATCH * 4):
                self._call(
                    self._client.delete,
                    self.collection,
                    points_selector=models.PointIdsList(points=part),
                    wait=True,
                )
            if doomed:
                self._changed()
            return len(set(doomed))

    def _close(self) -> None:
        self._client.close()
        self._client = None
        self._exists = False

    # -- reading ------------------------------------------------------------------------------
    def _score(self, score: float) -> float:
        return -score if self.metric == "l2" else score  # Qdrant's EUCLID score is a distance

    def search(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The ``k`` nearest chunks among those matching ``filters`` (best first)."""
        parse_filter(filters)
        check_k(k)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return []
            query = query_vector(vector, self.dimension)
            where = self._filter(filters)
            if where is False:
                return []
            where = None if where is True else where
            hits = self._query(query, k, where, exact=False)
            if where is not None and len(hits) < k and not self.is_local:
                # an approximate index can stop short of a selective filter's matches
                matching = self._count(where)
                if matching > len(hits):
                    hits = self._query(query, k, where, exact=True)
            return hits

    def _query(self, query: np.ndarray, k: int, where: Any, exact: bool) -> list[Hit]:
        models = qdrant_models()
        result = self._call(
            self._client.query_points,
            self.collection,
            query=query.tolist(),
            query_filter=where,
            limit=k,
            with_payload=["chunk_id", "text", "metadata"],
            search_params=None
            if self.is_local
            else models.SearchParams(hnsw_ef=max(self.hnsw_ef, k), exact=exact),
        )
        return [
            Hit(
                Chunk(
                    id=p.payload["chunk_id"], text=p.payload["text"], metadata=p.payload["metadata"]
                ),
                self._score(float(p.score)),
            )
            for p in result.points
        ]

    def _count(self, where: Any) -> int:
        return int(
            self._call(self._client.count, self.collection, count_filter=where, exact=True).count
        )

    def count(self, filters: Filters | None = None) -> int:
        parse_filter(filters)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            where = self._filter(filters)
            if where is False:
                return 0
            return self._count(None if where is True else where)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, with embeddings, in the order asked (unknown ids are left out)."""
        with self._lock:
            self.warm_up()
            if not self._exists or not ids:
                return []
            id_list = list(ids)
            found: dict[str, Chunk] = {}
            for part in batched(id_list, _BATCH * 4):
                points = self._call(
                    self._client.retrieve,
                    self.collection,
                    ids=[point_id(i) for i in part],
                    with_payload=["chunk_id", "text", "metadata"],
                    with_vectors=True,
                )
                for p in points:
                    found[p.payload["chunk_id"]] = Chunk(
                        id=p.payload["chunk_id"],
                        text=p.payload["text"],
                        metadata=p.payload["metadata"],
                        embedding=np.asarray(p.vector, dtype=np.float32),
                    )
            return [found[i] for i in id_list if i in found]

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[Chunk]:
        """Every stored chunk (without embedding)."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return
        for point in self._scroll(None, ["chunk_id", "text", "metadata"], batch_size):
            payload = point.payload
            yield Chunk(id=payload["chunk_id"], text=payload["text"], metadata=payload["metadata"])

    def ids(self) -> list[str]:
        """Every stored chunk id."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return []
            return [p.payload["chunk_id"] for p in self._scroll(None, ["chunk_id"])]

    def records_location(self) -> str:
        """Where ``writer.store`` keeps ingestion records by default: beside the local-mode
        directory, under ``.rag/records/`` for a server, in memory for an in-memory store."""
        if self.path:
            return f"{Path(self.path).expanduser()}.{self.collection}.records.sqlite"
        if self.url is None:
            return ":memory:"
        parsed = urlparse(self.url)
        name = f"qdrant-{parsed.hostname}-{parsed.port or 6333}-{self.collection}"
        return str(
            Path(".rag") / "records" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.records.sqlite"
        )


def _is_connection_error(err: BaseException) -> bool:
    import httpx

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError)):
            return True
        name = type(seen).__name__
        if name in ("ResponseHandlingException",) and seen.__context__ is None:
            return "connect" in str(seen).lower() or "refused" in str(seen).lower()
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(err: BaseException) -> str:
    seen: BaseException | None = err
    while seen.__cause__ or seen.__context__:  # the innermost error says what happened
        seen = seen.__cause__ or seen.__context__
    text = str(seen).strip() or type(seen).__name__
    return text.splitlines()[0]
