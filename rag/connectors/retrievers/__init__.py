"""Retrievers: a query in, ranked hits out."""
