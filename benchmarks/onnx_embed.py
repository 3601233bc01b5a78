"""Chunks per second of the embedder's ONNX Runtime backend versus its torch backend.

Chunk texts come from a BEIR corpus (cranfield by default): each document's text is split with
splitter.recursive into chunks of at most ``--chunk-size`` model tokens, as ingestion does, and
the first ``--limit`` chunks are embedded. Both backends are SentenceTransformersEmbedder on the
CPU with the same batch size and thread count, warmed up before timing, and go through the same
length-sorted, prefetching batch path. The ONNX export goes to a fresh temporary directory, so
the one-time export and the cached warm-up are timed too. Each backend runs ``--repeats`` times,
interleaved, and the best time counts (the machine may be shared).

    python benchmarks/onnx_embed.py [--corpus PATH] [--limit 1500] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CRANFIELD, machine, timed


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CRANFIELD)
    parser.add_argument("--limit", type=int, default=1500, help="number of chunks to embed")
    parser.add_argument("--chunk-size", type=int, default=128, help="chunk size in tokens")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0: default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder

    texts = chunk_texts(args.corpus, args.limit, args.chunk_size)
    print(f"machine: {machine()}")
    print(f"corpus: {args.corpus}: {len(texts)} chunks of <= {args.chunk_size} tokens")

    onnx_dir = tempfile.mkdtemp(prefix="ragline-onnx-")

    def embedder(backend: str) -> SentenceTransformersEmbedder:
        return SentenceTransformersEmbedder(
            model="all-MiniLM-L6-v2",
            device="cpu",
            batch_size=args.batch_size,
            backend=backend,
            onnx_dir=onnx_dir,
        )

    models = {"torch": embedder("torch"), "onnx": embedder("onnx")}
    models["torch"].warm_up()
    export_s, _ = timed(models["onnx"].warm_up)
    cached_s, _ = timed(embedder("onnx").warm_up)
    for model in models.values():
        model.embed_documents(texts[: args.batch_size * 2])  # first-call allocations

    times: dict[str, list[float]] = {name: [] for name in models}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, model in models.items():
            seconds, vectors[name] = timed(lambda m=model: m.embed_documents(texts))
            times[name].append(seconds)
    cosine = np.sum(vectors["torch"] * vectors["onnx"], axis=1)

    n = len(texts)
    torch_rate, onnx_rate = n / min(times["torch"]), n / min(times["onnx"])
    print(f"chunks: {n}, batch size {args.batch_size}, threads {torch.get_num_threads()}")
    print(f"onnx warm-up: export {export_s:.1f} s (once), cached {cached_s:.2f} s")
    print(f"torch backend : {torch_rate:8.1f} chunks/s  (runs: {_fmt(times['torch'])})")
    print(f"onnx backend  : {onnx_rate:8.1f} chunks/s  (runs: {_fmt(times['onnx'])})")
    print(f"ratio onnx/torch: {onnx_rate / torch_rate:.3f}")
    print(f"cosine onnx vs torch: min {cosine.min():.6f}, mean {cosine.mean():.6f}")
    shutil.rmtree(onnx_dir, ignore_errors=True)


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.1f} s" for t in times)


if __name__ == "__main__":
    main()
