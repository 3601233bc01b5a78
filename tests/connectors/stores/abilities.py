"""The ability conformance classes each store's tests inherit: one mixin per store, listing the
abilities (``rag.core.protocols``) that store declares. ``StoreConformance`` fails a test class
whose store declares an ability its mixin leaves out, or lacks one it lists."""

from __future__ import annotations

from rag.testing import (
    ClearableConformance,
    ClosableConformance,
    ConcurrentWritersConformance,
    EnumerableConformance,
    FingerprintedConformance,
    FlushableConformance,
    OwnsRecordsLocationConformance,
    ReportsStatsConformance,
)


class LocalStoreAbilities(
    FlushableConformance,
    ClosableConformance,
    ClearableConformance,
    EnumerableConformance,
    FingerprintedConformance,
    ReportsStatsConformance,
):
    """store.faiss: everything but concurrent writers and a records location of its own
    (ingest keeps the records in its folder)."""


class WithConcurrentWriters(LocalStoreAbilities, ConcurrentWritersConformance):
    """store.milvus and store.weaviate: also say whether several processes may write."""


class AllAbilities(WithConcurrentWriters, OwnsRecordsLocationConformance):
    """store.pgvector, store.qdrant and store.pinecone: every ability."""


FaissAbilities = LocalStoreAbilities
MilvusAbilities = WithConcurrentWriters
WeaviateAbilities = WithConcurrentWriters
PgvectorAbilities = AllAbilities
QdrantAbilities = AllAbilities
PineconeAbilities = AllAbilities
