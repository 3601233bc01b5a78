"""Speed and retrieval quality of the embedder's CPU backends: torch, onnx and onnx-int8.

One run prints, for each backend of ``embedder.sentence_transformers`` (all-MiniLM-L6-v2 on the
CPU, same batch size and threads, the same length-sorted prefetching batch path):

- **speed**: chunks per second on ``--speed-chunks`` chunks of the cranfield corpus, split as
  ingestion splits them (at most ``--chunk-size`` model tokens); backends run interleaved,
  ``--repeats`` rounds, the best round counts (the machine may be shared), and the ratio to
  torch is printed;
- **agreement**: cosine of each backend's vectors with torch's on those chunks;
- **quality**: nDCG@10 of dense retrieval (exact inner product over every document, one
  vector per document: title and text, truncated by the model at 256 tokens) on cranfield and
  nfcorpus_orig (BEIR layout under ``--data``), scored with trec_eval through
  :func:`rag.eval.metrics.evaluate_run`, and its difference from torch. A backend passes when
  it is within ``--tolerance`` (0.005) of torch on every dataset.

Document vectors are cached per dataset and backend under ``--cache`` (each corpus is embedded
once per backend; delete the folder to embed again). ONNX exports and int8 models go to a
temporary directory, so their one-time cost is timed too.

    python benchmarks/onnx_embed.py [--data ../shared/data] [--backends torch onnx onnx-int8]
        [--speed-chunks 1024] [--max-docs N]   # N: a prefix of each corpus (say so if used)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, timed

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
BACKENDS = ("torch", "onnx", "onnx-int8")


def chunk_texts(corpus: Path, limit: int, chunk_size: int) -> list[str]:
    """The first ``limit`` chunks of the corpus's documents, split as ingestion splits them."""
    from rag.pipelines.splitters import RecursiveSplitter

    splitter = RecursiveSplitter(
        chunk_size=chunk_size, chunk_overlap=0, tokenizer="all-MiniLM-L6-v2"
    )
    texts: list[str] = []
    with corpus.open() as handle:
        for line in handle:
            text = json.loads(line).get("text", "").strip()
            if not text:
                continue
            texts.extend(text[start:end] for start, end in splitter.split_text(text))
            if len(texts) >= limit:
                break
    return texts[:limit]


def read_beir(folder: Path, max_docs: int | None):
    from rag.eval.datasets import read_qrels

    docs = []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            docs.append((doc["_id"], (doc.get("title", "") + "\n" + doc.get("text", "")).strip()))
            if max_docs and len(docs) >= max_docs:
                break
    qrels = read_qrels(folder / "qrels" / "test.tsv")
    kept = {d for d, _ in docs}
    qrels = {q: {d: r for d, r in rel.items() if d in kept} for q, rel in qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if any(r > 0 for r in rel.values())}
    with (folder / "queries.jsonl").open(encoding="utf-8") as handle:
        queries = [json.loads(line) for line in handle if line.strip()]
    queries = [(q["_id"], q["text"]) for q in queries if q["_id"] in qrels]
    return docs, queries, qrels


def ndcg_at_10(embedder, name, folder, cache: Path, max_docs: int | None, backend: str):
    """nDCG@10 of exact dense retrieval, and the seconds spent embedding the corpus (0 when
    the vectors came from the cache)."""
    from rag.eval.metrics import evaluate_run, mean_metrics

    docs, queries, qrels = read_beir(folder, max_docs)
    path = cache / f"{name}-{len(docs)}-{backend}.npy"
    seconds = 0.0
    if path.exists():
        vectors = np.load(path)
    else:
        seconds, vectors = timed(lambda: embedder.embed_documents([t for _, t in docs]))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    query_vectors = embedder.embed_queries([t for _, t in queries])
    scores = query_vectors @ vectors.T
    top = np.argsort(-scores, axis=1)[:, :10]
    run = {qid: [docs[j][0] for j in row] for (qid, _), row in zip(queries, top)}
    per_query = evaluate_run(qrels, run, ["ndcg@10"])
    return mean_metrics(per_query)["ndcg@10"], seconds, len(docs), len(queries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="*", default=["cranfield", "nfcorpus_orig"])
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--speed-chunks", type=int, default=1024, help="chunks timed per round")
    parser.add_argument("--chunk-size", type=int, default=128, help="chunk size in tokens")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0: default)")
    parser.add_argument("--max-docs", type=int, default=0, help="a corpus prefix (0: all)")
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--cache", type=Path, default=ROOT / ".rag" / "bench-onnx")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder

    backends = ["torch"] + [b for b in args.backends if b != "torch"]
    speed_corpus = args.data / "cranfield" / "corpus.jsonl"
    if not speed_corpus.exists():
        print(
            f"skipped: {speed_corpus} not found (this benchmark reads ../shared/data; --data DIR)"
        )
        return 0
    texts = chunk_texts(speed_corpus, args.speed_chunks, args.chunk_size)
    print(f"machine: {machine()}")
    onnx_dir = tempfile.mkdtemp(prefix="ragline-onnx-")
    try:
        models = {}
        for backend in backends:
            models[backend] = SentenceTransformersEmbedder(
                model="all-MiniLM-L6-v2",
                device="cpu",
                batch_size=args.batch_size,
                backend=backend,
                onnx_dir=onnx_dir,
            )
            seconds, _ = timed(models[backend].warm_up)
            print(f"{backend}: warm-up {seconds:.1f} s (export/quantization included, once)")
        for model in models.values():
            model.embed_documents(texts[: args.batch_size * 2])  # first-call allocations

        times: dict[str, list[float]] = {name: [] for name in models}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for name, model in models.items():
                seconds, vectors[name] = timed(lambda m=model: m.embed_documents(texts))
                times[name].append(seconds)
        print(
            f"speed: {len(texts)} cranfield chunks of <= {args.chunk_size} tokens, batch size "
            f"{args.batch_size}, threads {torch.get_num_threads()}, best of {args.repeats}"
        )
        rates = {name: len(texts) / min(runs) for name, runs in times.items()}
        for name in models:
            cosine = np.sum(vectors["torch"] * vectors[name], axis=1)
            ratio = rates[name] / rates["torch"]
            print(
                f"  {name:10s} {rates[name]:7.1f} chunks/s  ratio {ratio:.2f}"
                f"  cosine to torch min {cosine.min():.4f} mean {cosine.mean():.5f}"
                f"  (runs: {', '.join(f'{t:.1f} s' for t in times[name])})"
            )

        quality: dict[str, dict[str, float]] = {name: {} for name in models}
        for dataset in args.datasets:
            folder = args.data / dataset
            if not (folder / "corpus.jsonl").exists():
                print(f"quality: skipped {dataset}: {folder} has no corpus.jsonl (pass --data)")
                continue
            for name, model in models.items():
                started = time.perf_counter()
                score, embed_s, n_docs, n_queries = ndcg_at_10(
                    model, dataset, folder, args.cache, args.max_docs or None, name
                )
                quality[name][dataset] = score
                note = f"corpus embedded in {embed_s:.0f} s" if embed_s else "cached vectors"
                print(
                    f"quality: {dataset} ({n_docs} docs, {n_queries} queries) {name}: "
                    f"nDCG@10 {score:.4f}  ({note}; {time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
        if any(quality["torch"].values()):
            print(f"verdict (nDCG@10 within {args.tolerance} of torch on every dataset):")
            for name in models:
                deltas = {d: quality[name][d] - quality["torch"][d] for d in quality["torch"]}
                ok = all(abs(v) <= args.tolerance for v in deltas.values())
                shown = ", ".join(f"{d} {v:+.4f}" for d, v in deltas.items())
                print(
                    f"  {name:10s} {'PASS' if ok else 'FAIL'}  "
                    f"speed {rates[name] / rates['torch']:.2f}x torch  nDCG delta: {shown}"
                )
    finally:
        shutil.rmtree(onnx_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
