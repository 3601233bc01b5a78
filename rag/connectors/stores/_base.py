"""The skeleton every vector store of ragline shares, and small mixins for the store abilities
that several stores implement the same way.

:class:`StoreBase` holds what each store used to repeat: the re-entrant lock, ``warm_up`` that
opens once (and again after ``close``), ``close`` that releases only what is open, the version
counter that writes and deletes bump, and the ``run`` of a component that is shared by reference.
A store fills in three hooks: ``_is_open``, ``_open`` and ``_close``.

The mixins declare an ability (see :mod:`rag.core.protocols`) by implementing it, so a store
lists its abilities in its bases: :class:`WritesThrough` (``flush`` with nothing buffered),
:class:`ClearsByIds`, :class:`CountedFingerprint` and :class:`ScannedStats`.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from rag.core.component import Component


class StoreBase(Component):
    """Lock, open-once, close and the write version of a store.

    Subclasses call ``super().__init__()`` at the end of their ``__init__`` and implement
    :meth:`_is_open`, :meth:`_open` (called under the lock, only when not open) and
    :meth:`_close` (called under the lock, only when open).

    Example:
        >>> class ListStore(StoreBase):
        ...     def __init__(self) -> None:
        ...         self.rows: list[str] | None = None
        ...         super().__init__()
        ...     def _is_open(self) -> bool:
        ...         return self.rows is not None
        ...     def _open(self) -> None:
        ...         self.rows = []
        ...     def _close(self) -> None:
        ...         self.rows = None
        >>> store = ListStore()
        >>> store.warm_up()
        >>> store.rows
        []
        >>> store.close()
        >>> store.close()
        >>> store.rows is None
        True
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # Bumped by every write or delete of this store object (CountedFingerprint reads it).
        self._version = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def _is_open(self) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement _is_open()")

    def _open(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _open()")

    def _close(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _close()")

    def warm_up(self) -> None:
        """Connect or open the files; does nothing when already open (a closed store opens
        again)."""
        with self._lock:
            if not self._is_open():
                self._open()

    def close(self) -> None:
        """Release the connection, files or server; closing twice is harmless."""
        with self._lock:
            if self._is_open():
                self._close()

    def _changed(self) -> None:
        """Note a write or a delete."""
        self._version += 1

    def run(self) -> dict[str, Any]:  # a store is shared by reference, not run as a node
        return {}


class WritesThrough:
    """``flush()`` for a store that buffers nothing: every write is durable when it returns."""

    def flush(self) -> None:
        """Nothing to do: each write is applied before it returns."""


class ClearsByIds:
    """``clear()`` as a delete of every id (the collection, table or index itself stays).

    For a store with ``ids()`` and ``delete(ids=...)``; the mixins add one method each and
    rely on the store for the rest (so they declare no ability by accident).
    """

    _lock: threading.RLock

    def clear(self) -> None:
        """Delete every chunk (the collection and its schema stay)."""
        with self._lock:
            ids = self.ids()
            if ids:
                self.delete(ids=ids)


class CountedFingerprint:
    """``fingerprint()`` from this object's writes and the stored count, for a backend that
    keeps no content version: another process's writes show only through the count."""

    fingerprint_name: ClassVar[str]
    """The fingerprint's prefix (``"qdrant"``)."""
    _version: int

    def fingerprint(self) -> str:
        """Changes when this store object writes or deletes, or the count changes."""
        return f"{self.fingerprint_name}:{id(self)}:{self._version}:{self.count()}"


class ScannedStats:
    """``stats()`` for a backend that cannot count distinct sources: they are read with
    ``iter_chunks()``."""

    dimension: int | None
    _lock: threading.RLock

    def stats(self) -> dict[str, Any]:
        """``{"chunks", "sources", "dimension"}``."""
        with self._lock:
            sources = {c.metadata.get("source") for c in self.iter_chunks()}
            return {
                "chunks": self.count(),
                "sources": len(sources - {None}),
                "dimension": self.dimension,
            }
