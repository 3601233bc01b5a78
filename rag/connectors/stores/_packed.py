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
from collections.abc import Iterable, Mapping, Sequence
from hashlib import blake2b
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

    def extend(
        self,
        rowids: Sequence[int],
        chunk_ids: Sequence[str],
        texts: Sequence[str],
        metadata_json: Sequence[str],
    ) -> int:
        """Hold many rows at once (ids ascending, above every held one), as :meth:`add` does
        one by one but in a few array operations: the rows are taken in order while they fit
        the budget, and how many were taken is returned.

        Example:
            >>> rows = PackedRows(budget_bytes=1_000_000)
            >>> rows.extend([1, 2], ["c1", "c2"], ["A.", "B."], ["{}", '{"k": 1}'])
            2
            >>> rows.get(2)
            ('c2', 'B.', {'k': 1})
        """
        if not len(rowids):
            return 0
        ids = np.asarray(rowids, dtype=np.int64)
        if (self._size and ids[0] <= self._rowids[self._size - 1]) or (np.diff(ids) <= 0).any():
            raise ValueError("row ids must ascend, above the last held row")
        room = self.budget_bytes - self.nbytes
        if room <= ROW_OVERHEAD:
            return 0  # full: nothing to encode
        columns = (chunk_ids, texts, metadata_json)
        parts = [[value.encode() for value in column] for column in columns]
        lengths = np.array([[len(b) for b in column] for column in parts], dtype=np.int32).T
        sizes = lengths.sum(axis=1, dtype=np.int64)
        count = int(np.searchsorted(np.cumsum(sizes + ROW_OVERHEAD), room, side="right"))
        if not count:
            return 0
        while self._size + count > len(self._rowids):
            self._grow()
        at = slice(self._size, self._size + count)
        self._rowids[at] = ids[:count]
        self._starts[at] = len(self._buffer) + np.concatenate(([0], np.cumsum(sizes[: count - 1])))
        self._lengths[at] = lengths[:count]
        taken = zip(*(column[:count] for column in parts), strict=True)
        self._buffer += b"".join(piece for row in taken for piece in row)
        self._size += count
        return count

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
        self._buffer, self._starts[: self._size] = _compacted(
            self._buffer, self._starts[: self._size], self._lengths[: self._size].sum(axis=1)
        )
        self._dead = 0

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The held rows as arrays (for :meth:`from_arrays`; compacted first)."""
        if self._dead:
            self._compact()
        return {
            "buffer": np.frombuffer(self._buffer, dtype=np.uint8),
            "rowids": self._rowids[: self._size],
            "starts": self._starts[: self._size],
            "lengths": self._lengths[: self._size],
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], budget_bytes: float) -> PackedRows:
        """Rows that :meth:`to_arrays` gave, held within ``budget_bytes`` as when saved."""
        rows = cls(budget_bytes)
        rows._buffer = bytearray(arrays["buffer"])
        rows._rowids = np.array(arrays["rowids"], dtype=np.int64)
        rows._starts = np.array(arrays["starts"], dtype=np.int64)
        rows._lengths = np.array(arrays["lengths"], dtype=np.int32).reshape(-1, 3)
        rows._size = len(rows._rowids)
        if not (len(rows._starts) == len(rows._lengths) == rows._size):
            raise ValueError("packed rows: arrays of different lengths")
        return rows


def _compacted(
    buffer: bytearray, starts: np.ndarray, sizes: np.ndarray
) -> tuple[bytearray, np.ndarray]:
    """The bytes of ``(start, size)`` spans copied one after another, and their new starts."""
    out = bytearray()
    new_starts = np.empty(len(starts), dtype=np.int64)
    for at, (start, size) in enumerate(zip(starts.tolist(), sizes.tolist())):
        new_starts[at] = len(out)
        out += buffer[start : start + size]
    return out, new_starts


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """Stable 64-bit hashes of chunk ids (BLAKE2b, 8 bytes): the same in every process.

    Example:
        >>> id_hashes(["c1"]).dtype
        dtype('int64')
    """
    digests = b"".join(blake2b(i.encode(), digest_size=8).digest() for i in ids)
    return np.frombuffer(digests, dtype="<i8").astype(np.int64)


class IdIndex:
    """Chunk id -> row id of every live row, in numpy instead of a dict of strings.

    A ``dict[str, int]`` costs about 140 bytes a row (the id's ``str`` object, the ``int`` and
    the table slot): 140 MB at a million chunks, more than the packed texts. Here a row costs
    the id's UTF-8 bytes plus 28 (its 8-byte hash, kept sorted, its row id, where its bytes
    start and their length); a lookup hashes the id, finds the hash by binary search and
    compares the bytes (two ids may share a hash).

    Example:
        >>> index = IdIndex()
        >>> index.add(["a", "b"], [1, 2])
        >>> index.get("b"), index.get("z"), len(index)
        (2, None, 2)
        >>> index.remove_rowids([1]); index.ids()
        ['b']
    """

    def __init__(self) -> None:
        self._hashes = np.zeros(0, dtype=np.int64)  # ascending
        self._rowids = np.zeros(0, dtype=np.int64)  # in the order of _hashes
        self._starts = np.zeros(0, dtype=np.int64)
        self._lengths = np.zeros(0, dtype=np.int32)
        self._buffer = bytearray()
        self._dead = 0  # bytes of removed ids still in the buffer

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, chunk_id: object) -> bool:
        return isinstance(chunk_id, str) and self.get(chunk_id) is not None

    @property
    def nbytes(self) -> int:
        """Bytes held (arrays and id bytes)."""
        arrays = (self._hashes, self._rowids, self._starts, self._lengths)
        return len(self._buffer) + sum(a.nbytes for a in arrays)

    def _id_at(self, at: int) -> bytes:
        start = int(self._starts[at])
        return bytes(self._buffer[start : start + int(self._lengths[at])])

    def _find(self, hashed: int, encoded: bytes) -> int | None:
        """Position of ``encoded`` among the entries whose hash is ``hashed``."""
        at = int(np.searchsorted(self._hashes, hashed))
        while at < len(self._hashes) and self._hashes[at] == hashed:
            if self._id_at(at) == encoded:
                return at
            at += 1
        return None

    def get(self, chunk_id: str) -> int | None:
        """The row id of ``chunk_id``, or ``None``."""
        at = self._find(int(id_hashes([chunk_id])[0]), chunk_id.encode())
        return None if at is None else int(self._rowids[at])

    def lookup(self, ids: Iterable[str]) -> dict[str, int]:
        """``{chunk id: row id}`` of those of ``ids`` that are held."""
        wanted = list(dict.fromkeys(ids))
        if not wanted or not len(self._hashes):
            return {}
        hashes = id_hashes(wanted)
        at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
        found: dict[str, int] = {}
        for position in np.flatnonzero(self._hashes[at] == hashes).tolist():
            chunk_id = wanted[position]
            hit = self._find(int(hashes[position]), chunk_id.encode())
            if hit is not None:
                found[chunk_id] = int(self._rowids[hit])
        return found

    def add(self, ids: Sequence[str], rowids: Sequence[int]) -> None:
        """Add ids that are not held yet, with their row ids."""
        if len(ids) != len(rowids):
            raise ValueError(f"{len(ids)} ids but {len(rowids)} row ids")
        if not len(ids):
            return
        encoded = [i.encode() for i in ids]
        lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
        starts = len(self._buffer) + np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)])
        self._buffer += b"".join(encoded)
        hashes = id_hashes(ids)
        order = np.argsort(hashes, kind="stable")
        where = np.searchsorted(self._hashes, hashes[order])
        self._hashes = np.insert(self._hashes, where, hashes[order])
        self._rowids = np.insert(self._rowids, where, np.asarray(rowids, dtype=np.int64)[order])
        self._starts = np.insert(self._starts, where, starts[order])
        self._lengths = np.insert(self._lengths, where, lengths[order])

    def remove_rowids(self, rowids: Iterable[int]) -> None:
        """Forget the ids of these row ids (those not held are ignored)."""
        gone = np.isin(self._rowids, np.fromiter(rowids, dtype=np.int64))
        if not gone.any():
            return
        self._dead += int(self._lengths[gone].sum())
        keep = ~gone
        self._hashes, self._rowids = self._hashes[keep], self._rowids[keep]
        self._starts, self._lengths = self._starts[keep], self._lengths[keep]
        if self._dead > len(self._buffer) - self._dead:
            self._buffer, self._starts = _compacted(self._buffer, self._starts, self._lengths)
            self._dead = 0

    def rowids(self) -> np.ndarray:
        """Every held row id, ascending."""
        return np.sort(self._rowids)

    def ids(self) -> list[str]:
        """Every held chunk id, in row id order (the order they were written in)."""
        return [self._id_at(at).decode() for at in np.argsort(self._rowids).tolist()]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as arrays (for :meth:`from_arrays`)."""
        if self._dead:
            self._buffer, self._starts = _compacted(self._buffer, self._starts, self._lengths)
            self._dead = 0
        return {
            "hashes": self._hashes,
            "rowids": self._rowids,
            "starts": self._starts,
            "lengths": self._lengths,
            "buffer": np.frombuffer(self._buffer, dtype=np.uint8),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> IdIndex:
        """The index that :meth:`to_arrays` gave."""
        index = cls()
        index._hashes = np.array(arrays["hashes"], dtype=np.int64)
        index._rowids = np.array(arrays["rowids"], dtype=np.int64)
        index._starts = np.array(arrays["starts"], dtype=np.int64)
        index._lengths = np.array(arrays["lengths"], dtype=np.int32)
        index._buffer = bytearray(arrays["buffer"])
        sizes = {len(index._hashes), len(index._rowids), len(index._starts), len(index._lengths)}
        if len(sizes) != 1:
            raise ValueError("id index: arrays of different lengths")
        return index
