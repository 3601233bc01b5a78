"""Load on ``POST /v1/search`` over loopback HTTP against the same search called in-process.

    .venv/bin/python benchmarks/serve_load.py [--requests 300] [--concurrency 1 8 32]

A real ``rag serve`` process (uvicorn, examples/ingest.yaml, examples/corpus ingested into a
temporary FAISS index) listens on 127.0.0.1; this process drives it with ``httpx.AsyncClient``
at each concurrency level (``--requests`` requests per level, at most ``--max-seconds`` per
level), after a warm-up. The baseline is ``retriever.retrieve`` on the same index and model in
this process, one call at a time. Reported: requests/s, p50 and p95 latency per level, and the
ratio of the HTTP path's cost (per-request latency at concurrency 1; time per request at every
level) over the in-process call. The client shares the machine's cores with the server, as a
co-located client would. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789abcdef"
QUERIES = [
    "How does HNSW find neighbours?",
    "What is BM25?",
    "What does FAISS store?",
    "How are retrieval systems evaluated?",
    "What is retrieval-augmented generation?",
    "How long can an embedded text be?",
    "What is the Cranfield collection?",
    "Which metric compares rankings?",
    "What is a vector index?",
    "How are documents split into chunks?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def in_process(config: Path, requests: int) -> dict[str, float]:
    from rag.core.pipeline import PipelineFile

    retriever = PipelineFile.load(config).pipeline("search").get_component("retriever")
    retriever.warm_up()
    for query in QUERIES:
        retriever.retrieve(query, k=5)
    latencies = []
    started = time.perf_counter()
    for i in range(requests):
        mark = time.perf_counter()
        retriever.retrieve(QUERIES[i % len(QUERIES)], k=5)
        latencies.append(time.perf_counter() - mark)
    elapsed = time.perf_counter() - started
    return summarize(latencies, elapsed)


def summarize(latencies: list[float], elapsed: float) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


async def drive(base: str, concurrency: int, requests: int, max_seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {KEY}"}, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                mark = time.perf_counter()
                response = await client.post(
                    "/v1/search", json={"query": QUERIES[i % len(QUERIES)], "k": 5}
                )
                latencies.append(time.perf_counter() - mark)
                errors += response.status_code != 200

        for query in QUERIES:  # warm-up: connections, first calls
            await client.post("/v1/search", json={"query": query, "k": 5})
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {**summarize(latencies, elapsed), "errors": errors, "concurrency": concurrency}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="Requests per level.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-seconds", type=float, default=60.0, help="Time cap per level.")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    workdir = Path(tempfile.mkdtemp(prefix="ragline-serve-bench-"))
    env = {**os.environ, "RAG_INDEX_DIR": str(workdir / "index"), "RAGLINE_API_KEYS": KEY}
    os.environ["RAG_INDEX_DIR"] = env["RAG_INDEX_DIR"]
    config = ROOT / "examples" / "ingest.yaml"
    rag = [sys.executable, "-m", "rag.cli"]
    subprocess.run(
        [*rag, "ingest", str(ROOT / "examples" / "corpus"), "--config", str(config), "--quiet"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    baseline = in_process(config, args.requests)

    port = free_port()
    server = subprocess.Popen(
        [*rag, "serve", "--config", str(config), "--port", str(port), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print("rag serve did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)
        levels = [
            asyncio.run(drive(base, level, args.requests, args.max_seconds))
            for level in args.concurrency
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; server and client share them")
    print(
        f"in-process retriever.retrieve: {baseline['rps']:.1f} req/s, "
        f"p50 {baseline['p50_ms']:.1f} ms, p95 {baseline['p95_ms']:.1f} ms"
    )
    print(
        f"{'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>6} {'cost ratio':>10}"
    )
    for level in levels:
        # time per request over the in-process time per request (1.0 = no HTTP overhead)
        level["cost_ratio"] = baseline["rps"] / level["rps"]
        print(
            f"{level['concurrency']:>7} {level['rps']:>8.1f} {level['p50_ms']:>8.1f} "
            f"{level['p95_ms']:>8.1f} {level['errors']:>6} {level['cost_ratio']:>10.2f}"
        )
    latency_ratio = levels[0]["mean_ms"] / baseline["mean_ms"] if levels else float("nan")
    print(f"HTTP latency over in-process latency at 1 client: {latency_ratio:.2f}x")
    print(json.dumps({"in_process": baseline, "http": levels, "latency_ratio": latency_ratio}))
    return 1 if any(level["errors"] for level in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
