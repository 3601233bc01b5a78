"""Answer quality of ``chain.rag`` per answer style with the bundled SmolLM2-135M (README table).

    .venv/bin/python benchmarks/answer_quality.py [--datasets wikiqa,xquad] [--limit N]
        [--wikiqa-limit N] [--seed 0] [--k N] [--styles evidence,extractive,concise,sentences]
        [--wikiqa-styles evidence,evidence-sentence,evidence-logistic,evidence-reranked]
        [--json] [--unanswerable] [--warm-cache]

Two datasets from ``../shared/data``, one table each:

- **WikiQA train, check half** (``wikiqa``): natural questions answered by one sentence of a
  Wikipedia summary. The questions are split once by ``benchmarks/fit_evidence.py``'s
  ``split_wikiqa`` (seed 0); ``style.evidence`` was fitted on the other half. Printed per style:
  the mean best token F1 of the answer against the gold sentences, the share at F1 >= 0.5,
  grounded and "I don't know." rates (every question is answerable), median seconds; and in the
  same run the *lead sentence* baseline (the first sentence of the top context) and the
  *best-similar sentence* baseline (the sentence of the contexts most similar to the question
  with all-MiniLM-L6-v2).
- **XQuAD en dev, held-out sample** (``xquad``): the ``--limit 100 --seed 0`` sample that no
  weights were fitted on (below).

Extractive answers use ``span_search: ranked`` (:mod:`rag.chains.span_ranking`, whose weights
``benchmarks/fit_span_ranker.py`` fits on the questions outside the ``--limit 100 --seed 0``
sample). ``evidence-sentence`` is ``style.evidence`` with ``factoid_span: false``: the answering
sentence alone, without the short span put first for who / when / where / how many questions
(what that span costs in token F1 against a gold sentence). ``style.evidence`` reorders its best
three sentences with the fitted cross-encoder of ``benchmarks/fit_evidence_reranker.py`` for
factoid and detailed questions (``rerank_questions: factoid_or_detailed``, the default);
``evidence-logistic`` is ``rerank_top: 0`` (the logistic order alone), ``evidence-factoid``
``rerank_questions: factoid`` and ``evidence-reranked`` ``rerank_questions: all`` (every
question reordered).

Retrieval is ``examples/qa.yaml``'s as shipped (:class:`PipelineRetriever`): its splitter,
its embedder (all-MiniLM-L6-v2, title template) and its hybrid retriever (dense + BM25 fused per
document), with its chain's ``k`` unless ``--k`` says otherwise. Each dataset's paragraphs are
indexed once under ``RAGLINE_BENCH_INDEX`` (default ``/tmp/ragline-bench-index``) and the index
is reused by later runs (delete the folder after changing qa.yaml's ingest settings).
Contexts are retrieved once per question and reused by every style, so the styles answer from the
same contexts. Styles alternate per question, and the model's cached prompts are forgotten before
every call, so load drift hits every style alike (``--warm-cache`` keeps them, as a long-running
process does).

Printed per style: EM and token F1 (SQuAD v1.1 normalization with Unicode punctuation as MLQA's
script has it, :func:`rag.eval.metrics.normalize_answer`), the share at F1 >= 0.5, ``holds``
(XQuAD: the answer contains the gold answer, over questions whose contexts do), the rate of
grounded answers, abstentions ("I don't know."), citation precision (cited chunks from the gold
paragraph), the median seconds per question, mean answer length; and the median latency of
``evidence`` and ``concise`` over ``extractive`` in the same run.

``--limit N`` (XQuAD, default 100) and ``--wikiqa-limit N`` answer a fixed random sample
(``--seed``), the same for every style. With ``--unanswerable`` each XQuAD question is also asked
with the contexts of another article, to measure abstention.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA_ROOT = ROOT.parent / "shared" / "data"
DEFAULT_DATA = DATA_ROOT / "xquad_en_dev"
STYLES = ("evidence", "extractive", "concise", "sentences")
VARIANTS = {
    "evidence-sentence": {"factoid_span": False},
    "evidence-logistic": {"rerank_top": 0},
    "evidence-factoid": {"rerank_questions": "factoid"},
    "evidence-reranked": {"rerank_questions": "all"},
}
"""Benchmark-only style names: ``style.evidence`` with these parameters."""
_CITATION = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]")

from tqdm import tqdm  # noqa: E402

from rag.core import Component, Hit  # noqa: E402


class FixedHits(Component):
    """A retriever that returns hits found beforehand, so every style sees the same contexts."""

    outputs = {"hits": list[Hit]}

    def __init__(self) -> None:
        self.hits: dict[str, list[Hit]] = {}

    def retrieve(self, query: str, *, k: int | None = None, filters: Any = None) -> list[Hit]:
        return self.hits[query][: k or None]

    def run(self, query: str) -> dict[str, Any]:
        return {"hits": self.retrieve(query)}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


EXAMPLE_PIPELINE = ROOT / "examples" / "qa.yaml"
BENCH_INDEX = Path(os.environ.get("RAGLINE_BENCH_INDEX", "/tmp/ragline-bench-index"))


class PipelineRetriever:
    """The retrieval of ``examples/qa.yaml`` as shipped (its splitter, embedder with the title
    template, hybrid dense + BM25 fused per document) over a dataset's paragraphs, indexed once
    under ``RAGLINE_BENCH_INDEX/<dataset>`` (default ``/tmp/ragline-bench-index``) and reused.

    ``embedder`` is the pipeline's embedder (the one ``style.evidence`` gets as ``@embedder``).
    """

    def __init__(self, corpus: list[dict[str, Any]], dataset: str) -> None:
        from rag.core import Document, PipelineFile
        from rag.pipelines.ingest import find_writer, ingest_documents

        index = BENCH_INDEX / dataset
        text = EXAMPLE_PIPELINE.read_text(encoding="utf-8").replace(
            "${RAG_INDEX_DIR:-.rag/example-index}", str(index)
        )
        index.mkdir(parents=True, exist_ok=True)
        config = index / "qa.yaml"
        config.write_text(text, encoding="utf-8")
        loaded = PipelineFile.load(config)
        ingest = loaded.pipelines["ingest"]
        self.embedder = ingest.get_component("embedder")
        self.retriever = loaded.pipelines["search"].get_component("retriever")
        chain = loaded.pipelines["ask"].get_component("chain")
        self.k = int(chain.k)
        _, writer = find_writer(ingest)  # type: ignore[misc]
        writer.warm_up()
        self.chunks = int(writer.store.count())
        if self.chunks == 0:
            documents = [
                Document(
                    id=d["_id"],
                    text=d["text"],
                    metadata={"source": d["_id"], "doc_id": d["_id"], "title": d.get("title", "")},
                )
                for d in corpus
            ]
            print(f"{dataset}: indexing {len(documents)} paragraphs into {index}", file=sys.stderr)
            ingest_documents(
                documents,
                embedder=self.embedder,
                writer=writer,
                splitter=ingest.get_component("splitter"),
                progress=True,
            )
            self.chunks = int(writer.store.count())
        self.embedder.warm_up()

    def retrieve_batch(self, queries: list[str], k: int) -> list[list[Hit]]:
        return self.retriever.retrieve_batch(queries, k=k)  # type: ignore[attr-defined]


def strip_citations(text: str) -> str:
    return _CITATION.sub(" ", text).strip()


def holds(text: str, answers: list[str]) -> bool:
    """Whether the answer ``text`` holds one of the gold ``answers`` (both normalized as
    :func:`rag.eval.metrics.normalize_answer` does; the table's ``holds``)."""
    from rag.eval.metrics import normalize_answer

    normalized = normalize_answer(text)
    return any(normalize_answer(a) in normalized for a in answers)


def score_styles(
    chains: dict[str, Any], rows: list[dict[str, Any]], reset: Any
) -> list[dict[str, Any]]:
    """Answer every question in every style, alternating styles per question (so drift in the
    machine's load hits all styles alike) and forgetting the model's cached prompts before each
    call (so no call reuses an evaluated prompt)."""
    from rag.eval.metrics import exact_match, token_f1

    keys = ("em", "f1", "seconds", "lengths", "precisions", "contains")
    data = {style: {key: [] for key in keys} for style in chains}
    counts = {style: {"grounded": 0, "abstained": 0} for style in chains}
    samples: dict[str, list[tuple[str, str, str]]] = {style: [] for style in chains}
    for row in tqdm(rows, desc="questions", file=sys.stderr):
        for style, chain in chains.items():
            reset()
            started = time.perf_counter()
            answer = chain.ask(row["question"])
            seconds = time.perf_counter() - started
            text = strip_citations(answer.text)
            record = data[style]
            record["seconds"].append(seconds)
            record["em"].append(exact_match(text, row["answers"]))
            record["f1"].append(token_f1(text, row["answers"]))
            record["lengths"].append(len(answer.text))
            counts[style]["grounded"] += answer.grounded
            counts[style]["abstained"] += answer.finish_reason == "abstain" or (
                text == "I don't know."
            )
            cited = [c.id for c in answer.citations]
            if cited:
                gold = {
                    c.id
                    for c in answer.contexts
                    if c.metadata.get("doc_id") == row.get("context_id", row.get("doc_id"))
                }
                record["precisions"].append(sum(i in gold for i in cited) / len(cited))
            if row.get("in_context"):
                record["contains"].append(holds(text, row["answers"]))
            if len(samples[style]) < 3:
                samples[style].append((row["question"], answer.text, row["answers"][0]))
    from rag.eval.report import bootstrap_ci

    count = len(rows)
    results = []
    for style, record in data.items():
        precisions = record["precisions"]
        contains = [float(c) for c in record["contains"]]
        results.append(
            {
                "style": style,
                "questions": count,
                "em": statistics.fmean(record["em"]),
                "f1": statistics.fmean(record["f1"]),
                "f1_at_least_half": statistics.fmean(f >= 0.5 for f in record["f1"]),
                "contains": statistics.fmean(contains) if contains else None,
                # 95 % percentile-bootstrap intervals of the means: how far a figure on this
                # many questions may sit from the same answers' figure on many more
                "f1_ci": bootstrap_ci(record["f1"]),
                "contains_ci": bootstrap_ci(contains) if contains else None,
                "grounded": counts[style]["grounded"] / count,
                "abstained": counts[style]["abstained"] / count,
                "citation_precision": statistics.fmean(precisions) if precisions else None,
                "cited": len(precisions) / count,
                "median_s": statistics.median(record["seconds"]),
                "mean_chars": statistics.fmean(record["lengths"]),
                "samples": samples[style],
            }
        )
    return results


def make_chains(args: argparse.Namespace, retriever: Any, fixed: Any, styles: list[str]) -> Any:
    """The bundled generator and one chain per style over the same fixed contexts."""
    from rag.chains import EvidenceStyle, RagChain
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator

    generator = LlamaCppGenerator(
        model="smollm2-135m-instruct",
        context_size=2048,
        threads=args.threads,
        max_tokens=args.max_tokens,
        temperature=0.0,
        seed=0,
    )
    generator.warm_up()
    extractive: dict[str, Any] = {"min_span_logprob": args.min_span_logprob}
    for name in ("span_candidates",):
        if getattr(args, name) is not None:
            extractive[name] = getattr(args, name)
    if args.focus_sentences is not None:
        extractive["focus_sentences"] = args.focus_sentences
    from rag.chains import ExtractiveStyle

    base = RagChain(retriever=fixed, generator=generator, k=args.k, answer_style="sentences")
    chains = {}
    for style in styles:
        if style == "evidence" or style in VARIANTS:
            evidence = EvidenceStyle(embedder=retriever.embedder, **VARIANTS.get(style, {}))
            chains[style] = base.with_style(evidence)
        elif style == "extractive":
            chains[style] = base.with_style(ExtractiveStyle(**extractive))
        else:
            chains[style] = base.with_style(style)
    return generator, chains


def print_table(title: str, results: list[dict[str, Any]], extra: list[dict[str, Any]]) -> None:
    print(title)
    header = (
        f"{'answer':<18} {'EM':>6} {'F1':>6} {'F1>=0.5':>8} {'holds':>6} {'grounded':>9} "
        f"{'abstain':>8} {'cite prec':>10} {'median s':>9} {'chars':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in [*results, *extra]:
        precision = r.get("citation_precision")
        holds = r.get("contains")
        grounded = r.get("grounded")
        abstained = r.get("abstained")
        median = r.get("median_s")
        print(
            f"{r['style']:<18} {r['em']:>6.3f} {r['f1']:>6.3f} {r['f1_at_least_half']:>8.3f} "
            f"{'-' if holds is None else f'{holds:.3f}':>6} "
            f"{'-' if grounded is None else f'{grounded:.3f}':>9} "
            f"{'-' if abstained is None else f'{abstained:.3f}':>8} "
            f"{'-' if precision is None else f'{precision:.3f}':>10} "
            f"{'-' if median is None else f'{median:.3f}':>9} {r.get('mean_chars', 0):>6.0f}"
        )
    intervals = []
    for r in results:
        interval = f"{r['style']} F1 {r['f1_ci'][0]:.3f}-{r['f1_ci'][1]:.3f}"
        if r["contains_ci"]:
            interval += f", holds {r['contains_ci'][0]:.3f}-{r['contains_ci'][1]:.3f}"
        intervals.append(interval)
    print("95 % bootstrap intervals of the means: " + "; ".join(intervals))
    by_style = {r["style"]: r for r in results}
    if "extractive" in by_style:
        for style in ("evidence", *VARIANTS, "concise"):
            if style in by_style:
                ratio = by_style[style]["median_s"] / by_style["extractive"]["median_s"]
                print(f"{style} / extractive median latency: {ratio:.2f}x")


def baselines(rows: list[dict[str, Any]], fixed: Any, embedder: Any) -> list[dict[str, Any]]:
    """The lead-sentence and best-similar-sentence answers, scored like the styles."""
    import numpy as np

    from rag.core.text import sentences
    from rag.eval.metrics import exact_match, token_f1

    lead, similar = [], []
    for row in rows:
        hits = fixed.hits[row["question"]]
        pieces = [h.chunk.text[a:b] for h in hits for a, b in sentences(h.chunk.text)]
        first = hits[0].chunk.text if hits else ""
        spans = sentences(first)
        lead.append(first[spans[0][0] : spans[0][1]] if spans else "")
        if pieces:
            vectors = np.asarray(embedder.embed_documents(pieces), dtype=np.float32)
            query = np.asarray(embedder.embed_query(row["question"]), dtype=np.float32)
            norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
            similar.append(pieces[int(np.argmax(vectors @ query / np.maximum(norms, 1e-9)))])
        else:
            similar.append("")
    out = []
    for name, answers in (("lead sentence", lead), ("best-similar sent.", similar)):
        f1 = [token_f1(a, r["answers"]) for a, r in zip(answers, rows, strict=True)]
        out.append(
            {
                "style": name,
                "questions": len(rows),
                "em": statistics.fmean(
                    exact_match(a, r["answers"]) for a, r in zip(answers, rows, strict=True)
                ),
                "f1": statistics.fmean(f1),
                "f1_at_least_half": statistics.fmean(f >= 0.5 for f in f1),
                "mean_chars": statistics.fmean(len(a) for a in answers),
            }
        )
    return out


def fixed_contexts(
    retriever: Any, rows: list[dict[str, Any]], k: int, gold_key: str
) -> tuple[FixedHits, float, float]:
    """Contexts retrieved once per question; answer-in-context and gold-document rates."""
    from rag.eval.metrics import answer_in_context

    fixed = FixedHits()
    hits = retriever.retrieve_batch([r["question"] for r in rows], k=k)
    for row, found in zip(rows, hits, strict=True):
        fixed.hits[row["question"]] = found
        row["in_context"] = bool(answer_in_context(row["answers"], [h.chunk.text for h in found]))
    in_context = statistics.fmean(r["in_context"] for r in rows)
    gold = statistics.fmean(
        any(h.chunk.metadata.get("doc_id") == r[gold_key] for h in fixed.hits[r["question"]])
        for r in rows
    )
    return fixed, in_context, gold


def run_wikiqa(args: argparse.Namespace, styles: list[str]) -> dict[str, Any] | None:
    from fit_evidence import split_wikiqa

    data = args.data_root / "wikiqa_train"
    if not (data / "answers.jsonl").is_file():
        print(f"no WikiQA data at {data}; skipped", file=sys.stderr)
        return None
    _, rows = split_wikiqa(read_jsonl(data / "answers.jsonl"), seed=0)
    total = len(rows)
    if args.wikiqa_limit is not None and args.wikiqa_limit < len(rows):
        rows = random.Random(args.seed).sample(rows, args.wikiqa_limit)
    retriever = PipelineRetriever(read_jsonl(data / "corpus.jsonl"), "wikiqa_train")
    args.k = args.k or retriever.k
    fixed, _, gold = fixed_contexts(retriever, rows, args.k, "doc_id")
    generator, chains = make_chains(args, retriever, fixed, styles)
    results = score_styles(chains, rows, (lambda: None) if args.warm_cache else generator.reset)
    extra = baselines(rows, fixed, retriever.embedder)
    print_table(
        f"\nWikiQA train, check half: {len(rows)} of {total} questions; {retriever.chunks} "
        f"chunks, examples/qa.yaml retrieval (hybrid), k={args.k} (gold paragraph retrieved "
        f"{gold:.3f}); similarity: all-MiniLM-L6-v2",
        results,
        extra,
    )
    return {"questions": len(rows), "gold_retrieved": gold, "styles": results, "baselines": extra}


def run_xquad(args: argparse.Namespace, styles: list[str]) -> dict[str, Any] | None:
    data = args.data_root / "xquad_en_dev"
    if not (data / "answers.jsonl").is_file():
        print(f"no XQuAD data at {data}; skipped", file=sys.stderr)
        return None
    rows = read_jsonl(data / "answers.jsonl")
    total = len(rows)
    if args.disjoint_from is not None and args.limit is not None:
        held = random.Random(args.disjoint_from).sample(rows, args.limit)
        held_ids = {id(r) for r in held}
        rows = [r for r in rows if id(r) not in held_ids]
    if args.limit is not None and args.limit < len(rows):
        rows = random.Random(args.seed).sample(rows, args.limit)
    if args.take is not None:
        rows = rows[: args.take]  # the first N of the held-out sample: fewer, never others
    retriever = PipelineRetriever(read_jsonl(data / "corpus.jsonl"), "xquad_en_dev")
    args.k = args.k or retriever.k
    chunks = retriever.chunks
    fixed, in_context, gold = fixed_contexts(retriever, rows, args.k, "context_id")
    generator, chains = make_chains(args, retriever, fixed, styles)
    results = score_styles(chains, rows, (lambda: None) if args.warm_cache else generator.reset)
    print_table(
        f"\nXQuAD en dev, {len(rows)} of {total} questions"
        f"{f' (random sample, seed {args.seed})' if len(rows) < total else ''}; {chunks} chunks, "
        f"examples/qa.yaml retrieval (hybrid), k={args.k}; answer in contexts {in_context:.3f}, "
        f"gold paragraph retrieved {gold:.3f}; holds: the answer contains the gold answer "
        "(questions whose contexts do)",
        results,
        [],
    )
    unanswerable = None
    if args.unanswerable:
        # Ask each question with the contexts retrieved for a question about another article.
        other = list(rows)
        random.Random(args.seed + 1).shuffle(other)
        swapped = FixedHits()
        for row in rows:
            donor = next(o for o in other if o["title"] != row["title"])
            other.remove(donor)
            other.append(donor)
            swapped.hits[row["question"]] = fixed.hits[donor["question"]]
        unanswerable = {}
        for style, chain in chains.items():
            if style in ("evidence", "extractive"):
                chain.retriever = swapped
                abstained = sum(chain.ask(r["question"]).finish_reason == "abstain" for r in rows)
                unanswerable[style] = abstained / len(rows)
                print(
                    f"{style} abstained on {unanswerable[style]:.3f} of questions asked with "
                    "wrong contexts"
                )
    return {
        "questions": len(rows),
        "answer_in_context": in_context,
        "gold_retrieved": gold,
        "styles": results,
        "unanswerable_abstained": unanswerable,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--datasets", default="wikiqa,xquad")
    parser.add_argument("--limit", type=int, default=100, help="XQuAD: a random sample of N")
    parser.add_argument("--wikiqa-limit", type=int, default=None, help="WikiQA: a sample of N")
    parser.add_argument(
        "--take", type=int, default=None, help="XQuAD: only the first N of the --limit sample"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--k", type=int, default=None, help="contexts per question (default: qa.yaml's chain k)"
    )
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument(
        "--wikiqa-styles", default=None, help="WikiQA: these styles instead of --styles"
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="concise/sentences answers")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--min-span-logprob", type=float, default=None)
    parser.add_argument("--span-candidates", type=int, default=None)
    parser.add_argument("--focus-sentences", type=int, default=None)
    parser.add_argument(
        "--disjoint-from",
        type=int,
        default=None,
        metavar="SEED",
        help="XQuAD: draw the sample from questions outside the --limit sample of SEED (tuning)",
    )
    parser.add_argument("--unanswerable", action="store_true")
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="keep cached prompts between calls, as a long-running process does (every prompt "
        "then reuses the chat template's opening); default: every call starts cold",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    styles = [s for s in args.styles.split(",") if s]
    payload: dict[str, Any] = {}
    for name in [d for d in args.datasets.split(",") if d]:
        if name == "wikiqa":
            chosen = styles if args.wikiqa_styles is None else args.wikiqa_styles.split(",")
            payload["wikiqa_train"] = run_wikiqa(args, [s for s in chosen if s])
        elif name == "xquad":
            payload["xquad_en_dev"] = run_xquad(args, styles)
        else:
            parser.error(f"unknown dataset {name!r}; known: wikiqa, xquad")
    if args.json:
        for result in payload.values():
            for r in (result or {}).get("styles", []):
                r.pop("samples", None)
        print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
