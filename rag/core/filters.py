"""The one metadata filter grammar of ragline (MongoDB style, as Pinecone and Chroma use).

``{"source": "a.pdf", "year": {"$gte": 2020}, "$or": [{"lang": "en"}, {"lang": {"$in": ["de"]}}]}``

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists`` on fields, ``$and $or $not`` to combine.
A bare value means ``$eq``; several keys in one mapping are joined with ``$and``.

Semantics (shared by every store, proven by the conformance suite in :mod:`rag.testing`):

- a field that a chunk lacks matches only ``$ne``, ``$nin`` and ``$exists: false``;
- when the stored value is a list, ``$eq``/``$in`` match if any element matches, ``$ne``/``$nin``
  match if no element does;
- ``$gt``-style comparisons only compare numbers with numbers and strings with strings;
  booleans are never numbers.

:func:`parse_filter` validates a filter once into a small tree (``Field``, ``And``, ``Or``,
``Not``); each store translates that tree in its own module, and :func:`matches` evaluates it in
Python for stores that filter in memory.

Example:
    >>> f = parse_filter({"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}})
    >>> matches(f, {"year": 2021, "lang": "en"})
    True
    >>> matches(f, {"year": 2019, "lang": "en"})
    False
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from rag.core.errors import FilterError, InvalidInputError, did_you_mean
from rag.core.limits import MAX_JSON_DEPTH, check_finite

FIELD_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
LOGICAL_OPERATORS = ("$and", "$or", "$not")
Scalar = Union[str, int, float, bool]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class Field:
    """A comparison of one metadata field with a value."""

    name: str
    op: str
    value: Any


@dataclass(frozen=True)
class And:
    children: tuple[FilterNode, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[FilterNode, ...]


@dataclass(frozen=True)
class Not:
    child: FilterNode


FilterNode = Union[Field, And, Or, Not]  # noqa: UP007 (a runtime alias)


def parse_filter(filters: Mapping[str, Any] | FilterNode | None) -> FilterNode | None:
    """Validate a filter dictionary and return its tree (``None`` for no filter).

    Raises:
        FilterError: naming the operator or field that is wrong.
    """
    if filters is None or isinstance(filters, (Field, And, Or, Not)):
        return filters
    if not isinstance(filters, Mapping):
        raise FilterError(
            f"a filter must be a mapping such as {{'source': 'a.md'}}, got {type(filters).__name__}"
        )
    if not filters:
        return None
    try:
        check_finite(filters, where="filter", max_depth=MAX_JSON_DEPTH)
    except InvalidInputError as err:
        raise FilterError(str(err)) from None
    return _parse_mapping(filters, path="filter")


def _parse_mapping(filters: Mapping[str, Any], path: str) -> FilterNode:
    if not filters:
        raise FilterError(f"{path}: empty filter mapping")
    nodes: list[FilterNode] = []
    for key, value in filters.items():
        if not isinstance(key, str):
            raise FilterError(f"{path}: filter keys must be strings, got {key!r}")
        if key.startswith("$"):
            nodes.append(_parse_logical(key, value, f"{path}.{key}"))
        else:
            nodes.extend(_parse_field(key, value, f"{path}.{key}"))
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _parse_logical(op: str, value: Any, path: str) -> FilterNode:
    if op not in LOGICAL_OPERATORS:
        hint = did_you_mean(op, LOGICAL_OPERATORS + FIELD_OPERATORS)
        if op in FIELD_OPERATORS:
            raise FilterError(
                f"{path}: '{op}' applies to a field, as in {{'year': {{'{op}': ...}}}}"
            )
        raise FilterError(
            f"{path}: unknown operator '{op}'.{hint} "
            f"Known: {', '.join(LOGICAL_OPERATORS + FIELD_OPERATORS)}"
        )
    if op == "$not":
        if not isinstance(value, Mapping):
            raise FilterError(f"{path}: '$not' takes one filter mapping")
        return Not(_parse_mapping(value, path))
    if not isinstance(value, (list, tuple)) or not value:
        raise FilterError(f"{path}: '{op}' takes a non-empty list of filter mappings")
    children = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise FilterError(f"{path}[{index}]: expected a filter mapping, got {item!r}")
        children.append(_parse_mapping(item, f"{path}[{index}]"))
    return And(tuple(children)) if op == "$and" else Or(tuple(children))


def _check_scalar(value: Any, path: str) -> None:
    if not isinstance(value, (str, int, float, bool)) or value is None:
        raise FilterError(
            f"{path}: filter values must be strings, numbers or booleans, got {value!r}"
        )


def _parse_field(name: str, condition: Any, path: str) -> list[FilterNode]:
    if not name:
        raise FilterError(f"{path}: empty field name")
    if not isinstance(condition, Mapping):
        _check_scalar(condition, path)
        return [Field(name, "$eq", condition)]
    if not condition:
        raise FilterError(f"{path}: empty condition for field '{name}'")
    nodes: list[FilterNode] = []
    for op, value in condition.items():
        op_path = f"{path}.{op}"
        if op == "$not":
            if not isinstance(value, Mapping):
                raise FilterError(f"{op_path}: '$not' on a field takes an operator mapping")
            inner = _parse_field(name, value, op_path)
            nodes.append(Not(inner[0] if len(inner) == 1 else And(tuple(inner))))
            continue
        if op not in FIELD_OPERATORS:
            raise FilterError(
                f"{op_path}: unknown operator '{op}' on field '{name}'."
                f"{did_you_mean(str(op), FIELD_OPERATORS)} Known: {', '.join(FIELD_OPERATORS)}"
            )
        if op in ("$in", "$nin"):
            if not isinstance(value, (list, tuple)):
                raise FilterError(f"{op_path}: '{op}' takes a list of values, got {value!r}")
            for item in value:
                _check_scalar(item, op_path)
            value = tuple(value)
        elif op == "$exists":
            if not isinstance(value, bool):
                raise FilterError(f"{op_path}: '$exists' takes true or false, got {value!r}")
        else:
            _check_scalar(value, op_path)
            if op in ("$gt", "$gte", "$lt", "$lte") and isinstance(value, bool):
                raise FilterError(f"{op_path}: '{op}' compares numbers or strings, not booleans")
        nodes.append(Field(name, op, value))
    return nodes


_MISSING = object()


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _match_field(node: Field, metadata: Mapping[str, Any]) -> bool:
    stored = metadata.get(node.name, _MISSING)
    if node.op == "$exists":
        return bool((stored is not _MISSING and stored is not None) == node.value)
    if stored is _MISSING or stored is None:
        return node.op in ("$ne", "$nin")
    values = stored if isinstance(stored, (list, tuple)) else [stored]
    if node.op == "$eq":
        return any(_equal(v, node.value) for v in values)
    if node.op == "$ne":
        return not any(_equal(v, node.value) for v in values)
    if node.op == "$in":
        return any(_equal(v, option) for v in values for option in node.value)
    if node.op == "$nin":
        return not any(_equal(v, option) for v in values for option in node.value)
    compare = _ORDER[node.op]
    return any(_same_kind(v, node.value) and compare(v, node.value) for v in values)


def matches(node: FilterNode | None, metadata: Mapping[str, Any]) -> bool:
    """Evaluate a parsed filter against one chunk's metadata."""
    if node is None:
        return True
    if isinstance(node, Field):
        return _match_field(node, metadata)
    if isinstance(node, And):
        return all(matches(child, metadata) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, metadata) for child in node.children)
    return not matches(node.child, metadata)


def field_names(node: FilterNode | None) -> set[str]:
    """All metadata field names a filter refers to."""
    if node is None:
        return set()
    if isinstance(node, Field):
        return {node.name}
    if isinstance(node, Not):
        return field_names(node.child)
    return set().union(*(field_names(child) for child in node.children))
