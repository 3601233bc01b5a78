"""Filter translation of ``store.pgvector``: ragline's grammar as SQL over the ``metadata``
JSONB column (see :mod:`rag.connectors.stores.pgvector`). Keys and values are bound parameters;
the SQL text depends only on the filter's shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag.core.filters import And, Field, FilterNode, Not, Or, parse_filter  # noqa: F401 (doctest)

ORDER_PATHS = {
    "$gt": "$[*] ? (@ > $x)",
    "$gte": "$[*] ? (@ >= $x)",
    "$lt": "$[*] ? (@ < $x)",
    "$lte": "$[*] ? (@ <= $x)",
}


def jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def _equals_any(name: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``metadata`` holds one of ``values`` under ``name`` (itself, or as a list element)."""
    if not values:
        return "FALSE", []
    parts, params = [], []
    for value in values:
        parts.append("metadata @> %s OR metadata @> %s")
        params.extend([jsonb({name: value}), jsonb({name: [value]})])
    return "(" + " OR ".join(parts) + ")", params


def _field_sql(node: Field) -> tuple[str, list[Any]]:
    if node.op == "$exists":
        text = "COALESCE(jsonb_typeof(metadata -> %s), 'null') <> 'null'"
        return (text if node.value else f"NOT ({text})"), [node.name]
    if node.op in ("$eq", "$ne"):
        text, params = _equals_any(node.name, [node.value])
        return (text if node.op == "$eq" else f"NOT {text}"), params
    if node.op in ("$in", "$nin"):
        text, params = _equals_any(node.name, list(node.value))
        return (text if node.op == "$in" else f"NOT {text}"), params
    # NULL (a missing key) must not reach NOT: COALESCE makes the comparison two-valued.
    text = "COALESCE(jsonb_path_exists(metadata -> %s, %s::jsonpath, %s), FALSE)"
    return text, [node.name, ORDER_PATHS[node.op], jsonb({"x": node.value})]


def to_sql(node: FilterNode | None) -> tuple[str, list[Any]]:
    """Translate a parsed filter into a SQL condition and its parameters (``%s`` placeholders).

    Keys and values are parameters; the SQL text depends only on the filter's shape.

    Example:
        >>> text, params = to_sql(parse_filter({"year": {"$gte": 2020}}))
        >>> text
        'COALESCE(jsonb_path_exists(metadata -> %s, %s::jsonpath, %s), FALSE)'
        >>> params[:2]
        ['year', '$[*] ? (@ >= $x)']
    """
    if node is None:
        return "TRUE", []
    if isinstance(node, Field):
        return _field_sql(node)
    if isinstance(node, Not):
        text, params = to_sql(node.child)
        return f"NOT ({text})", params
    parts, params = [], []
    for child in node.children:
        text, child_params = to_sql(child)
        parts.append(f"({text})")
        params.extend(child_params)
    joiner = " AND " if isinstance(node, And) else " OR "
    assert isinstance(node, (And, Or))
    return "(" + joiner.join(parts) + ")", params
