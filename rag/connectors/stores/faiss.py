"""``store.faiss``: an embedded FAISS index on local disk (the default store).

Layout of ``path`` (its files and their checks: :mod:`rag.connectors.stores._faiss_files`)::

    chunks.sqlite   ids, texts, metadata and vectors: the source of truth, written in transactions
    index.faiss     the FAISS index, a cache of the vectors, tagged with the SQLite generation
    index.json      which generation index.faiss reflects
    open-cache.npz  ids, packed texts and metadata columns as numpy arrays, saved on close, so
                    that opening reads no row from SQLite (see "Opening" below)

A write commits to SQLite first; the index file is saved on :meth:`FaissStore.flush`. If a
process dies between the two, the next open sees that the generations differ and rebuilds the
index from SQLite, so nothing committed is lost and nothing is duplicated.

Broken files are noticed on open: an ``index.faiss`` or ``index.json`` that is corrupt, stale
or of the wrong shape is rebuilt from SQLite (with a warning naming the file); a
``chunks.sqlite`` that is missing beside an index, corrupt, or another program's database
raises :class:`~rag.core.errors.StoreCorruptError` naming the file and the repair (the index
holds vectors only, so the chunks cannot be rebuilt from it). A full disk raises
:class:`~rag.core.errors.StoreFullError`; the failed write is rolled back and what was
committed before stays.

Filters (see :mod:`rag.core.filters`) are applied *before* ranking, so a filtered search
returns ``k`` hits whenever ``k`` chunks match. The metadata is held column by column in numpy
(:mod:`rag.connectors.stores._columns`), so a filter costs a few array operations per query, not
a Python call per chunk. The matching rows are then scored exactly when few (a matrix product
over their vectors), or handed to FAISS as an ``IDSelectorBitmap`` when many; an HNSW walk that
runs short of ``k`` matches is redone exactly.

The FAISS index is a plain ``IndexFlat``/``IndexHNSWFlat`` whose positions map to SQLite row ids
in a numpy array (an ``index.faiss`` written with an ``IndexIDMap2`` by an older version is read
as well).

Chunk ids, texts and metadata are also held in memory, packed as UTF-8 in one buffer
(:mod:`rag.connectors.stores._packed`: their bytes plus 28 a row), up to ``text_cache_mb``
(256 MB by default), so a search builds its hits without a SQLite read: next to an HNSW walk of
a fraction of a millisecond, ten random row reads from SQLite cost a fifth as much again. Rows
past the budget are read from SQLite in one ``SELECT ... WHERE rowid IN (...)`` per search.
Chunk ids map to row ids through :class:`~rag.connectors.stores._packed.IdIndex` (sorted 8-byte
hashes and the ids' UTF-8, about 60 bytes a 32-character id, where a dict of strings took 140).

Opening: reading every row from SQLite (decoding its metadata into the columns, packing its
text) costs seconds per hundred thousand chunks, so :meth:`FaissStore.close` saves what it built
to ``open-cache.npz``, and the next open loads the arrays instead. The cache is used only when
it matches ``chunks.sqlite`` exactly: the same generation and dimension, and the SQLite file and
its WAL with the inode, size and modification time they had when the cache was saved, the
cache being strictly newer than both (so an edit in the same clock tick still shows). Any other
change to the database, including an edit by another program that leaves the generation alone,
makes the open read SQLite (and the next close saves a fresh cache). A store whose connection
saw another connection commit while it was open does not save one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors.stores import _faiss_index
from rag.connectors.stores._base import StoreBase
from rag.connectors.stores._columns import MetadataColumns
from rag.connectors.stores._common import (
    apply_write_policy,
    check_choice,
    check_delete_arguments,
    check_k,
    query_vector,
)
from rag.connectors.stores._faiss_files import (
    FaissFiles,
    check_store_path,
    load_faiss,
    metadata_json,
)
from rag.connectors.stores._packed import IdIndex, PackedRows
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.filters import parse_filter
from rag.core.protocols import Filters, WritePolicy

INDEX_TYPES = ("flat", "hnsw", *_faiss_index.COMPRESSED_INDEX_TYPES)
METRICS = ("ip", "l2")
# Rebuild an HNSW index when this share of its vectors is deleted (HNSW cannot remove).
TOMBSTONE_REBUILD_RATIO = 0.25
# Filtered search (see FaissStore._exact_is_cheaper): score the matching rows exactly when they
# are at most this share of a flat index, or of an HNSW index (or this many rows with HNSW).
FLAT_EXACT_SHARE = 1 / 16
HNSW_EXACT_SHARE = 0.01
HNSW_EXACT_ROWS = 2_000
# Rebuild the metadata columns once this many rows were removed (and more than are live).
COLUMN_REBUILD_MIN = 10_000
# Filters whose position mask and FAISS selector are kept until the next write or delete.
FILTER_CACHE_SIZE = 8
# Rows read from SQLite per batch when the store opens without its open cache.
READ_BATCH = 10_000


class FaissStore(FaissFiles, StoreBase):
    """Chunks and vectors in FAISS (exact ``flat`` or approximate ``hnsw``), persisted to disk.

    Args:
        path: Directory to persist to; ``None`` keeps everything in memory.
        index: ``flat`` (exact), ``hnsw``, or a compressed index for large stores (see
            :mod:`rag.connectors.stores._faiss_index`): ``int8`` (scalar quantization, a
            quarter of the memory) or ``binary`` (sign bits searched by Hamming distance,
            the best candidates rescored exactly).
        metric: ``ip`` (inner product; cosine on normalized vectors) or ``l2``.
        dimension: Vector size; taken from the first write when ``None``.
        hnsw_m: HNSW graph degree.
        ef_construction: HNSW build-time breadth.
        ef_search: HNSW search-time breadth.
        device: ``cpu``, ``cuda`` or ``auto`` (a GPU flat index when faiss has GPU support).
        text_cache_mb: Memory, in MB, for chunk ids, texts and metadata held so that search
            reads no SQLite (their UTF-8 size plus 28 bytes a chunk); chunks past it are read
            from SQLite per search. ``0`` reads every hit from SQLite.
        rescore: With ``index: binary``, the vectors that rescore its candidates: ``int8``
            codes (default) or ``float`` (4 bytes a dimension more memory).
        rescore_factor: With ``index: binary``, candidates rescored per query:
            ``rescore_factor * max(k, 10)`` (500 for k=10 by default: recall@10 0.97 at a
            million synthetic chunks in ``benchmarks/scale.py``, 0.84 with 200).

    Example:
        >>> import numpy as np
        >>> from rag.core import Chunk
        >>> store = FaissStore()  # in memory
        >>> chunk = Chunk.create(text="hello", source_id="a.md", position=0)
        >>> chunk.embedding = np.array([1.0, 0.0], dtype="float32")
        >>> store.write([chunk])
        1
        >>> store.search(np.array([1.0, 0.0], dtype="float32"), k=1)[0].chunk.text
        'hello'
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        index: str = "flat",
        metric: str = "ip",
        dimension: int | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        device: str = "cpu",
        text_cache_mb: float = 256,
        rescore: str = "int8",
        rescore_factor: int = _faiss_index.DEFAULT_RESCORE_FACTOR,
    ) -> None:
        check_choice(index, INDEX_TYPES, "index")
        check_choice(metric, METRICS, "metric")
        _faiss_index.check_options(index, dimension, rescore, rescore_factor)
        if device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"device must be cpu, cuda or auto, got {device!r}", field="device")
        if text_cache_mb < 0:
            raise ConfigError(
                f"text_cache_mb must be 0 or more, got {text_cache_mb!r}", field="text_cache_mb"
            )
        if path is not None:
            check_store_path(path)
        self.path = path
        self.index = index
        self.metric = metric
        self.dimension = dimension
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.device = device
        self.text_cache_mb = text_cache_mb
        self.rescore = rescore
        self.rescore_factor = rescore_factor
        super().__init__()
        self._db: sqlite3.Connection | None = None
        self._index: Any = None
        # FAISS position -> row id. Rows are added in row id order and FAISS keeps the order
        # when it removes, so this array is always sorted (and rebuilt from SQLite on open).
        self._positions = np.zeros(0, dtype=np.int64)
        self._legacy_map: Any = None
        self._ids = IdIndex()  # chunk id -> row id of every live row
        self._data_version = 0  # SQLite's, when opened (see FaissFiles._save_open_cache)
        # Row id -> (chunk id, text, metadata JSON) of the rows held in memory, packed
        # (see text_cache_mb); the metadata's filterable form is self._columns.
        self._rows = PackedRows(0)
        self._columns = MetadataColumns()
        self._tombstones: set[int] = set()
        self._dirty = False
        # repr of a parsed filter -> (mask by FAISS position, matching rows, selector or None)
        self._filter_cache: dict[str, tuple[np.ndarray, int, Any]] = {}

    # -- opening -------------------------------------------------------------------------
    def _is_open(self) -> bool:
        return self._db is not None

    def _open(self) -> None:
        if self.path:
            check_store_path(self.path)
            try:
                Path(self.path).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ConfigError(
                    f"store.faiss cannot create its folder {self.path}: "
                    f"{err.strerror or err}; set path to a writable directory",
                    field="path",
                ) from None
            db_path = str(Path(self.path) / "chunks.sqlite")
            self._check_chunks_file(Path(db_path))
        else:
            db_path = ":memory:"
        sqlite_state = self._sqlite_state()  # before connecting creates a -wal file
        db = self._connect(db_path)
        self._db = db
        # changes when another connection commits: the open cache is then not written on close
        self._data_version = db.execute("PRAGMA data_version").fetchone()[0]
        stored_dim = self._info("dimension")
        if stored_dim is not None:
            if self.dimension is not None and int(stored_dim) != self.dimension:
                raise ConfigError(
                    f"store at {self.path} holds {stored_dim}-dimensional vectors but "
                    f"dimension={self.dimension} was configured; use a new path or the "
                    "matching embedder",
                    field="dimension",
                )
            self.dimension = int(stored_dim)
        if not self._load_open_cache(sqlite_state):
            self._read_rows(db, db_path)
        self._open_index()

    def _read_rows(self, db: sqlite3.Connection, db_path: str) -> None:
        """Ids, texts and metadata of every row from SQLite (when the open cache cannot), in
        batches of :data:`READ_BATCH` rows: one JSON parse, one column update and one packing
        per batch rather than per row."""
        self._rows = rows = PackedRows(self.text_cache_mb * 1_000_000)
        self._columns = columns = MetadataColumns()
        chunk_ids: list[str] = []
        rowids: list[int] = []
        cursor = db.execute("SELECT rowid, id, metadata, text FROM chunks ORDER BY rowid")
        while batch := cursor.fetchmany(READ_BATCH):
            batch_rowids, batch_ids, metadata_json, texts = zip(*batch, strict=True)
            try:
                metadata = self._metadata_batch(batch_rowids, metadata_json, db_path)
                rows.extend(batch_rowids, batch_ids, texts, metadata_json)
            except (TypeError, AttributeError):  # joining or encoding a value that is no str
                self._check_text_columns(batch, db_path)
                raise
            columns.extend(batch_rowids, metadata)
            chunk_ids.extend(batch_ids)
            rowids.extend(batch_rowids)
        self._ids = IdIndex()
        self._ids.add(chunk_ids, rowids)

    def _ensure_open(self) -> sqlite3.Connection:
        if self._db is None:
            self.warm_up()
        assert self._db is not None
        return self._db

    # -- writing -------------------------------------------------------------------------
    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = WritePolicy.UPSERT) -> int:
        """Store chunks (each must carry an embedding). Returns how many were written."""
        policy = WritePolicy.parse(policy)
        if not chunks:
            return 0
        with self._lock:
            db = self._ensure_open()
            vectors = self._check_vectors(chunks)
            unique: dict[str, int] = {}
            for position, chunk in enumerate(chunks):
                unique[chunk.id] = position  # last one wins inside a batch
            unique = apply_write_policy(unique, policy, lambda ids: set(self._ids.lookup(ids)))
            if not unique:
                return 0
            replaced = list(self._ids.lookup(unique).values())
            positions = list(unique.values())
            metadata_texts = [metadata_json(chunks[position]) for position in positions]
            self._begin(db)
            try:
                if replaced:
                    db.executemany("DELETE FROM chunks WHERE rowid=?", [(r,) for r in replaced])
                new_rowids = []
                for position, metadata_text in zip(positions, metadata_texts):
                    chunk = chunks[position]
                    cursor = db.execute(
                        "INSERT INTO chunks (id, text, metadata, vector) VALUES (?, ?, ?, ?)",
                        (chunk.id, chunk.text, metadata_text, vectors[position].tobytes()),
                    )
                    new_rowids.append(cursor.lastrowid)
                self._bump_generation(db)
                db.execute("COMMIT")
            except BaseException as err:
                self._rollback(db, err)
                raise
            self._remove_from_index(replaced)
            self._forget_rows(replaced)
            self._index.add(vectors[positions])
            self._positions = np.concatenate(
                [self._positions, np.array(new_rowids, dtype=np.int64)]
            )
            if self._compressed() and self._index.wants_training():
                self._rebuild_index()  # retrain on the grown store (until the sample is full)
            self._ids.add([chunks[position].id for position in positions], new_rowids)
            for rowid, position, metadata_text in zip(new_rowids, positions, metadata_texts):
                chunk = chunks[position]
                self._rows.add(rowid, chunk.id, chunk.text, metadata_text)
                self._columns.add(rowid, json.loads(metadata_text))
            self._dirty = True
            self._filter_cache.clear()
            return len(positions)

    def _check_vectors(self, chunks: Sequence[Chunk]) -> np.ndarray:
        missing = [c.id for c in chunks if c.embedding is None]
        if missing:
            raise ValueError(
                f"{len(missing)} chunk(s) have no embedding (first: {missing[0]}); run an "
                "embedder before writing to a vector store"
            )
        vectors = np.vstack(
            [np.asarray(c.embedding, dtype=np.float32).reshape(1, -1) for c in chunks]
        )
        if self.dimension is None:
            self.dimension = int(vectors.shape[1])
            assert self._db is not None
            self._db.execute(
                "INSERT OR REPLACE INTO info VALUES ('dimension', ?)", (str(self.dimension),)
            )
            self._index = self._new_index(self.dimension)
            self._positions = np.zeros(0, dtype=np.int64)
        if vectors.shape[1] != self.dimension:
            raise ValueError(
                f"chunk vectors have dimension {vectors.shape[1]} but the store holds "
                f"{self.dimension}-dimensional vectors; use the same embedder for every write"
            )
        return np.ascontiguousarray(vectors)

    def _remove_from_index(self, rowids: Sequence[int]) -> None:
        if not rowids or self._index is None:
            return
        if self.index == "hnsw":
            self._tombstones.update(rowids)
            if len(self._tombstones) > TOMBSTONE_REBUILD_RATIO * max(self._index.ntotal, 1):
                self._rebuild_index()
        else:
            where = np.searchsorted(self._positions, np.asarray(rowids, dtype=np.int64))
            where = where[where < len(self._positions)]
            where = where[np.isin(self._positions[where], rowids)]
            self._index.remove_ids(load_faiss().IDSelectorBatch(where.astype(np.int64)))
            self._positions = np.delete(self._positions, where)

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        """Delete by ids and/or filters (both given: chunks matching both). Returns the count."""
        check_delete_arguments(ids, filters)
        with self._lock:
            db = self._ensure_open()
            if ids is not None:
                rowids = set(self._ids.lookup(ids).values())
            else:
                rowids = set(self._ids.rowids().tolist())
            if filters is not None:
                matching = self._columns.rowids(parse_filter(filters)).tolist()
                rowids = rowids & set(matching) if ids is not None else set(matching)
            if not rowids:
                return 0
            self._begin(db)
            try:
                db.executemany("DELETE FROM chunks WHERE rowid=?", [(r,) for r in rowids])
                self._bump_generation(db)
                db.execute("COMMIT")
            except BaseException as err:
                self._rollback(db, err)
                raise
            self._remove_from_index(sorted(rowids))
            self._forget_rows(rowids)
            self._dirty = True
            self._filter_cache.clear()
            return len(rowids)

    def clear(self) -> None:
        """Delete every chunk."""
        with self._lock:
            if self._ensure_open() and len(self._ids):
                self.delete(ids=self._ids.ids())

    def flush(self) -> None:
        """Save the index file so the next open does not rebuild it."""
        with self._lock:
            if not self.path or not self._dirty or self._index is None:
                return
            self._save_index()
            self._dirty = False

    def _close(self) -> None:
        self._filter_cache.clear()
        self.flush()
        cache = self._open_cache_header()  # while SQLite is open: may the cache be written?
        self._db.close()
        self._db = None
        if cache is not None:
            self._save_open_cache(cache)
        self._index = None
        self._legacy_map = None
        self._positions = np.zeros(0, dtype=np.int64)
        self._ids = IdIndex()
        self._rows = PackedRows(0)
        self._columns = MetadataColumns()

    # -- reading -------------------------------------------------------------------------
    def _forget_rows(self, rowids: Iterable[int]) -> None:
        """Drop removed rows from memory (SQLite has already deleted them)."""
        rowids = list(rowids)
        self._ids.remove_rowids(rowids)
        for rowid in rowids:
            self._columns.remove(rowid)
        self._rows.remove(rowids)
        if self._columns.removed > max(len(self._columns), COLUMN_REBUILD_MIN):
            # Dead rows' list values linger in the columns; start afresh now and then.
            assert self._db is not None
            rows = self._db.execute("SELECT rowid, metadata FROM chunks ORDER BY rowid")
            self._columns = MetadataColumns.build((r, json.loads(m)) for r, m in rows)

    def _exact_is_cheaper(self, matching: int, k: int) -> bool:
        """Rank ``matching`` rows exactly (their stored vectors times the query) rather than
        through the index with a selector.

        A flat index with a selector still checks every vector, so a small match set is
        cheaper to score directly. HNSW with a selector walks the graph until it has met
        ``ef_search`` matching vectors, about ``ef_search / selectivity`` nodes, so for a
        selective filter exact scoring is both faster and exact; for a broad one the walk wins
        (``benchmarks/search_overhead.py`` shows both sides).
        """
        total = max(len(self._ids), 1)
        if matching <= 4 * k:
            return True
        if self.index == "hnsw":
            return matching <= HNSW_EXACT_SHARE * total or matching <= HNSW_EXACT_ROWS
        return matching <= FLAT_EXACT_SHARE * total

    def search(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The ``k`` nearest chunks among those matching ``filters`` (best first).

        The filter is evaluated over the metadata columns once (numpy, no Python per row); the
        matching rows are then either scored exactly (few of them) or handed to FAISS as an
        ``IDSelectorBitmap`` (many), whichever :meth:`_exact_is_cheaper` says.
        """
        node = parse_filter(filters)
        check_k(k)
        with self._lock:
            self._ensure_open()
            if self._index is None or not len(self._ids):
                return []
            query = query_vector(vector, self.dimension).reshape(1, -1)
            if node is None and not self._tombstones:
                return self._hits(*self._search_index(query, min(k, len(self._ids)), None))
            # HNSW tombstones: without a filter, the live rows are the filter.
            mask, matching, selector = self._filtered(node)
            if matching == 0:
                return []
            if self._exact_is_cheaper(matching, k):
                return self._hits(*self._exact_over(query[0], np.flatnonzero(mask), k))
            if selector is None:
                selector = load_faiss().IDSelectorBitmap(np.packbits(mask, bitorder="little"))
                self._filter_cache[repr(node)] = (mask, matching, selector)
            want = min(k, matching)
            rowids, distances = self._search_index(query, want, selector)
            if len(rowids) < want:  # an HNSW walk can run out before it meets k matches
                rowids, distances = self._exact_over(query[0], np.flatnonzero(mask), k)
            return self._hits(rowids, distances)

    def _filtered(self, node: Any) -> tuple[np.ndarray, int, Any]:
        """The rows ``node`` matches as a mask by FAISS position, their count, and their
        FAISS selector when one was built. A filter seen since the last write or delete is
        taken from memory: a tenant's or a source's filter repeats (at a million rows its
        mask, count and bitmap took 0.17 ms, against 4 ms for the binary index's search)."""
        key = repr(node)  # frozen dataclasses of strings, numbers, booleans and lists
        cached = self._filter_cache.get(key)
        if cached is not None:
            return cached
        mask = self._by_position(self._columns.mask(node))
        entry = (mask, int(np.count_nonzero(mask)), None)
        if len(self._filter_cache) >= FILTER_CACHE_SIZE:
            self._filter_cache.pop(next(iter(self._filter_cache)))
        self._filter_cache[key] = entry
        return entry

    def _by_position(self, by_rowid: np.ndarray) -> np.ndarray:
        """A mask over row ids re-indexed by FAISS position: a slice (no copy) while the
        positions are consecutive row ids, as in a store nothing was deleted from; a gather
        of a million entries costs milliseconds, more than the binary index's search."""
        positions = self._positions
        if not len(positions):
            return by_rowid[:0]
        first = int(positions[0])
        if int(positions[-1]) - first == len(positions) - 1:
            return by_rowid[first : first + len(positions)]
        return by_rowid[positions]

    def _search_index(
        self, query: np.ndarray, k: int, selector: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and FAISS distances of the ``k`` nearest (fewer if FAISS finds fewer)."""
        params = None
        if selector is not None:
            faiss = load_faiss()
            if self.index == "hnsw":
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.ef_search, k))
            else:
                params = faiss.SearchParameters(sel=selector)
        # one query on one OpenMP thread: spin-waiting threads cost more than the scan on a
        # busy machine (see _faiss_index.serial; flat 50k: p50 320 ms -> 98 ms, loaded 2 cores)
        with _faiss_index.serial(len(query)):
            distances, labels = self._index.search(query, k, params=params)
        found = labels[0] >= 0
        if found.all():
            return self._positions[labels[0]], distances[0]
        return self._positions[labels[0][found]], distances[0][found]

    def _vectors_at(self, positions: np.ndarray) -> np.ndarray:
        """Stored vectors at FAISS ``positions`` (a view of a CPU index's memory, no copy)."""
        if self._compressed():  # decoded int8 codes (or the float rescoring vectors)
            return self._index.reconstruct_batch(positions)
        faiss = load_faiss()
        storage = self._index.storage if self.index == "hnsw" else self._index
        # why: CPU flat storage exposes its memory (get_xb); a GPU index has no such method
        get_xb = getattr(faiss.downcast_index(storage), "get_xb", None)
        if get_xb is None:  # a GPU index
            return self._index.reconstruct_batch(positions.astype(np.int64))
        flat = faiss.rev_swig_ptr(get_xb(), self._index.ntotal * self._index.d)
        return flat.reshape(self._index.ntotal, self._index.d)[positions]

    def _exact_over(
        self, query: np.ndarray, positions: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and distances of the ``k`` best among FAISS ``positions``, scored exactly."""
        vectors = self._vectors_at(positions)
        # einsum, not ``@``: a matrix-vector product is memory-bound, and BLAS threads spinning
        # against other busy processes made ``@`` ~80x slower on a loaded 2-core machine.
        if self.metric == "ip":
            scores = np.einsum("ij,j->i", vectors, query)
        else:
            diff = vectors - query
            scores = np.einsum("ij,ij->i", diff, diff)
        ids = self._positions[positions]
        if len(scores) > k:
            top = np.argpartition(-scores if self.metric == "ip" else scores, k - 1)[:k]
            ids, scores = ids[top], scores[top]
        order = np.lexsort((ids, -scores if self.metric == "ip" else scores))[:k]
        return ids[order], scores[order]

    def _hits(self, rowids: np.ndarray, distances: np.ndarray) -> list[Hit]:
        """Hits for ``rowids`` (best first): id, text and metadata from memory, or else from
        SQLite (the metadata is decoded afresh, so callers cannot change the store's copy)."""
        if not len(rowids):
            return []
        wanted = rowids.tolist()
        rows = {rowid: self._rows.get(rowid) for rowid in wanted}
        missing = [rowid for rowid, row in rows.items() if row is None]
        if missing:
            assert self._db is not None
            cursor = self._db.execute(
                "SELECT rowid, id, text, metadata FROM chunks WHERE rowid IN "
                f"({','.join('?' * len(missing))})",
                missing,
            )
            rows.update((r, (cid, text, json.loads(meta))) for r, cid, text, meta in cursor)
        scores = (distances if self.metric == "ip" else -distances).tolist()
        hits = []
        for rowid, score in zip(wanted, scores):
            row = rows.get(rowid)
            if row is not None:
                hits.append(Hit(Chunk(id=row[0], text=row[1], metadata=row[2]), score))
        return hits

    def count(self, filters: Filters | None = None) -> int:
        node = parse_filter(filters)
        with self._lock:
            self._ensure_open()
            if node is None:
                return len(self._ids)
            return self._columns.count(node)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, with embeddings, in the order asked (unknown ids are left out)."""
        with self._lock:
            db = self._ensure_open()
            found: dict[str, Chunk] = {}
            id_list = list(ids)
            for start in range(0, len(id_list), 500):
                part = id_list[start : start + 500]
                for cid, text, metadata, blob in db.execute(
                    f"SELECT id, text, metadata, vector FROM chunks WHERE id IN "
                    f"({','.join('?' * len(part))})",
                    part,
                ):
                    found[cid] = Chunk(
                        id=cid,
                        text=text,
                        metadata=json.loads(metadata),
                        embedding=np.frombuffer(blob, dtype=np.float32).copy(),
                    )
            return [found[i] for i in id_list if i in found]

    def ids(self) -> list[str]:
        """Every stored chunk id."""
        with self._lock:
            self._ensure_open()
            return self._ids.ids()

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[Chunk]:
        """Every stored chunk (without embedding), in insertion order."""
        db = self._ensure_open()
        for cid, text, metadata in db.execute(
            "SELECT id, text, metadata FROM chunks ORDER BY rowid"
        ):
            yield Chunk(id=cid, text=text, metadata=json.loads(metadata))

    def fingerprint(self) -> str:
        """Changes whenever the stored content changes, in this process or another.

        The generation counter lives in SQLite and every write and delete bumps it, so readers
        that cache derived data (the BM25 index of ``retriever.bm25``) know when to rebuild.
        """
        with self._lock:
            self._ensure_open()
            return f"faiss:{self._generation()}"

    def stats(self) -> dict[str, Any]:
        """``{"chunks", "sources", "dimension"}``."""
        with self._lock:
            self._ensure_open()
            return {
                "chunks": len(self._ids),
                "sources": self._columns.distinct("source"),
                "dimension": self.dimension,
            }
