"""The data every store is tested with: seeded random chunks, a metadata corpus that exercises
every corner of the filter grammar, and the filter cases with their expected ids."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.core.documents import Chunk
from rag.core.filters import matches, parse_filter

DIMENSION = 12
INJECTION = 'x" or id != "'
"""A value that would widen a query if a store pasted it raw into a query string."""


def unit_vector(rng: np.random.Generator, dimension: int) -> np.ndarray:
    """A random vector of length 1 drawn from ``rng``."""
    vector = rng.normal(size=dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def random_chunks(
    count: int,
    *,
    dimension: int = DIMENSION,
    seed: int = 0,
    prefix: str = "c",
    metadata: Callable[[int], dict[str, Any]] | None = None,
) -> list[Chunk]:
    """``count`` chunks with seeded random unit vectors (ids ``{prefix}{i:05d}``)."""
    rng = np.random.default_rng(seed)
    chunks = []
    for i in range(count):
        meta = {"source": f"doc{i % 7}.md", "i": i}
        if metadata is not None:
            meta.update(metadata(i))
        chunks.append(
            Chunk(
                id=f"{prefix}{i:05d}",
                text=f"chunk {i} of {prefix}",
                metadata=meta,
                embedding=unit_vector(rng, dimension),
            )
        )
    return chunks


# Metadata chosen to exercise every corner of the grammar: strings, ints, floats, booleans,
# lists (empty, mixed), explicit nulls, missing fields, nested dicts, a number stored as a
# string, a 1 that is not True, unicode keys and values, and an injection probe.
FILTER_CORPUS: dict[str, dict[str, Any]] = {
    "m00": {
        "source": "a.md",
        "lang": "en",
        "year": 2019,
        "score": 0.5,
        "draft": False,
        "tags": ["x", "y"],
        "nums": [1, 5],
    },
    "m01": {
        "source": "a.md",
        "lang": "de",
        "year": 2020,
        "score": 1.5,
        "draft": True,
        "tags": ["y"],
    },
    "m02": {"source": "b.md", "lang": "fr", "year": 2021, "draft": False, "tags": []},
    "m03": {"source": "b.md", "lang": "en", "year": 2022.5, "score": -1, "nums": [10]},
    "m04": {"source": "c.md", "year": "2020"},
    "m05": {"source": "c.md", "lang": None, "draft": True},
    "m06": {"source": "d.md", "lang": "EN", "flag": 1},
    "m07": {
        "source": "d.md",
        "lang": "ünïcødé",
        "tags": ["ü", "x"],
        "mixed": [1, "1", True],
        "名前": "値",
    },
    "m08": {"source": "e.md", "year": 2023, "draft": False, "nested": {"a": 1}},
    "m09": {"source": "e.md", "mixed": "1", "score": 0},
    "m10": {"source": "f.md", "lang": "en", "year": 2018, "tags": ["z"], "flag": True},
    "m11": {"source": "f.md", "q": INJECTION, 'we"ird key': "v", "lang": "x"},
}


def filter_corpus_chunks(*, dimension: int = DIMENSION, seed: int = 1) -> list[Chunk]:
    """The chunks of :data:`FILTER_CORPUS` with seeded random unit vectors."""
    rng = np.random.default_rng(seed)
    return [
        Chunk(
            id=cid,
            text=f"text of {cid}",
            metadata=dict(meta),
            embedding=unit_vector(rng, dimension),
        )
        for cid, meta in FILTER_CORPUS.items()
    ]


@dataclass(frozen=True)
class FilterCase:
    """A filter and, where written by hand, the ids of :data:`FILTER_CORPUS` it must match."""

    name: str
    filters: Mapping[str, Any]
    expected: frozenset[str] | None = None


def _ids(*ids: str) -> frozenset[str]:
    return frozenset(ids)


_ALL = frozenset(FILTER_CORPUS)

FILTER_CASES: list[FilterCase] = [
    # strings
    FilterCase("eq-string", {"lang": "en"}, _ids("m00", "m03", "m10")),
    FilterCase("eq-string-explicit", {"lang": {"$eq": "en"}}, _ids("m00", "m03", "m10")),
    FilterCase("ne-string", {"lang": {"$ne": "en"}}, _ALL - _ids("m00", "m03", "m10")),
    FilterCase("gt-string", {"lang": {"$gt": "e"}}, _ids("m00", "m02", "m03", "m07", "m10", "m11")),
    FilterCase("lte-string", {"lang": {"$lte": "de"}}, _ids("m01", "m06")),
    FilterCase("in-string", {"source": {"$in": ["a.md", "f.md"]}}),
    FilterCase("nin-string", {"lang": {"$nin": ["en", "de"]}}),
    FilterCase("unicode-value", {"lang": "ünïcødé"}, _ids("m07")),
    FilterCase("unicode-key", {"名前": "値"}, _ids("m07")),
    FilterCase("quote-in-key", {'we"ird key': "v"}, _ids("m11")),
    FilterCase("injection-value-exact", {"q": INJECTION}, _ids("m11")),
    FilterCase("injection-value-cannot-widen", {"lang": INJECTION}, frozenset()),
    FilterCase("injection-in", {"source": {"$in": [INJECTION, "a.md"]}}, _ids("m00", "m01")),
    # numbers
    FilterCase("eq-int", {"year": 2020}, _ids("m01")),
    FilterCase("eq-int-as-float", {"year": 2020.0}, _ids("m01")),
    FilterCase("eq-float", {"year": 2022.5}, _ids("m03")),
    FilterCase("ne-int", {"year": {"$ne": 2020}}, _ALL - _ids("m01")),
    FilterCase("gt-int", {"year": {"$gt": 2020}}, _ids("m02", "m03", "m08")),
    FilterCase("gte-int", {"year": {"$gte": 2020}}, _ids("m01", "m02", "m03", "m08")),
    FilterCase("lt-int", {"year": {"$lt": 2020}}, _ids("m00", "m10")),
    FilterCase("lte-int", {"year": {"$lte": 2020}}, _ids("m00", "m01", "m10")),
    FilterCase("range", {"year": {"$gt": 2019, "$lt": 2022}}, _ids("m01", "m02")),
    FilterCase("gt-string-on-numbers", {"year": {"$gt": "2019"}}, _ids("m04")),
    FilterCase("gte-zero-float", {"score": {"$gte": 0}}, _ids("m00", "m01", "m09")),
    FilterCase("lt-float", {"score": {"$lt": 0.5}}, _ids("m03", "m09")),
    FilterCase(
        "in-mixed-types", {"year": {"$in": [2019, 2023, "2020"]}}, _ids("m00", "m04", "m08")
    ),
    FilterCase("nin-int", {"year": {"$nin": [2019, 2023]}}),
    # booleans
    FilterCase("eq-true", {"draft": True}, _ids("m01", "m05")),
    FilterCase("eq-false", {"draft": False}, _ids("m00", "m02", "m08")),
    FilterCase("ne-true", {"draft": {"$ne": True}}, _ALL - _ids("m01", "m05")),
    FilterCase("one-is-not-true", {"flag": 1}, _ids("m06")),
    FilterCase("true-is-not-one", {"flag": True}, _ids("m10")),
    FilterCase("in-bool", {"draft": {"$in": [True]}}, _ids("m01", "m05")),
    # lists
    FilterCase("eq-list-element", {"tags": "y"}, _ids("m00", "m01")),
    FilterCase("in-list", {"tags": {"$in": ["x", "z"]}}, _ids("m00", "m07", "m10")),
    FilterCase("nin-list", {"tags": {"$nin": ["x"]}}, _ALL - _ids("m00", "m07")),
    FilterCase("ne-list", {"tags": {"$ne": "y"}}, _ALL - _ids("m00", "m01")),
    FilterCase("unicode-list-element", {"tags": "ü"}, _ids("m07")),
    FilterCase("gt-list", {"nums": {"$gt": 7}}, _ids("m03")),
    FilterCase("lt-list", {"nums": {"$lt": 2}}, _ids("m00")),
    FilterCase("gte-lte-list", {"nums": {"$gte": 5, "$lte": 5}}, _ids("m00")),
    FilterCase("mixed-list-int", {"mixed": 1}, _ids("m07")),
    FilterCase("mixed-list-string", {"mixed": "1"}, _ids("m07", "m09")),
    FilterCase("mixed-list-bool", {"mixed": True}, _ids("m07")),
    # missing fields, nulls, $exists
    FilterCase("exists-true", {"lang": {"$exists": True}}, _ALL - _ids("m04", "m05", "m08", "m09")),
    FilterCase("exists-false", {"lang": {"$exists": False}}, _ids("m04", "m05", "m08", "m09")),
    FilterCase(
        "exists-empty-list", {"tags": {"$exists": True}}, _ids("m00", "m01", "m02", "m07", "m10")
    ),
    FilterCase("exists-nested", {"nested": {"$exists": True}}, _ids("m08")),
    FilterCase("eq-on-dict", {"nested": 1}, frozenset()),
    FilterCase("missing-field", {"nowhere": "x"}, frozenset()),
    FilterCase("ne-missing-field", {"nowhere": {"$ne": "x"}}, _ALL),
    FilterCase("nin-missing-field", {"nowhere": {"$nin": ["x"]}}, _ALL),
    FilterCase("exists-missing-field", {"nowhere": {"$exists": True}}, frozenset()),
    FilterCase("not-exists-missing-field", {"nowhere": {"$exists": False}}, _ALL),
    FilterCase("gt-missing-field", {"nowhere": {"$gt": 1}}, frozenset()),
    # logic
    FilterCase("implicit-and", {"lang": "en", "year": {"$gt": 2019}}, _ids("m03")),
    FilterCase("and", {"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}]}, _ids("m03")),
    FilterCase("or", {"$or": [{"lang": "de"}, {"draft": True}]}, _ids("m01", "m05")),
    FilterCase("not", {"$not": {"lang": "en"}}, _ALL - _ids("m00", "m03", "m10")),
    FilterCase("field-not", {"lang": {"$not": {"$in": ["en", "de"]}}}),
    FilterCase("not-gt-missing", {"$not": {"year": {"$gt": 2020}}}),
    FilterCase("not-not", {"$not": {"$not": {"draft": True}}}, _ids("m01", "m05")),
    FilterCase(
        "nested-logic",
        {
            "$or": [
                {"$and": [{"source": "a.md"}, {"$not": {"draft": True}}]},
                {"year": {"$gt": 2022}},
                {"tags": {"$exists": False}},
            ]
        },
    ),
    FilterCase(
        "not-or",
        {"$not": {"$or": [{"lang": {"$exists": False}}, {"year": {"$lt": 2020}}]}},
    ),
    FilterCase(
        "and-of-or",
        {
            "$and": [
                {"$or": [{"source": "a.md"}, {"source": "d.md"}]},
                {"$or": [{"lang": {"$in": ["en", "EN"]}}, {"tags": "y"}]},
            ]
        },
        _ids("m00", "m01", "m06"),
    ),
]


def expected_ids(case: FilterCase, corpus: Mapping[str, Mapping[str, Any]] = FILTER_CORPUS) -> set:
    """Ids of ``corpus`` that ``case.filters`` matches, by :func:`rag.core.filters.matches`."""
    node = parse_filter(case.filters)
    return {cid for cid, meta in corpus.items() if matches(node, meta)}
