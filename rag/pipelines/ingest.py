"""Run an ingestion pipeline over files and directories, and report what happened.

The pipeline's first component takes ``sources`` (file paths); sources are fed in batches so
memory stays bounded, a source that fails is recorded in the report and the run goes on, and
stores are flushed at the end.

Example:
    >>> from rag.core import PipelineFile
    >>> from rag.pipelines.ingest import run_ingest
    >>> app = PipelineFile.load("examples/ingest.yaml")  # doctest: +SKIP
    >>> report = run_ingest(app.pipeline("ingest"), ["examples/corpus"])  # doctest: +SKIP
    >>> report.chunks_written  # doctest: +SKIP
    42
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.core.errors import PipelineError
from rag.core.pipeline import Pipeline
from rag.pipelines.loaders import SUPPORTED_EXTENSIONS, expand_sources

MODES = ("incremental", "full", "none")


@dataclass
class IngestReport:
    """What an ingest run did; ``to_dict()`` is the ``rag ingest --json`` shape."""

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


def _first_component_takes_sources(pipeline: Pipeline) -> None:
    free = pipeline.unconnected_inputs()
    if not any("sources" in sockets for sockets in free.values()):
        raise PipelineError(
            f"pipeline '{pipeline.name}' cannot ingest files: no component takes 'sources' "
            "(start the pipeline with a loader such as loader.files)"
        )


def run_ingest(
    pipeline: Pipeline,
    paths: Sequence[str | Path],
    *,
    batch_size: int = 16,
    pattern: str = "**/*",
    mode: str = "none",
    progress: bool = True,
) -> IngestReport:
    """Ingest files and directories with ``pipeline``.

    Args:
        pipeline: An ingestion pipeline whose first component takes ``sources``.
        paths: Files and directories (directories are searched with ``pattern``).
        batch_size: Sources per pipeline run.
        pattern: Glob pattern for directories.
        mode: Record-keeping mode (``incremental``, ``full`` or ``none``).
        progress: Show a progress bar on stderr.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    started = time.perf_counter()
    pipeline.validate()
    _first_component_takes_sources(pipeline)
    files, errors = expand_sources(paths, pattern=pattern, extensions=SUPPORTED_EXTENSIONS)
    report = IngestReport(sources=len(files), errors=list(errors))
    pipeline.warm_up()
    with tqdm(
        total=len(files), desc="ingest", unit="file", disable=not progress, file=sys.stderr
    ) as bar:
        for start in range(0, len(files), batch_size):
            batch = files[start : start + batch_size]
            outputs = pipeline.run(sources=batch)
            _collect(outputs, report)
            bar.update(len(batch))
    _flush(pipeline)
    report.seconds = time.perf_counter() - started
    return report


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
