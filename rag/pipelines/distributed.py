"""``rag ingest --runner ray``: the same YAML ingestion pipeline on Ray Data.

Stages:

1. the driver expands the paths and, with the ingestion records, drops unchanged sources
   (exactly as the local runner does: the same records, the same pipeline fingerprint);
2. **load and split** run as Ray tasks on CPUs, one source per row in, chunks out;
3. **embed** runs on an actor pool (one GPU per actor when the cluster has GPUs, else
   ``num_embedders`` CPU actors), in batches of ``writer.batch_size`` chunks;
4. **write**: the driver records every chunk id before its batch is written (the crash-safe
   order of :mod:`rag.pipelines.records`); the batch is then written by the driver itself (FAISS,
   milvus-lite: one process owns the files) or, for a store that several processes may write
   at once (a Milvus or Weaviate server), by a pool of ``num_writers`` writer actors in
   parallel. Each source is committed once all of its chunks are written, after the dataset
   is exhausted and every writer has finished.

Components travel to workers as their ``to_dict()`` form and are rebuilt there from the
registry, so nothing with a lock, a model or a connection is pickled.

Example:
    >>> # Needs a Ray cluster (address='auto').
    >>> from rag.core import PipelineFile
    >>> from rag.pipelines.distributed import run_ingest_ray
    >>> app = PipelineFile.load("examples/ingest.yaml")
    >>> report = run_ingest_ray(app.pipeline("ingest"), ["docs/"], address="auto")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rag.core.component import Component
from rag.core.deps import require
from rag.core.documents import Chunk
from rag.core.errors import LoaderError, PipelineError
from rag.core.pipeline import Pipeline
from rag.core.protocols import ConcurrentWriters, Flushable
from rag.pipelines import _stream
from rag.pipelines.ingest import (
    IngestReport,
    check_ingest_pipeline,
    flush_pipeline,
    ingest_stages,
)
from rag.pipelines.loaders import SUPPORTED_EXTENSIONS, expand_sources
from rag.pipelines.recorded import RecordedWriter, open_recorded_writer, plan_sources
from rag.pipelines.records import writer_lock

DEFAULT_WRITERS = 4  # writer actors for a store that several processes may write at once


@functools.lru_cache(maxsize=8)
def _component(spec: str) -> Component:
    """Rebuild (once per worker process) and warm up a component from its ``to_dict`` JSON."""
    from rag.core.component import build_component
    from rag.core.registry import default_registry

    data = json.loads(spec)
    cls = default_registry.resolve(data["type"])
    component = build_component(cls, dict(data["init_parameters"]), field=data["type"])
    component.warm_up()
    return component


def _load_and_split(batch: dict[str, np.ndarray], *, loader: str, splitter: str) -> dict:
    """Ray task: sources in, one row per chunk (or per error) out."""
    load, split = _component(loader), _component(splitter)
    rows: dict[str, list[Any]] = {k: [] for k in ("source", "id", "text", "metadata", "error")}

    def add(source: str, chunk_id: str, text: str, metadata: str, error: str) -> None:
        for key, value in zip(rows, (source, chunk_id, text, metadata, error)):
            rows[key].append(value)

    for source in batch["source"]:
        source = str(source)
        try:
            for item in load.load(source):  # type: ignore[attr-defined]
                if isinstance(item, LoaderError):
                    add(source, "", item.source, "", item.reason)  # a row-level error
                    continue
                for chunk in split.split_document(item):  # type: ignore[attr-defined]
                    add(source, chunk.id, chunk.text, json.dumps(chunk.metadata), "")
        except LoaderError as err:
            add(source, "", "", "", "\x00failed\x00" + err.reason)  # the whole source failed
    return {key: np.array(values, dtype=object) for key, values in rows.items()}


class _Embed:
    """Ray actor: embeds the ``text`` column of chunk rows (error rows get a zero vector)."""

    def __init__(self, embedder: str) -> None:
        self.embedder: Any = _component(embedder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        wanted = [i for i, error in enumerate(batch["error"]) if not error]
        vectors = np.zeros((len(batch["text"]), self.embedder.dimension), dtype=np.float32)
        if wanted:
            # as the local runner: each chunk in context when the embedder renders one
            chunks = [
                Chunk(
                    id=str(batch["id"][i]),
                    text=str(batch["text"][i]),
                    metadata=json.loads(str(batch["metadata"][i])),
                )
                for i in wanted
            ]
            texts = _stream.index_texts(self.embedder, chunks)
            vectors[wanted] = self.embedder.embed_documents(texts)
        return {**batch, "embedding": vectors}


class _Writer:
    """A Ray actor that writes batches to its own connection to a shared (server) store."""

    def __init__(self, store: str, policy: str) -> None:
        self.store = _component(store)
        self.policy = policy

    def write(self, chunks: list[Chunk]) -> int:
        return int(self.store.write(chunks, policy=self.policy))

    def flush(self) -> None:
        if isinstance(self.store, Flushable):
            self.store.flush()


class _ParallelWrites:
    """Round-robin batches over writer actors, with at most two batches in flight per actor."""

    def __init__(self, ray: Any, store: Component, policy: str, size: int) -> None:
        self.ray = ray
        spec = json.dumps(store.to_dict())
        actor = ray.remote(num_cpus=0)(_Writer)
        self.actors = [actor.remote(spec, policy) for _ in range(size)]
        self.pending: dict[Any, int] = {}  # object ref -> chunks in its batch
        self.turn = 0
        self.started = False

    def submit(self, chunks: list[Chunk], recorded: RecordedWriter) -> None:
        while len(self.pending) >= 2 * len(self.actors):
            self._collect(recorded, num_returns=1)
        actor = self.actors[self.turn % len(self.actors)]
        self.turn += 1
        self.pending[actor.write.remote(chunks)] = len(chunks)

    def _collect(self, recorded: RecordedWriter, num_returns: int) -> None:
        done, _ = self.ray.wait(list(self.pending), num_returns=num_returns)
        for ref in done:
            recorded.count(self.pending.pop(ref), self.ray.get(ref))

    def finish(self, recorded: RecordedWriter) -> None:
        """Wait for every write (raising the first error) and flush every writer."""
        if self.pending:
            self._collect(recorded, num_returns=len(self.pending))
        self.ray.get([actor.flush.remote() for actor in self.actors])


def _writer_count(store: Component, num_writers: int | None) -> int:
    """Writer actors to use: 0 writes on the driver."""
    shared = isinstance(store, ConcurrentWriters) and bool(store.concurrent_writers)
    if num_writers is None:
        return DEFAULT_WRITERS if shared else 0
    if num_writers < 0:
        raise PipelineError(f"num_writers must be 0 or more, got {num_writers}")
    if num_writers and not shared:
        raise PipelineError(
            f"{type(store).__name__} cannot take writes from several processes (its files "
            "belong to one process); write on the driver with num_writers=0 (--writers 0), or "
            "use a Milvus or Weaviate server for parallel writers"
        )
    return num_writers


def _gpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def run_ingest_ray(
    pipeline: Pipeline,
    paths: Sequence[str | Path],
    *,
    mode: str = "incremental",
    address: str | None = None,
    num_embedders: int | None = None,
    num_writers: int | None = None,
    pattern: str = "**/*",
    include_hidden: bool = False,
    progress: bool = True,
    lock_timeout: float = 10.0,
) -> IngestReport:
    """Ingest files and directories on a Ray cluster (or a local Ray instance).

    Args:
        pipeline: ``loader -> splitter -> embedder -> writer.store``, as for the local runner.
        paths: Files and directories, readable from every worker (a shared filesystem on a
            real cluster).
        mode: ``incremental``, ``full`` or ``none`` (see :mod:`rag.pipelines.ingest`).
        address: Ray address (``auto``, ``ray://host:10001``); ``None`` uses the instance this
            process already joined, else starts a local one (shut down at the end).
        num_embedders: Embedding actors; default one per GPU, or one on a CPU-only cluster.
        num_writers: Writer actors for a store that several processes may write at once (a
            Milvus or Weaviate server); default 4 for such a store, else 0 (the driver writes).
        pattern: Glob pattern for directories.
        include_hidden: Also read hidden files and folders inside the directories
            (``.git``, ``.obsidian``); a hidden path given itself is always read.
        progress: Show progress on stderr.
        lock_timeout: Seconds to wait while another run writes to the same store.

    Returns:
        The :class:`~rag.pipelines.ingest.IngestReport` (same counters as the local runner).

    Raises:
        PipelineError: the pipeline is not ``loader -> splitter -> embedder -> writer``.
        MissingDependencyError: Ray Data is not installed (``pip install 'ragline[ray]'``).
        StoreLockedError: another run still writes to the store after ``lock_timeout``.
    """
    started = time.perf_counter()
    check_ingest_pipeline(pipeline, mode)
    stages = ingest_stages(pipeline)
    if stages is None:
        raise PipelineError(
            f"pipeline '{pipeline.name}' cannot run on Ray: the Ray runner needs the shape "
            f"loader -> splitter -> embedder -> writer.store (it has: "
            f"{', '.join(pipeline.components)}); use --runner local"
        )
    writers = _writer_count(stages.writer.store, num_writers)
    ray = require("ray", package="ray[data]", extra="ray", purpose="--runner ray")
    require("ray.data", package="ray[data]", extra="ray", purpose="--runner ray")

    files, errors = expand_sources(
        paths, pattern=pattern, extensions=SUPPORTED_EXTENSIONS, include_hidden=include_hidden
    )
    report = IngestReport(sources=len(files), errors=list(errors))
    # The local runner's guards: one writer at a time, and records that claim chunks the store
    # lost do not count as unchanged.
    lock_path = None if mode == "none" else stages.writer.records.path
    with writer_lock(lock_path, timeout=lock_timeout):
        recorded = open_recorded_writer(pipeline, stages.writer, mode, files, paths, report)
        todo: dict[str, str | None] = {}
        plan = plan_sources(
            files,
            recorded.records,
            pipeline_fingerprint=recorded.fingerprint,
            store=recorded.store,
        )
        for source, digest, unchanged in plan:
            if unchanged is None:
                todo[source] = digest
            else:
                report.chunks_skipped += unchanged
        if todo:
            started_here = not ray.is_initialized()
            if started_here:
                ray.init(address=address, log_to_driver=False)
            try:
                failed = _run_dataset(
                    ray,
                    stages,
                    list(todo),
                    recorded,
                    num_embedders=num_embedders,
                    writers=writers,
                    progress=progress,
                )
            finally:
                if started_here:
                    ray.shutdown()
            for source, digest in todo.items():
                if source not in failed:
                    recorded.finish(source, digest)
        flush_pipeline(pipeline)
    report.seconds = time.perf_counter() - started
    return report


def _run_dataset(
    ray: Any,
    stages: Any,
    sources: list[str],
    recorded: RecordedWriter,
    *,
    num_embedders: int | None,
    writers: int,
    progress: bool,
) -> set[str]:
    """Run load/split/embed on Ray; write on the driver or on writer actors.

    Returns the sources that failed.
    """
    import ray.data

    def spec(component: Component) -> str:
        return json.dumps(component.to_dict())

    gpus = _gpus(ray)
    if num_embedders is not None and num_embedders < 1:
        raise PipelineError(f"num_embedders must be at least 1, got {num_embedders}")
    actors = num_embedders or max(1, gpus)
    window = stages.writer.batch_size
    dataset = ray.data.from_items(
        [{"source": s} for s in sources], override_num_blocks=max(1, min(len(sources), 64))
    )
    dataset = dataset.map_batches(
        _load_and_split,
        batch_size=1,
        fn_kwargs={"loader": spec(stages.loader), "splitter": spec(stages.splitter)},
    )
    dataset = dataset.map_batches(
        _Embed,
        fn_constructor_kwargs={"embedder": spec(stages.embedder)},
        batch_size=window,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
    )
    parallel = (
        _ParallelWrites(ray, stages.writer.store, stages.writer.policy, writers)
        if writers
        else None
    )
    failed: set[str] = set()
    report = recorded.report
    with tqdm(desc="ingest (ray)", unit="chunk", disable=not progress, file=sys.stderr) as bar:
        for batch in dataset.iter_batches(batch_size=window, batch_format="numpy"):
            items: list[tuple[str, Chunk]] = []
            for i, source in enumerate(batch["source"]):
                source, error = str(source), str(batch["error"][i])
                if error.startswith("\x00failed\x00"):
                    failed.add(source)
                    report.errors.append(
                        {"source": source, "error": error.removeprefix("\x00failed\x00")}
                    )
                elif error:
                    report.errors.append({"source": str(batch["text"][i]), "error": error})
                else:
                    chunk = Chunk(
                        id=str(batch["id"][i]),
                        text=str(batch["text"][i]),
                        metadata=json.loads(str(batch["metadata"][i])),
                        embedding=np.asarray(batch["embedding"][i], dtype=np.float32),
                    )
                    items.append((source, chunk))
            if parallel is None or not parallel.started:
                # With parallel writers, the driver writes the first batch itself, so that the
                # collection exists (with its schema) before several writers race to create it.
                recorded.write(items, embed=None)
                if parallel is not None:
                    parallel.started = bool(items)
            elif items:
                recorded.record(items)
                parallel.submit([chunk for _, chunk in items], recorded)
            bar.update(len(items))
    if parallel is not None:
        parallel.finish(recorded)
    return failed
