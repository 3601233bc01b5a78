"""The fixtures and helpers that the conformance classes share (see the package docstring)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from rag.core.documents import Chunk
from rag.core.protocols import Closable
from rag.testing.store_conformance._data import (
    DIMENSION,
    filter_corpus_chunks,
    random_chunks,
    unit_vector,
)


def close_store(store: Any) -> None:
    """Close ``store`` when it holds something to release (the :class:`Closable` ability)."""
    if isinstance(store, Closable):
        store.close()


names = itertools.count()
"""Numbers that make every store name of a test session unique."""


class StoreFixtures:
    """The ``store_factory`` fixture a store's test class overrides, and what is built on it."""

    dimension: int = DIMENSION
    persistent: bool = True
    """Whether a store made again with the same name sees what the first one wrote."""

    @pytest.fixture(scope="class")
    @classmethod
    def store_factory(cls) -> Callable[[str], Any]:
        raise NotImplementedError(
            f"{cls.__name__} must override the 'store_factory' fixture "
            "(class-scoped, returning make(name) -> store)"
        )

    @pytest.fixture
    def store(self, store_factory: Callable[[str], Any]) -> Iterator[Any]:
        store = store_factory(f"t{next(names)}")
        store.warm_up()
        yield store
        close_store(store)

    @pytest.fixture(scope="class")
    @classmethod
    def filter_store(cls, store_factory: Callable[[str], Any]) -> Iterator[Any]:
        store = store_factory(f"filters{next(names)}")
        store.warm_up()
        store.write(filter_corpus_chunks(dimension=cls.dimension))
        yield store
        close_store(store)

    # -- helpers -----------------------------------------------------------------------------
    def chunks(self, count: int, **kwargs: Any) -> list[Chunk]:
        return random_chunks(count, dimension=self.dimension, **kwargs)

    def query(self, seed: int = 99) -> np.ndarray:
        return unit_vector(np.random.default_rng(seed), self.dimension)

    @staticmethod
    def exact_order(chunks: list[Chunk], query: np.ndarray) -> list[str]:
        scores = np.vstack([c.embedding for c in chunks]) @ query
        return [chunks[i].id for i in np.argsort(-scores, kind="stable")]
