"""The public surface is small and pinned; importing it stays light."""

import subprocess
import sys

import pytest

import rag
import rag.core

pytestmark = pytest.mark.unit


def test_exported_members_are_pinned():
    assert sorted(rag.__all__) == sorted(
        [
            "Chunk",
            "Component",
            "ConfigError",
            "Document",
            "Hit",
            "Pipeline",
            "PipelineFile",
            "RagError",
            "Registry",
            "Secret",
            "WritePolicy",
            "__version__",
        ]
    )
    for name in rag.__all__:
        assert hasattr(rag, name)


def test_core_exported_members_are_pinned():
    """A change to ``rag.core``'s surface is a visible change to this list."""
    import rag.core

    assert sorted(rag.core.__all__) == sorted(
        [
            # records, the component contract, the registry, pipelines, secrets
            "Chunk",
            "Component",
            "Connection",
            "Document",
            "Hit",
            "Pipeline",
            "PipelineFile",
            "Registry",
            "Secret",
            "chunk_id",
            "content_hash",
            "default_registry",
            # filters
            "matches",
            "parse_filter",
            # extension points and store abilities
            "Chain",
            "Embedder",
            "GenerationResult",
            "Generator",
            "Loader",
            "Retriever",
            "Splitter",
            "ToolCall",
            "Usage",
            "VectorStore",
            "WritePolicy",
            "STORE_ABILITIES",
            "Clearable",
            "Closable",
            "ConcurrentWriters",
            "Enumerable",
            "Fingerprinted",
            "Flushable",
            "OwnsRecordsLocation",
            "ReportsStats",
            # what a store's configuration says, and embedder / retriever abilities
            "HasDimension",
            "StoredAtPath",
            "StoredAtUri",
            "EmbedsQueries",
            "HasTokenizer",
            "RetrievesBatches",
            # which component plays which role
            "Role",
            "RoleMatch",
            "find_role",
            # the error tree
            "RagError",
            "ConfigError",
            "UnknownComponentError",
            "PipelineError",
            "MissingEnvVarError",
            "FilterError",
            "InvalidInputError",
            "NestingTooDeepError",
            "NonFiniteNumberError",
            "MissingDependencyError",
            "ModelNotFoundError",
            "LoaderError",
            "DuplicateIdError",
            "StoreUnavailableError",
            "StoreCorruptError",
            "StoreLockedError",
            "StoreFullError",
            "GenerationError",
            "EmbeddingError",
            "RagWarning",
        ]
    )


def test_import_rag_loads_no_heavy_dependency():
    code = (
        "import sys, rag, rag.core, rag.cli; "
        "heavy = {'torch', 'faiss', 'pymilvus', 'weaviate', 'llama_cpp', 'ray', 'fastapi', "
        "'sentence_transformers', 'transformers'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_builtin_type_name_resolves():
    from rag.core.registry import BUILTIN_COMPONENTS, Registry

    registry = Registry()
    missing = []
    for name in BUILTIN_COMPONENTS:
        try:
            registry.resolve(name)
        except Exception as err:  # report all at once
            missing.append(f"{name}: {err}")
    assert missing == []
