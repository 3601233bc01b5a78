"""Haystack's filter grammar translated into ragline's, in one place (:func:`to_ragline_filters`).

``{"operator": "AND", "conditions": [{"field": "meta.year", "operator": ">=", "value": 2020}]}``
becomes ``{"$and": [{"year": {"$gte": 2020}}]}`` (:mod:`rag.core.filters`); each store then
translates ragline's grammar as usual. Where the two grammars differ, Haystack's meaning is kept
(see :mod:`rag.connectors.haystack`). Public names are re-exported there; import them from
``rag.connectors.haystack``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rag.connectors._deps import require
from rag.core.errors import FilterError as RaglineFilterError
from rag.core.filters import parse_filter

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # offline by default (haystack.py)
require("haystack", package="haystack-ai", extra="haystack", purpose="rag.connectors.haystack")

from haystack.errors import FilterError  # noqa: E402

__all__ = ["and_filters", "to_ragline_filters"]

_COMPARISONS = {
    "==": "$eq",
    "!=": "$ne",
    ">": "$gt",
    ">=": "$gte",
    "<": "$lt",
    "<=": "$lte",
    "in": "$in",
    "not in": "$nin",
}
_LOGIC = ("AND", "OR", "NOT")
_ORDERING = (">", ">=", "<", "<=")
_DOCUMENT_FIELDS = ("id", "content", "blob", "embedding", "sparse_embedding", "score")


def _meta_key(field: Any, path: str) -> str:
    if not isinstance(field, str) or not field:
        raise FilterError(f"{path}.field must be a non-empty string such as 'meta.year'")
    if field.startswith("meta."):
        return field[len("meta.") :]
    if field in _DOCUMENT_FIELDS:
        raise FilterError(
            f"{path}.field '{field}': ragline stores filter on metadata only; filter on "
            "'meta.<key>' (ids: use get_documents_by_id or delete_documents)"
        )
    return field  # Haystack 1.x wrote meta fields without the prefix


def _never(key: str) -> dict[str, Any]:
    """A filter no document matches (Haystack's ``> None``)."""
    return {"$and": [{key: {"$exists": True}}, {key: {"$exists": False}}]}


def _comparison(node: Mapping[str, Any], path: str) -> dict[str, Any]:
    for required in ("operator", "value"):
        if required not in node:
            raise FilterError(f"{path}: a comparison needs 'field', 'operator' and 'value'")
    key = _meta_key(node["field"], path)
    operator, value = node["operator"], node["value"]
    if operator not in _COMPARISONS:
        raise FilterError(
            f"{path}.operator {operator!r} is not a comparison; use one of "
            f"{', '.join(repr(o) for o in _COMPARISONS)}"
        )
    if operator in ("in", "not in"):
        if not isinstance(value, list):
            raise FilterError(f"{path}: '{operator}' takes a list, got {type(value).__name__}")
        present = [v for v in value if v is not None]
        condition: dict[str, Any] = {key: {_COMPARISONS[operator]: present}}
        if len(present) < len(value):  # None among the options: a missing field
            missing = {key: {"$exists": operator == "not in"}}
            joiner = "$or" if operator == "in" else "$and"
            condition = {joiner: [condition, missing]} if present else missing
        return condition
    if isinstance(value, (list, tuple, dict)):
        raise FilterError(f"{path}: '{operator}' compares one value, got {type(value).__name__}")
    if value is None:
        if operator in _ORDERING:
            return _never(key)
        return {key: {"$exists": operator == "!="}}
    if operator in _ORDERING and isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise FilterError(
                f"{path}: can't compare strings using operators '>', '>=', '<', '<=': "
                f"{value!r} is not an ISO-8601 date"
            ) from None
    return {key: {_COMPARISONS[operator]: value}}


def _translate(node: Any, path: str) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise FilterError(f"{path}: a filter is a mapping, got {type(node).__name__}")
    if "field" in node:
        return _comparison(node, path)
    if "operator" not in node:
        raise FilterError(f"{path}: a logical filter needs 'operator' (AND, OR, NOT)")
    if "conditions" not in node:
        raise FilterError(f"{path}: a logical filter needs 'conditions' (a list of filters)")
    operator, conditions = node["operator"], node["conditions"]
    if operator not in _LOGIC:
        raise FilterError(f"{path}.operator {operator!r}: use one of AND, OR, NOT")
    if not isinstance(conditions, list) or not conditions:
        raise FilterError(f"{path}.conditions must be a non-empty list of filters")
    children = [_translate(c, f"{path}.conditions[{i}]") for i, c in enumerate(conditions)]
    if operator == "OR":
        return {"$or": children}
    conjunction = {"$and": children}
    return {"$not": conjunction} if operator == "NOT" else conjunction


def to_ragline_filters(filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Translate a Haystack filter into ragline's grammar (``None`` for no filter).

    Raises:
        haystack.errors.FilterError: naming the offending part (``filters.conditions[1]``).

    Example:
        >>> to_ragline_filters({"field": "meta.year", "operator": ">=", "value": 2020})
        {'year': {'$gte': 2020}}
        >>> to_ragline_filters({"operator": "NOT", "conditions": [
        ...     {"field": "meta.lang", "operator": "==", "value": None}]})
        {'$not': {'$and': [{'lang': {'$exists': False}}]}}
    """
    if not filters:
        return None
    translated = _translate(filters, "filters")
    try:
        parse_filter(translated)  # ragline's own checks (value types, non-finite numbers)
    except RaglineFilterError as err:
        raise FilterError(f"{err} (from Haystack filter {dict(filters)!r:.300})") from None
    return translated


def and_filters(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """The conjunction of the given ragline filters (``None`` and empty ones left out).

    Example:
        >>> and_filters({"a": 1}, None, {"b": 2})
        {'$and': [{'a': 1}, {'b': 2}]}
    """
    present = [f for f in filters if f]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"$and": present}
