"""Record keeping for incremental, crash-safe ingestion.

A :class:`RecordStore` is one small SQLite file per collection that remembers, for every source
file, the hash of the content last ingested, a fingerprint of the pipeline that ingested it, and
the ids of the chunks that source may have in the vector store. It never touches the vector store
itself: the ingestion runner talks to the store through the store protocol
(``write``/``delete(ids=)``/``get``), so record keeping works for every store.

The order of operations makes a crash (``SIGKILL`` at any instant) harmless::

    begin(source)                 status := pending; every recorded id becomes "old"
    add_chunk_ids(source, ids)    ids of the next batch recorded as "fresh" (committed) ...
    store.write(batch)            ... *before* the batch is written (upsert, idempotent)
    ...                           (more batches)
    store.delete(stale_ids())     "old" ids the new version no longer has
    commit(source, hash)          status := done, old rows dropped, in one transaction

At every instant the chunks a source has in the store are a subset of its recorded ids, and
once ``commit`` has run they are exactly its fresh ids. A source left ``pending`` by a crash is
ingested again on the next run (it is never "unchanged"), and because every id it may have
written is recorded, nothing is duplicated and no stale chunk survives.

Where the file lives: :func:`default_records_path` derives it from the store (beside a FAISS
directory or a milvus-lite file); stores without a local location need an explicit
``records_path`` on ``writer.store``.

Example:
    >>> records = RecordStore(":memory:")
    >>> records.begin("a.md", fingerprint="f")
    False
    >>> records.add_chunk_ids("a.md", ["c1", "c2"])
    >>> records.stale_ids("a.md")
    []
    >>> records.commit("a.md", content_hash="h1", fingerprint="f")
    >>> records.get("a.md").chunk_ids
    ['c1', 'c2']
    >>> records.is_unchanged("a.md", content_hash="h1", fingerprint="f")
    True
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError, StoreCorruptError, StoreFullError, StoreLockedError
from rag.core.protocols import OwnsRecordsLocation, StoredAtPath, StoredAtUri

PENDING = "pending"
DONE = "done"
_BATCH = 500  # SQLite host parameters per statement stay well under the limit
_ABSENT = object()

VECTOR_NEUTRAL_PARAMETERS: frozenset[str] = frozenset(
    {
        "device",
        "batch_size",
        "progress",
        "cache_dir",
        "fp16",
        "max_concurrency",
        "timeout",
        "connect_timeout",
        "max_retries",
        "backoff",
        "max_backoff",
        "api_key",
    }
)
"""Component parameters that change how (fast) vectors are computed, never which vectors.

Left out of every fingerprint that decides whether stored vectors are still valid (ingest's
pipeline fingerprint, eval's ingest key), so changing one of them re-ingests nothing:

- ``device``: CPU or GPU computes the same model (``auto`` picks one at run time);
- ``batch_size``: how many texts go through the model at once (rows are independent);
- ``progress``: whether a progress bar shows;
- ``cache_dir``: where the embedding cache lives, not what it holds;
- ``fp16``: half precision on a GPU, treated as the same model (differences are rounding);
- ``max_concurrency``, ``timeout``, ``connect_timeout``, ``max_retries``, ``backoff``,
  ``max_backoff``: how a remote embedder (``embedder.http``) reaches its service;
- ``api_key``: who calls the service, not which model answers.

Example:
    >>> "device" in VECTOR_NEUTRAL_PARAMETERS, "model" in VECTOR_NEUTRAL_PARAMETERS
    (True, False)
"""


@dataclass(frozen=True)
class SourceRecord:
    """What the record store knows about one source.

    Attributes:
        source: The source id (a file path, as the loader names it).
        content_hash: SHA-256 of the content last committed (``None`` before the first commit).
        fingerprint: Fingerprint of the pipeline that committed it.
        status: ``done`` (the store holds exactly ``chunk_ids``) or ``pending`` (interrupted).
        chunk_ids: Every chunk id the source may have in the store.
        written_at: UNIX time of the last commit (``None`` before the first).
    """

    source: str
    content_hash: str | None
    fingerprint: str | None
    status: str
    chunk_ids: list[str]
    written_at: float | None


def file_hash(path: str | Path, *, block_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in blocks (memory stays flat for large files).

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


class RecordStore:
    """Source id → content hash → chunk ids, in one SQLite file (WAL, one writer).

    Args:
        path: SQLite file (parent directories are created), or ``":memory:"``.

    Example:
        >>> records = RecordStore(":memory:")
        >>> records.sources()
        []
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ConfigError(
                    f"cannot create the folder of the ingestion records {self.path}: "
                    f"{err.strerror or err}; set records_path on writer.store to a writable place",
                    field="records_path",
                ) from None
        self._lock = threading.RLock()
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, content_hash TEXT, "
                "fingerprint TEXT, status TEXT NOT NULL, written_at REAL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS chunk_ids (source TEXT NOT NULL, chunk_id TEXT NOT "
                "NULL, fresh INTEGER NOT NULL, PRIMARY KEY (source, chunk_id)) WITHOUT ROWID"
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(sources)")}
        except sqlite3.Error as err:
            raise self._broken(err) from None
        if not {"source", "content_hash", "fingerprint", "status"} <= columns:
            raise StoreCorruptError(
                self.path,
                "is a SQLite file of something else (its 'sources' table is not ragline's)",
                "Point records_path at another file, or move this one aside; the next ingest "
                "then re-ingests every source (chunks are upserted, nothing is duplicated)",
            )
        self._db = db

    def _broken(self, err: sqlite3.Error) -> Exception:
        """The named error for a SQLite failure of the records file."""
        if "full" in str(err).lower():
            return StoreFullError(
                f"{self.path}: the disk is full ({err}); nothing recorded before is lost. Free "
                "space and run the ingest again: it resumes where it stopped"
            )
        if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError):
            return StoreCorruptError(
                self.path,
                f"the ingestion records are unreadable ({err})",
                "Delete this file: the next ingest re-ingests every source (chunks are "
                "upserted, nothing is duplicated)",
            )
        return StoreCorruptError(
            self.path,
            f"the ingestion records cannot be used ({err})",
            "Check the file's permissions and the disk, or delete it to start the records afresh",
        )

    # -- reading ---------------------------------------------------------------------------
    def get(self, source: str) -> SourceRecord | None:
        """The record of ``source``, or ``None`` when it was never ingested."""
        with self._lock:
            row = self._db.execute(
                "SELECT content_hash, fingerprint, status, written_at FROM sources WHERE source=?",
                (source,),
            ).fetchone()
            if row is None:
                return None
            return SourceRecord(source, row[0], row[1], row[2], self.chunk_ids(source), row[3])

    def chunk_ids(self, source: str) -> list[str]:
        """Every chunk id recorded for ``source`` (old and fresh), sorted."""
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT chunk_id FROM chunk_ids WHERE source=? ORDER BY chunk_id", (source,)
                )
            ]

    def chunk_count(self, source: str) -> int:
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM chunk_ids WHERE source=?", (source,)
                ).fetchone()[0]
            )

    def sources(self, *, status: str | None = None) -> list[str]:
        """Recorded source ids (optionally only those with ``status``), sorted."""
        with self._lock:
            if status is None:
                rows = self._db.execute("SELECT source FROM sources ORDER BY source")
            else:
                rows = self._db.execute(
                    "SELECT source FROM sources WHERE status=? ORDER BY source", (status,)
                )
            return [r[0] for r in rows]

    def is_unchanged(self, source: str, *, content_hash: str, fingerprint: str) -> bool:
        """Whether ``source`` was committed with this content and this pipeline."""
        with self._lock:
            row = self._db.execute(
                "SELECT content_hash, fingerprint, status FROM sources WHERE source=?", (source,)
            ).fetchone()
        return row is not None and tuple(row) == (content_hash, fingerprint, DONE)

    # -- the write protocol (see the module docstring for the order) -----------------------
    def begin(self, source: str, *, fingerprint: str | None = None) -> bool:
        """Mark ``source`` pending; every id recorded so far becomes a stale candidate.

        Args:
            source: The source about to be (re)written.
            fingerprint: The pipeline about to write it.

        Returns:
            Whether vectors already stored for this source's ids were made by the same
            pipeline (``fingerprint`` matches the recorded one), so they may be reused.
            A different pipeline clears the recorded fingerprint until the next commit, so a
            crash cannot leave a mix of vectors that a later run would take for reusable.
        """
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT fingerprint FROM sources WHERE source=?", (source,)
            ).fetchone()
            reusable = row is not None and fingerprint is not None and row[0] == fingerprint
            # A new source has no older vectors: it is recorded with this pipeline's
            # fingerprint at once, so the windows written before a crash are reused on resume.
            self._db.execute(
                "INSERT INTO sources (source, status, fingerprint) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET status=excluded.status, "
                "fingerprint=CASE WHEN ? THEN fingerprint ELSE NULL END",
                (source, PENDING, fingerprint, int(reusable)),
            )
            self._db.execute("UPDATE chunk_ids SET fresh=0 WHERE source=?", (source,))
        return reusable

    def add_chunk_ids(self, source: str, ids: Iterable[str]) -> None:
        """Record ids of the new version *before* they are written to the store."""
        self.add_chunks((source, cid) for cid in ids)

    def add_chunks(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record ``(source, chunk_id)`` pairs of several sources in one transaction."""
        rows = list(pairs)
        if not rows:
            return
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT INTO chunk_ids (source, chunk_id, fresh) VALUES (?, ?, 1) "
                "ON CONFLICT(source, chunk_id) DO UPDATE SET fresh=1",
                rows,
            )

    def recorded(self, source: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are recorded for ``source`` (old or fresh)."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(ids), _BATCH):
                part = list(ids[start : start + _BATCH])
                found.update(
                    r[0]
                    for r in self._db.execute(
                        f"SELECT chunk_id FROM chunk_ids WHERE source=? AND chunk_id IN "
                        f"({','.join('?' * len(part))})",
                        [source, *part],
                    )
                )
        return found

    def stale_ids(self, source: str) -> list[str]:
        """Recorded ids of ``source`` that the version being written does not have."""
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT chunk_id FROM chunk_ids WHERE source=? AND fresh=0 ORDER BY chunk_id",
                    (source,),
                )
            ]

    def commit(self, source: str, *, content_hash: str, fingerprint: str) -> None:
        """Finish ``source``: drop stale ids and mark it done (call after deleting them)."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM chunk_ids WHERE source=? AND fresh=0", (source,))
            self._db.execute(
                "UPDATE sources SET content_hash=?, fingerprint=?, status=?, written_at=? "
                "WHERE source=?",
                (content_hash, fingerprint, DONE, time.time(), source),
            )

    def forget(self, source: str) -> None:
        """Remove ``source`` entirely (call after deleting all its ids from the store)."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM chunk_ids WHERE source=?", (source,))
            self._db.execute("DELETE FROM sources WHERE source=?", (source,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> Any:
        return _Transaction(self)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); SQLite failures become
    named errors that give the records file (a full disk, a corrupt file)."""

    def __init__(self, records: RecordStore) -> None:
        self._records = records
        self._db = records._db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise self._records._broken(err) from None

    def __exit__(self, kind: Any, error: Any, _: Any) -> bool:
        if kind is None:
            try:
                self._db.execute("COMMIT")
                return False
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise self._records._broken(err) from None
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise self._records._broken(error) from None
        return False


@contextlib.contextmanager
def writer_lock(records_path: str | None, *, timeout: float = 10.0) -> Iterator[None]:
    """Hold the one-writer lock of a store (``<records_path>.lock``) for the block.

    Another process holding it is waited for up to ``timeout`` seconds; then
    :class:`StoreLockedError` names its pid, host and start time. The lock is an ``flock``, so
    the system drops it when the holder dies (a killed run never leaves the store locked).

    Example:
        >>> with writer_lock(None):  # an in-memory store: nothing to lock
        ...     pass
    """
    if not records_path or records_path == ":memory:":
        yield
        return
    import fcntl

    lock_path = Path(records_path + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")  # noqa: SIM115 (held for the whole block)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLockedError(_holder_message(lock_path, timeout)) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}))
        handle.flush()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
                handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _holder_message(lock_path: Path, timeout: float) -> str:
    try:
        holder = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict):
        holder = {}
    who = (
        f"process {holder.get('pid', '?')} on {holder.get('host', '?')} "
        f"(since {holder.get('since', '?')})"
    )
    return (
        f"another ingest writes to this store: {who} holds {lock_path}; waited {timeout:g} s. "
        "Let it finish (or stop it) and run again"
    )


def default_records_path(store: Any, *, records_path: str | None = None) -> str:
    """Where the records of ``store`` live.

    Order: an explicit ``records_path``; the store's own ``records_location()`` when it has
    one; ``<path>/records.sqlite`` beside a store with a local
    ``path`` directory (``store.faiss``); ``<file>.<collection>.records.sqlite`` beside a
    local database file ``uri`` (milvus-lite); ``":memory:"`` for an in-memory store.

    Raises:
        ConfigError: the store has no local location; names the parameter to set.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> default_records_path(FaissStore(path="/data/index"))
        '/data/index/records.sqlite'
    """
    if records_path:
        return records_path
    if isinstance(store, OwnsRecordsLocation):  # a store that names its own (store.pgvector, ...)
        location = store.records_location
        # A method in today's stores; the protocol also allows a property.
        return str(location() if callable(location) else location)
    # Where a local store keeps its data is configuration (its init parameters ``path``, ``uri``,
    # ``collection``), declared by StoredAtPath / StoredAtUri.
    path = store.path if isinstance(store, StoredAtPath) else _ABSENT
    uri = store.uri if isinstance(store, StoredAtUri) else None
    if isinstance(path, str) and path:
        return str(Path(path) / "records.sqlite")
    if isinstance(uri, str) and uri and "://" not in uri:
        return f"{uri}.{store.collection or 'default'}.records.sqlite"
    if path is None and uri is None:
        return ":memory:"  # an in-memory store: records live (and die) with it
    raise ConfigError(
        f"cannot tell where to keep ingestion records for {type(store).__name__} (no local "
        "path or file uri); set records_path on writer.store (a local SQLite file), or run "
        "with mode 'none'",
        field="records_path",
    )


def fingerprint(parts: Sequence[Any]) -> str:
    """A short stable hash of configuration data (JSON-serializable ``parts``)."""
    import json

    text = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
