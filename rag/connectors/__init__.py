"""Connectors to outside libraries and services: embedders, vector stores, retrievers,
rerankers, generators and framework bridges. A connector imports only :mod:`rag.core`; its heavy
third-party library is imported when the component warms up."""
