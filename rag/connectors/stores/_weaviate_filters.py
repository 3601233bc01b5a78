"""Object mapping and filter translation of ``store.weaviate`` (see
:mod:`rag.connectors.stores.weaviate`): the typed properties of a chunk's object, and ragline's
grammar as Weaviate filters (values travel as typed gRPC fields, never in a query string)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Container, Sequence
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.core.documents import Chunk
from rag.core.filters import And, Field, FilterNode, Not, parse_filter  # noqa: F401 (doctest)

_SIMPLE_KEY = re.compile(r"[a-z0-9]{1,100}")


def load_weaviate() -> Any:
    """The ``weaviate`` client module, or an error saying what to install."""
    return require(
        "weaviate", package="weaviate-client", extra="weaviate", purpose="store.weaviate"
    )


# -- object mapping (pure) ----------------------------------------------------------------------
def property_name(kind: str, key: str) -> str:
    """The Weaviate property that holds ``kind`` values of metadata ``key``.

    >>> property_name("s", "lang"), property_name("n", "Year")
    ('mf_s_lang', 'mf_n__59656172')
    """
    if _SIMPLE_KEY.fullmatch(key):
        return f"mf_{kind}_{key}"
    encoded = key.encode().hex()
    if len(encoded) > 200:
        import hashlib

        encoded = "h" + hashlib.sha256(key.encode()).hexdigest()
    return f"mf_{kind}__{encoded}"


def value_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n" if math.isfinite(value) else None
    if isinstance(value, str):
        return "s"
    return None


def typed_value(value: Any) -> Any:
    # Weaviate numbers are float64; sending ints would select the int[] gRPC field instead
    return float(value) if value_kind(value) == "n" else value


# Weaviate data type of each kind of property (names as in weaviate.classes.config.DataType)
PROPERTY_TYPES = {
    "s": "TEXT_ARRAY",
    "n": "NUMBER_ARRAY",
    "b": "BOOL_ARRAY",
    "smin": "TEXT",
    "smax": "TEXT",
    "nmin": "NUMBER",
    "nmax": "NUMBER",
}


def object_properties(chunk: Chunk) -> dict[str, Any]:
    """The properties of the Weaviate object that stores ``chunk`` (see the module doc).

    >>> sorted(object_properties(Chunk(id="a", text="t", metadata={"tags": ["x", "y"]})))
    ['chunk_id', 'metadata_json', 'mf_s_tags', 'mf_smax_tags', 'mf_smin_tags', 'present', 'text']
    """
    properties: dict[str, Any] = {
        "chunk_id": chunk.id,
        "text": chunk.text,
        "metadata_json": json.dumps(chunk.metadata, ensure_ascii=False),
        "present": [],
    }
    for key, value in chunk.metadata.items():
        if value is None:
            continue
        properties["present"].append(key)
        typed: dict[str, list[Any]] = {}
        for item in value if isinstance(value, (list, tuple)) else [value]:
            kind = value_kind(item)
            if kind is not None:
                typed.setdefault(kind, []).append(typed_value(item))
        for kind, values in typed.items():
            properties[property_name(kind, key)] = values
            if kind in ("s", "n"):
                properties[property_name(kind + "min", key)] = min(values)
                properties[property_name(kind + "max", key)] = max(values)
    return properties


def property_kind(name: str) -> str | None:
    """The kind (``s``, ``nmax``, ...) of a typed property name, ``None`` for base ones."""
    if not name.startswith("mf_"):
        return None
    return name[3:].split("_", 1)[0]


def chunk_from_object(properties: dict[str, Any], vector: Any = None) -> Chunk:
    """The chunk a Weaviate object stores."""
    embedding = None if vector is None else np.asarray(vector, dtype=np.float32)
    return Chunk(
        id=properties["chunk_id"],
        text=properties.get("text") or "",
        metadata=json.loads(properties.get("metadata_json") or "{}"),
        embedding=embedding,
    )


# -- filter translation (pure) ------------------------------------------------------------------
_ORDER: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "$gt": ("max", lambda prop, value: prop.greater_than(value)),
    "$gte": ("max", lambda prop, value: prop.greater_or_equal(value)),
    "$lt": ("min", lambda prop, value: prop.less_than(value)),
    "$lte": ("min", lambda prop, value: prop.less_or_equal(value)),
}


def any_of(parts: list[Any]) -> Any:
    parts = [p for p in parts if p is not False]
    if any(p is True for p in parts):
        return True
    if not parts:
        return False
    return parts[0] if len(parts) == 1 else load_weaviate().classes.query.Filter.any_of(parts)


def all_of(parts: list[Any]) -> Any:
    parts = [p for p in parts if p is not True]
    if any(p is False for p in parts):
        return False
    if not parts:
        return True
    return parts[0] if len(parts) == 1 else load_weaviate().classes.query.Filter.all_of(parts)


def negation(part: Any) -> Any:
    if isinstance(part, bool):
        return not part
    return ~part


def _contains_any(key: str, values: Sequence[Any], known: Container[str]) -> Any:
    filter_cls = load_weaviate().classes.query.Filter
    parts: list[Any] = []
    for kind in ("s", "n", "b"):
        of_kind = [typed_value(v) for v in values if value_kind(v) == kind]
        name = property_name(kind, key)
        if of_kind and name in known:
            parts.append(filter_cls.by_property(name).contains_any(of_kind))
    return any_of(parts)


def _field(node: Field, known: Container[str]) -> Any:
    filter_cls = load_weaviate().classes.query.Filter
    if node.op == "$exists":
        present = filter_cls.by_property("present").contains_any([node.name])
        return present if node.value else negation(present)
    if node.op in ("$eq", "$in"):
        return _contains_any(node.name, node.value if node.op == "$in" else [node.value], known)
    if node.op in ("$ne", "$nin"):
        values = node.value if node.op == "$nin" else [node.value]
        return negation(_contains_any(node.name, values, known))
    kind = value_kind(node.value)
    if kind not in ("s", "n"):
        return False
    side, compare = _ORDER[node.op]
    name = property_name(kind + side, node.name)
    if name not in known:
        return False
    return compare(filter_cls.by_property(name), typed_value(node.value))


def to_weaviate_filter(node: FilterNode | None, known: Container[str]) -> Any:
    """Translate a parsed filter into ``weaviate.classes.query.Filter`` terms.

    Args:
        node: The parsed filter (``None``: no filter).
        known: Property names the collection has; a condition on any other is constant.

    Returns:
        A Weaviate filter, ``True`` (matches everything: send no filter) or ``False``
        (matches nothing: skip the query).
    """
    if node is None:
        return True
    if isinstance(node, Field):
        return _field(node, known)
    if isinstance(node, Not):
        return negation(to_weaviate_filter(node.child, known))
    parts = [to_weaviate_filter(child, known) for child in node.children]
    return all_of(parts) if isinstance(node, And) else any_of(parts)


def chunk_uuid(chunk_id: str) -> str:
    """The object UUID of a chunk id (UUIDv5, stable)."""
    return str(load_weaviate().util.generate_uuid5(chunk_id))
