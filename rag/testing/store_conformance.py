"""The conformance suite every vector store's tests inherit (as Haystack's document stores do).

A store's test class subclasses :class:`StoreConformance` and overrides one fixture,
``store_factory``: a class-scoped fixture returning ``make(name) -> store``. Calling ``make`` with
a new name gives a new, empty store; calling it again with a name already used gives a *new store
object over the same persisted data* (a reopen), which the persistence test relies on. The
suite warms stores up and closes them itself.

Example::

    import pytest
    from rag.connectors.stores.faiss import FaissStore
    from rag.testing import StoreConformance

    class TestFaissStore(StoreConformance):
        @pytest.fixture(scope="class")
        def store_factory(self, tmp_path_factory):
            root = tmp_path_factory.mktemp("faiss")
            return lambda name: FaissStore(path=str(root / name))

A store that cannot support a case overrides the test with ``pytest.skip("reason")``, or sets
:attr:`StoreConformance.persistent` to ``False`` when it keeps nothing across a reopen.

Expected results of filters are computed with :func:`rag.core.filters.matches` over the chunks
written, so every store is held to the one documented semantics; :data:`FILTER_CASES` also
carries hand-written expectations that pin :func:`~rag.core.filters.matches` itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from rag.core.documents import Chunk
from rag.core.errors import DuplicateIdError, FilterError
from rag.core.filters import matches, parse_filter
from rag.core.protocols import WritePolicy

DIMENSION = 12
INJECTION = 'x" or id != "'
"""A value that would widen a query if a store pasted it raw into a query string."""


def _unit(rng: np.random.Generator, dimension: int) -> np.ndarray:
    vector = rng.normal(size=dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def random_chunks(
    count: int,
    *,
    dimension: int = DIMENSION,
    seed: int = 0,
    prefix: str = "c",
    metadata: Callable[[int], dict[str, Any]] | None = None,
) -> list[Chunk]:
    """``count`` chunks with seeded random unit vectors (ids ``{prefix}{i:05d}``)."""
    rng = np.random.default_rng(seed)
    chunks = []
    for i in range(count):
        meta = {"source": f"doc{i % 7}.md", "i": i}
        if metadata is not None:
            meta.update(metadata(i))
        chunks.append(
            Chunk(
                id=f"{prefix}{i:05d}",
                text=f"chunk {i} of {prefix}",
                metadata=meta,
                embedding=_unit(rng, dimension),
            )
        )
    return chunks


# Metadata chosen to exercise every corner of the grammar: strings, ints, floats, booleans,
# lists (empty, mixed), explicit nulls, missing fields, nested dicts, a number stored as a
# string, a 1 that is not True, unicode keys and values, and an injection probe.
FILTER_CORPUS: dict[str, dict[str, Any]] = {
    "m00": {
        "source": "a.md",
        "lang": "en",
        "year": 2019,
        "score": 0.5,
        "draft": False,
        "tags": ["x", "y"],
        "nums": [1, 5],
    },
    "m01": {
        "source": "a.md",
        "lang": "de",
        "year": 2020,
        "score": 1.5,
        "draft": True,
        "tags": ["y"],
    },
    "m02": {"source": "b.md", "lang": "fr", "year": 2021, "draft": False, "tags": []},
    "m03": {"source": "b.md", "lang": "en", "year": 2022.5, "score": -1, "nums": [10]},
    "m04": {"source": "c.md", "year": "2020"},
    "m05": {"source": "c.md", "lang": None, "draft": True},
    "m06": {"source": "d.md", "lang": "EN", "flag": 1},
    "m07": {
        "source": "d.md",
        "lang": "ünïcødé",
        "tags": ["ü", "x"],
        "mixed": [1, "1", True],
        "名前": "値",
    },
    "m08": {"source": "e.md", "year": 2023, "draft": False, "nested": {"a": 1}},
    "m09": {"source": "e.md", "mixed": "1", "score": 0},
    "m10": {"source": "f.md", "lang": "en", "year": 2018, "tags": ["z"], "flag": True},
    "m11": {"source": "f.md", "q": INJECTION, 'we"ird key': "v", "lang": "x"},
}


def filter_corpus_chunks(*, dimension: int = DIMENSION, seed: int = 1) -> list[Chunk]:
    """The chunks of :data:`FILTER_CORPUS` with seeded random unit vectors."""
    rng = np.random.default_rng(seed)
    return [
        Chunk(
            id=cid,
            text=f"text of {cid}",
            metadata=dict(meta),
            embedding=_unit(rng, dimension),
        )
        for cid, meta in FILTER_CORPUS.items()
    ]


@dataclass(frozen=True)
class FilterCase:
    """A filter and, where written by hand, the ids of :data:`FILTER_CORPUS` it must match."""

    name: str
    filters: Mapping[str, Any]
    expected: frozenset[str] | None = None


def _ids(*ids: str) -> frozenset[str]:
    return frozenset(ids)


_ALL = frozenset(FILTER_CORPUS)

FILTER_CASES: list[FilterCase] = [
    # strings
    FilterCase("eq-string", {"lang": "en"}, _ids("m00", "m03", "m10")),
    FilterCase("eq-string-explicit", {"lang": {"$eq": "en"}}, _ids("m00", "m03", "m10")),
    FilterCase("ne-string", {"lang": {"$ne": "en"}}, _ALL - _ids("m00", "m03", "m10")),
    FilterCase("gt-string", {"lang": {"$gt": "e"}}, _ids("m00", "m02", "m03", "m07", "m10", "m11")),
    FilterCase("lte-string", {"lang": {"$lte": "de"}}, _ids("m01", "m06")),
    FilterCase("in-string", {"source": {"$in": ["a.md", "f.md"]}}),
    FilterCase("nin-string", {"lang": {"$nin": ["en", "de"]}}),
    FilterCase("unicode-value", {"lang": "ünïcødé"}, _ids("m07")),
    FilterCase("unicode-key", {"名前": "値"}, _ids("m07")),
    FilterCase("quote-in-key", {'we"ird key': "v"}, _ids("m11")),
    FilterCase("injection-value-exact", {"q": INJECTION}, _ids("m11")),
    FilterCase("injection-value-cannot-widen", {"lang": INJECTION}, frozenset()),
    FilterCase("injection-in", {"source": {"$in": [INJECTION, "a.md"]}}, _ids("m00", "m01")),
    # numbers
    FilterCase("eq-int", {"year": 2020}, _ids("m01")),
    FilterCase("eq-int-as-float", {"year": 2020.0}, _ids("m01")),
    FilterCase("eq-float", {"year": 2022.5}, _ids("m03")),
    FilterCase("ne-int", {"year": {"$ne": 2020}}, _ALL - _ids("m01")),
    FilterCase("gt-int", {"year": {"$gt": 2020}}, _ids("m02", "m03", "m08")),
    FilterCase("gte-int", {"year": {"$gte": 2020}}, _ids("m01", "m02", "m03", "m08")),
    FilterCase("lt-int", {"year": {"$lt": 2020}}, _ids("m00", "m10")),
    FilterCase("lte-int", {"year": {"$lte": 2020}}, _ids("m00", "m01", "m10")),
    FilterCase("range", {"year": {"$gt": 2019, "$lt": 2022}}, _ids("m01", "m02")),
    FilterCase("gt-string-on-numbers", {"year": {"$gt": "2019"}}, _ids("m04")),
    FilterCase("gte-zero-float", {"score": {"$gte": 0}}, _ids("m00", "m01", "m09")),
    FilterCase("lt-float", {"score": {"$lt": 0.5}}, _ids("m03", "m09")),
    FilterCase(
        "in-mixed-types", {"year": {"$in": [2019, 2023, "2020"]}}, _ids("m00", "m04", "m08")
    ),
    FilterCase("nin-int", {"year": {"$nin": [2019, 2023]}}),
    # booleans
    FilterCase("eq-true", {"draft": True}, _ids("m01", "m05")),
    FilterCase("eq-false", {"draft": False}, _ids("m00", "m02", "m08")),
    FilterCase("ne-true", {"draft": {"$ne": True}}, _ALL - _ids("m01", "m05")),
    FilterCase("one-is-not-true", {"flag": 1}, _ids("m06")),
    FilterCase("true-is-not-one", {"flag": True}, _ids("m10")),
    FilterCase("in-bool", {"draft": {"$in": [True]}}, _ids("m01", "m05")),
    # lists
    FilterCase("eq-list-element", {"tags": "y"}, _ids("m00", "m01")),
    FilterCase("in-list", {"tags": {"$in": ["x", "z"]}}, _ids("m00", "m07", "m10")),
    FilterCase("nin-list", {"tags": {"$nin": ["x"]}}, _ALL - _ids("m00", "m07")),
    FilterCase("ne-list", {"tags": {"$ne": "y"}}, _ALL - _ids("m00", "m01")),
    FilterCase("unicode-list-element", {"tags": "ü"}, _ids("m07")),
    FilterCase("gt-list", {"nums": {"$gt": 7}}, _ids("m03")),
    FilterCase("lt-list", {"nums": {"$lt": 2}}, _ids("m00")),
    FilterCase("gte-lte-list", {"nums": {"$gte": 5, "$lte": 5}}, _ids("m00")),
    FilterCase("mixed-list-int", {"mixed": 1}, _ids("m07")),
    FilterCase("mixed-list-string", {"mixed": "1"}, _ids("m07", "m09")),
    FilterCase("mixed-list-bool", {"mixed": True}, _ids("m07")),
    # missing fields, nulls, $exists
    FilterCase("exists-true", {"lang": {"$exists": True}}, _ALL - _ids("m04", "m05", "m08", "m09")),
    FilterCase("exists-false", {"lang": {"$exists": False}}, _ids("m04", "m05", "m08", "m09")),
    FilterCase(
        "exists-empty-list", {"tags": {"$exists": True}}, _ids("m00", "m01", "m02", "m07", "m10")
    ),
    FilterCase("exists-nested", {"nested": {"$exists": True}}, _ids("m08")),
    FilterCase("eq-on-dict", {"nested": 1}, frozenset()),
    FilterCase("missing-field", {"nowhere": "x"}, frozenset()),
    FilterCase("ne-missing-field", {"nowhere": {"$ne": "x"}}, _ALL),
    FilterCase("nin-missing-field", {"nowhere": {"$nin": ["x"]}}, _ALL),
    FilterCase("exists-missing-field", {"nowhere": {"$exists": True}}, frozenset()),
    FilterCase("not-exists-missing-field", {"nowhere": {"$exists": False}}, _ALL),
    FilterCase("gt-missing-field", {"nowhere": {"$gt": 1}}, frozenset()),
    # logic
    FilterCase("implicit-and", {"lang": "en", "year": {"$gt": 2019}}, _ids("m03")),
    FilterCase("and", {"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}]}, _ids("m03")),
    FilterCase("or", {"$or": [{"lang": "de"}, {"draft": True}]}, _ids("m01", "m05")),
    FilterCase("not", {"$not": {"lang": "en"}}, _ALL - _ids("m00", "m03", "m10")),
    FilterCase("field-not", {"lang": {"$not": {"$in": ["en", "de"]}}}),
    FilterCase("not-gt-missing", {"$not": {"year": {"$gt": 2020}}}),
    FilterCase("not-not", {"$not": {"$not": {"draft": True}}}, _ids("m01", "m05")),
    FilterCase(
        "nested-logic",
        {
            "$or": [
                {"$and": [{"source": "a.md"}, {"$not": {"draft": True}}]},
                {"year": {"$gt": 2022}},
                {"tags": {"$exists": False}},
            ]
        },
    ),
    FilterCase(
        "not-or",
        {"$not": {"$or": [{"lang": {"$exists": False}}, {"year": {"$lt": 2020}}]}},
    ),
    FilterCase(
        "and-of-or",
        {
            "$and": [
                {"$or": [{"source": "a.md"}, {"source": "d.md"}]},
                {"$or": [{"lang": {"$in": ["en", "EN"]}}, {"tags": "y"}]},
            ]
        },
        _ids("m00", "m01", "m06"),
    ),
]


def expected_ids(case: FilterCase, corpus: Mapping[str, Mapping[str, Any]] = FILTER_CORPUS) -> set:
    """Ids of ``corpus`` that ``case.filters`` matches, by :func:`rag.core.filters.matches`."""
    node = parse_filter(case.filters)
    return {cid for cid, meta in corpus.items() if matches(node, meta)}


def _close(store: Any) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


_names = itertools.count()


class StoreConformance:
    """Mixin of tests every vector store passes. Override the ``store_factory`` fixture."""

    dimension: int = DIMENSION
    persistent: bool = True
    """Whether a store made again with the same name sees what the first one wrote."""

    @pytest.fixture(scope="class")
    def store_factory(self) -> Callable[[str], Any]:
        raise NotImplementedError(
            f"{type(self).__name__} must override the 'store_factory' fixture "
            "(class-scoped, returning make(name) -> store)"
        )

    @pytest.fixture
    def store(self, store_factory: Callable[[str], Any]) -> Iterator[Any]:
        store = store_factory(f"t{next(_names)}")
        store.warm_up()
        yield store
        _close(store)

    @pytest.fixture(scope="class")
    def filter_store(self, store_factory: Callable[[str], Any]) -> Iterator[Any]:
        store = store_factory(f"filters{next(_names)}")
        store.warm_up()
        store.write(filter_corpus_chunks(dimension=self.dimension))
        yield store
        _close(store)

    # -- helpers -----------------------------------------------------------------------------
    def chunks(self, count: int, **kwargs: Any) -> list[Chunk]:
        return random_chunks(count, dimension=self.dimension, **kwargs)

    def query(self, seed: int = 99) -> np.ndarray:
        return _unit(np.random.default_rng(seed), self.dimension)

    @staticmethod
    def exact_order(chunks: list[Chunk], query: np.ndarray) -> list[str]:
        scores = np.vstack([c.embedding for c in chunks]) @ query
        return [chunks[i].id for i in np.argsort(-scores, kind="stable")]

    # -- write / count / get -----------------------------------------------------------------
    def test_empty_store(self, store: Any) -> None:
        assert store.count() == 0
        assert store.count({"source": "a.md"}) == 0
        assert store.search(self.query(), k=5) == []
        assert store.search(self.query(), k=5, filters={"source": "a.md"}) == []
        assert store.get(["nope"]) == []

    def test_write_count_get(self, store: Any) -> None:
        chunks = self.chunks(20)
        assert store.write(chunks) == 20
        assert store.count() == 20
        assert store.count({"source": "doc0.md"}) == 3  # i = 0, 7, 14
        wanted = [chunks[5].id, "unknown", chunks[2].id]
        got = store.get(wanted)
        assert [c.id for c in got] == [chunks[5].id, chunks[2].id]
        assert got[0].text == chunks[5].text
        assert got[0].metadata == chunks[5].metadata
        np.testing.assert_allclose(got[0].embedding, chunks[5].embedding, rtol=1e-5, atol=1e-6)

    def test_write_empty_batch(self, store: Any) -> None:
        assert store.write([]) == 0
        assert store.count() == 0

    def test_write_without_embedding_is_refused(self, store: Any) -> None:
        chunk = Chunk(id="x", text="no vector", metadata={"source": "a"})
        with pytest.raises(ValueError, match="embedding"):
            store.write([chunk])
        assert store.count() == 0

    def test_dimension_mismatch_is_refused(self, store: Any) -> None:
        store.write(self.chunks(2))
        wrong = random_chunks(1, dimension=self.dimension + 3, prefix="w")
        with pytest.raises(ValueError, match="dimension"):
            store.write(wrong)
        with pytest.raises(ValueError, match="dimension"):
            store.search(np.ones(self.dimension + 3, dtype=np.float32), k=1)

    # -- duplicate policies --------------------------------------------------------------------
    def _changed(self, chunk: Chunk) -> Chunk:
        return Chunk(
            id=chunk.id,
            text=chunk.text + " (v2)",
            metadata={**chunk.metadata, "version": 2},
            embedding=-chunk.embedding,
        )

    def test_upsert_replaces(self, store: Any) -> None:
        chunks = self.chunks(5)
        store.write(chunks)
        new = self._changed(chunks[0])
        assert store.write([new], policy="upsert") == 1
        assert store.count() == 5
        (got,) = store.get([new.id])
        assert got.text.endswith("(v2)")
        assert got.metadata["version"] == 2
        np.testing.assert_allclose(got.embedding, new.embedding, rtol=1e-5, atol=1e-6)
        top = store.search(new.embedding, k=1)[0]
        assert top.id == new.id and top.chunk.text == new.text
        assert store.count({"version": 2}) == 1

    def test_skip_keeps_stored(self, store: Any) -> None:
        chunks = self.chunks(5)
        store.write(chunks)
        extra = self.chunks(1, prefix="n", seed=7)
        written = store.write([self._changed(chunks[1]), *extra], policy=WritePolicy.SKIP)
        assert written == 1
        assert store.count() == 6
        assert store.get([chunks[1].id])[0].text == chunks[1].text
        assert store.count({"version": 2}) == 0

    def test_fail_raises_and_writes_nothing(self, store: Any) -> None:
        chunks = self.chunks(5)
        store.write(chunks)
        extra = self.chunks(2, prefix="n", seed=7)
        with pytest.raises(DuplicateIdError) as info:
            store.write([*extra, self._changed(chunks[3])], policy="fail")
        assert info.value.ids == [chunks[3].id]
        assert store.count() == 5
        assert store.get([e.id for e in extra]) == []
        assert store.get([chunks[3].id])[0].text == chunks[3].text
        assert store.write(extra, policy="fail") == 2

    def test_duplicates_inside_one_batch_last_wins(self, store: Any) -> None:
        (chunk,) = self.chunks(1)
        assert store.write([chunk, self._changed(chunk)]) == 1
        assert store.count() == 1
        assert store.get([chunk.id])[0].text.endswith("(v2)")

    def test_unknown_policy_is_refused(self, store: Any) -> None:
        with pytest.raises(ValueError, match="upsert, skip, fail"):
            store.write(self.chunks(1), policy="replace")

    # -- search -------------------------------------------------------------------------------
    def test_search_ranks_by_inner_product(self, store: Any) -> None:
        chunks = self.chunks(50)
        store.write(chunks)
        query = self.query()
        hits = store.search(query, k=10)
        assert [h.id for h in hits] == self.exact_order(chunks, query)[:10]
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        expected = float(chunks[[c.id for c in chunks].index(hits[0].id)].embedding @ query)
        assert hits[0].score == pytest.approx(expected, abs=1e-4)
        assert hits[0].chunk.text and hits[0].chunk.metadata["source"]

    def test_k_larger_than_store(self, store: Any) -> None:
        store.write(self.chunks(7))
        assert len(store.search(self.query(), k=100)) == 7
        assert len(store.search(self.query(), k=100, filters={"source": "doc1.md"})) == 1

    def test_invalid_k_and_filter_are_refused(self, store: Any) -> None:
        store.write(self.chunks(3))
        with pytest.raises(ValueError):
            store.search(self.query(), k=0)
        with pytest.raises(FilterError):
            store.search(self.query(), k=1, filters={"year": {"$gtx": 1}})
        with pytest.raises(FilterError):
            store.count({"$or": {"a": 1}})

    def test_filtered_search_returns_exactly_k(self, store: Any) -> None:
        chunks = self.chunks(300, metadata=lambda i: {"rare": i % 20 == 0, "bucket": i % 3})
        store.write(chunks)
        query = self.query()
        rare = [c for c in chunks if c.metadata["rare"]]  # 15 chunks
        hits = store.search(query, k=10, filters={"rare": True})
        assert len(hits) == 10
        assert [h.id for h in hits] == self.exact_order(rare, query)[:10]
        hits = store.search(query, k=40, filters={"rare": True})
        assert len(hits) == 15
        hits = store.search(query, k=50, filters={"bucket": {"$in": [1, 2]}, "rare": False})
        assert len(hits) == 50
        assert all(h.chunk.metadata["bucket"] != 0 for h in hits)

    # -- filters --------------------------------------------------------------------------------
    @pytest.mark.parametrize("case", FILTER_CASES, ids=[c.name for c in FILTER_CASES])
    def test_filter_case(self, filter_store: Any, case: FilterCase) -> None:
        expected = expected_ids(case)
        if case.expected is not None:
            assert expected == case.expected, "rag.core.filters.matches disagrees with the case"
        assert filter_store.count(case.filters) == len(expected)
        hits = filter_store.search(self.query(), k=len(FILTER_CORPUS) + 5, filters=case.filters)
        assert {h.id for h in hits} == expected
        assert len(hits) == len(expected)

    def test_injection_cannot_widen_a_query(self, filter_store: Any) -> None:
        for value in (INJECTION, "x' or id != '", 'a") or ("1"=="1', "\\", 'en\\" or "1"=="1'):
            assert filter_store.count({"lang": value}) == 0
            assert filter_store.search(self.query(), k=50, filters={"lang": value}) == []
            assert filter_store.count({"lang": {"$in": [value]}}) == 0
            assert filter_store.count({value: "en"}) == 0

    # -- delete -------------------------------------------------------------------------------
    def test_delete_by_ids(self, store: Any) -> None:
        chunks = self.chunks(10)
        store.write(chunks)
        assert store.delete(ids=[chunks[0].id, chunks[1].id, "unknown"]) == 2
        assert store.count() == 8
        assert store.get([chunks[0].id]) == []
        assert chunks[0].id not in {h.id for h in store.search(chunks[0].embedding, k=10)}
        assert store.delete(ids=[chunks[0].id]) == 0

    def test_delete_by_filter(self, store: Any) -> None:
        chunks = filter_corpus_chunks(dimension=self.dimension)
        store.write(chunks)
        case = FilterCase("d", {"$or": [{"lang": "en"}, {"year": {"$exists": False}}]})
        doomed = expected_ids(case)
        assert store.delete(filters=case.filters) == len(doomed)
        assert store.count() == len(chunks) - len(doomed)
        left = {h.id for h in store.search(self.query(), k=50)}
        assert left == set(FILTER_CORPUS) - doomed

    def test_delete_by_ids_and_filter(self, store: Any) -> None:
        chunks = filter_corpus_chunks(dimension=self.dimension)
        store.write(chunks)
        assert store.delete(ids=["m00", "m01", "m02"], filters={"lang": "en"}) == 1
        assert store.get(["m00"]) == [] and len(store.get(["m01", "m02"])) == 2

    def test_delete_needs_ids_or_filters(self, store: Any) -> None:
        with pytest.raises(ValueError):
            store.delete()

    # -- content --------------------------------------------------------------------------------
    def test_unicode_text_and_metadata_round_trip(self, store: Any) -> None:
        (chunk,) = self.chunks(1)
        chunk.text = 'Grüße 🌍 — 日本語のテキスト, עברית, emoji 👩‍🔬 and "quotes" \\ back'
        chunk.metadata.update({"title": "Ωμέγα ✓", "作者": "李白", "quote": 'say "hi"'})
        store.write([chunk])
        (got,) = store.get([chunk.id])
        assert got.text == chunk.text and got.metadata == chunk.metadata
        assert store.count({"作者": "李白"}) == 1
        assert store.search(chunk.embedding, k=1)[0].chunk.text == chunk.text

    def test_large_metadata_round_trip(self, store: Any) -> None:
        (chunk,) = self.chunks(1)
        chunk.text = "long text " * 2000  # 20 kB
        chunk.metadata.update({f"key{i}": f"value {i} " * 4 for i in range(200)})
        chunk.metadata["blob"] = "x" * 10_000
        chunk.metadata["numbers"] = list(range(500))
        store.write([chunk])
        (got,) = store.get([chunk.id])
        assert got.metadata == chunk.metadata and got.text == chunk.text
        assert store.count({"key199": "value 199 " * 4, "numbers": 499}) == 1

    def test_ten_thousand_chunk_batch(self, store: Any) -> None:
        chunks = self.chunks(10_000, metadata=lambda i: {"even": i % 2 == 0})
        assert store.write(chunks) == 10_000
        assert store.count() == 10_000
        assert store.count({"even": True}) == 5_000
        query = chunks[1235].embedding  # an odd one
        assert store.search(query, k=1)[0].id == chunks[1235].id
        hits = store.search(query, k=3, filters={"even": True})
        assert len(hits) == 3 and all(h.chunk.metadata["even"] for h in hits)

    # -- persistence ----------------------------------------------------------------------------
    def test_reopen_sees_persisted_data(self, store_factory: Callable[[str], Any]) -> None:
        if not self.persistent:
            pytest.skip(f"{type(self).__name__}: this store does not persist across a reopen")
        name = f"reopen{next(_names)}"
        first = store_factory(name)
        first.warm_up()
        chunks = self.chunks(30)
        first.write(chunks)
        first.delete(ids=[chunks[0].id])
        first.write([self._changed(chunks[1])])
        _close(first)
        second = store_factory(name)
        second.warm_up()
        try:
            assert second.count() == 29
            assert second.get([chunks[0].id]) == []
            assert second.get([chunks[1].id])[0].text.endswith("(v2)")
            query = self.query()
            expected = self.exact_order(chunks[2:], query)[:5]
            hits = second.search(query, k=5, filters={"version": {"$exists": False}})
            assert [h.id for h in hits] == expected
            assert second.write(self.chunks(1, prefix="z", seed=3)) == 1
            assert second.count() == 30
        finally:
            _close(second)
