"""``MilvusStore``: the store itself (connection, writes, reads); see the package docstring."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.connectors.stores._base import ClearsByIds, CountedFingerprint, ScannedStats, StoreBase
from rag.connectors.stores._common import (
    apply_write_policy,
    batched,
    check_choice,
    check_delete_arguments,
    check_k,
    query_vector,
)
from rag.connectors.stores.milvus._filters import ids_expr, scalar_column, to_milvus_expr
from rag.connectors.stores.milvus._lite import (
    MilvusLiteRepair,
    lite_acquire,
    lite_release,
    pending_log,
)
from rag.connectors.stores.milvus._schema import (
    IDS_PER_QUERY,
    INDEX_TYPES,
    MAX_TEXT_LENGTH,
    METRICS,
    SCALAR_TYPES,
    TYPED_COLUMNS_SERVER,
    MilvusSchema,
    load_pymilvus,
)
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.filters import FilterNode, parse_filter
from rag.core.protocols import Filters, WritePolicy
from rag.core.secrets import Secret

logger = logging.getLogger("rag.connectors.stores.milvus")  # one name for the package

_BATCH_ROWS = 1_000  # rows per insert/upsert call: keeps gRPC messages well under their limit
_QUERY_LIMIT = 16_384  # Milvus' largest offset + limit of one query


# -- the store ----------------------------------------------------------------------------------
class MilvusStore(
    MilvusSchema, MilvusLiteRepair, ClearsByIds, CountedFingerprint, ScannedStats, StoreBase
):
    """Chunks in a Milvus collection: milvus-lite in a local file, or a Milvus server.

    Args:
        uri: A local file ending in ``.db`` (milvus-lite, embedded) or ``http(s)://host:19530``.
        collection: Collection name (letters, digits, underscores).
        dimension: Vector size; taken from the first write when ``None``.
        index: ``flat`` (exact), ``hnsw`` or ``ivf_flat``.
        metric: ``ip`` (inner product; cosine on normalized vectors), ``l2`` or ``cosine``.
        index_params: Build parameters of the index (``{"M": 16, "efConstruction": 200}`` for
            HNSW, ``{"nlist": 128}`` for IVF_FLAT); sensible defaults when ``None``.
        search_params: Search parameters (``{"ef": 128}``, ``{"nprobe": 16}``).
        token: Server token as an environment reference such as ``${MILVUS_TOKEN}``
            (``user:password`` or an API key); never stored in the pipeline file.
        max_text_length: Size of the ``text`` column in bytes (Milvus caps it at 65,535).
        exact_fallback_limit: With ``hnsw``/``ivf_flat``, a filtered search that returns fewer
            than ``k`` hits while more chunks match is redone exactly over the matching chunks
            when at most this many match (approximate indexes can miss selective filters).
        scalar_fields: Metadata keys to store in typed columns with a scalar index
            (``{"year": "int", "lang": "str"}``; types ``int``, ``float``, ``str``, ``bool``):
            filters on them read the column instead of parsing JSON. A chunk whose value does
            not fit the declared type is refused. Keys must be letters, digits, underscores.
        inferred_fields: How many more metadata keys that the first write shows with one
            scalar type get a typed column too (``0``: only ``scalar_fields``). If a later
            chunk holds another type, that key quietly goes back to the JSON view for good.

    Typed columns are fixed when the collection is created (milvus-lite cannot add fields);
    a collection made without them opens as before and filters through the JSON view.

    Example:
        >>> # Writes a milvus-lite file; the store conformance suite covers it.
        >>> import numpy as np
        >>> from rag.core import Chunk
        >>> store = MilvusStore(uri=".rag/milvus.db", collection="demo")  # milvus-lite
        >>> chunk = Chunk.create(text="hello", source_id="a.md", position=0)
        >>> chunk.embedding = np.array([1.0, 0.0], dtype="float32")
        >>> store.write([chunk])  # doctest: +SKIP
        1
        >>> hits = store.search(chunk.embedding, k=1, filters={"source": "a.md"})  # doctest: +SKIP
        >>> hits[0].chunk.text  # doctest: +SKIP
        'hello'
    """

    fingerprint_name = "milvus"

    def __init__(
        self,
        *,
        uri: str = "milvus.db",
        collection: str = "ragline",
        dimension: int | None = None,
        index: str = "flat",
        metric: str = "ip",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        token: Secret | None = None,
        max_text_length: int = MAX_TEXT_LENGTH,
        exact_fallback_limit: int = 20_000,
        scalar_fields: dict[str, str] | None = None,
        inferred_fields: int = 16,
    ) -> None:
        check_choice(index.lower(), INDEX_TYPES, "index")
        for key, scalar_type in (scalar_fields or {}).items():
            if scalar_column(str(key)) is None:
                raise ConfigError(
                    f"scalar_fields: {key!r} cannot name a Milvus field; use letters, digits "
                    "and underscores (other keys stay filterable through the JSON view)",
                    field=f"scalar_fields.{key}",
                )
            check_choice(scalar_type, SCALAR_TYPES, f"scalar_fields.{key}")
        if inferred_fields < 0:
            raise ConfigError(
                f"inferred_fields must be 0 or more, got {inferred_fields}", field="inferred_fields"
            )
        check_choice(metric.lower(), METRICS, "metric")
        if not collection or not collection.replace("_", "a").isalnum() or collection[0].isdigit():
            raise ConfigError(
                f"collection {collection!r} must be letters, digits and underscores, not "
                "starting with a digit (for example 'ragline_docs')",
                field="collection",
            )
        if "://" not in uri and not uri.endswith(".db"):
            raise ConfigError(
                f"uri {uri!r} is neither a server URI (http://host:19530) nor a milvus-lite file; "
                "a local file must end in '.db', e.g. '.rag/milvus.db'",
                field="uri",
            )
        self.uri = uri
        self.collection = collection
        self.dimension = dimension
        self.index = index
        self.metric = metric
        self.index_params = index_params
        self.search_params = search_params
        self.token = token
        self.max_text_length = max_text_length
        self.exact_fallback_limit = exact_fallback_limit
        self.scalar_fields = scalar_fields
        self.inferred_fields = inferred_fields
        # Metadata key -> scalar type of the collection's typed columns, and the keys that went
        # back to the JSON view (a later value did not fit); both read from the collection.
        self._typed: dict[str, str] = {}
        self._json_only: set[str] = set()
        self._client: Any = None
        self._exists = False
        self._unflushed = False
        super().__init__()
        # The server's version, read on connect (``None`` for milvus-lite or an unnamed one);
        # servers before TYPED_COLUMNS_SERVER run in the compatibility mode (module doc).
        self.server_version: tuple[int, int, int] | None = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        """Whether ``uri`` is a milvus-lite file (embedded) rather than a server."""
        return "://" not in self.uri

    @property
    def compatibility_mode(self) -> bool:
        """Whether the server predates :data:`TYPED_COLUMNS_SERVER` (no typed columns, no
        ``exists`` in filters); known once connected."""
        return self.server_version is not None and self.server_version < TYPED_COLUMNS_SERVER

    @property
    def concurrent_writers(self) -> bool:
        """Whether several processes may write at once (a server; not a milvus-lite file)."""
        return not self.is_local

    def _is_open(self) -> bool:
        return self._client is not None

    def _open(self) -> None:
        pymilvus = load_pymilvus()
        kwargs: dict[str, Any] = {}
        if self.is_local:
            require("milvus_lite", package="milvus-lite", extra="milvus", purpose="milvus-lite")
            Path(self.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
            uri = str(Path(self.uri).expanduser())
        else:
            uri = self.uri
            if self.token is not None:
                kwargs["token"] = self.token.resolve()
        # A write-ahead log left on disk means the last process did not close cleanly (or
        # another store in this process has unflushed writes): look for replayed rows then.
        replayed = self.is_local and pending_log(Path(uri), self.collection)
        self._client = pymilvus.MilvusClient(uri=uri, **kwargs)
        if self.is_local:
            lite_acquire(uri)
        try:
            if not self.is_local:
                self._check_server_version()
            self._look_for_collection()
            if self._exists and replayed:
                self._repair_replayed_rows()
        except Exception:
            self.close()  # the next call starts afresh, and the file's lock is let go
            raise

    def _forget_cached_schema(self) -> None:
        """Drop pymilvus's cached schema of this collection.

        pymilvus caches schemas per server address and collection name, and ``create_collection``
        does not refresh that cache. milvus-lite servers listen on random ports, so a server
        started later can get the address of one that is gone; a collection of the same name
        but other typed columns would then be written with the old schema ("record has fields
        ... not in schema").
        """
        # why: pymilvus keeps this cache private; a version without it needs no invalidation
        connection = getattr(self._client, "_get_connection", lambda: None)()  # pymilvus-private
        invalidate = getattr(connection, "_invalidate_schema", None)  # pymilvus-private
        if invalidate is not None:
            invalidate(self.collection)

    def _look_for_collection(self) -> None:
        """Open the collection if it exists (on a server, another process may have made it)."""
        self._forget_cached_schema()
        self._exists = bool(self._client.has_collection(self.collection))
        if self._exists:
            self._check_schema()
            try:
                self._client.load_collection(self.collection)
            except load_pymilvus().MilvusException as err:
                if not self.is_local:
                    raise
                self._rebuild_indexes(err)

    def _expr(self, node: FilterNode | None) -> str:
        return to_milvus_expr(node, self._filter_types(), exists=not self.compatibility_mode)

    @property
    def client(self) -> Any:
        """The ``pymilvus.MilvusClient`` (connected on first use)."""
        if self._client is None:
            self.warm_up()
        return self._client

    def _default_index_params(self) -> dict[str, Any]:
        kind = self.index.lower()
        if kind == "hnsw":
            return {"M": 16, "efConstruction": 200}
        if kind == "ivf_flat":
            return {"nlist": 128}
        return {}

    def _search_params(self, k: int) -> dict[str, Any]:
        params = dict(self.search_params or {})
        kind = self.index.lower()
        if kind == "hnsw":
            params["ef"] = max(int(params.get("ef", 128)), k)  # Milvus wants ef >= k
        elif kind == "ivf_flat":
            params.setdefault("nprobe", 16)
        return {"metric_type": METRICS[self.metric.lower()], "params": params}

    # -- writing ------------------------------------------------------------------------------
    def _existing(self, ids: Sequence[str]) -> set[str]:
        if not self._exists or not ids:
            return set()
        self._flush_if_needed()
        found: set[str] = set()
        for part in batched(ids, IDS_PER_QUERY):
            rows = self.client.query(
                self.collection, filter=ids_expr(part), output_fields=["id"], limit=len(part)
            )
            found.update(row["id"] for row in rows)
        return found

    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = WritePolicy.UPSERT) -> int:
        """Store chunks (each must carry an embedding). Returns how many were written."""
        policy = WritePolicy.parse(policy)
        if not chunks:
            return 0
        with self._lock:
            self.warm_up()
            if not self._exists and not self.is_local:
                self._look_for_collection()
            dimensions = {np.asarray(c.embedding).size for c in chunks if c.embedding is not None}
            if self.dimension is None and not self._exists:
                if len(dimensions) > 1:
                    raise ValueError(
                        f"chunk vectors have different dimensions {sorted(dimensions)}; use the "
                        "same embedder for every chunk"
                    )
                self.dimension = dimensions.pop() if dimensions else None
            typed = self._typed if self._exists else self._plan_typed_fields(chunks)
            rows, misfits = self._rows(chunks, typed)
            unique = {row["id"]: row for row in rows}  # the last one wins inside a batch
            unique = apply_write_policy(unique, policy, self._existing)
            if not unique:
                return 0
            if not self._exists:
                self._create_collection(int(self.dimension or 0), typed)
            if misfits:
                self._back_to_json(misfits)
            batch = list(unique.values())
            for start in range(0, len(batch), _BATCH_ROWS):
                self.client.upsert(self.collection, batch[start : start + _BATCH_ROWS])
            self._changed()
            return len(batch)

    def _changed(self) -> None:
        self._unflushed = True
        super()._changed()

    def _flush_if_needed(self) -> None:
        # milvus-lite answers ~10x faster from flushed segments, so flush once after writes,
        # before the next read, rather than after every batch of an ingestion run.
        if self._unflushed and self.is_local:
            self.client.flush(self.collection)
        self._unflushed = False

    def flush(self) -> None:
        """Seal what was written so searches read indexed segments (and the file is current)."""
        with self._lock:
            if self._client is not None and self._exists:
                self.client.flush(self.collection)
            self._unflushed = False

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        """Delete by ids and/or filters (both given: chunks matching both). Returns the count."""
        check_delete_arguments(ids, filters)
        node = parse_filter(filters)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            if ids is not None:
                doomed = self._existing(list(ids))
                if node is not None and doomed:
                    doomed = set(self._ids_matching(self._expr(node), sorted(doomed)))
            else:
                doomed = set(self._ids_matching(self._expr(node), None))
            if not doomed:
                return 0
            for part in batched(sorted(doomed), IDS_PER_QUERY):
                self.client.delete(self.collection, ids=part)
            self._changed()
            return len(doomed)

    def _ids_matching(self, expr: str, within: Sequence[str] | None) -> list[str]:
        self._flush_if_needed()
        if within is not None:
            found: list[str] = []
            for part in batched(within, IDS_PER_QUERY):
                full = f"({ids_expr(part)}) and ({expr})" if expr else ids_expr(part)
                rows = self.client.query(
                    self.collection, filter=full, output_fields=["id"], limit=len(part)
                )
                found.extend(row["id"] for row in rows)
            return found
        return [c.id for c in self._iterate(expr, ["id"])]

    def _close(self) -> None:
        """Flush and disconnect."""
        if self._unflushed and self._exists:
            self.client.flush(self.collection)
        self._client.close()
        self._client = None
        self._exists = False
        self._unflushed = False
        if self.is_local:
            lite_release(str(Path(self.uri).expanduser()))

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
            self._flush_if_needed()
            expr = self._expr(node)
            limit = min(k, _QUERY_LIMIT)
            results = self.client.search(
                self.collection,
                data=[query.tolist()],
                limit=limit,
                filter=expr,
                output_fields=["text", "metadata"],
                search_params=self._search_params(limit),
            )
            hits = []
            for result in results[0]:
                entity = result["entity"]
                chunk = Chunk(id=result["id"], text=entity["text"], metadata=entity["metadata"])
                hits.append(Hit(chunk, self._score(float(result["distance"]))))
            if expr and len(hits) < limit and self.index.lower() != "flat":
                # A graph or cluster index can miss matches of a selective filter (milvus-lite
                # has no brute-force fallback); rank the matching chunks exactly when few.
                matching = self.count(filters)
                if len(hits) < matching <= self.exact_fallback_limit:
                    hits = self._exact_search(query, expr, limit)
            return hits

    def _score(self, distance: float) -> float:
        return -distance if self.metric.lower() == "l2" else distance

    def _exact_search(self, query: np.ndarray, expr: str, k: int) -> list[Hit]:
        rows = []
        iterator = self.client.query_iterator(
            self.collection,
            batch_size=1000,
            filter=expr,
            output_fields=["id", "text", "metadata", "vector"],
        )
        try:
            while batch := iterator.next():
                rows.extend(batch)
        finally:
            iterator.close()
        if not rows:
            return []
        vectors = np.asarray([row["vector"] for row in rows], dtype=np.float32)
        metric = self.metric.lower()
        if metric == "l2":
            diff = vectors - query
            distances = np.einsum("ij,ij->i", diff, diff)  # no BLAS threads (see faiss.py)
            scores = -distances
        else:
            if metric == "cosine":
                norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
                vectors = vectors / np.where(norms == 0, 1.0, norms)[:, None]
            scores = np.einsum("ij,j->i", vectors, query)
            distances = scores
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            Hit(
                Chunk(id=rows[i]["id"], text=rows[i]["text"], metadata=rows[i]["metadata"]),
                self._score(float(distances[i])),
            )
            for i in order
        ]

    def count(self, filters: Filters | None = None) -> int:
        node = parse_filter(filters)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            self._flush_if_needed()
            rows = self.client.query(
                self.collection, filter=self._expr(node), output_fields=["count(*)"]
            )
            return int(rows[0]["count(*)"])

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, with embeddings, in the order asked (unknown ids are left out)."""
        with self._lock:
            self.warm_up()
            if not self._exists or not ids:
                return []
            self._flush_if_needed()
            id_list = list(ids)
            found: dict[str, Chunk] = {}
            for part in batched(id_list, IDS_PER_QUERY):
                rows = self.client.query(
                    self.collection,
                    filter=ids_expr(part),
                    output_fields=["id", "text", "metadata", "vector"],
                    limit=len(part),
                )
                for row in rows:
                    found[row["id"]] = Chunk(
                        id=row["id"],
                        text=row["text"],
                        metadata=row["metadata"],
                        embedding=np.asarray(row["vector"], dtype=np.float32),
                    )
            return [found[i] for i in id_list if i in found]

    def _iterate(self, expr: str, fields: list[str], batch_size: int = 1000) -> Iterator[Chunk]:
        iterator = self.client.query_iterator(
            self.collection, batch_size=batch_size, filter=expr, output_fields=fields
        )
        try:
            while True:
                rows = iterator.next()
                if not rows:
                    return
                for row in rows:
                    yield Chunk(
                        id=row["id"], text=row.get("text", ""), metadata=row.get("metadata", {})
                    )
        finally:
            iterator.close()

    def ids(self) -> list[str]:
        """Every stored chunk id."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return []
            self._flush_if_needed()
            return [c.id for c in self._iterate("", ["id"])]

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[Chunk]:
        """Every stored chunk (without embedding)."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return iter(())
            self._flush_if_needed()
            return self._iterate("", ["id", "text", "metadata"], batch_size)
