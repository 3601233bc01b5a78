"""What tracing costs ``rag search`` when it is off (and, for reference, when it is on).

    .venv/bin/python benchmarks/tracing_overhead.py [--data ../shared/data] [--rounds 15]

``rag search`` runs :func:`rag.core.tracing.traced_retrieve`: the retriever call inside a
``ragline.retrieve`` span. With no tracer provider and no ``OTEL_EXPORTER_OTLP_ENDPOINT`` that
span is the shared no-op object. This script times, in the same process and interleaved query by
query, each query once per variant back to back in a shuffled order (so the load of a shared
machine hits every variant alike):

- ``baseline``: ``retriever.retrieve(query, k=10)``, no instrumentation at all;
- ``tracing off``: ``traced_retrieve(retriever, query, k=10)`` exactly as ``rag search`` calls it;
- ``tracing on``: the same with an SDK tracer provider and an in-memory exporter (reference).

over the Cranfield queries against a FAISS index of the Cranfield corpus (dense,
all-MiniLM-L6-v2; the ``retrieval_quality.py`` cache is reused), and reports for each variant
the median time per query (the thread's CPU time with ``--threads 1``, the default, so that the
other processes of a busy machine do not count; wall time otherwise), the median of its
per-query ratios to the baseline (the figure that decides) and the ratio of total times, plus
the cost of one no-op span measured directly. The goal is an overhead of at most 2 % with
tracing off; the exit status is 1 when the median ratio is above 1.02.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from query_strategies import build_retrievers  # noqa: E402
from retrieval_quality import read_jsonl  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
LIMIT = 1.02


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--queries", type=int, default=100, help="queries per round")
    parser.add_argument("--cache", type=Path, default=ROOT / ".rag" / "bench-quality")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads; 1 times CPU time (0: torch default)"
    )
    args = parser.parse_args(argv)
    folder = args.data / "cranfield"
    if not (folder / "corpus.jsonl").exists():
        print(f"skipped: {folder} not found (pass --data DIR)")
        return 0
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        os.environ.pop(name, None)  # "off" must mean off
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
    from rag.core.tracing import traced_retrieve, tracer_for

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # fewer threads: less noise on a shared machine
    embedder = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="cpu", batch_size=64)
    embedder.warm_up()
    store, retrievers = build_retrievers("cranfield", folder, embedder, args.cache)
    dense = retrievers["dense"]
    texts = [q["text"] for q in read_jsonl(folder / "queries.jsonl")][: args.queries]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing_on = tracer_for(provider)

    def baseline(text: str) -> None:
        dense.retrieve(text, k=10)

    def tracing_off(text: str) -> None:
        traced_retrieve(dense, text, k=10)

    def traced(text: str) -> None:
        traced_retrieve(dense, text, k=10, tracing=tracing_on)
        exporter.clear()

    variants = {"baseline": baseline, "tracing off": tracing_off, "tracing on": traced}
    for run in variants.values():  # warm caches and code paths
        for text in texts[:5]:
            run(text)
    # Paired timings: each query runs once per variant back to back (in a shuffled order), so
    # the load of a shared machine at that moment hits all variants alike; the overhead is the
    # median of the per-query ratios.
    # With one torch thread the whole search runs in this thread, so its CPU time
    # (thread_time) measures the work done, not the waits for a CPU of a busy machine.
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    shuffle = random.Random(0)
    for round_index in range(args.rounds):
        for text in texts:
            shuffle.shuffle(order)
            for name in order:
                started = clock()
                variants[name](text)
                times[name].append(clock() - started)
        print(f"\r  round {round_index + 1}/{args.rounds}", end="", file=sys.stderr)
    print(file=sys.stderr)
    store.close()

    off = tracer_for(None)
    loops = 200_000
    noop_seconds = timeit.timeit(
        lambda: off.span("ragline.retrieve", {"ragline.k": 10}).set_attribute("ragline.hits", 10),
        number=loops,
    )
    resolve_seconds = timeit.timeit(lambda: tracer_for(None), number=loops)
    per_query = statistics.median(times["baseline"])
    kind = "thread CPU time" if clock is time.thread_time else "wall time"
    print(f"{len(texts)} cranfield queries x {args.rounds} rounds, dense k=10, {kind}")
    print(f"{'variant':<14}{'median ms/query':>17}{'median paired ratio':>21}{'total ratio':>13}")
    ratios = {}
    for name, values in times.items():
        paired = [t / b for t, b in zip(values, times["baseline"])]
        ratios[name] = statistics.median(paired)
        total = sum(values) / sum(times["baseline"])
        print(
            f"{name:<14}{statistics.median(values) * 1000:>17.3f}{ratios[name]:>21.4f}"
            f"{total:>13.4f}"
        )
    direct = (noop_seconds + resolve_seconds) / loops
    print(
        f"no-op span + tracer lookup: {direct * 1e9:.0f} ns per search "
        f"= {direct / per_query * 100:.4f} % of one search ({per_query * 1000:.2f} ms)"
    )
    verdict = "PASS" if ratios["tracing off"] <= LIMIT else "FAIL"
    print(f"tracing off / baseline = {ratios['tracing off']:.4f} (limit {LIMIT}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
