"""Retrieval quality: ragline's hybrid candidates against the plain RRF baseline; picks a default.

    .venv/bin/python benchmarks/retrieval_quality.py [--data ../shared/data] [--cache DIR]

Datasets: every BEIR-format set of ``../shared/data`` (cranfield, nfcorpus_orig, xquad_en_dev,
wikiqa_train). A document is read as ``loader.files`` reads a JSONL row: its title, a blank line
and its text, with the title also in ``metadata["title"]``.

**Baseline** (issue 21's "twenty lines"): bm25s (its defaults: k1 1.5, b 0.75, English stop
words and stemmer) and all-MiniLM-L6-v2 each rank whole documents (the model truncates at its
256-token window) in a faiss ``IndexFlatIP``, top 100 each, fused by reciprocal rank with k=60.

**Candidates**: ragline's components as a pipeline file sets them up: ``splitter.recursive``
chunks (``chunk_size`` up to the model's window, ``chunk_overlap``; greedy, ``balanced``, or
balanced with ``sentence_boundaries``)
embedded by ``embedder.sentence_transformers`` into ``store.faiss``, ``retriever.dense``
(with or without pseudo-relevance ``feedback``) and ``retriever.bm25`` (k1/b), with or without
contextual indexing (``context_template``), fused by ``retriever.hybrid``'s own ``fuse`` (rrf
with rrf_k and weights, weighted, or zscore; at document or chunk level; its own candidate
depth) from lists retrieved once per query, so the fusion grid costs no retrieval.

The baseline keeps what ``bm25s.retrieve(k=100)`` returns, zero-score documents included (in
index order), as the twenty lines would; the baseline without them is printed alongside.

Runs are scored with pytrec_eval (nDCG@10, Recall@100), a document at its best chunk, as
``rag search --format trec`` does. The chosen setting maximizes the smallest gain over the
baseline across datasets (one setting for all, not a per-dataset best); its robustness is shown
by leave-one-dataset-out (choose on three sets, score on the fourth) and by how many settings
next to it also beat the baseline everywhere. Embeddings are cached on disk under ``--cache``
(keyed by model and text hash), so a second run embeds nothing. The script exits quietly,
saying why, when the data is absent.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATASETS = ("cranfield", "nfcorpus_orig", "xquad_en_dev", "wikiqa_train")
MODEL = "all-MiniLM-L6-v2"
DEPTH = 200  # chunks asked of dense and of BM25 per query (the hybrid's depth for k=100)
MARGIN = 0.01  # the default must beat the baseline by this much nDCG@10 on every set
TITLE_TEMPLATE = "{title}\n{text}"

# The grid. Chunking: (chunk_size, chunk_overlap) in model tokens; 254 fills MiniLM's window
# of 256 with its two special tokens, 240 leaves room for a title line.
CHUNKINGS = ((240, 0),)  # more sizes and overlaps: --chunkings, e.g. 254:0 240:32
SPLITS = {  # splitter.recursive's options per split label
    "gre": {"balanced": False},
    "bal": {"balanced": True},
    "bal+sen": {"balanced": True, "sentence_boundaries": True},
}
TEMPLATES = (None, TITLE_TEMPLATE)
FEEDBACKS = ((0, 0.0), (3, 0.5))  # retriever.dense's (feedback, feedback_weight)
BM25_PARAMS = ((1.2, 0.75), (1.5, 0.75))  # 0.9/0.4 lost everywhere in the 2026-12-04 grid
FUSION_LEVELS = ("document", "chunk")
RRF_KS = (60,)  # rrf_k barely matters here (20-100 within 0.002 on xquad)
RRF_WEIGHTS = ((1.0, 1.0), (1.0, 1.5), (1.5, 1.0))
WEIGHTED_WEIGHTS = ((0.5, 0.5),)  # min-max sums lost 0.011-0.040 on cranfield (2026-12-04)
ZSCORE_WEIGHTS = ((1.0, 0.5), (1.0, 0.7), (1.0, 0.85), (1.0, 1.0))
ZSCORE_CANDIDATES = (None, 100)  # the hybrid's candidates (None: its default max(2k, 50))
QA_CONTEXTS = 4  # chain.rag's k in examples/qa.yaml: answer-in-context is measured at this depth
CHUNKS_PER_DOCUMENT = (1, 2, 3)


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as lines:
        next(lines)  # header
        for line in lines:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    return qrels


def doc_run(hit_lists, query_ids, limit: int = 100) -> dict[str, dict[str, float]]:
    """TREC-style run: each document once, at its best chunk, at most ``limit`` documents."""
    run: dict[str, dict[str, float]] = {}
    for query_id, hits in zip(query_ids, hit_lists):
        docs: dict[str, float] = {}
        for hit in hits:
            doc_id = str(hit.chunk.metadata["doc_id"])
            if doc_id not in docs and len(docs) < limit:
                # a strictly decreasing score keeps the order (pytrec_eval sorts by score)
                docs[doc_id] = float(limit - len(docs))
        run[query_id] = docs
    return run


def ranked_run(rankings: list[list[str]], query_ids) -> dict[str, dict[str, float]]:
    return {
        q: {d: float(len(docs) - i) for i, d in enumerate(docs)}
        for q, docs in zip(query_ids, rankings)
    }


def evaluate(qrels, run, measures=("ndcg_cut_10", "recall_100")) -> dict[str, float]:
    import pytrec_eval

    names = {"ndcg_cut_10": "ndcg_cut.10", "recall_100": "recall.100"}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {names[m] for m in measures})
    per_query = evaluator.evaluate(run)
    n = len(qrels)  # queries without any hit count as 0
    return {m: sum(q[m] for q in per_query.values()) / n for m in measures}


def answer_in_context(hit_lists, query_ids, answers: dict[str, list[str]]) -> float:
    found = 0
    for query_id, hits in zip(query_ids, hit_lists):
        text = " ".join(h.chunk.text for h in hits).lower()
        found += any(a.lower() in text for a in answers[query_id])
    return found / len(query_ids)


def documents(name: str, corpus: list[dict]) -> list[Any]:
    """The corpus as ``loader.files`` reads JSONL rows: title, blank line, text."""
    from rag.core.documents import Document

    result = []
    for doc in corpus:
        title = (doc.get("title") or "").strip()
        body = (doc.get("text") or "").strip()
        text = f"{title}\n\n{body}" if title else body
        if not text:
            continue  # cranfield has two empty documents
        metadata = {"source": f"{name}/{doc['_id']}", "doc_id": doc["_id"]}
        if title:
            metadata["title"] = title
        result.append(Document(id=f"{name}/{doc['_id']}", text=text, metadata=metadata))
    return result


@dataclass
class Candidate:
    """One way of indexing (chunking, template, BM25 parameters) and its two ranked lists."""

    chunk_size: int
    overlap: int
    split: str  # a key of SPLITS
    template: str | None
    feedback: int
    k1: float
    b: float
    dense: list[list[Any]]
    bm25: list[list[Any]]
    dense_seconds: float
    bm25_seconds: float
    chunks: int
    vectors: list[Any]  # the embedded chunks, kept to rebuild the store with another index

    @property
    def indexing(self) -> str:
        context = "title" if self.template else "-"
        return (
            f"c{self.chunk_size}/o{self.overlap} {self.split} ctx={context:<5} fb={self.feedback} "
            f"bm25 {self.k1:g}/{self.b:g}"
        )


class Dataset:
    """One dataset: queries, qrels, the baseline run, and the candidates' ranked lists."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.qrels = read_qrels(folder / "qrels" / "test.tsv")
        queries = [q for q in read_jsonl(folder / "queries.jsonl") if q["_id"] in self.qrels]
        self.query_ids = [q["_id"] for q in queries]
        self.query_texts = [q["text"] for q in queries]
        answers_file = folder / "answers.jsonl"
        self.answers = (
            {row["_id"]: row["answers"] for row in read_jsonl(answers_file)}
            if answers_file.exists()
            else None
        )
        self.documents = documents(name, read_jsonl(folder / "corpus.jsonl"))
        self.candidates: list[Candidate] = []
        self.baseline: dict[str, float] = {}
        self.baseline_inputs: dict[str, float] = {}
        self.baseline_positive: dict[str, float] = {}  # bm25s's zero-score documents dropped

    def ndcg10(self, hit_lists) -> float:
        return evaluate(self.qrels, doc_run(hit_lists, self.query_ids), ("ndcg_cut_10",))[
            "ndcg_cut_10"
        ]

    def full(self, hit_lists) -> dict[str, float]:
        return evaluate(self.qrels, doc_run(hit_lists, self.query_ids))

    # -- the baseline ----------------------------------------------------------------------
    def run_baseline(self, embedder) -> None:
        """bm25s + MiniLM on whole documents, faiss flat, RRF k=60 (no ragline component)."""
        import bm25s
        import faiss
        import numpy as np
        import Stemmer

        texts = [d.text for d in self.documents]
        ids = [str(d.metadata["doc_id"]) for d in self.documents]
        stemmer = Stemmer.Stemmer("english")
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False))
        query_tokens = bm25s.tokenize(
            self.query_texts, stopwords="en", stemmer=stemmer, show_progress=False
        )
        results, scores = retriever.retrieve(
            query_tokens, k=min(100, len(texts)), show_progress=False
        )
        bm25_lists = [[ids[i] for i in row] for row in results]
        positive_lists = [
            [ids[i] for i, score in zip(row, row_scores) if score > 0]
            for row, row_scores in zip(results, scores)
        ]
        vectors = embedder.embed_documents(texts)  # cached: the same texts every run
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors))
        _, rows = index.search(embedder.embed_queries(self.query_texts), min(100, len(texts)))
        dense_lists = [[ids[i] for i in row if i >= 0] for row in rows]

        def rrf(lexical_lists: list[list[str]]) -> list[list[str]]:
            fused = []
            for dense, lexical in zip(dense_lists, lexical_lists):
                scores: dict[str, float] = {}
                for ranking in (dense, lexical):
                    for rank, doc_id in enumerate(ranking, start=1):
                        scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (60 + rank)
                fused.append(sorted(scores, key=lambda d: -scores[d])[:100])
            return fused

        self.baseline = evaluate(self.qrels, ranked_run(rrf(bm25_lists), self.query_ids))
        self.baseline_positive = evaluate(
            self.qrels, ranked_run(rrf(positive_lists), self.query_ids)
        )
        for key, lists in (("bm25s", bm25_lists), ("MiniLM", dense_lists)):
            self.baseline_inputs[key] = evaluate(
                self.qrels, ranked_run(lists, self.query_ids), ("ndcg_cut_10",)
            )["ndcg_cut_10"]

    # -- ragline's candidates -----------------------------------------------------------------
    def run_candidates(self, embedder, chunkings) -> None:
        from rag.connectors.retrievers.bm25 import BM25Retriever
        from rag.connectors.retrievers.dense import DenseRetriever
        from rag.connectors.stores.faiss import FaissStore
        from rag.pipelines.splitters import RecursiveSplitter

        self.query_vectors = embedder.embed_queries(self.query_texts)
        queries = _QueryVectors(dict(zip(self.query_texts, self.query_vectors)))
        for (chunk_size, overlap), split, template in itertools.product(
            chunkings, SPLITS, TEMPLATES
        ):
            if template and not any("title" in d.metadata for d in self.documents):
                continue  # no titles: the template renders every chunk as its text alone
            splitter = RecursiveSplitter(
                chunk_size=chunk_size, chunk_overlap=overlap, tokenizer=MODEL, **SPLITS[split]
            )
            chunks = splitter.run(documents=self.documents)["chunks"]
            embedder.context_template = template
            embedder.run(chunks)
            store = FaissStore()
            store.write(chunks)
            bm25_runs = []
            for k1, b in BM25_PARAMS:
                bm25 = BM25Retriever(store=store, k1=k1, b=b, context_template=template)
                bm25.warm_up()
                started = time.perf_counter()
                bm25_lists = bm25.retrieve_batch(self.query_texts, k=DEPTH)
                bm25_seconds = (time.perf_counter() - started) / len(self.query_texts)
                bm25_runs.append((k1, b, bm25_lists, bm25_seconds))
            for feedback, weight in FEEDBACKS:
                dense = DenseRetriever(
                    embedder=queries, store=store, feedback=feedback, feedback_weight=weight
                )
                started = time.perf_counter()
                dense_lists = dense.retrieve_batch(self.query_texts, k=DEPTH)
                dense_seconds = (time.perf_counter() - started) / len(self.query_texts)
                for k1, b, bm25_lists, bm25_seconds in bm25_runs:
                    self.candidates.append(
                        Candidate(
                            chunk_size, overlap, split, template, feedback, k1, b,
                            dense_lists, bm25_lists, dense_seconds, bm25_seconds, len(chunks),
                            chunks,
                        )
                    )  # fmt: skip
            store.close()
        embedder.context_template = None

    def candidate(self, indexing: str) -> Candidate | None:
        """The candidate with this indexing; without titles, its untemplated twin."""
        for c in self.candidates:
            if c.indexing == indexing:
                return c
        plain = indexing.replace("ctx=title", "ctx=-    ")
        return next((c for c in self.candidates if c.indexing == plain), None)

    def hybrid_hits(self, candidate: Candidate, fusion: dict[str, Any], k: int) -> list[list[Any]]:
        from rag.connectors.retrievers.hybrid import HybridRetriever

        hybrid = HybridRetriever(retrievers=[object(), object()], k=k, **fusion)  # type: ignore[list-item]
        depth = hybrid._depth(k)  # the component's own candidate depth for this k
        return [
            hybrid.fuse([dense[:depth], bm25[:depth]], k=k)
            for dense, bm25 in zip(candidate.dense, candidate.bm25)
        ]


def fusions() -> list[dict[str, Any]]:
    settings = []
    for level in FUSION_LEVELS:
        for rrf_k, weights in itertools.product(RRF_KS, RRF_WEIGHTS):
            settings.append(
                {"fusion": "rrf", "rrf_k": rrf_k, "weights": list(weights), "level": level}
            )
        for weights in WEIGHTED_WEIGHTS:
            settings.append({"fusion": "weighted", "weights": list(weights), "level": level})
        for weights, candidates in itertools.product(ZSCORE_WEIGHTS, ZSCORE_CANDIDATES):
            setting = {"fusion": "zscore", "weights": list(weights), "level": level}
            if candidates:
                setting["candidates"] = candidates
            settings.append(setting)
    return settings


def fusion_label(setting: dict[str, Any]) -> str:
    weights = "/".join(f"{w:g}" for w in setting["weights"])
    if setting["fusion"] == "rrf":
        return f"rrf k={setting['rrf_k']:<3} w={weights:<7} {setting['level'][:3]}"
    if setting["fusion"] == "zscore":
        depth = f"c={setting.get('candidates', 'def')}"
        return f"z w={weights:<7} {depth:<6} {setting['level'][:3]}"
    return f"wsum w={weights:<13} {setting['level'][:3]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ragline-bench-quality"))
    parser.add_argument("--all-rows", action="store_true", help="print every grid row")
    parser.add_argument(
        "--embed-only",
        action="store_true",
        help="only fill the embedding cache (e.g. one process per dataset on a busy machine)",
    )
    parser.add_argument(
        "--chunkings",
        nargs="*",
        default=[f"{size}:{overlap}" for size, overlap in CHUNKINGS],
        help="chunk_size:chunk_overlap pairs to try (each embeds the corpora once more)",
    )
    args = parser.parse_args(argv)
    chunkings = [tuple(int(n) for n in pair.split(":")) for pair in args.chunkings]
    folders = {name: args.data / name for name in args.datasets}
    missing = [str(f) for f in folders.values() if not (f / "corpus.jsonl").exists()]
    if missing:
        print(
            f"skipped: dataset folder(s) not found: {', '.join(missing)} (this benchmark reads "
            "the BEIR-format sets of ../shared/data; pass --data DIR)"
        )
        return 0
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder

    embedder = SentenceTransformersEmbedder(
        model=MODEL, device="auto", batch_size=64, cache_dir=str(args.cache / "embeddings")
    )
    embedder.warm_up()
    if args.embed_only:
        fill_cache(folders, embedder, chunkings)
        return 0
    datasets = []
    for name, folder in folders.items():
        started = time.perf_counter()
        d = Dataset(name, folder)
        d.run_baseline(embedder)
        d.run_candidates(embedder, chunkings)
        print(
            f"  {name}: {len(d.documents)} documents, {len(d.query_ids)} queries, "
            f"{len(d.candidates)} indexings in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
        datasets.append(d)

    print("baseline: bm25s (k1 1.5, b 0.75) + MiniLM on whole documents, faiss flat, RRF k=60")
    print(
        f"{'dataset':<15}{'docs':>6}{'queries':>8}{'bm25s':>8}{'MiniLM':>8}{'RRF':>8}{'R@100':>8}"
        f"{'RRF, bm25s score>0 only':>25}"
    )
    for d in datasets:
        print(
            f"{d.name:<15}{len(d.documents):>6}{len(d.query_ids):>8}"
            f"{d.baseline_inputs['bm25s']:>8.4f}{d.baseline_inputs['MiniLM']:>8.4f}"
            f"{d.baseline['ndcg_cut_10']:>8.4f}{d.baseline['recall_100']:>8.4f}"
            f"{d.baseline_positive['ndcg_cut_10']:>25.4f}"
        )

    # -- the grid: every indexing x every fusion, nDCG@10 gain over the baseline ------------------
    indexings = list(dict.fromkeys(c.indexing for d in datasets for c in d.candidates))
    settings = fusions()
    print(
        f"\ngrid: chunking (size/overlap) {chunkings}, split {SPLITS}, context "
        f"template {list(TEMPLATES)}, dense feedback (n, weight) {list(FEEDBACKS)}, "
        f"BM25 (k1, b) {list(BM25_PARAMS)}; fusion rrf with rrf_k {list(RRF_KS)} and (dense, "
        f"bm25) weights {[list(w) for w in RRF_WEIGHTS]}, weighted sum with "
        f"{[list(w) for w in WEIGHTED_WEIGHTS]}, zscore with {[list(w) for w in ZSCORE_WEIGHTS]} "
        f"and candidates {list(ZSCORE_CANDIDATES)}, level {list(FUSION_LEVELS)}: "
        f"{len(indexings)} x {len(settings)} = {len(indexings) * len(settings)} settings. "
        "Cells: nDCG@10 minus the baseline's."
    )
    results: list[tuple[str, dict[str, Any], dict[str, float]]] = []
    started = time.perf_counter()
    for indexing in indexings:
        for fusion in settings:
            scores = {}
            for d in datasets:
                candidate = d.candidate(indexing)
                if candidate is not None:
                    scores[d.name] = d.ndcg10(d.hybrid_hits(candidate, fusion, 10))
            if len(scores) == len(datasets):
                results.append((indexing, fusion, scores))
    print(f"({len(results)} settings fused and scored in {time.perf_counter() - started:.0f}s)")

    def gains(scores: dict[str, float], names=None) -> list[float]:
        return [
            scores[d.name] - d.baseline["ndcg_cut_10"]
            for d in datasets
            if names is None or d.name in names
        ]

    ranked = sorted(results, key=lambda r: (min(gains(r[2])), statistics.mean(gains(r[2]))))[::-1]
    header = "".join(f"{d.name[:12]:>13}" for d in datasets)
    print(f"\n{'indexing':<46}{'fusion':<31}{header}{'min':>8}{'mean':>8}")
    shown = ranked if args.all_rows else [*ranked[:40], None, *ranked[-5:]]
    for row in shown:
        if row is None:
            print(f"... ({len(ranked) - 45} more; --all-rows prints them)")
            continue
        indexing, fusion, scores = row
        cells = "".join(f"{g:>+13.4f}" for g in gains(scores))
        print(
            f"{indexing:<46}{fusion_label(fusion):<31}{cells}"
            f"{min(gains(scores)):>+8.4f}{statistics.mean(gains(scores)):>+8.4f}"
        )
    winners = [r for r in results if min(gains(r[2])) >= MARGIN]
    print(
        f"\n{len(winners)} of {len(results)} settings beat the baseline by >= {MARGIN} everywhere"
    )

    # -- the chosen setting and its robustness -------------------------------------------------
    chosen_indexing, chosen_fusion, _ = ranked[0]
    print(f"\nchosen: {chosen_indexing} | {fusion_label(chosen_fusion)}")
    print("leave one dataset out (choose on the other sets, score the held-out one):")
    for held in datasets if len(datasets) > 1 else []:
        others = [d.name for d in datasets if d is not held]
        pick = max(
            results,
            key=lambda r: (min(gains(r[2], others)), statistics.mean(gains(r[2], others))),
        )
        gain = pick[2][held.name] - held.baseline["ndcg_cut_10"]
        print(
            f"  held out {held.name:<14} picked {pick[0]} | {fusion_label(pick[1])}: "
            f"gain on {held.name} {gain:+.4f}"
        )
    print("the chosen indexing with its fusion varied one step (min gain over datasets):")
    for key, values in (("rrf_k", RRF_KS), ("level", FUSION_LEVELS)):
        if key not in chosen_fusion:
            continue
        for value in values:
            variant = dict(chosen_fusion, **{key: value})
            row = next((r for r in results if r[0] == chosen_indexing and r[1] == variant), None)
            if row:
                print(f"  {key}={value!s:<10}min gain {min(gains(row[2])):+.4f}")

    print(f"\n{'dataset':<15}{'system':<34}{'nDCG@10':>9}{'R@100':>9}{'ms/query':>10}")
    for d in datasets:
        candidate = d.candidate(chosen_indexing)
        assert candidate is not None
        print(
            f"{d.name:<15}{'baseline (RRF k=60, whole docs)':<34}"
            f"{d.baseline['ndcg_cut_10']:>9.4f}{d.baseline['recall_100']:>9.4f}"
        )
        rows = [
            ("ragline dense only", d.full(candidate.dense), candidate.dense_seconds),
            ("ragline bm25 only", d.full(candidate.bm25), candidate.bm25_seconds),
            (
                "ragline hybrid (chosen)",
                {
                    "ndcg_cut_10": d.ndcg10(d.hybrid_hits(candidate, chosen_fusion, 10)),
                    "recall_100": d.full(d.hybrid_hits(candidate, chosen_fusion, 100))[
                        "recall_100"
                    ],
                },
                candidate.dense_seconds + candidate.bm25_seconds,
            ),
        ]
        for name, metrics, seconds in rows:
            print(
                f"{d.name:<15}{name:<34}{metrics['ndcg_cut_10']:>9.4f}"
                f"{metrics['recall_100']:>9.4f}{seconds * 1000:>10.1f}"
            )
        print(f"{d.name:<15}{'chunks':<34}{candidate.chunks:>9}")

    # -- QA contexts: how many chunks per document --------------------------------------------
    for d in datasets:
        if d.answers is None:
            continue
        candidate = d.candidate(chosen_indexing)
        assert candidate is not None
        print(f"\n{d.name}: gold answer in the top {QA_CONTEXTS} contexts (chain.rag k=4)")
        for per_doc in CHUNKS_PER_DOCUMENT:
            setting = dict(chosen_fusion, chunks_per_document=per_doc)
            hits = d.hybrid_hits(candidate, setting, QA_CONTEXTS)
            share = answer_in_context(hits, d.query_ids, d.answers)
            print(f"  hybrid (chosen), chunks_per_document={per_doc:<3}{share:.4f}")

    compressed_indexes(datasets, chosen_indexing, chosen_fusion)
    return 0


def fill_cache(folders: dict[str, Path], embedder, chunkings) -> None:
    """Embed what a full run embeds, in the same order, in slices (each cached as it ends)."""
    from rag.pipelines.splitters import RecursiveSplitter

    def embed(texts: list[str]) -> None:
        for start in range(0, len(texts), 512):
            embedder.embed_documents(texts[start : start + 512])

    for name, folder in folders.items():
        docs = documents(name, read_jsonl(folder / "corpus.jsonl"))
        embed([d.text for d in docs])
        for (size, overlap), split, template in itertools.product(chunkings, SPLITS, TEMPLATES):
            splitter = RecursiveSplitter(
                chunk_size=size, chunk_overlap=overlap, tokenizer=MODEL, **SPLITS[split]
            )
            chunks = splitter.run(documents=docs)["chunks"]
            embedder.context_template = template
            embed([embedder.index_text(c) for c in chunks])
        embedder.context_template = None
        print(f"  {name}: cached", file=sys.stderr)


COMPRESSED = (
    ("flat", {}),
    ("int8", {}),
    ("binary", {}),  # int8 rescoring
    ("binary", {"rescore": "float"}),
)


def compressed_indexes(datasets: list[Dataset], indexing: str, fusion: dict[str, Any]) -> None:
    """nDCG@10 of the chosen setting with each ``store.faiss`` index, and memory per vector."""
    from rag.connectors.retrievers.dense import DenseRetriever
    from rag.connectors.stores.faiss import FaissStore

    print(
        "\ncompressed indexes (store.faiss index: ...), the chosen setting; nDCG@10 dense only / "
        "hybrid, and the hybrid's difference from flat"
    )
    print(
        f"{'dataset':<15}{'index':<22}{'bytes/vector':>13}{'dense':>9}{'hybrid':>9}{'vs flat':>9}"
    )
    worst: dict[str, float] = {}
    for d in datasets:
        candidate = d.candidate(indexing)
        assert candidate is not None
        by_text = dict(zip(d.query_texts, d.query_vectors))
        flat_hybrid = None
        for kind, options in COMPRESSED:
            store = FaissStore(index=kind, **options)
            store.write(candidate.vectors)
            queries = _QueryVectors(by_text)
            dense = DenseRetriever(
                embedder=queries,
                store=store,
                feedback=candidate.feedback,
                feedback_weight=dict(FEEDBACKS)[candidate.feedback],
            ).retrieve_batch(d.query_texts, k=DEPTH)
            index = store._index
            per_vector = (
                index.bytes_per_vector() if hasattr(index, "bytes_per_vector") else 4 * index.d
            )
            variant = Candidate(**{**candidate.__dict__, "dense": dense})
            hybrid = d.ndcg10(d.hybrid_hits(variant, fusion, 10))
            if flat_hybrid is None:
                flat_hybrid = hybrid
            name = kind + (f" ({options['rescore']} rescore)" if options else "")
            if kind == "binary" and not options:
                name = "binary (int8 rescore)"
            worst[name] = min(worst.get(name, 0.0), hybrid - flat_hybrid)
            print(
                f"{d.name:<15}{name:<22}{per_vector:>13.0f}{d.ndcg10(dense):>9.4f}{hybrid:>9.4f}"
                f"{hybrid - flat_hybrid:>+9.4f}"
            )
            store.close()
    print(
        "largest loss against flat over the datasets: "
        + ", ".join(f"{name} {loss:+.4f}" for name, loss in worst.items() if name != "flat")
    )


class _QueryVectors:
    """Stands in for the embedder at query time: the queries are embedded once."""

    def __init__(self, by_text: dict[str, Any]) -> None:
        self.by_text = by_text

    def embed_queries(self, queries):
        return [self.by_text[q] for q in queries]

    def embed_query(self, query):
        return self.by_text[query]

    def warm_up(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
