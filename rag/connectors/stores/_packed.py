"""Chunk ids, texts and metadata of many rows, packed in one buffer (``store.faiss``'s cache).

A search builds its hits from memory instead of reading SQLite. Held as Python objects (a dict
of ``(id, text)`` tuples and a dict of metadata dicts) a row costs about 900 bytes beside its
vector, more than an int8 code of a 384-d vector twice over; packed, a row costs its UTF-8
bytes plus 28 bytes of numpy bookkeeping, and its metadata is decoded from JSON only when it is
a hit (a fresh object each time, so callers cannot change the cache).

Rows are appended in increasing row id order (SQLite's ``AUTOINCREMENT``); removed rows leave
their bytes behind until the dead bytes outweigh the live ones, then the buffer is compacted.

Example:
    >>> rows = PackedRows(budget_bytes=1_000_000)
    >>> rows.add(1, "c1", "Zebras have stripes.", '{"source": "a.md"}')
    True
    >>> rows.get(1)
    ('c1', 'Zebras have stripes.', {'source': 'a.md'})
    >>> rows.remove([1]); rows.get(1) is None
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

ROW_OVERHEAD = 28
"""Bytes of bookkeeping per row: row id and start (int64), three lengths (int32)."""


class PackedRows:
    """Row id -> ``(chunk id, text, metadata)``, packed as UTF-8 within ``budget_bytes``.

    Args:
        budget_bytes: Rows are held while their bytes plus :data:`ROW_OVERHEAD` each fit;
            :meth:`add` refuses the rest (the caller reads those from its database).
    """

    def __init__(self, budget_bytes: float) -> None:
        self.budget_bytes = budget_bytes
        self._buffer = bytearray()
        self._size = 0  # rows held
        self._rowids = np.zeros(0, dtype=np.int64)
        self._starts = np.zeros(0, dtype=np.int64)
        self._lengths = np.zeros((0, 3), dtype=np.int32)  # id, text, metadata
        self._dead = 0  # bytes of removed rows still in the buffer

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held for live rows (their UTF-8 and bookkeeping), as the budget counts."""
        live = len(self._buffer) - self._dead
        return live + ROW_OVERHEAD * self._size

    def add(self, rowid: int, chunk_id: str, text: str, metadata_json: str) -> bool:
        """Hold a row (its id above every held one); ``False`` when it does not fit."""
        parts = [chunk_id.encode(), text.encode(), metadata_json.encode()]
        size = sum(len(p) for p in parts)
        if self.nbytes + size + ROW_OVERHEAD > self.budget_bytes:
            return False
        if self._size and rowid <= self._rowids[self._size - 1]:
            raise ValueError(f"row {rowid} is not above the last held row")
        if self._size == len(self._rowids):
            self._grow()
        at = self._size
        self._rowids[at] = rowid
        self._starts[at] = len(self._buffer)
        self._lengths[at] = [len(p) for p in parts]
        for part in parts:
            self._buffer += part
        self._size += 1
        return True

    def _grow(self) -> None:
        capacity = max(1024, 2 * len(self._rowids))
        self._rowids = np.resize(self._rowids, capacity)
        self._starts = np.resize(self._starts, capacity)
        self._lengths = np.resize(self._lengths, (capacity, 3))

    def _find(self, rowids: Iterable[int]) -> np.ndarray:
        """Positions of the held rows among ``rowids`` (others left out)."""
        wanted = np.fromiter(rowids, dtype=np.int64)
        held = self._rowids[: self._size]
        at = np.searchsorted(held, wanted)
        at = at[at < self._size]
        return np.unique(at[np.isin(held[at], wanted)])

    def get(self, rowid: int) -> tuple[str, str, dict[str, Any]] | None:
        """The row's id, text and (freshly decoded) metadata, or ``None`` when not held."""
        held = self._rowids[: self._size]
        at = int(np.searchsorted(held, rowid))
        if at == self._size or held[at] != rowid:
            return None
        start = int(self._starts[at])
        id_len, text_len, meta_len = (int(n) for n in self._lengths[at])
        data = bytes(self._buffer[start : start + id_len + text_len + meta_len])
        return (
            data[:id_len].decode(),
            data[id_len : id_len + text_len].decode(),
            json.loads(data[id_len + text_len :]),
        )

    def remove(self, rowids: Iterable[int]) -> None:
        """Forget these rows (those not held are ignored)."""
        at = self._find(rowids)
        if not len(at):
            return
        self._dead += int(self._lengths[at].sum())
        keep = np.ones(self._size, dtype=bool)
        keep[at] = False
        size = int(keep.sum())
        self._rowids[:size] = self._rowids[: self._size][keep]
        self._starts[:size] = self._starts[: self._size][keep]
        self._lengths[:size] = self._lengths[: self._size][keep]
        self._size = size
        if self._dead > len(self._buffer) - self._dead:
            self._compact()

    def _compact(self) -> None:
        """Copy the live rows' bytes into a new buffer (the dead ones go)."""
        buffer = bytearray()
        for at in range(self._size):
            start = int(self._starts[at])
            self._starts[at] = len(buffer)
            buffer += self._buffer[start : start + int(self._lengths[at].sum())]
        self._buffer = buffer
        self._dead = 0
