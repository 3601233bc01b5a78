"""Chunks per second of ragline's ingestion versus raw ``SentenceTransformer.encode``.

Both run in this process on the same chunk texts with the same batch size and thread count;
the pipeline is warmed up (model loaded) before timing, as the raw model is. ragline's time
covers everything: reading the corpus, splitting with the model's tokenizer, embedding,
writing to FAISS and saving the index. Each side runs ``--repeats`` times, interleaved, and
the best time counts (the machine may be shared). Then a re-run over the unchanged corpus
(incremental mode) is timed against the first run.

    python benchmarks/ingest_throughput.py [--corpus PATH] [--limit N] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CRANFIELD, machine, ragline_pipeline, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CRANFIELD)
    parser.add_argument("--limit", type=int, default=0, help="use the first N documents")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from rag.pipelines.ingest import run_ingest

    work = Path(tempfile.mkdtemp(prefix="ragline-bench-"))
    corpus = args.corpus
    if args.limit:
        corpus = work / "corpus.jsonl"
        with args.corpus.open() as src, corpus.open("w") as dst:
            for i, line in enumerate(src):
                if i >= args.limit:
                    break
                dst.write(line)
    print(f"machine: {machine()}")
    print(f"corpus: {args.corpus} ({'first ' + str(args.limit) if args.limit else 'all'} docs)")

    ragline_times, texts = [], []
    raw_times = []
    first_run = rerun = 0.0
    for repeat in range(args.repeats):
        store = work / f"index-{repeat}"
        pipeline = ragline_pipeline(str(store), batch_size=args.batch_size, backend=args.backend)
        pipeline.warm_up()
        seconds, report = timed(lambda p=pipeline: run_ingest(p, [corpus], progress=False))
        assert all(":" in e["source"] for e in report.errors), report.errors[:3]  # empty rows
        ragline_times.append(seconds)
        if repeat == 0:
            first_run = seconds
            rerun, again = timed(lambda p=pipeline: run_ingest(p, [corpus], progress=False))
            assert again.chunks_written == 0 and again.chunks_skipped == report.chunks_written
            writer_store = pipeline.components["writer"].store
            texts = [c.text for c in writer_store.iter_chunks()]
            model = pipeline.components["embedder"].sentence_transformer
        seconds, _ = timed(
            lambda m=model, t=texts: m.encode(
                t, batch_size=args.batch_size, normalize_embeddings=True
            )
        )
        raw_times.append(seconds)
        shutil.rmtree(store, ignore_errors=True)

    n = len(texts)
    ragline_rate, raw_rate = n / min(ragline_times), n / min(raw_times)
    print(f"chunks: {n}, batch size {args.batch_size}, backend {args.backend}")
    print(f"raw encode      : {raw_rate:8.1f} chunks/s  (runs: {_fmt(raw_times)})")
    print(f"ragline ingest  : {ragline_rate:8.1f} chunks/s  (runs: {_fmt(ragline_times)})")
    print(f"ratio ragline/raw: {ragline_rate / raw_rate:.3f}  (target >= 0.90)")
    print(
        f"re-run, unchanged corpus: {rerun:.3f} s = {100 * rerun / first_run:.2f} % of the "
        f"first run ({first_run:.1f} s)  (target < 5 %)"
    )
    shutil.rmtree(work, ignore_errors=True)


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.1f} s" for t in times)


if __name__ == "__main__":
    main()
