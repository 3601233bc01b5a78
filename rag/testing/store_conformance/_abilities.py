"""One conformance class per optional store ability (:data:`rag.core.protocols.STORE_ABILITIES`).

A store's test class inherits :class:`~rag.testing.store_conformance.StoreConformance` and the
class of every ability its store declares; ``StoreConformance`` checks that the two lists agree,
so a store cannot declare an ability and skip its tests (nor pass tests of one it lacks).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from rag.core.documents import Chunk
from rag.core.protocols import (
    Clearable,
    Closable,
    ConcurrentWriters,
    Enumerable,
    Fingerprinted,
    Flushable,
    OwnsRecordsLocation,
    ReportsStats,
)
from rag.testing.store_conformance._fixtures import StoreFixtures, close_store, names


class AbilityConformance(StoreFixtures):
    """Base of the per-ability classes: ``ability`` names the protocol a class tests.

    Each subclass gets a test of its own, ``test_store_is_<ability>``, that the store implements
    the protocol (one per class, so a test class inheriting several runs them all).
    """

    ability: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ability = cls.__dict__.get("ability")
        if ability is None:
            return

        def test(self: AbilityConformance, store: Any) -> None:
            assert isinstance(store, ability), (
                f"{type(store).__name__} is tested as {ability.__name__} but does not "
                f"implement it (see {ability.__name__} in rag.core.protocols)"
            )

        test.__name__ = f"test_store_is_{ability.__name__.lower()}"
        test.__qualname__ = f"{cls.__qualname__}.{test.__name__}"
        setattr(cls, test.__name__, test)


class FlushableConformance(AbilityConformance):
    """``flush()`` makes every written chunk searchable; it may be called at any time."""

    ability = Flushable

    def test_flush_on_an_empty_store(self, store: Any) -> None:
        store.flush()
        store.flush()
        assert store.count() == 0

    def test_flush_makes_writes_searchable(self, store: Any) -> None:
        chunks = self.chunks(15)
        store.write(chunks)
        store.flush()
        assert store.count() == 15
        assert store.search(chunks[4].embedding, k=1)[0].id == chunks[4].id
        store.delete(ids=[chunks[4].id])
        store.flush()
        assert store.count() == 14
        assert chunks[4].id not in {h.id for h in store.search(chunks[4].embedding, k=5)}

    def test_flushed_writes_survive_a_reopen(self, store_factory: Callable[[str], Any]) -> None:
        if not self.persistent:
            pytest.skip(f"{type(self).__name__}: this store does not persist across a reopen")
        name = f"flush{next(names)}"
        first = store_factory(name)
        first.warm_up()
        first.write(self.chunks(6))
        first.flush()
        close_store(first)
        second = store_factory(name)
        second.warm_up()
        try:
            assert second.count() == 6
        finally:
            close_store(second)


class ClosableConformance(AbilityConformance):
    """``close()`` releases the store's connection, file lock or server; closing twice is fine.

    Every store of ragline opens again on its next use after ``close()`` (``warm_up`` is
    idempotent); a store that refuses use after ``close()`` sets ``reopens_on_use = False``
    and must then raise an error naming the store as closed.
    """

    ability = Closable
    reopens_on_use: ClassVar[bool] = True

    def test_close_twice(self, store: Any) -> None:
        store.write(self.chunks(3))
        store.close()
        store.close()

    def test_close_before_warm_up(self, store_factory: Callable[[str], Any]) -> None:
        store_factory(f"never{next(names)}").close()

    def test_use_after_close(self, store: Any) -> None:
        chunks = self.chunks(5)
        store.write(chunks)
        store.close()
        if not self.reopens_on_use:
            with pytest.raises(Exception, match="closed"):
                store.count()
            return
        expected = 5 if self.persistent else 0
        assert store.count() == expected
        assert store.write(self.chunks(2, prefix="after", seed=5)) == 2
        assert store.count() == expected + 2

    def test_close_lets_another_store_open_the_data(
        self, store_factory: Callable[[str], Any]
    ) -> None:
        if not self.persistent:
            pytest.skip(f"{type(self).__name__}: this store does not persist across a reopen")
        name = f"close{next(names)}"
        first = store_factory(name)
        first.warm_up()
        first.write(self.chunks(4))
        first.close()
        second = store_factory(name)
        second.warm_up()
        try:
            assert second.count() == 4
            assert second.write(self.chunks(1, prefix="z", seed=3)) == 1
        finally:
            second.close()


class ClearableConformance(AbilityConformance):
    """``clear()`` drops every chunk and leaves the store writable."""

    ability = Clearable

    def test_clear_on_an_empty_store(self, store: Any) -> None:
        store.clear()
        assert store.count() == 0

    def test_clear_empties_and_stays_writable(self, store: Any) -> None:
        chunks = self.chunks(12)
        store.write(chunks)
        store.clear()
        assert store.count() == 0
        assert store.count({"source": "doc0.md"}) == 0
        assert store.get([c.id for c in chunks]) == []
        assert store.search(self.query(), k=5) == []
        again = self.chunks(3, prefix="n", seed=4)
        assert store.write(again) == 3
        assert store.count() == 3
        assert store.search(again[1].embedding, k=1)[0].id == again[1].id
        # a chunk id written before the clear is new again
        assert store.write([chunks[0]], policy="fail") == 1


class EnumerableConformance(AbilityConformance):
    """``ids()`` lists every stored id once; ``iter_chunks()`` yields every chunk once, with
    its text and metadata."""

    ability = Enumerable

    def test_ids_and_chunks_of_an_empty_store(self, store: Any) -> None:
        assert store.ids() == []
        assert list(store.iter_chunks()) == []

    def test_ids_match_count(self, store: Any) -> None:
        chunks = self.chunks(25)
        store.write(chunks)
        store.delete(ids=[chunks[0].id, chunks[7].id])
        ids = store.ids()
        assert len(ids) == len(set(ids)) == store.count() == 23
        assert set(ids) == {c.id for c in chunks} - {chunks[0].id, chunks[7].id}

    def test_iter_chunks_yields_every_chunk_once(self, store: Any) -> None:
        chunks = self.chunks(25, metadata=lambda i: {"tags": [i % 3, "t"], "even": i % 2 == 0})
        store.write(chunks)
        changed = Chunk(
            id=chunks[3].id,
            text="changed text",
            metadata={**chunks[3].metadata, "version": 2},
            embedding=chunks[3].embedding,
        )
        store.write([changed])
        seen = list(store.iter_chunks(batch_size=7))
        assert sorted(c.id for c in seen) == sorted(c.id for c in chunks)
        written = {c.id: c for c in [*chunks[:3], changed, *chunks[4:]]}
        for chunk in seen:
            assert chunk.text == written[chunk.id].text
            assert chunk.metadata == written[chunk.id].metadata


class FingerprintedConformance(AbilityConformance):
    """``fingerprint()`` changes after every write and delete, and not after a read."""

    ability = Fingerprinted

    def test_fingerprint_follows_the_contents(self, store: Any) -> None:
        empty = store.fingerprint()
        assert isinstance(empty, str) and empty
        chunks = self.chunks(10)
        store.write(chunks)
        written = store.fingerprint()
        assert written != empty
        store.search(self.query(), k=3)
        store.search(self.query(), k=3, filters={"source": "doc1.md"})
        store.count()
        store.get([chunks[0].id])
        assert store.fingerprint() == written, "a read changed the fingerprint"
        store.delete(ids=[chunks[0].id])
        deleted = store.fingerprint()
        assert deleted not in (empty, written)
        renewed = Chunk(
            id=chunks[1].id,
            text="new text",
            metadata=chunks[1].metadata,
            embedding=chunks[1].embedding,
        )
        store.write([renewed])
        assert store.fingerprint() not in (empty, written, deleted), "an upsert was not seen"


class ReportsStatsConformance(AbilityConformance):
    """``stats()`` is a JSON-ready dict with at least ``chunks`` (what ``rag stats`` prints)."""

    ability = ReportsStats

    def test_stats_of_an_empty_store(self, store: Any) -> None:
        stats = store.stats()
        assert stats["chunks"] == 0
        assert stats.get("sources", 0) == 0
        json.dumps(stats)

    def test_stats_count_chunks_and_sources(self, store: Any) -> None:
        store.write(self.chunks(20))  # sources doc0.md .. doc6.md
        stats = store.stats()
        assert stats["chunks"] == 20
        if "sources" in stats:
            assert stats["sources"] == 7
        if stats.get("dimension") is not None:
            assert stats["dimension"] == self.dimension
        json.dumps(stats)


class ConcurrentWritersConformance(AbilityConformance):
    """``concurrent_writers`` is a bool; when true, two store objects over the same data may
    both write, and each sees the other's chunks."""

    ability = ConcurrentWriters

    def test_concurrent_writers_is_a_bool(self, store: Any) -> None:
        assert isinstance(store.concurrent_writers, bool)

    def test_two_writers_see_each_other(self, store_factory: Callable[[str], Any]) -> None:
        name = f"writers{next(names)}"
        first = store_factory(name)
        first.warm_up()
        if not first.concurrent_writers:
            close_store(first)
            pytest.skip(f"{type(first).__name__} here has one writer at a time")
        second = store_factory(name)
        second.warm_up()
        try:
            assert first.write(self.chunks(5, prefix="a")) == 5
            assert second.write(self.chunks(4, prefix="b", seed=2)) == 4
            assert first.count() == second.count() == 9
            hit = first.search(self.chunks(4, prefix="b", seed=2)[3].embedding, k=1)[0]
            assert hit.id == "b00003"
        finally:
            close_store(first)
            close_store(second)


class OwnsRecordsLocationConformance(AbilityConformance):
    """``records_location()`` names where ingest keeps its records for this store: a SQLite
    file path (or ``":memory:"``), stable, and distinct for distinct stores."""

    ability = OwnsRecordsLocation

    def test_records_location(self, store_factory: Callable[[str], Any]) -> None:
        one = store_factory(f"records{next(names)}")
        other = store_factory(f"records{next(names)}")
        location = one.records_location()
        assert isinstance(location, str) and location
        assert location == one.records_location()
        assert location == ":memory:" or location.endswith(".sqlite")
        if location != ":memory:":
            assert other.records_location() != location


ABILITY_CONFORMANCE: dict[type, type[AbilityConformance]] = {
    cls.ability: cls
    for cls in (
        FlushableConformance,
        ClosableConformance,
        ClearableConformance,
        EnumerableConformance,
        FingerprintedConformance,
        ReportsStatsConformance,
        ConcurrentWritersConformance,
        OwnsRecordsLocationConformance,
    )
}
"""Ability protocol -> the conformance class that tests it."""


def declared_abilities(store: Any) -> set[type]:
    """The abilities of :data:`~rag.core.protocols.STORE_ABILITIES` that ``store`` declares."""
    return {ability for ability in ABILITY_CONFORMANCE if isinstance(store, ability)}


__all__ = [
    "ABILITY_CONFORMANCE",
    "AbilityConformance",
    "ClearableConformance",
    "ClosableConformance",
    "ConcurrentWritersConformance",
    "EnumerableConformance",
    "FingerprintedConformance",
    "FlushableConformance",
    "OwnsRecordsLocationConformance",
    "ReportsStatsConformance",
    "declared_abilities",
]
