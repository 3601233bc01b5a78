"""Bridges between ragline and LlamaIndex (extra ``llamaindex``).

- :class:`RaglineVectorStore`: a LlamaIndex ``BasePydanticVectorStore`` over any ragline store,
  so ``VectorStoreIndex.from_vector_store(...)`` and its query engines retrieve through ragline;
- :class:`RaglineRetriever`: a LlamaIndex ``BaseRetriever`` over any ragline retriever (dense,
  BM25, hybrid), for ``RetrieverQueryEngine``;
- :class:`RaglineEmbedding`: a LlamaIndex embedding model over a ragline embedder;
- :class:`LlamaIndexLoader`: a LlamaIndex reader as a ragline loader.

LlamaIndex metadata filters (``MetadataFilters``) are translated into the ragline filter grammar
in one place, :func:`to_ragline_filters`; operators without an equivalent are refused by name.

Example:
    >>> # Needs a loaded embedder and an index.
    >>> from llama_index.core import VectorStoreIndex  # doctest: +SKIP
    >>> index = VectorStoreIndex.from_vector_store(
    ...     RaglineVectorStore(store=FaissStore(path="index")),
    ...     embed_model=RaglineEmbedding(embedder=embedder),
    ... )  # doctest: +SKIP
    >>> index.as_query_engine(llm=my_llm).query("What is FAISS?")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.core.component import Component, warm_up_parts
from rag.core.documents import Chunk, Document
from rag.core.errors import FilterError, LoaderError
from rag.core.protocols import Clearable, Flushable

require(
    "llama_index.core",
    package="llama-index-core",
    extra="llamaindex",
    purpose="rag.connectors.llamaindex",
)

from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.bridge.pydantic import PrivateAttr  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.core.readers.base import BaseReader  # noqa: E402
from llama_index.core.schema import (  # noqa: E402
    BaseNode,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import (  # noqa: E402
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

__all__ = [
    "LlamaIndexLoader",
    "RaglineEmbedding",
    "RaglineRetriever",
    "RaglineVectorStore",
    "to_ragline_filters",
]

REF_DOC_KEY = "ref_doc_id"
"""Metadata key under which a node's source document id is stored (for ``delete``)."""

_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.ANY: "$in",  # a list field matches $in if any element does
}


def to_ragline_filters(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """LlamaIndex ``MetadataFilters`` as a ragline filter dictionary.

    Raises:
        FilterError: an operator without a ragline equivalent (``text_match``, ``contains``, ...).

    Example:
        >>> from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
        >>> to_ragline_filters(MetadataFilters(filters=[
        ...     MetadataFilter(key="year", value=2020, operator=">="),
        ...     MetadataFilter(key="lang", value=["en", "de"], operator="in")]))
        {'$and': [{'year': {'$gte': 2020}}, {'lang': {'$in': ['en', 'de']}}]}
    """
    if filters is None or not filters.filters:
        return None
    parts: list[dict[str, Any]] = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            nested = to_ragline_filters(item)
            if nested:
                parts.append(nested)
            continue
        assert isinstance(item, MetadataFilter)
        if item.operator == FilterOperator.IS_EMPTY:
            parts.append({item.key: {"$exists": False}})
            continue
        if item.operator == FilterOperator.ALL:
            values = item.value if isinstance(item.value, list) else [item.value]
            parts.append({"$and": [{item.key: {"$eq": v}} for v in values]})
            continue
        op = _OPERATORS.get(item.operator)
        if op is None:
            raise FilterError(
                f"LlamaIndex filter operator '{item.operator.value}' on '{item.key}' has no "
                f"ragline equivalent; supported: {', '.join(o.value for o in _OPERATORS)}, all, "
                "is_empty"
            )
        parts.append({item.key: {op: item.value}})
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$and": parts}}
    if len(parts) == 1:
        return parts[0]
    return {"$or" if condition == FilterCondition.OR else "$and": parts}


def _merge(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    present = [f for f in filters if f]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"$and": present}


def _node(chunk: Chunk) -> TextNode:
    metadata = dict(chunk.metadata)
    ref_doc_id = metadata.pop(REF_DOC_KEY, None)
    relationships = {}
    if ref_doc_id:
        relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=str(ref_doc_id))
    return TextNode(id_=chunk.id, text=chunk.text, metadata=metadata, relationships=relationships)


class RaglineEmbedding(BaseEmbedding):
    """A ragline embedder as a LlamaIndex embedding model.

    Example:
        >>> # Needs a loaded embedder.
        >>> embed_model = RaglineEmbedding(embedder=embedder)  # doctest: +SKIP
        >>> len(embed_model.get_query_embedding("hello"))  # doctest: +SKIP
        384
    """

    _embedder: Any = PrivateAttr()

    def __init__(self, *, embedder: Any, **kwargs: Any) -> None:
        super().__init__(model_name=type(embedder).__name__, **kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "RaglineEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return np.asarray(self._embedder.embed_query(query)).astype(float).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return np.asarray(self._embedder.embed_documents(texts)).astype(float).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class RaglineVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store backed by a ragline store (it stores the node text too).

    Node ids are chunk ids; a node's source document id is kept in metadata as
    ``ref_doc_id`` (and as ``source`` when the node has none), so ``delete(ref_doc_id)`` and
    ragline's own source filters both work.

    Args:
        store: Any ragline vector store.

    Example:
        >>> # Writes an index under ./index.
        >>> from rag.connectors.stores.faiss import FaissStore  # doctest: +SKIP
        >>> vector_store = RaglineVectorStore(store=FaissStore(path="index"))  # doctest: +SKIP
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    _store: Any = PrivateAttr()

    def __init__(self, *, store: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._store = store
        warm_up_parts(store)

    @classmethod
    def class_name(cls) -> str:
        return "RaglineVectorStore"

    @property
    def client(self) -> Any:
        """The ragline store."""
        return self._store

    def _flush(self) -> None:
        if isinstance(self._store, Flushable):
            self._store.flush()

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store embedded nodes (a node id that is stored is replaced)."""
        chunks = []
        for node in nodes:
            metadata = dict(node.metadata)
            if node.ref_doc_id:
                metadata[REF_DOC_KEY] = node.ref_doc_id
                metadata.setdefault("source", node.ref_doc_id)
            chunks.append(
                Chunk(
                    id=node.node_id,
                    text=node.get_content(metadata_mode=MetadataMode.NONE),
                    metadata=metadata,
                    embedding=np.asarray(node.get_embedding(), dtype=np.float32),
                )
            )
        if chunks:
            self._store.write(chunks, policy="upsert")
            self._flush()
        return [chunk.id for chunk in chunks]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of source document ``ref_doc_id``."""
        self._store.delete(filters={REF_DOC_KEY: ref_doc_id})
        self._flush()

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        if node_ids:
            self._store.delete(ids=list(node_ids))
        ragline_filters = to_ragline_filters(filters)
        if ragline_filters:
            self._store.delete(filters=ragline_filters)
        self._flush()

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        if not node_ids:
            raise ValueError("RaglineVectorStore.get_nodes needs node_ids")
        chunks = self._store.get(list(node_ids))
        node = to_ragline_filters(filters)
        if node:
            from rag.core.filters import matches, parse_filter

            tree = parse_filter(node)
            chunks = [c for c in chunks if matches(tree, c.metadata)]
        return [_node(chunk) for chunk in chunks]

    def clear(self) -> None:
        """Delete every node."""
        if isinstance(self._store, Clearable):
            self._store.clear()
        else:
            self._store.delete(filters={"source": {"$exists": True}})
            self._store.delete(filters={"source": {"$exists": False}})
        self._flush()

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Nearest nodes to ``query.query_embedding`` among those matching its filters."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise ValueError(
                f"RaglineVectorStore answers dense queries only, not mode '{query.mode.value}'; "
                "use a ragline hybrid retriever through RaglineRetriever instead"
            )
        if query.query_embedding is None:
            raise ValueError("RaglineVectorStore.query needs query_embedding")
        if query.node_ids:
            raise ValueError("RaglineVectorStore.query does not restrict by node_ids; use filters")
        doc_filter = {REF_DOC_KEY: {"$in": list(query.doc_ids)}} if query.doc_ids else None
        filters = _merge(to_ragline_filters(query.filters), doc_filter)
        hits = self._store.search(
            np.asarray(query.query_embedding, dtype=np.float32),
            k=query.similarity_top_k,
            filters=filters,
        )
        return VectorStoreQueryResult(
            nodes=[_node(hit.chunk) for hit in hits],
            similarities=[float(hit.score) for hit in hits],
            ids=[hit.chunk.id for hit in hits],
        )


class RaglineRetriever(BaseRetriever):
    """Any ragline retriever as a LlamaIndex retriever (for ``RetrieverQueryEngine``).

    Args:
        retriever: A ragline retriever (anything with ``retrieve(query, k=, filters=)``).
        k: Nodes per query (default: the ragline retriever's ``k``).
        filters: A ragline metadata filter applied to every query.

    Example:
        >>> # Needs a dense retriever and a LlamaIndex LLM.
        >>> from llama_index.core.query_engine import RetrieverQueryEngine  # doctest: +SKIP
        >>> retriever = RaglineRetriever(retriever=dense)  # doctest: +SKIP
        >>> engine = RetrieverQueryEngine.from_args(retriever, llm=llm)  # doctest: +SKIP
    """

    def __init__(
        self, *, retriever: Any, k: int | None = None, filters: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.retriever = retriever
        self.k = k
        self.filters = filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.retriever.retrieve(query_bundle.query_str, k=self.k, filters=self.filters)
        return [NodeWithScore(node=_node(hit.chunk), score=float(hit.score)) for hit in hits]


class LlamaIndexLoader(Component):
    """A LlamaIndex reader as a ragline loader.

    Args:
        reader: A reader instance (``load_data()`` loads its own input once; ``sources`` are then
            unused) or a callable ``path -> reader`` called per source, e.g.
            ``lambda path: SimpleDirectoryReader(input_files=[path])``.

    Example:
        >>> # Needs llama-index-readers-file for SimpleDirectoryReader.
        >>> from llama_index.core import SimpleDirectoryReader
        >>> loader = LlamaIndexLoader(reader=lambda p: SimpleDirectoryReader(input_files=[p]))
        >>> docs = loader.run(sources=["examples/corpus/faiss.md"])["documents"]  # doctest: +SKIP
    """

    outputs = {"documents": list[Document], "errors": list[dict[str, Any]]}

    def __init__(self, *, reader: Any) -> None:
        if not (callable(reader) or isinstance(reader, BaseReader)):
            raise ValueError("reader must be a LlamaIndex reader or a path -> reader callable")
        self.reader = reader

    @property
    def fixed(self) -> bool:
        """Whether the reader is one instance (not a factory called per source)."""
        return isinstance(self.reader, BaseReader)

    def load(self, source: str | None = None) -> Iterator[Document]:
        """Documents of one source (or of the fixed reader when ``source`` is ``None``).

        Raises:
            LoaderError: the reader failed.
        """
        name = source or type(self.reader).__name__
        try:
            reader = self.reader if self.fixed else self.reader(source)
            documents = list(reader.load_data())
        except Exception as err:  # any reader failure is this source's error, not the run's
            raise LoaderError(name, f"{type(err).__name__}: {err}") from err
        for index, doc in enumerate(documents):
            metadata = {k: v for k, v in doc.metadata.items() if v is not None}
            origin = (
                str(metadata.get("file_path", metadata.get("source", name))) if self.fixed else name
            )
            metadata["source"] = origin
            doc_id = origin if len(documents) == 1 else f"{origin}#{index}"
            yield Document(id=doc_id, text=doc.get_content(), metadata=metadata)

    def run(self, sources: list[str] | None = None) -> dict[str, Any]:
        """Load every source (a fixed reader loads its own input once)."""
        documents: list[Document] = []
        errors: list[dict[str, Any]] = []
        for source in [None] if self.fixed else list(sources or []):
            try:
                documents.extend(self.load(source))
            except LoaderError as err:
                errors.append({"source": err.source, "error": err.reason})
        return {"documents": documents, "errors": errors}
