"""store.faiss with compressed indexes (int8, binary + rescoring): conformance and quality."""

from __future__ import annotations

import numpy as np
import pytest

from rag.connectors.stores import _faiss_index
from rag.connectors.stores.faiss import FaissStore
from rag.core.errors import ConfigError
from rag.testing import StoreConformance, random_chunks
from tests.connectors.stores.abilities import FaissAbilities

pytestmark = pytest.mark.integration


class TestFaissInt8(StoreConformance, FaissAbilities):
    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        root = tmp_path_factory.mktemp("faiss-int8")
        return lambda name: FaissStore(path=str(root / name), index="int8")


class TestFaissBinaryInt8Rescore(StoreConformance, FaissAbilities):
    dimension = 16  # sign bits are packed by 8

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        root = tmp_path_factory.mktemp("faiss-binary")
        return lambda name: FaissStore(path=str(root / name), index="binary")


class TestFaissBinaryFloatRescore(StoreConformance, FaissAbilities):
    dimension = 16

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls, tmp_path_factory):
        root = tmp_path_factory.mktemp("faiss-binary-float")
        return lambda name: FaissStore(path=str(root / name), index="binary", rescore="float")


def _ranks_with_approximate_scores(test: StoreConformance, store, tolerance: float) -> None:
    """The conformance ranking test, with scores compared to within the codes' precision."""
    chunks = test.chunks(50)
    store.write(chunks)
    query = test.query()
    hits = store.search(query, k=10)
    assert [h.id for h in hits] == test.exact_order(chunks, query)[:10]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    vectors = {c.id: c.embedding for c in chunks}
    for hit in hits:
        assert hit.score == pytest.approx(float(vectors[hit.id] @ query), abs=tolerance)


# int8 codes score to about 1/255 of each dimension's range: order exact here, scores close.
TestFaissInt8.test_search_ranks_by_inner_product = (  # type: ignore[method-assign]
    lambda self, store: _ranks_with_approximate_scores(self, store, 0.02)
)
TestFaissBinaryInt8Rescore.test_search_ranks_by_inner_product = (  # type: ignore[method-assign]
    lambda self, store: _ranks_with_approximate_scores(self, store, 0.02)
)


def clustered(count: int, dimension: int = 64, *, seed: int = 0, clusters: int = 40):
    """Unit vectors around a shared direction and a few cluster centres, like text embeddings."""
    shape = np.random.default_rng(12345)  # the same centres for stored vectors and queries
    common = shape.standard_normal(dimension)
    centres = shape.standard_normal((clusters, dimension))
    rng = np.random.default_rng(seed)
    vectors = 0.6 * common + centres[rng.integers(0, clusters, count)]
    vectors += 0.5 * rng.standard_normal((count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _recall_at_10(store: FaissStore, vectors: np.ndarray, queries: np.ndarray, filters=None):
    ids = np.array([f"v{i:05d}" for i in range(len(vectors))])
    found = 0
    for query in queries:
        scores = vectors @ query
        if filters is not None:
            scores = np.where(np.arange(len(vectors)) % 10 == 3, scores, -np.inf)
        truth = set(ids[np.argsort(-scores)[:10]])
        found += len(truth & {h.id for h in store.search(query, k=10, filters=filters)})
    return found / (10 * len(queries))


def _filled(path, index: str, vectors: np.ndarray, **options) -> FaissStore:
    from rag.core.documents import Chunk

    store = FaissStore(path=str(path), index=index, **options)
    for start in range(0, len(vectors), 500):  # several writes: training, then retraining
        store.write(
            [
                Chunk(
                    id=f"v{i:05d}",
                    text=f"text {i}",
                    metadata={"source": f"s{i % 10}.md", "b10": i % 10},
                    embedding=vectors[i],
                )
                for i in range(start, min(start + 500, len(vectors)))
            ]
        )
    return store


@pytest.mark.parametrize(
    ("index", "options", "least"),
    [("int8", {}, 0.95), ("binary", {}, 0.95), ("binary", {"rescore": "float"}, 0.95)],
)
def test_recall_against_exact_search(tmp_path, index, options, least):
    vectors = clustered(3000)
    queries = clustered(40, seed=1)
    store = _filled(tmp_path / "s", index, vectors, **options)
    assert _recall_at_10(store, vectors, queries) >= least
    assert _recall_at_10(store, vectors, queries, filters={"b10": 3}) >= least
    store.close()
    reopened = FaissStore(path=str(tmp_path / "s"), index=index, **options)
    assert _recall_at_10(reopened, vectors, queries) >= least  # the saved codes, not a rebuild
    reopened.close()


def test_codes_retrain_as_the_store_grows(tmp_path):
    vectors = clustered(2600)
    store = FaissStore(path=str(tmp_path / "s"), index="int8")
    from rag.core.documents import Chunk

    def write(start, stop):
        store.write(
            [
                Chunk(id=f"v{i:05d}", text="t", metadata={"source": "a"}, embedding=vectors[i])
                for i in range(start, stop)
            ]
        )

    write(0, 20)
    assert store._index.trained_on == 20
    write(20, 2600)
    assert store._index.trained_on == 2600  # grown past twice its sample: trained again
    assert _recall_at_10(store, vectors, clustered(20, seed=1)) >= 0.95
    store.close()


def test_memory_per_vector():
    vectors = clustered(100, dimension=384)
    int8 = _faiss_index.new_index("int8", 384, "ip")
    binary = _faiss_index.new_index("binary", 384, "ip")
    binary_float = _faiss_index.new_index("binary", 384, "ip", rescore="float")
    for index in (int8, binary, binary_float):
        index.add(vectors)
    assert int8.bytes_per_vector() == 384
    assert binary.bytes_per_vector() == 384 / 8 + 384
    assert binary_float.bytes_per_vector() == 384 / 8 + 4 * 384


def test_switching_index_kind_rebuilds_from_sqlite(tmp_path):
    vectors = clustered(600)
    queries = clustered(10, seed=1)
    _filled(tmp_path / "s", "flat", vectors).close()
    for index in ("int8", "binary", "flat"):
        store = FaissStore(path=str(tmp_path / "s"), index=index)
        assert store.count() == 600
        assert _recall_at_10(store, vectors, queries) >= 0.9
        store.close()


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="rescore must be one of int8, float"):
        FaissStore(index="binary", rescore="fp16")
    with pytest.raises(ConfigError, match="rescore_factor"):
        FaissStore(index="binary", rescore_factor=0)
    with pytest.raises(ConfigError, match="divisible by 8"):
        FaissStore(index="binary", dimension=12)
    store = FaissStore(index="binary")
    with pytest.raises(ConfigError, match="divisible by 8"):
        store.write(random_chunks(3, dimension=12))
