"""What the ``rag`` command prints with ``--json``: one JSON document per line on stdout.

Ragline objects become plain JSON through their ``to_dict``; NaN and infinities (which JSON has
not) become ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import typer


@runtime_checkable
class _ToDict(Protocol):
    """Ragline's records, answers and reports: ``to_dict()`` gives their JSON form."""

    def to_dict(self) -> Any: ...


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from ragline objects (anything with ``to_dict``), dataclasses, arrays."""
    # ``rag run`` prints whatever a component returns: records, answers, reports, arrays.
    if isinstance(value, _ToDict):
        return to_jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity; stores refuse them, old data may hold them
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def print_json(data: Any) -> None:
    """Print ``data`` as one line of JSON on stdout."""
    typer.echo(json.dumps(to_jsonable(data), ensure_ascii=False, allow_nan=False))
