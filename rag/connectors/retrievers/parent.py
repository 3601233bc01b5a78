"""``retriever.parent``: search small chunks, return the larger context they came from.

Wraps any retriever (dense, BM25, hybrid). Chunks written by ``splitter.parent`` carry their
parent section in metadata (``parent_id``, ``parent_text``); chunks written by
``splitter.sentence_window`` carry their sentence window (``window``). This retriever asks the
wrapped one for more candidates than it returns, swaps each hit's text for that context and
keeps one hit per parent (the best-scoring child's score), so ``k`` hits are ``k`` distinct
sections whenever that many matched.

The context is read from the hit's own metadata, so nothing else has to be stored or looked
up: it works with every store, persisted or not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rag.core.component import Component, warm_up_parts
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.limits import resolve_k
from rag.core.protocols import Filters, Retriever, RetrievesBatches

logger = logging.getLogger(__name__)

# mode -> (metadata field holding the context, field identifying it, the splitter that writes it)
MODES: dict[str, tuple[str, str | None, str]] = {
    "parent": ("parent_text", "parent_id", "splitter.parent"),
    "window": ("window", None, "splitter.sentence_window"),
}


class ParentRetriever(Component):
    """Return each hit's parent section (or sentence window) instead of the small chunk.

    Each returned hit's chunk has the context as its ``text``; its metadata is the child's,
    without the stored context, plus ``matched_id`` and ``matched_text`` (the child chunk that
    matched). In ``parent`` mode the hit's id is the parent's ``parent_id``, so citations name
    one section however many of its children matched. A hit without the context field
    (ingested with another splitter) is returned unchanged, with a warning.

    Args:
        retriever: Any retriever with ``retrieve(query, k=, filters=)`` (``"@dense"`` in a
            pipeline file).
        mode: ``parent`` (``splitter.parent`` chunks) or ``window``
            (``splitter.sentence_window`` chunks).
        k: Hits (distinct parents or windows) to return by default.
        candidates: Child hits asked from ``retriever``; default ``max(4 * k, 20)``, since
            several children of one parent often rank together.

    Example:
        >>> parent = ParentRetriever(retriever=dense, mode="parent", k=3)  # doctest: +SKIP
        >>> hit = parent.retrieve("How do I install on Linux?")[0]  # doctest: +SKIP
        >>> hit.chunk.text  # the whole section  # doctest: +SKIP
        '## Linux\\nUse a virtual environment. Then run pip install ragline. ...'
        >>> hit.chunk.metadata["matched_text"]  # the small chunk that matched  # doctest: +SKIP
        'Then run pip install ragline.'
    """

    outputs = {"hits": list[Hit]}

    def __init__(
        self,
        *,
        retriever: Retriever,
        mode: str = "parent",
        k: int = 5,
        candidates: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}", field="mode")
        if not isinstance(retriever, Retriever):
            raise ConfigError(
                f"retriever must have retrieve(query, k=, filters=); "
                f"{type(retriever).__name__} does not",
                field="retriever",
            )
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}", field="k")
        if candidates is not None and candidates < k:
            raise ConfigError(
                f"candidates ({candidates}) must be at least k ({k})", field="candidates"
            )
        self.retriever = retriever
        self.mode = mode
        self.k = k
        self.candidates = candidates
        self._warned = False

    def warm_up(self) -> None:
        warm_up_parts(self.retriever)

    def _depth(self, k: int) -> int:
        return max(self.candidates, k) if self.candidates is not None else max(4 * k, 20)

    def expand(self, hits: Sequence[Hit], *, k: int) -> list[Hit]:
        """Swap child hits for their context, one hit per parent, best first, at most ``k``."""
        text_field, id_field, splitter = MODES[self.mode]
        seen: set[str] = set()
        expanded: list[Hit] = []
        for hit in hits:
            metadata = hit.chunk.metadata
            context = metadata.get(text_field)
            if not isinstance(context, str):
                if not self._warned:
                    logger.warning(
                        "retriever.parent (mode %s): hit %s (source %s) has no '%s' metadata; "
                        "returning it unchanged. Ingest with %s to store the context",
                        self.mode,
                        hit.id,
                        hit.chunk.source,
                        text_field,
                        splitter,
                    )
                    self._warned = True
                key, chunk = hit.id, hit.chunk
            else:
                key = str(metadata.get(id_field, context) if id_field else context)
                kept = {
                    name: value
                    for name, value in metadata.items()
                    if name not in (text_field, "chunk_index", "start_index")
                }
                kept["matched_id"] = hit.id
                kept["matched_text"] = hit.chunk.text
                chunk = Chunk(id=key if id_field else hit.id, text=context, metadata=kept)
            if key in seen:
                continue
            seen.add(key)
            expanded.append(Hit(chunk, hit.score))
            if len(expanded) == k:
                break
        return expanded

    def retrieve(
        self, query: str, *, k: int | None = None, filters: Filters | None = None
    ) -> list[Hit]:
        """Parents (or windows) of the best-matching chunks for one query."""
        limit = resolve_k(k, self.k)
        hits = self.retriever.retrieve(query, k=self._depth(limit), filters=filters)
        return self.expand(hits, k=limit)

    def retrieve_batch(
        self, queries: Sequence[str], *, k: int | None = None, filters: Filters | None = None
    ) -> list[list[Hit]]:
        """:meth:`retrieve` for many queries, batched when the wrapped retriever batches."""
        limit = resolve_k(k, self.k)
        if not isinstance(self.retriever, RetrievesBatches):
            return [self.retrieve(q, k=limit, filters=filters) for q in queries]
        results = self.retriever.retrieve_batch(
            list(queries), k=self._depth(limit), filters=filters
        )
        return [self.expand(hits, k=limit) for hits in results]

    def run(
        self, query: str, k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"hits": self.retrieve(query, k=k, filters=filters)}
