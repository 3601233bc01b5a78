"""``store.faiss``: an embedded FAISS index on local disk (the default store).

Layout of ``path``::

    chunks.sqlite   ids, texts, metadata and vectors: the source of truth, written in transactions
    index.faiss     the FAISS index, a cache of the vectors, tagged with the SQLite generation
    index.json      which generation index.faiss reflects

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

Chunk ids and texts are also held in memory, up to ``text_cache_mb`` (about 256 MB by default),
so a search builds its hits without a SQLite read: next to an HNSW walk of a fraction of a
millisecond, ten random row reads from SQLite cost a fifth as much again. Rows past the budget
are read from SQLite in one ``SELECT ... WHERE rowid IN (...)`` per search.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.connectors.stores import _faiss_index
from rag.connectors.stores._columns import MetadataColumns
from rag.connectors.stores._common import apply_write_policy, check_choice, check_k, query_vector
from rag.core.component import Component
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError, StoreCorruptError, StoreFullError, StoreLockedError
from rag.core.filters import parse_filter
from rag.core.protocols import Filters, WritePolicy

logger = logging.getLogger("rag.stores.faiss")
INDEX_TYPES = ("flat", "hnsw", *_faiss_index.COMPRESSED_INDEX_TYPES)
CHUNK_COLUMNS = ("rowid", "id", "text", "metadata", "vector")
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
# What one cached (id, text) row costs besides the text: dict slot, tuple, str header.
CACHED_ROW_OVERHEAD = 160


def _is_flat(metadata: dict[str, Any]) -> bool:
    """Whether ``metadata`` holds only scalars, so ``dict(metadata)`` is a deep copy."""
    return not any(isinstance(value, (dict, list)) for value in metadata.values())


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars), faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        # Metadata is mostly flat scalars: copy the dict in C, then recurse only where needed.
        copy = dict(value)
        for key, item in copy.items():
            if isinstance(item, (dict, list)):
                copy[key] = _json_copy(item)
        return copy
    if isinstance(value, list):
        return [_json_copy(item) for item in value]
    return value


def _faiss() -> Any:
    return require("faiss", package="faiss-cpu", extra="embed", purpose="store.faiss")


def _check_store_path(path: str) -> None:
    """Refuse a ``path`` that is a file, or inside ``/proc``, ``/sys`` or ``/dev``."""
    resolved = Path(path).expanduser()
    with_parents = [resolved, *resolved.parents]
    special = next((p for p in with_parents if p.as_posix() in ("/proc", "/sys", "/dev")), None)
    if special is not None and Path(path).is_absolute():
        raise ConfigError(
            f"store.faiss path {path!r} is under {special}, a system folder that holds no "
            "files; set path to a directory such as .rag/index",
            field="path",
        )
    for candidate in with_parents:
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                raise ConfigError(
                    f"store.faiss path {path!r}: {candidate} is a file, not a directory; "
                    "store.faiss keeps a folder (chunks.sqlite, index.faiss); set path to a "
                    "directory",
                    field="path",
                )
            return


def _metadata_json(chunk: Chunk) -> str:
    """Chunk metadata as JSON; NaN and infinity are refused (no JSON answer could carry them)."""
    try:
        return json.dumps(chunk.metadata, ensure_ascii=False, allow_nan=False)
    except ValueError:
        from rag.core.limits import check_finite

        check_finite(chunk.metadata, where=f"chunk {chunk.id} metadata")
        raise


class FaissStore(Component):
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
        text_cache_mb: Memory, in MB, for chunk ids and texts held so that search reads no
            SQLite (about the texts' size plus 160 bytes a chunk); chunks past it are read from
            SQLite per search. ``0`` reads every hit from SQLite.
        rescore: With ``index: binary``, the vectors that rescore its candidates: ``int8``
            codes (default) or ``float`` (4 bytes a dimension more memory).
        rescore_factor: With ``index: binary``, candidates rescored per query:
            ``rescore_factor * max(k, 10)`` (200 for k=10 by default).

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

    outputs: dict[str, Any] = {}

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
        rescore_factor: int = 20,
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
            _check_store_path(path)
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
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._index: Any = None
        # FAISS position -> row id. Rows are added in row id order and FAISS keeps the order
        # when it removes, so this array is always sorted (and rebuilt from SQLite on open).
        self._positions = np.zeros(0, dtype=np.int64)
        self._legacy_map: Any = None
        self._rowid_of: dict[str, int] = {}
        self._metadata: dict[int, dict[str, Any]] = {}
        # Rows whose metadata nests dicts or lists: only these need a deep copy per hit.
        self._nested: set[int] = set()
        # Row id -> (chunk id, text) of the rows held in memory (see text_cache_mb).
        self._texts: dict[int, tuple[str, str]] = {}
        self._text_bytes = 0
        self._columns = MetadataColumns()
        self._tombstones: set[int] = set()
        self._dirty = False

    # -- opening -------------------------------------------------------------------------
    def warm_up(self) -> None:
        with self._lock:
            if self._db is not None:
                return
            if self.path:
                _check_store_path(self.path)
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
            db = self._connect(db_path)
            self._db = db
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
            for rowid, chunk_id, metadata, text in db.execute(
                "SELECT rowid, id, metadata, text FROM chunks"
            ):
                self._rowid_of[chunk_id] = rowid
                self._remember(rowid, chunk_id, text, self._metadata_of(rowid, metadata, db_path))
            self._columns = MetadataColumns.build(self._metadata.items())
            self._open_index()

    def _metadata_of(self, rowid: int, text: str, db_path: str) -> dict[str, Any]:
        try:
            metadata = json.loads(text)
        except ValueError as err:
            raise StoreCorruptError(
                db_path,
                f"row {rowid} holds metadata that is not JSON ({err})",
                "Restore the file from a backup, or move the folder aside and ingest again",
            ) from None
        if not isinstance(metadata, dict):
            raise StoreCorruptError(
                db_path,
                f"row {rowid} holds metadata that is not a JSON object",
                "Restore the file from a backup, or move the folder aside and ingest again",
            )
        return metadata

    def _check_chunks_file(self, db_file: Path) -> None:
        """A missing ``chunks.sqlite`` beside an index means the chunks were lost, not that
        the store is new: say so instead of starting empty (and skipping every source)."""
        index_file = db_file.with_name("index.faiss")
        if not db_file.exists() and index_file.exists():
            raise StoreCorruptError(
                str(db_file),
                "is missing, but index.faiss beside it holds vectors: the chunks' texts and "
                "metadata were deleted, and the index alone cannot restore them",
                f"Move {index_file.name} and index.json aside (or delete the folder "
                f"{self.path}) and run 'rag ingest' again: the ingestion records notice the "
                "missing chunks and ingest those sources again",
            )

    def _connect(self, db_path: str) -> sqlite3.Connection:
        """Open ``chunks.sqlite``, refusing a corrupt or foreign database by name."""
        try:
            db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS chunks (rowid INTEGER PRIMARY KEY AUTOINCREMENT, "
                "id TEXT UNIQUE NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL, "
                "vector BLOB NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT)")
            columns = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
            info = {row[1] for row in db.execute("PRAGMA table_info(info)")}
        except sqlite3.Error as err:
            raise self._sqlite_error(err, db_path) from None
        if not set(CHUNK_COLUMNS[1:]) <= columns or not {"key", "value"} <= info:
            db.close()
            raise StoreCorruptError(
                db_path,
                "is another program's SQLite database (its 'chunks' or 'info' table is not "
                "store.faiss's)",
                "Point path at an empty or ragline folder; this file is left untouched",
            )
        return db

    def _sqlite_error(self, err: sqlite3.Error, db_path: str | None = None) -> Exception:
        """The named error for a SQLite failure of ``chunks.sqlite``."""
        where = db_path or str(Path(self.path or ":memory:", "chunks.sqlite"))
        if "full" in str(err).lower():
            return StoreFullError(
                f"{where}: the disk is full ({err}). This write was rolled back; every chunk "
                "written before it is kept. Free space and run again (an ingest resumes)"
            )
        if isinstance(err, sqlite3.IntegrityError) or "locked" in str(err).lower():
            return StoreLockedError(
                f"{where}: another process wrote to this store at the same time ({err}); "
                "nothing was lost, this write was rolled back. One writer per store: let the "
                "other finish (rag ingest waits for it) and run again"
            )
        if isinstance(err, sqlite3.OperationalError):
            return StoreCorruptError(
                where,
                f"cannot be used ({err})",
                "Check the folder's permissions and the disk; if another program holds it, "
                "stop that program",
            )
        return StoreCorruptError(
            where,
            f"is corrupt or not a SQLite database ({err})",
            "Restore it from a backup, or move the folder aside and run 'rag ingest' again "
            "(index.faiss holds vectors only and cannot restore the chunks)",
        )

    def _info(self, key: str) -> str | None:
        assert self._db is not None
        row = self._db.execute("SELECT value FROM info WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _generation(self) -> int:
        return int(self._info("generation") or 0)

    def _new_index(self, dimension: int) -> Any:
        faiss = _faiss()
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        if self._compressed():
            return _faiss_index.new_index(
                self.index,
                dimension,
                self.metric,
                rescore=self.rescore,
                rescore_factor=self.rescore_factor,
            )
        if self.index == "hnsw":
            index = faiss.IndexHNSWFlat(dimension, self.hnsw_m, metric)
            index.hnsw.efConstruction = self.ef_construction
            index.hnsw.efSearch = self.ef_search
            return index
        if self._use_gpu():
            resources = faiss.StandardGpuResources()
            index = (
                faiss.GpuIndexFlatIP(resources, dimension)
                if self.metric == "ip"
                else faiss.GpuIndexFlatL2(resources, dimension)
            )
            index._gpu_resources = resources  # keep alive with the index
            return index
        # No IndexIDMap: row ids are translated in numpy (self._positions), which spares FAISS
        # a parallel region per query, a real cost on a busy CPU.
        return faiss.IndexFlatIP(dimension) if self.metric == "ip" else faiss.IndexFlatL2(dimension)

    def _use_gpu(self) -> bool:
        if self.device == "cpu":
            return False
        faiss = _faiss()
        has_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
        if self.device == "cuda" and not has_gpu:
            raise ConfigError(
                "device: cuda, but the installed faiss has no GPU support or sees no GPU; "
                "install 'ragline[gpu]' (faiss-gpu) on a CUDA machine or use device: cpu",
                field="device",
            )
        return has_gpu

    def _open_index(self) -> None:
        if self.dimension is None:
            return
        faiss = _faiss()
        index_file = Path(self.path or "", "index.faiss")
        meta_file = Path(self.path or "", "index.json")
        if self.path and index_file.exists() and meta_file.exists():
            try:
                meta = json.loads(meta_file.read_text())
                if not isinstance(meta, dict) or not isinstance(meta.get("tombstones", []), list):
                    raise ValueError(f"{meta_file} is not an index description")
                if meta.get("generation") == self._generation() and not self._use_gpu():
                    index = self._read_index(index_file)
                    tombstones = set(meta.get("tombstones", []))
                    positions = np.array(sorted({*self._rowid_of.values(), *tombstones}))
                    if isinstance(index, faiss.IndexIDMap2):  # written by ragline <= 0.1
                        positions = faiss.vector_to_array(index.id_map).astype(np.int64)
                        self._legacy_map = index  # it owns (and would free) the inner index
                        index = faiss.downcast_index(index.index)
                    if index.ntotal == len(positions):
                        self._index = index
                        self._positions = positions.astype(np.int64)
                        self._tombstones = tombstones
                        self._set_ef()
                        return
            except (OSError, ValueError, RuntimeError, TypeError) as err:
                logger.warning(
                    "%s or %s is unreadable (%s); rebuilding the index from chunks.sqlite",
                    index_file,
                    meta_file,
                    err,
                )
        self._rebuild_index()

    def _set_ef(self) -> None:
        if self.index == "hnsw" and self._index is not None:
            self._index.hnsw.efSearch = self.ef_search

    # -- compressed indexes (int8, binary): see rag.connectors.stores._faiss_index -----------
    def _compressed(self) -> bool:
        return self.index in _faiss_index.COMPRESSED_INDEX_TYPES

    def _read_index(self, path: Path) -> Any:
        """The saved index; ``ValueError`` when it is not of the configured kind."""
        if self._compressed():
            return _faiss_index.load_index(
                path, self.index, rescore=self.rescore, rescore_factor=self.rescore_factor
            )
        if _faiss_index.is_compressed_file(path):
            raise ValueError(f"{path} holds a compressed index, not {self.index}")
        return _faiss().read_index(str(path))

    def _write_index(self, index: Any, path: Path) -> None:
        if self._compressed():
            _faiss_index.save_index(index, path)
        else:
            _faiss().write_index(index, str(path))

    def _train(self, index: Any) -> None:
        """Train a compressed index on a sample of the stored vectors (before adding)."""
        if self._compressed():
            assert self._db is not None
            sample = _faiss_index.training_sample(self._db)
            if len(sample):
                index.train(sample)

    def _rebuild_index(self) -> None:
        assert self._db is not None and self.dimension is not None
        index = self._new_index(self.dimension)
        self._train(index)
        batch_ids, batch_vectors, positions = [], [], []
        for rowid, blob in self._db.execute("SELECT rowid, vector FROM chunks ORDER BY rowid"):
            batch_ids.append(rowid)
            batch_vectors.append(np.frombuffer(blob, dtype=np.float32))
            if len(batch_ids) >= 10_000:
                index.add(np.vstack(batch_vectors))
                positions.extend(batch_ids)
                batch_ids, batch_vectors = [], []
        if batch_ids:
            index.add(np.vstack(batch_vectors))
            positions.extend(batch_ids)
        self._index = index
        self._positions = np.array(positions, dtype=np.int64)
        self._tombstones = set()
        self._dirty = True

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
            unique = apply_write_policy(
                unique, policy, lambda ids: {i for i in ids if i in self._rowid_of}
            )
            if not unique:
                return 0
            replaced = [self._rowid_of[cid] for cid in unique if cid in self._rowid_of]
            positions = list(unique.values())
            self._begin(db)
            try:
                if replaced:
                    db.executemany("DELETE FROM chunks WHERE rowid=?", [(r,) for r in replaced])
                new_rowids = []
                for position in positions:
                    chunk = chunks[position]
                    cursor = db.execute(
                        "INSERT INTO chunks (id, text, metadata, vector) VALUES (?, ?, ?, ?)",
                        (
                            chunk.id,
                            chunk.text,
                            _metadata_json(chunk),
                            vectors[position].tobytes(),
                        ),
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
            for rowid, position in zip(new_rowids, positions):
                chunk = chunks[position]
                self._rowid_of[chunk.id] = rowid
                metadata = json.loads(json.dumps(chunk.metadata))
                self._remember(rowid, chunk.id, chunk.text, metadata)
                self._columns.add(rowid, metadata)
            self._dirty = True
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

    def _begin(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise self._sqlite_error(err) from None

    def _rollback(self, db: sqlite3.Connection, err: BaseException) -> None:
        """Roll the transaction back; a SQLite error becomes the store's named error."""
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
            db.execute("ROLLBACK")
        if isinstance(err, sqlite3.Error):
            raise self._sqlite_error(err) from None

    def _bump_generation(self, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT OR REPLACE INTO info VALUES ('generation', ?)", (str(self._generation() + 1),)
        )

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
            self._index.remove_ids(_faiss().IDSelectorBatch(where.astype(np.int64)))
            self._positions = np.delete(self._positions, where)

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        """Delete by ids and/or filters (both given: chunks matching both). Returns the count."""
        if ids is None and filters is None:
            raise ValueError("delete() needs ids or filters; to empty the store use clear()")
        with self._lock:
            db = self._ensure_open()
            if ids is not None:
                rowids = {self._rowid_of[i] for i in ids if i in self._rowid_of}
            else:
                rowids = set(self._metadata)
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
            removed = {cid for cid, r in self._rowid_of.items() if r in rowids}
            for cid in removed:
                del self._rowid_of[cid]
            self._forget_rows(rowids)
            self._dirty = True
            return len(rowids)

    def clear(self) -> None:
        """Delete every chunk."""
        with self._lock:
            if self._ensure_open() and self._rowid_of:
                self.delete(ids=list(self._rowid_of))

    def flush(self) -> None:
        """Save the index file so the next open does not rebuild it."""
        with self._lock:
            if not self.path or not self._dirty or self._index is None:
                return
            faiss = _faiss()
            index = self._index
            if not self._compressed() and self._use_gpu():
                index = faiss.index_gpu_to_cpu(self._index)
            tmp = Path(self.path, "index.faiss.tmp")
            meta_tmp = Path(self.path, "index.json.tmp")
            try:
                self._write_index(index, tmp)
                os.replace(tmp, Path(self.path, "index.faiss"))
                meta_tmp.write_text(
                    json.dumps(
                        {
                            "generation": self._generation(),
                            "tombstones": sorted(self._tombstones),
                        }
                    )
                )
                os.replace(meta_tmp, Path(self.path, "index.json"))
            except (OSError, RuntimeError) as err:
                for leftover in (tmp, meta_tmp):
                    leftover.unlink(missing_ok=True)
                full = getattr(err, "errno", None) == errno.ENOSPC or "No space" in str(err)
                if full:
                    raise StoreFullError(
                        f"{Path(self.path, 'index.faiss')}: the disk is full while saving the "
                        "index. Every chunk is committed in chunks.sqlite, and the next open "
                        "rebuilds the index from it; free space and run again"
                    ) from None
                raise StoreCorruptError(
                    str(Path(self.path, "index.faiss")),
                    f"cannot be saved ({err})",
                    "Check the folder's permissions; the chunks are safe in chunks.sqlite and "
                    "the next open rebuilds the index from it",
                ) from None
            self._dirty = False

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            self.flush()
            self._db.close()
            self._db = None
            self._index = None
            self._legacy_map = None
            self._positions = np.zeros(0, dtype=np.int64)
            self._rowid_of.clear()
            self._metadata.clear()
            self._nested.clear()
            self._texts.clear()
            self._text_bytes = 0
            self._columns = MetadataColumns()

    # -- reading -------------------------------------------------------------------------
    def _remember(self, rowid: int, chunk_id: str, text: str, metadata: dict[str, Any]) -> None:
        """Hold a row's metadata, and its id and text while ``text_cache_mb`` allows."""
        self._metadata[rowid] = metadata
        if not _is_flat(metadata):
            self._nested.add(rowid)
        size = sys.getsizeof(text) + CACHED_ROW_OVERHEAD
        if self._text_bytes + size <= self.text_cache_mb * 1_000_000:
            self._texts[rowid] = (chunk_id, text)
            self._text_bytes += size

    def _forget_rows(self, rowids: Iterable[int]) -> None:
        for rowid in rowids:
            metadata = self._metadata.pop(rowid, None)
            if metadata is not None:
                self._columns.remove(rowid, metadata)
            self._nested.discard(rowid)
            cached = self._texts.pop(rowid, None)
            if cached is not None:
                self._text_bytes -= sys.getsizeof(cached[1]) + CACHED_ROW_OVERHEAD
        if self._columns.removed > max(len(self._metadata), COLUMN_REBUILD_MIN):
            # Dead rows' list values linger in the columns; start afresh now and then.
            self._columns = MetadataColumns.build(self._metadata.items())

    def _exact_is_cheaper(self, matching: int, k: int) -> bool:
        """Rank ``matching`` rows exactly (their stored vectors times the query) rather than
        through the index with a selector.

        A flat index with a selector still checks every vector, so a small match set is
        cheaper to score directly. HNSW with a selector walks the graph until it has met
        ``ef_search`` matching vectors, about ``ef_search / selectivity`` nodes, so for a
        selective filter exact scoring is both faster and exact; for a broad one the walk wins
        (``benchmarks/search_overhead.py`` shows both sides).
        """
        total = max(len(self._rowid_of), 1)
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
            if self._index is None or not self._rowid_of:
                return []
            query = query_vector(vector, self.dimension).reshape(1, -1)
            if node is None and not self._tombstones:
                return self._hits(*self._search_index(query, min(k, len(self._rowid_of)), None))
            # HNSW tombstones: without a filter, the live rows are the filter.
            mask = self._columns.mask(node)[self._positions]  # indexed by FAISS position
            matching = int(np.count_nonzero(mask))
            if matching == 0:
                return []
            if self._exact_is_cheaper(matching, k):
                return self._hits(*self._exact_over(query[0], np.flatnonzero(mask), k))
            selector = _faiss().IDSelectorBitmap(np.packbits(mask, bitorder="little"))
            want = min(k, matching)
            rowids, distances = self._search_index(query, want, selector)
            if len(rowids) < want:  # an HNSW walk can run out before it meets k matches
                rowids, distances = self._exact_over(query[0], np.flatnonzero(mask), k)
            return self._hits(rowids, distances)

    def _search_index(
        self, query: np.ndarray, k: int, selector: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and FAISS distances of the ``k`` nearest (fewer if FAISS finds fewer)."""
        params = None
        if selector is not None:
            faiss = _faiss()
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
        faiss = _faiss()
        storage = self._index.storage if self.index == "hnsw" else self._index
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
        """Hits for ``rowids`` (best first): id and text from memory, or else from SQLite."""
        if not len(rowids):
            return []
        rows = self._texts
        wanted = rowids.tolist()
        missing = [rowid for rowid in wanted if rowid not in rows]
        if missing:
            assert self._db is not None
            cursor = self._db.execute(
                "SELECT rowid, id, text FROM chunks WHERE rowid IN "
                f"({','.join('?' * len(missing))})",
                missing,
            )
            rows = {rowid: rows[rowid] for rowid in wanted if rowid in rows}
            rows.update((rowid, (cid, text)) for rowid, cid, text in cursor.fetchall())
        scores = (distances if self.metric == "ip" else -distances).tolist()
        metadata, nested = self._metadata, self._nested
        hits = []
        for rowid, score in zip(wanted, scores):
            row = rows.get(rowid)
            if row is None:
                continue
            # The metadata held in memory, copied so callers cannot change the store's copy.
            meta = metadata[rowid]
            copy = _json_copy(meta) if rowid in nested else dict(meta)
            hits.append(Hit(Chunk(id=row[0], text=row[1], metadata=copy), score))
        return hits

    def count(self, filters: Filters | None = None) -> int:
        node = parse_filter(filters)
        with self._lock:
            self._ensure_open()
            if node is None:
                return len(self._rowid_of)
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
            return list(self._rowid_of)

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
            sources = {meta.get("source") for meta in self._metadata.values()}
            return {
                "chunks": len(self._rowid_of),
                "sources": len(sources),
                "dimension": self.dimension,
            }

    def run(self) -> dict[str, Any]:  # a store is shared by reference, not run as a node
        return {}
