"""Bridges between ragline and LangChain, both ways (extra ``langchain``).

ragline inside a LangChain application:

- :class:`RaglineVectorStore`: a LangChain ``VectorStore`` over any ragline store and embedder
  (passes ``langchain-tests``' ``VectorStoreIntegrationTests``, sync and async);
- :class:`RaglineRetriever`: a LangChain ``BaseRetriever`` over any ragline retriever;
- :class:`RaglineEmbeddings`: a LangChain ``Embeddings`` over a ragline embedder.

LangChain parts inside a ragline pipeline:

- :class:`LangChainEmbedder`: a LangChain ``Embeddings`` as a ragline embedder;
- :class:`LangChainLoader`: a LangChain ``BaseLoader`` (or a ``path -> BaseLoader`` factory) as
  a ragline loader;
- :class:`LangChainStore`: a LangChain ``VectorStore`` as a ragline vector store.

These are Python-API objects: they wrap live LangChain objects, so they are not registered under
short names and cannot be written in YAML.

Example:
    >>> # Needs a loaded embedder and an index.
    >>> from rag.connectors.langchain import RaglineVectorStore  # doctest: +SKIP
    >>> store = FaissStore(path="index")  # doctest: +SKIP
    >>> vectorstore = RaglineVectorStore(store=store, embedding=embedder)  # doctest: +SKIP
    >>> vectorstore.as_retriever(search_kwargs={"k": 3}).invoke("What is FAISS?")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.connectors._deps import require
from rag.core.component import Component, warm_up_parts
from rag.core.documents import Chunk, Document, Hit, content_hash
from rag.core.errors import DuplicateIdError, LoaderError
from rag.core.filters import matches, parse_filter
from rag.core.protocols import Filters, Flushable, WritePolicy

require(
    "langchain_core",
    package="langchain-core",
    extra="langchain",
    purpose="rag.connectors.langchain",
)

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.document_loaders import BaseLoader  # noqa: E402
from langchain_core.documents import Document as LCDocument  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore  # noqa: E402
from pydantic import ConfigDict  # noqa: E402

__all__ = [
    "LangChainEmbedder",
    "LangChainLoader",
    "LangChainStore",
    "RaglineEmbeddings",
    "RaglineRetriever",
    "RaglineVectorStore",
]


@runtime_checkable
class _MeasuresDistance(Protocol):
    """A ragline store configured with its distance: ``metric`` is ``"ip"`` or ``"l2"``."""

    metric: str


def _to_lc(chunk: Chunk, *, score: float | None = None) -> LCDocument:
    metadata = dict(chunk.metadata)
    if score is not None:
        metadata["score"] = score
    return LCDocument(id=chunk.id, page_content=chunk.text, metadata=metadata)


# -- ragline inside LangChain ---------------------------------------------------------------------
class RaglineEmbeddings(Embeddings):
    """A ragline embedder (``embed_documents``/``embed_query``) as LangChain ``Embeddings``.

    Example:
        >>> # Needs a loaded embedder.
        >>> embeddings = RaglineEmbeddings(embedder)  # doctest: +SKIP
        >>> len(embeddings.embed_query("hello"))  # doctest: +SKIP
        384
    """

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return np.asarray(self.embedder.embed_documents(list(texts))).astype(float).tolist()

    def embed_query(self, text: str) -> list[float]:
        return np.asarray(self.embedder.embed_query(text)).astype(float).tolist()


class RaglineVectorStore(VectorStore):
    """A LangChain vector store backed by a ragline store (FAISS, Milvus, Weaviate, ...).

    Ids are the ragline chunk ids; ``add_texts`` without ids makes random ones, and adding an
    id that is stored replaces it (upsert). ``filter`` takes the ragline filter grammar
    (``{"source": "a.md", "year": {"$gte": 2020}}``). Scores are the store's (higher is better).

    Args:
        store: Any ragline vector store.
        embedding: LangChain ``Embeddings``, or a ragline embedder (wrapped in
            :class:`RaglineEmbeddings`).
        relevance_score_fn: Maps a store score to ``[0, 1]`` for
            ``similarity_search_with_relevance_scores`` (default: cosine ``(1 + s) / 2``, or
            from squared L2 distance for ``metric="l2"`` stores).

    Example:
        >>> # Needs a loaded embedder.
        >>> from rag.connectors.stores.faiss import FaissStore  # doctest: +SKIP
        >>> vs = RaglineVectorStore(store=FaissStore(), embedding=embedder)  # doctest: +SKIP
        >>> vs.add_texts(["FAISS searches vectors."], ids=["faiss-1"])  # doctest: +SKIP
        ['faiss-1']
        >>> vs.similarity_search("vector search", k=1)[0].id  # doctest: +SKIP
        'faiss-1'
    """

    def __init__(
        self,
        *,
        store: Any,
        embedding: Embeddings | Any,
        relevance_score_fn: Callable[[float], float] | None = None,
    ) -> None:
        self.store = store
        self.embedding = (
            embedding if isinstance(embedding, Embeddings) else RaglineEmbeddings(embedding)
        )
        self.relevance_score_fn = relevance_score_fn
        warm_up_parts(store)

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    def _flush(self) -> None:
        if isinstance(self.store, Flushable):
            self.store.flush()

    # -- writing --------------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store ``texts``; returns their ids (given ones kept, missing ones made)."""
        texts = list(texts)
        if not texts:
            return []
        metadatas = metadatas or [{} for _ in texts]
        ids = list(ids) if ids is not None else [None] * len(texts)
        if not (len(metadatas) == len(ids) == len(texts)):
            raise ValueError("texts, metadatas and ids must have the same length")
        final_ids = [i if i else uuid.uuid4().hex for i in ids]
        vectors = np.asarray(self.embedding.embed_documents(texts), dtype=np.float32)
        chunks = [
            Chunk(id=chunk_id, text=text, metadata=dict(meta or {}), embedding=vector)
            for chunk_id, text, meta, vector in zip(final_ids, texts, metadatas, vectors)
        ]
        self.store.write(chunks, policy="upsert")
        self._flush()
        return final_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete by ``ids`` (missing ids are ignored) or by ``filter=`` (ragline grammar)."""
        filters = kwargs.get("filter")
        if not ids and not filters:
            return False
        self.store.delete(ids=list(ids) if ids else None, filters=filters)
        self._flush()
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[LCDocument]:
        return [_to_lc(chunk) for chunk in self.store.get(list(ids))]

    # -- searching ------------------------------------------------------------------------------
    def _search(
        self, vector: Sequence[float], k: int, filters: Filters | None
    ) -> list[tuple[LCDocument, float]]:
        hits = self.store.search(np.asarray(vector, dtype=np.float32), k=k, filters=filters)
        return [(_to_lc(hit.chunk), float(hit.score)) for hit in hits]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filters | None = None, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        return self._search(self.embedding.embed_query(query), k, filter)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filters | None = None, **kwargs: Any
    ) -> list[LCDocument]:
        return [doc for doc, _ in self._search(embedding, k, filter)]

    def similarity_search(
        self, query: str, k: int = 4, filter: Filters | None = None, **kwargs: Any
    ) -> list[LCDocument]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.relevance_score_fn is not None:
            return self.relevance_score_fn
        if isinstance(self.store, _MeasuresDistance) and self.store.metric == "l2":
            return lambda score: 1.0 - math.sqrt(max(-score, 0.0)) / math.sqrt(2)
        return lambda score: min(1.0, max(0.0, (1.0 + score) / 2.0))

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        store: Any = None,
        **kwargs: Any,
    ) -> RaglineVectorStore:
        """Build over ``store`` (required: no store is created behind your back) and add texts."""
        if store is None:
            raise ValueError(
                "RaglineVectorStore.from_texts needs store=..., e.g. store=FaissStore(path='index')"
            )
        vectorstore = cls(store=store, embedding=embedding, **kwargs)
        vectorstore.add_texts(texts, metadatas, ids=ids)
        return vectorstore


class RaglineRetriever(BaseRetriever):
    """Any ragline retriever (dense, BM25, hybrid, a chain's retriever) as a LangChain retriever.

    Each document carries the chunk id as ``id`` and the retrieval score as ``metadata["score"]``.

    Example:
        >>> # Needs a dense retriever over an ingested index.
        >>> lc_retriever = RaglineRetriever(retriever=dense, k=3)  # doctest: +SKIP
        >>> [d.metadata["source"] for d in lc_retriever.invoke("What is HNSW?")]  # doctest: +SKIP
        ['examples/corpus/hnsw.html', ...]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    """A ragline retriever: anything with ``retrieve(query, k=, filters=)``."""
    k: int | None = None
    """Documents per query (default: the ragline retriever's own ``k``)."""
    filters: dict[str, Any] | None = None
    """A ragline metadata filter applied to every query."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        hits = self.retriever.retrieve(query, k=self.k, filters=self.filters)
        return [_to_lc(hit.chunk, score=float(hit.score)) for hit in hits]


# -- LangChain inside ragline ---------------------------------------------------------------------
class LangChainEmbedder(Component):
    """LangChain ``Embeddings`` as a ragline embedder (and ingestion stage).

    Args:
        embeddings: Any LangChain ``Embeddings``.
        dimension: Vector size; found by embedding one probe text when ``None``.

    Example:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> embedder = LangChainEmbedder(embeddings=DeterministicFakeEmbedding(size=8))
        >>> embedder.embed_query("hello").shape, embedder.dimension
        ((8,), 8)
    """

    outputs = {"chunks": list[Chunk]}

    def __init__(self, *, embeddings: Any, dimension: int | None = None) -> None:
        self.embeddings = embeddings
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed_query("dimension").shape[0])
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embeddings.embed_query(text), dtype=np.float32)

    def run(self, chunks: list[Chunk]) -> dict[str, Any]:
        """Attach an embedding to every chunk."""
        for chunk, vector in zip(chunks, self.embed_documents([c.text for c in chunks])):
            chunk.embedding = vector
        return {"chunks": chunks}


class LangChainLoader(Component):
    """A LangChain document loader as a ragline loader.

    Args:
        loader: A ``BaseLoader`` (loads its own source; ``sources`` are then ignored) or a
            callable ``path -> BaseLoader`` called for each source, e.g. a loader class.

    Documents keep the LangChain metadata; ``source`` is the ragline source path when a factory
    is used (else the loader's own ``source`` metadata), and several documents from one source
    get ids ``source#0``, ``source#1``, ...

    Example:
        >>> # Needs langchain-community and a notes.txt file.
        >>> from langchain_community.document_loaders import TextLoader  # doctest: +SKIP
        >>> loader = LangChainLoader(loader=TextLoader)  # doctest: +SKIP
        >>> loader.run(sources=["notes.txt"])["documents"][0].metadata["source"]  # doctest: +SKIP
        'notes.txt'
    """

    outputs = {"documents": list[Document], "errors": list[dict[str, Any]]}

    def __init__(self, *, loader: Any) -> None:
        if not (callable(loader) or isinstance(loader, BaseLoader)):
            raise ValueError(
                "loader must be a LangChain BaseLoader or a path -> BaseLoader callable"
            )
        self.loader = loader

    @property
    def fixed(self) -> bool:
        """Whether the loader is one ``BaseLoader`` (not a factory called per source)."""
        return isinstance(self.loader, BaseLoader)

    def load(self, source: str | None = None) -> Iterator[Document]:
        """Documents of one source (or of the fixed loader, when ``source`` is ``None``).

        Raises:
            LoaderError: the LangChain loader failed.
        """
        name = source or type(self.loader).__name__
        try:
            lc_loader = self.loader if self.fixed else self.loader(source)
            documents = list(lc_loader.lazy_load())
        except Exception as err:  # any loader failure is this source's error, not the run's
            raise LoaderError(name, f"{type(err).__name__}: {err}") from err
        for index, doc in enumerate(documents):
            metadata = dict(doc.metadata)
            origin = str(metadata.get("source", name)) if self.fixed else name
            metadata["source"] = origin
            doc_id = origin if len(documents) == 1 else f"{origin}#{index}"
            yield Document(id=doc.id or doc_id, text=doc.page_content, metadata=metadata)

    def run(self, sources: list[str] | None = None) -> dict[str, Any]:
        """Load every source (a fixed loader loads its own source once; ``sources`` unused)."""
        documents: list[Document] = []
        errors: list[dict[str, Any]] = []
        for source in [None] if self.fixed else list(sources or []):
            try:
                documents.extend(self.load(source))
            except LoaderError as err:
                errors.append({"source": err.source, "error": err.reason})
        return {"documents": documents, "errors": errors}


class LangChainStore(Component):
    """A LangChain vector store as a ragline vector store.

    LangChain stores embed texts with their own ``Embeddings``, so written chunks are re-embedded
    by the wrapped store (use the same model as the ragline embedder of the pipeline). Search
    by vector uses ``similarity_search_with_score_by_vector`` where the store has it, else ranks
    give the scores (``1 / (1 + rank)``).

    Args:
        vectorstore: Any LangChain ``VectorStore`` that supports ``get_by_ids`` and ``delete``.
        filter_translator: Turns a ragline filter into the store's ``filter`` argument. Default:
            a predicate for ``InMemoryVectorStore`` (which filters with a callable); other
            stores get the dictionary unchanged (Chroma and Pinecone share the grammar).

    Example:
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> fake = DeterministicFakeEmbedding(size=8)
        >>> store = LangChainStore(vectorstore=InMemoryVectorStore(fake))
        >>> chunk = Chunk.create(text="hello", source_id="a.md", position=0)
        >>> store.write([chunk]), store.count()
        (1, 1)
    """

    outputs: dict[str, Any] = {}

    def __init__(
        self, *, vectorstore: Any, filter_translator: Callable[[Filters], Any] | None = None
    ) -> None:
        self.vectorstore = vectorstore
        self.filter_translator = filter_translator

    def _filter(self, filters: Filters | None) -> Any:
        if not filters:
            return None
        if self.filter_translator is not None:
            return self.filter_translator(filters)
        from langchain_core.vectorstores import InMemoryVectorStore

        if isinstance(self.vectorstore, InMemoryVectorStore):
            node = parse_filter(filters)
            return lambda doc: matches(node, doc.metadata)
        return dict(filters)

    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = WritePolicy.UPSERT) -> int:
        policy = WritePolicy.parse(policy)
        if not chunks:
            return 0
        if policy is not WritePolicy.UPSERT:
            stored = {doc.id for doc in self.vectorstore.get_by_ids([c.id for c in chunks])}
            if stored and policy is WritePolicy.FAIL:
                raise DuplicateIdError(sorted(stored))
            chunks = [c for c in chunks if c.id not in stored]
        if chunks:
            self.vectorstore.add_documents(
                [LCDocument(page_content=c.text, metadata=dict(c.metadata)) for c in chunks],
                ids=[c.id for c in chunks],
            )
        return len(chunks)

    def search(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        query = np.asarray(vector, dtype=float).tolist()
        kwargs = {"filter": self._filter(filters)} if filters else {}
        method = "similarity_search_with_score_by_vector"  # not on LangChain's VectorStore base
        with_score = getattr(self.vectorstore, method, None)  # third-party: some stores have it
        if callable(with_score):
            pairs = with_score(query, k=k, **kwargs)
        else:
            docs = self.vectorstore.similarity_search_by_vector(query, k=k, **kwargs)
            pairs = [(doc, 1.0 / (1 + rank)) for rank, doc in enumerate(docs)]
        return [Hit(self._chunk(doc), float(score)) for doc, score in pairs]

    @staticmethod
    def _chunk(doc: LCDocument) -> Chunk:
        chunk_id = doc.id or content_hash(doc.page_content)[:32]
        return Chunk(id=chunk_id, text=doc.page_content, metadata=dict(doc.metadata))

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        if filters:
            raise NotImplementedError(
                "LangChain vector stores delete by id only; delete ids instead of filters"
            )
        if not ids:
            return 0
        present = [doc.id for doc in self.vectorstore.get_by_ids(list(ids))]
        if present:
            self.vectorstore.delete(ids=present)
        return len(present)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        return [self._chunk(doc) for doc in self.vectorstore.get_by_ids(list(ids))]

    def count(self, filters: Filters | None = None) -> int:
        """Stored chunks (only ``InMemoryVectorStore`` lists its contents in LangChain)."""
        if not isinstance(self.vectorstore, InMemoryVectorStore):
            raise NotImplementedError(
                f"{type(self.vectorstore).__name__} cannot count its documents through LangChain"
            )
        node = parse_filter(filters)
        contents = self.vectorstore.store.values()
        return sum(1 for item in contents if matches(node, item.get("metadata", {})))

    def run(self) -> dict[str, Any]:  # a store is shared by reference, not run as a node
        return {}
