"""Load on search over loopback: REST (``POST /v1/search``) and gRPC (``Ragline.Search``), against
the same search called in-process.

    .venv/bin/python benchmarks/serve_load.py [--requests 300] [--concurrency 1 8 32]

A real ``rag serve --grpc-port`` process (uvicorn and the gRPC server over one backend,
examples/ingest.yaml, examples/corpus ingested into a temporary FAISS index) listens on
127.0.0.1; this process drives it at each concurrency level (``--requests`` requests per level
and protocol, at most ``--max-seconds`` per level), after a warm-up: REST with
``httpx.AsyncClient`` (one connection per client), gRPC with ``grpc.aio`` (one HTTP/2 channel
that the clients share, as gRPC clients usually do). The baseline is ``retriever.retrieve`` on
the same index and model in this process, one call at a time. Reported per protocol and level:
requests/s, p50 and p95 latency and the cost ratio (time per request over the in-process time
per request), then gRPC over REST at each level. Each level runs in ``--rounds`` rounds that
alternate the baseline (at the first level), REST and gRPC, so that load from other processes
on a shared machine falls on all of them alike. The client shares the machine's cores with the
server, as a co-located client would. Nothing leaves 127.0.0.1.
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


class Tally:
    """Latencies, busy time and errors of one protocol at one level, summed over rounds."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.latencies: list[float] = []
        self.elapsed = 0.0
        self.errors = 0

    def summary(self) -> dict[str, float]:
        return {**summarize(self.latencies, self.elapsed), "errors": self.errors}


def summarize(latencies: list[float], elapsed: float) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def in_process_round(retriever: object, tally: Tally, requests: int, offset: int) -> None:
    started = time.perf_counter()
    for i in range(offset, offset + requests):
        mark = time.perf_counter()
        retriever.retrieve(QUERIES[i % len(QUERIES)], k=5)  # type: ignore[attr-defined]
        tally.latencies.append(time.perf_counter() - mark)
    tally.elapsed += time.perf_counter() - started


async def run_clients(tally: Tally, requests: int, max_seconds: float, call) -> None:
    """``tally.concurrency`` clients share ``requests`` calls of ``call(query) -> ok``."""
    counter = iter(range(requests))
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            mark = time.perf_counter()
            ok = await call(QUERIES[i % len(QUERIES)])
            tally.latencies.append(time.perf_counter() - mark)
            tally.errors += not ok

    for query in QUERIES[:3]:  # warm-up: connections, first calls
        await call(query)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tally.concurrency)))
    tally.elapsed += time.perf_counter() - started


async def rest_round(base: str, tally: Tally, requests: int, max_seconds: float) -> None:
    concurrency = tally.concurrency
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {KEY}"}, limits=limits, timeout=60
    ) as client:

        async def search(query: str) -> bool:
            response = await client.post("/v1/search", json={"query": query, "k": 5})
            return response.status_code == 200

        await run_clients(tally, requests, max_seconds, search)


async def grpc_round(target: str, tally: Tally, requests: int, max_seconds: float) -> None:
    import grpc

    from rag.serve.proto import ragline_pb2 as pb
    from rag.serve.proto import ragline_pb2_grpc as pb_grpc

    metadata = (("authorization", f"Bearer {KEY}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.RaglineStub(channel)

        async def search(query: str) -> bool:
            try:
                await stub.Search(pb.SearchRequest(query=query, k=5), metadata=metadata, timeout=60)
                return True
            except grpc.aio.AioRpcError:
                return False

        await run_clients(tally, requests, max_seconds, search)


def print_levels(title: str, levels: list[dict], baseline: dict[str, float]) -> None:
    print(title)
    print(
        f"{'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>6} {'cost ratio':>10}"
    )
    for level in levels:
        # time per request over the in-process time per request (1.0 = no protocol overhead)
        level["cost_ratio"] = baseline["rps"] / level["rps"]
        print(
            f"{level['concurrency']:>7} {level['rps']:>8.1f} {level['p50_ms']:>8.1f} "
            f"{level['p95_ms']:>8.1f} {level['errors']:>6} {level['cost_ratio']:>10.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="Requests per level.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-seconds", type=float, default=60.0, help="Time cap per level.")
    parser.add_argument(
        "--rounds", type=int, default=5, help="Alternating rounds per level (see above)."
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="Torch threads of the server and of the baseline (default: torch's choice). "
        "On a machine shared with other work, 1 avoids OpenMP threads waiting on each other.",
    )
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by the server at start-up
        import torch

        torch.set_num_threads(args.threads)
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
    from rag.core.pipeline import PipelineFile

    retriever = PipelineFile.load(config).pipeline("search").get_component("retriever")
    retriever.warm_up()
    for query in QUERIES:
        retriever.retrieve(query, k=5)

    port, grpc_port = free_port(), free_port()
    serve = [*rag, "serve", "--config", str(config), "--port", str(port), "--quiet"]
    server = subprocess.Popen(
        [*serve, "--grpc-port", str(grpc_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    target = f"127.0.0.1:{grpc_port}"
    per_round = max(1, args.requests // args.rounds)
    seconds_per_round = args.max_seconds / args.rounds
    in_process = Tally(1)
    rest_levels = [Tally(level) for level in args.concurrency]
    grpc_levels = [Tally(level) for level in args.concurrency]
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
        # Rounds alternate the in-process baseline, REST and gRPC, so that load from other
        # processes on a shared machine falls on all three alike instead of on one phase.
        for rest, grpc_tally in zip(rest_levels, grpc_levels):
            for round_index in range(args.rounds):
                if rest is rest_levels[0]:
                    in_process_round(retriever, in_process, per_round, round_index * per_round)
                asyncio.run(rest_round(base, rest, per_round, seconds_per_round))
                asyncio.run(grpc_round(target, grpc_tally, per_round, seconds_per_round))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    baseline = in_process.summary()
    levels = [{**t.summary(), "concurrency": t.concurrency} for t in rest_levels]
    grpc_results = [{**t.summary(), "concurrency": t.concurrency} for t in grpc_levels]
    threads = args.threads or "default"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; server and client share them; "
        f"torch threads: {threads}; {args.rounds} alternating rounds per level"
    )
    print(
        f"in-process retriever.retrieve: {baseline['rps']:.1f} req/s, "
        f"p50 {baseline['p50_ms']:.1f} ms, p95 {baseline['p95_ms']:.1f} ms"
    )
    print_levels("REST (POST /v1/search, httpx):", levels, baseline)
    print_levels("gRPC (Ragline.Search, grpc.aio):", grpc_results, baseline)
    print(f"{'clients':>7} {'gRPC/REST req/s':>16} {'gRPC/REST p50':>14} {'gRPC/REST p95':>14}")
    for rest_result, grpc_result in zip(levels, grpc_results):
        print(
            f"{rest_result['concurrency']:>7} {grpc_result['rps'] / rest_result['rps']:>16.2f} "
            f"{grpc_result['p50_ms'] / rest_result['p50_ms']:>14.2f} "
            f"{grpc_result['p95_ms'] / rest_result['p95_ms']:>14.2f}"
        )
    latency_ratio = levels[0]["mean_ms"] / baseline["mean_ms"] if levels else float("nan")
    grpc_ratio = grpc_results[0]["mean_ms"] / baseline["mean_ms"] if grpc_results else float("nan")
    print(f"HTTP latency over in-process latency at 1 client: {latency_ratio:.2f}x")
    print(f"gRPC latency over in-process latency at 1 client: {grpc_ratio:.2f}x")
    print(
        json.dumps(
            {
                "in_process": baseline,
                "http": levels,
                "grpc": grpc_results,
                "latency_ratio": latency_ratio,
                "grpc_latency_ratio": grpc_ratio,
            }
        )
    )
    return 1 if any(level["errors"] for level in levels + grpc_results) else 0


if __name__ == "__main__":
    sys.exit(main())
