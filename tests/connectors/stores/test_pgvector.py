"""store.pgvector against a real PostgreSQL server with pgvector (started for the session by the
``postgres_url`` fixture, or ``RAGLINE_PG_URL``): the shared conformance suite, SQL injection
probes, bad input, and ingestion records."""

from __future__ import annotations

import subprocess
import sys
import uuid

import numpy as np
import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'ragline[pgvector]'")
pytest.importorskip("pgvector", reason="pgvector is not installed: pip install 'ragline[pgvector]'")

from rag.connectors.stores.pgvector import PgvectorStore, display_url, to_sql
from rag.core.documents import Chunk
from rag.core.errors import ConfigError, StoreUnavailableError
from rag.core.filters import parse_filter
from rag.core.secrets import Secret
from rag.testing import StoreConformance, random_chunks
from tests.connectors.stores.abilities import PgvectorAbilities
from tests.postgres_server import free_port


def _drop(url: str, tables: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')


@pytest.fixture(scope="module")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


def _factory(url: str, prefix: str, **options):
    made: list[str] = []

    def make(name):
        table = f"{prefix}_{name}"
        made.append(table)
        return PgvectorStore(url=url, table=table, **options)

    return make, made


@pytest.mark.integration
class TestPgvectorFlat(StoreConformance, PgvectorAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, postgres_url, run_id):
        make, made = _factory(postgres_url, f"flat_{run_id}", index="flat")
        yield make
        _drop(postgres_url, made)


@pytest.mark.integration
class TestPgvectorHnsw(StoreConformance, PgvectorAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, postgres_url, run_id):
        make, made = _factory(postgres_url, f"hnsw_{run_id}", index="hnsw")
        yield make
        _drop(postgres_url, made)

    def test_ten_thousand_chunk_batch(self, store):
        pytest.skip("covered by TestPgvectorFlat; one 10k batch per store")


# -- values are parameters --------------------------------------------------------------------------
HOSTILE = [
    "'; DROP TABLE IF EXISTS victim; --",
    "x' OR '1'='1",
    '") OR TRUE --',
    '{"$ne": null}',
    '{"lang": "en"}',
    '["en"]',
    "$[*] ? (@ > 0)",
    "%s %(x)s {} \\",
    "en' || 'x",
]


@pytest.mark.unit
def test_sql_text_carries_no_key_or_value():
    for value in HOSTILE:
        for filters in (
            {f"k{value}": value},
            {"lang": {"$in": [value, "en"]}},
            {"lang": {"$gt": value}},
            {"$not": {f"k{value}": {"$exists": True}}},
        ):
            text, params = to_sql(parse_filter(filters))
            assert value not in text
            assert "'" not in text.replace("'null'", "")
            assert params, filters


@pytest.mark.integration
def test_quotes_sql_and_json_metacharacters_are_values(postgres_url, run_id):
    store = PgvectorStore(url=postgres_url, table=f"hostile_{run_id}", index="flat")
    chunks = random_chunks(len(HOSTILE) + 2, dimension=4)
    for chunk, value in zip(chunks, HOSTILE):
        chunk.metadata.update({"q": value, f"k{value}": "key-probe"})
    chunks[-2].metadata["lang"] = "en"
    chunks[-1].metadata["lang"] = "en' || 'x"
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS victim (x int)")
    try:
        store.write(chunks)
        for value, chunk in zip(HOSTILE, chunks):
            assert [h.id for h in store.search(chunk.embedding, k=50, filters={"q": value})] == [
                chunk.id
            ]
            assert store.count({f"k{value}": "key-probe"}) == 1
            assert store.count({"q": {"$in": [value]}}) == 1
            assert store.count({"q": {"$gte": value, "$lte": value}}) == 1
            assert store.count({"lang": value}) == (1 if value == "en' || 'x" else 0)
            assert store.count({"q": {"$ne": value}}) == len(chunks) - 1
        assert store.delete(filters={"q": HOSTILE[0]}) == 1
        assert store.count() == len(chunks) - 1
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('victim')").fetchone()[0] == "victim"
    finally:
        store.close()
        _drop(postgres_url, [f"hostile_{run_id}", "victim"])


# -- bad input ----------------------------------------------------------------------------------------
@pytest.mark.integration
def test_unreachable_server_names_the_url_and_the_setting():
    port = free_port()  # nothing listens there
    store = PgvectorStore(
        url=f"postgresql://ragline:s3cret@127.0.0.1:{port}/rag", connect_timeout=3
    )
    with pytest.raises(StoreUnavailableError) as info:
        store.count()
    message = str(info.value)
    assert f"postgresql://***@127.0.0.1:{port}/rag" in message  # user info masked
    assert "setting 'url'" in message and "s3cret" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.integration
def test_unreachable_server_on_the_command_line_is_one_line(tmp_path):
    port = free_port()
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "components:\n"
        "  store:\n"
        "    type: store.pgvector\n"
        f"    init_parameters: {{url: 'postgresql://ragline@127.0.0.1:{port}/rag', "
        "connect_timeout: 3}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "stats", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot reach postgresql://***@127.0.0.1:{port}/rag (setting 'url')" in (result.stderr)


@pytest.mark.integration
def test_dimension_mismatch_with_an_existing_table_is_refused_before_writing(postgres_url, run_id):
    table = f"dims_{run_id}"
    first = PgvectorStore(url=postgres_url, table=table, index="flat")
    first.write(random_chunks(3, dimension=4))
    first.close()
    try:
        with pytest.raises(ConfigError, match="4-dimensional.*dimension=8"):
            PgvectorStore(url=postgres_url, table=table, dimension=8).warm_up()
        second = PgvectorStore(url=postgres_url, table=table)
        with pytest.raises(ValueError, match="dimension"):
            second.write(random_chunks(2, dimension=8, prefix="w"))
        assert second.count() == 3 and second.dimension == 4
        second.close()
    finally:
        _drop(postgres_url, [table])


@pytest.mark.integration
def test_a_table_not_made_by_ragline_is_refused(postgres_url, run_id):
    import psycopg

    table = f"foreign_{run_id}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id text primary key, body text)')
    try:
        with pytest.raises(ConfigError, match="not created by ragline"):
            PgvectorStore(url=postgres_url, table=table).warm_up()
    finally:
        _drop(postgres_url, [table])


@pytest.mark.integration
def test_approximate_index_falls_back_to_exact_for_selective_filters(postgres_url, run_id):
    table = f"ivf_{run_id}"
    # 100 lists over 60 rows, one probed: an IVFFlat scan sees a few rows only.
    store = PgvectorStore(
        url=postgres_url, table=table, index="ivfflat", ivf_lists=100, ivf_probes=1
    )
    chunks = random_chunks(60, metadata=lambda i: {"rare": i % 6 == 0})
    try:
        store.write(chunks)
        query = chunks[0].embedding
        expected = StoreConformance.exact_order([c for c in chunks if c.metadata["rare"]], query)
        hits = store.search(query, k=8, filters={"rare": True})
        assert [h.id for h in hits] == expected[:8]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        store.close()
        _drop(postgres_url, [table])


@pytest.mark.unit
def test_configuration_is_checked_and_round_trips():
    with pytest.raises(ConfigError, match="table"):
        PgvectorStore(table="my-docs")
    with pytest.raises(ConfigError, match="index must be one of"):
        PgvectorStore(index="diskann")
    with pytest.raises(ConfigError, match="PostgreSQL URI"):
        PgvectorStore(url="mysql://host/db")
    store = PgvectorStore(
        url="postgresql://rag@db:5432/rag", table="docs", password=Secret("PG_TEST_PASSWORD")
    )
    data = store.to_dict()
    assert data["init_parameters"]["password"] == "${PG_TEST_PASSWORD}"
    assert PgvectorStore.from_dict(data) == store
    assert display_url("postgresql://rag:pw@db:5433/x") == "postgresql://rag@db:5433/x"
    assert store.records_location().endswith("pgvector-db-5432-rag-public.docs.records.sqlite")


@pytest.mark.integration
def test_stats_ids_iteration_and_fingerprint(postgres_url, run_id):
    table = f"stats_{run_id}"
    store = PgvectorStore(url=postgres_url, table=table)
    chunks = [
        Chunk(id=f"i{i}", text=f"t{i}", metadata={"source": f"s{i % 2}"}, embedding=np.eye(4)[i])
        for i in range(4)
    ]
    try:
        before = store.fingerprint()
        store.write(chunks)
        assert store.stats() == {"chunks": 4, "sources": 2, "dimension": 4}
        assert store.ids() == ["i0", "i1", "i2", "i3"]
        assert [c.text for c in store.iter_chunks(batch_size=3)] == ["t0", "t1", "t2", "t3"]
        after = store.fingerprint()
        assert after != before
        other = PgvectorStore(url=postgres_url, table=table)  # another process, in effect
        other.write(
            [Chunk(id="i0", text="changed", metadata={"source": "s0"}, embedding=np.eye(4)[0])]
        )
        other.close()
        assert store.fingerprint() != after
        store.clear()
        assert store.count() == 0
    finally:
        store.close()
        _drop(postgres_url, [table])


# -- ingestion: records and a SIGKILL in the middle ----------------------------------------------------
class PgvectorCase:
    """tests/pipelines/test_crash_safety.py's store case, for store.pgvector."""

    name = "pgvector"

    def __init__(self, url: str, table: str) -> None:
        self.url = url
        self.table = table

    def yaml(self) -> str:
        return (
            "type: store.pgvector\n"
            f"init_parameters: {{url: '{self.url}', table: {self.table}, dimension: 384}}"
        )

    def open(self) -> PgvectorStore:
        return PgvectorStore(url=self.url, table=self.table, dimension=384)

    def records_file(self):
        from pathlib import Path

        return Path(self.open().records_location()).resolve()  # under the working directory

    def stored(self) -> dict[str, str]:
        store = self.open()
        chunks = store.get(store.ids())
        assert store.count() == len(chunks) == len({c.id for c in chunks})
        store.close()
        return {c.id: c.text for c in chunks}


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_during_ingest_then_resume_leaves_exactly_the_right_chunks(
    postgres_url, run_id, embedder, tmp_path, monkeypatch
):
    import random

    from rag.pipelines.ingest import run_ingest
    from tests.pipelines.ingest_helpers import (
        expected_chunks,
        make_pipeline,
        pipeline_yaml,
        write_corpus,
    )
    from tests.pipelines.test_crash_safety import (
        KILLS,
        MAX_JITTER_S,
        SEED,
        change_many,
        ingest_and_kill,
        recorded_ids,
    )

    monkeypatch.chdir(tmp_path)  # the records file lives under ./.rag/records/
    case = PgvectorCase(postgres_url, f"crash_{run_id}")
    corpus = write_corpus(tmp_path / "corpus", files=10)
    config = pipeline_yaml(tmp_path / "pipeline.yaml", store=case.yaml(), batch_size=2)
    rng = random.Random(f"{SEED}-{case.name}")
    killed = 0
    try:
        for attempt in range(KILLS):
            if attempt == 1:  # the first kill interrupts the first ingest, the others version 2
                change_many(corpus)
            committed, jitter = rng.randint(0, 6), rng.uniform(0, MAX_JITTER_S)
            was_killed = ingest_and_kill(
                config, corpus, case.records_file(), committed=committed, jitter=jitter
            )
            killed += was_killed
            # the invariant that makes resuming exact: nothing stored that is not recorded
            assert set(case.stored()) <= recorded_ids(case.records_file()), f"kill {attempt}"
        assert killed >= 2, "the runs finished before the kill points; use a larger corpus"
        store = case.open()
        report = run_ingest(make_pipeline(embedder, store), [corpus], mode="full", progress=False)
        store.close()
        assert report.errors == []
        assert case.stored() == expected_chunks(corpus)
        # and a second run finds nothing to do
        store = case.open()
        again = run_ingest(
            make_pipeline(embedder, store), [corpus], mode="incremental", progress=False
        )
        store.close()
        assert again.chunks_written == 0 and again.chunks_deleted == 0
    finally:
        _drop(postgres_url, [case.table])
