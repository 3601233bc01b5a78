"""Payload mapping and filter translation of ``store.qdrant`` (see
:mod:`rag.connectors.stores.qdrant`): the typed payload fields of a chunk, and ragline's grammar as
Qdrant ``Filter`` models (values travel as typed model fields, never as text)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from rag.connectors._deps import require
from rag.core.documents import Chunk
from rag.core.errors import RagError
from rag.core.filters import And, Field, FilterNode, Not, parse_filter  # noqa: F401 (doctest)

_SIMPLE_KEY = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
_POINT_NAMESPACE = uuid.UUID("6f1c5d1e-2b7a-4c43-9a40-6b7f0a9d1c25")


def qdrant_models() -> Any:
    """``qdrant_client.models``, or an error saying what to install."""
    return require(
        "qdrant_client", package="qdrant-client", extra="qdrant", purpose="store.qdrant"
    ).models


# -- payload mapping (pure) ---------------------------------------------------------------------
def field_name(kind: str, key: str) -> str:
    """The payload field that holds ``kind`` (``s``, ``n``, ``b``) values of metadata ``key``.

    >>> field_name("s", "lang"), field_name("n", "a.b")
    ('s_lang', 'n__612e62')
    """
    if _SIMPLE_KEY.fullmatch(key):
        return f"{kind}_{key}"
    return f"{kind}__{key.encode().hex()}"


def value_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n" if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        return "s"
    return None


def point_id(chunk_id: str) -> str:
    """The Qdrant point id (a UUIDv5) of a chunk id."""
    return str(uuid.uuid5(_POINT_NAMESPACE, chunk_id))


def chunk_payload(chunk: Chunk) -> dict[str, Any]:
    """The payload of ``chunk``'s point (see the module docstring).

    >>> chunk_payload(Chunk(id="c", text="t", metadata={"tags": ["a", 1], "x": None}))["s_tags"]
    ['a']
    """
    payload: dict[str, Any] = {
        "chunk_id": chunk.id,
        "text": chunk.text,
        "metadata": chunk.metadata,
        "present": [k for k, v in chunk.metadata.items() if v is not None],
    }
    for key, value in chunk.metadata.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            kind = value_kind(item)
            if kind is not None:
                payload.setdefault(field_name(kind, key), []).append(item)
    return payload


# -- filter translation -------------------------------------------------------------------------
StringRange = Callable[[Field], list[str]]
"""Resolves ``$gt``-style comparisons of strings to the point ids that match."""


def _condition(node: Field, string_range: StringRange | None) -> Any:
    """A Qdrant condition for one field comparison, or ``True``/``False`` when constant."""
    models = qdrant_models()
    name = node.name
    if node.op == "$exists":
        present = models.FieldCondition(key="present", match=models.MatchValue(value=name))
        return present if node.value else _negate(present)
    if node.op in ("$eq", "$ne"):
        found = _equals_any(name, [node.value])
        return found if node.op == "$eq" else _negate(found)
    if node.op in ("$in", "$nin"):
        found = _equals_any(name, list(node.value))
        return found if node.op == "$in" else _negate(found)
    kind = value_kind(node.value)
    if kind == "n":
        bound = {node.op[1:]: float(node.value)}
        return models.FieldCondition(key=field_name("n", name), range=models.Range(**bound))
    if kind == "s":
        if string_range is None:
            raise RagError("comparing strings with $gt/$lt needs the store to resolve them")
        ids = string_range(node)
        return models.HasIdCondition(has_id=ids) if ids else False
    return False


def _equals_any(name: str, values: Sequence[Any]) -> Any:
    models = qdrant_models()
    parts: list[Any] = []
    strings = [v for v in values if value_kind(v) == "s"]
    if strings:
        match = (
            models.MatchValue(value=strings[0])
            if len(strings) == 1
            else models.MatchAny(any=strings)
        )
        parts.append(models.FieldCondition(key=field_name("s", name), match=match))
    for value in values:
        kind = value_kind(value)
        if kind == "n":
            parts.append(
                models.FieldCondition(
                    key=field_name("n", name),
                    range=models.Range(gte=float(value), lte=float(value)),
                )
            )
        elif kind == "b":
            parts.append(
                models.FieldCondition(
                    key=field_name("b", name), match=models.MatchValue(value=value)
                )
            )
    return _or(parts)


def _negate(part: Any) -> Any:
    if part is True or part is False:
        return not part
    return qdrant_models().Filter(must_not=[part])


def _and(parts: list[Any]) -> Any:
    if any(p is False for p in parts):
        return False
    parts = [p for p in parts if p is not True]
    if not parts:
        return True
    return parts[0] if len(parts) == 1 else qdrant_models().Filter(must=parts)


def _or(parts: list[Any]) -> Any:
    if any(p is True for p in parts):
        return True
    parts = [p for p in parts if p is not False]
    if not parts:
        return False
    return parts[0] if len(parts) == 1 else qdrant_models().Filter(should=parts)


def to_qdrant_filter(node: FilterNode | None, string_range: StringRange | None = None) -> Any:
    """Translate a parsed filter into Qdrant models: a ``Filter``, or ``True`` (no filter) or
    ``False`` (matches nothing), folded before anything is sent.

    Example:
        >>> f = to_qdrant_filter(parse_filter({"lang": "en", "year": {"$gte": 2020}}))
        >>> [c.must[0].key for c in f.must]
        ['s_lang', 'n_year']
    """
    if node is None:
        return True
    if isinstance(node, Field):
        part = _condition(node, string_range)
    elif isinstance(node, Not):
        part = _negate(to_qdrant_filter(node.child, string_range))
    else:
        parts = [to_qdrant_filter(child, string_range) for child in node.children]
        part = _and(parts) if isinstance(node, And) else _or(parts)
    if part is True or part is False or isinstance(part, qdrant_models().Filter):
        return part
    return qdrant_models().Filter(must=[part])
