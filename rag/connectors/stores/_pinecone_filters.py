"""Metadata mapping and filter translation of ``store.pinecone`` (see
:mod:`rag.connectors.stores.pinecone`): the typed metadata of a vector, and ragline's grammar in
Pinecone's filter language, negations pushed down to guarded leaves."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from rag.core.documents import Chunk
from rag.core.errors import FilterError
from rag.core.filters import And, Field, FilterNode, Not, Or, parse_filter  # noqa: F401 (doctest)


# -- metadata mapping (pure) --------------------------------------------------------------------
def number_key(value: float) -> str:
    """The canonical string of a number, so that ``2020`` and ``2020.0`` are equal.

    >>> number_key(2020), number_key(2020.0), number_key(0.5)
    ('2020.0', '2020.0', '0.5')
    """
    return repr(float(value))


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n" if math.isfinite(value) else None
    if isinstance(value, str):
        return "s"
    return None


def vector_metadata(chunk: Chunk) -> dict[str, Any]:
    """The Pinecone metadata of ``chunk`` (see the module docstring).

    >>> m = vector_metadata(Chunk(id="c", text="t", metadata={"year": 2020, "tags": ["a", 1]}))
    >>> m["n:year"], m["nmax:year"], m["s:tags"], m["n:tags"]
    (['2020.0'], 2020, ['a'], ['1.0'])
    """
    out: dict[str, Any] = {
        "_text": chunk.text,
        "_meta": json.dumps(chunk.metadata, ensure_ascii=False),
        "_present": [k for k, v in chunk.metadata.items() if v is not None],
    }
    for key, value in chunk.metadata.items():
        numbers: list[int | float] = []
        for item in value if isinstance(value, (list, tuple)) else [value]:
            kind = _kind(item)
            if kind == "s":
                out.setdefault(f"s:{key}", []).append(item)
            elif kind == "b":
                out.setdefault(f"b:{key}", []).append("true" if item else "false")
            elif kind == "n":
                out.setdefault(f"n:{key}", []).append(number_key(item))
                numbers.append(item)
        if numbers:
            out[f"nmin:{key}"] = min(numbers)
            out[f"nmax:{key}"] = max(numbers)
    return out


# -- filter translation -------------------------------------------------------------------------
_FLIP = {"$gt": "$lte", "$gte": "$lt", "$lt": "$gte", "$lte": "$gt"}
_EXTREME = {"$gt": "nmax", "$gte": "nmax", "$lt": "nmin", "$lte": "nmin"}


def _or(parts: list[Any]) -> Any:
    if any(p is True for p in parts):
        return True
    parts = [p for p in parts if p is not False]
    if not parts:
        return False
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _and(parts: list[Any]) -> Any:
    if any(p is False for p in parts):
        return False
    parts = [p for p in parts if p is not True]
    if not parts:
        return True
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _typed_lists(name: str, values: Sequence[Any]) -> list[tuple[str, list[str]]]:
    """``[(metadata field, [values])]`` that hold any of ``values`` for key ``name``."""
    groups: dict[str, list[str]] = {}
    for value in values:
        kind = _kind(value)
        if kind == "s":
            groups.setdefault(f"s:{name}", []).append(value)
        elif kind == "n":
            groups.setdefault(f"n:{name}", []).append(number_key(value))
        elif kind == "b":
            groups.setdefault(f"b:{name}", []).append("true" if value else "false")
    return list(groups.items())


def _field(node: Field, negated: bool) -> Any:
    name = node.name
    if node.op == "$exists":
        present = node.value != negated
        return (
            {"_present": {"$in": [name]}}
            if present
            else {"$or": [{"_present": {"$exists": False}}, {"_present": {"$nin": [name]}}]}
        )
    if node.op in ("$eq", "$ne", "$in", "$nin"):
        values = [node.value] if node.op in ("$eq", "$ne") else list(node.value)
        positive = (node.op in ("$eq", "$in")) != negated
        groups = _typed_lists(name, values)
        if positive:
            return _or([{key: {"$in": options}} for key, options in groups])
        return _and(
            [
                {"$or": [{key: {"$exists": False}}, {key: {"$nin": options}}]}
                for key, options in groups
            ]
        )
    if _kind(node.value) != "n":
        raise FilterError(
            f"store.pinecone cannot compare {name!r} with the string {node.value!r} "
            f"({node.op}): Pinecone's filters order numbers only. Filter on numbers, or use "
            "$eq/$in for strings"
        )
    key = f"{_EXTREME[node.op]}:{name}"
    if not negated:
        return {key: {node.op: node.value}}
    return {"$or": [{key: {"$exists": False}}, {key: {_FLIP[node.op]: node.value}}]}


def to_pinecone_filter(node: FilterNode | None, *, negated: bool = False) -> Any:
    """Translate a parsed filter into Pinecone's filter language: a dict, or ``True`` (no
    filter) / ``False`` (matches nothing), folded before anything is sent.

    Raises:
        FilterError: for what Pinecone cannot express (ordering strings).

    Example:
        >>> to_pinecone_filter(parse_filter({"lang": {"$ne": "en"}}))
        {'$or': [{'s:lang': {'$exists': False}}, {'s:lang': {'$nin': ['en']}}]}
    """
    if node is None:
        return True
    if isinstance(node, Field):
        return _field(node, negated)
    if isinstance(node, Not):
        return to_pinecone_filter(node.child, negated=not negated)
    parts = [to_pinecone_filter(child, negated=negated) for child in node.children]
    conjunction = isinstance(node, And) != negated  # De Morgan when negated
    assert isinstance(node, (And, Or))
    return _and(parts) if conjunction else _or(parts)
