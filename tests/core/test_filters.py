import pytest

from rag.core.errors import FilterError
from rag.core.filters import And, Field, Not, Or, field_names, matches, parse_filter

pytestmark = pytest.mark.unit

DOCS = [
    {"source": "a.md", "year": 2019, "lang": "en", "tags": ["x", "y"], "draft": False},
    {"source": "b.md", "year": 2021, "lang": "de", "tags": ["y"], "draft": True},
    {"source": "c.md", "year": 2023, "lang": "fr"},
    {"source": "d.md", "lang": "en", "year": "2020"},
]


def ids(filters):
    node = parse_filter(filters)
    return [d["source"] for d in DOCS if matches(node, d)]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"source": "a.md"}, ["a.md"]),
        ({"year": {"$gte": 2021}}, ["b.md", "c.md"]),
        ({"year": {"$gt": 2019, "$lt": 2023}}, ["b.md"]),
        ({"year": {"$lte": 2019}}, ["a.md"]),
        ({"lang": {"$ne": "en"}}, ["b.md", "c.md"]),
        ({"lang": {"$in": ["de", "fr"]}}, ["b.md", "c.md"]),
        ({"lang": {"$nin": ["de", "fr"]}}, ["a.md", "d.md"]),
        ({"tags": "y"}, ["a.md", "b.md"]),
        ({"tags": {"$in": ["x"]}}, ["a.md"]),
        ({"tags": {"$ne": "x"}}, ["b.md", "c.md", "d.md"]),
        ({"tags": {"$exists": True}}, ["a.md", "b.md"]),
        ({"tags": {"$exists": False}}, ["c.md", "d.md"]),
        ({"draft": False}, ["a.md"]),
        ({"draft": 0}, []),  # booleans are never numbers
        ({"year": "2020"}, ["d.md"]),  # strings never equal numbers
        ({"$or": [{"lang": "fr"}, {"year": 2019}]}, ["a.md", "c.md"]),
        ({"$and": [{"lang": "en"}, {"year": {"$gte": 2019}}]}, ["a.md"]),
        ({"$not": {"lang": "en"}}, ["b.md", "c.md"]),
        ({"year": {"$not": {"$gt": 2020}}}, ["a.md", "d.md"]),
        ({"lang": "en", "year": 2019}, ["a.md"]),
        ({"missing": {"$ne": 1}}, ["a.md", "b.md", "c.md", "d.md"]),
        ({"missing": 1}, []),
        ({"$or": [{"$and": [{"lang": "en"}, {"draft": False}]}, {"year": 2023}]}, ["a.md", "c.md"]),
    ],
)
def test_semantics(filters, expected):
    assert ids(filters) == expected


def test_parse_builds_tree():
    node = parse_filter({"a": 1, "$or": [{"b": {"$in": [1, 2]}}, {"$not": {"c": True}}]})
    assert node == And(
        (Field("a", "$eq", 1), Or((Field("b", "$in", (1, 2)), Not(Field("c", "$eq", True)))))
    )
    assert field_names(node) == {"a", "b", "c"}


def test_empty_filter_is_none():
    assert parse_filter({}) is None
    assert parse_filter(None) is None


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"year": {"$gtx": 1}}, "unknown operator '$gtx' on field 'year'. Did you mean '$gt'?"),
        ({"$nor": [{"a": 1}]}, "unknown operator '$nor'"),
        ({"$and": {"a": 1}}, "'$and' takes a non-empty list"),
        ({"$or": []}, "'$or' takes a non-empty list"),
        ({"lang": {"$in": "en"}}, "'$in' takes a list"),
        ({"tags": {"$exists": "yes"}}, "'$exists' takes true or false"),
        ({"a": None}, "filter values must be strings, numbers or booleans"),
        ({"a": {"$gt": True}}, "not booleans"),
        ({"$gt": 3}, "'$gt' applies to a field"),
        ([1, 2], "a filter must be a mapping"),
        ({"a": {}}, "empty condition for field 'a'"),
    ],
)
def test_malformed_filters_name_the_problem(filters, message):
    with pytest.raises(FilterError, match=None) as info:
        parse_filter(filters)
    assert message in str(info.value)
