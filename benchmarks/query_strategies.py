"""Query strategies (multi-query, HyDE) against plain dense and hybrid retrieval.

    .venv/bin/python benchmarks/query_strategies.py [--data ../shared/data] \\
        [--datasets cranfield nfcorpus_orig] [--queries 50] [--budget-minutes 60]

The index and the dense/BM25/hybrid retrievers are those of ``retrieval_quality.py`` (each
document one chunk, all-MiniLM-L6-v2 over ``store.faiss``, BM25, RRF hybrid). The rewrites
come from the bundled SmolLM2-135M-Instruct through llama.cpp (greedy, seed 0): generated
once per query and strategy, cached on disk under ``--cache``, and searched with both the
dense and the hybrid retriever. Generation takes seconds per query on a CPU, so a seeded
random sample of the judged queries is used (``--queries``; 0 = all), and generation stops
after ``--budget-minutes``: the queries done by then are scored, and their count is printed.
Scores are nDCG@10 and Recall@100 from pytrec_eval, each strategy's ratio to its plain
retriever, and the generator's mean seconds per query.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrieval_quality import doc_run, evaluate, read_jsonl, read_qrels  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEPTH = 100


def build_retrievers(name: str, folder: Path, embedder, cache_root: Path):
    from rag.connectors.retrievers.bm25 import BM25Retriever
    from rag.connectors.retrievers.dense import DenseRetriever
    from rag.connectors.retrievers.hybrid import HybridRetriever
    from rag.connectors.stores.faiss import FaissStore
    from rag.core.documents import Chunk

    corpus = read_jsonl(folder / "corpus.jsonl")
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
    dense = DenseRetriever(embedder=embedder, store=store, k=DEPTH)
    bm25 = BM25Retriever(store=store, path=str(cache_root / name / "bm25"), k=DEPTH)
    hybrid = HybridRetriever(retrievers=[dense, bm25], k=DEPTH, fusion="rrf", candidates=200)
    for retriever in (dense, bm25, hybrid):
        retriever.warm_up()
    return store, {"dense": dense, "hybrid": hybrid}


def run_dataset(name, folder, embedder, generator, cache_root, args):
    from rag.connectors.retrievers.query_strategies import HydeRetriever, MultiQueryRetriever

    qrels = read_qrels(folder / "qrels" / "test.tsv")
    queries = [q for q in read_jsonl(folder / "queries.jsonl") if q["_id"] in qrels]
    if args.queries and args.queries < len(queries):
        queries = random.Random(args.seed).sample(queries, args.queries)
    store, plain = build_retrievers(name, folder, embedder, cache_root)
    strategies = {"multi_query": MultiQueryRetriever, "hyde": HydeRetriever}
    wrapped = {
        (strategy, label): cls(
            retriever=r, generator=generator, k=DEPTH, candidates=DEPTH, max_tokens=args.max_tokens
        )
        for strategy, cls in strategies.items()
        for label, r in plain.items()
    }
    # Rewrites are slow on a CPU: each is cached on disk (per strategy, query and max_tokens),
    # so a run cut by --budget-minutes resumes where it stopped.
    cache_file = cache_root / name / f"rewrites-{args.max_tokens}.jsonl"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cached = {}
    if cache_file.exists():
        for row in read_jsonl(cache_file):
            cached[(row["strategy"], row["query_id"])] = row
    deadline = time.monotonic() + args.budget_minutes * 60
    used, gen_seconds = [], {strategy: [] for strategy in strategies}
    with cache_file.open("a", encoding="utf-8") as out:
        for index, query in enumerate(queries, start=1):
            if time.monotonic() > deadline:
                print(f"\n  {name}: time budget spent after {len(used)} queries", file=sys.stderr)
                break
            for strategy in strategies:
                key = (strategy, query["_id"])
                if key not in cached:
                    started = time.perf_counter()
                    texts = wrapped[(strategy, "dense")].expand(query["text"])
                    cached[key] = {
                        "strategy": strategy,
                        "query_id": query["_id"],
                        "texts": texts,
                        "seconds": time.perf_counter() - started,
                    }
                    out.write(json.dumps(cached[key]) + "\n")
                    out.flush()
                gen_seconds[strategy].append(cached[key]["seconds"])
            used.append(query)
            print(
                f"\r  {name}: rewrites for {index}/{len(queries)} queries", end="", file=sys.stderr
            )
    print(file=sys.stderr)
    ids, texts = [q["_id"] for q in used], [q["text"] for q in used]
    qrels = {q: qrels[q] for q in ids}
    runs = {label: r.retrieve_batch(texts, k=DEPTH) for label, r in plain.items()}
    for strategy in strategies:
        expansions = [cached[(strategy, q)]["texts"] for q in ids]
        fallbacks = sum(len(e) == 1 for e in expansions)
        print(
            f"  {name} {strategy}: {fallbacks} of {len(ids)} queries fell back to the plain "
            f"query; example: {expansions[0][1:2]}",
            file=sys.stderr,
        )
        for label in plain:
            runs[f"{strategy} ({label})"] = [
                wrapped[(strategy, label)].search(e, k=DEPTH, filters=None) for e in expansions
            ]
    store.close()
    rows = []
    for label, hits in runs.items():
        metrics = evaluate(qrels, doc_run(hits, ids))
        rows.append((name, label, metrics["ndcg_cut_10"], metrics["recall_100"]))
    seconds = {k: statistics.mean(v) for k, v in gen_seconds.items() if v}
    return rows, seconds, len(ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="*", default=["cranfield", "nfcorpus_orig"])
    parser.add_argument("--queries", type=int, default=50, help="query sample size (0: all)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument(
        "--max-tokens", type=int, default=64, help="most tokens per rewrite or HyDE passage"
    )
    parser.add_argument(
        "--budget-minutes", type=float, default=60.0, help="stop generating rewrites after this"
    )
    parser.add_argument("--cache", type=Path, default=ROOT / ".rag" / "bench-quality")
    args = parser.parse_args(argv)
    folders = {name: args.data / name for name in args.datasets}
    missing = [str(f) for f in folders.values() if not (f / "corpus.jsonl").exists()]
    if missing:
        print(f"skipped: dataset folder(s) not found: {', '.join(missing)} (pass --data DIR)")
        return 0
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator

    embedder = SentenceTransformersEmbedder(
        model="all-MiniLM-L6-v2",
        device="auto",
        batch_size=64,
        cache_dir=str(args.cache / "embeddings"),
    )
    embedder.warm_up()
    generator = LlamaCppGenerator(
        model="smollm2-135m-instruct", context_size=2048, threads=args.threads, seed=0
    )
    generator.warm_up()
    print(f"{'dataset':<15}{'retriever':<24}{'nDCG@10':>9}{'R@100':>9}{'vs plain':>10}")
    for name, folder in folders.items():
        rows, gen_seconds, count = run_dataset(name, folder, embedder, generator, args.cache, args)
        plain = {label: ndcg for _, label, ndcg, _ in rows if "(" not in label}
        for dataset, label, ndcg, recall in rows:
            base = plain[label.split("(")[-1].rstrip(")")] if "(" in label else ndcg
            ratio = f"{ndcg / base:.3f}" if base else "n/a"
            print(f"{dataset:<15}{label:<24}{ndcg:>9.4f}{recall:>9.4f}{ratio:>10}")
        timing = ", ".join(f"{k} {v:.2f} s/query" for k, v in gen_seconds.items())
        print(f"  ({count} queries, --max-tokens {args.max_tokens}; generator time: {timing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
