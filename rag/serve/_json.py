"""JSON answers that are always valid JSON, even over stored data that JSON cannot carry.

Chunks stored before non-finite metadata was refused (or by another writer) may hold NaN or an
infinity; JSON has no such numbers, so every front door writes them as ``null`` instead of
failing the whole answer (a search that hit such a chunk used to be a 500).
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse


def json_safe(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by None (mappings and lists walked).

    Example:
        >>> json_safe({"score": float("inf"), "tags": [1.5, float("nan")]})
        {'score': None, 'tags': [1.5, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON of ``value``; non-finite numbers become ``null`` (never ``Infinity``).

    Example:
        >>> dumps({"a": float("-inf")})
        '{"a":null}'
    """
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # only when a non-finite number is present: the common path stays fast
        return json.dumps(
            json_safe(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSON response, with non-finite numbers written as ``null``."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
