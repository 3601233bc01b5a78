"""Filter translation of ``store.milvus``: ragline's grammar as a Milvus boolean expression.

Every key and value is escaped (:func:`milvus_string`, :func:`milvus_number`); comparisons read
the typed ``filterable`` JSON view (see the package docstring) or a typed column, and each is
two-valued, so ``not`` never meets a null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rag.core.filters import And, Field, FilterNode, Not, parse_filter  # noqa: F401 (doctests)


def milvus_string(value: str) -> str:
    """A Milvus expression string literal for ``value``: quotes and backslashes escaped.

    Milvus' parser accepts raw unicode and control characters inside literals but not ``\\u``
    escapes, so only ``\\``, ``"`` and the usual whitespace escapes are written.

    >>> milvus_string('x" or id != "')
    '"x\\\\" or id != \\\\""'
    """
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def milvus_number(value: int | float) -> str:
    """A Milvus numeric literal (finite numbers only)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"filters cannot compare with {value!r}")
    if isinstance(value, int) and abs(value) < 2**63:
        return str(value)
    return repr(float(value))


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return milvus_string(value)
    return milvus_number(value)


def value_kind(value: Any) -> str | None:
    """``s``, ``n`` or ``b`` for a filterable scalar, else ``None``."""
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n" if not (isinstance(value, float) and not math.isfinite(value)) else None
    if isinstance(value, str):
        return "s"
    return None


def filterable_view(metadata: dict[str, Any]) -> dict[str, Any]:
    """The typed view of ``metadata`` that :func:`to_milvus_expr` queries (see module doc).

    >>> filterable_view({"year": 2020, "tags": ["a", "b"], "gone": None})
    {'present': ['year', 'tags'], 's': {'tags': ['a', 'b']}, 'n': {'year': [2020]}, \
'smin': {'tags': 'a'}, 'smax': {'tags': 'b'}, 'nmin': {'year': 2020}, 'nmax': {'year': 2020}}
    """
    view: dict[str, Any] = {"present": []}
    typed: dict[str, dict[str, list[Any]]] = {"s": {}, "n": {}, "b": {}}
    for key, value in metadata.items():
        if value is None:
            continue
        view["present"].append(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            kind = value_kind(item)
            if kind is not None:
                typed[kind].setdefault(key, []).append(item)
    for kind in ("s", "n", "b"):
        if typed[kind]:
            view[kind] = typed[kind]
    for kind in ("s", "n"):
        if typed[kind]:
            view[f"{kind}min"] = {k: min(v) for k, v in typed[kind].items()}
            view[f"{kind}max"] = {k: max(v) for k, v in typed[kind].items()}
    return view


def _path(section: str, key: str) -> str:
    return f"filterable[{milvus_string(section)}][{milvus_string(key)}]"


def _contains(key: str, value: Any) -> str:
    kind = value_kind(value)
    if kind is None:
        return "false"
    return f"json_contains({_path(kind, key)}, {literal(value)})"


def _contains_any(key: str, values: Sequence[Any]) -> str:
    parts = []
    for kind in ("s", "n", "b"):
        of_kind = [v for v in values if value_kind(v) == kind]
        if of_kind:
            literals = ", ".join(literal(v) for v in of_kind)
            parts.append(f"json_contains_any({_path(kind, key)}, [{literals}])")
    if not parts:
        return "false"
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


_ORDER_SECTION = {"$gt": "max", "$gte": "max", "$lt": "min", "$lte": "min"}
ORDER_OPERATOR = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _field_expr(node: Field, exists: bool = True) -> str:
    if node.op == "$exists":
        present = f'json_contains(filterable["present"], {milvus_string(node.name)})'
        return present if node.value else f"not {present}"
    if node.op == "$eq":
        return _contains(node.name, node.value)
    if node.op == "$ne":
        return f"not {_contains(node.name, node.value)}"
    if node.op == "$in":
        return _contains_any(node.name, node.value)
    if node.op == "$nin":
        return f"not {_contains_any(node.name, node.value)}"
    kind = value_kind(node.value)
    if kind not in ("s", "n"):
        return "false"
    path = _path(kind + _ORDER_SECTION[node.op], node.name)
    comparison = f"{path} {ORDER_OPERATOR[node.op]} {literal(node.value)}"
    if not exists:  # servers before 2.5: a missing key compares false, never null
        return comparison
    # ``exists`` first: a comparison on a missing key is null, and null must not reach ``not``.
    return f"(exists {path} and {comparison})"


# -- typed scalar columns -----------------------------------------------------------------------
SCALAR_PREFIX = "meta_"
"""Typed columns are named ``meta_<key>``, so they never meet ragline's own fields."""
KIND_OF_TYPE = {"int": "n", "float": "n", "str": "s", "bool": "b"}
INT64 = 2**63


def scalar_column(key: str) -> str | None:
    """The typed column of metadata ``key``, or ``None`` when ``key`` cannot name one.

    >>> scalar_column("year"), scalar_column("we ird")
    ('meta_year', None)
    """
    column = SCALAR_PREFIX + key
    if len(column) > 255 or not column.isascii() or not column.replace("_", "a").isalnum():
        return None
    return column


def _int_bound(op: str, value: int | float) -> int | float:
    """An integer bound equivalent to ``op value`` over integers (Milvus truncates floats)."""
    if isinstance(value, int) or abs(value) >= INT64:
        return value
    if op in ("$gt", "$lte"):
        return math.floor(value)
    return math.ceil(value)


def _typed_field_expr(node: Field, column: str, scalar_type: str) -> str:
    """``node`` over a typed column; every comparison is guarded by ``is not null`` so that a
    ``not`` around it never meets a null (Milvus keeps null through ``not``)."""
    guard = f"{column} is not null"
    if node.op == "$exists":
        return guard if node.value else f"{column} is null"
    kind = KIND_OF_TYPE[scalar_type]
    if node.op in ("$eq", "$ne", "$in", "$nin"):
        options = node.value if node.op in ("$in", "$nin") else (node.value,)
        same = [v for v in options if value_kind(v) == kind]
        if scalar_type == "int":  # 2020.0 is 2020; 2020.5 is no integer (Milvus would cut it)
            same = [int(v) for v in same if float(v).is_integer()]
        if not same:
            positive = "false"
        elif len(same) == 1:
            positive = f"({guard} and {column} == {literal(same[0])})"
        else:
            positive = f"({guard} and {column} in [{', '.join(literal(v) for v in same)}])"
        return f"not {positive}" if node.op in ("$ne", "$nin") else positive
    if value_kind(node.value) != kind or kind == "b":
        return "false"
    bound = _int_bound(node.op, node.value) if scalar_type == "int" else node.value
    return f"({guard} and {column} {ORDER_OPERATOR[node.op]} {literal(bound)})"


def to_milvus_expr(
    node: FilterNode | None, typed: Mapping[str, str] | None = None, *, exists: bool = True
) -> str:
    """Translate a parsed filter into a Milvus boolean expression (``""`` for no filter).

    Args:
        node: The parsed filter.
        typed: Metadata keys stored in typed columns (key -> ``int``/``float``/``str``/``bool``);
            comparisons on them use the column (and its index), the others the JSON view.
        exists: Guard range comparisons with ``exists`` (servers from 2.5, milvus-lite); servers
            before 2.5 lack it and compare a missing key as false.

    Example:
        >>> to_milvus_expr(parse_filter({"lang": "en", "year": {"$gte": 2020}}))
        '(json_contains(filterable["s"]["lang"], "en") and \
(exists filterable["nmax"]["year"] and filterable["nmax"]["year"] >= 2020))'
        >>> to_milvus_expr(parse_filter({"year": {"$ne": 2020}}), {"year": "int"})
        'not (meta_year is not null and meta_year == 2020)'
        >>> to_milvus_expr(parse_filter({"year": {"$lt": 2000}}), exists=False)
        'filterable["nmin"]["year"] < 2000'
    """
    if node is None:
        return ""
    if isinstance(node, Field):
        scalar_type = (typed or {}).get(node.name)
        column = scalar_column(node.name) if scalar_type else None
        if column is not None and scalar_type is not None:
            return _typed_field_expr(node, column, scalar_type)
        return _field_expr(node, exists)
    if isinstance(node, Not):
        return f"not ({to_milvus_expr(node.child, typed, exists=exists)})"
    joiner = " and " if isinstance(node, And) else " or "
    parts = (to_milvus_expr(child, typed, exists=exists) for child in node.children)
    return "(" + joiner.join(parts) + ")"


def ids_expr(ids: Sequence[str]) -> str:
    return "id in [" + ", ".join(milvus_string(i) for i in ids) + "]"
