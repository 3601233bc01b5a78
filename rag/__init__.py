"""ragline: retrieval-augmented generation with fewer layers, nothing hidden, offline by default.

Example:
    >>> # Needs the embedding model and an ingested index.
    >>> import rag
    >>> app = rag.PipelineFile.load("examples/ingest.yaml")  # builds, loads no model
    >>> hits = app.pipeline("search").run(query="What is FAISS?")  # doctest: +SKIP
"""

from rag.core import (
    Chunk,
    Component,
    ConfigError,
    Document,
    Hit,
    Pipeline,
    PipelineFile,
    RagError,
    Registry,
    Secret,
    WritePolicy,
)

__version__ = "0.1.0"

__all__ = [
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
