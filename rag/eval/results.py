"""An eval's results: the per-query JSONL files of each variant and the summaries built on them.

Each variant writes one folder ``<out>/variants/<name>-<hash>/`` holding ``variant.json`` (its
name and parameters), ``retrieval.jsonl`` and, with ``answers:``, ``answers.jsonl``: one JSON
record per query, keyed by ``query_id``, appended as it is computed, so an interrupted run
resumes where it stopped. :func:`read_results` reads such a file (the report uses it too);
:func:`open_for_append` continues one.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from rag.eval.results import open_for_append, read_results
    >>> path = Path(tempfile.mkdtemp()) / "retrieval.jsonl"
    >>> _ = path.write_text('{"query_id": "q1", "metrics": {"ndcg@10": 1.0}}\\n{"query_id": "q2"')
    >>> sorted(read_results(path))  # the torn last line of an interrupted run is ignored
    ['q1']
    >>> with open_for_append(path) as out:
    ...     _ = out.write('{"query_id": "q2", "metrics": {}}\\n')
    >>> sorted(read_results(path))
    ['q1', 'q2']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rag.eval.config import EvalConfig

__all__ = [
    "ANSWERS_FILE",
    "RETRIEVAL_FILE",
    "EvalResult",
    "VariantResult",
    "open_for_append",
    "read_results",
]

RETRIEVAL_FILE = "retrieval.jsonl"
"""Per-query retrieval records of a variant: ranking, IR metrics, latency, top contexts."""
ANSWERS_FILE = "answers.jsonl"
"""Per-question answer records of a variant: answer, citations, answer metrics, errors."""


def read_results(path: str | Path) -> dict[str, dict[str, Any]]:
    """Records of a results JSONL file by query id (empty when the file does not exist).

    A torn last line (an interrupted write) is ignored; a later record of the same query wins.
    """
    path = Path(path)
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[str(record["query_id"])] = record
    return records


def open_for_append(path: str | Path) -> TextIO:
    """Open a results file for appending, ending a line torn by an interruption first."""
    path = Path(path)
    if path.exists() and path.stat().st_size:
        with path.open("rb") as raw:
            raw.seek(-1, 2)
            torn = raw.read(1) != b"\n"
        if torn:
            with path.open("a", encoding="utf-8") as handle:
                handle.write("\n")
    return path.open("a", encoding="utf-8")


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": round(ordered[-1], 3)}


@dataclass
class VariantResult:
    """Summary and per-query values of one variant.

    Example:
        >>> from pathlib import Path
        >>> result = VariantResult(
        ...     name="default", params={"retriever": "dense"}, metrics={"ndcg@10": 0.5},
        ...     per_query={"q1": {"ndcg@10": 0.5}}, latency={"retrieve": [0.002, 0.004]},
        ...     counts={"queries": 1}, directory=Path("out/variants/default-0a1b2c3d"))
        >>> result.to_dict()["latency_ms"]["retrieve"]["p50"]
        4.0
    """

    name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float | None]]
    latency: dict[str, list[float]]
    counts: dict[str, int]
    directory: Path
    ingest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metrics": self.metrics,
            "params": self.params,
            "counts": self.counts,
            "latency_ms": {
                stage: _percentiles([v * 1000 for v in values])
                for stage, values in self.latency.items()
            },
            "ingest": self.ingest,
            "results": str(self.directory),
        }

    def records(self, name: str) -> dict[str, dict[str, Any]]:
        """The records of this variant's results file ``name`` (:data:`RETRIEVAL_FILE`, ...)."""
        return read_results(self.directory / name)


@dataclass
class EvalResult:
    """Everything ``rag eval`` reports."""

    config: EvalConfig
    variants: list[VariantResult]
    out_dir: Path
    seconds: float = 0.0

    @property
    def primary_metric(self) -> str:
        return self.config.primary_metric

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for variant in self.variants:
            names += [n for n in variant.metrics if n not in names]
        return names
