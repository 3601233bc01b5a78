"""The batch evaluation runner behind ``rag eval eval.yaml``: runs every variant's stages.

The eval file (:mod:`rag.eval.config`) names a dataset, a pipeline file and the variants to
compare (:mod:`rag.eval.variants`). Each distinct ingestion configuration is ingested once into
``<out>/stores/<hash>/`` and reused by every variant that shares it; variants run back to back
by store, each through the stages of :mod:`rag.eval.stages` (retrieve, answer, score), whose
per-query results go to ``<out>/variants/<name>-<hash>/*.jsonl`` (:mod:`rag.eval.results`) as
they are computed, so an interrupted run resumes where it stopped.

The names this module exported before the split (``load_eval_config``, ``EvalConfig``,
``Variant``, ``ingest_key``, ``rank_documents``, ...) are still importable from it.

Example:
    >>> # Needs the Cranfield dataset of ../shared/data.
    >>> from rag.eval.runner import load_eval_config, run_eval
    >>> config = load_eval_config("examples/eval/cranfield.yaml")  # doctest: +SKIP
    >>> result = run_eval(config, out_dir=".rag/eval/cranfield")  # doctest: +SKIP
    >>> result.variants[0].metrics["ndcg@10"]  # doctest: +SKIP
    0.38...
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from rag.core.pipeline import PipelineFile
from rag.eval.config import (
    DEFAULT_METRICS,
    TOP_LEVEL,
    AnswerConfig,
    EvalConfig,
    JudgeConfig,
    load_eval_config,
)
from rag.eval.metrics import ANSWER_METRICS
from rag.eval.results import (
    ANSWERS_FILE,
    RETRIEVAL_FILE,
    EvalResult,
    VariantResult,
    read_results,
)
from rag.eval.stages import (
    answer_metrics,
    answer_stage,
    ingest_stage,
    rank_documents,
    retrieve_stage,
    stage_latencies,
    summarize,
)
from rag.eval.variants import (
    RETRIEVER_KEY,
    Variant,
    ingest_key,
    slug,
    variant_key,
    variant_pipeline_file,
)

__all__ = [
    "ANSWER_METRICS",
    "DEFAULT_METRICS",
    "RETRIEVER_KEY",
    "TOP_LEVEL",
    "AnswerConfig",
    "EvalConfig",
    "EvalResult",
    "JudgeConfig",
    "Variant",
    "VariantResult",
    "answer_metrics",
    "ingest_key",
    "load_eval_config",
    "rank_documents",
    "read_results",
    "run_eval",
    "variant_key",
]


def run_eval(
    config: EvalConfig,
    *,
    out_dir: str | Path,
    progress: bool = True,
) -> EvalResult:
    """Run every variant of ``config``, resuming from results already in ``out_dir``.

    Args:
        config: From :func:`load_eval_config`.
        out_dir: Stores, per-query results and reports go here.
        progress: tqdm progress bars on stderr.

    Returns:
        The :class:`EvalResult` (reports are written by :mod:`rag.eval.report`).
    """
    started = time.perf_counter()
    out = Path(out_dir)
    (out / "stores").mkdir(parents=True, exist_ok=True)
    (out / "variants").mkdir(parents=True, exist_ok=True)
    # variants sharing an ingestion run back to back, so each store is built once and warm
    order = sorted(
        range(len(config.variants)), key=lambda i: (ingest_key(config, config.variants[i]), i)
    )
    by_index: dict[int, VariantResult] = {}
    needs_retrieval = bool(config.ir_metrics) or config.answers is None
    for index in order:
        variant = config.variants[index]
        store_dir = out / "stores" / ingest_key(config, variant)
        store_dir.mkdir(parents=True, exist_ok=True)
        directory = out / "variants" / f"{slug(variant.name)}-{variant_key(config, variant)}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "variant.json").write_text(
            json.dumps({"name": variant.name, "params": variant.params()}, indent=2, default=str),
            encoding="utf-8",
        )
        pipeline_file = variant_pipeline_file(config, variant, store_root=store_dir)
        ingest_report = ingest_stage(config, variant, pipeline_file, store_dir, progress=progress)
        retrieved: dict[str, dict[str, Any]] = {}
        if needs_retrieval:
            retriever = pipeline_file.components[variant.retriever]
            retrieved = retrieve_stage(
                config, variant, retriever, directory / RETRIEVAL_FILE, progress=progress
            )
        answered: dict[str, dict[str, Any]] = {}
        if config.answers is not None:
            answered = answer_stage(
                config, variant, pipeline_file, directory / ANSWERS_FILE, progress=progress
            )
        metrics, per_query, counts = summarize(config, variant, retrieved, answered)
        by_index[index] = VariantResult(
            name=variant.name,
            params=variant.params(),
            metrics=metrics,
            per_query=per_query,
            latency=stage_latencies(retrieved, answered),
            counts=counts,
            directory=directory,
            ingest=ingest_report,
        )
        _close(pipeline_file)
    results = [by_index[i] for i in range(len(config.variants))]
    return EvalResult(
        config=config, variants=results, out_dir=out, seconds=time.perf_counter() - started
    )


def _close(pipeline_file: PipelineFile) -> None:
    with contextlib.suppress(Exception):  # best effort: the results are already on disk
        pipeline_file.close()
