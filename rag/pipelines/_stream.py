"""The stages every ingest shares: events in, windows of chunks embedded and written out.

An ingest is a stream of *events*, one tuple ``(kind, source, payload)`` each:

- ``("chunks", source, [Chunk, ...])``: chunks of ``source``, in order;
- ``("end", source, content_hash)``: every chunk of ``source`` was sent (commit it);
- ``("failed", source, LoaderError)``: ``source`` failed (its previous chunks stay);
- ``("row_error", source, reason)``: one row of a source failed, the rest goes on;
- ``("skipped", source, n)``: ``source`` is unchanged, ``n`` chunks already stored.

:func:`file_events` makes them from files (a background thread hashes, loads and splits while
the caller embeds); :func:`rag.pipelines.ingest.ingest_documents` makes them from documents
already in memory. :func:`write_windows` consumes either: it embeds and writes windows of at
most ``window_size`` chunks through a :class:`~rag.pipelines.ingest.RecordedWriter` (records,
policy, lost-chunk reuse) and commits each source once its last window is written.

Pipelines of another shape run through :func:`run_per_source` (with records) or
:func:`run_batches` (without a ``writer.store``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rag.core.documents import Chunk
from rag.core.errors import LoaderError
from rag.core.pipeline import Pipeline
from rag.pipelines.loaders import describe_failure, per_source

if TYPE_CHECKING:
    from rag.pipelines.ingest import IngestReport, IngestStages
    from rag.pipelines.recorded import RecordedWriter

Event = tuple[str, str, Any]
Plan = Iterator[tuple[str, str | None, int | None]]

PIECE = 256
"""Chunks per ``chunks`` event: a queue's backlog stays bounded even when documents are huge."""

_DONE = object()


def pieces(source: str, chunks: list[Chunk]) -> Iterator[Event]:
    """``chunks`` events of at most :data:`PIECE` chunks (one, possibly empty, at least)."""
    for start in range(0, max(len(chunks), 1), PIECE):
        yield ("chunks", source, chunks[start : start + PIECE])


def _produce(
    stages: IngestStages, plan: Plan, out: queue.Queue[Any], stop: threading.Event
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
                    for event in pieces(source, stages.splitter.split_document(item)):
                        if not put(event):
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
    except BaseException as err:  # raised again in the consuming thread
        put(("crashed", "", err))


@contextlib.contextmanager
def file_events(stages: IngestStages, plan: Plan) -> Iterator[Iterator[Event]]:
    """The events of ``plan``'s files, loaded and split by a background thread.

    The thread stops when the block ends (also on an error in the block); an error in the
    thread is raised by the iterator.
    """
    events: queue.Queue[Any] = queue.Queue(maxsize=256)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce, args=(stages, plan, events, stop), name="ragline-split", daemon=True
    )
    producer.start()

    def consume() -> Iterator[Event]:
        while (event := events.get()) is not _DONE:
            if event[0] == "crashed":
                raise event[2]
            yield event

    try:
        yield consume()
    finally:
        stop.set()
        producer.join(timeout=10)


@runtime_checkable
class IndexesInContext(Protocol):
    """An embedder that embeds a chunk as a text it renders from the chunk (contextual
    indexing, e.g. ``embedder.sentence_transformers`` with ``context_template``)."""

    def index_text(self, chunk: Chunk) -> str: ...


def index_texts(embedder: Any, chunks: list[Chunk]) -> list[str]:
    """What ``embedder`` embeds ``chunks`` as: each chunk's text, or with an embedder that
    :class:`IndexesInContext`, its ``index_text`` (the chunk under its document's title, ...).

    Example:
        >>> chunk = Chunk.create(text="Kickoff.", source_id="a", position=0,
        ...                      metadata={"title": "Super Bowl"})
        >>> index_texts(object(), [chunk])
        ['Kickoff.']
    """
    if isinstance(embedder, IndexesInContext):
        return [embedder.index_text(c) for c in chunks]
    return [c.text for c in chunks]


class Embedding:
    """Sets ``chunk.embedding`` of every chunk it is given, in one call, of what ``embedder``
    embeds the chunk as (:func:`index_texts`: its text in context when the embedder
    :class:`IndexesInContext`). :meth:`text_of` is that text for one chunk: a stored vector is
    reused only for a chunk embedded as the same text (not when only its title changed).

    Example:
        >>> chunk = Chunk.create(text="Kickoff.", source_id="a", position=0)
        >>> Embedding(object()).text_of(chunk)
        'Kickoff.'
    """

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def __call__(self, chunks: list[Chunk]) -> None:
        vectors = self.embedder.embed_documents(index_texts(self.embedder, chunks))
        for chunk, vector in zip(chunks, vectors):
            chunk.embedding = vector

    def text_of(self, chunk: Chunk) -> str:
        """What ``chunk`` is embedded as."""
        return index_texts(self.embedder, [chunk])[0]


def write_windows(
    events: Iterable[Event],
    recorded: RecordedWriter,
    embed: Embedding,
    *,
    window_size: int,
    bar: Any,
) -> None:
    """Embed and write the chunks of ``events`` in windows of at most ``window_size`` chunks.

    A source is committed (:meth:`RecordedWriter.finish`) only after the window holding its
    last chunk is written; a failed source is reported and stays pending.
    """
    report = recorded.report
    stream = iter(events)
    finished = False
    # Chunks past a full window (a huge document splits into many): they start the next
    # window, so every window holds at most window_size chunks.
    carry: list[tuple[str, Chunk]] = []
    while not finished or carry:
        window, carry = carry[:window_size], carry[window_size:]
        after: list[Event] = []  # source ends and failures, in order
        while not finished and not carry and len(window) < window_size:
            event = next(stream, None)
            if event is None:
                finished = True
                break
            kind, source, payload = event
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


def run_per_source(
    pipeline: Pipeline, writer_name: str, plan: Plan, recorded: RecordedWriter, *, bar: Any
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


def run_batches(
    pipeline: Pipeline, files: list[str], *, batch_size: int, report: IngestReport, bar: Any
) -> None:
    """A pipeline that writes nowhere ingest knows of (mode ``none``): run it on batches of
    ``batch_size`` sources and add what its components report."""
    pipeline.warm_up()
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        for values in pipeline.run(sources=batch).values():
            report.errors.extend(values.get("errors", []))
            report.chunks_written += int(values.get("written", 0))
            report.chunks_skipped += int(values.get("skipped", 0))
            report.chunks_deleted += int(values.get("deleted", 0))
        bar.update(len(batch))
