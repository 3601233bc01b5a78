"""Chunks per second of ragline's ingestion versus raw ``SentenceTransformer.encode``.

Both run in this process on the same chunk texts with the same batch size and thread count;
the pipeline is warmed up (model loaded) before timing, as the raw model is. ragline's time
covers everything: reading the corpus, splitting with the model's tokenizer, embedding,
writing to FAISS and saving the index. Each side runs ``--repeats`` times, interleaved, and
the best time counts (the machine may be shared). Then a re-run over the unchanged corpus
(incremental mode) is timed against the first run.

    python benchmarks/ingest_throughput.py [--corpus PATH] [--limit N] [--batch-size 32]

With ``--files N`` it measures many small files instead: N documents of the BEIR corpora under
``/work/shared/data`` (nfcorpus_orig, then cranfield, then xquad_en_dev: 4,800 non-empty
documents, then their 1,151 queries as short documents, so up to 5,951 files all differ) are
written to a temporary directory as one ``.txt`` file each, ingested with the pipeline of
``examples/ingest.yaml`` (``--config``; CPU, records on, as ``rag ingest`` runs it), and compared
with raw ``encode`` of exactly the chunk texts ragline stored, at the config's batch size, and
with raw ``encode`` of the documents' own texts (one per file, cut at the model's window, as a
plain "embed each document" baseline does): issue 21's cost per document, target <= 1.2x.

    python benchmarks/ingest_throughput.py --files 5000 [--config examples/ingest.yaml]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CRANFIELD, machine, ragline_pipeline, timed

DATA = CRANFIELD.parents[1]
SMALL_FILE_CORPORA = ("nfcorpus_orig", "cranfield", "xquad_en_dev")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CRANFIELD)
    parser.add_argument("--limit", type=int, default=0, help="use the first N documents")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    parser.add_argument("--files", type=int, default=0, help="N small files instead of JSONL")
    parser.add_argument("--config", type=Path, default=Path("examples/ingest.yaml"))
    parser.add_argument("--data", type=Path, default=DATA, help="root of the BEIR corpora")
    args = parser.parse_args()
    if args.files:
        small_files(args)
        return

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


def write_small_files(directory: Path, count: int, data: Path = DATA) -> tuple[int, int]:
    """Write ``count`` texts as ``<n>-<id>.txt``: the corpora's documents (title line, blank
    line, text), then their queries; past both, texts repeat under new names. Returns how many
    documents and queries there are."""
    import json

    docs: list[tuple[str, str]] = []
    queries: list[tuple[str, str]] = []
    for name in SMALL_FILE_CORPORA:
        with (data / name / "corpus.jsonl").open() as handle:
            for line in handle:
                doc = json.loads(line)
                text = "\n\n".join(p for p in (doc.get("title", ""), doc["text"]) if p)
                if text.strip():  # cranfield has two empty documents
                    docs.append((doc["_id"], text))
        with (data / name / "queries.jsonl").open() as handle:
            for line in handle:
                query = json.loads(line)
                queries.append((f"{name}-q{query['_id']}", query["text"]))
    texts = docs + queries
    for i in range(count):
        text_id, text = texts[i % len(texts)]
        (directory / f"{i:06d}-{text_id}.txt").write_text(text, encoding="utf-8")
    return len(docs), len(queries)


def small_files(args: argparse.Namespace) -> None:
    import os

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from rag.core import PipelineFile
    from rag.pipelines.ingest import run_ingest

    work = Path(tempfile.mkdtemp(prefix="ragline-bench-files-"))
    corpus = work / "corpus"
    corpus.mkdir()
    documents, queries = write_small_files(corpus, args.files, args.data)
    print(f"machine: {machine()}")
    from_queries = min(max(args.files - documents, 0), queries)
    repeated = max(args.files - documents - queries, 0)
    print(
        f"corpus: {args.files} .txt files from {', '.join(SMALL_FILE_CORPORA)}: "
        f"{args.files - from_queries - repeated} documents, {from_queries} queries, "
        f"{repeated} repeats"
    )
    ragline_times, raw_times, doc_times, texts = [], [], [], []
    documents = [f.read_text(encoding="utf-8") for f in sorted(corpus.iterdir())]
    for repeat in range(args.repeats):
        os.environ["RAG_INDEX_DIR"] = str(work / f"index-{repeat}")
        pipeline = PipelineFile.load(args.config).pipeline("ingest")
        embedder = pipeline.components["embedder"]
        embedder.device = "cpu"
        pipeline.warm_up()
        seconds, report = timed(lambda p=pipeline: run_ingest(p, [corpus], progress=False))
        assert not report.errors, report.errors[:3]
        ragline_times.append(seconds)
        store = pipeline.components["writer"].store
        texts = [c.text for c in store.iter_chunks()]
        assert len(texts) == report.chunks_written
        model = embedder.sentence_transformer
        seconds, _ = timed(
            lambda m=model, t=texts, b=embedder.batch_size: m.encode(
                t, batch_size=b, normalize_embeddings=True
            )
        )
        raw_times.append(seconds)
        seconds, _ = timed(
            lambda m=model, t=documents, b=embedder.batch_size: m.encode(
                t, batch_size=b, normalize_embeddings=True
            )
        )
        doc_times.append(seconds)
        store.close()
        shutil.rmtree(work / f"index-{repeat}", ignore_errors=True)
    n = len(texts)
    ragline_rate, raw_rate = n / min(ragline_times), n / min(raw_times)
    print(f"chunks: {n} from {args.files} files, config {args.config}")
    print(f"raw encode      : {raw_rate:8.1f} chunks/s  (runs: {_fmt(raw_times)})")
    print(f"ragline ingest  : {ragline_rate:8.1f} chunks/s  (runs: {_fmt(ragline_times)})")
    print(f"ratio ragline/raw: {ragline_rate / raw_rate:.3f}  (target >= 0.90)")
    print(
        f"per document: ragline ingest {min(ragline_times):.1f} s vs raw encode of the "
        f"{len(documents)} documents' texts at the model's window "
        f"({model.max_seq_length} tokens) {min(doc_times):.1f} s: "
        f"{min(ragline_times) / min(doc_times):.2f}x  (target <= 1.2)"
    )
    shutil.rmtree(work, ignore_errors=True)


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.1f} s" for t in times)


if __name__ == "__main__":
    main()
