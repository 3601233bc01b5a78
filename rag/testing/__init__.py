"""Conformance suites that connectors' tests inherit.

A vector store's test module subclasses :class:`StoreConformance` and provides one fixture,
``store_factory``; every write / search / get / delete / count case and every filter operator
then runs against that store, and one conformance class per ability the store declares
(``FlushableConformance``, ``ClearableConformance``, ...) tests what that ability promises.
See :mod:`rag.testing.store_conformance`.
"""

from rag.testing.store_conformance import (
    FILTER_CASES,
    FILTER_CORPUS,
    ClearableConformance,
    ClosableConformance,
    ConcurrentWritersConformance,
    EnumerableConformance,
    FilterCase,
    FingerprintedConformance,
    FlushableConformance,
    OwnsRecordsLocationConformance,
    ReportsStatsConformance,
    StoreConformance,
    filter_corpus_chunks,
    random_chunks,
)

__all__ = [
    "FILTER_CASES",
    "FILTER_CORPUS",
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
    "filter_corpus_chunks",
    "random_chunks",
]
