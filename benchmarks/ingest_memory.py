"""Peak memory while ingesting a large synthetic corpus with ragline's local runner.

Writes one JSONL file of ``--chunks`` short synthetic rows (one chunk each), ingests it with
loader.files -> splitter.recursive -> embedder -> writer.store (FAISS on disk), and samples the
process's resident memory every 50 ms. Reports RSS after the model is loaded, the peak during
ingestion, and the part of the growth that is the FAISS index itself (``n x dim x 4`` bytes
of vectors, held in memory by design, plus the store's per-chunk metadata), so the streaming
overhead can be read off. Run it with two sizes to see that it does not grow with the corpus.

    python benchmarks/ingest_memory.py --chunks 100000 [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import current_rss_mb, machine, ragline_pipeline

WORDS = [
    "wing", "flow", "boundary", "layer", "pressure", "shock", "wave", "heat", "transfer",
    "supersonic", "laminar", "turbulent", "nozzle", "cylinder", "plate", "mach", "number",
    "drag", "lift", "airfoil", "slender", "body", "cone", "jet", "stream", "viscous",
    "inviscid", "solution", "equation", "theory", "experiment", "measured", "velocity",
]  # fmt: skip


def write_corpus(path: Path, chunks: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    with path.open("w") as handle:
        for i in range(chunks):
            text = " ".join(rng.choice(WORDS) for _ in range(24))
            handle.write(json.dumps({"_id": str(i), "text": f"row {i}: {text}."}) + "\n")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from rag.pipelines.ingest import run_ingest

    work = Path(tempfile.mkdtemp(prefix="ragline-mem-"))
    corpus = work / "synthetic.jsonl"
    size = write_corpus(corpus, args.chunks)
    pipeline = ragline_pipeline(str(work / "index"), batch_size=args.batch_size)
    pipeline.warm_up()
    baseline = current_rss_mb()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], current_rss_mb())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    report = run_ingest(pipeline, [corpus], progress=False)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    store = pipeline.components["writer"].store
    index_mb = store.count() * (store.dimension or 0) * 4 / 2**20
    print(f"machine: {machine()}")
    print(
        f"corpus: {args.chunks} rows, {size / 2**20:.1f} MiB JSONL; "
        f"{report.chunks_written} chunks written in {seconds:.0f} s "
        f"({report.chunks_written / seconds:.0f} chunks/s)"
    )
    print(
        f"RSS after model load: {baseline:.0f} MiB; peak while ingesting: {peak[0]:.0f} MiB; "
        f"growth {peak[0] - baseline:.0f} MiB"
    )
    print(
        f"of which the in-memory FAISS flat index (vectors only): {index_mb:.0f} MiB; "
        f"growth minus index: {peak[0] - baseline - index_mb:.0f} MiB"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
