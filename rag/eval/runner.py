"""The batch evaluation runner behind ``rag eval eval.yaml``.

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

Each distinct ingestion configuration (the ingest pipeline's components and everything they
refer to, after overrides) is ingested once into ``<out>/stores/<hash>/`` and reused by every
variant that shares it. Per-query results go to ``<out>/variants/<name>-<hash>/*.jsonl`` as
they are computed, so an interrupted run resumes where it stopped.

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
import copy
import hashlib
import inspect
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.core.component import _init_signature
from rag.core.errors import ConfigError, did_you_mean
from rag.core.pipeline import PipelineFile
from rag.core.registry import Registry, default_registry
from rag.core.yaml_io import LocatedYaml, read_yaml
from rag.eval.datasets import EvalDataset, EvalQuery, load_dataset
from rag.eval.metrics import (
    ANSWER_METRICS,
    JUDGE_METRICS,
    MetricName,
    answer_in_context,
    citation_scores,
    evaluate_run,
    exact_match,
    groundedness,
    mean_metrics,
    token_f1,
    validate_metric_names,
)

__all__ = ["EvalConfig", "EvalResult", "Variant", "VariantResult", "load_eval_config", "run_eval"]

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
DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100", "p@5")
RETRIEVER_KEY = "retriever"
_CONTEXTS_KEPT = 5  # retrieved contexts kept per query for the report
_CONTEXT_CHARS = 600


@dataclass
class Variant:
    """One point of the grid: overrides by dotted path and the retriever to use."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    retriever: str = "retriever"
    line: int | None = None

    def params(self) -> dict[str, Any]:
        return {**self.overrides, RETRIEVER_KEY: self.retriever}


@dataclass
class JudgeConfig:
    generator: str
    metrics: list[str]
    retries: int = 2


@dataclass
class AnswerConfig:
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
    pipeline_data: dict[str, Any]
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


@dataclass
class VariantResult:
    """Summary and per-query values of one variant."""

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


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": round(ordered[-1], 3)}


# -- configuration -----------------------------------------------------------------------------
def _component_params(registry: Registry, spec: Any) -> list[str]:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        return []
    try:
        cls = registry.resolve(spec["type"], allow_imports=False)
    except ConfigError:
        return []
    return [
        name
        for name, p in _init_signature(cls).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]


def _retriever_choices(pipeline_file: PipelineFile) -> dict[str, str]:
    """``{choice: component name}``: retriever components and pipelines that hold one."""
    choices = {
        name: name
        for name, component in pipeline_file.components.items()
        if callable(getattr(component, "retrieve", None))
    }
    for pipe_name, pipeline in pipeline_file.pipelines.items():
        inner = [n for n, c in pipeline.components.items() if n in choices.values()]
        if len(inner) == 1 and pipe_name not in choices:
            choices[pipe_name] = inner[0]
    return choices


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
    pipeline_data = read_yaml(pipeline_path).data
    ingest = str(data.get("ingest", "ingest"))
    if ingest not in pipeline_file.pipelines:
        raise located.error(
            f"the pipeline file has no pipeline '{ingest}'."
            f"{did_you_mean(ingest, pipeline_file.pipelines)}"
            f" Pipelines: {', '.join(pipeline_file.pipelines)}",
            ("ingest",),
        )
    choices = _retriever_choices(pipeline_file)

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
        and any(m in ("exact_match", "f1", "answer_in_context") for m in answer_metrics)
    ):
        raise located.error(
            "exact_match/f1/answer_in_context need gold answers; the dataset has none "
            "(BEIR: add 'answers: answers.jsonl' under dataset)",
            ("metrics",),
        )
    if answers and answers.judge:
        for metric in answers.judge.metrics:
            if metric not in answer_metrics:
                answer_metrics.append(metric)

    # variants
    specs = pipeline_data.get("components") or {}
    variants = _variants(data, located, specs, registry, check_retriever, default_retriever)

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
        pipeline_data=pipeline_data,
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
            _variant_pipeline_file(config, variant, store_root=Path("/nonexistent"))
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


def _variants(
    data: Mapping[str, Any],
    located: LocatedYaml,
    specs: Mapping[str, Any],
    registry: Registry,
    check_retriever: Callable[[Any, tuple[Any, ...]], str],
    default_retriever: str,
) -> list[Variant]:
    valid = {
        f"{comp}.{param}": True
        for comp, spec in specs.items()
        for param in _component_params(registry, spec)
    }

    def check_key(key: str, where: tuple[Any, ...]) -> None:
        if key == RETRIEVER_KEY or key in valid:
            return
        comp, _, param = key.partition(".")
        if comp in specs and param:
            own = [k for k in valid if k.startswith(comp + ".")]
            message = (
                f"component '{comp}' has no parameter '{param}'.{did_you_mean(key, own)} "
                f"Valid: {', '.join(own)}"
            )
        else:
            message = (
                f"'{key}' names no component parameter.{did_you_mean(key, valid)} Use "
                f"'<component>.<parameter>' or '{RETRIEVER_KEY}'. Components: "
                f"{', '.join(specs)}; valid keys: {RETRIEVER_KEY}, {', '.join(valid)}"
            )
        raise located.error(message, where)

    variants: list[Variant] = []
    grid = data.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise located.error("'grid' must map '<component>.<parameter>' to lists", ("grid",))
        keys = list(grid)
        for key in keys:
            check_key(str(key), ("grid", key))
            if not isinstance(grid[key], list) or not grid[key]:
                raise located.error(f"grid '{key}' must be a non-empty list", ("grid", key))
        for key in keys:
            if key == RETRIEVER_KEY:
                for index, value in enumerate(grid[key]):
                    check_retriever(value, ("grid", key, index))
        short = _short_names(keys)
        for values in itertools.product(*(grid[key] for key in keys)):
            chosen = dict(zip(keys, values))
            retriever = chosen.pop(RETRIEVER_KEY, None)
            name = " ".join(f"{short[k]}={v}" for k, v in zip(keys, values)) or "default"
            variants.append(
                Variant(
                    name=name,
                    overrides=chosen,
                    retriever=check_retriever(retriever, ("grid",))
                    if retriever is not None
                    else default_retriever,
                    line=located.line_of(("grid",)),
                )
            )
    for index, spec in enumerate(data.get("variants") or []):
        where = ("variants", index)
        if not isinstance(spec, dict) or "name" not in spec:
            raise located.error("a variant is {name, set: {<component>.<parameter>: value}}", where)
        overrides = dict(spec.get("set") or {})
        for key in overrides:
            check_key(str(key), (*where, "set", key))
        retriever = overrides.pop(RETRIEVER_KEY, None)
        variants.append(
            Variant(
                name=str(spec["name"]),
                overrides=overrides,
                retriever=check_retriever(retriever, (*where, "set", RETRIEVER_KEY))
                if retriever is not None
                else default_retriever,
                line=located.line_of(where),
            )
        )
    if not variants:
        variants.append(Variant(name="default", retriever=default_retriever))
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise located.error(f"variant names must be unique: {', '.join(duplicates)}", ("variants",))
    return variants


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """``splitter.chunk_size`` -> ``chunk_size`` unless two keys share the parameter name."""
    last = [k.rpartition(".")[2] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


# -- pipeline files per variant ----------------------------------------------------------------
def _references(value: Any) -> Iterator[str]:
    if isinstance(value, str) and value.startswith("@") and not value.startswith("@@"):
        yield value[1:]
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _closure(specs: Mapping[str, Any], roots: Sequence[str]) -> list[str]:
    """Components in ``roots`` and every component they refer to (``@name``)."""
    seen: list[str] = []
    queue = list(roots)
    while queue:
        name = queue.pop(0)
        if name in seen or name not in specs:
            continue
        seen.append(name)
        queue += list(_references((specs[name] or {}).get("init_parameters") or {}))
    return seen


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        comp, _, param = key.partition(".")
        spec = data["components"][comp]
        spec.setdefault("init_parameters", {})
        if spec["init_parameters"] is None:
            spec["init_parameters"] = {}
        spec["init_parameters"][param] = value
    return data


def _ingest_components(config: EvalConfig, data: Mapping[str, Any]) -> list[str]:
    pipelines = data.get("pipelines") or {}
    spec = pipelines.get(config.ingest)
    roots = spec if isinstance(spec, list) else (spec or {}).get("components", [])
    return _closure(data.get("components") or {}, list(roots))


def _store_location_param(config: EvalConfig, spec: Any) -> str | None:
    params = _component_params(config.registry, spec)
    if not str((spec or {}).get("type", "")).startswith("store."):
        return None
    return "path" if "path" in params else ("uri" if "uri" in params else None)


def ingest_key(config: EvalConfig, variant: Variant) -> str:
    """Hash of the ingestion configuration of ``variant`` (components after overrides, corpus).

    Store locations are left out (the runner sets them); so are parameters that change speed,
    not vectors (``device``, ``batch_size``, ``progress``).
    """
    data = _apply_overrides(config.pipeline_data, variant.overrides)
    components = data.get("components") or {}
    parts = []
    for name in _ingest_components(config, data):
        spec = copy.deepcopy(components[name])
        params = spec.get("init_parameters") or {}
        location = _store_location_param(config, spec)
        for drop in (location, "device", "batch_size", "progress"):
            params.pop(drop, None)
        parts.append([name, spec.get("type"), params])
    corpus = config.dataset.corpus_path
    stat = corpus.stat() if corpus and corpus.exists() else None
    parts.append(
        [str(corpus.resolve()) if corpus else None, stat.st_size if stat else None, config.ingest]
    )
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _variant_pipeline_file(
    config: EvalConfig, variant: Variant, *, store_root: Path
) -> PipelineFile:
    data = _apply_overrides(config.pipeline_data, variant.overrides)
    components = data.get("components") or {}
    for name in _ingest_components(config, data):
        location = _store_location_param(config, components[name])
        if location:
            params = components[name].setdefault("init_parameters", {}) or {}
            components[name]["init_parameters"] = params
            suffix = ".db" if location == "uri" else ""
            params[location] = str(store_root / f"{name}{suffix}")
    if config.answers is not None:
        chain_params = _component_params(config.registry, components.get(config.answers.chain))
        if RETRIEVER_KEY in chain_params:
            spec = components[config.answers.chain]
            spec.setdefault("init_parameters", {})
            spec["init_parameters"][RETRIEVER_KEY] = "@" + variant.retriever
    pipeline_file = PipelineFile.from_dict(data, registry=config.registry)
    pipeline_file.source = str(config.pipeline_path)
    return pipeline_file


def variant_key(config: EvalConfig, variant: Variant) -> str:
    """Hash of everything that determines a variant's results (for resuming safely)."""
    data = _apply_overrides(config.pipeline_data, variant.overrides)
    text = json.dumps(
        [data, variant.retriever, config.k, config.fetch_k, config.dataset.name],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _slug(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in name)
    return cleaned.strip("_")[:80] or "variant"


# -- running -----------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    """Records by query id; a torn last line (interrupted write) is ignored."""
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


def _open_append(path: Path) -> Any:
    """Open a results file for appending, ending a line torn by an interruption first."""
    if path.exists() and path.stat().st_size:
        with path.open("rb") as raw:
            raw.seek(-1, 2)
            torn = raw.read(1) != b"\n"
        if torn:
            with path.open("a", encoding="utf-8") as handle:
                handle.write("\n")
    return path.open("a", encoding="utf-8")


def _doc_id(hit: Any) -> str:
    metadata = hit.chunk.metadata
    return str(metadata.get("doc_id") or metadata.get("source") or hit.chunk.id)


def rank_documents(hits: Sequence[Any], k: int) -> list[tuple[str, float]]:
    """Collapse chunk hits to documents (each document's best chunk), best first, top ``k``."""
    ranked: dict[str, float] = {}
    for hit in hits:
        doc = _doc_id(hit)
        if doc not in ranked:
            ranked[doc] = float(hit.score)
            if len(ranked) == k:
                break
    return list(ranked.items())


def _context_record(hit: Any) -> dict[str, Any]:
    return {
        "chunk_id": hit.chunk.id,
        "doc_id": _doc_id(hit),
        "score": round(float(hit.score), 6),
        "text": hit.chunk.text[:_CONTEXT_CHARS],
    }


def _selected_queries(config: EvalConfig) -> list[EvalQuery]:
    queries = config.dataset.queries
    return queries[: config.limit] if config.limit else list(queries)


def _ingest(
    config: EvalConfig,
    variant: Variant,
    pipeline_file: PipelineFile,
    store_dir: Path,
    *,
    progress: bool,
) -> dict[str, Any]:
    marker = store_dir / "ingest.json"
    if marker.exists():
        return json.loads(marker.read_text(encoding="utf-8"))
    corpus = config.dataset.corpus_path
    if corpus is None:
        raise ConfigError(
            "retrieval needs a corpus to ingest; this dataset has none (QA sets: set "
            "dataset.corpus to a corpus.jsonl with _id/title/text rows)",
            file=config.file,
            field="dataset.corpus",
        )
    from rag.pipelines.ingest import run_ingest

    print(f"ingest {corpus} for '{variant.name}' into {store_dir}", file=sys.stderr)
    report = run_ingest(
        pipeline_file.pipeline(config.ingest), [str(corpus)], mode="incremental", progress=progress
    )
    data = report.to_dict()
    data["store"] = str(store_dir)
    marker.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return data


def _retrieve_stage(
    config: EvalConfig,
    variant: Variant,
    retriever: Any,
    results_path: Path,
    *,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    done = _read_jsonl(results_path)
    todo = [q for q in _selected_queries(config) if q.id not in done]
    if not todo:
        return done
    retriever.warm_up()
    batch = getattr(retriever, "retrieve_batch", None)
    qrels = config.dataset.qrels
    with (
        _open_append(results_path) as out,
        tqdm(
            total=len(todo),
            desc=f"retrieve {variant.name}",
            unit="query",
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        for start in range(0, len(todo), config.batch_size):
            part = todo[start : start + config.batch_size]
            texts = [q.text for q in part]
            began = time.perf_counter()
            if batch is not None:
                results = batch(texts, k=config.fetch_k)
            else:
                results = [retriever.retrieve(t, k=config.fetch_k) for t in texts]
            # batched queries share one embedding call: the per-query latency is the mean
            per_query_seconds = (time.perf_counter() - began) / len(part)
            for query, hits in zip(part, results):
                ranking = rank_documents(hits, config.k)
                metrics: dict[str, float] = {}
                if query.id in qrels and config.ir_metrics:
                    metrics = evaluate_run(
                        {query.id: qrels[query.id]},
                        {query.id: [d for d, _ in ranking]},
                        config.ir_metrics,
                    )[query.id]
                record = {
                    "query_id": query.id,
                    "query": query.text,
                    "metrics": metrics,
                    "latency": {"retrieve": per_query_seconds},
                    "ranking": [[d, round(s, 6)] for d, s in ranking],
                    "contexts": [_context_record(h) for h in hits[:_CONTEXTS_KEPT]],
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                done[query.id] = record
            out.flush()
            bar.update(len(part))
    return done


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _answer_parts(answer: Any) -> tuple[str, list[dict[str, Any]], list[str]]:
    """``(text, contexts, cited doc ids)`` from an Answer (object or dict)."""
    text = str(_field(answer, "text", "") or "")
    contexts = []
    by_chunk: dict[str, str] = {}
    for item in _field(answer, "contexts", []) or []:
        chunk = _field(item, "chunk", item)
        metadata = _field(chunk, "metadata", {}) or {}
        chunk_id = str(_field(chunk, "id", ""))
        doc = str(metadata.get("doc_id") or metadata.get("source") or chunk_id)
        by_chunk[chunk_id] = doc
        contexts.append(
            {
                "chunk_id": chunk_id,
                "doc_id": doc,
                "score": _field(item, "score"),
                "text": str(_field(chunk, "text", "")),
            }
        )
    cited: list[str] = []
    for citation in _field(answer, "citations", []) or []:
        chunk_id = str(_field(citation, "id", "") or _field(citation, "chunk_id", ""))
        metadata = _field(citation, "metadata", {}) or {}
        doc = (
            metadata.get("doc_id")
            or by_chunk.get(chunk_id)
            or _field(citation, "source")
            or chunk_id
        )
        if str(doc) not in cited:
            cited.append(str(doc))
    return text, contexts, cited


def answer_metrics(
    query: EvalQuery, text: str, contexts: Sequence[Mapping[str, Any]], cited: Sequence[str]
) -> dict[str, float | None]:
    """The model-free answer metrics of one answered question."""
    context_texts = [str(c["text"]) for c in contexts]
    cited_texts = [str(c["text"]) for c in contexts if c["doc_id"] in set(cited)]
    values: dict[str, float | None] = {}
    if query.answers:
        values["exact_match"] = exact_match(text, query.answers)
        values["f1"] = token_f1(text, query.answers)
        values["answer_in_context"] = answer_in_context(query.answers, context_texts)
    values.update(citation_scores(cited, query.gold_doc_ids) if query.gold_doc_ids else {})
    if "citation_precision" not in values:
        values["citation_precision"] = citation_scores(cited, [])["citation_precision"]
        values["citation_recall"] = None
    # an answer without citations is checked against everything retrieved
    values["groundedness"] = groundedness(text, cited_texts or context_texts)
    return values


def _answer_stage(
    config: EvalConfig,
    variant: Variant,
    pipeline_file: PipelineFile,
    answers_path: Path,
    *,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    assert config.answers is not None
    done = _read_jsonl(answers_path)
    queries = _selected_queries(config)
    if config.answers.limit:
        queries = queries[: config.answers.limit]
    todo = [q for q in queries if q.id not in done]
    if not todo:
        return done
    chain = pipeline_file.components[config.answers.chain]
    chain.warm_up()
    judge = None
    if config.answers.judge is not None:
        from rag.eval.judge import Judge

        generator = pipeline_file.components[config.answers.judge.generator]
        generator.warm_up()
        judge = Judge(generator, retries=config.answers.judge.retries)
    with (
        _open_append(answers_path) as out,
        tqdm(
            total=len(todo),
            desc=f"answer {variant.name}",
            unit="question",
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        for query in todo:
            began = time.perf_counter()
            error = None
            try:
                outputs = chain.run(question=query.text)
                answer = outputs.get("answer")
                text, contexts, cited = _answer_parts(answer)
                timings = dict(_field(answer, "timings", {}) or {})
            except Exception as err:  # one failing question is recorded, the run goes on
                error = f"{type(err).__name__}: {err}"
                text, contexts, cited, timings = "", [], [], {}
            seconds = time.perf_counter() - began
            metrics: dict[str, float | None] = {}
            judge_failures: list[str] = []
            if error is None:
                metrics = answer_metrics(query, text, contexts, cited)
                if judge is not None and config.answers.judge is not None:
                    for name in config.answers.judge.metrics:
                        score = judge.score(
                            name, question=query.text, answer=text, contexts=contexts
                        )
                        metrics[name] = score
                        if score is None:
                            judge_failures.append(name)
            latency = {"answer": seconds}
            for stage, value in timings.items():
                if isinstance(value, (int, float)):
                    latency[str(stage)] = float(value)
            record = {
                "query_id": query.id,
                "question": query.text,
                "answer": text,
                "gold_answers": query.answers,
                "cited": cited,
                "contexts": [
                    {**c, "text": c["text"][:_CONTEXT_CHARS]} for c in contexts[:_CONTEXTS_KEPT]
                ],
                "metrics": metrics,
                "judge_failed": judge_failures,
                "error": error,
                "latency": latency,
            }
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            out.flush()
            done[query.id] = record
            bar.update(1)
    return done


def _summarize(
    config: EvalConfig,
    variant: Variant,
    retrieved: Mapping[str, Mapping[str, Any]],
    answered: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, float], dict[str, dict[str, float | None]], dict[str, int]]:
    selected = {q.id for q in _selected_queries(config)}
    per_query: dict[str, dict[str, float | None]] = {}
    for query_id, record in retrieved.items():
        if query_id in selected and record.get("metrics"):
            per_query.setdefault(query_id, {}).update(record["metrics"])
    answer_errors = 0
    judge_failed: dict[str, int] = {}
    for query_id, record in answered.items():
        if query_id not in selected:
            continue
        if record.get("error"):
            answer_errors += 1
            continue
        wanted = {k: v for k, v in record["metrics"].items() if k in config.answer_metrics}
        per_query.setdefault(query_id, {}).update(wanted)
        for name in record.get("judge_failed") or []:
            judge_failed[name] = judge_failed.get(name, 0) + 1
    metrics = mean_metrics(per_query)
    ordered = {name: metrics[name] for name in config.metric_names if name in metrics}
    counts = {
        "queries": len(selected),
        "judged_queries": sum(1 for q in selected if q in config.dataset.qrels),
        "answered": len(answered) - answer_errors if answered else 0,
        "answer_errors": answer_errors,
    }
    for name, failed in judge_failed.items():
        counts[f"{name}_failed"] = failed
    return ordered, per_query, counts


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
    results: list[VariantResult] = []
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
        directory = out / "variants" / f"{_slug(variant.name)}-{variant_key(config, variant)}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "variant.json").write_text(
            json.dumps({"name": variant.name, "params": variant.params()}, indent=2, default=str),
            encoding="utf-8",
        )
        pipeline_file = _variant_pipeline_file(config, variant, store_root=store_dir)
        ingest_report = _ingest(config, variant, pipeline_file, store_dir, progress=progress)
        retrieved: dict[str, dict[str, Any]] = {}
        if needs_retrieval:
            retriever = pipeline_file.components[variant.retriever]
            retrieved = _retrieve_stage(
                config, variant, retriever, directory / "retrieval.jsonl", progress=progress
            )
        answered: dict[str, dict[str, Any]] = {}
        if config.answers is not None:
            answered = _answer_stage(
                config, variant, pipeline_file, directory / "answers.jsonl", progress=progress
            )
        metrics, per_query, counts = _summarize(config, variant, retrieved, answered)
        latency: dict[str, list[float]] = {}
        for record in retrieved.values():
            for stage, value in (record.get("latency") or {}).items():
                latency.setdefault(stage, []).append(float(value))
        for record in answered.values():
            # the chain's own stage timings ("retrieve", "generate") are kept apart from the
            # runner's batched retrieval: "answer.retrieve", "answer.generate"
            for stage, value in (record.get("latency") or {}).items():
                name = stage if stage == "answer" else f"answer.{stage}"
                if name != "answer.total":
                    latency.setdefault(name, []).append(float(value))
        by_index[index] = VariantResult(
            name=variant.name,
            params=variant.params(),
            metrics=metrics,
            per_query=per_query,
            latency=latency,
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
    for component in pipeline_file.components.values():
        close = getattr(component, "close", None)
        if callable(close) and not inspect.signature(close).parameters:
            # closing is best effort; the results are already on disk
            with contextlib.suppress(Exception):
                close()


__all__ += ["ANSWER_METRICS", "answer_metrics", "ingest_key", "rank_documents"]
