"""Bridges between ragline and Haystack 3.x (extra ``haystack``).

ragline inside a Haystack application:

- :class:`RaglineDocumentStore`: a Haystack ``DocumentStore`` over any ragline vector store
  (FAISS, Milvus, ...), passing Haystack's own ``DocumentStoreBaseTests``;
- :class:`RaglineEmbeddingRetriever`: vector search on that store, as a Haystack component;
- :class:`RaglineRetriever`: any ragline retriever (dense, BM25, hybrid, reranked) as a Haystack
  component taking a text query;
- :class:`RaglineChain`: ``chain.rag`` (retrieval, prompt, generation, citations) as a Haystack
  component answering a query.

Haystack's filter grammar (``{"operator": "AND", "conditions": [{"field": "meta.year",
"operator": ">=", "value": 2020}]}``) is translated into ragline's (:mod:`rag.core.filters`) in
one place, :func:`to_ragline_filters`; each store then translates ragline's grammar as usual.
Where the two grammars differ, Haystack's meaning is kept: ``== None`` matches a missing field,
``> None`` matches nothing, ``NOT`` negates the conjunction of its conditions, and an ordering
comparison with a string is allowed only for ISO-8601 dates (compared as text, so write them in
one format and time zone). One difference remains: a list-valued meta field ``==`` a value
matches when any element does (ragline's rule), where Haystack's in-memory store compares the
whole list.

What a ragline chunk cannot hold natively is kept in two reserved metadata keys: a document
without embedding is stored with a zero vector and ``_haystack_no_embedding: true`` (so
:meth:`RaglineDocumentStore.embedding_retrieval` never returns it), and ``_haystack`` keeps a
``None`` content, a ``blob`` and a ``sparse_embedding``. Embeddings come back as the store keeps
them (float32 in FAISS and Milvus).

These wrap live ragline objects; they serialize through ragline's ``to_dict`` and the registry.

Haystack sends anonymous usage telemetry over the network unless ``HAYSTACK_TELEMETRY_ENABLED``
says otherwise; ragline works offline by default, so importing this module sets that variable to
``False`` when it is unset (set it to ``True`` first to keep Haystack's default). It takes effect
only if Haystack was not imported before.

Example:
    >>> # Needs haystack-ai and writes an index.
    >>> from rag.connectors.haystack import RaglineDocumentStore  # doctest: +SKIP
    >>> from rag.connectors.stores.faiss import FaissStore  # doctest: +SKIP
    >>> store = RaglineDocumentStore(FaissStore(path="index"), embedding_dim=384)  # doctest: +SKIP
    >>> store.write_documents([Document(content="FAISS", embedding=[0.1] * 384)])  # doctest: +SKIP
    1
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.core.component import warm_up_parts
from rag.core.documents import Chunk, Hit
from rag.core.errors import DuplicateIdError
from rag.core.errors import FilterError as RaglineFilterError
from rag.core.filters import matches, parse_filter
from rag.core.protocols import Enumerable, Flushable, HasDimension, Retriever, WritePolicy
from rag.core.roles import Chain

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # offline by default (module doc)
require("haystack", package="haystack-ai", extra="haystack", purpose="rag.connectors.haystack")

from haystack import Document, component, default_from_dict, default_to_dict  # noqa: E402
from haystack.dataclasses import ByteStream, SparseEmbedding  # noqa: E402
from haystack.document_stores.errors import DuplicateDocumentError  # noqa: E402
from haystack.document_stores.types import DuplicatePolicy  # noqa: E402
from haystack.errors import FilterError  # noqa: E402

from rag.connectors._haystack_filters import and_filters, to_ragline_filters  # noqa: E402

__all__ = [
    "NO_EMBEDDING_KEY",
    "RESERVED_KEY",
    "RaglineChain",
    "RaglineDocumentStore",
    "RaglineEmbeddingRetriever",
    "RaglineRetriever",
    "to_ragline_filters",
]

RESERVED_KEY = "_haystack"
"""Metadata key holding a document's ``None`` content, ``blob`` and ``sparse_embedding``."""
NO_EMBEDDING_KEY = "_haystack_no_embedding"
"""Metadata key (``true``) of a document stored without an embedding."""

_POLICIES = {
    DuplicatePolicy.NONE: WritePolicy.FAIL,  # as Haystack's in-memory store
    DuplicatePolicy.FAIL: WritePolicy.FAIL,
    DuplicatePolicy.SKIP: WritePolicy.SKIP,
    DuplicatePolicy.OVERWRITE: WritePolicy.UPSERT,
}


# -- documents and chunks -----------------------------------------------------------------------
def _to_chunk(document: Document, dimension: int) -> Chunk:
    meta = dict(document.meta)
    clash = {RESERVED_KEY, NO_EMBEDDING_KEY} & set(meta)
    if clash:
        raise ValueError(
            f"document {document.id}: meta key(s) {sorted(clash)} are reserved by "
            "RaglineDocumentStore; rename them"
        )
    reserved: dict[str, Any] = {}
    if document.content is None:
        reserved["content"] = None
    if document.blob is not None:
        reserved["blob"] = document.blob.to_dict()
    if document.sparse_embedding is not None:
        reserved["sparse_embedding"] = document.sparse_embedding.to_dict()
    if reserved:
        meta[RESERVED_KEY] = reserved
    if document.embedding is None:
        meta[NO_EMBEDDING_KEY] = True
        vector = np.zeros(dimension, dtype=np.float32)
    else:
        vector = np.asarray(document.embedding, dtype=np.float32)
    return Chunk(id=document.id, text=document.content or "", metadata=meta, embedding=vector)


def _to_document(chunk: Chunk, *, score: float | None = None, embedding: bool = True) -> Document:
    meta = dict(chunk.metadata)
    reserved = meta.pop(RESERVED_KEY, None) or {}
    stored_without = bool(meta.pop(NO_EMBEDDING_KEY, False))
    vector = None
    if embedding and not stored_without and chunk.embedding is not None:
        vector = [float(x) for x in np.asarray(chunk.embedding).reshape(-1)]
    blob = reserved.get("blob")
    sparse = reserved.get("sparse_embedding")
    return Document(
        id=chunk.id,
        content=None if "content" in reserved else chunk.text,
        meta=meta,
        score=score,
        embedding=vector,
        blob=ByteStream.from_dict(blob) if blob else None,
        sparse_embedding=SparseEmbedding.from_dict(sparse) if sparse else None,
    )


def _component_dict(value: Any) -> dict[str, Any]:
    return value.to_dict()


def _component_from(data: Mapping[str, Any]) -> Any:
    from rag.core.registry import default_registry

    return default_registry.resolve(data["type"]).from_dict(data)


def _flush(store: Any) -> None:
    if isinstance(store, Flushable):
        store.flush()


def _store_dimension(store: Any) -> int | None:
    """The store's vector size when it knows it (``None`` before its first write)."""
    return store.dimension if isinstance(store, HasDimension) else None


# -- the document store -------------------------------------------------------------------------
class RaglineDocumentStore:
    """A Haystack ``DocumentStore`` over a ragline vector store.

    Args:
        store: Any ragline vector store (``store.faiss``, ``store.milvus``, ...).
        embedding_dim: Vector size, for documents written without an embedding (stored as a
            zero vector); ``None`` takes the store's ``dimension`` once it has one.

    ``write_documents`` with ``DuplicatePolicy.NONE`` fails on a duplicate id, as Haystack's
    in-memory store does. ``filter_documents`` returns documents in the store's order.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> store = RaglineDocumentStore(FaissStore(), embedding_dim=2)
        >>> store.write_documents([Document(id="a", content="FAISS", meta={"year": 2017})])
        1
        >>> recent = {"field": "meta.year", "operator": ">", "value": 2000}
        >>> [d.id for d in store.filter_documents(recent)]
        ['a']
    """

    def __init__(self, store: Any, *, embedding_dim: int | None = None) -> None:
        if embedding_dim is not None and embedding_dim < 1:
            raise ValueError(f"embedding_dim must be at least 1, got {embedding_dim}")
        self.store = store
        self.embedding_dim = embedding_dim
        warm_up_parts(store)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, store=_component_dict(self.store), embedding_dim=self.embedding_dim
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaglineDocumentStore:
        params = dict(data.get("init_parameters", {}))
        params["store"] = _component_from(params["store"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    def _dimension(self) -> int:
        dimension = self.embedding_dim or _store_dimension(self.store)
        if not dimension:
            raise ValueError(
                "RaglineDocumentStore does not know the vector size yet: pass embedding_dim=... "
                "(needed to store documents without an embedding)"
            )
        return int(dimension)

    # -- the DocumentStore protocol -----------------------------------------------------------
    def count_documents(self) -> int:
        """How many documents the store holds."""
        return int(self.store.count())

    def write_documents(
        self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        """Store ``documents``; returns how many were written.

        Raises:
            ValueError: ``documents`` is not a list of Documents.
            DuplicateDocumentError: an id is already stored and ``policy`` is NONE or FAIL.
        """
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise ValueError("write_documents takes a list of haystack.Document")
        if not documents:
            return 0
        dimension = 0  # the zero vector's size, for documents without an embedding
        if any(d.embedding is None for d in documents):
            given = [len(d.embedding) for d in documents if d.embedding is not None]
            dimension = self.embedding_dim or _store_dimension(self.store) or 0
            dimension = int(dimension or (given[0] if given else self._dimension()))
        chunks = [_to_chunk(d, dimension) for d in documents]
        try:
            written = int(self.store.write(chunks, policy=_POLICIES[policy]))
        except DuplicateIdError as err:
            raise DuplicateDocumentError(str(err)) from err
        _flush(self.store)
        return written

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """Documents matching a Haystack filter (all of them without one).

        Raises:
            haystack.errors.FilterError: a malformed filter, naming the part that is wrong.
        """
        ids = self._matching_ids(to_ragline_filters(filters))
        return [_to_document(chunk) for chunk in self.store.get(ids)] if ids else []

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete documents by id (unknown ids are ignored)."""
        if document_ids:
            self.store.delete(ids=list(document_ids))
            _flush(self.store)

    # -- beyond the protocol ------------------------------------------------------------------
    def get_documents_by_id(self, document_ids: list[str]) -> list[Document]:
        """Documents by id, in the order asked (unknown ids are left out)."""
        return [_to_document(chunk) for chunk in self.store.get(list(document_ids))]

    def embedding_retrieval(
        self,
        query_embedding: Sequence[float],
        *,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        return_embedding: bool = False,
    ) -> list[Document]:
        """The ``top_k`` documents nearest to ``query_embedding`` (documents stored without an
        embedding are never returned); ``score`` is the store's (higher is better)."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        ragline_filters = and_filters(
            to_ragline_filters(filters), {NO_EMBEDDING_KEY: {"$exists": False}}
        )
        vector = np.asarray(query_embedding, dtype=np.float32)
        hits = self.store.search(vector, k=top_k, filters=ragline_filters)
        if return_embedding and hits:
            stored = {c.id: c for c in self.store.get([h.id for h in hits])}
            hits = [Hit(stored.get(h.id, h.chunk), h.score) for h in hits]
        return [
            _to_document(h.chunk, score=float(h.score), embedding=return_embedding) for h in hits
        ]

    def _matching_ids(self, filters: dict[str, Any] | None) -> list[str]:
        """Ids of the chunks matching ``filters``, found by the store's own filter translation
        (a filtered search as wide as the count); a store that caps search results (Milvus:
        16,384) is read through ``iter_chunks`` instead."""
        try:
            total = int(self.store.count(filters))
            if total == 0:
                return []
            probe = np.zeros(self._store_dimension(), dtype=np.float32)
            probe[0] = 1.0  # any direction: every match is wanted, the order does not matter
            hits = self.store.search(probe, k=total, filters=filters)
        except RaglineFilterError as err:
            raise FilterError(str(err)) from None
        if len(hits) == total:
            return [h.id for h in hits]
        if not isinstance(self.store, Enumerable):
            raise RuntimeError(
                f"{type(self.store).__name__} returned {len(hits)} of {total} matching chunks "
                "and cannot list its chunks (no iter_chunks); filter more narrowly"
            )
        node = parse_filter(filters)
        return [c.id for c in self.store.iter_chunks() if matches(node, c.metadata)]

    def _store_dimension(self) -> int:
        dimension = _store_dimension(self.store)
        return int(dimension) if dimension else self._dimension()


# -- components ---------------------------------------------------------------------------------
@component
class RaglineEmbeddingRetriever:
    """Vector search on a :class:`RaglineDocumentStore`, as a Haystack component.

    Args:
        document_store: The store to search.
        filters: Haystack filters applied to every query (a query's own are AND-ed to them).
        top_k: Documents per query.
        return_embedding: Return each document's stored embedding too.

    Example:
        >>> # Needs a document store with embeddings.
        >>> retriever = RaglineEmbeddingRetriever(document_store=store, top_k=3)  # doctest: +SKIP
        >>> retriever.run(query_embedding=[0.1] * 384)["documents"]  # doctest: +SKIP
    """

    def __init__(
        self,
        document_store: RaglineDocumentStore,
        *,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        return_embedding: bool = False,
    ) -> None:
        if not isinstance(document_store, RaglineDocumentStore):
            raise ValueError("document_store must be a RaglineDocumentStore")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.return_embedding = return_embedding

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            document_store=self.document_store.to_dict(),
            filters=self.filters,
            top_k=self.top_k,
            return_embedding=self.return_embedding,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaglineEmbeddingRetriever:
        params = dict(data.get("init_parameters", {}))
        params["document_store"] = RaglineDocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    @component.output_types(documents=list[Document])
    def run(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, Any]:
        combined = self.filters
        if filters:
            combined = (
                {"operator": "AND", "conditions": [self.filters, filters]}
                if self.filters
                else filters
            )
        documents = self.document_store.embedding_retrieval(
            query_embedding,
            filters=combined,
            top_k=self.top_k if top_k is None else top_k,  # a 0 is refused, not the default
            return_embedding=self.return_embedding,
        )
        return {"documents": documents}


def _hit_document(hit: Hit) -> Document:
    score = float(hit.score)
    return _to_document(hit.chunk, score=score if math.isfinite(score) else None, embedding=False)


@component
class RaglineRetriever:
    """Any ragline retriever (``retriever.dense``, ``retriever.bm25``, ``retriever.hybrid``, a
    reranked one, ...) as a Haystack component that takes a text query.

    Args:
        retriever: The ragline retriever (it embeds the query itself).
        top_k: Documents per query; ``None`` uses the retriever's ``k``.
        filters: Haystack filters applied to every query (AND-ed with a query's own).

    Example:
        >>> # Needs haystack-ai and a dense retriever over an ingested index.
        >>> from haystack import Pipeline  # doctest: +SKIP
        >>> pipeline = Pipeline()  # doctest: +SKIP
        >>> pipeline.add_component("retriever", RaglineRetriever(dense_retriever))  # doctest: +SKIP
        >>> pipeline.run({"retriever": {"query": "What is FAISS?"}})  # doctest: +SKIP
    """

    def __init__(
        self, retriever: Any, *, top_k: int | None = None, filters: dict[str, Any] | None = None
    ) -> None:
        if not isinstance(retriever, Retriever):
            raise ValueError(
                f"retriever must be a ragline retriever with retrieve(query, k=, filters=), got "
                f"{type(retriever).__name__}"
            )
        self.retriever = retriever
        self.top_k = top_k
        self.filters = filters

    def warm_up(self) -> None:
        """Load the retriever's models (Haystack calls this before a pipeline runs)."""
        warm_up_parts(self.retriever)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, retriever=_component_dict(self.retriever), top_k=self.top_k, filters=self.filters
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaglineRetriever:
        params = dict(data.get("init_parameters", {}))
        params["retriever"] = _component_from(params["retriever"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, Any]:
        combined = and_filters(to_ragline_filters(self.filters), to_ragline_filters(filters))
        k = self.top_k if top_k is None else top_k  # the retriever refuses a 0 (resolve_k)
        hits = self.retriever.retrieve(query, k=k, filters=combined)
        return {"documents": [_hit_document(hit) for hit in hits]}


@component
class RaglineChain:
    """``chain.rag`` as a Haystack component: retrieval, the visible prompt, generation and
    citations, answered for one query.

    Outputs ``replies`` (the answer text, one item), ``documents`` (the contexts the model was
    given, with their retrieval scores) and ``answer`` (ragline's whole answer as a dict:
    citations, prompt, timings, ...).

    Args:
        chain: A ragline ``RagChain``.

    Example:
        >>> # Needs a chain.rag with a loaded generator.
        >>> answerer = RaglineChain(rag_chain)  # doctest: +SKIP
        >>> answerer.run(query="What is FAISS?")["replies"][0]  # doctest: +SKIP
    """

    def __init__(self, chain: Any) -> None:
        if not isinstance(chain, Chain):
            raise ValueError(
                "chain must be a ragline chain (chain.rag: ask() and stream() a question with "
                f"filters= and k=), got {type(chain).__name__}"
            )
        self.chain = chain

    def warm_up(self) -> None:
        warm_up_parts(self.chain)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, chain=_component_dict(self.chain))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaglineChain:
        params = dict(data.get("init_parameters", {}))
        params["chain"] = _component_from(params["chain"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    @component.output_types(replies=list[str], documents=list[Document], answer=dict[str, Any])
    def run(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, Any]:
        answer = self.chain.ask(query, filters=to_ragline_filters(filters), k=top_k)
        documents = [
            Document(
                id=context.id,
                content=context.text,
                meta={**context.metadata, "source": context.source, "context_index": context.index},
                score=context.score,
            )
            for context in answer.contexts
        ]
        return {"replies": [answer.text], "documents": documents, "answer": answer.to_dict()}
