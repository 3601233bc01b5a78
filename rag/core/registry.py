"""Short type names (``store.faiss``) for component classes.

Built-in names map to ``"module:Class"`` strings that are imported on first use, so ``import rag``
stays fast and a missing optional dependency only matters when its component is used. Other
packages add names through the ``ragline.components`` entry-point group, or an application
registers its own classes on a :class:`Registry` it passes to ``Pipeline.load``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import metadata
from typing import Any

from rag.core.errors import ConfigError, UnknownComponentError, did_you_mean

BUILTIN_COMPONENTS: dict[str, str] = {
    # loaders and splitters
    "loader.files": "rag.pipelines.loaders:FileLoader",
    "splitter.recursive": "rag.pipelines.splitters:RecursiveSplitter",
    "splitter.sentence": "rag.pipelines.splitters:SentenceSplitter",
    "splitter.markdown": "rag.pipelines.splitters:MarkdownSplitter",
    "splitter.semantic": "rag.pipelines.splitters:SemanticSplitter",
    "splitter.parent": "rag.pipelines.parents:ParentChildSplitter",
    "splitter.sentence_window": "rag.pipelines.parents:SentenceWindowSplitter",
    "writer.store": "rag.pipelines.writer:StoreWriter",
    # connectors
    "embedder.sentence_transformers": "rag.connectors.embedders.sentence_transformers:SentenceTransformersEmbedder",
    "embedder.http": "rag.connectors.embedders.http:HttpEmbedder",
    "store.faiss": "rag.connectors.stores.faiss:FaissStore",
    "store.milvus": "rag.connectors.stores.milvus:MilvusStore",
    "store.weaviate": "rag.connectors.stores.weaviate:WeaviateStore",
    "store.pgvector": "rag.connectors.stores.pgvector:PgvectorStore",
    "store.qdrant": "rag.connectors.stores.qdrant:QdrantStore",
    "store.pinecone": "rag.connectors.stores.pinecone:PineconeStore",
    "retriever.dense": "rag.connectors.retrievers.dense:DenseRetriever",
    "retriever.bm25": "rag.connectors.retrievers.bm25:BM25Retriever",
    "retriever.hybrid": "rag.connectors.retrievers.hybrid:HybridRetriever",
    "retriever.parent": "rag.connectors.retrievers.parent:ParentRetriever",
    "retriever.multi_query": "rag.connectors.retrievers.query_strategies:MultiQueryRetriever",
    "retriever.hyde": "rag.connectors.retrievers.query_strategies:HydeRetriever",
    "ranker.cross_encoder": "rag.connectors.rankers.cross_encoder:CrossEncoderRanker",
    "generator.llama_cpp": "rag.connectors.generators.llama_cpp.generator:LlamaCppGenerator",
    "generator.openai": "rag.connectors.generators.openai:OpenAIGenerator",
    # chains
    "chain.rag": "rag.chains.rag:RagChain",
    # answer styles of chain.rag (rag.chains.styles)
    "style.evidence": "rag.chains.styles.evidence:EvidenceStyle",
    "style.extractive": "rag.chains.styles.extractive:ExtractiveStyle",
    "style.concise": "rag.chains.styles.concise:ConciseStyle",
    "style.sentences": "rag.chains.styles.sentences:SentencesStyle",
}

ENTRY_POINT_GROUP = "ragline.components"


class Registry:
    """Maps short type names to component classes.

    Example:
        >>> from rag.core.registry import Registry
        >>> registry = Registry()
        >>> registry.resolve("store.faiss").__name__
        'FaissStore'
    """

    def __init__(self, entries: dict[str, str | type] | None = None) -> None:
        self._entries: dict[str, str | type] = dict(BUILTIN_COMPONENTS)
        self._entries.update(self._entry_points())
        self._entries.update(entries or {})

    @staticmethod
    def _entry_points() -> dict[str, str]:
        try:
            points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        except Exception:  # pragma: no cover - broken environments
            return {}
        return {point.name: point.value for point in points}

    def register(self, name: str, cls: type) -> None:
        """Add (or replace) a short name on this registry."""
        self._entries[name] = cls

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def resolve(self, name: str, *, allow_imports: bool = False) -> type:
        """Return the class for a short name (or a dotted path when ``allow_imports``).

        Raises:
            UnknownComponentError: unknown name, with the closest known names.
        """
        target = self._entries.get(name)
        if target is None:
            if ":" in name or name.count(".") >= 2:
                if not allow_imports:
                    raise UnknownComponentError(
                        f"'{name}' looks like an import path; importing classes named in YAML is "
                        "refused by default. Register the class under a short name, or load with "
                        "allow_imports=True (CLI: RAGLINE_ALLOW_IMPORTS=1) if you trust this file"
                    )
                return _import_path(name)
            family = name.split(".")[0]
            same_family = [n for n in self._entries if n.split(".")[0] == family]
            raise UnknownComponentError(
                f"unknown component type '{name}'.{did_you_mean(name, self._entries)} "
                f"Known: {', '.join(sorted(same_family or self._entries))}"
            )
        if isinstance(target, str):
            target = _import_path(target)
            self._entries[name] = target
        return target

    def name_of(self, cls: type) -> str | None:
        """The short name registered for ``cls``, if any."""
        qualified = f"{cls.__module__}:{cls.__qualname__}"
        for name, target in self._entries.items():
            if target is cls or target == qualified:
                return name
        return None


def _import_path(path: str) -> type:
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        cls: Any = getattr(module, attr)
    except (ImportError, AttributeError) as err:
        if isinstance(err, ImportError) and err.__class__.__name__ == "MissingDependencyError":
            raise
        raise ConfigError(f"cannot import '{path}': {err}") from err
    return cls


default_registry = Registry()
"""The registry ``Pipeline.load`` uses unless it is given another."""


ALLOW_IMPORTS_ENV = "RAGLINE_ALLOW_IMPORTS"
_IMPORTS_ALLOWED: ContextVar[bool] = ContextVar("ragline_imports_allowed", default=False)


def imports_allowed() -> bool:
    """Whether names in YAML may be import paths: inside :func:`allowing_imports` (what
    ``PipelineFile.load(..., allow_imports=True)`` does while it builds) or with
    ``RAGLINE_ALLOW_IMPORTS=1``.

    Example:
        >>> with allowing_imports(True):
        ...     imports_allowed()
        True
    """
    return _IMPORTS_ALLOWED.get() or os.environ.get(ALLOW_IMPORTS_ENV) == "1"


@contextmanager
def allowing_imports(allowed: bool) -> Iterator[None]:
    """Let components built inside the block (chain tools, for one) resolve import paths."""
    token = _IMPORTS_ALLOWED.set(allowed)
    try:
        yield
    finally:
        _IMPORTS_ALLOWED.reset(token)
