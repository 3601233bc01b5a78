"""Ingest files, or documents already in memory, and report what happened: the one ingest path.

Every ingest goes through here: ``rag ingest`` and eval call :func:`run_ingest`, the Ray runner
(:mod:`rag.pipelines.distributed`) shares its checks, records and writes, and the server's
``POST /v1/documents`` and gRPC ``Ingest`` call :func:`ingest_documents`. All of them embed and
write through one :class:`~rag.pipelines.recorded.RecordedWriter` (records, write policy, reuse
of stored vectors) under the store's one-writer lock.

:func:`run_ingest` is the local runner. For the usual pipeline
``[loader, splitter, embedder, writer]`` it streams: a background thread hashes, loads and
splits sources document by document while the main thread embeds windows of
``window_size`` chunks and writes them, so memory stays flat however large the corpus is and
the model never waits for the splitter. Any other pipeline that ends in ``writer.store`` runs
source by source through :meth:`Pipeline.run`.

Record keeping (``mode``, see :mod:`rag.pipelines.records`):

- ``incremental`` (the default): a source whose content and pipeline are unchanged costs a
  hash; a changed source replaces its chunks (chunks whose id and text survive keep their
  stored vector instead of being embedded again); an interrupted run resumes without
  duplicates, losses or stale chunks.
- ``full``: as ``incremental``, and the chunks of recorded sources that are no longer present
  under the given paths are deleted.
- ``none``: no records; every source is embedded and written (``writer.policy`` applies).

A source that fails is recorded in the report and the run goes on; its previous chunks stay.

Robustness (see ``docs/concepts/robustness.md``):

- one writer at a time: a run holds ``<records>.lock`` (waiting up to ``lock_timeout`` seconds
  for another run to finish, then :class:`~rag.core.errors.StoreLockedError` naming its pid,
  host and start time);
- records that claim chunks the store does not hold (its ``chunks.sqlite`` was deleted, the
  collection dropped) are noticed: those sources are ingested again, and a warning says so;
- a huge document is embedded and written in windows of ``window_size`` chunks, so progress
  shows, memory stays bounded and a kill loses at most one window.

Example:
    >>> # Loads the embedding model and writes an index.
    >>> from rag.core import PipelineFile
    >>> from rag.pipelines.ingest import run_ingest
    >>> app = PipelineFile.load("examples/ingest.yaml")
    >>> report = run_ingest(app.pipeline("ingest"), ["examples/corpus"])  # doctest: +SKIP
    >>> report.chunks_written, report.chunks_skipped  # doctest: +SKIP
    (42, 0)
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.core.documents import Chunk, Document
from rag.core.errors import ConfigError, PipelineError
from rag.core.filters import matches, parse_filter
from rag.core.pipeline import Pipeline
from rag.core.protocols import Embedder, Enumerable, Filters, Flushable, ReportsStats
from rag.core.roles import Role
from rag.pipelines import _stream
from rag.pipelines.loaders import SUPPORTED_EXTENSIONS, expand_sources

# Re-exported: these lived here before rag.pipelines.recorded (old import paths keep working).
from rag.pipelines.recorded import RecordedWriter as RecordedWriter
from rag.pipelines.recorded import StoreCheck as StoreCheck
from rag.pipelines.recorded import is_under as is_under
from rag.pipelines.recorded import open_recorded_writer as open_recorded_writer
from rag.pipelines.recorded import pipeline_fingerprint as pipeline_fingerprint
from rag.pipelines.recorded import plan_sources as plan_sources
from rag.pipelines.recorded import prune_missing as prune_missing
from rag.pipelines.recorded import writer_records
from rag.pipelines.records import writer_lock
from rag.pipelines.writer import StoreWriter

MODES = ("incremental", "full", "none")


@dataclass
class IngestReport:
    """What an ingest run did; ``to_dict()`` is the ``rag ingest --json`` shape.

    Attributes:
        sources: Source files found under the given paths.
        chunks_written: Chunks written to the store.
        chunks_skipped: Chunks already stored as they are (unchanged sources, unchanged chunks
            of changed sources, and chunks the writer's ``skip`` policy kept).
        chunks_deleted: Stale chunks deleted (older versions, pruned sources).
        errors: ``{"source", "error"}`` for every source or row that failed.
        seconds: Wall-clock time.
    """

    sources: int = 0
    chunks_written: int = 0
    chunks_skipped: int = 0
    chunks_deleted: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


# -- pipeline anatomy ---------------------------------------------------------------------------
@dataclass
class IngestStages:
    """The roles of a streaming ingestion pipeline (``None`` where the pipeline differs)."""

    loader: Any
    splitter: Any
    embedder: Embedder
    writer: StoreWriter


def ingest_stages(pipeline: Pipeline) -> IngestStages | None:
    """Recognize ``loader -> splitter -> embedder -> writer.store`` (the streamable shape)."""
    names = list(pipeline.components)
    if len(names) != 4:
        return None
    loader, splitter, embedder, writer = (pipeline.components[n] for n in names)
    links = {(c.sender, c.receiver) for c in pipeline.connections}
    if links != set(itertools.pairwise(names)):
        return None
    # Role.played_by, not isinstance: isinstance reads an embedder's dimension (loads a model).
    if not (
        Role.LOADER.played_by(loader)
        and Role.SPLITTER.played_by(splitter)
        and Role.EMBEDDER.played_by(embedder)
        and isinstance(writer, StoreWriter)
    ):
        return None
    return IngestStages(loader, splitter, embedder, writer)


def find_writer(pipeline: Pipeline) -> tuple[str, StoreWriter] | None:
    """The ``writer.store`` component of ``pipeline`` (there must be at most one)."""
    writers = [(n, c) for n, c in pipeline.components.items() if isinstance(c, StoreWriter)]
    if len(writers) > 1:
        raise PipelineError(
            f"pipeline '{pipeline.name}' has {len(writers)} writer.store components "
            f"({', '.join(n for n, _ in writers)}); an ingestion pipeline writes to one store"
        )
    return writers[0] if writers else None


def check_ingest_pipeline(pipeline: Pipeline, mode: str) -> tuple[str, StoreWriter] | None:
    """Check that ``pipeline`` can ingest files in ``mode``; return its writer (name, component).

    Raises:
        ValueError: ``mode`` is not one of :data:`MODES`.
        PipelineError: the pipeline is invalid, takes no ``sources``, has several writers, or
            has no ``writer.store`` to keep the records ``mode`` needs.
        ConfigError: the writer's ``fail`` policy cannot resume an interrupted run.

    Example:
        >>> check_ingest_pipeline(Pipeline(name="empty"), "sideways")
        Traceback (most recent call last):
        ...
        ValueError: mode must be one of incremental, full, none, got 'sideways'
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    pipeline.validate()
    _first_component_takes_sources(pipeline)
    found = find_writer(pipeline)
    _check_mode(mode, found[1] if found else None, pipeline)
    return found


def _check_mode(mode: str, writer: StoreWriter | None, pipeline: Pipeline) -> None:
    """Raise unless ``writer`` can keep the records ``mode`` needs."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "none":
        return
    if writer is None:
        raise PipelineError(
            f"pipeline '{pipeline.name}' has no writer.store component, so mode '{mode}' cannot "
            "keep ingestion records; end the pipeline with writer.store or use mode 'none'"
        )
    if writer.policy == "fail":
        raise ConfigError(
            f"writer.store policy 'fail' cannot be combined with mode '{mode}': re-writing a "
            "source after an interruption meets its own chunks; use policy 'upsert' or mode "
            "'none'",
            field="policy",
        )


def _first_component_takes_sources(pipeline: Pipeline) -> None:
    """Raise unless a component of ``pipeline`` takes ``sources`` (files to load)."""
    free = pipeline.unconnected_inputs()
    if not any("sources" in sockets for sockets in free.values()):
        raise PipelineError(
            f"pipeline '{pipeline.name}' cannot ingest files: no component takes 'sources' "
            "(start the pipeline with a loader such as loader.files)"
        )


# -- files: the local runner --------------------------------------------------------------------
def run_ingest(
    pipeline: Pipeline,
    paths: Sequence[str | Path],
    *,
    mode: str = "incremental",
    window_size: int | None = None,
    batch_size: int = 16,
    pattern: str = "**/*",
    include_hidden: bool = False,
    progress: bool = True,
    lock_timeout: float = 10.0,
) -> IngestReport:
    """Ingest files and directories with ``pipeline``.

    Args:
        pipeline: An ingestion pipeline whose first component takes ``sources``.
        paths: Files and directories (directories are searched with ``pattern``). Give them
            the same way on every run: source ids are the paths as given.
        mode: ``incremental``, ``full`` or ``none`` (see the module docstring).
        window_size: Chunks embedded and written together (streaming pipelines);
            ``None`` uses the writer's ``batch_size``.
        batch_size: Sources per :meth:`Pipeline.run` for pipelines that cannot stream
            and run in mode ``none``.
        pattern: Glob pattern for directories.
        include_hidden: Also read hidden files and folders inside the directories
            (``.git``, ``.obsidian``); a hidden path given itself is always read.
        progress: Show a progress bar on stderr.
        lock_timeout: Seconds to wait while another run writes to the same store.

    Returns:
        The :class:`IngestReport`.

    Raises:
        PipelineError: the pipeline cannot ingest files, or cannot keep records in ``mode``.
        ConfigError: ``mode`` needs records and the store has no place for them.
        StoreLockedError: another run still writes to the store after ``lock_timeout``.

    Example:
        >>> # Needs an ingestion pipeline (loads a model).
        >>> report = run_ingest(pipeline, ["docs/"], mode="full")  # doctest: +SKIP
        >>> report.to_dict()["chunks_deleted"]  # doctest: +SKIP
        3
    """
    if window_size is not None and window_size < 1:
        raise ValueError(f"window_size must be at least 1, got {window_size}")
    started = time.perf_counter()
    found = check_ingest_pipeline(pipeline, mode)
    files, errors = expand_sources(
        paths, pattern=pattern, extensions=SUPPORTED_EXTENSIONS, include_hidden=include_hidden
    )
    report = IngestReport(sources=len(files), errors=list(errors))
    if found is None:  # mode none, a pipeline that writes nowhere we know of
        with _bar(len(files), progress) as bar:
            _stream.run_batches(pipeline, files, batch_size=batch_size, report=report, bar=bar)
        flush_pipeline(pipeline)
        report.seconds = time.perf_counter() - started
        return report
    writer_name, writer = found
    lock_path = None if mode == "none" else writer.records.path
    with writer_lock(lock_path, timeout=lock_timeout):
        recorded = open_recorded_writer(pipeline, writer, mode, files, paths, report)
        plan = plan_sources(
            files,
            recorded.records,
            pipeline_fingerprint=recorded.fingerprint,
            store=recorded.store,
        )
        stages = ingest_stages(pipeline)
        with _bar(len(files), progress) as bar:
            if stages is not None:
                embed = _stream.Embedding(stages.embedder)
                window = window_size or writer.batch_size
                with _stream.file_events(stages, plan) as events:
                    _stream.write_windows(events, recorded, embed, window_size=window, bar=bar)
            else:
                _stream.run_per_source(pipeline, writer_name, plan, recorded, bar=bar)
            bar.update(bar.total - bar.n)
        flush_pipeline(pipeline)
    report.seconds = time.perf_counter() - started
    return report


# -- documents in memory: the server ------------------------------------------------------------
def ingest_documents(
    documents: Sequence[Document],
    *,
    embedder: Any,
    writer: StoreWriter | None = None,
    store: Any = None,
    splitter: Any = None,
    replace: bool = False,
    replace_filter: Callable[[str], Filters] | None = None,
    lock_timeout: float = 10.0,
    progress: bool = False,
) -> IngestReport:
    """Split, embed and store documents already in memory (``POST /v1/documents``, gRPC).

    The same stages as :func:`run_ingest` after loading: windows of ``writer.batch_size``
    chunks embedded and written through a :class:`RecordedWriter`, under the store's
    one-writer lock. No records are kept for these documents (there is no file to hash
    again); replacing a source forgets its records, so the next ``rag ingest`` of a file of
    that name writes it again instead of trusting chunks that are gone.

    Args:
        documents: Loaded documents; a document's source is its ``source`` metadata (its id
            when it has none). Several documents may share a source (rows of one upload).
        embedder: Embeds the chunks.
        writer: The ingestion pipeline's ``writer.store`` (store, policy, window, records,
            lock); ``None`` writes to ``store`` with policy ``upsert``, keeping no records.
        store: The store, when there is no ``writer``.
        splitter: Splits each document; ``None`` stores each document as one chunk.
        replace: Delete each source's older chunks (those ``replace_filter`` selects) just
            before its first window is written; the new chunks are upserted.
        replace_filter: The stored chunks of a source that ``replace`` deletes; default
            ``{"source": source}`` (the server narrows it to the caller's tenant).
        lock_timeout: Seconds to wait while another process writes to the store.
        progress: Show a progress bar on stderr.

    Returns:
        The :class:`IngestReport` (``chunks_deleted``: older chunks that the new version
        does not have).

    Raises:
        ValueError: neither ``writer`` nor ``store`` is given.
        StoreLockedError: another process still writes to the store after ``lock_timeout``.

    Example:
        >>> import numpy as np
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> class Ones:  # a stand-in embedder: every text gets the same vector
        ...     def warm_up(self):
        ...         pass
        ...     def embed_documents(self, texts):
        ...         return np.ones((len(texts), 4), dtype=np.float32) / 2
        >>> store = FaissStore()
        >>> docs = [Document(id="a.md", text="Zebras have stripes.")]
        >>> ingest_documents(docs, embedder=Ones(), store=store).chunks_written
        1
        >>> docs = [Document(id="a.md", text="Zebras eat grass.")]
        >>> report = ingest_documents(docs, embedder=Ones(), store=store, replace=True)
        >>> report.chunks_written, report.chunks_deleted, store.count()
        (1, 1, 1)
    """
    if writer is None and store is None:
        raise ValueError("ingest_documents needs a writer (writer.store) or a store to write to")
    started = time.perf_counter()
    target = writer if writer is not None else StoreWriter(store=store)
    records = writer_records(writer)
    report = IngestReport(sources=len(documents))
    with writer_lock(records.path if records else None, timeout=lock_timeout):
        target.warm_up()
        embedder.warm_up()
        if splitter is not None:
            splitter.warm_up()
        chunks_of: dict[str, list[Chunk]] = {}
        for document in documents:
            source = str(document.metadata.get("source", document.id))
            chunks_of.setdefault(source, []).extend(_split(document, splitter))

        def replace_source(source: str) -> None:
            ours = sorted({chunk.id for chunk in chunks_of[source]})
            kept = len(target.store.get(ours)) if ours else 0  # upserted, not deleted
            where = replace_filter(source) if replace_filter else {"source": source}
            removed = int(target.store.delete(filters=where))
            report.chunks_deleted += max(0, removed - kept)
            if records is not None:
                records.forget(source)

        recorded = RecordedWriter(
            target,
            None,
            pipeline_fingerprint="",
            report=report,
            policy="upsert" if replace else target.policy,
            before_first_write=replace_source if replace else None,
        )
        events = (
            event
            for source, chunks in chunks_of.items()
            for event in (*_stream.pieces(source, chunks), ("end", source, None))
        )
        embed = _stream.Embedding(embedder)
        with _bar(len(chunks_of), progress) as bar:
            _stream.write_windows(events, recorded, embed, window_size=target.batch_size, bar=bar)
        target.flush()
    report.seconds = time.perf_counter() - started
    return report


def _split(document: Document, splitter: Any) -> list[Chunk]:
    if splitter is not None:
        return list(splitter.split_document(document))
    return [
        Chunk.create(
            text=document.text, source_id=document.id, position=0, metadata=document.metadata
        )
    ]


# -- the store ----------------------------------------------------------------------------------
def store_stats(store: Any, *, filters: Filters | None = None) -> dict[str, Any]:
    """What ``rag stats``, ``GET /v1/stats`` and gRPC ``Stats`` say about a store.

    Args:
        store: The vector store (warmed up here).
        filters: Count only matching chunks (a tenant's scope). Sources are then counted
            when the store can list its chunks (:class:`~rag.core.protocols.Enumerable`),
            else ``None``.

    Returns:
        ``{"chunks", "sources", "store", "dimension"}`` (the ``rag stats --json`` shape);
        ``sources`` and ``dimension`` are ``None`` where the store cannot tell.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> store_stats(FaissStore())
        {'chunks': 0, 'sources': 0, 'store': 'store.faiss', 'dimension': None}
    """
    from rag.core.registry import default_registry

    store.warm_up()
    stats = store.stats() if isinstance(store, ReportsStats) else {"chunks": store.count()}
    if filters:
        sources = None
        if isinstance(store, Enumerable):
            node = parse_filter(filters)
            sources = len({c.source for c in store.iter_chunks() if matches(node, c.metadata)})
        stats = {
            "chunks": store.count(filters),
            "sources": sources,
            "dimension": stats.get("dimension"),
        }
    return {
        "chunks": stats.get("chunks"),
        "sources": stats.get("sources"),
        "store": default_registry.name_of(type(store)),
        "dimension": stats.get("dimension"),
    }


def flush_pipeline(pipeline: Pipeline) -> None:
    """Make what the components of ``pipeline`` buffer durable (``writer.store`` flushes its
    store: FAISS saves its index file)."""
    for component in pipeline.components.values():
        if isinstance(component, Flushable):
            component.flush()


def _bar(total: int, progress: bool) -> Any:
    return tqdm(total=total, desc="ingest", unit="file", disable=not progress, file=sys.stderr)
