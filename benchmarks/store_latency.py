"""Search latency of store.faiss (flat, HNSW) vs store.milvus (milvus-lite, FLAT) on 50k chunks.

    .venv/bin/python benchmarks/store_latency.py [--chunks 50000] [--queries 200]

Random unit vectors of dimension 384 (the size of all-MiniLM-L6-v2) with metadata for a filter:
``bucket`` (0-9, so ``{"bucket": 3}`` keeps 10%) and ``lang``. Every store is written the same
chunks, flushed, warmed with a few queries, then timed one query at a time (p50/p95 in ms),
without a filter and with ``{"bucket": 3, "lang": {"$ne": "de"}}``. FAISS flat and milvus-lite must
return the same top hit for every query, which the script checks. Skips politely (exit 0) when
pymilvus / milvus-lite are not installed.

Rows for store.pgvector (HNSW, ef_search 400), store.qdrant (local mode) and store.pinecone are
added when they can run: pgvector on ``RAGLINE_PG_URL``, else on a PostgreSQL server with
pgvector that the script starts on 127.0.0.1 (as the tests do); qdrant always (embedded);
pinecone only on a live index (``PINECONE_API_KEY``, ``PINECONE_HOST``, dimension 384, a
namespace of its own, cleared after), because the tests' loopback server would time itself, not
Pinecone. Their top hit is compared with FAISS flat's as well (HNSW is approximate).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIMENSION = 384
FILTER = {"bucket": 3, "lang": {"$ne": "de"}}


def make_chunks(count: int, seed: int = 0):
    from rag.core.documents import Chunk

    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    langs = ["en", "de", "fr"]
    return [
        Chunk(
            id=f"c{i:06d}",
            text=f"chunk {i}",
            metadata={"source": f"doc{i // 10}.md", "bucket": i % 10, "lang": langs[i % 3]},
            embedding=vectors[i],
        )
        for i in range(count)
    ]


def time_searches(store, queries, filters, k) -> tuple[list[float], list[str]]:
    for query in queries[:5]:  # warm caches, compile filter paths
        store.search(query, k=k, filters=filters)
    times, tops = [], []
    for query in queries:
        started = time.perf_counter()
        hits = store.search(query, k=k, filters=filters)
        times.append((time.perf_counter() - started) * 1000)
        tops.append(hits[0].id)
    return times, tops


def extra_stores(tmp: str, closers: list) -> dict:
    """store.pgvector / store.qdrant / store.pinecone where they can run (see the docstring)."""
    import os
    import uuid

    stores: dict = {}
    try:
        from rag.connectors.stores.pgvector import PgvectorStore

        url = os.environ.get("RAGLINE_PG_URL")
        if not url:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.postgres_server import PostgresServer, find_bin_dir

            bin_dir, why = find_bin_dir()
            if bin_dir is None:
                raise RuntimeError(f"{why}; set RAGLINE_PG_URL or run scripts/install_postgres.sh")
            server = PostgresServer(bin_dir)
            url = server.start()
            closers.append(server.stop)
        table = f"bench_{uuid.uuid4().hex[:8]}"
        # ef_search 400: random 384-d vectors are hard for HNSW; with 20k of them the store's
        # default (100) found the exact top hit for 44 of 100 queries, 400 for 84 of 100
        store = PgvectorStore(url=url, table=table, index="hnsw", ef_search=400)
        closers.append(lambda: _drop_table(url, table))
        stores["pgvector HNSW"] = store
    except (ImportError, RuntimeError) as err:
        print(f"  pgvector skipped: {err}", file=sys.stderr)
    try:
        import qdrant_client  # noqa: F401

        from rag.connectors.stores.qdrant import QdrantStore

        stores["qdrant local"] = QdrantStore(path=str(Path(tmp) / "qdrant"), collection="bench")
    except ImportError as err:
        print(f"  qdrant skipped: {err}", file=sys.stderr)
    if os.environ.get("PINECONE_API_KEY") and os.environ.get("PINECONE_HOST"):
        from rag.connectors.stores.pinecone import PineconeStore

        store = PineconeStore(
            host=os.environ["PINECONE_HOST"], namespace=f"ragline-bench-{uuid.uuid4().hex[:8]}"
        )
        closers.append(store.clear)
        stores["pinecone"] = store
    else:
        print("  pinecone skipped: set PINECONE_API_KEY and PINECONE_HOST", file=sys.stderr)
    return stores


def _drop_table(url: str, table: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError:
        print("skipped: pymilvus / milvus-lite not installed (pip install 'ragline[milvus]')")
        return 0
    from rag.connectors.stores.faiss import FaissStore
    from rag.connectors.stores.milvus import MilvusStore

    chunks = make_chunks(args.chunks)
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(args.queries, DIMENSION)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "faiss flat": FaissStore(path=str(Path(tmp) / "faiss"), index="flat"),
            "faiss hnsw": FaissStore(path=str(Path(tmp) / "faiss-hnsw"), index="hnsw"),
            "milvus-lite FLAT": MilvusStore(uri=str(Path(tmp) / "milvus.db"), collection="bench"),
        }
        closers: list = []
        stores.update(extra_stores(tmp, closers))
        rows, tops = [], {}
        for name, store in stores.items():
            store.warm_up()
            started = time.perf_counter()
            for start in range(0, len(chunks), 5_000):
                store.write(chunks[start : start + 5_000])
            store.flush()
            write_s = time.perf_counter() - started
            print(f"  {name}: wrote {len(chunks)} chunks in {write_s:.1f}s", file=sys.stderr)
            for label, filters in (("no filter", None), ("filter 6.7%", FILTER)):
                times, top = time_searches(store, queries, filters, args.k)
                print(f"  {name}, {label}: p50 {np.percentile(times, 50):.1f} ms", file=sys.stderr)
                tops[(name, label)] = top
                rows.append(
                    (name, label, np.percentile(times, 50), np.percentile(times, 95), write_s)
                )
            store.close()
    print(f"{args.chunks} chunks, dimension {DIMENSION}, k={args.k}, {args.queries} queries")
    print(f"{'store':<18}{'search':<13}{'p50 ms':>9}{'p95 ms':>9}{'write s':>9}")
    for name, label, p50, p95, write_s in rows:
        print(f"{name:<18}{label:<13}{p50:>9.2f}{p95:>9.2f}{write_s:>9.1f}")
    faiss_rows = {label: (p50, p95) for n, label, p50, p95, _ in rows if n == "faiss flat"}
    for name, label, p50, p95, _ in rows:
        if name != "faiss flat":
            base = faiss_rows[label]
            print(
                f"{name} / faiss flat, {label}: p50 x{p50 / base[0]:.1f}, p95 x{p95 / base[1]:.1f}"
            )
    for label in ("no filter", "filter 6.7%"):
        same = sum(
            a == b for a, b in zip(tops[("faiss flat", label)], tops[("milvus-lite FLAT", label)])
        )
        print(f"same top hit ({label}): {same}/{len(queries)}")
    for name in [n for n in stores if n not in ("faiss flat", "milvus-lite FLAT")]:
        for label in ("no filter", "filter 6.7%"):
            same = sum(a == b for a, b in zip(tops[("faiss flat", label)], tops[(name, label)]))
            print(f"{name}: same top hit as faiss flat ({label}): {same}/{len(queries)}")
    for close in reversed(closers):
        close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
