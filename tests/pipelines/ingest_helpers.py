"""Shared helpers of the ingestion tests: a small corpus, a pipeline, the expected chunks."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from rag.core.pipeline import Pipeline
from rag.pipelines.loaders import FileLoader, expand_sources
from rag.pipelines.splitters import RecursiveSplitter
from rag.pipelines.writer import StoreWriter

CHUNK_SIZE = 160  # characters: a few chunks per file, no tokenizer to load


def paragraph(topic: str, n: int) -> str:
    return (
        f"{topic} note {n}. The {topic} section explains item {n} in plain words, "
        f"with enough text that the splitter cuts it into pieces of about one sentence."
    )


def write_corpus(root: Path, version: int = 1, *, files: int = 6) -> Path:
    """``root`` with Markdown files and one JSONL file; ``version`` changes some of them.

    version 1: a-*.md, b.jsonl; version 2: a-0 changed, a-1 appended, a-2 removed,
    b.jsonl one row changed, c-new.md added.
    """
    root.mkdir(parents=True, exist_ok=True)
    for path in root.iterdir():
        path.unlink()
    for i in range(files):
        if version == 2 and i == 2:
            continue
        body = "\n\n".join(paragraph(f"topic{i}", n) for n in range(4))
        if version == 2 and i == 0:
            body = body.replace("plain words", "different words")
        if version == 2 and i == 1:
            body += "\n\n" + paragraph("appendix", 9)
        (root / f"a-{i}.md").write_text(f"# Topic {i}\n\n{body}\n")
    rows = [{"_id": f"r{n}", "title": f"row {n}", "text": paragraph("row", n)} for n in range(8)]
    if version == 2:
        rows[3]["text"] = paragraph("changed-row", 3)
        (root / "c-new.md").write_text("# New\n\n" + paragraph("new", 1) + "\n")
    (root / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def make_pipeline(embedder: Any, store: Any, **writer_options: Any) -> Pipeline:
    pipeline = Pipeline(name="ingest")
    pipeline.add_component("loader", FileLoader())
    pipeline.add_component(
        "splitter", RecursiveSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=0, tokenizer=None)
    )
    pipeline.add_component("embedder", embedder)
    pipeline.add_component("writer", StoreWriter(store=store, **writer_options))
    return pipeline


def expected_chunks(*paths: Path | str) -> dict[str, str]:
    """``{chunk id: text}`` that a complete ingest of ``paths`` must leave in the store."""
    loader = FileLoader()
    splitter = RecursiveSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=0, tokenizer=None)
    files, _ = expand_sources(paths)
    documents = loader.run(sources=files)["documents"]
    return {c.id: c.text for c in splitter.run(documents=documents)["chunks"]}


def pipeline_yaml(path: Path, *, store: str, batch_size: int = 8) -> Path:
    """A pipeline file equivalent to :func:`make_pipeline` (same names, same fingerprint)."""
    store_block = textwrap.indent(store, "    ")
    path.write_text(
        "components:\n"
        "  loader:\n"
        "    type: loader.files\n"
        "  splitter:\n"
        "    type: splitter.recursive\n"
        f"    init_parameters: {{chunk_size: {CHUNK_SIZE}, chunk_overlap: 0, tokenizer: null}}\n"
        "  embedder:\n"
        "    type: embedder.sentence_transformers\n"
        "    init_parameters: {model: all-MiniLM-L6-v2, device: cpu, batch_size: 8}\n"
        f"  store:\n{store_block}\n"
        "  writer:\n"
        "    type: writer.store\n"
        f"    init_parameters: {{store: '@store', batch_size: {batch_size}}}\n"
        "pipelines:\n"
        "  ingest:\n"
        "    components: [loader, splitter, embedder, writer]\n"
    )
    return path
