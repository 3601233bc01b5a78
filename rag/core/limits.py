"""Bounds on data that comes from outside: JSON nesting depth and non-finite numbers.

Every front door (CLI, loaders, REST, gRPC, MCP) parses outside JSON through :func:`loads_json`
(or checks already-parsed data with :func:`check_json_depth` and :func:`check_finite`), so a row
nested 100,000 deep or a metadata value of ``1e400`` is refused with a named error instead of a
``RecursionError`` or a stored infinity that no JSON answer can carry.

Example:
    >>> loads_json('{"a": [1, 2]}', where="row 1")
    {'a': [1, 2]}
    >>> try:
    ...     loads_json('{"score": 1e400}', where="row 2")
    ... except ValueError as err:
    ...     print(type(err).__name__, err.path)
    NonFiniteNumberError score
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from rag.core.errors import InvalidInputError, NestingTooDeepError, NonFiniteNumberError

MAX_JSON_DEPTH = 64
"""Deepest nesting of lists and mappings accepted in outside JSON (metadata, rows, filters)."""

# Strings as one token (unrolled loop: fast on long strings), then the brackets outside them.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def json_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, found without recursion (strings skipped).

    >>> json_depth('{"a": [[1]], "b": "[[[["}')
    3
    """
    if text.count("[") + text.count("{") <= 1:
        return int("[" in text or "{" in text)
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def loads_json(
    text: str | bytes,
    *,
    where: str,
    max_depth: int = MAX_JSON_DEPTH,
    allow_non_finite: bool = False,
) -> Any:
    """``json.loads`` with the depth checked first and non-finite numbers refused.

    Args:
        text: The JSON text.
        where: Names the input in errors (``"a.jsonl:3"``, ``"--filter"``, ``"request body"``).
        max_depth: Deepest nesting accepted.
        allow_non_finite: Accept ``NaN``/``Infinity``/``1e400`` (never for data that is stored).

    Raises:
        NestingTooDeepError: nested deeper than ``max_depth``.
        NonFiniteNumberError: a ``NaN``, ``Infinity`` or out-of-range number.
        json.JSONDecodeError: not JSON at all (callers name the line).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    # Counting brackets is ~100x faster than the scan; most rows never need the scan.
    bracket_count = text.count("[") + text.count("{")
    depth = json_depth(text) if bracket_count > max_depth else 0
    if depth > max_depth:
        raise NestingTooDeepError(
            f"JSON nested {depth} levels deep; the limit is {max_depth}. Flatten the data",
            where=where,
        )
    if allow_non_finite:
        return json.loads(text)

    def constant(name: str) -> Any:
        raise NonFiniteNumberError(
            f"{name} is not a number JSON allows; write null or a finite number", where=where
        )

    value = json.loads(text, parse_constant=constant)
    check_finite(value, where=where)
    return value


def _leaves(value: Any, *, where: str, max_depth: int) -> Iterator[tuple[Any, str]]:
    """Yield every non-container value in ``value`` with its path, walking without recursion.

    Raises:
        NestingTooDeepError: naming ``where`` and the path of the first too-deep container.
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, (Mapping, list, tuple)):
            depth += 1
            if depth > max_depth:
                raise NestingTooDeepError(
                    f"nested more than {max_depth} levels deep. Flatten the data",
                    where=where,
                    path=path or None,
                )
            children = item.items() if isinstance(item, Mapping) else enumerate(item)
            for key, child in children:
                stack.append((child, depth, _join(path, key)))
        else:
            yield item, path


def check_json_depth(value: Any, *, where: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse already-parsed data nested deeper than ``max_depth`` (checked without recursion).

    Raises:
        NestingTooDeepError: naming ``where`` and the path of the first too-deep value.
    """
    for _ in _leaves(value, where=where, max_depth=max_depth):
        pass


def check_finite(value: Any, *, where: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse NaN and infinities anywhere in ``value`` (nested mappings and lists included).

    Raises:
        NonFiniteNumberError: naming ``where`` and the path of the value.
        NestingTooDeepError: ``value`` is nested deeper than ``max_depth``.
    """
    for item, path in _leaves(value, where=where, max_depth=max_depth):
        if isinstance(item, float):
            if not math.isfinite(item):
                raise NonFiniteNumberError(
                    f"{item} is not a finite number; JSON cannot carry it. "
                    "Write null or a finite number",
                    where=where,
                    path=path or None,
                )
        elif (
            isinstance(item, (np.generic, np.ndarray))
            and item.ndim == 0
            and not math.isfinite(float(item))
        ):  # a numpy scalar (np.float32(nan)); arrays are embeddings, checked by their owner
            raise NonFiniteNumberError(
                f"{item} is not a finite number. Write null or a finite number",
                where=where,
                path=path or None,
            )


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


MAX_CSV_FIELD = 2**31 - 1
"""Longest CSV field read (characters). Python's ``csv`` stops at 131,072, less than one long
document, so the CSV readers raise its process-wide limit to this (never lower it)."""


def allow_long_csv_fields() -> None:
    """Raise :func:`csv.field_size_limit` to :data:`MAX_CSV_FIELD` unless it is higher already.

    Example:
        >>> import csv
        >>> allow_long_csv_fields()
        >>> csv.field_size_limit() >= MAX_CSV_FIELD
        True
    """
    import csv

    if csv.field_size_limit() < MAX_CSV_FIELD:
        csv.field_size_limit(MAX_CSV_FIELD)


def resolve_k(k: Any, default: int, *, name: str = "k") -> int:
    """The ``k`` (hits or contexts) of one call: ``default`` for ``None``, else a whole number
    of at least 1. A 0 used to mean the default and a negative number returned hits anyway.
    ``name`` is the parameter's name in the error (``top_k`` in Haystack-style APIs).

    >>> resolve_k(None, 5), resolve_k(3, 5)
    (5, 3)
    >>> try:
    ...     resolve_k(0, 5)
    ... except ValueError as err:
    ...     print(err)
    k: must be a whole number of at least 1 (or null for the default, 5), got 0

    Raises:
        InvalidInputError: ``k`` is not a whole number >= 1 (a ``ValueError``).
    """
    if k is None:
        return default
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise InvalidInputError(
            f"must be a whole number of at least 1 (or null for the default, {default}), got {k!r}",
            where=name,
        )
    return int(k)
