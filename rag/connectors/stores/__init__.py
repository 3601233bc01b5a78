"""Vector stores that follow :class:`rag.core.protocols.VectorStore`."""
