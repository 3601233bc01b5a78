"""Shared pieces of the ingestion benchmarks (not a public module)."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield" / "corpus.jsonl"


def machine() -> str:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {cuda}, "
        f"torch threads {torch.get_num_threads()}"
    )


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = func()
    return time.perf_counter() - started, result


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def write_jsonl(path: Path, texts: list[str]) -> Path:
    with path.open("w") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"_id": str(i), "text": text}) + "\n")
    return path


def ragline_pipeline(
    store_path: str,
    *,
    batch_size: int,
    chunk_size: int = 128,
    backend: str = "torch",
    device: str = "cpu",
    window: int = 2048,
) -> Any:
    """loader.files -> splitter.recursive (model tokens) -> embedder -> writer(FAISS)."""
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
    from rag.connectors.stores.faiss import FaissStore
    from rag.core.pipeline import Pipeline
    from rag.pipelines.loaders import FileLoader
    from rag.pipelines.splitters import RecursiveSplitter
    from rag.pipelines.writer import StoreWriter

    pipeline = Pipeline(name="ingest")
    pipeline.add_component("loader", FileLoader(title_field=None))
    pipeline.add_component(
        "splitter",
        RecursiveSplitter(chunk_size=chunk_size, chunk_overlap=0, tokenizer="all-MiniLM-L6-v2"),
    )
    pipeline.add_component(
        "embedder",
        SentenceTransformersEmbedder(
            model="all-MiniLM-L6-v2", device=device, batch_size=batch_size, backend=backend
        ),
    )
    pipeline.add_component(
        "writer", StoreWriter(store=FaissStore(path=store_path), batch_size=window)
    )
    return pipeline
