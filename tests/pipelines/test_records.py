"""The record store's write protocol, step by step, including interrupted sequences."""

from __future__ import annotations

import pytest

from rag.connectors.stores.faiss import FaissStore
from rag.core.errors import ConfigError
from rag.pipelines.records import DONE, PENDING, RecordStore, default_records_path, file_hash

pytestmark = pytest.mark.unit


@pytest.fixture
def records(tmp_path):
    store = RecordStore(tmp_path / "records.sqlite")
    yield store
    store.close()


def test_commit_makes_a_source_unchanged(records):
    records.begin("a.md", fingerprint="f1")
    records.add_chunk_ids("a.md", ["c1", "c2"])
    records.commit("a.md", content_hash="h1", fingerprint="f1")
    record = records.get("a.md")
    assert (record.status, record.chunk_ids, record.content_hash) == (DONE, ["c1", "c2"], "h1")
    assert records.is_unchanged("a.md", content_hash="h1", fingerprint="f1")
    assert not records.is_unchanged("a.md", content_hash="h2", fingerprint="f1")
    assert not records.is_unchanged("a.md", content_hash="h1", fingerprint="f2")


def test_new_version_marks_dropped_ids_stale(records):
    records.begin("a.md")
    records.add_chunk_ids("a.md", ["c1", "c2"])
    records.commit("a.md", content_hash="h1", fingerprint="f")
    records.begin("a.md", fingerprint="f")
    records.add_chunk_ids("a.md", ["c2", "c3"])
    assert records.stale_ids("a.md") == ["c1"]
    records.commit("a.md", content_hash="h2", fingerprint="f")
    assert records.get("a.md").chunk_ids == ["c2", "c3"]
    assert records.stale_ids("a.md") == []


def test_interrupted_source_stays_pending_and_keeps_every_id_it_may_have_written(records):
    records.begin("a.md")
    records.add_chunk_ids("a.md", ["c1", "c2"])
    records.commit("a.md", content_hash="h1", fingerprint="f")
    # version 2 crashes after recording (and maybe writing) c3
    records.begin("a.md", fingerprint="f")
    records.add_chunk_ids("a.md", ["c3"])
    reopened = RecordStore(records.path)
    assert reopened.get("a.md").status == PENDING
    assert not reopened.is_unchanged("a.md", content_hash="h1", fingerprint="f")
    # version 3 runs to the end: c1, c2 (version 1) and c3 (the crashed version 2) are stale
    reopened.begin("a.md", fingerprint="f")
    reopened.add_chunk_ids("a.md", ["c4"])
    assert reopened.stale_ids("a.md") == ["c1", "c2", "c3"]
    reopened.commit("a.md", content_hash="h3", fingerprint="f")
    assert reopened.get("a.md").chunk_ids == ["c4"]
    reopened.close()


def test_stored_vectors_are_reusable_only_under_the_same_pipeline(records):
    assert records.begin("a.md", fingerprint="f1") is False  # never committed
    records.commit("a.md", content_hash="h", fingerprint="f1")
    assert records.begin("a.md", fingerprint="f1") is True
    # a different pipeline starts and crashes: the store may now mix vectors of both
    assert records.begin("a.md", fingerprint="f2") is False
    assert records.begin("a.md", fingerprint="f1") is False
    records.commit("a.md", content_hash="h", fingerprint="f1")
    assert records.begin("a.md", fingerprint="f1") is True


def test_recorded_and_forget(records):
    records.begin("a.md")
    records.add_chunks([("a.md", "c1"), ("b.md", "c9")])
    assert records.recorded("a.md", ["c1", "c9", "zz"]) == {"c1"}
    records.forget("a.md")
    assert records.get("a.md") is None
    assert records.chunk_ids("b.md") == ["c9"]


def test_file_hash_changes_with_content(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one")
    first = file_hash(path)
    path.write_text("two")
    assert file_hash(path) != first


def test_default_records_path_sits_beside_the_store(tmp_path):
    assert default_records_path(FaissStore(path=str(tmp_path))) == str(tmp_path / "records.sqlite")
    assert default_records_path(FaissStore()) == ":memory:"
    assert default_records_path(FaissStore(), records_path="x.sqlite") == "x.sqlite"

    class LiteStore:
        uri = "data/milvus.db"
        collection = "docs"

    assert default_records_path(LiteStore()) == "data/milvus.db.docs.records.sqlite"


def test_a_store_without_a_local_location_names_the_fix():
    class ServerStore:
        uri = "http://milvus:19530"

    with pytest.raises(ConfigError, match="records_path"):
        default_records_path(ServerStore())
