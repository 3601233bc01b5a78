"""Tiny synthetic evaluation data written to a temporary folder (never /work/shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

DOCS = {
    "d1": ("FAISS", "FAISS is a library for efficient similarity search of dense vectors."),
    "d2": ("BM25", "BM25 ranks documents by term frequency and inverse document frequency."),
    "d3": ("Paris", "Paris is the capital of France and home of the Eiffel Tower."),
    "d4": ("Photosynthesis", "Plants turn sunlight, water and carbon dioxide into sugar."),
    "d5": ("Volcanoes", "A volcano erupts when magma rises through the crust of the earth."),
    "d6": ("Jazz", "Jazz music began in New Orleans with improvisation and swing rhythms."),
}
QUERIES = {
    "q1": "library for vector similarity search",
    "q2": "what is the capital of France",
    "q3": "how do plants make sugar from sunlight",
    "q4": "where did jazz music start",
}
QRELS = [("q1", "d1", 2), ("q1", "d2", 1), ("q2", "d3", 1), ("q3", "d4", 1), ("q4", "d6", 1)]
ANSWERS = {"q2": ["Paris"], "q3": ["sugar"], "q4": ["New Orleans"]}


def write_beir(
    folder: Path,
    *,
    qrels: list[tuple[str, str, int]] | None = None,
    docs: dict[str, tuple[str, str]] | None = None,
    with_qrels: bool = True,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as handle:
        for doc_id, (title, text) in (docs or DOCS).items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as handle:
        for query_id, text in QUERIES.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    if with_qrels:
        (folder / "qrels").mkdir(exist_ok=True)
        lines = ["query-id\tcorpus-id\tscore"]
        lines += [f"{q}\t{d}\t{s}" for q, d, s in (qrels or QRELS)]
        (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def write_answers(path: Path) -> Path:
    with path.open("w") as handle:
        for query_id, answers in ANSWERS.items():
            gold = [d for q, d, _ in QRELS if q == query_id]
            row = {"_id": query_id, "question": QUERIES[query_id], "answers": answers}
            handle.write(json.dumps({**row, "context_id": gold[0]}) + "\n")
    return path


PIPELINE = """\
components:
  embedder:
    type: embedder.sentence_transformers
    init_parameters: {model: all-MiniLM-L6-v2, device: cpu, batch_size: 16}
  store:
    type: store.faiss
    init_parameters: {path: unused, index: flat}
  loader: {type: loader.files}
  splitter:
    type: splitter.recursive
    init_parameters: {chunk_size: 64, chunk_overlap: 0}
  writer:
    type: writer.store
    init_parameters: {store: "@store"}
  dense:
    type: retriever.dense
    init_parameters: {embedder: "@embedder", store: "@store", k: 10}
  bm25:
    type: retriever.bm25
    init_parameters: {store: "@store", k: 10}
pipelines:
  ingest: {components: [loader, splitter, embedder, writer]}
  search: {components: [dense]}
"""


def write_eval(folder: Path, body: str, *, pipeline: str = PIPELINE) -> Path:
    """An eval file next to a pipeline file and a BEIR folder ``data/``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.yaml").write_text(pipeline)
    if not (folder / "data").exists():
        write_beir(folder / "data")
    path = folder / "eval.yaml"
    path.write_text(body)
    return path


EVAL = """\
dataset:
  format: beir
  path: data
pipeline: pipeline.yaml
retriever: dense
k: 5
metrics: [ndcg@10, recall@5, mrr@10, map@100, p@1]
grid:
  splitter.chunk_size: [32, 64]
  retriever: [dense, bm25]
"""
