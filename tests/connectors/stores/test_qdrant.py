"""store.qdrant: the conformance suite on Qdrant's local mode (embedded, on disk) and, when
``QDRANT_URL`` is set, on a live server; injection probes, bad input, translation."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

pytest.importorskip(
    "qdrant_client", reason="qdrant-client is not installed: pip install 'ragline[qdrant]'"
)

from qdrant_client import models

from rag.connectors.stores.qdrant import (
    QdrantStore,
    chunk_payload,
    field_name,
    to_qdrant_filter,
)
from rag.core.documents import Chunk
from rag.core.errors import ConfigError, StoreUnavailableError
from rag.core.filters import parse_filter
from rag.core.secrets import Secret
from rag.testing import StoreConformance, random_chunks
from tests.connectors.stores.abilities import QdrantAbilities
from tests.postgres_server import free_port

QDRANT_URL = os.environ.get("QDRANT_URL")


@pytest.mark.integration
class TestQdrantLocal(StoreConformance, QdrantAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        root = tmp_path_factory.mktemp("qdrant")
        return lambda name: QdrantStore(path=str(root / name), collection="chunks")


@pytest.mark.integration
class TestQdrantInMemory(StoreConformance, QdrantAbilities):
    persistent = False

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls):
        return lambda name: QdrantStore(collection="chunks")

    def test_ten_thousand_chunk_batch(self, store):
        pytest.skip("covered by TestQdrantLocal; one 10k batch per store")


@pytest.mark.integration
@pytest.mark.skipif(
    not QDRANT_URL,
    reason="needs a Qdrant server: set QDRANT_URL (and QDRANT_API_KEY if it wants one); start "
    "one with: docker run -p 6333:6333 qdrant/qdrant (see docs/stores.md)",
)
class TestQdrantServer(StoreConformance, QdrantAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls):
        run = uuid.uuid4().hex[:8]
        made: list[QdrantStore] = []
        key = Secret("QDRANT_API_KEY") if os.environ.get("QDRANT_API_KEY") else None

        def make(name):
            store = QdrantStore(
                url=QDRANT_URL,
                collection=f"ragline_test_{run}_{name}",
                api_key=key,
                indexed_fields={"source": "keyword", "year": "float"},
            )
            made.append(store)
            return store

        yield make
        for store in made:  # drop the test collections
            store.warm_up()
            store.client.delete_collection(store.collection)
            store.close()


# -- values are typed model fields -------------------------------------------------------------
HOSTILE = [
    'x" or id != "',
    "'; DROP TABLE x; --",
    '{"$ne": null}',
    '{"must": []}',
    "a.b[0].c",
    "metadata",
    "s_lang",
    '\\"',
    "*",
]


@pytest.mark.unit
def test_values_travel_as_model_fields():
    where = to_qdrant_filter(parse_filter({"lang": HOSTILE[0]}))
    (condition,) = where.must
    assert condition.key == "s_lang"
    assert condition.match == models.MatchValue(value=HOSTILE[0])
    where = to_qdrant_filter(parse_filter({"a.b[0]": {"$in": ["x", 2.5, True]}}))
    keys = {c.key for c in where.should}
    assert keys == {field_name(k, "a.b[0]") for k in "snb"}
    assert all("." not in k and "[" not in k for k in keys)


@pytest.mark.integration
def test_quotes_and_json_metacharacters_are_values(tmp_path):
    store = QdrantStore(path=str(tmp_path / "q"), collection="hostile")
    chunks = random_chunks(len(HOSTILE) + 1, dimension=4)
    for chunk, value in zip(chunks, HOSTILE):
        chunk.metadata.update({"q": value, f"k{value}": "key-probe"})
    chunks[-1].metadata["lang"] = "en"
    store.write(chunks)
    for value, chunk in zip(HOSTILE, chunks):
        hits = store.search(chunk.embedding, k=50, filters={"q": value})
        assert [h.id for h in hits] == [chunk.id]
        assert store.count({f"k{value}": "key-probe"}) == 1
        assert store.count({"q": {"$in": [value]}}) == 1
        assert store.count({"q": {"$gte": value, "$lte": value}}) == 1
        assert store.count({"lang": value}) == 0
        assert store.count({"q": {"$ne": value}}) == len(chunks) - 1
    assert store.delete(filters={"q": HOSTILE[1]}) == 1
    assert store.count() == len(chunks) - 1
    store.close()


@pytest.mark.unit
def test_payload_splits_values_by_type():
    payload = chunk_payload(
        Chunk(id="c", text="t", metadata={"m": [1, "1", True, None, {"x": 1}], "z": None, "A": 2})
    )
    assert payload["present"] == ["m", "A"]
    assert payload["n_m"] == [1] and payload["s_m"] == ["1"] and payload["b_m"] == [True]
    assert payload[field_name("n", "A")] == [2] and field_name("n", "A") == "n__41"


# -- bad input ----------------------------------------------------------------------------------------
@pytest.mark.integration
def test_unreachable_server_names_the_url_and_the_setting():
    url = f"http://127.0.0.1:{free_port()}"
    store = QdrantStore(url=url, timeout=3)
    with pytest.raises(StoreUnavailableError) as info:
        store.count()
    assert f"cannot reach {url} (setting 'url')" in str(info.value)
    assert info.value.__suppress_context__


@pytest.mark.integration
def test_dimension_mismatch_with_an_existing_collection_is_refused_before_writing(tmp_path):
    path = str(tmp_path / "q")
    first = QdrantStore(path=path, collection="docs")
    first.write(random_chunks(3, dimension=4))
    first.close()
    with pytest.raises(ConfigError, match="4-dimensional.*dimension=8"):
        QdrantStore(path=path, collection="docs", dimension=8).warm_up()
    with pytest.raises(ConfigError, match="metric 'ip'"):
        QdrantStore(path=path, collection="docs", metric="l2").warm_up()
    second = QdrantStore(path=path, collection="docs")
    with pytest.raises(ValueError, match="dimension"):
        second.write(random_chunks(2, dimension=8, prefix="w"))
    assert second.count() == 3
    second.close()


@pytest.mark.integration
def test_local_storage_open_twice_is_a_clear_error(tmp_path):
    path = str(tmp_path / "q")
    first = QdrantStore(path=path)
    first.warm_up()
    with pytest.raises(ConfigError, match="open in another process"):
        QdrantStore(path=path).warm_up()
    first.close()


@pytest.mark.unit
def test_configuration_is_checked_and_round_trips(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        QdrantStore(path="a", url="http://localhost:6333")
    with pytest.raises(ConfigError, match="http"):
        QdrantStore(url="localhost:6333")
    with pytest.raises(ConfigError, match="indexed_fields.year"):
        QdrantStore(indexed_fields={"year": "integer"})
    store = QdrantStore(
        url="https://q.example:6333", collection="docs", api_key="${QDRANT_API_KEY}"
    )
    data = store.to_dict()
    assert data["init_parameters"]["api_key"] == "${QDRANT_API_KEY}"
    assert QdrantStore.from_dict(data) == store
    assert store.records_location().endswith("qdrant-q.example-6333-docs.records.sqlite")
    local = QdrantStore(path=str(tmp_path / "q"), collection="docs")
    assert local.records_location() == f"{tmp_path / 'q'}.docs.records.sqlite"
    assert QdrantStore().records_location() == ":memory:"


@pytest.mark.integration
def test_stats_and_iteration(tmp_path):
    store = QdrantStore(path=str(tmp_path / "q"), collection="docs")
    chunks = [
        Chunk(id=f"i{i}", text=f"t{i}", metadata={"source": f"s{i % 2}"}, embedding=np.eye(4)[i])
        for i in range(4)
    ]
    store.write(chunks)
    assert store.stats() == {"chunks": 4, "sources": 2, "dimension": 4}
    assert sorted(store.ids()) == ["i0", "i1", "i2", "i3"]
    assert sorted(c.text for c in store.iter_chunks(batch_size=3)) == ["t0", "t1", "t2", "t3"]
    store.clear()
    assert store.count() == 0
    store.close()


@pytest.mark.integration
@pytest.mark.slow
def test_incremental_ingest_keeps_records_beside_the_local_directory(embedder, tmp_path):
    from rag.pipelines.ingest import run_ingest
    from tests.pipelines.ingest_helpers import expected_chunks, make_pipeline, write_corpus

    corpus = write_corpus(tmp_path / "corpus")
    path = str(tmp_path / "q")
    store = QdrantStore(path=path, collection="docs")
    first = run_ingest(make_pipeline(embedder, store), [corpus], progress=False)
    assert first.errors == [] and first.chunks_written == len(expected_chunks(corpus))
    again = run_ingest(make_pipeline(embedder, store), [corpus], progress=False)
    assert again.chunks_written == 0
    write_corpus(corpus, version=2)
    run_ingest(make_pipeline(embedder, store), [corpus], mode="full", progress=False)
    stored = {c.id: c.text for c in store.get(store.ids())}
    assert stored == expected_chunks(corpus)
    store.close()
    assert (tmp_path / "q.docs.records.sqlite").exists()


@pytest.mark.integration
def test_unreachable_server_on_the_command_line_is_one_line(tmp_path):
    import subprocess
    import sys

    url = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        f"components:\n  store:\n    type: store.qdrant\n    init_parameters: {{url: '{url}'}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "stats", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    assert f"error: store.qdrant: cannot reach {url} (setting 'url')" in result.stderr
