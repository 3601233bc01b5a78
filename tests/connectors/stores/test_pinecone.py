"""store.pinecone through the real ``pinecone`` client: the conformance suite against a loopback
server implementing Pinecone's data-plane REST subset (tests/connectors/stores/pinecone_server.py),
and against a real index when ``PINECONE_API_KEY`` and ``PINECONE_HOST`` are set; the filter
mapping, limits, retries and bad input."""

from __future__ import annotations

import os
import uuid

import pytest

pytest.importorskip("pinecone", reason="pinecone is not installed: pip install 'ragline[pinecone]'")

from rag.connectors.stores.pinecone import (
    PineconeStore,
    to_pinecone_filter,
    vector_metadata,
)
from rag.core.documents import Chunk
from rag.core.errors import ConfigError, FilterError, StoreUnavailableError
from rag.core.filters import parse_filter
from rag.core.secrets import Secret
from rag.testing import FILTER_CASES, StoreConformance, filter_corpus_chunks, random_chunks
from rag.testing.store_conformance import DIMENSION, INJECTION, expected_ids
from tests.connectors.stores.abilities import PineconeAbilities
from tests.connectors.stores.pinecone_server import (
    PineconeLikeServer,
    matches,
    pinecone_like_server,
)
from tests.postgres_server import free_port

LIVE_KEY = os.environ.get("PINECONE_API_KEY")
LIVE_HOST = os.environ.get("PINECONE_HOST")
STRING_ORDER_CASES = {"gt-string", "lte-string", "gt-string-on-numbers"}


@pytest.fixture(autouse=True, scope="module")
def _api_key():
    with pytest.MonkeyPatch.context() as patch:
        if not LIVE_KEY:
            patch.setenv("PINECONE_API_KEY", "loopback-test-key")
        yield


class PineconeConformance(StoreConformance, PineconeAbilities):
    """What differs on Pinecone by design, shared by the loopback and the live runs."""

    @pytest.mark.parametrize("case", FILTER_CASES, ids=[c.name for c in FILTER_CASES])
    def test_filter_case(self, filter_store, case):
        if case.name in STRING_ORDER_CASES:
            with pytest.raises(FilterError, match="order numbers only"):
                filter_store.count(case.filters)
            with pytest.raises(FilterError, match="order numbers only"):
                filter_store.search(self.query(), k=5, filters=case.filters)
            return
        super().test_filter_case(filter_store, case)

    def test_large_metadata_round_trip(self, store):
        """Pinecone keeps at most 40 KB of metadata per vector: refused, clearly, up front."""
        (chunk,) = self.chunks(1)
        chunk.text = "long text " * 2000
        chunk.metadata["blob"] = "x" * 15_000
        with pytest.raises(ValueError, match="40 KB"):
            store.write([chunk])
        assert store.count() == 0
        chunk.text = "long text " * 500  # 5 kB of text and 100 keys fit
        chunk.metadata.update({f"key{i}": f"value {i} " * 4 for i in range(100)})
        chunk.metadata["numbers"] = list(range(100))
        del chunk.metadata["blob"]
        store.write([chunk])
        (got,) = store.get([chunk.id])
        assert got.metadata == chunk.metadata and got.text == chunk.text
        assert store.count({"key99": "value 99 " * 4, "numbers": 99}) == 1


@pytest.mark.integration
class TestPineconeLoopback(PineconeConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls):
        with pinecone_like_server(DIMENSION) as server:
            yield server

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, server):
        return lambda name: PineconeStore(host=server.host, namespace=name, retry_backoff=0.01)


@pytest.mark.integration
@pytest.mark.skipif(
    not (LIVE_KEY and LIVE_HOST),
    reason="needs a Pinecone index: set PINECONE_API_KEY and PINECONE_HOST (the host of an "
    f"index of dimension {DIMENSION}, metric dotproduct); see docs/stores.md",
)
class TestPineconeLive(PineconeConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls):
        run = uuid.uuid4().hex[:8]
        made: list[PineconeStore] = []

        def make(name):
            store = PineconeStore(host=LIVE_HOST, namespace=f"ragline-test-{run}-{name}")
            made.append(store)
            return store

        yield make
        for store in made:
            store.clear()
            store.close()


# -- the filter mapping, proven against the loopback server's Pinecone semantics ---------------------
@pytest.mark.unit
@pytest.mark.parametrize("case", FILTER_CASES, ids=[c.name for c in FILTER_CASES])
def test_mapping_is_exact_under_pinecone_semantics(case):
    chunks = {c.id: vector_metadata(c) for c in filter_corpus_chunks()}
    if case.name in STRING_ORDER_CASES:
        with pytest.raises(FilterError, match="order numbers only"):
            to_pinecone_filter(parse_filter(case.filters))
        return
    where = to_pinecone_filter(parse_filter(case.filters))
    if where is True or where is False:
        got = set(chunks) if where else set()
    else:
        got = {cid for cid, meta in chunks.items() if matches(where, meta)}
    assert got == expected_ids(case)


@pytest.mark.unit
def test_filters_are_json_values_and_negations_are_guarded():
    where = to_pinecone_filter(parse_filter({"lang": INJECTION}))
    assert where == {"s:lang": {"$in": [INJECTION]}}
    assert to_pinecone_filter(parse_filter({"$not": {"year": {"$gt": 2020}}})) == {
        "$or": [{"nmax:year": {"$exists": False}}, {"nmax:year": {"$lte": 2020}}]
    }
    assert to_pinecone_filter(parse_filter({"year": {"$in": []}})) is False
    assert to_pinecone_filter(parse_filter({"year": {"$nin": []}})) is True


@pytest.mark.unit
def test_metadata_is_what_pinecone_accepts():
    meta = vector_metadata(
        Chunk(id="c", text="t", metadata={"m": [1, "1", True, None], "z": None, "d": {"a": 1}})
    )
    for value in meta.values():
        assert isinstance(value, (str, int, float, bool)) or all(isinstance(v, str) for v in value)
    assert meta["_present"] == ["m", "d"]
    assert meta["n:m"] == ["1.0"] and meta["s:m"] == ["1"] and meta["b:m"] == ["true"]


# -- limits, retries, bad input --------------------------------------------------------------------------
@pytest.fixture
def server():
    with pinecone_like_server(4) as server:
        yield server


@pytest.mark.integration
def test_upserts_are_batched_within_pinecone_limits(server: PineconeLikeServer):
    store = PineconeStore(host=server.host, batch_size=1000)
    chunks = random_chunks(2_500, dimension=4)
    for chunk in chunks:
        chunk.text = "y" * 2_000  # ~2 kB of metadata each: 2 MB stops a batch before 1,000 do
    assert store.write(chunks) == 2_500
    upserts = [r for r in server.requests if r == "POST /vectors/upsert"]
    assert len(upserts) >= 3, "2,500 vectors of ~2 kB need at least three 2 MB requests"
    assert store.count() == 2_500
    store.close()


@pytest.mark.integration
def test_429_and_5xx_are_retried(server: PineconeLikeServer):
    store = PineconeStore(host=server.host, retry_backoff=0.01)
    store.warm_up()
    # more failures than the client's own retries (3): the store's retries take over
    server.fail_next(429, times=4)
    server.fail_next(503, times=3)
    assert store.write(random_chunks(3, dimension=4)) == 3
    assert store.count() == 3
    assert server.requests.count("POST /vectors/upsert") == 8
    server.fail_next(500, times=50)
    with pytest.raises(Exception, match="500"):
        PineconeStore(host=server.host, max_retries=1, retry_backoff=0.01).count()
    server._failures.clear()
    store.close()


@pytest.mark.integration
def test_namespaces_keep_stores_apart(server: PineconeLikeServer):
    a = PineconeStore(host=server.host, namespace="a")
    b = PineconeStore(host=server.host, namespace="b")
    a.write(random_chunks(3, dimension=4))
    b.write(random_chunks(2, dimension=4, prefix="b"))
    assert (a.count(), b.count()) == (3, 2)
    assert b.get(["c00000"]) == [] and len(a.get(["c00000"])) == 1
    a.clear()
    assert (a.count(), b.count()) == (0, 2)


@pytest.mark.integration
def test_counts_past_one_query_fall_back_to_listing(server: PineconeLikeServer, monkeypatch):
    import rag.connectors.stores.pinecone as module

    monkeypatch.setattr(module, "MAX_TOP_K", 5)  # as if the namespace held over 10,000
    store = PineconeStore(host=server.host)
    store.write(random_chunks(12, dimension=4, metadata=lambda i: {"even": i % 2 == 0}))
    assert store.count({"even": True}) == 6
    assert store.delete(filters={"even": False}) == 6
    assert store.count() == 6


@pytest.mark.integration
def test_unreachable_host_names_the_url_and_the_setting():
    host = f"http://127.0.0.1:{free_port()}"
    store = PineconeStore(host=host, timeout=3)
    with pytest.raises(StoreUnavailableError) as info:
        store.count()
    assert f"cannot reach {host} (setting 'host')" in str(info.value)
    assert info.value.__suppress_context__


@pytest.mark.integration
def test_dimension_mismatch_with_the_index_is_refused_before_writing(server: PineconeLikeServer):
    with pytest.raises(ConfigError, match="4-dimensional.*dimension=8"):
        PineconeStore(host=server.host, dimension=8).warm_up()
    store = PineconeStore(host=server.host)
    with pytest.raises(ValueError, match="dimension"):
        store.write(random_chunks(2, dimension=8))
    assert "POST /vectors/upsert" not in server.requests


@pytest.mark.integration
def test_non_ascii_ids_are_refused(server: PineconeLikeServer):
    (chunk,) = random_chunks(1, dimension=4)
    chunk.id = "naïve"
    with pytest.raises(ValueError, match="ASCII"):
        PineconeStore(host=server.host).write([chunk])


@pytest.mark.unit
def test_configuration_is_checked_and_round_trips(monkeypatch):
    with pytest.raises(ConfigError, match="batch_size"):
        PineconeStore(host="https://x.pinecone.io", batch_size=5000)
    with pytest.raises(ConfigError, match="host"):
        PineconeStore(host="ftp://x")
    store = PineconeStore(
        host="https://docs-1.svc.pinecone.io", api_key=Secret("PC_KEY"), namespace="n"
    )
    data = store.to_dict()
    assert data["init_parameters"]["api_key"] == "${PC_KEY}"
    assert PineconeStore.from_dict(data) == store
    assert store.records_location().endswith("pinecone-docs-1.svc.pinecone.io-n.records.sqlite")
    monkeypatch.delenv("PC_KEY", raising=False)
    from rag.core.errors import MissingEnvVarError

    with pytest.raises(MissingEnvVarError, match="PC_KEY"):
        store.warm_up()


@pytest.mark.integration
@pytest.mark.slow
def test_incremental_ingest_with_records(embedder, tmp_path, monkeypatch):
    from rag.pipelines.ingest import run_ingest
    from tests.pipelines.ingest_helpers import expected_chunks, make_pipeline, write_corpus

    monkeypatch.chdir(tmp_path)  # records default to ./.rag/records/
    corpus = write_corpus(tmp_path / "corpus")
    with pinecone_like_server(384) as server:
        store = PineconeStore(host=server.host, namespace="docs")
        first = run_ingest(make_pipeline(embedder, store), [corpus], progress=False)
        assert first.errors == [] and first.chunks_written == len(expected_chunks(corpus))
        again = run_ingest(make_pipeline(embedder, store), [corpus], progress=False)
        assert again.chunks_written == 0
        write_corpus(corpus, version=2)
        run_ingest(make_pipeline(embedder, store), [corpus], mode="full", progress=False)
        assert {c.id: c.text for c in store.get(store.ids())} == expected_chunks(corpus)
        store.close()
    assert list((tmp_path / ".rag" / "records").glob("pinecone-127.0.0.1-docs.records.sqlite"))


@pytest.mark.integration
def test_unreachable_host_on_the_command_line_is_one_line(tmp_path):
    import subprocess
    import sys

    host = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"components:\n  store:\n    type: store.pinecone\n    init_parameters: {{host: '{host}'}}\n"
    )
    env = {**os.environ, "PINECONE_API_KEY": "loopback-test-key"}
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "stats", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: store.pinecone: cannot reach {host} (setting 'host')" in result.stderr
