"""Bounded work per document, one writer per store, broken records (issue 20)."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest

from rag.connectors.stores.faiss import FaissStore
from rag.core.errors import StoreCorruptError, StoreFullError, StoreLockedError
from rag.pipelines.ingest import run_ingest
from rag.pipelines.records import RecordStore, writer_lock
from tests.pipelines.ingest_helpers import make_pipeline
from tests.test_bad_input import HashEmbedder

pytestmark = pytest.mark.unit


class CountingEmbedder(HashEmbedder):
    """Records the size of every embedding call; can fail on the n-th call (a kill)."""

    def __init__(self, *, dimension: int = 16) -> None:
        super().__init__(dimension=dimension)
        self.calls: list[int] = []
        self.fail_on: int | None = None

    def embed_documents(self, texts: list[str]) -> Any:
        self.calls.append(len(texts))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise KeyboardInterrupt("killed")
        return super().embed_documents(texts)


def huge_document(root, words: int = 6000):
    root.mkdir(exist_ok=True)
    path = root / "huge.txt"
    path.write_text(" ".join(f"word{i % 997}" for i in range(words)))  # one line
    return path


def test_a_huge_one_line_document_is_embedded_in_windows(tmp_path):
    path = huge_document(tmp_path / "corpus")
    embedder = CountingEmbedder()
    store = FaissStore(path=str(tmp_path / "index"))
    report = run_ingest(make_pipeline(embedder, store), [path], window_size=32, progress=False)
    assert report.errors == []
    assert report.chunks_written == store.count() > 200
    assert max(embedder.calls) <= 32
    assert len(embedder.calls) == -(-report.chunks_written // 32)


def test_a_kill_mid_document_loses_at_most_one_window(tmp_path):
    path = huge_document(tmp_path / "corpus")
    store = FaissStore(path=str(tmp_path / "index"))
    embedder = CountingEmbedder()
    embedder.fail_on = 5  # killed while embedding the 5th window
    with pytest.raises(KeyboardInterrupt):
        run_ingest(make_pipeline(embedder, store), [path], window_size=32, progress=False)
    written = store.count()
    assert written == 4 * 32
    store.close()
    store = FaissStore(path=str(tmp_path / "index"))
    resumed = CountingEmbedder()
    report = run_ingest(make_pipeline(resumed, store), [path], window_size=32, progress=False)
    total = store.count()
    assert sum(resumed.calls) == total - written  # the 4 windows written are not embedded again
    assert report.chunks_skipped == written


def test_a_second_writer_waits_then_names_the_holder(tmp_path):
    path = huge_document(tmp_path / "corpus", words=50)
    store = FaissStore(path=str(tmp_path / "index"))
    records = str(tmp_path / "index" / "records.sqlite")
    with writer_lock(records), pytest.raises(StoreLockedError, match=r"process \d+ on .* \(since "):
        run_ingest(make_pipeline(HashEmbedder(), store), [path], progress=False, lock_timeout=0.2)
    released = threading.Event()

    def hold_briefly() -> None:
        with writer_lock(records):
            released.wait(0.5)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    time.sleep(0.1)
    report = run_ingest(make_pipeline(HashEmbedder(), store), [path], progress=False)
    holder.join()
    assert report.chunks_written >= 1  # it waited for the lock instead of failing


def test_corrupt_records_are_named(tmp_path):
    path = tmp_path / "records.sqlite"
    path.write_bytes(b"not sqlite" * 500)
    with pytest.raises(StoreCorruptError, match="records.sqlite") as err:
        RecordStore(path)
    assert "re-ingests every source" in err.value.repair


def test_a_full_disk_under_the_records_is_named(tmp_path, monkeypatch):
    records = RecordStore(tmp_path / "records.sqlite")
    records.begin("a.md", fingerprint="f")

    class FullDisk:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def execute(self, sql: str, *args: Any) -> Any:
            return self.db.execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

    records._db = FullDisk(records._db)  # type: ignore[assignment]
    with pytest.raises(StoreFullError, match="records.sqlite: the disk is full"):
        records.add_chunk_ids("a.md", ["c1"])
    records._db = records._db.db  # type: ignore[attr-defined]
    assert records.get("a.md").status == "pending"  # what was recorded before is kept
