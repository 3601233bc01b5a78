"""Answer quality of ``chain.rag`` per answer style with the bundled SmolLM2-135M, on XQuAD (en).

    .venv/bin/python benchmarks/answer_quality.py [--data ../shared/data/xquad_en_dev]
        [--limit N] [--seed 0] [--k 3] [--styles extractive,concise,sentences] [--json]
        [--span-search ranked|greedy] [--unanswerable] [--warm-cache]

Extractive answers use the chain's default ``span_search: ranked``
(:mod:`rag.chains.span_ranking`, whose weights ``benchmarks/fit_span_ranker.py`` fits on the
questions outside the ``--limit 100 --seed 0`` sample); ``--span-search greedy`` measures the
token-by-token constrained decoding instead.

The paragraphs of ``corpus.jsonl`` are split (``splitter.recursive``, 128 tokens of the embedding
model, overlap 16), embedded with all-MiniLM-L6-v2 into ``store.faiss`` and retrieved densely
(``retriever.dense``). Contexts are retrieved once per question and reused by every style, so the
styles answer from the same contexts. Styles alternate per question, and the model's cached
prompts (the generation context's and the span scorer's) are forgotten before every call, so load
drift hits every style alike and no call reuses an evaluated prompt (``--warm-cache`` keeps them,
as a long-running process does: each prompt then reuses the chat template's opening).

Printed per style: EM and token F1 (SQuAD v1.1 normalization, :mod:`rag.eval.metrics`), the rate
of grounded answers (extractive: a span proven to be copied from a cited context), abstentions,
citation precision (cited chunks that come from the gold paragraph, over answers that cite),
the median seconds per question, mean answer length; and for all: answer-in-context (the gold
answer occurs in the retrieved contexts) and the extractive/concise median latency ratio.

``--limit N`` answers a fixed random sample of N questions (``--seed``), the same sample for
every style. With ``--unanswerable`` each sampled question is also asked with the contexts of
another article (a question the contexts cannot answer), to measure abstention.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "xquad_en_dev"
STYLES = ("extractive", "concise", "sentences")
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


def build_retriever(corpus: list[dict[str, Any]], k: int) -> Any:
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
    from rag.connectors.retrievers.dense import DenseRetriever
    from rag.connectors.stores.faiss import FaissStore
    from rag.core import Document
    from rag.pipelines.splitters import RecursiveSplitter

    embedder = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="auto")
    splitter = RecursiveSplitter(chunk_size=128, chunk_overlap=16, tokenizer="all-MiniLM-L6-v2")
    documents = [
        Document(id=d["_id"], text=d["text"], metadata={"source": d["_id"], "doc_id": d["_id"]})
        for d in corpus
    ]
    chunks = splitter.run(documents)["chunks"]
    embedder.warm_up()
    vectors = embedder.embed_documents([c.text for c in chunks])
    for chunk, vector in zip(chunks, vectors, strict=True):
        chunk.embedding = vector
    store = FaissStore(path=None)
    store.warm_up()
    store.write(chunks)
    return DenseRetriever(embedder=embedder, store=store, k=k), len(chunks)


def strip_citations(text: str) -> str:
    return _CITATION.sub(" ", text).strip()


def score_styles(
    chains: dict[str, Any], rows: list[dict[str, Any]], reset: Any
) -> list[dict[str, Any]]:
    """Answer every question in every style, alternating styles per question (so drift in the
    machine's load hits all styles alike) and forgetting the model's cached prompts before each
    call (so no call reuses an evaluated prompt)."""
    from rag.eval.metrics import exact_match, token_f1

    keys = ("em", "f1", "seconds", "lengths", "precisions")
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
                    c.id for c in answer.contexts if c.metadata.get("doc_id") == row["context_id"]
                }
                record["precisions"].append(sum(i in gold for i in cited) / len(cited))
            if len(samples[style]) < 3:
                samples[style].append((row["question"], answer.text, row["answers"][0]))
    count = len(rows)
    results = []
    for style, record in data.items():
        precisions = record["precisions"]
        results.append(
            {
                "style": style,
                "questions": count,
                "em": statistics.fmean(record["em"]),
                "f1": statistics.fmean(record["f1"]),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="a random sample of N questions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=3, help="contexts per question")
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--max-tokens", type=int, default=64, help="concise/sentences answers")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--min-span-logprob", type=float, default=None)
    parser.add_argument("--max-span-tokens", type=int, default=None)
    parser.add_argument("--span-end-bias", type=float, default=None)
    parser.add_argument("--span-search", choices=("ranked", "greedy"), default=None)
    parser.add_argument("--span-candidates", type=int, default=None)
    parser.add_argument("--focus-sentences", type=int, default=None)
    parser.add_argument(
        "--span-prior",
        default=None,
        help="extractive span_prior as JSON (e.g. '{\"sentences\": 2}'), or 'none' for no prior",
    )
    parser.add_argument(
        "--disjoint-from",
        type=int,
        default=None,
        metavar="SEED",
        help="draw the sample from questions outside the --limit sample of SEED (for tuning)",
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
    if not (args.data / "answers.jsonl").is_file():
        print(f"no XQuAD data at {args.data} (answers.jsonl); nothing to measure", file=sys.stderr)
        return 0

    from rag.chains import RagChain
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator
    from rag.eval.metrics import answer_in_context

    corpus = read_jsonl(args.data / "corpus.jsonl")
    rows = read_jsonl(args.data / "answers.jsonl")
    total = len(rows)
    if args.disjoint_from is not None and args.limit is not None:
        held = random.Random(args.disjoint_from).sample(rows, args.limit)
        held_ids = {id(r) for r in held}
        rows = [r for r in rows if id(r) not in held_ids]
    if args.limit is not None and args.limit < len(rows):
        rows = random.Random(args.seed).sample(rows, args.limit)
    started = time.perf_counter()
    retriever, chunk_count = build_retriever(corpus, args.k)
    fixed = FixedHits()
    hits = retriever.retrieve_batch([r["question"] for r in rows], k=args.k)
    for row, found in zip(rows, hits, strict=True):
        fixed.hits[row["question"]] = found
    in_context = statistics.fmean(
        answer_in_context(r["answers"], [h.chunk.text for h in fixed.hits[r["question"]]])
        for r in rows
    )
    gold_retrieved = statistics.fmean(
        any(h.chunk.metadata.get("doc_id") == r["context_id"] for h in fixed.hits[r["question"]])
        for r in rows
    )
    print(
        f"indexed {len(corpus)} paragraphs as {chunk_count} chunks and retrieved k={args.k} for "
        f"{len(rows)} of {total} questions in {time.perf_counter() - started:.0f}s",
        file=sys.stderr,
    )

    generator = LlamaCppGenerator(
        model="smollm2-135m-instruct",
        context_size=2048,
        threads=args.threads,
        max_tokens=args.max_tokens,
        temperature=0.0,
        seed=0,
    )
    generator.warm_up()
    options: dict[str, Any] = {"min_span_logprob": args.min_span_logprob}
    if args.max_span_tokens is not None:
        options["max_span_tokens"] = args.max_span_tokens
    if args.span_end_bias is not None:
        options["span_end_bias"] = args.span_end_bias
    for name in ("span_search", "span_candidates", "focus_sentences"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.span_prior is not None:
        options["span_prior"] = None if args.span_prior == "none" else json.loads(args.span_prior)
    base = RagChain(retriever=fixed, generator=generator, k=args.k, **options)
    chains = {style: base.with_style(style) for style in styles}
    results = score_styles(chains, rows, (lambda: None) if args.warm_cache else generator.reset)

    unanswerable = None
    if args.unanswerable and "extractive" in styles:
        # Ask each question with the contexts retrieved for a question about another article.
        other = list(rows)
        random.Random(args.seed + 1).shuffle(other)
        swapped = FixedHits()
        for row in rows:
            donor = next(o for o in other if o["title"] != row["title"])
            other.remove(donor)
            other.append(donor)
            swapped.hits[row["question"]] = fixed.hits[donor["question"]]
        chain = RagChain(
            retriever=swapped,
            generator=generator,
            k=args.k,
            answer_style="extractive",
            **options,
        )
        abstained = sum(chain.ask(r["question"]).finish_reason == "abstain" for r in rows)
        unanswerable = abstained / len(rows)

    print(
        f"\nXQuAD en dev, {len(rows)} of {total} questions"
        f"{f' (random sample, seed {args.seed})' if len(rows) < total else ''}; "
        f"dense retrieval k={args.k}; SmolLM2-135M-Instruct Q4_1 via llama.cpp, greedy"
    )
    print(f"answer in contexts: {in_context:.3f}   gold paragraph retrieved: {gold_retrieved:.3f}")
    header = (
        f"{'style':<11} {'EM':>6} {'F1':>6} {'grounded':>9} {'abstain':>8} {'cite prec':>10} "
        f"{'median s':>9} {'chars':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        precision = "-" if r["citation_precision"] is None else f"{r['citation_precision']:.3f}"
        print(
            f"{r['style']:<11} {r['em']:>6.3f} {r['f1']:>6.3f} {r['grounded']:>9.3f} "
            f"{r['abstained']:>8.3f} {precision:>10} {r['median_s']:>9.2f} {r['mean_chars']:>6.0f}"
        )
    by_style = {r["style"]: r for r in results}
    ratio = None
    if "extractive" in by_style and "concise" in by_style:
        ratio = by_style["extractive"]["median_s"] / by_style["concise"]["median_s"]
        print(f"extractive / concise median latency: {ratio:.2f}x")
    if unanswerable is not None:
        print(f"extractive abstained on {unanswerable:.3f} of questions asked with wrong contexts")
    for r in results:
        for question, text, gold in r["samples"]:
            print(f"  [{r['style']}] {question} -> {text!r} (gold {gold!r})", file=sys.stderr)
    if args.json:
        payload = {
            "questions": len(rows),
            "total_questions": total,
            "answer_in_context": in_context,
            "gold_retrieved": gold_retrieved,
            "styles": [{k: v for k, v in r.items() if k != "samples"} for r in results],
            "extractive_over_concise_latency": ratio,
            "unanswerable_abstained": unanswerable,
        }
        print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
