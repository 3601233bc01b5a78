"""store.milvus against the shared conformance suite: on milvus-lite (embedded, real) and on a
real Milvus standalone server (the ``milvus`` package's 2.3.5, started on 127.0.0.1 for the
session by :mod:`tests.milvus_server`, or the server ``MILVUS_URL`` names)."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from rag.connectors.stores.milvus import (
    OLDEST_SERVER,
    TYPED_COLUMNS_SERVER,
    MilvusStore,
    filterable_view,
    milvus_string,
    parse_server_version,
    to_milvus_expr,
)
from rag.core.documents import Chunk
from rag.core.errors import ConfigError, MissingEnvVarError
from rag.core.filters import parse_filter
from rag.core.secrets import Secret
from rag.testing import StoreConformance
from tests.connectors.stores.abilities import MilvusAbilities
from tests.milvus_server import MILVUS_URL_VARIABLE, MilvusServer, find_server

pytest.importorskip(
    "milvus_lite", reason="milvus-lite is not installed: pip install 'ragline[milvus]'"
)


def _factory(root, **options):
    opened: set[str] = set()

    def make(name):
        uri = str(root / f"{name}.db")
        if name in opened:
            # A real reopen: stop this file's embedded server so the data is read back from disk.
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(uri)
        opened.add(name)
        # A collection name of its own per test: pymilvus caches schemas per server address and
        # collection name, and milvus-lite servers, started and stopped per test, reuse ports.
        return MilvusStore(uri=uri, collection=name, **options)

    return make


@pytest.mark.integration
class TestMilvusLiteFlat(StoreConformance, MilvusAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        return _factory(tmp_path_factory.mktemp("milvus-flat"))


@pytest.mark.integration
class TestMilvusLiteHnsw(StoreConformance, MilvusAbilities):
    """The HNSW index: the suite's small sets are searched exactly by milvus-lite's HNSW."""

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        return _factory(tmp_path_factory.mktemp("milvus-hnsw"), index="hnsw")

    def test_ten_thousand_chunk_batch(self, store):
        pytest.skip("covered by TestMilvusLiteFlat; one 10k batch per store")


@pytest.mark.unit
class TestTranslation:
    def test_string_escaping(self):
        assert milvus_string('x" or id != "') == '"x\\" or id != \\""'
        assert milvus_string("back\\slash\nnew") == '"back\\\\slash\\nnew"'

    def test_injection_stays_inside_the_literal(self):
        expr = to_milvus_expr(parse_filter({"lang": 'x" or id != "'}))
        assert expr == 'json_contains(filterable["s"]["lang"], "x\\" or id != \\"")'
        key_expr = to_milvus_expr(parse_filter({'k"] or true or ["': 1}))
        assert 'filterable["n"]["k\\"] or true or [\\""]' in key_expr

    def test_operators(self):
        assert to_milvus_expr(None) == ""
        assert to_milvus_expr(parse_filter({"a": {"$exists": False}})) == (
            'not json_contains(filterable["present"], "a")'
        )
        assert to_milvus_expr(parse_filter({"a": {"$in": [1, "x", True]}})) == (
            '(json_contains_any(filterable["s"]["a"], ["x"]) or '
            'json_contains_any(filterable["n"]["a"], [1]) or '
            'json_contains_any(filterable["b"]["a"], [true]))'
        )
        assert to_milvus_expr(parse_filter({"a": {"$lt": 2.5}})) == (
            '(exists filterable["nmin"]["a"] and filterable["nmin"]["a"] < 2.5)'
        )
        assert to_milvus_expr(parse_filter({"$not": {"a": "x"}})) == (
            'not (json_contains(filterable["s"]["a"], "x"))'
        )

    def test_filterable_view_splits_types(self):
        view = filterable_view({"m": [1, "1", True, None, {"x": 1}], "z": None, "d": {"a": 1}})
        assert view["present"] == ["m", "d"]
        assert view["n"] == {"m": [1]} and view["s"] == {"m": ["1"]} and view["b"] == {"m": [True]}

    def test_bad_configuration_names_the_fix(self):
        with pytest.raises(ConfigError, match="must end in '.db'"):
            MilvusStore(uri="data/milvus")
        with pytest.raises(ConfigError, match="index must be one of"):
            MilvusStore(index="ivf_pq")
        with pytest.raises(ConfigError, match="collection"):
            MilvusStore(collection="my-docs")

    def test_token_is_a_reference(self, monkeypatch):
        store = MilvusStore(uri="http://milvus.example:19530", token=Secret("MILVUS_TEST_TOKEN"))
        assert store.to_dict()["init_parameters"]["token"] == "${MILVUS_TEST_TOKEN}"
        monkeypatch.delenv("MILVUS_TEST_TOKEN", raising=False)
        with pytest.raises(MissingEnvVarError, match="MILVUS_TEST_TOKEN"):
            store.warm_up()  # the token is read before anything connects

    def test_round_trip(self):
        store = MilvusStore(uri="x.db", collection="c", index="hnsw", search_params={"ef": 64})
        assert MilvusStore.from_dict(store.to_dict()) == store


@pytest.mark.integration
def test_stats_ids_and_reopen_with_dimension_check(tmp_path):
    uri = str(tmp_path / "s.db")
    store = MilvusStore(uri=uri, collection="docs")
    chunks = [
        Chunk(id=f"i{i}", text=f"t{i}", metadata={"source": f"s{i % 2}"}, embedding=np.eye(4)[i])
        for i in range(4)
    ]
    store.write(chunks)
    assert store.stats() == {"chunks": 4, "sources": 2, "dimension": 4}
    assert sorted(store.ids()) == ["i0", "i1", "i2", "i3"]
    assert sorted(c.text for c in store.iter_chunks()) == ["t0", "t1", "t2", "t3"]
    store.close()
    with pytest.raises(ConfigError, match="4-dimensional"):
        MilvusStore(uri=uri, collection="docs", dimension=8).warm_up()


@pytest.mark.integration
def test_approximate_index_falls_back_to_exact_for_selective_filters(tmp_path, monkeypatch):
    from rag.testing import random_chunks

    store = MilvusStore(uri=str(tmp_path / "h.db"), collection="h", index="hnsw")
    chunks = random_chunks(60, metadata=lambda i: {"rare": i % 6 == 0})
    store.write(chunks)
    query = chunks[0].embedding
    expected = StoreConformance.exact_order([c for c in chunks if c.metadata["rare"]], query)
    real_search = store.client.search

    def lossy_search(*args, **kwargs):  # an HNSW walk that found only one match
        return [real_search(*args, **kwargs)[0][:1]]

    monkeypatch.setattr(store.client, "search", lossy_search)
    hits = store.search(query, k=5, filters={"rare": True})
    assert [h.id for h in hits] == expected[:5]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    monkeypatch.setattr(store, "exact_fallback_limit", 3)  # too many matches: keep what HNSW found
    assert len(store.search(query, k=5, filters={"rare": True})) == 1
    store.close()


@pytest.mark.integration
def test_close_releases_the_database_file_for_another_process(tmp_path):
    import subprocess
    import sys

    uri = str(tmp_path / "shared.db")
    first = MilvusStore(uri=uri, collection="docs")
    second = MilvusStore(uri=uri, collection="docs")
    first.write([Chunk(id="a", text="alpha", metadata={"source": "s"}, embedding=np.eye(4)[0])])
    assert second.count() == 1
    first.close()
    assert second.count() == 1, "closing one store must not stop the server another one uses"
    second.close()
    script = (
        "from rag.connectors.stores.milvus import MilvusStore\n"
        f"store = MilvusStore(uri={uri!r}, collection='docs')\n"
        "print(store.count())\n"
        "store.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "1"


@pytest.mark.integration
@pytest.mark.parametrize("repair", [True, False])
def test_a_replayed_write_ahead_log_leaves_one_row_per_id(tmp_path, monkeypatch, repair):
    """The state a SIGKILL can leave: a flush committed, its write-ahead log not yet deleted."""
    import shutil

    uri = tmp_path / "s.db"
    store = MilvusStore(uri=str(uri), collection="docs")
    chunks = [
        Chunk(id=f"i{i}", text=f"t{i}", metadata={"n": i}, embedding=np.eye(4)[i]) for i in range(4)
    ]
    store.write(chunks)
    wal = uri / "collections" / "docs" / "wal"
    saved = tmp_path / "wal-before-flush"
    shutil.copytree(wal, saved)
    store.close()  # flushes: segments written, the log deleted
    shutil.rmtree(wal)
    shutil.copytree(saved, wal)  # ...as if the process died before deleting it
    if not repair:
        monkeypatch.setattr(MilvusStore, "_repair_replayed_rows", lambda self: None)
    reopened = MilvusStore(uri=str(uri), collection="docs")
    ids = reopened.ids()
    if not repair:  # proves the test reaches milvus-lite's duplicate rows
        if len(ids) == len(chunks):
            pytest.skip("this milvus-lite merges replayed rows itself; nothing to repair")
        assert sorted(ids) == sorted([c.id for c in chunks] * 2)
        return
    assert sorted(ids) == ["i0", "i1", "i2", "i3"]
    assert reopened.count() == 4
    hits = reopened.search(np.eye(4)[2], k=4)
    assert [h.chunk.id for h in hits][:1] == ["i2"] and len(hits) == 4
    assert {c.id: c.metadata["n"] for c in reopened.get(["i1", "i3"])} == {"i1": 1, "i3": 3}
    reopened.close()


@pytest.mark.integration
@pytest.mark.parametrize("damaged", ["*.sidx", "*.idx"])
def test_an_index_file_truncated_by_a_kill_is_rebuilt_from_the_rows(tmp_path, damaged):
    """milvus-lite writes index files in place: a SIGKILL can leave one empty, and every later
    load then fails ("File is too small: 0"). Reopening rebuilds the indexes; no row is lost."""
    from milvus_lite.server_manager import server_manager_instance

    uri = str(tmp_path / "s.db")

    def open_store():
        return MilvusStore(uri=uri, collection="docs", index="hnsw", scalar_fields={"year": "int"})

    store = open_store()
    chunks = [
        Chunk(id=f"i{i}", text=f"t{i}", metadata={"year": 2000 + i}, embedding=np.eye(8)[i])
        for i in range(8)
    ]
    store.write(chunks)
    store.close()
    server_manager_instance.release_server(uri)
    files = sorted((tmp_path / "s.db").rglob(damaged))
    assert files, f"no {damaged} index file written; the test no longer reaches milvus-lite's"
    for path in files:
        path.write_bytes(b"")

    reopened = open_store()
    assert reopened.count() == 8
    hits = reopened.search(np.eye(8)[5], k=3, filters={"year": {"$gte": 2004}})
    assert [h.chunk.id for h in hits][:1] == ["i5"]
    assert {h.chunk.metadata["year"] for h in hits} <= set(range(2004, 2008))
    indexes = {
        name: reopened.client.describe_index("docs", name)["index_type"]
        for name in reopened.client.list_indexes("docs")
    }
    assert indexes == {"vector": "HNSW", "meta_year": "INVERTED"}
    assert all(path.stat().st_size > 0 for path in files)
    reopened.close()


@pytest.mark.integration
def test_a_collection_that_still_fails_to_load_after_the_rebuild_is_a_clear_error(
    tmp_path, monkeypatch
):
    import pymilvus
    from milvus_lite.server_manager import server_manager_instance

    uri = str(tmp_path / "s.db")
    store = MilvusStore(uri=uri, collection="docs")
    store.write([Chunk(id="a", text="t", metadata={}, embedding=np.eye(4)[0])])
    store.close()
    server_manager_instance.release_server(uri)

    def broken(self, collection_name, *args, **kwargs):
        raise pymilvus.MilvusException(message="unreadable segment")

    monkeypatch.setattr(pymilvus.MilvusClient, "load_collection", broken)
    damaged = MilvusStore(uri=uri, collection="docs")
    with pytest.raises(ConfigError, match="even after rebuilding its indexes") as err:
        damaged.count()
    assert uri in str(err.value) and "'docs'" in str(err.value) and "new uri" in str(err.value)
    assert damaged._client is None  # closed: the file's lock is free for the next opener
    monkeypatch.undo()
    assert damaged.count() == 1  # nothing was lost; the next call opens afresh
    damaged.close()


@pytest.mark.unit
class TestTypedTranslation:
    TYPED = {"year": "int", "lang": "str", "score": "float", "draft": "bool"}

    def expr(self, filters):
        return to_milvus_expr(parse_filter(filters), self.TYPED)

    def test_typed_keys_read_their_column(self):
        assert self.expr({"year": 2020}) == "(meta_year is not null and meta_year == 2020)"
        assert self.expr({"lang": {"$in": ["en", "de"]}}) == (
            '(meta_lang is not null and meta_lang in ["en", "de"])'
        )
        assert self.expr({"draft": {"$exists": False}}) == "meta_draft is null"
        assert self.expr({"score": {"$lt": 2}}) == "(meta_score is not null and meta_score < 2)"
        assert self.expr({"other": 1}) == 'json_contains(filterable["n"]["other"], 1)'

    def test_negations_stay_two_valued(self):
        assert self.expr({"year": {"$ne": 2020}}) == (
            "not (meta_year is not null and meta_year == 2020)"
        )
        assert self.expr({"$not": {"lang": {"$gt": "e"}}}) == (
            'not ((meta_lang is not null and meta_lang > "e"))'
        )

    def test_other_kinds_never_match_a_typed_column(self):
        assert self.expr({"year": "2020"}) == "false"
        assert self.expr({"year": {"$ne": "2020"}}) == "not false"
        assert self.expr({"draft": 1}) == "false"
        assert self.expr({"draft": {"$gt": 0}}) == "false"
        assert self.expr({"score": {"$gt": "a"}}) == "false"

    def test_integer_columns_compare_as_integers(self):
        # Milvus would cut 2020.5 to 2020; ragline compares exactly.
        assert self.expr({"year": {"$in": [2020.5, 2021.0]}}) == (
            "(meta_year is not null and meta_year == 2021)"
        )
        assert self.expr({"year": 2020.5}) == "false"
        assert self.expr({"year": {"$gt": 2019.5}}) == (
            "(meta_year is not null and meta_year > 2019)"
        )
        assert self.expr({"year": {"$gte": 2019.5}}) == (
            "(meta_year is not null and meta_year >= 2020)"
        )

    def test_injection_stays_inside_a_typed_literal(self):
        assert self.expr({"lang": 'x" or id != "'}) == (
            '(meta_lang is not null and meta_lang == "x\\" or id != \\"")'
        )

    def test_bad_scalar_fields_are_refused(self):
        with pytest.raises(ConfigError, match="letters, digits"):
            MilvusStore(uri="x.db", scalar_fields={"we ird": "str"})
        with pytest.raises(ConfigError, match="scalar_fields.year"):
            MilvusStore(uri="x.db", scalar_fields={"year": "date"})
        with pytest.raises(ConfigError, match="inferred_fields"):
            MilvusStore(uri="x.db", inferred_fields=-1)


@pytest.mark.integration
class TestMilvusLiteJsonOnly(StoreConformance, MilvusAbilities):
    """The JSON view alone (a collection made before typed columns): same semantics."""

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        return _factory(tmp_path_factory.mktemp("milvus-json"), inferred_fields=0)

    def test_ten_thousand_chunk_batch(self, store):
        pytest.skip("covered by TestMilvusLiteFlat; one 10k batch per store")


@pytest.mark.integration
def test_typed_columns_declared_inferred_and_given_up(tmp_path):
    uri = str(tmp_path / "typed.db")
    store = MilvusStore(uri=uri, collection="docs", scalar_fields={"year": "int"})
    first = [
        Chunk(
            id=f"a{i}",
            text=f"t{i}",
            metadata={"source": f"s{i}", "year": 2000 + i, "tag": "x", "mixed": i},
            embedding=np.eye(4)[i],
        )
        for i in range(3)
    ]
    store.write(first)
    assert store._filter_types() == {"year": "int", "source": "str", "tag": "str", "mixed": "int"}
    fields = {f["name"] for f in store.client.describe_collection("docs")["fields"]}
    assert {"meta_year", "meta_source", "meta_tag", "meta_mixed"} <= fields
    indexes = store.client.list_indexes("docs")
    assert {"meta_year", "meta_source"} <= set(indexes)
    assert store.count({"year": {"$gte": 2001}}) == 2
    # an inferred key that meets another type goes back to JSON, and still filters right
    late = Chunk(id="b0", text="t", metadata={"mixed": "one"}, embedding=np.eye(4)[3])
    store.write([late])
    assert "mixed" not in store._filter_types()
    assert store.count({"mixed": {"$in": [1, "one"]}}) == 2
    assert store.count({"mixed": {"$exists": False}}) == 0
    # a declared key refuses a value of another type, and nothing is written
    wrong = Chunk(id="c0", text="t", metadata={"year": "2020"}, embedding=np.eye(4)[3])
    with pytest.raises(ValueError, match="year='2020'.*int"):
        store.write([wrong])
    assert store.count() == 4
    store.close()
    reopened = MilvusStore(uri=uri, collection="docs", scalar_fields={"year": "int"})
    reopened.warm_up()
    assert "mixed" not in reopened._filter_types() and "year" in reopened._filter_types()
    assert reopened.count({"mixed": "one"}) == 1
    reopened.close()


@pytest.mark.integration
def test_collection_without_typed_columns_still_opens(tmp_path, caplog):
    uri = str(tmp_path / "old.db")
    old = MilvusStore(uri=uri, collection="docs", inferred_fields=0)
    old.write(
        [Chunk(id="a", text="t", metadata={"source": "s", "year": 1}, embedding=np.eye(4)[0])]
    )
    old.close()
    new = MilvusStore(uri=uri, collection="docs", scalar_fields={"year": "int"})
    with caplog.at_level("WARNING"):
        assert new.count({"year": 1}) == 1
    assert "no int column for metadata key 'year'" in caplog.text
    assert new._filter_types() == {}
    new.write([Chunk(id="b", text="t", metadata={"year": 2}, embedding=np.eye(4)[1])])
    assert new.count({"year": {"$gt": 0}}) == 2
    new.close()


# -- a real Milvus server ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def milvus_server_url():
    """``MILVUS_URL`` when set; else the packaged Milvus standalone, started for this session."""
    given = os.environ.get(MILVUS_URL_VARIABLE)
    if given:
        yield given
        return
    why = find_server()
    if why:
        pytest.skip(
            f"needs a Milvus server: {why}. Install the dev extra (pip install 'milvus==2.3.5'), "
            f"or set {MILVUS_URL_VARIABLE}=http://host:19530"
        )
    server = MilvusServer()
    try:
        yield server.start()
    finally:
        server.stop()


def _server_factory(url, **options):
    """Stores on the server, in collections named for this run; dropped when the class ends."""
    run = uuid.uuid4().hex[:8]
    made: list[str] = []

    def make(name):
        collection = f"ragline_test_{run}_{name}"
        if collection not in made:
            made.append(collection)
        return MilvusStore(uri=url, collection=collection, **options)

    def drop_all():
        from pymilvus import MilvusClient

        client = MilvusClient(uri=url)
        for collection in made:
            if client.has_collection(collection):
                client.drop_collection(collection)
        client.close()

    return make, drop_all


@pytest.mark.integration
class TestMilvusServer(StoreConformance, MilvusAbilities):
    """The whole suite on a real server: 2.3.5 runs in the compatibility mode (no typed
    columns, filters without ``exists``); a newer server in MILVUS_URL gets every feature."""

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, milvus_server_url):
        make, drop_all = _server_factory(milvus_server_url)
        yield make
        drop_all()


@pytest.mark.integration
def test_server_version_decides_the_features(milvus_server_url):
    make, drop_all = _server_factory(milvus_server_url)
    store = make("features")
    try:
        chunks = [
            Chunk(id=f"i{i}", text=f"t{i}", metadata={"year": 2000 + i}, embedding=np.eye(4)[i])
            for i in range(4)
        ]
        store.write(chunks)
        assert store.server_version is not None and store.server_version >= OLDEST_SERVER
        fields = {f["name"] for f in store.client.describe_collection(store.collection)["fields"]}
        if store.server_version < TYPED_COLUMNS_SERVER:
            assert store.compatibility_mode and "meta_year" not in fields
        else:
            assert not store.compatibility_mode and "meta_year" in fields
        assert store.count({"$not": {"year": {"$gte": 2002}}}) == 2
        assert store.count({"$not": {"missing": {"$lt": 1}}}) == 4
    finally:
        store.close()
        drop_all()


@pytest.mark.integration
def test_scalar_fields_on_a_server_without_nullable_fields_is_refused(milvus_server_url):
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_server_url)
    version = parse_server_version(client.get_server_version())
    client.close()
    if version is None or version >= TYPED_COLUMNS_SERVER:
        pytest.skip(f"the server ({version}) has nullable fields: scalar_fields work there")
    store = MilvusStore(uri=milvus_server_url, collection="never_made", scalar_fields={"y": "int"})
    with pytest.raises(ConfigError) as caught:
        store.warm_up()
    assert str(caught.value) == (
        "field 'scalar_fields': scalar_fields needs a Milvus server 2.5.0 or newer (nullable fields); the server at "
        f"{milvus_server_url} is version {'.'.join(map(str, version))}: remove scalar_fields "
        "(filters then read the JSON view) or upgrade the server"
    )
    assert caught.value.field == "scalar_fields" and store._client is None


@pytest.mark.unit
def test_a_server_older_than_supported_is_refused_on_connect(monkeypatch):
    """No Milvus 2.2 server installs beside 2.3.5, so its answer is given to the real client."""
    import pymilvus

    monkeypatch.setattr(pymilvus.MilvusClient, "__init__", lambda self, **kwargs: None)
    monkeypatch.setattr(pymilvus.MilvusClient, "get_server_version", lambda self: "v2.2.16")
    monkeypatch.setattr(pymilvus.MilvusClient, "close", lambda self: None)
    store = MilvusStore(uri="http://127.0.0.1:19530", collection="docs")
    with pytest.raises(ConfigError) as caught:
        store.warm_up()
    assert str(caught.value) == (
        "field 'uri': the Milvus server at http://127.0.0.1:19530 is version 2.2.16; store.milvus needs "
        "2.3.0 or newer (upsert): upgrade the server, or set uri to a milvus-lite file such as "
        "'.rag/milvus.db'"
    )
    assert caught.value.field == "uri" and store._client is None


@pytest.mark.unit
def test_version_strings_and_the_compatibility_translation():
    assert parse_server_version("v2.3.5-lite") == (2, 3, 5)
    assert parse_server_version("v2.6.1") == (2, 6, 1)
    assert parse_server_version("Zilliz Cloud (Compatible with Milvus 2.5)") == (2, 5, 0)
    assert parse_server_version("unknown") is None
    node = parse_filter({"$not": {"year": {"$gt": 2000}}})
    assert to_milvus_expr(node, exists=False) == 'not (filterable["nmax"]["year"] > 2000)'
    assert "exists" in to_milvus_expr(node)
