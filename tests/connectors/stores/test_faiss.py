"""store.faiss against the shared conformance suite, flat and HNSW."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.connectors.stores.faiss import FaissStore
from rag.core.filters import parse_filter
from rag.testing import StoreConformance
from tests.connectors.stores.abilities import FaissAbilities

pytestmark = pytest.mark.integration


class TestFaissFlat(StoreConformance, FaissAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        root = tmp_path_factory.mktemp("faiss-flat")
        return lambda name: FaissStore(path=str(root / name), index="flat")


class TestFaissHnsw(StoreConformance, FaissAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        root = tmp_path_factory.mktemp("faiss-hnsw")
        return lambda name: FaissStore(path=str(root / name), index="hnsw", hnsw_m=16)


class TestFaissInMemory(StoreConformance, FaissAbilities):
    persistent = False

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls):
        return lambda name: FaissStore()

    def test_ten_thousand_chunk_batch(self, store):
        pytest.skip("covered by TestFaissFlat; one 10k batch per store")


def _store_with(path, count, index="flat", **options):
    from rag.testing import random_chunks

    store = FaissStore(path=str(path), index=index, **options)
    chunks = random_chunks(count, metadata=lambda i: {"b10": i % 10, "tags": [i % 3, "t"]})
    store.write(chunks)
    return store, chunks


def _exact(chunks, query, keep):
    chosen = [c for c in chunks if keep(c.metadata)]
    return StoreConformance.exact_order(chosen, query)


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_selector_and_exact_paths_agree_with_exact_ranking(tmp_path, index):
    store, chunks = _store_with(tmp_path / index, 2_000, index=index, hnsw_m=16)
    query = StoreConformance().query()
    for filters, keep, k in [
        ({"b10": 3}, lambda m: m["b10"] == 3, 10),  # 10 %: the selector path on flat
        ({"b10": {"$ne": 3}}, lambda m: m["b10"] != 3, 10),  # 90 %: the selector on both
        ({"b10": 3, "tags": 1}, lambda m: m["b10"] == 3 and 1 in m["tags"], 5),  # few: exact
    ]:
        hits = store.search(query, k=k, filters=filters)
        expected = _exact(chunks, query, keep)[:k]
        if index == "flat":
            assert [h.id for h in hits] == expected
        else:  # HNSW with a selector is approximate: every hit matches, most are the best
            assert all(keep(h.chunk.metadata) for h in hits) and len(hits) == k
            assert len({h.id for h in hits} & set(expected)) >= k - 2
    store.close()


def test_hnsw_selector_walk_that_runs_short_falls_back_to_exact(tmp_path, monkeypatch):
    store, chunks = _store_with(tmp_path / "h", 600, index="hnsw", hnsw_m=16)
    query = StoreConformance().query()
    real = store._search_index
    monkeypatch.setattr(
        store, "_search_index", lambda q, k, sel: tuple(part[:1] for part in real(q, k, sel))
    )
    hits = store.search(query, k=10, filters={"b10": {"$ne": 0}})
    assert [h.id for h in hits] == _exact(chunks, query, lambda m: m["b10"] != 0)[:10]
    store.close()


def test_hnsw_deletions_are_masked_not_scanned(tmp_path):
    store, chunks = _store_with(tmp_path / "t", 400, index="hnsw", hnsw_m=16)
    store.delete(ids=[c.id for c in chunks[:20]])  # tombstones, below the rebuild ratio
    assert store._tombstones
    query = chunks[5].embedding
    hits = store.search(query, k=10)
    assert chunks[5].id not in {h.id for h in hits} and len(hits) == 10
    assert [h.id for h in hits][:3] == _exact(chunks[20:], query, lambda m: True)[:3]
    store.close()


def test_index_file_of_an_older_version_is_read(tmp_path):
    """An index.faiss written with an IndexIDMap2 (ragline 0.1) opens without a rebuild."""
    import json

    import faiss
    import numpy as np

    store, chunks = _store_with(tmp_path / "old", 50)
    store.delete(ids=[chunks[0].id])
    store.close()
    reopened = FaissStore(path=str(tmp_path / "old"))
    reopened.warm_up()
    rowids = reopened._positions.copy()
    vectors = reopened._vectors_at(np.arange(len(rowids)))
    reopened.close()
    legacy = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    legacy.add_with_ids(vectors, rowids)
    faiss.write_index(legacy, str(tmp_path / "old" / "index.faiss"))
    meta = json.loads((tmp_path / "old" / "index.json").read_text())
    store = FaissStore(path=str(tmp_path / "old"))
    store._rebuild_index = lambda: pytest.fail("the legacy index file was not used")
    store.warm_up()
    assert store.count() == 49 and meta["generation"] == store._generation()
    hits = store.search(chunks[7].embedding, k=1, filters={"b10": 7})
    assert hits[0].id == chunks[7].id
    store.close()


def test_hits_are_the_same_whatever_share_of_texts_is_in_memory(tmp_path):
    """text_cache_mb only decides where id and text are read from, never what a search returns."""
    from rag.testing import random_chunks

    query = StoreConformance().query()
    chunks = random_chunks(300, metadata=lambda i: {"b10": i % 10, "tags": [i % 3, "t"]})
    edited = [
        type(c)(id=c.id, text=c.text + " (edited)", metadata=c.metadata, embedding=c.embedding)
        for c in chunks[:40]
    ]
    answers = []
    for budget in (256, 0.01, 0):  # all rows, a few rows, none in memory
        path = str(tmp_path / f"b{budget}")
        store = FaissStore(path=path, text_cache_mb=budget)
        store.write(chunks)
        store.write(edited)  # replaced rows leave the cache and their new text enters it
        store.delete(ids=[c.id for c in chunks[40:60]])
        assert 0 <= store._rows.nbytes <= budget * 1_000_000
        if budget == 0.01:
            assert 0 < len(store._rows) < store.count()
        runs = [store.search(query, k=20), store.search(query, k=20, filters={"b10": 3})]
        store.close()
        for reopened_budget in (budget, 0.01):  # the cache is filled again on open
            if reopened_budget == 0.01:  # read from SQLite in batches, a few rows kept
                (tmp_path / f"b{budget}" / "open-cache.npz").unlink()
            reopened = FaissStore(path=path, text_cache_mb=reopened_budget)
            runs.append(reopened.search(query, k=20))
            runs.append(reopened.search(query, k=20, filters={"b10": 3}))
            reopened.close()
        answers.append([[(h.id, h.chunk.text, h.chunk.metadata, h.score) for h in r] for r in runs])
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == answers[0][2] == answers[0][4]
    assert answers[0][1] == answers[0][3] == answers[0][5]  # filtered: the metadata columns
    assert any(text.endswith("(edited)") for _, text, _, _ in answers[0][0])


def test_hit_metadata_is_a_copy(tmp_path):
    store, chunks = _store_with(tmp_path / "copy", 50)
    hit = store.search(chunks[3].embedding, k=1)[0]
    hit.chunk.metadata["tags"].append("changed")
    hit.chunk.metadata["b10"] = -1
    again = store.search(chunks[3].embedding, k=1)[0]
    assert again.chunk.metadata["tags"] == [0, "t"] and again.chunk.metadata["b10"] == 3
    store.close()


def test_text_cache_mb_must_not_be_negative():
    from rag.core.errors import ConfigError

    with pytest.raises(ConfigError, match="text_cache_mb"):
        FaissStore(text_cache_mb=-1)


# -- broken files, full disks (issue 20) ---------------------------------------------------------
def test_a_missing_chunks_sqlite_beside_an_index_is_named(tmp_path):
    from rag.core.errors import StoreCorruptError

    store, _ = _store_with(tmp_path / "s", 20)
    store.close()
    (tmp_path / "s" / "chunks.sqlite").unlink()
    with pytest.raises(StoreCorruptError, match="chunks.sqlite: is missing") as err:
        FaissStore(path=str(tmp_path / "s")).count()
    assert err.value.path.endswith("chunks.sqlite") and "ingest" in err.value.repair


@pytest.mark.parametrize("content", ["[]", '{"generation": 1, "tombstones": 5}', "not json"])
def test_a_broken_index_json_is_rebuilt_from_sqlite(tmp_path, content, caplog):
    store, chunks = _store_with(tmp_path / "s", 30)
    store.close()
    (tmp_path / "s" / "index.json").write_text(content)
    again = FaissStore(path=str(tmp_path / "s"))
    assert again.count() == 30
    hit = again.search(chunks[3].embedding, k=1)[0]
    assert hit.id == chunks[3].id
    assert "rebuilding the index" in caplog.text


def test_corrupt_and_foreign_chunks_sqlite_are_named(tmp_path):
    import sqlite3

    from rag.core.errors import StoreCorruptError

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "chunks.sqlite").write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreCorruptError, match="corrupt or not a SQLite database"):
        FaissStore(path=str(tmp_path / "bad")).count()
    (tmp_path / "other").mkdir()
    db = sqlite3.connect(tmp_path / "other" / "chunks.sqlite")
    db.execute("CREATE TABLE chunks (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StoreCorruptError, match="another program"):
        FaissStore(path=str(tmp_path / "other")).count()


def test_disk_full_is_named_and_loses_nothing_committed(tmp_path):
    import sqlite3

    from rag.core.errors import StoreFullError
    from rag.testing import random_chunks

    store = FaissStore(path=str(tmp_path / "s"))
    first, second = random_chunks(10, prefix="a"), random_chunks(10, prefix="b", seed=1)
    store.write(first)

    class FullDisk:
        """The connection, except that inserts fail as SQLite does on a full disk."""

        def __init__(self, db):
            self.db = db

        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO chunks"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.db, name)

    real = store._db
    store._db = FullDisk(real)
    with pytest.raises(StoreFullError, match=r"chunks.sqlite: the disk is full"):
        store.write(second)
    store._db = real
    assert store.count() == 10
    store.close()
    again = FaissStore(path=str(tmp_path / "s"))
    assert sorted(again.ids()) == sorted(c.id for c in first)
    assert again.write(second) == 10


def test_non_finite_metadata_is_refused_by_the_store():
    from rag.core.errors import NonFiniteNumberError
    from rag.testing import random_chunks

    chunk = random_chunks(1)[0]
    chunk.metadata["score"] = float("nan")
    store = FaissStore()
    with pytest.raises(NonFiniteNumberError, match="score"):
        store.write([chunk])
    assert store.count() == 0


@pytest.mark.parametrize("where", ["file", "proc", "under-file"])
def test_store_paths_that_cannot_hold_a_folder(tmp_path, where):
    from rag.core.errors import ConfigError

    (tmp_path / "f").write_text("x")
    path = {"file": tmp_path / "f", "proc": "/proc/ragline", "under-file": tmp_path / "f" / "i"}
    with pytest.raises(ConfigError, match="path") as err:
        FaissStore(path=str(path[where]))
    assert err.value.field == "path"


def test_two_writers_racing_on_one_folder_get_a_named_error(tmp_path):
    from rag.core.errors import StoreLockedError
    from rag.testing import random_chunks

    first, second = FaissStore(path=str(tmp_path / "s")), FaissStore(path=str(tmp_path / "s"))
    first.count(), second.count()  # both open, both empty
    chunks = random_chunks(5)
    first.write(chunks)
    with pytest.raises(StoreLockedError, match="another process wrote to this store"):
        second.write(chunks)  # second does not know the ids: SQLite's UNIQUE constraint
    assert FaissStore(path=str(tmp_path / "s")).count() == 5


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("{broken", "not JSON"),
        ('{"a": 1}, {"b": 2}', "not JSON"),  # two values: read in a batch, it would pass as two
        ("[1, 2]", "not a JSON object"),
        ("null", "not a JSON object"),
    ],
)
def test_a_row_whose_metadata_is_not_a_json_object_is_named(tmp_path, metadata, message):
    import sqlite3

    from rag.core.errors import StoreCorruptError

    store, _ = _store_with(tmp_path / "s", 5)
    store.close()
    (tmp_path / "s" / "open-cache.npz").unlink()  # read every row from SQLite
    db = sqlite3.connect(tmp_path / "s" / "chunks.sqlite")
    third = db.execute("SELECT rowid FROM chunks ORDER BY rowid LIMIT 1 OFFSET 2").fetchone()[0]
    db.execute("UPDATE chunks SET metadata=? WHERE rowid=?", (metadata, third))
    db.commit()
    db.close()
    with pytest.raises(
        StoreCorruptError, match=rf"chunks.sqlite: row {third} holds metadata that is {message}"
    ):
        FaissStore(path=str(tmp_path / "s")).count()


@pytest.mark.unit
def test_packed_rows_hold_rows_within_the_budget_and_compact_after_removals():
    from rag.connectors.stores._packed import ROW_OVERHEAD, PackedRows

    rows = PackedRows(budget_bytes=10_000)
    meta = '{"source": "a.md", "tags": ["x", {"deep": 1}]}'
    held = [r for r in range(1, 200) if rows.add(r, f"c{r}", f"text é {r}", meta)]
    assert 0 < len(held) < 199 and len(rows) == len(held)  # the budget stops it
    assert rows.nbytes <= 10_000
    first = rows.get(1)
    assert first == ("c1", "text é 1", {"source": "a.md", "tags": ["x", {"deep": 1}]})
    first[2]["tags"][1]["deep"] = 2  # a fresh copy: the cache is unchanged
    assert rows.get(1)[2]["tags"][1] == {"deep": 1}
    before = rows.nbytes
    rows.remove([*held[::2], 10_000])  # rows not held are ignored
    assert rows.get(held[0]) is None and rows.get(held[1])[0] == f"c{held[1]}"
    assert rows.nbytes < before and len(rows) == len(held) - len(held[::2])
    assert len(rows._buffer) < before  # half the bytes dead: compacted
    for r in held[1::2]:
        assert rows.get(r) == (f"c{r}", f"text é {r}", json.loads(meta))
    assert rows.add(1_000, "new", "t", "{}")  # room again after the removals
    assert (
        rows.nbytes
        == sum(len(f"c{r}text é {r}".encode()) + len(meta) + ROW_OVERHEAD for r in held[1::2])
        + len(b"newt{}")
        + ROW_OVERHEAD
    )
    with pytest.raises(ValueError):
        rows.add(999, "old", "t", "{}")  # row ids only grow


@pytest.mark.parametrize("column", ["id", "metadata", "text"])
def test_a_row_holding_a_blob_where_text_belongs_is_named(tmp_path, column):
    import sqlite3

    from rag.core.errors import StoreCorruptError

    store, _ = _store_with(tmp_path / "s", 5)
    store.close()
    (tmp_path / "s" / "open-cache.npz").unlink()  # read every row from SQLite
    db = sqlite3.connect(tmp_path / "s" / "chunks.sqlite")
    second = db.execute("SELECT rowid FROM chunks ORDER BY rowid LIMIT 1 OFFSET 1").fetchone()[0]
    db.execute(f"UPDATE chunks SET {column}=? WHERE rowid=?", (b'{"a": 1}', second))
    db.commit()
    db.close()
    with pytest.raises(
        StoreCorruptError,
        match=rf"chunks.sqlite: row {second} holds {column} that is not text \(a bytes value\)",
    ):
        FaissStore(path=str(tmp_path / "s")).count()


@pytest.mark.unit
def test_packed_rows_extend_holds_what_add_holds_within_the_budget():
    from rag.connectors.stores._packed import PackedRows

    meta = '{"source": "a.md"}'
    rowids = list(range(1, 200))
    ids, texts = [f"c{r}" for r in rowids], [f"text é {r}" for r in rowids]
    one_by_one, at_once = PackedRows(budget_bytes=5_000), PackedRows(budget_bytes=5_000)
    held = [r for r, i, t in zip(rowids, ids, texts, strict=True) if one_by_one.add(r, i, t, meta)]
    taken = at_once.extend(rowids, ids, texts, [meta] * len(rowids))
    assert 0 < taken == len(held) < len(rowids)  # the budget stops both at the same row
    assert at_once.nbytes == one_by_one.nbytes <= 5_000
    assert all(at_once.get(r) == one_by_one.get(r) for r in rowids)
    assert at_once.extend([500], ["big"], ["x" * 6_000], ["{}"]) == 0  # does not fit
    with pytest.raises(ValueError, match="ascend"):
        at_once.extend([3], ["c3"], ["t"], ["{}"])  # below the last held row
    with pytest.raises(ValueError, match="ascend"):
        PackedRows(budget_bytes=5_000).extend([2, 1], ["a", "b"], ["t", "t"], ["{}", "{}"])


@pytest.mark.unit
def test_stats_count_distinct_sources_after_deletes(tmp_path):
    from rag.testing import random_chunks

    chunks = random_chunks(30, metadata=lambda i: {"source": f"s{i % 4}.md"})
    store = FaissStore(path=str(tmp_path / "s"))
    store.write(chunks)
    assert store.stats()["sources"] == 4
    store.delete(filters={"source": "s1.md"})
    assert store.stats() == {"chunks": 22, "sources": 3, "dimension": store.dimension}
    store.close()
    assert FaissStore(path=str(tmp_path / "s")).stats()["sources"] == 3


# -- the open cache (open-cache.npz): ids, texts and metadata without reading SQLite ----------
def _reads_sqlite(monkeypatch) -> list[int]:
    """Count the opens that read the rows from SQLite rather than from the open cache."""
    calls: list[int] = []
    read_rows = FaissStore._read_rows

    def counted(self, db, db_path):
        calls.append(1)
        return read_rows(self, db, db_path)

    monkeypatch.setattr(FaissStore, "_read_rows", counted)
    return calls


def test_reopening_takes_the_rows_from_the_open_cache(tmp_path, monkeypatch):
    store, chunks = _store_with(tmp_path / "s", 40)
    store.delete(ids=[chunks[0].id])
    store.close()
    assert (tmp_path / "s" / "open-cache.npz").exists()
    reads = _reads_sqlite(monkeypatch)
    again = FaissStore(path=str(tmp_path / "s"))
    assert again.count() == 39 and reads == []
    assert again.ids() == [c.id for c in chunks[1:]]
    assert again.count({"tags": 2}) == sum(1 for c in chunks[1:] if 2 in c.metadata["tags"])
    hit = again.search(chunks[5].embedding, k=1, filters={"b10": 5})[0]
    assert (hit.id, hit.chunk.text, hit.chunk.metadata) == (
        chunks[5].id,
        chunks[5].text,
        chunks[5].metadata,
    )
    again.write(chunks[:1])  # and it goes on working: a write, a delete by a list value
    assert again.delete(filters={"tags": 1}) == sum(1 for c in chunks if 1 in c.metadata["tags"])
    expected = again.ids()
    again.close()
    assert FaissStore(path=str(tmp_path / "s")).ids() == expected and reads == []


@pytest.mark.parametrize("how", ["closed", "left open", "same size"])
def test_a_direct_edit_of_chunks_sqlite_is_seen_despite_the_open_cache(tmp_path, monkeypatch, how):
    """An edit that does not bump the generation (as tests and older versions did) still
    changes chunks.sqlite or its WAL, which the cache is keyed on: the next open reads SQLite."""
    import sqlite3

    store, chunks = _store_with(tmp_path / "s", 20)
    store.close()
    reads = _reads_sqlite(monkeypatch)
    db = sqlite3.connect(tmp_path / "s" / "chunks.sqlite")
    (metadata,) = db.execute("SELECT metadata FROM chunks WHERE id=?", (chunks[3].id,)).fetchone()
    edited = metadata.replace('"b10": 3', '"b10": 7')  # same length: the file keeps its size
    text = chunks[3].text if how == "same size" else "an edited text"
    db.execute("UPDATE chunks SET metadata=?, text=? WHERE id=?", (edited, text, chunks[3].id))
    db.commit()
    if how != "left open":
        db.close()  # checkpoints the WAL into chunks.sqlite; left open, the edit stays in it
    assert (tmp_path / "s" / "open-cache.npz").exists()
    again = FaissStore(path=str(tmp_path / "s"))
    hit = again.search(chunks[3].embedding, k=1, filters={"b10": 7})[0]
    assert reads == [1]
    assert hit.id == chunks[3].id and hit.chunk.text == text and hit.chunk.metadata["b10"] == 7
    assert again.count({"b10": 3}) == sum(1 for c in chunks if c.metadata["b10"] == 3) - 1
    again.close()
    if how == "left open":
        db.close()


def test_an_open_cache_not_newer_than_chunks_sqlite_is_not_trusted(tmp_path, monkeypatch):
    """A change of chunks.sqlite within the clock tick of the mtime the cache recorded would
    leave that mtime as it was; a cache that is not strictly newer is therefore read past."""
    import os

    store, _ = _store_with(tmp_path / "s", 10)
    store.close()
    sqlite_ns = (tmp_path / "s" / "chunks.sqlite").stat().st_mtime_ns
    os.utime(tmp_path / "s" / "open-cache.npz", ns=(sqlite_ns, sqlite_ns))
    reads = _reads_sqlite(monkeypatch)
    assert FaissStore(path=str(tmp_path / "s")).count() == 10 and reads == [1]


def test_another_connection_writing_keeps_a_stale_open_cache_out(tmp_path, monkeypatch):
    """A store whose rows in memory miss another connection's commit does not save them."""
    from rag.testing import random_chunks

    first, second = FaissStore(path=str(tmp_path / "s")), FaissStore(path=str(tmp_path / "s"))
    chunks = random_chunks(6)
    first.write(chunks[:3])
    second.write(chunks[3:])  # second opens now: it sees first's three
    second.close()
    first.close()  # first never saw second's three: it must not save its view
    reads = _reads_sqlite(monkeypatch)
    again = FaissStore(path=str(tmp_path / "s"))
    assert sorted(again.ids()) == sorted(c.id for c in chunks)
    assert reads == [1]


@pytest.mark.parametrize("content", [b"not a zip", b""])
def test_a_broken_open_cache_is_read_past(tmp_path, monkeypatch, content):
    store, chunks = _store_with(tmp_path / "s", 10)
    store.close()
    (tmp_path / "s" / "open-cache.npz").write_bytes(content)
    reads = _reads_sqlite(monkeypatch)
    again = FaissStore(path=str(tmp_path / "s"))
    assert again.ids() == [c.id for c in chunks] and reads == [1]
    again.close()
    reads.clear()
    assert FaissStore(path=str(tmp_path / "s")).count() == 10 and reads == []  # saved afresh


@pytest.mark.unit
def test_id_index_finds_ids_sharing_a_hash_and_survives_removals(monkeypatch):
    from rag.connectors.stores import _packed

    index = _packed.IdIndex()
    index.add([f"id{i}" for i in range(100)], list(range(100)))
    monkeypatch.setattr(_packed, "id_hashes", lambda ids: np.zeros(len(ids), dtype=np.int64))
    index.add(["x", "y", "é"], [100, 101, 102])  # all three share hash 0
    assert index.lookup(["y", "é", "x", "z"]) == {"y": 101, "é": 102, "x": 100}
    assert index.get("z") is None and "x" in index
    monkeypatch.undo()
    index.remove_rowids([*range(0, 100, 2), 97, 99, 101, 5_000])
    assert len(index) == 50 and index.get("id3") == 3 and index.get("id4") is None
    assert len(index._buffer) == 190  # more bytes dead than live: compacted
    again = _packed.IdIndex.from_arrays(index.to_arrays())
    assert again.ids() == [f"id{i}" for i in range(1, 97, 2)] + ["x", "é"]
    assert again.rowids().tolist() == [*range(1, 97, 2), 100, 102]
    with pytest.raises(ValueError, match="2 ids but 1 row ids"):
        again.add(["a", "b"], [1])


@pytest.mark.parametrize("index", ["flat", "int8"])
def test_a_repeated_filter_sees_writes_and_deletes_in_between(tmp_path, index):
    """The mask and selector of a filter are kept between searches, never past a change."""
    from rag.testing import random_chunks

    store, chunks = _store_with(tmp_path / "s", 200, index=index)
    query = chunks[0].embedding
    before = store.search(query, k=3, filters={"b10": 3})  # 20 of 200 match: the selector path
    assert repr(parse_filter({"b10": 3})) in store._filter_cache
    assert all(h.chunk.metadata["b10"] == 3 for h in before)
    (new,) = random_chunks(1, metadata=lambda i: {"b10": 3, "tags": []})
    new.id, new.embedding = "new", query
    store.write([new])
    assert store.search(query, k=3, filters={"b10": 3})[0].id == "new"
    store.delete(ids=["new"])
    assert [h.id for h in store.search(query, k=3, filters={"b10": 3})] == [h.id for h in before]
    for value in range(10):  # more filters than are kept: the oldest go
        store.search(query, k=3, filters={"b10": value})
    assert len(store._filter_cache) == 8
