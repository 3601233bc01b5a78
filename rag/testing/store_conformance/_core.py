"""The tests every vector store passes: write, count, get, search, filters, delete, persistence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rag.core.documents import Chunk
from rag.core.errors import DuplicateIdError, FilterError
from rag.core.protocols import WritePolicy
from rag.testing.store_conformance._abilities import ABILITY_CONFORMANCE, declared_abilities
from rag.testing.store_conformance._data import (
    FILTER_CASES,
    FILTER_CORPUS,
    INJECTION,
    FilterCase,
    expected_ids,
    filter_corpus_chunks,
    random_chunks,
)
from rag.testing.store_conformance._fixtures import StoreFixtures, close_store, names

_ABILITY_CLASSES = frozenset(ABILITY_CONFORMANCE.values())


class StoreConformance(StoreFixtures):
    """Mixin of tests every vector store passes. Override the ``store_factory`` fixture.

    It also checks that the test class inherits the conformance class of every ability the
    store declares, and of no other (see :mod:`rag.testing.store_conformance`).
    """

    # -- abilities ------------------------------------------------------------------------------
    def test_declares_exactly_the_abilities_it_is_tested_for(self, store: Any) -> None:
        declared = declared_abilities(store)
        tested = {cls.ability for cls in type(self).__mro__ if cls in _ABILITY_CLASSES}
        missing = sorted(ABILITY_CONFORMANCE[a].__name__ for a in declared - tested)
        extra = sorted(a.__name__ for a in tested - declared)
        assert not missing, (
            f"{type(store).__name__} declares abilities whose tests {type(self).__name__} "
            f"does not run: inherit {', '.join(missing)}"
        )
        assert not extra, (
            f"{type(self).__name__} tests abilities {', '.join(extra)} that "
            f"{type(store).__name__} does not declare (rag.core.protocols)"
        )

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
        name = f"reopen{next(names)}"
        first = store_factory(name)
        first.warm_up()
        chunks = self.chunks(30)
        first.write(chunks)
        first.delete(ids=[chunks[0].id])
        first.write([self._changed(chunks[1])])
        close_store(first)
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
            close_store(second)
