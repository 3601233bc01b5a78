"""The files of ``store.faiss`` and their checks: ``chunks.sqlite`` (the source of truth), the
FAISS index built from it and saved as ``index.faiss`` + ``index.json``.

A write commits to SQLite first; the index file is saved on flush. If a process dies between the
two, the next open sees that the generations differ and rebuilds the index from SQLite. Broken
files are noticed on open: an index file that is corrupt, stale or of the wrong shape is rebuilt
(with a warning naming the file); a ``chunks.sqlite`` that is missing beside an index, corrupt, or
another program's database raises :class:`~rag.core.errors.StoreCorruptError` naming the file and
the repair. A full disk raises :class:`~rag.core.errors.StoreFullError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.connectors.stores import _faiss_index
from rag.connectors.stores._columns import MetadataColumns
from rag.connectors.stores._packed import IdIndex, PackedRows
from rag.core.documents import Chunk
from rag.core.errors import ConfigError, StoreCorruptError, StoreFullError, StoreLockedError

logger = logging.getLogger("rag.stores.faiss")
CHUNK_COLUMNS = ("rowid", "id", "text", "metadata", "vector")
OPEN_CACHE = "open-cache.npz"
OPEN_CACHE_VERSION = 1
_SQLITE_FILES = ("chunks.sqlite", "chunks.sqlite-wal")


def load_faiss() -> Any:
    """The ``faiss`` module, or an error saying what to install."""
    return require("faiss", package="faiss-cpu", extra="embed", purpose="store.faiss")


def check_store_path(path: str) -> None:
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


def metadata_json(chunk: Chunk) -> str:
    """Chunk metadata as JSON; NaN and infinity are refused (no JSON answer could carry them)."""
    try:
        return json.dumps(chunk.metadata, ensure_ascii=False, allow_nan=False)
    except ValueError:
        from rag.core.limits import check_finite

        check_finite(chunk.metadata, where=f"chunk {chunk.id} metadata")
        raise


class FaissFiles:
    """Opening, checking, saving and rebuilding the store's files: a mixin of
    :class:`~rag.connectors.stores.faiss.FaissStore`, which holds the attributes read here."""

    # set by FaissStore.__init__
    path: str | None
    index: str
    metric: str
    device: str
    dimension: int | None
    hnsw_m: int
    ef_construction: int
    ef_search: int
    rescore: str
    rescore_factor: int
    _db: sqlite3.Connection | None
    _index: Any
    _positions: np.ndarray
    _legacy_map: Any
    text_cache_mb: float
    _ids: IdIndex
    _rows: PackedRows
    _columns: MetadataColumns
    _data_version: int
    _tombstones: set[int]
    _dirty: bool

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

    def _metadata_batch(
        self, rowids: Sequence[int], texts: Sequence[str], db_path: str
    ) -> list[dict[str, Any]]:
        """The metadata of many rows, parsed as one JSON array; a row that is not a JSON
        object is found and named by :meth:`_metadata_of`."""
        try:
            parsed = json.loads("[" + ",".join(texts) + "]")
        except ValueError:
            parsed = None
        if parsed is None or len(parsed) != len(texts) or not all(type(m) is dict for m in parsed):
            # "1, 2" in one row parses as two values: only row by row tells which row is wrong
            return [self._metadata_of(r, t, db_path) for r, t in zip(rowids, texts, strict=True)]
        return parsed

    @staticmethod
    def _check_text_columns(rows: Sequence[tuple[Any, ...]], db_path: str) -> None:
        """Raise for the first ``(rowid, id, metadata, text)`` row whose id, metadata or text
        is not text (a value another program wrote there, e.g. as a BLOB).

        Raises:
            StoreCorruptError: naming the row and the column.
        """
        for row in rows:
            for column, value in zip(("id", "metadata", "text"), row[1:], strict=True):
                if not isinstance(value, str):
                    raise StoreCorruptError(
                        db_path,
                        f"row {row[0]} holds {column} that is not text "
                        f"(a {type(value).__name__} value)",
                        "Restore the file from a backup, or move the folder aside and ingest again",
                    )

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
        faiss = load_faiss()
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
        faiss = load_faiss()
        # why: only a GPU build of faiss has StandardGpuResources; a CPU build lacks the name
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
        faiss = load_faiss()
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
                    positions = self._ids.rowids()
                    if tombstones:  # not np.union1d: its hashed unique took 1.6 s at 1M rows
                        positions = np.sort(np.concatenate([positions, list(tombstones)]))
                        positions = positions[np.r_[True, positions[1:] != positions[:-1]]]
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

    # -- the open cache: what opening reads from SQLite, saved on close ----------------------
    def _sqlite_state(self) -> dict[str, list[int] | None]:
        """Inode, size and mtime (ns) of ``chunks.sqlite`` and its WAL (``None``: absent)."""
        state: dict[str, list[int] | None] = {}
        for name in _SQLITE_FILES:
            try:
                stat = Path(self.path or "", name).stat() if self.path else None
            except FileNotFoundError:
                stat = None
            state[name] = None if stat is None else [stat.st_ino, stat.st_size, stat.st_mtime_ns]
        return state

    def _open_cache_header(self) -> dict[str, Any] | None:
        """What the open cache will say of the state it holds, or ``None`` when it must not be
        written: no folder, or another connection committed since this one opened (its rows
        in memory may then miss that change). Called with SQLite still open."""
        if not self.path or self._db is None or self.dimension is None:
            return None
        if self._db.execute("PRAGMA data_version").fetchone()[0] != self._data_version:
            return None
        return self._open_cache_key()

    def _open_cache_key(self) -> dict[str, Any]:
        """What an open cache must record to stand for this store's rows (the SQLite files'
        state is added beside it)."""
        return {
            "version": OPEN_CACHE_VERSION,
            "generation": self._generation(),
            "dimension": self.dimension,
            "text_cache_bytes": self.text_cache_mb * 1_000_000,
        }

    def _save_open_cache(self, header: dict[str, Any]) -> None:
        """Save the ids, packed rows and metadata columns to ``open-cache.npz`` (after SQLite
        is closed, so its files no longer change), keyed on the SQLite files' inode, size and
        mtime: a later change of ``chunks.sqlite`` by anyone, generation bumped or not, makes
        the next open read SQLite instead (see :meth:`_load_open_cache`)."""
        assert self.path is not None
        header = {**header, "sqlite": self._sqlite_state()}
        target = Path(self.path, OPEN_CACHE)
        if header["sqlite"]["chunks.sqlite"] is None:
            return
        if target.exists() and self._read_open_cache_header(target) == header:
            return  # opened from this very cache, nothing changed
        described, column_arrays = self._columns.to_arrays()
        header["columns"] = described
        arrays = {
            **{f"ids.{name}": a for name, a in self._ids.to_arrays().items()},
            **{f"rows.{name}": a for name, a in self._rows.to_arrays().items()},
            **{f"columns.{name}": a for name, a in column_arrays.items()},
        }
        tmp = Path(self.path, OPEN_CACHE + ".tmp")
        try:
            with open(tmp, "wb") as out:
                np.savez(out, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
            del arrays  # views of the packed buffers: let them grow again
            os.replace(tmp, target)
            newest = max(s[2] for s in header["sqlite"].values() if s is not None)
            # A change of chunks.sqlite in the same clock tick as the mtime recorded here
            # would keep that mtime; the cache is only trusted while it is strictly newer than
            # the SQLite files, so a later change always shows (as git's "racily clean").
            for _ in range(10):
                if target.stat().st_mtime_ns > newest:
                    return
                time.sleep(0.005)
                os.utime(target)
            target.unlink()
        except (OSError, ValueError) as err:  # a cache only: opening reads SQLite instead
            tmp.unlink(missing_ok=True)
            logger.info("%s not saved (%s); the next open reads chunks.sqlite", target, err)

    @staticmethod
    def _read_open_cache_header(path: Path) -> dict[str, Any] | None:
        try:
            with np.load(path, allow_pickle=False) as saved:
                header = json.loads(saved["header"].tobytes())
        except (OSError, ValueError, KeyError, EOFError) as err:
            logger.info("%s unreadable (%s); reading chunks.sqlite", path, err)
            return None
        if not isinstance(header, dict):
            return None
        header.pop("columns", None)
        return header

    def _load_open_cache(self, sqlite_state: dict[str, list[int] | None]) -> bool:
        """Take ids, rows and metadata columns from ``open-cache.npz`` when it holds exactly
        what ``chunks.sqlite`` holds now: the same generation, dimension and text cache budget,
        the SQLite files as they were when it was saved (``sqlite_state``, taken before this
        connection opened) and the cache strictly newer than them. Otherwise ``False``, and
        the caller reads SQLite. Not seen: an edit that leaves the generation alone made in
        the instant between that stat and the connection opening (ragline's own writes bump
        the generation, which is checked after connecting)."""
        if not self.path or self.dimension is None:
            return False
        path = Path(self.path, OPEN_CACHE)
        if not path.exists():
            return False
        expected = {**self._open_cache_key(), "sqlite": sqlite_state}
        header = self._read_open_cache_header(path)
        if header != expected:
            return False
        newest = max(s[2] for s in sqlite_state.values() if s is not None)
        try:
            if path.stat().st_mtime_ns <= newest:
                return False
            with np.load(path, allow_pickle=False) as saved:
                described = json.loads(saved["header"].tobytes())["columns"]
                arrays = {name: saved[name] for name in saved.files if name != "header"}
            part = {
                prefix: {n.split(".", 1)[1]: a for n, a in arrays.items() if n.startswith(prefix)}
                for prefix in ("ids.", "rows.", "columns.")
            }
            ids = IdIndex.from_arrays(part["ids."])
            rows = PackedRows.from_arrays(part["rows."], expected["text_cache_bytes"])
            columns = MetadataColumns.from_arrays(described, part["columns."])
        except (OSError, ValueError, KeyError, TypeError, EOFError) as err:
            logger.warning("%s is unreadable (%s); reading chunks.sqlite", path, err)
            return False
        if len(ids) != len(columns):
            logger.warning("%s is inconsistent; reading chunks.sqlite", path)
            return False
        self._ids, self._rows, self._columns = ids, rows, columns
        return True

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
        return load_faiss().read_index(str(path))

    def _write_index(self, index: Any, path: Path) -> None:
        if self._compressed():
            _faiss_index.save_index(index, path)
        else:
            load_faiss().write_index(index, str(path))

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

    def _save_index(self) -> None:
        """Write ``index.faiss`` and ``index.json`` (each through a temporary file)."""
        faiss = load_faiss()
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
            full = (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "No space" in str(
                err
            )
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
