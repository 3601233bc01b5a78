"""The columnar filter evaluation of store.faiss agrees with rag.core.filters.matches."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.connectors.stores._columns import MetadataColumns
from rag.core.filters import matches, parse_filter
from rag.testing.store_conformance import FILTER_CASES, FILTER_CORPUS

pytestmark = pytest.mark.unit

FIELDS = ("a", "b", "c")
scalars = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 2**60, 2**60 + 1, float("inf"), float("nan")]),
    st.sampled_from(["", "x", "y", "X", "ü", "1"]),
)
stored_values = st.one_of(
    scalars,
    st.none(),
    st.lists(st.one_of(scalars, st.none(), st.just({"n": 1})), max_size=3),
    st.just({"n": 1}),
)
metadatas = st.dictionaries(st.sampled_from(FIELDS), stored_values, max_size=3)
# NaN and infinities are refused in filters (JSON cannot carry them; FilterError names them)
query_values = scalars.filter(lambda v: not isinstance(v, float) or math.isfinite(v))


def _field_conditions() -> st.SearchStrategy:
    ops = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"])
    compare = st.builds(
        lambda op, v: {op: v}, ops, query_values.filter(lambda v: not isinstance(v, bool))
    )
    equal = st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$ne"]), query_values)
    listed = st.builds(
        lambda op, vs: {op: vs}, st.sampled_from(["$in", "$nin"]), st.lists(query_values)
    )
    exists = st.builds(lambda v: {"$exists": v}, st.booleans())
    return st.one_of(compare, equal, listed, exists, query_values)


leaf = st.builds(lambda f, c: {f: c}, st.sampled_from([*FIELDS, "nowhere"]), _field_conditions())
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"$not": x}, inner),
    ),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(metadatas, min_size=1, max_size=12), filters=filters, drop=st.data())
def test_columns_agree_with_matches(rows, filters, drop):
    columns = MetadataColumns()
    for row, metadata in enumerate(rows):
        columns.add(row * 3 + 1, metadata)  # sparse row ids, as after deletions
    removed = drop.draw(st.sets(st.integers(0, len(rows) - 1)))
    for row in removed:
        columns.remove(row * 3 + 1, rows[row])
    node = parse_filter(filters)
    expected = [
        row * 3 + 1
        for row, metadata in enumerate(rows)
        if row not in removed and matches(node, metadata)
    ]
    assert columns.rowids(node).tolist() == expected
    assert columns.count(node) == len(expected)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(metadatas, min_size=1, max_size=12), filters=filters)
def test_extend_builds_the_columns_that_add_builds_row_by_row(rows, filters):
    rowids = [row * 3 + 1 for row in range(len(rows))]
    one_by_one, at_once = MetadataColumns(), MetadataColumns()
    for row, metadata in zip(rowids, rows, strict=True):
        one_by_one.add(row, metadata)
    at_once.extend(rowids, rows)
    node = parse_filter(filters)
    assert at_once.rowids(node).tolist() == one_by_one.rowids(node).tolist()
    assert len(at_once) == len(one_by_one) == len(rows)
    for name in FIELDS:
        assert at_once.distinct(name) == one_by_one.distinct(name)


def test_extend_replaces_rows_already_held_and_refuses_bad_input():
    columns = MetadataColumns()
    columns.add(2, {"a": 1})
    columns.extend([2, 3000], [{"a": 2}, {"a": [1, 2]}])  # row 2 again: its old value goes
    assert columns.rowids(parse_filter({"a": 1})).tolist() == [3000]
    assert columns.rowids(parse_filter({"a": 2})).tolist() == [2, 3000]
    assert len(columns) == 2 and columns.capacity > 3000
    with pytest.raises(ValueError, match="non-negative"):
        columns.extend([-1], [{}])
    with pytest.raises(ValueError, match="2 rows but 1 metadata"):
        columns.extend([5, 6], [{}])


@pytest.mark.parametrize("case", FILTER_CASES, ids=[c.name for c in FILTER_CASES])
def test_filter_corpus_cases(case):
    ids = list(FILTER_CORPUS)
    columns = MetadataColumns.build(enumerate(FILTER_CORPUS.values()))
    node = parse_filter(case.filters)
    got = {ids[row] for row in columns.rowids(node).tolist()}
    assert got == {cid for cid, meta in FILTER_CORPUS.items() if matches(node, meta)}


def test_capacity_grows_and_rows_can_be_replaced():
    columns = MetadataColumns()
    columns.add(5000, {"a": [1, 2]})
    columns.add(7, {"a": 2})
    assert columns.capacity > 5000
    assert columns.rowids(parse_filter({"a": 2})).tolist() == [7, 5000]
    columns.add(5000, {"a": 3})  # a row written again replaces its old values
    assert columns.rowids(parse_filter({"a": 2})).tolist() == [7]
    assert columns.rowids(parse_filter({"a": {"$gte": 3}})).tolist() == [5000]
    assert len(columns) == 2
    with pytest.raises(ValueError, match="non-negative"):
        columns.add(-1, {})
