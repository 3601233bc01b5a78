"""The cost of ``rag ingest`` against raw ``SentenceTransformer.encode`` (issue 21, target <= 1.2x).

One pipeline file (``--config``, default ``examples/ingest.yaml``, on the CPU, records on, as
``rag ingest`` runs it) ingests a corpus, and in the same process the model that pipeline
loaded encodes, at the config's batch size:

- **the same texts**: exactly what ragline embedded (each stored chunk as the embedder renders
  it, e.g. under its document's title with ``context_template``);
- **the documents**: each document's own text once, cut at the model's window, as a plain
  "embed each document" baseline does (issue 21's cost per document).

The three runs repeat ``--repeats`` times in a rotating order (the machine may be shared) and
the medians count. Load hits all three alike, so two further figures say where the time goes
whatever the load: ragline's own split of its run (time inside the model's ``encode`` against
everything else: reading, splitting, records, writing) and the word pieces each side feeds the
model (chunks re-embed what a window cut drops, and a title line per chunk), counted at the
model's forward pass together with the padding each side's batches carry (ragline sorts each
window of chunks by word pieces; ``encode`` sorts by characters). CPU seconds of the process
(all its threads) are printed beside wall seconds: with ``--threads 1`` they count the work each
side does, which the load of other processes changes much less than the wall clock. Then a
re-run over the unchanged corpus (incremental mode) is timed against the first run.

The corpus is either one BEIR ``corpus.jsonl`` (``--corpus``; ``--limit N`` keeps its first N
documents; titles become metadata, so ``context_template`` applies):

    python benchmarks/ingest_throughput.py --corpus ../shared/data/nfcorpus_orig/corpus.jsonl

or N small ``.txt`` files (``--files N``): the documents of nfcorpus_orig, cranfield and
xquad_en_dev under ``--data`` (4,800 non-empty ones), then their 1,151 queries as short
documents, each as a title line, a blank line and the text:

    python benchmarks/ingest_throughput.py --files 5000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CRANFIELD, machine, timed

DATA = CRANFIELD.parents[1]
SMALL_FILE_CORPORA = ("nfcorpus_orig", "cranfield", "xquad_en_dev")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CRANFIELD, help="a BEIR corpus.jsonl")
    parser.add_argument("--limit", type=int, default=0, help="use its first N documents")
    parser.add_argument("--files", type=int, default=0, help="N small .txt files instead")
    parser.add_argument("--config", type=Path, default=Path("examples/ingest.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--data", type=Path, default=DATA, help="root of the BEIR corpora")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    needed = args.data if args.files else args.corpus
    if not needed.exists():
        sys.exit(f"{needed} not found: this benchmark reads the shared BEIR corpora (--data)")
    work = Path(tempfile.mkdtemp(prefix="ragline-bench-ingest-"))
    try:
        print(f"machine: {machine()}, load average {_load()}")
        if args.files:
            source, documents = small_files(work, args.files, args.data)
        else:
            source, documents = jsonl_corpus(work, args.corpus, args.limit)
        compare(args, work, source, documents)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def jsonl_corpus(work: Path, corpus: Path, limit: int) -> tuple[Path, list[str]]:
    """``corpus`` (or its first ``limit`` documents, copied) and each document's text as the
    JSONL loader makes it (title, blank line, text)."""
    lines = []
    with corpus.open() as handle:
        for line in handle:
            if limit and len(lines) >= limit:
                break
            lines.append(line)
    source = corpus
    if limit:
        source = work / "corpus.jsonl"
        source.write_text("".join(lines))
    documents = []
    for line in lines:
        doc = json.loads(line)
        text = "\n\n".join(p for p in (doc.get("title", ""), doc.get("text", "")) if p)
        if text.strip():
            documents.append(text)
    print(f"corpus: {corpus} ({'first ' + str(limit) if limit else 'all'}: {len(lines)} docs)")
    return source, documents


def small_files(work: Path, count: int, data: Path) -> tuple[Path, list[str]]:
    corpus = work / "corpus"
    corpus.mkdir()
    documents, queries = write_small_files(corpus, count, data)
    from_queries = min(max(count - documents, 0), queries)
    repeated = max(count - documents - queries, 0)
    print(
        f"corpus: {count} .txt files from {', '.join(SMALL_FILE_CORPORA)}: "
        f"{count - from_queries - repeated} documents, {from_queries} queries, "
        f"{repeated} repeats"
    )
    return corpus, [f.read_text(encoding="utf-8") for f in sorted(corpus.iterdir())]


def write_small_files(directory: Path, count: int, data: Path = DATA) -> tuple[int, int]:
    """Write ``count`` texts as ``<n>-<id>.txt``: the corpora's documents (title line, blank
    line, text), then their queries; past both, texts repeat under new names. Returns how many
    documents and queries there are."""
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


class _Tally:
    """Word pieces and padded positions the model's forward pass is given, per side.

    Only the first run of each side counts (every run feeds the same batches)."""

    def __init__(self) -> None:
        self.side = ""
        self.counts: dict[str, list[int]] = {}  # side -> [word pieces, padded positions]

    def watch(self, model: Any) -> None:
        """Count every batch ``model``'s forward pass runs (ragline's and ``encode``'s)."""
        forward = model.forward

        def counted(features: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            mask = features.get("attention_mask")
            if mask is not None and self.side in self.counts:
                self.counts[self.side][0] += int(mask.sum())
                self.counts[self.side][1] += int(mask.numel())
            return forward(features, *args, **kwargs)

        model.forward = counted

    def start(self, side: str) -> None:
        self.side = side if side not in self.counts else ""
        if self.side:
            self.counts[side] = [0, 0]

    def line(self, side: str) -> str:
        tokens, padded = self.counts[side]
        pad = 100 * (padded / tokens - 1)
        return f"{tokens:,} word pieces in {padded:,} positions ({pad:.1f} % padding)"


class _Ragline:
    """One pipeline per run (a fresh index); the raw side encodes with the model it loaded."""

    def __init__(self, config: Path, work: Path, tally: _Tally) -> None:
        self.config, self.work, self.runs, self.tally = config, work, 0, tally
        self.model: Any = None
        self.embedder: Any = None
        self.texts: list[str] = []  # what ragline embedded (first run)
        self.first_run = self.rerun = 0.0
        self.encode_seconds: list[float] = []  # per run: inside the model's encode

    def pipeline(self) -> Any:
        from rag.core import PipelineFile

        self.runs += 1
        os.environ["RAG_INDEX_DIR"] = str(self.work / f"index-{self.runs}")
        pipeline = PipelineFile.load(self.config).pipeline("ingest")
        embedder = pipeline.components["embedder"]
        embedder.device = "cpu"
        pipeline.warm_up()  # loads the model (not timed, as the raw side's is loaded)
        self.model, self.embedder = embedder.sentence_transformer, embedder
        self.tally.watch(self.model)
        return pipeline

    def run(self, source: Path) -> tuple[float, float]:
        """Wall and CPU seconds of one ``run_ingest`` into a fresh index."""
        from rag.pipelines.ingest import run_ingest

        pipeline = self.pipeline()
        embedder = pipeline.components["embedder"]
        inside = [0.0]
        encode = embedder.embed_documents

        def timed_encode(texts: Any) -> Any:  # ragline's own split: encode vs the rest
            started = time.perf_counter()
            try:
                return encode(texts)
            finally:
                inside[0] += time.perf_counter() - started

        embedder.embed_documents = timed_encode
        self.tally.start("ragline")
        cpu = time.process_time()
        seconds, report = timed(lambda: run_ingest(pipeline, [source], progress=False))
        cpu = time.process_time() - cpu
        assert all(":" in e["source"] for e in report.errors), report.errors[:3]  # empty rows
        self.encode_seconds.append(inside[0])
        store = pipeline.components["writer"].store
        if not self.texts:
            self.first_run = seconds
            self.rerun, again = timed(lambda: run_ingest(pipeline, [source], progress=False))
            assert again.chunks_written == 0 and again.chunks_skipped == report.chunks_written
            self.texts = [embedder.index_text(c) for c in store.iter_chunks()]
            assert len(self.texts) == report.chunks_written
        store.close()
        shutil.rmtree(self.work / f"index-{self.runs}", ignore_errors=True)
        return seconds, cpu


def compare(args: argparse.Namespace, work: Path, source: Path, documents: list[str]) -> None:
    tally = _Tally()
    ragline = _Ragline(args.config, work, tally)
    times: dict[str, list[float]] = {"ragline": [], "texts": [], "documents": []}
    cpu: dict[str, list[float]] = {side: [] for side in times}

    def encode(texts: list[str]) -> Callable[[], Any]:
        batch = ragline.embedder.batch_size
        return lambda: ragline.model.encode(texts, batch_size=batch, normalize_embeddings=True)

    order = ["ragline", "texts", "documents"]
    for repeat in range(args.repeats):
        for side in order:
            if side == "ragline":
                seconds, cpu_seconds = ragline.run(source)
            else:
                texts = ragline.texts if side == "texts" else documents
                tally.start(side)
                cpu_seconds = time.process_time()
                seconds = timed(encode(texts))[0]
                cpu_seconds = time.process_time() - cpu_seconds
            times[side].append(seconds)
            cpu[side].append(cpu_seconds)
        order = order[1:] + order[:1]  # who goes first rotates
        print(
            f"  repeat {repeat + 1}: "
            + ", ".join(f"{k} {v[-1]:.1f} s ({cpu[k][-1]:.1f} s CPU)" for k, v in times.items())
        )

    window = int(ragline.model.max_seq_length)
    chunk_tokens = _tokens(ragline.model, ragline.texts, window)
    document_tokens = _tokens(ragline.model, documents, window)
    median = {k: statistics.median(v) for k, v in times.items()}
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    n = len(ragline.texts)
    inside = statistics.median(ragline.encode_seconds)
    print(
        f"config {args.config}; chunks {n} from {len(documents)} documents; batch size "
        f"{ragline.embedder.batch_size}; load average {_load()}"
    )
    print(
        f"word pieces fed to the model (window {window}): ragline {chunk_tokens:,} in {n} chunks, "
        f"documents {document_tokens:,}: {chunk_tokens / document_tokens:.3f}x"
    )
    for side, label in (
        ("ragline", "ragline's batches"),
        ("texts", "encode, same texts"),
        ("documents", "encode, documents"),
    ):
        print(f"  forward passes, {label:19s}: {tally.line(side)}")
    for side, label in (
        ("ragline", "rag ingest (all of it)"),
        ("texts", "raw encode, same texts"),
        ("documents", f"raw encode, {len(documents)} documents"),
    ):
        print(
            f"{label:38s}: median {median[side]:7.1f} s  (runs: {_fmt(times[side])}); "
            f"CPU {median_cpu[side]:.1f} s"
        )
    print(
        f"ragline's own run: {inside:.1f} s inside encode, "
        f"{statistics.median(times['ragline']) - inside:.1f} s the rest "
        f"(reading, splitting, records, writing): "
        f"{median['ragline'] / inside:.3f}x its encode time"
    )
    print(
        f"ratio ragline / raw encode of the same texts: {median['ragline'] / median['texts']:.3f}"
    )
    print(
        f"ratio ragline / raw encode of the documents:  "
        f"{median['ragline'] / median['documents']:.3f}  (target <= 1.2; best runs: "
        f"{min(times['ragline']) / min(times['documents']):.3f}; CPU seconds: "
        f"{median_cpu['ragline'] / median_cpu['documents']:.3f})"
    )
    print(
        f"re-run, unchanged corpus: {ragline.rerun:.3f} s = "
        f"{100 * ragline.rerun / ragline.first_run:.2f} % of the first run "
        f"({ragline.first_run:.1f} s)  (target < 5 %)"
    )


def _tokens(model: Any, texts: list[str], window: int) -> int:
    """Word pieces the model reads for ``texts`` (special tokens included, cut at ``window``)."""
    ids = model.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    return sum(min(len(i), window) for i in ids)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.1f}" for t in times)


if __name__ == "__main__":
    main()
