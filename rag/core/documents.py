"""Plain data records: a loaded ``Document``, a ``Chunk`` of one, and a search ``Hit``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.core.limits import check_finite


def chunk_id(source_id: str, position: int, text: str) -> str:
    """Deterministic chunk id: a hash of the source id, the chunk's position and its text.

    >>> chunk_id("a.md", 0, "hello") == chunk_id("a.md", 0, "hello")
    True
    """
    digest = hashlib.sha256(f"{source_id}\x00{position}\x00{text}".encode()).hexdigest()
    return digest[:32]


def content_hash(text: str | bytes) -> str:
    """SHA-256 of a text or bytes, as hex."""
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


@dataclass
class Document:
    """A loaded source (a file, a row of a JSONL/CSV file, a page of text).

    Args:
        id: Stable identifier of the source (``"docs/a.md"``, ``"data.jsonl#17"``).
        text: Full text.
        metadata: JSON-serializable metadata; always carries ``source``.

    Raises:
        NonFiniteNumberError: ``metadata`` holds NaN or an infinity (JSON cannot carry it).
        NestingTooDeepError: ``metadata`` is nested deeper than ``MAX_JSON_DEPTH``.

    Example:
        >>> doc = Document(id="a.md", text="Hello", metadata={"source": "a.md"})
        >>> doc.metadata["source"]
        'a.md'
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metadata.setdefault("source", self.id)
        # Stored metadata must survive JSON: no NaN or infinity, no absurd nesting.
        check_finite(self.metadata, where=f"document {self.id!r:.200} metadata")


@dataclass
class Chunk:
    """A piece of a document, the unit that is embedded, stored and retrieved.

    Use :meth:`Chunk.create` to get a deterministic id.

    Example:
        >>> c = Chunk.create(text="Hello", source_id="a.md", position=0)
        >>> c.id == Chunk.create(text="Hello", source_id="a.md", position=0).id
        True
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    embedding: np.ndarray | None = None

    @classmethod
    def create(
        cls,
        *,
        text: str,
        source_id: str,
        position: int,
        metadata: dict[str, Any] | None = None,
    ) -> Chunk:
        """Build a chunk whose id is derived from ``source_id``, ``position`` and ``text``."""
        meta = dict(metadata or {})
        meta.setdefault("source", source_id)
        meta.setdefault("chunk_index", position)
        return cls(id=chunk_id(source_id, position, text), text=text, metadata=meta)

    @property
    def source(self) -> str:
        """The ``source`` metadata field."""
        return str(self.metadata.get("source", ""))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chunk):
            return NotImplemented
        if (self.id, self.text, self.metadata) != (other.id, other.text, other.metadata):
            return False
        if self.embedding is None or other.embedding is None:
            return self.embedding is None and other.embedding is None
        return bool(np.array_equal(self.embedding, other.embedding))

    def to_dict(self, *, with_embedding: bool = False) -> dict[str, Any]:
        """JSON-serializable view."""
        data: dict[str, Any] = {"id": self.id, "text": self.text, "metadata": self.metadata}
        if with_embedding and self.embedding is not None:
            data["embedding"] = self.embedding.tolist()
        return data


@dataclass
class Hit:
    """One search result: a chunk and its score (higher is better)."""

    chunk: Chunk
    score: float

    @property
    def id(self) -> str:
        return self.chunk.id

    def to_dict(self) -> dict[str, Any]:
        """The shape of ``rag search --json``."""
        return {
            "id": self.chunk.id,
            "score": float(self.score),
            "text": self.chunk.text,
            "metadata": self.chunk.metadata,
        }
