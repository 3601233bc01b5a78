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
        @classmethod
        def store_factory(cls, tmp_path_factory):
            root = tmp_path_factory.mktemp("faiss")
            return lambda name: FaissStore(path=str(root / name))

A store that cannot support a case overrides the test with ``pytest.skip("reason")``, or sets
:attr:`StoreConformance.persistent` to ``False`` when it keeps nothing across a reopen.

Abilities: beyond the five methods every store has, a store declares optional abilities
(:data:`rag.core.protocols.STORE_ABILITIES`: flush, close, clear, ids + iter_chunks,
fingerprint, stats, concurrent_writers, records_location). Each has a conformance class here
(:class:`FlushableConformance`, :class:`ClosableConformance`, ...); the store's test class
inherits the class of every ability its store declares, and
``StoreConformance.test_declares_exactly_the_abilities_it_is_tested_for`` fails when the two
lists differ::

    class TestFaissStore(StoreConformance, FlushableConformance, ClosableConformance, ...):
        ...

Expected results of filters are computed with :func:`rag.core.filters.matches` over the chunks
written, so every store is held to the one documented semantics; :data:`FILTER_CASES` also
carries hand-written expectations that pin :func:`~rag.core.filters.matches` itself.
"""

from __future__ import annotations

from rag.testing.store_conformance._abilities import (
    ABILITY_CONFORMANCE,
    AbilityConformance,
    ClearableConformance,
    ClosableConformance,
    ConcurrentWritersConformance,
    EnumerableConformance,
    FingerprintedConformance,
    FlushableConformance,
    OwnsRecordsLocationConformance,
    ReportsStatsConformance,
    declared_abilities,
)
from rag.testing.store_conformance._core import StoreConformance
from rag.testing.store_conformance._data import (
    DIMENSION,
    FILTER_CASES,
    FILTER_CORPUS,
    INJECTION,
    FilterCase,
    expected_ids,
    filter_corpus_chunks,
    random_chunks,
    unit_vector,
)
from rag.testing.store_conformance._fixtures import StoreFixtures, close_store

__all__ = [
    "ABILITY_CONFORMANCE",
    "DIMENSION",
    "FILTER_CASES",
    "FILTER_CORPUS",
    "INJECTION",
    "AbilityConformance",
    "ClearableConformance",
    "ClosableConformance",
    "ConcurrentWritersConformance",
    "EnumerableConformance",
    "FilterCase",
    "FingerprintedConformance",
    "FlushableConformance",
    "OwnsRecordsLocationConformance",
    "ReportsStatsConformance",
    "StoreConformance",
    "StoreFixtures",
    "close_store",
    "declared_abilities",
    "expected_ids",
    "filter_corpus_chunks",
    "random_chunks",
    "unit_vector",
]
