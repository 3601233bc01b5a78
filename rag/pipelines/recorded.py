"""Writes with record keeping: the crash-safe order of :mod:`rag.pipelines.records`, applied.

Every ingest (:func:`rag.pipelines.ingest.run_ingest`, the Ray runner, and
:func:`rag.pipelines.ingest.ingest_documents` for the server) writes through one
:class:`RecordedWriter`: it records chunk ids before their chunks are written, reuses the stored
vectors of chunks whose id and text survive a change, deletes stale chunks and commits each source
once it is whole. :func:`plan_sources` decides which sources need work (with :class:`StoreCheck`
noticing records that claim chunks the store lost), and :func:`pipeline_fingerprint` says which
pipeline wrote a source (:data:`~rag.pipelines.records.VECTOR_NEUTRAL_PARAMETERS` left out).

Example:
    >>> from rag.connectors.stores.faiss import FaissStore
    >>> from rag.pipelines.ingest import IngestReport
    >>> from rag.pipelines.writer import StoreWriter
    >>> recorded = RecordedWriter(
    ...     StoreWriter(store=FaissStore()), None, pipeline_fingerprint="", report=IngestReport()
    ... )
    >>> recorded.write([], embed=None)
    >>> recorded.report.chunks_written
    0
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from rag.core.documents import Chunk
from rag.core.errors import ConfigError
from rag.core.pipeline import Pipeline
from rag.core.protocols import Enumerable
from rag.pipelines.records import (
    VECTOR_NEUTRAL_PARAMETERS,
    RecordStore,
    file_hash,
    fingerprint,
)
from rag.pipelines.writer import StoreWriter

if TYPE_CHECKING:
    from rag.pipelines._stream import Embedding
    from rag.pipelines.ingest import IngestReport

logger = logging.getLogger("rag.ingest")

LATER_PARAMETERS_AT_THEIR_OLD_BEHAVIOUR: dict[str, object] = {
    "balanced": False,
    "sentence_boundaries": False,
}
"""Parameters added after stores were written, at the value that gives the chunks and vectors of
before they existed: left out of the fingerprint, so upgrading ragline re-embeds nothing until a
pipeline turns them on (``splitter.*``'s ``balanced: true`` or ``sentence_boundaries: true``
re-chunks, as it must)."""


def pipeline_fingerprint(pipeline: Pipeline) -> str:
    """A hash of every component's configuration except the writer and runtime-only options.

    A source is "unchanged" only if its content *and* this fingerprint match, so changing the
    splitter or the embedding model re-ingests everything, while moving from CPU to GPU (or
    from the local runner to Ray) does not.
    """
    parts = []
    for name, component in pipeline.components.items():
        if isinstance(component, StoreWriter):
            continue
        data = component.to_dict(resolved=True)  # ${MODEL} -> the model it names today
        params = {
            k: v
            for k, v in data["init_parameters"].items()
            if k not in VECTOR_NEUTRAL_PARAMETERS
            and not (
                k in LATER_PARAMETERS_AT_THEIR_OLD_BEHAVIOUR
                and v == LATER_PARAMETERS_AT_THEIR_OLD_BEHAVIOUR[k]
            )
        }
        if params.get("context_template"):
            # Streaming ingests before this mark embedded the bare chunk text despite the
            # template; the mark changes their fingerprint, so those sources are embedded again.
            params["context_template_embedded"] = True
        parts.append([name, data["type"], params])
    return fingerprint(parts)


def is_under(source: str, paths: Iterable[str | Path]) -> bool:
    """Whether ``source`` is one of ``paths`` or inside one of them (as given, not resolved)."""
    candidate = PurePath(source)
    return any(candidate == PurePath(p) or PurePath(p) in candidate.parents for p in paths)


def writer_records(writer: StoreWriter | None) -> RecordStore | None:
    """The ingestion records of ``writer``'s store, or ``None`` without a writer or when the
    store has no place for records (a server store without ``records_path``)."""
    if writer is None:
        return None
    try:
        return writer.records
    except ConfigError:  # no local location and no records_path: this store keeps no records
        return None


def _plain(metadata: dict[str, Any]) -> Any:
    return json.loads(json.dumps(metadata, ensure_ascii=False))


def open_recorded_writer(
    pipeline: Pipeline,
    writer: StoreWriter,
    mode: str,
    files: Sequence[str],
    paths: Sequence[str | Path],
    report: IngestReport,
) -> RecordedWriter:
    """Open the store and its records for a run in ``mode``; with ``full``, first delete the
    chunks of sources under ``paths`` that are gone. Shared by the local and the Ray runner.

    Example:
        >>> # Opens the store of a pipeline's writer.store.
        >>> recorded = open_recorded_writer(p, w, "full", files, ["docs"], r)  # doctest: +SKIP
    """
    writer.warm_up()
    records = writer.records if mode != "none" else None
    fingerprint = pipeline_fingerprint(pipeline)
    recorded = RecordedWriter(writer, records, pipeline_fingerprint=fingerprint, report=report)
    if mode == "full":
        prune_missing(files, paths, recorded)
    return recorded


class RecordedWriter:
    """Writes chunks to the store in the crash-safe order of :mod:`rag.pipelines.records`.

    Shared by every ingest; ``records=None`` (mode ``none``, documents sent to the server)
    writes plainly.

    Args:
        writer: The pipeline's ``writer.store``.
        records: The record store, or ``None``.
        pipeline_fingerprint: See :func:`pipeline_fingerprint`.
        report: Counters are added here.
        policy: Write policy; ``None`` uses the writer's.
        before_first_write: Called once per source, after its first window is embedded and
            just before that window is written (or when the source ends without a chunk):
            the server replaces a source's older chunks there.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> from rag.pipelines.ingest import IngestReport
        >>> writer = StoreWriter(store=FaissStore())
        >>> recorded = RecordedWriter(writer, None, pipeline_fingerprint="", report=IngestReport())
        >>> recorded.policy
        'upsert'
    """

    def __init__(
        self,
        writer: StoreWriter,
        records: RecordStore | None,
        *,
        pipeline_fingerprint: str,
        report: IngestReport,
        policy: str | None = None,
        before_first_write: Callable[[str], None] | None = None,
    ) -> None:
        self.writer = writer
        self.store: Any = writer.store
        self.records = records
        self.fingerprint = pipeline_fingerprint
        self.report = report
        self.policy = policy or writer.policy
        self.before_first_write = before_first_write
        self._begun: dict[str, bool] = {}  # source -> stored vectors reusable
        self._prepared: set[str] = set()  # sources before_first_write was called for

    def _prepare(self, sources: Iterable[str]) -> None:
        if self.before_first_write is None:
            return
        for source in dict.fromkeys(sources):
            if source not in self._prepared:
                self._prepared.add(source)
                self.before_first_write(source)

    def begin(self, source: str) -> None:
        if self.records is not None and source not in self._begun:
            self._begun[source] = self.records.begin(source, fingerprint=self.fingerprint)

    def write(
        self,
        items: Sequence[tuple[str, Chunk]],
        embed: Embedding | None,
    ) -> None:
        """Record, embed (when ``embed`` is given) and write ``(source, chunk)`` items."""
        if not items:
            return
        for source, _ in items:
            self.begin(source)
        chunks = [chunk for _, chunk in items]
        to_write = chunks
        if self.records is not None and embed is not None:
            to_write = self._reuse(items, embed.text_of)
        if embed is not None:
            todo = [c for c in to_write if c.embedding is None]
            if todo:
                embed(todo)
        self.record(items)
        self._prepare(source for source, _ in items)
        written = self.store.write(to_write, policy=self.policy) if to_write else 0
        self.count(len(chunks), written)

    def record(self, items: Sequence[tuple[str, Chunk]]) -> None:
        """Record the chunk ids of ``items``; call before the chunks are written (crash safety)."""
        if self.records is None:
            return
        for source, _ in items:
            self.begin(source)
        self.records.add_chunks((source, chunk.id) for source, chunk in items)

    def count(self, chunks: int, written: int) -> None:
        """Add a written batch of ``chunks`` chunks, ``written`` of them new, to the report."""
        self.report.chunks_written += written
        self.report.chunks_skipped += chunks - written

    def _reuse(
        self, items: Sequence[tuple[str, Chunk]], embedded_as: Callable[[Chunk], str]
    ) -> list[Chunk]:
        """Attach stored vectors to chunks whose id is recorded and that are embedded as the
        same text (``embedded_as``); drop those stored as they are."""
        assert self.records is not None
        by_source: dict[str, list[str]] = {}
        for source, chunk in items:
            if self._begun.get(source):
                by_source.setdefault(source, []).append(chunk.id)
        known: set[str] = set()
        for source, ids in by_source.items():
            known |= self.records.recorded(source, ids)
        if not known:
            return [chunk for _, chunk in items]
        stored = {c.id: c for c in self.store.get(sorted(known))}
        keep = []
        for _, chunk in items:
            old = stored.get(chunk.id)
            if old is None or old.embedding is None or old.text != chunk.text:
                keep.append(chunk)
            elif _plain(old.metadata) == _plain(chunk.metadata):
                continue  # stored exactly as it is
            else:  # new metadata: the vector holds unless the metadata is embedded (a title)
                if embedded_as(old) == embedded_as(chunk):
                    chunk.embedding = old.embedding
                keep.append(chunk)
        return keep

    def finish(self, source: str, content_hash: str | None) -> None:
        """All chunks of ``source`` are written: delete its stale ids and commit it."""
        self._prepare([source])
        if self.records is None or content_hash is None:
            return
        self.begin(source)
        stale = self.records.stale_ids(source)
        if stale:
            self.report.chunks_deleted += int(self.store.delete(ids=stale))
        self.records.commit(source, content_hash=content_hash, fingerprint=self.fingerprint)
        self._begun.pop(source, None)

    def prune(self, source: str) -> None:
        """Delete every chunk of a source that is gone, then its record."""
        assert self.records is not None
        ids = self.records.chunk_ids(source)
        if ids:
            self.report.chunks_deleted += int(self.store.delete(ids=ids))
        self.records.forget(source)


def plan_sources(
    files: Sequence[str],
    records: RecordStore | None,
    *,
    pipeline_fingerprint: str,
    store: Any = None,
) -> Iterator[tuple[str, str | None, int | None]]:
    """Yield ``(source, content_hash, unchanged)`` for every source, lazily.

    ``unchanged`` is the number of chunks an unchanged source already has in the store (it
    needs no work), else ``None``. The hash is ``None`` when records are off or the file
    cannot be read (the loader then reports why). With ``store``, a source whose recorded
    chunks the store does not hold is not unchanged: it is ingested again (see
    :class:`StoreCheck`).
    """
    check = StoreCheck(store) if store is not None else None
    for source in files:
        if records is None:
            yield source, None, None
            continue
        try:
            digest = file_hash(source)
        except OSError:
            yield source, None, None
            continue
        if records.is_unchanged(source, content_hash=digest, fingerprint=pipeline_fingerprint):
            ids = records.chunk_ids(source)
            if check is None or check.holds(source, ids):
                yield source, digest, len(ids)
                continue
            logger.warning(
                "%s: the ingestion records list %d chunk(s) that the store does not hold "
                "(its files were deleted or replaced?); ingesting the source again",
                source,
                len(ids),
            )
        yield source, digest, None


class StoreCheck:
    """Whether a store still holds the chunks the records say a source has.

    With a store that lists its ids (:class:`~rag.core.protocols.Enumerable`, read once per
    run), every recorded id is checked; otherwise the store's count of chunks with that
    ``source`` must reach the recorded count.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> StoreCheck(FaissStore()).holds("a.md", ["c1"])
        False
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._ids: set[str] | None = None
        self._listed = False

    def holds(self, source: str, ids: Sequence[str]) -> bool:
        if not ids:
            return True
        if not self._listed:
            self._listed = True
            if isinstance(self.store, Enumerable):
                try:
                    self._ids = set(self.store.ids())
                except (NotImplementedError, TypeError):
                    self._ids = None
        if self._ids is not None:
            return all(i in self._ids for i in ids)
        try:
            return int(self.store.count({"source": source})) >= len(ids)
        except (NotImplementedError, TypeError, ValueError):
            return True  # a store that cannot tell: trust the records


def prune_missing(
    files: Sequence[str], paths: Sequence[str | Path], recorded: RecordedWriter
) -> None:
    """``full`` mode: delete recorded sources under ``paths`` that are no longer present."""
    assert recorded.records is not None
    present = set(files)
    for source in recorded.records.sources():
        if source not in present and is_under(source, paths):
            recorded.prune(source)
