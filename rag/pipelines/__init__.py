"""Ingestion (loaders, splitters, the store writer, the ingest runner) and query pipelines."""
