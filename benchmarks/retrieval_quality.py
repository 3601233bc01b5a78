"""Retrieval quality of dense, BM25 and hybrid retrieval; chooses the hybrid defaults.

    .venv/bin/python benchmarks/retrieval_quality.py [--data ../shared/data] [--chunk-size 128]

Datasets: cranfield, nfcorpus_orig and xquad_en_dev of ``../shared/data`` (BEIR layout). Each
document (title + text) is split as the example pipelines split files (``splitter.recursive``,
128 model tokens, overlap 16, the all-MiniLM-L6-v2 tokenizer; ``--chunk-size 0`` keeps one chunk
per document, which makes BM25 comparable with the reference BM25 of ``../shared/data/README.md``:
Porter stemmer, k1=0.9, b=0.4, nDCG@10 0.3515 on cranfield, 0.3349 on nfcorpus_orig). Chunks are
embedded once with all-MiniLM-L6-v2 (the packaged model) into ``store.faiss``; the embedder's
on-disk cache and the stores under ``--cache`` make later runs skip embedding.

Dense and BM25 are each asked once per query for their top ``DEPTH`` chunks; every hybrid
setting of the grid (fusion, weights, rrf_k, fusion level) is then computed from those same lists
with ``HybridRetriever.fuse`` (the component's own code, with its default candidate depth
``max(2k, 50)``), so the grid costs no extra retrieval. Runs are scored with pytrec_eval (nDCG@10,
Recall@100); a document is ranked at its best chunk, as ``rag search --format trec`` does.

The chosen setting is the one with the highest mean, over the datasets run, of nDCG@10 divided
by the better of dense-only and BM25-only on that dataset, among the settings that beat both on
cranfield and nfcorpus_orig. The script exits quietly, saying why, when the data is absent.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATASETS = ("cranfield", "nfcorpus_orig", "xquad_en_dev")
REQUIRED = ("cranfield", "nfcorpus_orig")  # where the default must beat dense and BM25 alone
REFERENCE_BM25_NDCG10 = {"cranfield": 0.3515, "nfcorpus_orig": 0.3349, "xquad_en_dev": 0.9685}
DEPTH = 200  # chunks asked of dense and of BM25 per query: the default depth for k=100

# The grid. Weights are (dense, bm25).
FUSION_LEVELS = ("document", "chunk")
RRF_KS = (5, 10, 20, 40, 60, 100)
RRF_WEIGHTS = ((1.0, 1.0), (1.0, 1.5), (1.5, 1.0), (1.0, 2.0), (2.0, 1.0), (1.0, 3.0), (3.0, 1.0))
WEIGHTED_WEIGHTS = ((0.2, 0.8), (0.3, 0.7), (0.4, 0.6), (0.5, 0.5), (0.6, 0.4), (0.7, 0.3))
CHUNKS_PER_DOCUMENT = (1, 2, 3)
QA_CONTEXTS = 4  # chain.rag's k in examples/qa.yaml: answer-in-context is measured at this depth


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


def evaluate(qrels, run, measures=("ndcg_cut_10", "recall_100")) -> dict[str, float]:
    import pytrec_eval

    names = {"ndcg_cut_10": "ndcg_cut.10", "recall_100": "recall.100"}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {names[m] for m in measures})
    per_query = evaluator.evaluate(run)
    n = len(qrels)  # queries without any hit count as 0
    return {m: sum(q[m] for q in per_query.values()) / n for m in measures}


def chunk_corpus(name: str, corpus: list[dict], chunk_size: int) -> list[Any]:
    from rag.core.documents import Chunk, Document
    from rag.pipelines.splitters import RecursiveSplitter

    documents = [
        Document(
            id=f"{name}/{doc['_id']}",
            text=(doc.get("title", "") + "\n" + doc.get("text", "")).strip(),
            metadata={"source": f"{name}/{doc['_id']}", "doc_id": doc["_id"]},
        )
        for doc in corpus
    ]
    if chunk_size == 0:
        return [
            Chunk.create(text=d.text, source_id=d.id, position=0, metadata=d.metadata)
            for d in documents
        ]
    splitter = RecursiveSplitter(
        chunk_size=chunk_size, chunk_overlap=16, tokenizer="all-MiniLM-L6-v2"
    )
    return splitter.run(documents=documents)["chunks"]


def open_store(name: str, folder: Path, embedder, cache_root: Path, chunk_size: int):
    """The chunks of a dataset in a FAISS store under ``cache_root``, embedded once."""
    from rag.connectors.stores.faiss import FaissStore

    directory = cache_root / f"{name}-c{chunk_size}"
    store = FaissStore(path=str(directory / "faiss"))
    store.warm_up()
    done = directory / "done.json"  # written once the whole corpus is stored
    if done.exists() and json.loads(done.read_text())["chunks"] == store.count():
        return store, store.count()
    chunks = chunk_corpus(name, read_jsonl(folder / "corpus.jsonl"), chunk_size)
    store.clear()
    started = time.perf_counter()
    vectors = embedder.embed_documents([c.text for c in chunks])
    for chunk, vector in zip(chunks, vectors):
        chunk.embedding = vector
    store.write(chunks)
    store.flush()
    done.write_text(json.dumps({"chunks": len(chunks)}))
    print(
        f"  {name}: embedded {len(chunks)} chunks in {time.perf_counter() - started:.0f}s",
        file=sys.stderr,
    )
    return store, len(chunks)


def grid() -> list[dict[str, Any]]:
    settings = []
    for level in FUSION_LEVELS:
        for rrf_k, weights in itertools.product(RRF_KS, RRF_WEIGHTS):
            settings.append(
                {"fusion": "rrf", "rrf_k": rrf_k, "weights": list(weights), "level": level}
            )
        for weights in WEIGHTED_WEIGHTS:
            settings.append({"fusion": "weighted", "weights": list(weights), "level": level})
    return settings


def label(setting: dict[str, Any]) -> str:
    weights = "/".join(f"{w:g}" for w in setting["weights"])
    if setting["fusion"] == "rrf":
        return f"rrf k={setting['rrf_k']:<3} w={weights:<7} {setting['level']}"
    return f"weighted w={weights:<9} {setting['level']}"


def answer_in_context(hit_lists, query_ids, answers: dict[str, list[str]]) -> float:
    found = 0
    for query_id, hits in zip(query_ids, hit_lists):
        text = " ".join(h.chunk.text for h in hits).lower()
        found += any(a.lower() in text for a in answers[query_id])
    return found / len(query_ids)


class Dataset:
    """One dataset's queries, qrels and the dense and BM25 lists, retrieved once."""

    def __init__(self, name: str, folder: Path, embedder, cache_root: Path, chunk_size: int):
        from rag.connectors.retrievers.bm25 import BM25Retriever
        from rag.connectors.retrievers.dense import DenseRetriever

        self.name = name
        self.qrels = read_qrels(folder / "qrels" / "test.tsv")
        queries = [q for q in read_jsonl(folder / "queries.jsonl") if q["_id"] in self.qrels]
        self.query_ids = [q["_id"] for q in queries]
        answers_file = folder / "answers.jsonl"
        self.answers = (
            {row["_id"]: row["answers"] for row in read_jsonl(answers_file)}
            if answers_file.exists()
            else None
        )
        self.store, self.chunks = open_store(name, folder, embedder, cache_root, chunk_size)
        self.dense = DenseRetriever(embedder=embedder, store=self.store)
        self.bm25 = BM25Retriever(store=self.store)
        texts = [q["text"] for q in queries]
        self.timings = {}
        self.lists = {}
        for key, retriever in (("dense", self.dense), ("bm25", self.bm25)):
            retriever.warm_up()
            started = time.perf_counter()
            self.lists[key] = retriever.retrieve_batch(texts, k=DEPTH)
            self.timings[key] = (time.perf_counter() - started) / len(texts)

    def hybrid_hits(self, setting: dict[str, Any], k: int) -> list[list[Any]]:
        from rag.connectors.retrievers.hybrid import HybridRetriever

        hybrid = HybridRetriever(retrievers=[self.dense, self.bm25], k=k, **setting)
        depth = hybrid._depth(k)  # the component's own candidate depth for this k
        return [
            hybrid.fuse([dense[:depth], bm25[:depth]], k=k)
            for dense, bm25 in zip(self.lists["dense"], self.lists["bm25"])
        ]

    def ndcg10(self, hit_lists) -> float:
        return evaluate(self.qrels, doc_run(hit_lists, self.query_ids), ("ndcg_cut_10",))[
            "ndcg_cut_10"
        ]

    def full(self, hit_lists) -> dict[str, float]:
        return evaluate(self.qrels, doc_run(hit_lists, self.query_ids))


def bm25_refresh(d: Dataset, added: int = 10) -> None:
    """Seconds for BM25 to catch up with a small ingest: incremental vs a full rebuild."""
    import numpy as np

    from rag.connectors.retrievers.bm25 import BM25Retriever
    from rag.connectors.stores.faiss import FaissStore
    from rag.core.documents import Chunk

    chunks = list(d.store.iter_chunks())
    store = FaissStore()  # in memory; BM25 needs texts only, so the vectors are placeholders
    vector = np.ones(4, dtype=np.float32)
    store.write(
        [Chunk(id=c.id, text=c.text, metadata=c.metadata, embedding=vector) for c in chunks]
    )
    incremental = BM25Retriever(store=store)
    first, _ = timed(incremental.warm_up)
    store.write(
        [
            Chunk(id=f"new-{i}", text=c.text + " addendum", metadata=c.metadata, embedding=vector)
            for i, c in enumerate(chunks[:added])
        ]
    )
    refresh, _ = timed(incremental.warm_up)
    rebuilt = BM25Retriever(store=store)
    full, _ = timed(rebuilt.warm_up)
    queries = ["addendum"] + [c.text[:60] for c in chunks[:20]]
    same = all(
        [(h.id, h.score) for h in incremental.retrieve(q, k=20)]
        == [(h.id, h.score) for h in rebuilt.retrieve(q, k=20)]
        for q in queries
    )
    print(
        f"\nBM25 after ingesting {added} chunks into {len(chunks)} ({d.name}): incremental refresh "
        f"{refresh:.2f}s vs full rebuild {full:.2f}s (first build {first:.2f}s): "
        f"{refresh / full:.2f}x of a rebuild; same hits and scores on {len(queries)} queries: "
        f"{same}"
    )
    store.close()


def timed(func) -> tuple[float, Any]:
    started = time.perf_counter()
    result = func()
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--chunk-size", type=int, default=128, help="0 = one chunk per document")
    parser.add_argument("--cache", type=Path, default=ROOT / ".rag" / "bench-quality")
    args = parser.parse_args(argv)
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
        model="all-MiniLM-L6-v2",
        device="auto",
        batch_size=64,
        cache_dir=str(args.cache / "embeddings"),
    )
    embedder.warm_up()
    datasets = [
        Dataset(name, folder, embedder, args.cache, args.chunk_size)
        for name, folder in folders.items()
    ]
    chunking = (
        "one chunk per document"
        if args.chunk_size == 0
        else f"{args.chunk_size} tokens, overlap 16"
    )
    print(
        f"chunking: {chunking}; "
        + ", ".join(f"{d.name} {d.chunks} chunks / {len(d.query_ids)} queries" for d in datasets)
    )

    # -- baselines -------------------------------------------------------------------------
    baseline: dict[str, dict[str, float]] = {}
    for d in datasets:
        baseline[d.name] = {key: d.ndcg10([hits[:50] for hits in d.lists[key]]) for key in d.lists}

    # -- the grid ----------------------------------------------------------------------------
    print(
        f"\ngrid: fusion rrf with rrf_k in {list(RRF_KS)} and (dense, bm25) weights in "
        f"{[list(w) for w in RRF_WEIGHTS]}; fusion weighted with weights in "
        f"{[list(w) for w in WEIGHTED_WEIGHTS]}; level in {list(FUSION_LEVELS)}; "
        f"{len(grid())} settings. nDCG@10, k=10 (candidates 50 from each retriever)."
    )
    header = "".join(f"{d.name[:13]:>14}" for d in datasets)
    print(f"{'setting':<34}{header}{'mean/best':>11}")
    for key in ("dense", "bm25"):
        row = "".join(f"{baseline[d.name][key]:>14.4f}" for d in datasets)
        print(f"{key + ' only':<34}{row}")
    results = []
    started = time.perf_counter()
    for setting in grid():
        scores = {d.name: d.ndcg10(d.hybrid_hits(setting, 10)) for d in datasets}
        ratios = [scores[n] / max(baseline[n].values()) for n in scores]
        beats = all(scores[n] > max(baseline[n].values()) for n in scores if n in REQUIRED)
        results.append((setting, scores, statistics.mean(ratios), beats))
        row = "".join(f"{scores[d.name]:>14.4f}" for d in datasets)
        print(f"{label(setting):<34}{row}{statistics.mean(ratios):>10.4f}{'' if beats else ' -'}")
    print(
        f"({len(results)} settings fused in {time.perf_counter() - started:.0f}s; '-' = does not "
        f"beat both dense-only and BM25-only on {' and '.join(REQUIRED)})"
    )
    eligible = [r for r in results if r[3]] or results
    chosen, _, mean_ratio, beats = max(eligible, key=lambda r: r[2])
    print(f"\nchosen: {label(chosen)}  (mean nDCG@10 / best input = {mean_ratio:.4f})")
    for level in FUSION_LEVELS:
        same = dict(chosen, level=level)
        scores = next(r[1] for r in results if r[0] == same)
        print(f"  level={level:<9}" + "".join(f"  {n} {scores[n]:.4f}" for n in scores))

    # -- the chosen setting against each input, nDCG@10 and R@100 ----------------------------
    print(f"\n{'dataset':<15}{'retriever':<22}{'nDCG@10':>9}{'R@100':>9}{'ms/query':>10}")
    for d in datasets:
        rows = []
        for key in ("dense", "bm25"):
            metrics = d.full(d.lists[key])
            ndcg = baseline[d.name][key]
            rows.append((f"{key} only", ndcg, metrics["recall_100"], d.timings[key]))
        ndcg = next(r[1][d.name] for r in results if r[0] == chosen)
        recall = d.full(d.hybrid_hits(chosen, 100))["recall_100"]
        rows.append(("hybrid (chosen)", ndcg, recall, d.timings["dense"] + d.timings["bm25"]))
        for name, ndcg, recall, seconds in rows:
            print(f"{d.name:<15}{name:<22}{ndcg:>9.4f}{recall:>9.4f}{seconds * 1000:>10.1f}")
        best = max(baseline[d.name].values())
        reference = REFERENCE_BM25_NDCG10.get(d.name)
        extra = (
            f"; bm25 / reference bm25 = {baseline[d.name]['bm25'] / reference:.3f}"
            if reference and args.chunk_size == 0
            else ""
        )
        print(f"{d.name}: hybrid / best input nDCG@10 = {ndcg / best:.3f}{extra}")

    # -- QA contexts: how many chunks per document --------------------------------------------
    # nDCG counts a document once, so chunks_per_document is chosen here: the share of questions
    # whose gold answer is in the contexts chain.rag gets (QA datasets only).
    per_doc_share: dict[int, list[float]] = {n: [] for n in CHUNKS_PER_DOCUMENT}
    for d in datasets:
        if d.answers is None:
            continue
        print(
            f"\n{d.name}: gold answer in the top {QA_CONTEXTS} contexts (chain.rag k={QA_CONTEXTS})"
        )
        for key in ("dense", "bm25"):
            share = answer_in_context(
                [h[:QA_CONTEXTS] for h in d.lists[key]], d.query_ids, d.answers
            )
            print(f"  {key + ' only':<32}{share:.4f}")
        for per_doc in CHUNKS_PER_DOCUMENT:
            setting = dict(chosen, chunks_per_document=per_doc)
            share = answer_in_context(d.hybrid_hits(setting, QA_CONTEXTS), d.query_ids, d.answers)
            per_doc_share[per_doc].append(share)
            print(f"  hybrid (chosen), chunks_per_document={per_doc:<3}{share:.4f}")
    if any(per_doc_share.values()):
        best = max(CHUNKS_PER_DOCUMENT, key=lambda n: (statistics.mean(per_doc_share[n]), -n))
        print(f"chosen: chunks_per_document={best}")
    bm25_refresh(max(datasets, key=lambda d: d.chunks))
    for d in datasets:
        d.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
