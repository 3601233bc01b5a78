"""Core contracts: records, the component contract, the registry, pipelines, filters, errors.

``rag.core`` imports nothing else of the package and no heavy third-party library.
"""

from rag.core.component import Component
from rag.core.documents import Chunk, Document, Hit, chunk_id, content_hash
from rag.core.errors import (
    ConfigError,
    DuplicateIdError,
    FilterError,
    GenerationError,
    LoaderError,
    MissingDependencyError,
    MissingEnvVarError,
    ModelNotFoundError,
    PipelineError,
    RagError,
    UnknownComponentError,
)
from rag.core.filters import matches, parse_filter
from rag.core.pipeline import Connection, Pipeline, PipelineFile
from rag.core.protocols import Embedder, Retriever, VectorStore, WritePolicy
from rag.core.registry import Registry, default_registry
from rag.core.secrets import Secret

__all__ = [
    "Chunk",
    "Component",
    "ConfigError",
    "Connection",
    "Document",
    "DuplicateIdError",
    "Embedder",
    "FilterError",
    "GenerationError",
    "Hit",
    "LoaderError",
    "MissingDependencyError",
    "MissingEnvVarError",
    "ModelNotFoundError",
    "Pipeline",
    "PipelineError",
    "PipelineFile",
    "RagError",
    "Registry",
    "Retriever",
    "Secret",
    "UnknownComponentError",
    "VectorStore",
    "WritePolicy",
    "chunk_id",
    "content_hash",
    "default_registry",
    "matches",
    "parse_filter",
]
