"""Argument checks every vector store makes the same way, with the same messages."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from rag.core.errors import ConfigError


def check_choice(value: str, choices: Collection[str], field: str) -> None:
    """Raise :class:`ConfigError` naming ``field`` when ``value`` is not one of ``choices``.

    Example:
        >>> check_choice("flat", ("flat", "hnsw"), "index")
    """
    if value not in choices:
        raise ConfigError(
            f"{field} must be one of {', '.join(choices)}, got {value!r}", field=field
        )


def check_k(k: int) -> None:
    """Raise ``ValueError`` unless at least one hit is asked for."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def query_vector(vector: np.ndarray, dimension: int | None) -> np.ndarray:
    """``vector`` as a flat float32 array, checked against the store's ``dimension``.

    Example:
        >>> query_vector([1, 0, 0], 3).dtype
        dtype('float32')
    """
    query = np.asarray(vector, dtype=np.float32).reshape(-1)
    if dimension is not None and query.shape[0] != dimension:
        raise ValueError(
            f"query vector has dimension {query.shape[0]}, the store holds {dimension}; "
            "embed queries with the model that embedded the chunks"
        )
    return query
