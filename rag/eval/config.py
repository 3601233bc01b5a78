"""The eval file: what ``rag eval eval.yaml`` reads, parsed and validated.

An eval file names a dataset, a pipeline file and the variants to compare::

    dataset:
      format: beir                  # beir | qa | jsonl | csv (see rag.eval.datasets)
      path: data/scifact            # relative paths are relative to this file
    pipeline: ../ingest.yaml        # a ragline pipeline file (ingest + retriever components)
    ingest: ingest                  # the ingestion pipeline of that file (default: ingest)
    retriever: retriever            # the default retriever component (or a pipeline holding one)
    k: 100                          # documents ranked per query
    metrics: [ndcg@10, recall@100, mrr@10, map@100, p@5]
    primary_metric: ndcg@10
    grid:                           # the cross product of these values is evaluated
      splitter.chunk_size: [128, 256]     # <component>.<init parameter>
      retriever: [retriever, bm25]        # which retriever component to use
    answers:                        # optional: answer metrics through a chain.rag component
      chain: chain
      limit: 200
      judge: {generator: judge, metrics: [faithfulness], retries: 2}

The pipeline file is loaded once, as components (:class:`~rag.core.pipeline.PipelineFile`);
each variant is built from it by :mod:`rag.eval.variants` when the file is read, so a value a
component refuses fails here, with the variant's line, before any work starts.

Example:
    >>> # Needs the Cranfield dataset of ../shared/data.
    >>> from rag.eval.config import load_eval_config
    >>> config = load_eval_config("examples/eval/cranfield.yaml")  # doctest: +SKIP
    >>> [v.name for v in config.variants]  # doctest: +SKIP
    ['retriever=dense', 'retriever=bm25', 'retriever=hybrid']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError, did_you_mean
from rag.core.pipeline import PipelineFile
from rag.core.registry import Registry, default_registry
from rag.core.yaml_io import LocatedYaml, read_yaml
from rag.eval.datasets import EvalDataset, load_dataset
from rag.eval.metrics import JUDGE_METRICS, MetricName, validate_metric_names
from rag.eval.variants import (
    Variant,
    parse_variants,
    retriever_choices,
    variant_pipeline_file,
)

__all__ = [
    "DEFAULT_METRICS",
    "TOP_LEVEL",
    "AnswerConfig",
    "EvalConfig",
    "JudgeConfig",
    "load_eval_config",
]

TOP_LEVEL = (
    "dataset",
    "pipeline",
    "ingest",
    "retriever",
    "k",
    "fetch_k",
    "metrics",
    "primary_metric",
    "batch_size",
    "limit",
    "grid",
    "variants",
    "answers",
    "name",
)
"""The keys an eval file may hold."""
DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100", "p@5")
"""The metrics of an eval file without ``metrics:``."""
GOLD_ANSWER_METRICS = ("exact_match", "f1", "contains_answer", "answer_in_context")
"""Answer metrics that compare with the dataset's gold answers."""


@dataclass
class JudgeConfig:
    """``answers.judge``: the generator component that scores answers, and its metrics."""

    generator: str
    metrics: list[str]
    retries: int = 2


@dataclass
class AnswerConfig:
    """``answers``: the chain component that answers, how many questions, the judge."""

    chain: str
    limit: int | None = None
    judge: JudgeConfig | None = None


@dataclass
class EvalConfig:
    """A parsed, validated eval file (see the module docstring)."""

    file: str
    name: str
    dataset: EvalDataset
    pipeline_path: Path
    pipeline_file: PipelineFile
    ingest: str
    k: int
    fetch_k: int
    ir_metrics: list[MetricName]
    answer_metrics: list[str]
    primary_metric: str
    batch_size: int
    limit: int | None
    variants: list[Variant]
    answers: AnswerConfig | None
    registry: Registry = default_registry

    @property
    def metric_names(self) -> list[str]:
        return [str(m) for m in self.ir_metrics] + self.answer_metrics

    @property
    def pipeline_data(self) -> dict[str, Any]:
        """The pipeline file as data (what :meth:`PipelineFile.to_dict` writes)."""
        return self.pipeline_file.to_dict()


def load_eval_config(
    path: str | Path,
    *,
    registry: Registry | None = None,
    text: str | None = None,
) -> EvalConfig:
    """Read and validate an eval file: the dataset, the pipeline file, the metrics and the grid.

    Raises:
        ConfigError: with the eval file's line and field (unknown key, unknown metric naming the
            valid ones, a grid key naming a parameter no component has, ...).
        EvalDataError: the dataset is malformed.
    """
    registry = registry or default_registry
    located = read_yaml(path, text=text)
    data = located.data
    file = str(path)
    if not isinstance(data, dict):
        raise located.error("an eval file must be a mapping with 'dataset' and 'pipeline'", ())
    for key in data:
        if key not in TOP_LEVEL:
            raise located.error(
                f"unknown key '{key}'.{did_you_mean(str(key), TOP_LEVEL)} "
                f"Valid: {', '.join(TOP_LEVEL)}",
                (key,),
            )
    for key in ("dataset", "pipeline"):
        if key not in data:
            raise located.error(f"the eval file needs '{key}'", ())
    base = Path(path).parent

    # metrics
    raw_metrics = data.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(raw_metrics, list) or not raw_metrics:
        raise located.error("'metrics' must be a non-empty list", ("metrics",))
    ir_metrics: list[MetricName] = []
    answer_metrics: list[str] = []
    for index, name in enumerate(raw_metrics):
        try:
            ir, other = validate_metric_names([str(name)])
        except ConfigError as err:
            raise err.located(
                file=file, line=located.line_of(("metrics", index)), field=f"metrics[{index}]"
            ) from None
        ir_metrics += ir
        answer_metrics += other
    names = [str(m) for m in ir_metrics] + answer_metrics
    primary = str(data.get("primary_metric", names[0]))
    if primary not in names:
        raise located.error(
            f"primary_metric '{primary}' is not among the metrics ({', '.join(names)})",
            ("primary_metric",),
        )

    # dataset
    if not isinstance(data["dataset"], dict):
        raise located.error("'dataset' must be a mapping with 'format' and 'path'", ("dataset",))
    try:
        dataset = load_dataset(data["dataset"], base_dir=base)
    except ConfigError as err:
        if err.file is None:
            parts = tuple((err.field or "dataset").split("."))
            raise err.located(file=file, line=located.line_of(parts), field=err.field) from None
        raise

    # pipeline file (validated as a whole first, for its own located errors)
    pipeline_path = base / str(data["pipeline"])
    pipeline_file = PipelineFile.load(pipeline_path, registry=registry)
    ingest = str(data.get("ingest", "ingest"))
    if ingest not in pipeline_file.pipelines:
        raise located.error(
            f"the pipeline file has no pipeline '{ingest}'."
            f"{did_you_mean(ingest, pipeline_file.pipelines)}"
            f" Pipelines: {', '.join(pipeline_file.pipelines)}",
            ("ingest",),
        )
    choices = retriever_choices(pipeline_file)

    def check_retriever(value: Any, where: tuple[Any, ...]) -> str:
        if str(value) not in choices:
            raise located.error(
                f"retriever '{value}' is not a retriever component or a pipeline holding one."
                f"{did_you_mean(str(value), choices)} Choices: {', '.join(choices) or '(none)'}",
                where,
            )
        return choices[str(value)]

    default_retriever = check_retriever(data.get("retriever", "retriever"), ("retriever",))

    # answers
    answers = _answer_config(data.get("answers"), located, pipeline_file)
    if answer_metrics and answers is None:
        raise located.error(
            f"answer metric(s) {', '.join(answer_metrics)} need an 'answers: {{chain: ...}}' "
            "section naming a chain.rag component",
            ("metrics",),
        )
    if (
        answer_metrics
        and not dataset.has_answers
        and any(m in GOLD_ANSWER_METRICS for m in answer_metrics)
    ):
        raise located.error(
            f"{'/'.join(GOLD_ANSWER_METRICS)} need gold answers; the dataset has none "
            "(BEIR: add 'answers: answers.jsonl' under dataset)",
            ("metrics",),
        )
    if answers and answers.judge:
        for metric in answers.judge.metrics:
            if metric not in answer_metrics:
                answer_metrics.append(metric)

    # variants
    variants = parse_variants(data, located, pipeline_file, check_retriever, default_retriever)

    def positive_int(key: str, default: int | None) -> int | None:
        value = data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise located.error(f"'{key}' must be a positive integer, got {value!r}", (key,))
        return value

    k = positive_int("k", 100)
    assert k is not None
    fetch_k = positive_int("fetch_k", k * 3)
    assert fetch_k is not None
    batch_size = positive_int("batch_size", 64)
    assert batch_size is not None
    config = EvalConfig(
        file=file,
        name=str(data.get("name") or Path(path).stem),
        dataset=dataset,
        pipeline_path=pipeline_path,
        pipeline_file=pipeline_file,
        ingest=ingest,
        k=k,
        fetch_k=max(fetch_k, k),
        ir_metrics=ir_metrics,
        answer_metrics=answer_metrics,
        primary_metric=primary,
        batch_size=batch_size,
        limit=positive_int("limit", None),
        variants=variants,
        answers=answers,
        registry=registry,
    )
    # Build every variant's pipeline file now: a bad value fails before hours of work.
    for variant in config.variants:
        try:
            variant_pipeline_file(config, variant, store_root=Path("/nonexistent"))
        except ConfigError as err:
            raise ConfigError(
                f"variant '{variant.name}' does not build: {err}", file=file, line=variant.line
            ) from None
    return config


def _answer_config(
    raw: Any, located: LocatedYaml, pipeline_file: PipelineFile
) -> AnswerConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "chain" not in raw:
        raise located.error("'answers' must be a mapping with 'chain' (a component)", ("answers",))
    for key in raw:
        if key not in ("chain", "limit", "judge"):
            raise located.error(
                f"unknown key '{key}' under answers. Valid: chain, limit, judge", ("answers", key)
            )
    chain = str(raw["chain"])
    if chain not in pipeline_file.components:
        raise located.error(
            f"no component '{chain}' in the pipeline file."
            f"{did_you_mean(chain, pipeline_file.components)}"
            f" Components: {', '.join(pipeline_file.components)}",
            ("answers", "chain"),
        )
    judge = None
    if raw.get("judge") is not None:
        spec = raw["judge"]
        if not isinstance(spec, dict) or "generator" not in spec:
            raise located.error(
                "'judge' must be a mapping with 'generator' (a component) and 'metrics'",
                ("answers", "judge"),
            )
        generator = str(spec["generator"])
        if generator not in pipeline_file.components:
            raise located.error(
                f"no component '{generator}' in the pipeline file. "
                f"Components: {', '.join(pipeline_file.components)}",
                ("answers", "judge", "generator"),
            )
        metrics = [str(m) for m in spec.get("metrics", list(JUDGE_METRICS))]
        for index, metric in enumerate(metrics):
            if metric not in JUDGE_METRICS:
                raise located.error(
                    f"unknown judge metric '{metric}'. Valid: {', '.join(JUDGE_METRICS)}",
                    ("answers", "judge", "metrics", index),
                )
        judge = JudgeConfig(generator, metrics, int(spec.get("retries", 2)))
    limit = raw.get("limit")
    return AnswerConfig(chain=chain, limit=int(limit) if limit else None, judge=judge)
