"""``store.weaviate``: chunks in a Weaviate collection (a server, v1.33 or newer).

One Weaviate object per chunk; its UUID is derived from the chunk id (UUIDv5), the vector is
self-provided (no Weaviate vectorizer), and the properties are typed:

==================  ===========  ==========================================================
property            type         holds
==================  ===========  ==========================================================
``chunk_id``        text         the chunk id (``field`` tokenization: exact)
``text``            text         the chunk text (``word`` tokenization: Weaviate BM25 works)
``metadata_json``   text         the metadata as written (not indexed), returned on reads
``present``         text[]       metadata keys holding a non-null value (for ``$exists``)
``mf_s_<key>``      text[]       string values of ``<key>`` (a list's elements, or one)
``mf_n_<key>``      number[]     numeric values (booleans are never numbers)
``mf_b_<key>``      boolean[]    boolean values
``mf_smin/smax_…``  text         the smallest / largest string value (for ``$gt`` …)
``mf_nmin/nmax_…``  number       the smallest / largest number
==================  ===========  ==========================================================

A key that is lower-case letters and digits is used as is; any other key is hex-encoded
(``mf_s__6c616e67``), so every metadata key maps to valid, distinct property names. Properties
are added to the collection the first time a key of that type is written.

This layout makes :func:`to_weaviate_filter` exact for the grammar of :mod:`rag.core.filters`:
``$eq`` on a list is ``ContainsAny`` on the typed array, ``$gt`` compares the typed maximum, a
key never written is a constant ``False`` folded away before the query is sent, and ``$ne``,
``$nin``, ``$not`` use Weaviate's ``Not`` operator (added in Weaviate 1.33). Values travel as
typed gRPC fields, never inside a query string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np

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
from rag.connectors.stores._weaviate_filters import (
    PROPERTY_TYPES,
    all_of,
    chunk_from_object,
    chunk_uuid,
    load_weaviate,
    object_properties,
    property_kind,
    property_name,
    to_weaviate_filter,
)
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError, RagError
from rag.core.filters import FilterNode, parse_filter
from rag.core.protocols import Filters, WritePolicy
from rag.core.secrets import Secret

__all__ = [
    "BASE_PROPERTIES",
    "INDEX_TYPES",
    "METRICS",
    "PROPERTY_TYPES",
    "WeaviateStore",
    "chunk_from_object",
    "chunk_uuid",
    "object_properties",
    "property_kind",
    "property_name",
    "to_weaviate_filter",
]

INDEX_TYPES = ("hnsw", "flat")
METRICS = ("ip", "l2", "cosine")
BASE_PROPERTIES = ("chunk_id", "text", "metadata_json", "present")
_COLLECTION_NAME = re.compile(r"[A-Z][_0-9A-Za-z]{0,230}")
_BATCH = 500


# -- the store ----------------------------------------------------------------------------------
class WeaviateStore(WritesThrough, ClearsByIds, CountedFingerprint, ScannedStats, StoreBase):
    """Chunks in a Weaviate collection on a server.

    Args:
        url: The server's HTTP address, such as ``http://localhost:8080``.
        grpc_port: The server's gRPC port (same host as ``url``).
        collection: Collection name; Weaviate wants a capital first letter (``Ragline``).
        api_key: API key as an environment reference such as ``${WEAVIATE_API_KEY}``.
        index: ``hnsw`` or ``flat``.
        metric: ``ip`` (inner product; cosine on normalized vectors), ``l2`` or ``cosine``.
        dimension: Vector size; taken from the first write when ``None``.

    Example:
        >>> # Needs a Weaviate server.
        >>> store = WeaviateStore(url="http://localhost:8080", collection="Docs")
        >>> store.count({"source": "a.md"})  # doctest: +SKIP
        3
    """

    fingerprint_name = "weaviate"

    #: Several processes may write at once: Weaviate is a server.
    concurrent_writers = True

    def __init__(
        self,
        *,
        url: str = "http://localhost:8080",
        grpc_port: int = 50051,
        collection: str = "Ragline",
        api_key: Secret | None = None,
        index: str = "hnsw",
        metric: str = "ip",
        dimension: int | None = None,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"url {url!r} must be an http(s) address such as http://localhost:8080",
                field="url",
            )
        if not _COLLECTION_NAME.fullmatch(collection):
            raise ConfigError(
                f"collection {collection!r} must start with a capital letter and hold only "
                f"letters, digits and underscores (Weaviate's rule), e.g. {collection.title()!r}",
                field="collection",
            )
        check_choice(index, INDEX_TYPES, "index")
        check_choice(metric, METRICS, "metric")
        self.url = url
        self.grpc_port = grpc_port
        self.collection = collection
        self.api_key = api_key
        self.index = index
        self.metric = metric
        self.dimension = dimension
        self._client: Any = None
        self._known: set[str] = set()
        self._exists = False
        super().__init__()

    # -- connection ---------------------------------------------------------------------------
    def _is_open(self) -> bool:
        return self._client is not None

    def _open(self) -> None:
        weaviate = load_weaviate()
        parsed = urlparse(self.url)
        secure = parsed.scheme == "https"
        auth = None
        if self.api_key is not None:
            auth = weaviate.classes.init.Auth.api_key(self.api_key.resolve())
        self._client = weaviate.connect_to_custom(
            http_host=parsed.hostname,
            http_port=parsed.port or (443 if secure else 80),
            http_secure=secure,
            grpc_host=parsed.hostname,
            grpc_port=self.grpc_port,
            grpc_secure=secure,
            auth_credentials=auth,
        )
        self._exists = bool(self._client.collections.exists(self.collection))
        if self._exists:
            self._read_schema()

    def _read_schema(self) -> None:
        config = self._handle().config.get()
        self._known = {p.name for p in config.properties}
        if not set(BASE_PROPERTIES) <= self._known:
            raise ConfigError(
                f"collection '{self.collection}' at {self.url} was not created by ragline; use "
                "another collection name",
                field="collection",
            )
        match = re.search(r"dimension=(\d+)", config.description or "")
        if match:
            stored = int(match.group(1))
            if self.dimension is not None and self.dimension != stored:
                raise ConfigError(
                    f"collection '{self.collection}' holds {stored}-dimensional vectors but "
                    f"dimension={self.dimension} was configured",
                    field="dimension",
                )
            self.dimension = stored

    def _handle(self) -> Any:
        if self._client is None:
            self.warm_up()
        return self._client.collections.get(self.collection)

    def _create(self, dimension: int) -> None:
        classes = load_weaviate().classes
        configure, data_type, tokenization = (
            classes.config.Configure,
            classes.config.DataType,
            classes.config.Tokenization,
        )
        distance = {
            "ip": classes.config.VectorDistances.DOT,
            "l2": classes.config.VectorDistances.L2_SQUARED,
            "cosine": classes.config.VectorDistances.COSINE,
        }[self.metric]
        index_config = (
            configure.VectorIndex.hnsw(distance_metric=distance)
            if self.index == "hnsw"
            else configure.VectorIndex.flat(distance_metric=distance)
        )
        prop = classes.config.Property
        self._client.collections.create(
            self.collection,
            description=f"ragline chunks; dimension={dimension}",
            vector_config=configure.Vectors.self_provided(vector_index_config=index_config),
            properties=[
                prop(name="chunk_id", data_type=data_type.TEXT, tokenization=tokenization.FIELD),
                prop(name="text", data_type=data_type.TEXT, tokenization=tokenization.WORD),
                prop(
                    name="metadata_json",
                    data_type=data_type.TEXT,
                    index_filterable=False,
                    index_searchable=False,
                ),
                prop(
                    name="present", data_type=data_type.TEXT_ARRAY, tokenization=tokenization.FIELD
                ),
            ],
        )
        self._known = set(BASE_PROPERTIES)
        self._exists = True
        self.dimension = dimension

    def _ensure_properties(self, names: set[str]) -> None:
        classes = load_weaviate().classes
        handle = self._handle()
        for name in sorted(names - self._known):
            kind = property_kind(name) or "s"
            data_type = classes.config.DataType[PROPERTY_TYPES[kind]]
            extra: dict[str, Any] = {}
            if kind.startswith("s"):
                extra["tokenization"] = classes.config.Tokenization.FIELD
                extra["index_searchable"] = False
            if kind in ("nmin", "nmax"):
                extra["index_range_filters"] = True
            handle.config.add_property(
                classes.config.Property(name=name, data_type=data_type, **extra)
            )
            self._known.add(name)

    # -- writing ------------------------------------------------------------------------------
    def _existing(self, chunk_ids: Sequence[str]) -> set[str]:
        if not self._exists or not chunk_ids:
            return set()
        filter_cls = load_weaviate().classes.query.Filter
        found: set[str] = set()
        for part in batched(chunk_ids, _BATCH):
            result = self._handle().query.fetch_objects(
                filters=filter_cls.by_id().contains_any([chunk_uuid(i) for i in part]),
                limit=len(part),
                return_properties=["chunk_id"],
            )
            found.update(o.properties["chunk_id"] for o in result.objects)
        return found

    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = WritePolicy.UPSERT) -> int:
        """Store chunks (each must carry an embedding). Returns how many were written."""
        policy = WritePolicy.parse(policy)
        if not chunks:
            return 0
        with self._lock:
            self.warm_up()
            vectors = chunk_vectors(chunks, self.dimension, "the collection")
            unique = {c.id: (c, v) for c, v in zip(chunks, vectors)}  # the last one wins
            unique = apply_write_policy(unique, policy, self._existing)
            if not unique:
                return 0
            if not self._exists:
                self._create(vectors[0].shape[0])
            data_object = load_weaviate().classes.data.DataObject
            objects = []
            needed: set[str] = set()
            for chunk, vector in unique.values():
                properties = object_properties(chunk)
                needed.update(properties)
                objects.append(
                    data_object(
                        properties=properties, uuid=chunk_uuid(chunk.id), vector=vector.tolist()
                    )
                )
            self._ensure_properties(needed)
            handle = self._handle()
            for start in range(0, len(objects), _BATCH):
                result = handle.data.insert_many(objects[start : start + _BATCH])
                if result.errors:
                    first = next(iter(result.errors.values()))
                    raise RagError(
                        f"Weaviate refused {len(result.errors)} object(s) of collection "
                        f"'{self.collection}': {first.message}"
                    )
            self._changed()
            return len(objects)

    def _where(self, node: FilterNode | None) -> Any:
        return to_weaviate_filter(node, self._known)

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        """Delete by ids and/or filters (both given: chunks matching both). Returns the count."""
        check_delete_arguments(ids, filters)
        node = parse_filter(filters)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            filter_cls = load_weaviate().classes.query.Filter
            where = self._where(node)
            if where is False:
                return 0
            deleted = 0
            batches: list[Any] = [True]
            if ids is not None:
                batches = [
                    filter_cls.by_id().contains_any([chunk_uuid(i) for i in part])
                    for part in batched(ids, _BATCH)
                ]
                if not batches:
                    return 0
            for by_id in batches:
                condition = all_of([by_id, where])
                if condition is True:  # everything: Weaviate needs some filter
                    condition = filter_cls.by_property("chunk_id").like("*")
                result = self._handle().data.delete_many(where=condition)
                deleted += int(result.successful)
            if deleted:
                self._changed()
            return deleted

    def _close(self) -> None:
        self._client.close()
        self._client = None
        self._exists = False

    # -- reading ------------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The ``k`` nearest chunks among those matching ``filters`` (best first)."""
        node = parse_filter(filters)
        check_k(k)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return []
            query = query_vector(vector, self.dimension)
            where = self._where(node)
            if where is False:
                return []
            result = self._handle().query.near_vector(
                near_vector=query.tolist(),
                limit=k,
                filters=None if where is True else where,
                return_metadata=load_weaviate().classes.query.MetadataQuery(distance=True),
                return_properties=["chunk_id", "text", "metadata_json"],
            )
        hits = []
        for obj in result.objects:
            distance = float(obj.metadata.distance)
            score = 1.0 - distance if self.metric == "cosine" else -distance
            hits.append(Hit(chunk_from_object(obj.properties), score))
        return hits

    def count(self, filters: Filters | None = None) -> int:
        node = parse_filter(filters)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            where = self._where(node)
            if where is False:
                return 0
            result = self._handle().aggregate.over_all(
                total_count=True, filters=None if where is True else where
            )
            return int(result.total_count or 0)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, with embeddings, in the order asked (unknown ids are left out)."""
        with self._lock:
            self.warm_up()
            if not self._exists or not ids:
                return []
            filter_cls = load_weaviate().classes.query.Filter
            id_list = list(ids)
            found: dict[str, Chunk] = {}
            for part in batched(id_list, _BATCH):
                result = self._handle().query.fetch_objects(
                    filters=filter_cls.by_id().contains_any([chunk_uuid(i) for i in part]),
                    limit=len(part),
                    include_vector=True,
                    return_properties=["chunk_id", "text", "metadata_json"],
                )
                for obj in result.objects:
                    vector = (
                        obj.vector.get("default") if isinstance(obj.vector, dict) else obj.vector
                    )
                    chunk = chunk_from_object(obj.properties, vector)
                    found[chunk.id] = chunk
            return [found[i] for i in id_list if i in found]

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[Chunk]:
        """Every stored chunk (without embedding)."""
        self.warm_up()
        if not self._exists:
            return
        for obj in self._handle().iterator(
            return_properties=["chunk_id", "text", "metadata_json"], cache_size=batch_size
        ):
            yield chunk_from_object(obj.properties)

    def ids(self) -> list[str]:
        """Every stored chunk id."""
        return [c.id for c in self.iter_chunks()]
