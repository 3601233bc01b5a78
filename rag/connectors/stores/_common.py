"""What every vector store does the same way: argument checks, id batches, write policies."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TypeVar

import numpy as np

from rag.core.documents import Chunk
from rag.core.errors import ConfigError, DuplicateIdError
from rag.core.protocols import WritePolicy

T = TypeVar("T")


def check_choice(value: str, choices: Collection[str], field: str) -> None:
    """Raise :class:`ConfigError` naming ``field`` when ``value`` is not one of ``choices``.

    Example:
        >>> check_choice("flat", ("flat", "hnsw"), "index")
    """
    if value not in choices:
        raise ConfigError(
            f"{field} must be one of {', '.join(choices)}, got {value!r}", field=field
        )


def check_delete_arguments(ids: object, filters: object) -> None:
    """Raise ``ValueError`` when ``delete()`` is given neither ids nor filters."""
    if ids is None and filters is None:
        raise ValueError("delete() needs ids or filters; to empty the store use clear()")


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


def chunk_vectors(
    chunks: Iterable[Chunk], dimension: int | None, holder: str = "the store"
) -> list[np.ndarray]:
    """The chunks' embeddings as flat float32 arrays, all of the store's ``dimension``.

    ``holder`` names what holds the vectors in the error (``"table public.docs"``); with no
    ``dimension`` yet (an empty store), the first chunk's sets it.

    Example:
        >>> chunk = Chunk(id="c1", text="a", metadata={"source": "s"}, embedding=[1, 0])
        >>> chunk_vectors([chunk], 2)[0]
        array([1., 0.], dtype=float32)
    """
    chunks = list(chunks)
    missing = [c.id for c in chunks if c.embedding is None]
    if missing:
        raise ValueError(
            f"{len(missing)} chunk(s) have no embedding (first: {missing[0]}); run an "
            "embedder before writing to a vector store"
        )
    vectors = [np.asarray(c.embedding, dtype=np.float32).reshape(-1) for c in chunks]
    sizes = {v.shape[0] for v in vectors}
    expected = dimension if dimension is not None else vectors[0].shape[0]
    if sizes != {expected}:
        raise ValueError(
            f"chunk vectors have dimension(s) {sorted(sizes)} but {holder} holds "
            f"{expected}-dimensional vectors; use the same embedder for every write"
        )
    return vectors


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` without repeats (first occurrence kept, order kept) in lists of ``size``.

    Example:
        >>> list(batched(["a", "b", "a", "c"], 2))
        [['a', 'b'], ['c']]
    """
    unique = list(dict.fromkeys(items))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def apply_write_policy(
    unique: dict[str, T], policy: WritePolicy, stored: Callable[[list[str]], Collection[str]]
) -> dict[str, T]:
    """The entries of ``unique`` (chunk id -> row) that a write with ``policy`` stores.

    ``upsert`` keeps all; ``skip`` drops the ids ``stored(ids)`` reports as already stored;
    ``fail`` raises :class:`DuplicateIdError` naming them.

    Example:
        >>> apply_write_policy({"a": 1, "b": 2}, WritePolicy.SKIP, lambda ids: {"a"})
        {'b': 2}
    """
    if policy is WritePolicy.UPSERT:
        return unique
    existing = stored(list(unique))
    if existing and policy is WritePolicy.FAIL:
        raise DuplicateIdError([i for i in unique if i in existing])
    return {i: row for i, row in unique.items() if i not in existing}
