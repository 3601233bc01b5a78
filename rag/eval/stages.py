"""The stages of one variant: ingest the corpus, retrieve per query, answer, score.

Each stage appends one record per query to the variant's results file as it goes
(:mod:`rag.eval.results`) and skips the queries already there, so an interrupted run resumes.
Ingestion goes through the one ingest path, :func:`rag.pipelines.ingest.run_ingest`, as
``rag ingest`` does.

Example:
    >>> from rag.core.documents import Chunk, Hit
    >>> from rag.eval.stages import rank_documents
    >>> hits = [
    ...     Hit(Chunk(id="c1", text="a", metadata={"source": "x", "doc_id": "d1"}), 0.9),
    ...     Hit(Chunk(id="c2", text="b", metadata={"source": "x", "doc_id": "d1"}), 0.8),
    ...     Hit(Chunk(id="c3", text="c", metadata={"source": "y", "doc_id": "d2"}), 0.7),
    ... ]
    >>> rank_documents(hits, k=10)  # each document once, at its best chunk's score
    [('d1', 0.9), ('d2', 0.7)]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from rag.core.component import Component
from rag.core.documents import Hit
from rag.core.errors import ConfigError
from rag.core.pipeline import PipelineFile
from rag.core.protocols import Retriever, RetrievesBatches
from rag.eval.datasets import EvalQuery
from rag.eval.metrics import (
    answer_in_context,
    citation_scores,
    contains_answer,
    evaluate_run,
    exact_match,
    groundedness,
    mean_metrics,
    token_f1,
)
from rag.eval.results import open_for_append, read_results
from rag.eval.variants import Variant

if TYPE_CHECKING:
    from rag.eval.config import EvalConfig

__all__ = [
    "RetrievesBatches",
    "answer_metrics",
    "answer_stage",
    "ingest_stage",
    "rank_documents",
    "retrieve_stage",
    "selected_queries",
    "stage_latencies",
    "summarize",
]

_CONTEXTS_KEPT = 5  # retrieved contexts kept per query for the report
_CONTEXT_CHARS = 600


def _doc_id(hit: Hit) -> str:
    metadata = hit.chunk.metadata
    return str(metadata.get("doc_id") or metadata.get("source") or hit.chunk.id)


def rank_documents(hits: Sequence[Hit], k: int) -> list[tuple[str, float]]:
    """Collapse chunk hits to documents (each document's best chunk), best first, top ``k``."""
    ranked: dict[str, float] = {}
    for hit in hits:
        doc = _doc_id(hit)
        if doc not in ranked:
            ranked[doc] = float(hit.score)
            if len(ranked) == k:
                break
    return list(ranked.items())


def _context_record(hit: Hit) -> dict[str, Any]:
    return {
        "chunk_id": hit.chunk.id,
        "doc_id": _doc_id(hit),
        "score": round(float(hit.score), 6),
        "text": hit.chunk.text[:_CONTEXT_CHARS],
    }


def selected_queries(config: EvalConfig) -> list[EvalQuery]:
    """The queries the eval file asks for (``limit:`` first ones)."""
    queries = config.dataset.queries
    return queries[: config.limit] if config.limit else list(queries)


def ingest_stage(
    config: EvalConfig,
    variant: Variant,
    pipeline_file: PipelineFile,
    store_dir: Path,
    *,
    progress: bool,
) -> dict[str, Any]:
    """Ingest the dataset's corpus into ``store_dir`` once (the ``rag ingest --json`` report,
    kept in ``ingest.json`` beside the store; a later variant or run sharing it reads that).

    Raises:
        ConfigError: the dataset has no corpus to ingest.
    """
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


def retrieve_stage(
    config: EvalConfig,
    variant: Variant,
    retriever: Component,
    results_path: Path,
    *,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Rank the corpus for every query not yet in ``results_path`` and score the ranking."""
    done = read_results(results_path)
    todo = [q for q in selected_queries(config) if q.id not in done]
    if not todo:
        return done
    retriever.warm_up()
    batch = retriever.retrieve_batch if isinstance(retriever, RetrievesBatches) else None
    qrels = config.dataset.qrels
    with (
        open_for_append(results_path) as out,
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
                assert isinstance(retriever, Retriever)  # the eval file's choices are retrievers
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
    # A chain's answer is an Answer dataclass (chain.rag) or a plain dict (a third-party chain),
    # and so are its contexts, chunks and citations: data read by field name either way, not an
    # ability to probe.
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)  # a field of an Answer-like object, named by the caller


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
        values["contains_answer"] = contains_answer(text, query.answers)
        values["answer_in_context"] = answer_in_context(query.answers, context_texts)
    values.update(citation_scores(cited, query.gold_doc_ids) if query.gold_doc_ids else {})
    if "citation_precision" not in values:
        values["citation_precision"] = citation_scores(cited, [])["citation_precision"]
        values["citation_recall"] = None
    # an answer without citations is checked against everything retrieved
    values["groundedness"] = groundedness(text, cited_texts or context_texts)
    return values


def answer_stage(
    config: EvalConfig,
    variant: Variant,
    pipeline_file: PipelineFile,
    answers_path: Path,
    *,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Ask the chain every question not yet in ``answers_path``; score each answer (and
    judge it when the eval file names a judge)."""
    assert config.answers is not None
    done = read_results(answers_path)
    queries = selected_queries(config)
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
        open_for_append(answers_path) as out,
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


def summarize(
    config: EvalConfig,
    variant: Variant,
    retrieved: Mapping[str, Mapping[str, Any]],
    answered: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, float], dict[str, dict[str, float | None]], dict[str, int]]:
    """``(mean metrics, per-query metrics, counts)`` of one variant's records."""
    selected = {q.id for q in selected_queries(config)}
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


def stage_latencies(
    retrieved: Mapping[str, Mapping[str, Any]], answered: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[float]]:
    """Seconds per stage and query: ``retrieve`` (the batched retrieval), ``answer`` (the
    chain call) and the chain's own stages as ``answer.<stage>`` (its total left out)."""
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
    return latency
