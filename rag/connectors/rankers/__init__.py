"""Rerankers: hits in, better-ordered hits out."""
