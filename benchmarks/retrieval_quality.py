"""Retrieval quality of dense, BM25 and hybrid retrieval on Cranfield and NFCorpus.

    .venv/bin/python benchmarks/retrieval_quality.py [--data ../shared/data] [--datasets cranfield]

Each document is indexed as one chunk (title + text), so BM25 here is comparable with the
reference BM25 of ``../shared/data/README.md`` (Porter stemmer, k1=0.9, b=0.4: nDCG@10 0.3515
on cranfield, 0.3349 on nfcorpus_orig). Dense retrieval uses all-MiniLM-L6-v2 (the packaged
model) over ``store.faiss``; hybrid fuses the two with reciprocal-rank fusion (k=60). A run is
scored with pytrec_eval directly (nDCG@10 and Recall@100); the document ranking is each
document's best chunk. The script exits quietly, saying why, when the data is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
REFERENCE_BM25_NDCG10 = {"cranfield": 0.3515, "nfcorpus_orig": 0.3349}


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


def doc_run(hit_lists, query_ids) -> dict[str, dict[str, float]]:
    """TREC-style run: each document once, scored by its best chunk (rank-preserving)."""
    run: dict[str, dict[str, float]] = {}
    for query_id, hits in zip(query_ids, hit_lists):
        docs: dict[str, float] = {}
        for rank, hit in enumerate(hits):
            doc_id = str(hit.chunk.metadata["doc_id"])
            # a strictly decreasing score keeps the retriever's order (pytrec_eval sorts by score)
            docs.setdefault(doc_id, float(len(hits) - rank))
        run[query_id] = docs
    return run


def evaluate(qrels, run) -> dict[str, float]:
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    per_query = evaluator.evaluate(run)
    n = len(qrels)  # queries without any hit count as 0
    return {
        "nDCG@10": sum(m["ndcg_cut_10"] for m in per_query.values()) / n,
        "R@100": sum(m["recall_100"] for m in per_query.values()) / n,
    }


def run_dataset(name: str, folder: Path, embedder, cache_root: Path) -> list[tuple]:
    from rag.connectors.retrievers.bm25 import BM25Retriever
    from rag.connectors.retrievers.dense import DenseRetriever
    from rag.connectors.retrievers.hybrid import HybridRetriever
    from rag.connectors.stores.faiss import FaissStore
    from rag.core.documents import Chunk

    corpus = read_jsonl(folder / "corpus.jsonl")
    queries = read_jsonl(folder / "queries.jsonl")
    qrels = read_qrels(folder / "qrels" / "test.tsv")
    queries = [q for q in queries if q["_id"] in qrels]
    chunks = [
        Chunk(
            id=f"{name}:{doc['_id']}",
            text=(doc.get("title", "") + "\n" + doc.get("text", "")).strip(),
            metadata={"source": f"{name}/{doc['_id']}", "doc_id": doc["_id"]},
        )
        for doc in corpus
    ]
    store = FaissStore(path=str(cache_root / name / "faiss"))
    store.warm_up()
    if store.count() != len(chunks):
        started = time.perf_counter()
        vectors = embedder.embed_documents([c.text for c in chunks])
        for chunk, vector in zip(chunks, vectors):
            chunk.embedding = vector
        store.write(chunks)
        store.flush()
        print(
            f"  {name}: embedded {len(chunks)} docs in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
    dense = DenseRetriever(embedder=embedder, store=store, k=100)
    bm25 = BM25Retriever(store=store, path=str(cache_root / name / "bm25"), k=100)
    hybrid = HybridRetriever(retrievers=[dense, bm25], k=100, fusion="rrf", candidates=200)
    texts = [q["text"] for q in queries]
    ids = [q["_id"] for q in queries]
    rows = []
    for label, retriever in (("dense", dense), ("bm25", bm25), ("hybrid (rrf)", hybrid)):
        retriever.warm_up()
        started = time.perf_counter()
        hits = retriever.retrieve_batch(texts, k=100)
        seconds = time.perf_counter() - started
        metrics = evaluate(qrels, doc_run(hits, ids))
        rows.append((name, label, metrics["nDCG@10"], metrics["R@100"], seconds / len(texts)))
    store.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="*", default=["cranfield", "nfcorpus_orig"])
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
    rows = []
    for name, folder in folders.items():
        rows.extend(run_dataset(name, folder, embedder, args.cache))
    print(f"{'dataset':<15}{'retriever':<15}{'nDCG@10':>9}{'R@100':>9}{'ms/query':>10}")
    for dataset, label, ndcg, recall, seconds in rows:
        print(f"{dataset:<15}{label:<15}{ndcg:>9.4f}{recall:>9.4f}{seconds * 1000:>10.1f}")
    print()
    for dataset in folders:
        scores = {label: ndcg for d, label, ndcg, _, _ in rows if d == dataset}
        best_input = max(scores["dense"], scores["bm25"])
        reference = REFERENCE_BM25_NDCG10.get(dataset)
        ref_text = (
            f"; bm25 / reference bm25 = {scores['bm25'] / reference:.3f}" if reference else ""
        )
        print(
            f"{dataset}: hybrid / best input nDCG@10 = {scores['hybrid (rrf)'] / best_input:.3f}"
            f"{ref_text}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
