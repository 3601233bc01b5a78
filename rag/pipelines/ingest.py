"""Run an ingestion pipeline over files and directories, and report what happened.

:func:`run_ingest` is the local runner behind ``rag ingest``. For the usual pipeline
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
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath
from typing import Any

from tqdm import tqdm

from rag.core.documents import Chunk
from rag.core.errors import ConfigError, LoaderError, PipelineError
from rag.core.pipeline import Pipeline
from rag.pipelines.loaders import (
    SUPPORTED_EXTENSIONS,
    describe_failure,
    expand_sources,
    per_source,
)
from rag.pipelines.records import (
    VECTOR_NEUTRAL_PARAMETERS,
    RecordStore,
    file_hash,
    fingerprint,
    writer_lock,
)
from rag.pipelines.writer import StoreWriter

MODES = ("incremental", "full", "none")
logger = logging.getLogger("rag.ingest")


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
    embedder: Any
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
    if not (
        callable(getattr(loader, "load", None))
        and callable(getattr(splitter, "split_document", None))
        and callable(getattr(embedder, "embed_documents", None))
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
            k: v for k, v in data["init_parameters"].items() if k not in VECTOR_NEUTRAL_PARAMETERS
        }
        parts.append([name, data["type"], params])
    return fingerprint(parts)


def _check_mode(mode: str, writer: StoreWriter | None, pipeline: Pipeline) -> None:
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
    free = pipeline.unconnected_inputs()
    if not any("sources" in sockets for sockets in free.values()):
        raise PipelineError(
            f"pipeline '{pipeline.name}' cannot ingest files: no component takes 'sources' "
            "(start the pipeline with a loader such as loader.files)"
        )


def is_under(source: str, paths: Iterable[str | Path]) -> bool:
    """Whether ``source`` is one of ``paths`` or inside one of them (as given, not resolved)."""
    candidate = PurePath(source)
    return any(candidate == PurePath(p) or PurePath(p) in candidate.parents for p in paths)


# -- writes with record keeping -----------------------------------------------------------------
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
    chunks of sources under ``paths`` that are gone. Shared by the local and the Ray runner."""
    writer.warm_up()
    records = writer.records if mode != "none" else None
    fingerprint = pipeline_fingerprint(pipeline)
    recorded = RecordedWriter(writer, records, pipeline_fingerprint=fingerprint, report=report)
    if mode == "full":
        prune_missing(files, paths, recorded)
    return recorded


class RecordedWriter:
    """Writes chunks to the store in the crash-safe order of :mod:`rag.pipelines.records`.

    Shared by the local and the Ray runner; ``records=None`` (mode ``none``) writes plainly.

    Args:
        writer: The pipeline's ``writer.store``.
        records: The record store, or ``None``.
        pipeline_fingerprint: See :func:`pipeline_fingerprint`.
        report: Counters are added here.
    """

    def __init__(
        self,
        writer: StoreWriter,
        records: RecordStore | None,
        *,
        pipeline_fingerprint: str,
        report: IngestReport,
    ) -> None:
        self.writer = writer
        self.store: Any = writer.store
        self.records = records
        self.fingerprint = pipeline_fingerprint
        self.report = report
        self._begun: dict[str, bool] = {}  # source -> stored vectors reusable

    def begin(self, source: str) -> None:
        if self.records is not None and source not in self._begun:
            self._begun[source] = self.records.begin(source, fingerprint=self.fingerprint)

    def write(
        self,
        items: Sequence[tuple[str, Chunk]],
        embed: Callable[[list[Chunk]], None] | None,
    ) -> None:
        """Record, embed (when ``embed`` is given) and write ``(source, chunk)`` items."""
        if not items:
            return
        for source, _ in items:
            self.begin(source)
        chunks = [chunk for _, chunk in items]
        to_write = chunks
        if self.records is not None and embed is not None:
            to_write = self._reuse(items)
        if embed is not None:
            todo = [c for c in to_write if c.embedding is None]
            if todo:
                embed(todo)
        self.record(items)
        written = self.store.write(to_write, policy=self.writer.policy) if to_write else 0
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

    def _reuse(self, items: Sequence[tuple[str, Chunk]]) -> list[Chunk]:
        """Attach stored vectors to chunks whose id is recorded; drop those stored as they are."""
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
            else:
                chunk.embedding = old.embedding  # same id and text: same vector
                keep.append(chunk)
        return keep

    def finish(self, source: str, content_hash: str | None) -> None:
        """All chunks of ``source`` are written: delete its stale ids and commit it."""
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

    With a store that lists its ids (``ids()``, read once per run), every recorded id is
    checked; otherwise the store's count of chunks with that ``source`` must reach the
    recorded count.

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
            lister = getattr(self.store, "ids", None)
            if callable(lister):
                try:
                    self._ids = set(lister())
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


# -- the local runner ---------------------------------------------------------------------------
def run_ingest(
    pipeline: Pipeline,
    paths: Sequence[str | Path],
    *,
    mode: str = "incremental",
    window_size: int | None = None,
    batch_size: int = 16,
    pattern: str = "**/*",
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
    pipeline.validate()
    _first_component_takes_sources(pipeline)
    found = find_writer(pipeline)
    writer = found[1] if found else None
    _check_mode(mode, writer, pipeline)
    files, errors = expand_sources(paths, pattern=pattern, extensions=SUPPORTED_EXTENSIONS)
    report = IngestReport(sources=len(files), errors=list(errors))
    if writer is None:  # mode none, a pipeline that writes nowhere we know of
        _run_batches(pipeline, files, batch_size=batch_size, progress=progress, report=report)
        report.seconds = time.perf_counter() - started
        return report
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
        with tqdm(
            total=len(files), desc="ingest", unit="file", disable=not progress, file=sys.stderr
        ) as bar:
            if stages is not None:
                window = window_size or writer.batch_size
                _stream(stages, plan, recorded, window_size=window, bar=bar)
            else:
                _run_per_source(pipeline, found[0] if found else "", plan, recorded, bar=bar)
            bar.update(bar.total - bar.n)
        _flush(pipeline)
    report.seconds = time.perf_counter() - started
    return report


_DONE = object()
_PIECE = 256  # chunks per queue event


def _produce(
    stages: IngestStages,
    plan: Iterator[tuple[str, str | None, int | None]],
    out: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    """Background thread: hash, load and split sources; put events on ``out`` in order."""

    def put(event: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(event, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        warmed = False
        for source, digest, unchanged in plan:
            if unchanged is not None:
                if not put(("skipped", source, unchanged)):
                    return
                continue
            if not warmed:  # models load only when something needs ingesting
                stages.loader.warm_up()
                stages.splitter.warm_up()
                stages.embedder.warm_up()
                warmed = True
            try:
                for item in stages.loader.load(source):
                    if isinstance(item, LoaderError):
                        if not put(("row_error", item.source, item.reason)):
                            return
                        continue
                    chunks = stages.splitter.split_document(item)
                    # Events of at most _PIECE chunks: the queue's backlog stays bounded even
                    # when every pending document is huge.
                    for start in range(0, max(len(chunks), 1), _PIECE):
                        if not put(("chunks", source, chunks[start : start + _PIECE])):
                            return
            except LoaderError as err:
                if not put(("failed", source, err)):
                    return
                continue
            except Exception as err:  # any loader or splitter failure is reported per source
                if not per_source(err):
                    raise
                if not put(("failed", source, LoaderError(source, describe_failure(err)))):
                    return
                continue
            if not put(("end", source, digest)):
                return
        put(_DONE)
    except BaseException as err:  # raised again in the main thread
        put(("crashed", "", err))


def _stream(
    stages: IngestStages,
    plan: Iterator[tuple[str, str | None, int | None]],
    recorded: RecordedWriter,
    *,
    window_size: int,
    bar: Any,
) -> None:
    events: queue.Queue[Any] = queue.Queue(maxsize=256)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce, args=(stages, plan, events, stop), name="ragline-split", daemon=True
    )
    producer.start()
    embedder = stages.embedder

    def embed(chunks: list[Chunk]) -> None:
        vectors = embedder.embed_documents([c.text for c in chunks])
        for chunk, vector in zip(chunks, vectors):
            chunk.embedding = vector

    report = recorded.report
    try:
        finished = False
        # Chunks past a full window (a huge document splits into many): they start the next
        # window, so every window holds at most window_size chunks.
        carry: list[tuple[str, Chunk]] = []
        while not finished or carry:
            window, carry = carry[:window_size], carry[window_size:]
            after: list[tuple[str, str, Any]] = []  # source ends and failures, in order
            while not finished and not carry and len(window) < window_size:
                event = events.get()
                if event is _DONE:
                    finished = True
                    break
                kind, source, payload = event
                if kind == "crashed":
                    raise payload
                if kind == "chunks":
                    room = window_size - len(window)
                    window.extend((source, chunk) for chunk in payload[:room])
                    carry = [(source, chunk) for chunk in payload[room:]]
                elif kind == "row_error":
                    report.errors.append({"source": source, "error": payload})
                elif kind == "skipped":
                    report.chunks_skipped += payload
                    bar.update(1)
                else:
                    after.append(event)
            recorded.write(window, embed)
            if carry:
                bar.set_postfix_str(f"{len(carry)} chunks of {carry[0][0]} to go", refresh=True)
            for kind, source, payload in after:
                if kind == "end":
                    recorded.finish(source, payload)
                else:  # failed: keep it pending; what it wrote is recorded for the next run
                    report.errors.append({"source": payload.source, "error": payload.reason})
                bar.update(1)
    finally:
        stop.set()
        producer.join(timeout=10)


def _run_per_source(
    pipeline: Pipeline,
    writer_name: str,
    plan: Iterator[tuple[str, str | None, int | None]],
    recorded: RecordedWriter,
    *,
    bar: Any,
) -> None:
    """Pipelines of another shape: run everything up to the writer once per source."""
    upstream = _without(pipeline, writer_name)
    feeder = next(c for c in pipeline.connections if c.receiver == writer_name)
    for source, digest, unchanged in plan:
        if unchanged is not None:
            recorded.report.chunks_skipped += unchanged
            bar.update(1)
            continue
        outputs = upstream.run(sources=[source], include_outputs_from=[feeder.sender])
        failed = False
        for values in outputs.values():
            for error in values.get("errors", []):
                recorded.report.errors.append(error)
                failed = failed or error.get("source") == source
        chunks = outputs.get(feeder.sender, {}).get(feeder.output, [])
        recorded.write([(source, c) for c in chunks], embed=None)
        if not failed:
            recorded.finish(source, digest)
        bar.update(1)


def _without(pipeline: Pipeline, name: str) -> Pipeline:
    sub = Pipeline(name=f"{pipeline.name}-upstream")
    for component_name, component in pipeline.components.items():
        if component_name != name:
            sub.add_component(component_name, component)
    for c in pipeline.connections:
        if name not in (c.sender, c.receiver):
            sub.connect(f"{c.sender}.{c.output}", f"{c.receiver}.{c.input}")
    return sub


def _run_batches(
    pipeline: Pipeline, files: list[str], *, batch_size: int, progress: bool, report: IngestReport
) -> None:
    pipeline.warm_up()
    with tqdm(
        total=len(files), desc="ingest", unit="file", disable=not progress, file=sys.stderr
    ) as bar:
        for start in range(0, len(files), batch_size):
            batch = files[start : start + batch_size]
            _collect(pipeline.run(sources=batch), report)
            bar.update(len(batch))
    _flush(pipeline)


def _collect(outputs: dict[str, dict[str, Any]], report: IngestReport) -> None:
    for values in outputs.values():
        report.errors.extend(values.get("errors", []))
        report.chunks_written += int(values.get("written", 0))
        report.chunks_skipped += int(values.get("skipped", 0))
        report.chunks_deleted += int(values.get("deleted", 0))


def _flush(pipeline: Pipeline) -> None:
    for component in pipeline.components.values():
        flush = getattr(component, "flush", None)
        if callable(flush):
            flush()
