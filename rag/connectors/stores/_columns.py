"""Metadata held column by column, so a filter is evaluated with numpy once per query.

Stores that filter in process (``store.faiss``) keep one :class:`MetadataColumns` beside their
index. Every metadata field becomes a column over row ids: an ``int32`` code per row (the code of
the row's scalar value in the field's dictionary of distinct values, or "absent", or "several
values" for a list) and a "present" bitmap. A filter tree from :func:`rag.core.filters.parse_filter`
then becomes a few array operations per field instead of a Python call per row:

- ``$eq``/``$in``: the codes of the wanted values (a dictionary lookup), then ``codes == code``;
- ``$gt``/``$lt``...: a binary search in the field's distinct values sorted per kind, then a
  lookup table over codes;
- ``$and``/``$or``/``$not``: ``&``, ``|`` and ``~`` of boolean masks.

The result is a boolean mask indexed by row id, which a store hands to its index (FAISS takes it
packed as an ``IDSelectorBitmap``) or counts. The semantics are exactly those of
:func:`rag.core.filters.matches`, which the tests check on random metadata and random filters:
list values match ``$eq``/``$in`` when any element does; numbers compare with numbers and strings
with strings; booleans are never numbers; a missing field or ``None`` matches only ``$ne``,
``$nin`` and ``$exists: false``.

Example:
    >>> from rag.core.filters import parse_filter
    >>> columns = MetadataColumns()
    >>> columns.add(1, {"lang": "en", "year": 2020})
    >>> columns.add(2, {"lang": ["de", "en"], "year": 2021.5})
    >>> columns.add(3, {"lang": "fr"})
    >>> columns.rowids(parse_filter({"lang": "en", "year": {"$gt": 2020}})).tolist()
    [2]
    >>> columns.count(parse_filter({"year": {"$exists": False}}))
    1
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rag.core.filters import And, Field, FilterNode, Not

_ABSENT = 0  # no scalar value in this field (missing, None, a dict, an empty list)
_MULTI = 1  # a list: its element codes are kept as (row, code) pairs
_FIRST_CODE = 2
_MIN_CAPACITY = 1024


def _key(value: Any) -> tuple[str, Any] | None:
    """``(kind, value)`` of a filterable scalar: booleans, numbers and strings never meet."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None  # NaN equals nothing and orders with nothing
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return None


_PLAIN_KINDS = {str: "s", int: "n", float: "n", bool: "b"}
"""The kind of :func:`_key` for values of exactly these types (a subclass goes through it)."""


class _Column:
    """One metadata field over row ids (see the module docstring)."""

    def __init__(self, capacity: int) -> None:
        self.codes = np.zeros(capacity, dtype=np.int32)
        self.present = np.zeros(capacity, dtype=bool)
        self.code_of: dict[tuple[str, Any], int] = {}
        self.values: list[tuple[str, Any]] = []  # code - _FIRST_CODE -> key
        self.multi_rows: list[int] = []
        self.multi_codes: list[int] = []
        # row -> its indices in multi_rows; None until first needed after from_arrays
        self._pairs_of: dict[int, list[int]] | None = {}
        self._multi: tuple[np.ndarray, np.ndarray] | None = None
        self._sorted: dict[str, tuple[list[Any], np.ndarray]] = {}

    def grow(self, capacity: int) -> None:
        self.codes = np.concatenate(
            [self.codes, np.zeros(capacity - len(self.codes), dtype=np.int32)]
        )
        self.present = np.concatenate(
            [self.present, np.zeros(capacity - len(self.present), dtype=bool)]
        )

    def code(self, key: tuple[str, Any]) -> int:
        code = self.code_of.get(key)
        if code is None:
            code = self.code_of[key] = len(self.values) + _FIRST_CODE
            self.values.append(key)
            self._sorted.clear()
        return code

    def set(self, row: int, value: Any) -> None:
        if value is None:
            return
        self.present[row] = True
        if isinstance(value, (list, tuple)):
            keys = [k for k in map(_key, value) if k is not None]
            if keys:
                self.codes[row] = _MULTI
                pairs = self.pairs_of().setdefault(row, [])
                for key in keys:
                    pairs.append(len(self.multi_rows))
                    self.multi_rows.append(row)
                    self.multi_codes.append(self.code(key))
                self._multi = None
            return
        key = _key(value)
        if key is not None:
            self.codes[row] = self.code(key)

    def set_many(self, rows: Sequence[int], values: Sequence[Any]) -> None:
        """:meth:`set` for rows that hold nothing yet (``None``: no value), the plain scalars
        (``str``, ``int``, ``float``, ``bool``) in one array assignment."""
        scalar_rows, scalar_codes = [], []
        code_of = self.code_of
        for row, value in zip(rows, values, strict=True):
            kind = _PLAIN_KINDS.get(type(value))
            if kind is None or value != value:  # None, a list, another type; NaN
                self.set(row, value)
                continue
            code = code_of.get((kind, value))
            scalar_rows.append(row)
            scalar_codes.append(self.code((kind, value)) if code is None else code)
        at = np.asarray(scalar_rows, dtype=np.int64)
        self.codes[at] = np.asarray(scalar_codes, dtype=np.int32)
        self.present[at] = True

    def clear(self, row: int) -> None:
        if self.codes[row] == _MULTI:
            for index in self.pairs_of().pop(row, ()):
                self.multi_rows[index] = -1  # a dead pair: matches no row
                self.multi_codes[index] = _ABSENT
            self._multi = None
        self.codes[row] = _ABSENT
        self.present[row] = False

    def pairs_of(self) -> dict[int, list[int]]:
        """Row -> its indices in ``multi_rows`` (rebuilt from them after :meth:`restore`)."""
        if self._pairs_of is None:
            self._pairs_of = {}
            for index, row in enumerate(self.multi_rows):
                if row >= 0:
                    self._pairs_of.setdefault(row, []).append(index)
        return self._pairs_of

    def multi(self) -> tuple[np.ndarray, np.ndarray]:
        if self._multi is None:
            self._multi = (
                np.asarray(self.multi_rows, dtype=np.int64),
                np.asarray(self.multi_codes, dtype=np.int32),
            )
        return self._multi

    def sorted_codes(self, kind: str) -> tuple[list[Any], np.ndarray]:
        """Distinct values of ``kind`` in ascending order, and their codes in that order."""
        if kind not in self._sorted:
            pairs = sorted(
                (value, code)
                for code, (k, value) in enumerate(self.values, start=_FIRST_CODE)
                if k == kind
            )
            self._sorted[kind] = (
                [value for value, _ in pairs],
                np.asarray([code for _, code in pairs], dtype=np.int32),
            )
        return self._sorted[kind]

    def rows_with_codes(self, wanted: np.ndarray, capacity: int) -> np.ndarray:
        """Mask of the rows holding (one of) the codes in ``wanted``."""
        if len(wanted) == 0:
            return np.zeros(capacity, dtype=bool)
        if len(wanted) == 1:
            mask = self.codes == wanted[0]
        else:
            table = np.zeros(len(self.values) + _FIRST_CODE, dtype=bool)
            table[wanted] = True
            mask = table[self.codes]
        if self.multi_rows:
            rows, codes = self.multi()
            hit = rows[codes == wanted[0]] if len(wanted) == 1 else rows[table[codes]]
            mask[hit] = True  # dead pairs have code _ABSENT, which is never wanted
        return mask


_ORDER = {"$gt", "$gte", "$lt", "$lte"}


class MetadataColumns:
    """The metadata of a store's live rows, column per field, addressed by integer row id.

    Row ids are the store's own (FAISS ids); masks have one entry per possible row id up to
    :attr:`capacity`, ``True`` only for live rows that match.
    """

    def __init__(self) -> None:
        self._capacity = _MIN_CAPACITY
        self._alive = np.zeros(self._capacity, dtype=bool)
        self._columns: dict[str, _Column] = {}
        self._live = 0
        self.removed = 0
        """Rows removed since the columns were built (their list values still take room)."""

    @classmethod
    def build(cls, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> MetadataColumns:
        """Columns of ``(row id, metadata)`` pairs."""
        columns = cls()
        for row, metadata in rows:
            columns.add(row, metadata)
        return columns

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The columns as a JSON-able description and numpy arrays (for :meth:`from_arrays`)."""
        described = {"capacity": self._capacity, "live": self._live, "removed": self.removed}
        arrays = {"alive": self._alive}
        names = []
        for number, (name, column) in enumerate(self._columns.items()):
            names.append({"name": name, "values": [list(key) for key in column.values]})
            arrays[f"{number}.codes"] = column.codes
            arrays[f"{number}.present"] = column.present
            arrays[f"{number}.multi_rows"] = np.asarray(column.multi_rows, dtype=np.int64)
            arrays[f"{number}.multi_codes"] = np.asarray(column.multi_codes, dtype=np.int32)
        described["columns"] = names
        return described, arrays

    @classmethod
    def from_arrays(
        cls, described: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> MetadataColumns:
        """The columns that :meth:`to_arrays` gave.

        Raises:
            ValueError: the arrays do not fit the description.
        """
        columns = cls()
        capacity = int(described["capacity"])
        columns._capacity = capacity
        columns._alive = np.array(arrays["alive"], dtype=bool)
        columns._live = int(described["live"])
        columns.removed = int(described["removed"])
        for number, entry in enumerate(described["columns"]):
            column = _Column(0)
            column.codes = np.array(arrays[f"{number}.codes"], dtype=np.int32)
            column.present = np.array(arrays[f"{number}.present"], dtype=bool)
            column.values = [(str(kind), value) for kind, value in entry["values"]]
            column.code_of = {key: code for code, key in enumerate(column.values, _FIRST_CODE)}
            column.multi_rows = arrays[f"{number}.multi_rows"].tolist()
            column.multi_codes = arrays[f"{number}.multi_codes"].tolist()
            column._pairs_of = None
            if len(column.codes) != capacity or len(column.present) != capacity:
                raise ValueError(f"metadata column {entry['name']!r}: wrong length")
            columns._columns[str(entry["name"])] = column
        if len(columns._alive) != capacity:
            raise ValueError("metadata columns: wrong length")
        return columns

    @property
    def capacity(self) -> int:
        """Length of every mask (one more than the largest row id that fits)."""
        return self._capacity

    def __len__(self) -> int:
        return self._live

    def _grow(self, row: int) -> None:
        capacity = self._capacity
        while capacity <= row:
            capacity *= 2
        self._alive = np.concatenate([self._alive, np.zeros(capacity - self._capacity, dtype=bool)])
        for column in self._columns.values():
            column.grow(capacity)
        self._capacity = capacity

    def add(self, row: int, metadata: Mapping[str, Any]) -> None:
        """Add (or replace) row ``row``."""
        if row < 0:
            raise ValueError(f"row ids must be non-negative, got {row}")
        if row >= self._capacity:
            self._grow(row)
        if self._alive[row]:
            self.remove(row, ())
        self._alive[row] = True
        self._live += 1
        for name, value in metadata.items():
            column = self._columns.get(name)
            if column is None:
                column = self._columns[name] = _Column(self._capacity)
            column.set(row, value)

    def extend(self, rows: Sequence[int], metadata: Sequence[Mapping[str, Any]]) -> None:
        """Add many rows that are not held, as :meth:`add` does one by one but a field at a
        time (a store's open reads every row this way).

        Example:
            >>> columns = MetadataColumns()
            >>> columns.extend([1, 2], [{"lang": "en"}, {"lang": "de", "year": 2020}])
            >>> len(columns), columns.distinct("lang")
            (2, 2)
        """
        if len(rows) != len(metadata):
            raise ValueError(f"{len(rows)} rows but {len(metadata)} metadata")
        if not len(rows):
            return
        at = np.asarray(rows, dtype=np.int64)
        if at.min() < 0:
            raise ValueError(f"row ids must be non-negative, got {int(at.min())}")
        if int(at.max()) >= self._capacity:
            self._grow(int(at.max()))
        if self._alive[at].any() or len(np.unique(at)) != len(at):
            for row, fields in zip(rows, metadata, strict=True):  # replacements: one by one
                self.add(row, fields)
            return
        self._alive[at] = True
        self._live += len(at)
        for name in dict.fromkeys(name for fields in metadata for name in fields):
            column = self._columns.get(name)
            if column is None:
                column = self._columns[name] = _Column(self._capacity)
            column.set_many(rows, [fields.get(name) for fields in metadata])

    def remove(self, row: int, names: Iterable[str] | None = None) -> None:
        """Remove row ``row``; ``names`` (its metadata keys) saves looking at every column."""
        if row >= self._capacity or not self._alive[row]:
            return
        self._alive[row] = False
        self._live -= 1
        self.removed += 1
        columns = self._columns.values() if not names else (self._columns.get(n) for n in names)
        for column in columns:
            if column is not None:
                column.clear(row)

    # -- evaluation -----------------------------------------------------------------------
    def distinct(self, name: str) -> int:
        """How many different values field ``name`` holds over the live rows (a row without
        one counts as the value ``None``; a list as one value)."""
        column = self._columns.get(name)
        if column is None:
            return int(self._live > 0)
        return len(np.unique(column.codes[self._alive]))

    def mask(self, node: FilterNode | None) -> np.ndarray:
        """Boolean mask over row ids: live rows that ``node`` matches (all live rows for None)."""
        if node is None:
            return self._alive.copy()
        return self._eval(node) & self._alive

    def rowids(self, node: FilterNode | None) -> np.ndarray:
        """Ids of the live rows that ``node`` matches, ascending."""
        return np.flatnonzero(self.mask(node))

    def count(self, node: FilterNode | None) -> int:
        if node is None:
            return self._live
        return int(np.count_nonzero(self.mask(node)))

    def _eval(self, node: FilterNode) -> np.ndarray:
        """A mask that is right on live rows (dead rows may hold anything)."""
        if isinstance(node, Field):
            return self._field(node)
        if isinstance(node, Not):
            return ~self._eval(node.child)
        masks = [self._eval(child) for child in node.children]
        result = masks[0]
        for mask in masks[1:]:
            if isinstance(node, And):
                result &= mask
            else:
                result |= mask
        return result

    def _field(self, node: Field) -> np.ndarray:
        column = self._columns.get(node.name)
        op = node.op
        if column is None:  # no row has the field: only the negative operators match
            matched = op in ("$ne", "$nin") or (op == "$exists" and not node.value)
            return np.full(self._capacity, matched, dtype=bool)
        if op == "$exists":
            return column.present.copy() if node.value else ~column.present
        if op in _ORDER:
            return column.rows_with_codes(self._ordered_codes(column, node), self._capacity)
        values = node.value if op in ("$in", "$nin") else (node.value,)
        wanted = [column.code_of.get(key) for key in map(_key, values) if key is not None]
        codes = np.asarray(sorted({c for c in wanted if c is not None}), dtype=np.int32)
        mask = column.rows_with_codes(codes, self._capacity)
        return ~mask if op in ("$ne", "$nin") else mask

    @staticmethod
    def _ordered_codes(column: _Column, node: Field) -> np.ndarray:
        key = _key(node.value)
        if key is None or key[0] == "b":
            return np.zeros(0, dtype=np.int32)
        values, codes = column.sorted_codes(key[0])
        bound = key[1]
        if node.op == "$gt":
            return codes[bisect.bisect_right(values, bound) :]
        if node.op == "$gte":
            return codes[bisect.bisect_left(values, bound) :]
        if node.op == "$lt":
            return codes[: bisect.bisect_left(values, bound)]
        return codes[: bisect.bisect_right(values, bound)]
