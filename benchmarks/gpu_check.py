"""GPU check: fp16 embedding on CUDA, raw ``encode`` versus ragline's ingestion, chunks/s.

One prepared script sized for about 5 minutes of a lent GPU (an H100 does it in well under
that). It prints, on the same device and the same chunk texts:

- raw ``SentenceTransformer.encode`` in fp32 and in fp16 (batch ``--batch-size``);
- ragline's local runner (``run_ingest``: load, split, embed with ``device: cuda`` and fp16
  on by default, write to FAISS), whose throughput should be >= 0.90 x raw fp16 encode;
- that ragline's fp16 vectors agree with fp32 ones (minimum cosine similarity);
- that ``style.evidence``'s cross-encoder scores the same on the device as on the CPU.

Without CUDA it says so and exits 0; ``--cpu`` runs the same steps on the CPU with a small
sample, to check the script itself. Results also go to ``$OUT/gpu_check.json`` when ``OUT``
is set.

    python benchmarks/gpu_check.py [--copies 8] [--batch-size 128] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CRANFIELD, machine, ragline_pipeline


def make_corpus(work: Path, copies: int, limit: int) -> Path:
    """``copies`` copies of the corpus with distinct ids (more chunks: steadier timings)."""
    rows = []
    with CRANFIELD.open() as handle:
        for i, line in enumerate(handle):
            if limit and i >= limit:
                break
            rows.append(json.loads(line))
    path = work / "corpus.jsonl"
    with path.open("w") as out:
        for copy in range(copies):
            for row in rows:
                out.write(json.dumps({**row, "_id": f"{copy}-{row['_id']}"}) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cpu", action="store_true", help="no GPU: run a small CPU sample")
    args = parser.parse_args()

    import numpy as np
    import torch

    from rag.pipelines.ingest import run_ingest

    cuda = torch.cuda.is_available()
    print(f"machine: {machine()}")
    if not cuda and not args.cpu:
        print("no CUDA device: this check needs a GPU (use --cpu to exercise it on the CPU)")
        return 0
    device = "cuda" if cuda else "cpu"
    copies, limit = (args.copies, 0) if cuda else (1, 40)
    work = Path(tempfile.mkdtemp(prefix="ragline-gpu-"))
    corpus = make_corpus(work, copies, limit)
    results: dict[str, object] = {"device": torch.cuda.get_device_name(0) if cuda else "cpu"}

    pipeline = ragline_pipeline(
        str(work / "index"), batch_size=args.batch_size, device=device, window=8192
    )
    started = time.perf_counter()
    pipeline.warm_up()
    results["ragline_warm_up_s"] = round(time.perf_counter() - started, 2)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    # ragline first (cold caches count against it, not for it)
    sync()
    started = time.perf_counter()
    report = run_ingest(pipeline, [corpus], mode="none", progress=False)
    sync()
    ragline_s = time.perf_counter() - started
    store = pipeline.components["writer"].store
    chunks = list(store.iter_chunks())
    texts = [c.text for c in chunks]
    n = len(texts)

    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(_model_path(), device=device)
    timings = {}
    for precision in ("fp32", "fp16") if cuda else ("fp32",):
        if precision == "fp16":
            raw.half()
        raw.encode(texts[: args.batch_size], batch_size=args.batch_size)  # warm kernels
        sync()
        started = time.perf_counter()
        vectors = raw.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        sync()
        timings[precision] = time.perf_counter() - started
        if precision == "fp32":
            reference = np.asarray(vectors, dtype=np.float32)
    stored = {c.id: c.embedding for c in store.get([c.id for c in chunks])}
    mine = np.vstack([stored[c.id] for c in chunks])
    cosine = float(np.min(np.sum(mine * reference, axis=1)))

    best_raw = min(timings.values())
    results.update(
        chunks=n,
        batch_size=args.batch_size,
        ragline_chunks_per_s=round(n / ragline_s, 1),
        raw_chunks_per_s={k: round(n / v, 1) for k, v in timings.items()},
        ratio_ragline_vs_best_raw=round(best_raw / ragline_s, 3),
        min_cosine_ragline_vs_fp32=round(cosine, 5),
        report=report.to_dict() | {"errors": len(report.errors)},
    )
    for name, seconds in timings.items():
        print(f"raw encode {name}: {n / seconds:9.1f} chunks/s ({seconds:.2f} s)")
    precision = "fp16 on CUDA" if cuda else "fp32 on CPU"
    print(f"ragline ingest  : {n / ragline_s:9.1f} chunks/s ({ragline_s:.2f} s, {precision})")
    print(f"ratio ragline / best raw: {best_raw / ragline_s:.3f} (target >= 0.90)")
    print(f"min cosine(ragline, fp32 raw): {cosine:.5f}")
    results["reranker_max_abs_diff_vs_cpu"] = gap = reranker_gap(device, texts[:16])
    print(f"style.evidence cross-encoder on {device}: max |score - CPU score| {gap:.5f}")
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_check.json").write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def reranker_gap(device: str, texts: list[str]) -> float:
    """The largest difference between ``style.evidence``'s cross-encoder scores of ``texts`` on
    ``device`` and on the CPU (``reranker_device`` follows a GPU embedder)."""
    from rag.chains.styles.evidence_reranker import SentenceReranker

    question = "What did the experiment measure?"
    on_device = SentenceReranker(device=device).scores(question, texts)
    on_cpu = SentenceReranker(device="cpu").scores(question, texts)
    return round(float(abs(on_device - on_cpu).max()), 5)


def _model_path() -> str:
    from rag.connectors.embedders.sentence_transformers import resolve_model_path

    return resolve_model_path("all-MiniLM-L6-v2")


if __name__ == "__main__":
    raise SystemExit(main())
