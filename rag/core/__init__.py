"""Core contracts: records, the component contract, the registry, pipelines, filters, errors.

``rag.core`` imports nothing else of the package and no heavy third-party library. Its
``__all__`` is the core's public surface, pinned by ``tests/test_exported_members.py``: every
public name imported here is listed there and every listed name is imported here.

Example:
    >>> from rag.core import STORE_ABILITIES, Enumerable, RagError, StoreLockedError
    >>> issubclass(StoreLockedError, RagError)
    True
    >>> Enumerable in STORE_ABILITIES
    True
"""

from rag.core.component import Component
from rag.core.documents import Chunk, Document, Hit, chunk_id, content_hash
from rag.core.errors import (
    ConfigError,
    DuplicateIdError,
    EmbeddingError,
    FilterError,
    GenerationError,
    InvalidInputError,
    LoaderError,
    MissingDependencyError,
    MissingEnvVarError,
    ModelNotFoundError,
    NestingTooDeepError,
    NonFiniteNumberError,
    PipelineError,
    RagError,
    RagWarning,
    StoreCorruptError,
    StoreFullError,
    StoreLockedError,
    StoreUnavailableError,
    UnknownComponentError,
)
from rag.core.filters import matches, parse_filter
from rag.core.generation import GenerationResult, Generator, ToolCall, Usage
from rag.core.pipeline import Connection, Pipeline, PipelineFile
from rag.core.protocols import (
    STORE_ABILITIES,
    Clearable,
    Closable,
    ConcurrentWriters,
    Embedder,
    EmbedsQueries,
    Enumerable,
    Fingerprinted,
    Flushable,
    HasDimension,
    HasTokenizer,
    OwnsRecordsLocation,
    ReportsStats,
    Retriever,
    RetrievesBatches,
    StoredAtPath,
    StoredAtUri,
    VectorStore,
    WritePolicy,
)
from rag.core.registry import Registry, default_registry
from rag.core.roles import Chain, Loader, Role, RoleMatch, Splitter, find_role
from rag.core.secrets import Secret

__all__ = [
    "STORE_ABILITIES",
    "Chain",
    "Chunk",
    "Clearable",
    "Closable",
    "Component",
    "ConcurrentWriters",
    "ConfigError",
    "Connection",
    "Document",
    "DuplicateIdError",
    "Embedder",
    "EmbeddingError",
    "EmbedsQueries",
    "Enumerable",
    "FilterError",
    "Fingerprinted",
    "Flushable",
    "GenerationError",
    "GenerationResult",
    "Generator",
    "HasDimension",
    "HasTokenizer",
    "Hit",
    "InvalidInputError",
    "Loader",
    "LoaderError",
    "MissingDependencyError",
    "MissingEnvVarError",
    "ModelNotFoundError",
    "NestingTooDeepError",
    "NonFiniteNumberError",
    "OwnsRecordsLocation",
    "Pipeline",
    "PipelineError",
    "PipelineFile",
    "RagError",
    "RagWarning",
    "Registry",
    "ReportsStats",
    "Retriever",
    "RetrievesBatches",
    "Role",
    "RoleMatch",
    "Secret",
    "Splitter",
    "StoreCorruptError",
    "StoreFullError",
    "StoreLockedError",
    "StoreUnavailableError",
    "StoredAtPath",
    "StoredAtUri",
    "ToolCall",
    "UnknownComponentError",
    "Usage",
    "VectorStore",
    "WritePolicy",
    "chunk_id",
    "content_hash",
    "default_registry",
    "find_role",
    "matches",
    "parse_filter",
]
