"""store.faiss at scale: flat, HNSW, int8 and binary+rescore, each against raw faiss.

    .venv/bin/python benchmarks/scale.py [--size 1000000] [--hnsw-size 200000] [--queries 200]

Synthetic 384-d chunks (unit vectors around 2,000 cluster centres and a shared direction, as
sentence embeddings are; queries drawn the same way), each with metadata (``source``,
``bucket`` = i % 10, ``year``) and a ~100-byte text. For each index, in this one run:

- write throughput of ``FaissStore.write`` (batches of 10,000, then ``flush``) and the store's
  size on disk;
- in a fresh process: seconds to open the store and its RSS after opening, next to a fresh
  process holding raw faiss's index (read with ``faiss.read_index``; binary: its sign bits
  too, ``faiss.read_index_binary``) plus the texts. The store is opened twice: first right
  after writing (from its ``open-cache.npz``), then with that cache removed (from SQLite);
- p50 / p95 search latency of ``store.search(k=10)`` unfiltered and with a 10 % filter
  (``{"bucket": 3}``), next to raw faiss doing the same search on the same index (the filter as
  an ``IDSelectorBitmap`` built once, as a raw faiss user would; binary: Hamming search for as
  many candidates as the store's default ``rescore_factor`` gives (500 for k=10), then the same
  exact rescoring; both sides search one query on one OpenMP thread, as ``store.faiss`` does,
  see ``rag.connectors.stores._faiss_index.serial``);
- recall@10 against exact search over the float vectors, unfiltered and filtered.

HNSW is measured at ``--hnsw-size`` (its build is the slow part on 2 cores). Then BM25: the
seconds ``retriever.bm25`` takes to catch up after a 1,000-chunk ingest into the flat store,
against its first build. Run it on a quiet machine for latency figures; on a shared one the
ratios (ragline / raw, measured interleaved) are the figures to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DIMENSION = 384
CENTRES = 2_000
BATCH = 10_000
INDEXES = (
    ("flat", {}),
    ("hnsw", {}),
    ("int8", {}),
    ("binary", {}),  # int8 rescoring
)
WORDS = (
    "vector",
    "index",
    "chunk",
    "search",
    "filter",
    "graph",
    "query",
    "token",
    "model",
    "store",
    "recall",
    "latency",
    "memory",
    "embedding",
    "document",
    "section",
    "title",
    "hybrid",
    "fusion",
    "rank",
    "score",
    "cluster",
    "bucket",
)


def vectors(count: int, seed: int) -> np.ndarray:
    """Unit vectors shaped like sentence embeddings: shared direction + cluster + noise."""
    shape = np.random.default_rng(2026)
    common = shape.standard_normal(DIMENSION).astype(np.float32)
    centres = shape.standard_normal((CENTRES, DIMENSION)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((count, DIMENSION), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        part = 0.5 * common + centres[rng.integers(0, CENTRES, n)]
        part += 0.7 * rng.standard_normal((n, DIMENSION)).astype(np.float32)
        out[start : start + n] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def text(i: int) -> str:
    words = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(12))
    return f"chunk {i:07d}: {words}"[:100]


def chunks(start: int, stop: int, data: np.ndarray) -> list[Any]:
    from rag.core.documents import Chunk

    return [
        Chunk(
            id=f"c{i:07d}",
            text=text(i),
            metadata={"source": f"doc{i // 20}.md", "bucket": i % 10, "year": 2000 + i % 25},
            embedding=data[i],
        )
        for i in range(start, stop)
    ]


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def exact_top10(data: np.ndarray, queries: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    scores = queries @ data.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    return np.argsort(-scores, axis=1)[:, :10]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))


# -- raw faiss, the same searches ---------------------------------------------------------------
class RawFaiss:
    """The same index built with faiss directly (positions = row numbers)."""

    def __init__(self, kind: str, data: np.ndarray, *, hnsw_m: int = 32) -> None:
        import faiss

        self.kind = kind
        d = data.shape[1]
        if kind == "flat":
            self.index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = 200
            self.index.hnsw.efSearch = 128
        elif kind == "int8":
            self.index = faiss.IndexScalarQuantizer(
                d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
        else:  # binary: sign bits of centred vectors + int8 codes for rescoring
            self.center = data[:65_536].mean(axis=0)
            self.bits = faiss.IndexBinaryFlat(d)
            self.index = faiss.IndexScalarQuantizer(
                d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
        if not self.index.is_trained:
            sample = data[:: max(1, len(data) // 65_536)][:65_536]
            self.index.train(sample)
        self.index.add(data)
        if kind == "binary":
            self.bits.add(np.packbits(data > self.center, axis=1))
        from rag.connectors.stores._faiss_index import DEFAULT_RESCORE_FACTOR

        self.depth = DEFAULT_RESCORE_FACTOR * 10  # the store's candidates for k=10

    def search(self, query: np.ndarray, selector: Any = None) -> list[int]:
        import faiss

        from rag.connectors.stores._faiss_index import serial

        q = query.reshape(1, -1)
        if self.kind == "binary":
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
            with serial(1):  # as the store does (see _faiss_index.serial)
                bits = np.packbits(q > self.center, axis=1)
                _, cand = self.bits.search(bits, self.depth, params=params)
            found = cand[0][cand[0] >= 0]
            exact = self.index.reconstruct_batch(found) @ query
            return found[np.argsort(-exact)[:10]].tolist()
        params = None
        if selector is not None:
            params = (
                faiss.SearchParametersHNSW(sel=selector, efSearch=128)
                if self.kind == "hnsw"
                else faiss.SearchParameters(sel=selector)
            )
        with serial(1):
            _, labels = self.index.search(q, 10, params=params)
        return labels[0][labels[0] >= 0].tolist()


# -- the fresh processes that open a store or a raw index ---------------------------------------
def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child_open_store(path: str, kind: str) -> None:
    from rag.connectors.stores.faiss import FaissStore

    before = rss_mb()
    started = time.perf_counter()
    store = FaissStore(path=path, index=kind)
    store.warm_up()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb(), "rss_before_mb": before}))


def child_open_raw(index_file: str, texts_file: str, bits_file: str = "") -> None:
    import faiss

    import rag.connectors.stores.faiss  # noqa: F401  (the same imports as the store's process)

    before = rss_mb()
    started = time.perf_counter()
    index = faiss.read_index(index_file)
    bits = faiss.read_index_binary(bits_file) if bits_file else None  # noqa: F841 (held)
    with open(texts_file, encoding="utf-8") as lines:
        texts = [line.rstrip("\n") for line in lines]
    seconds = time.perf_counter() - started
    assert index.ntotal and texts
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb(), "rss_before_mb": before}))


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- one index ----------------------------------------------------------------------------------
def measure_index(kind: str, size: int, work: Path, data: np.ndarray, args) -> dict[str, Any]:
    import faiss

    from rag.connectors.stores._faiss_files import OPEN_CACHE
    from rag.connectors.stores.faiss import FaissStore

    path = work / kind
    store = FaissStore(path=str(path), index=kind)
    started = time.perf_counter()
    for start in range(0, size, BATCH):
        store.write(chunks(start, min(start + BATCH, size), data))
    store.flush()
    write_seconds = time.perf_counter() - started
    store.close()
    print(f"  {kind}: wrote {size} chunks in {write_seconds:.0f}s", file=sys.stderr)

    raw = RawFaiss(kind, data[:size])
    texts_file = work / "texts.txt"
    if not texts_file.exists() or sum(1 for _ in texts_file.open()) != size:
        texts_file.write_text("".join(text(i) + "\n" for i in range(size)), encoding="utf-8")
    raw_file = work / f"raw-{kind}.faiss"
    faiss.write_index(raw.index, str(raw_file))
    raw_args = [str(raw_file), str(texts_file)]
    if kind == "binary":
        raw_args.append(str(work / "raw-bits.faiss"))
        faiss.write_index_binary(raw.bits, raw_args[-1])
    opened = run_child("--child-store", str(path), kind)
    disk = disk_mb(path)  # with the open cache that the write's close saved
    cache = path / OPEN_CACHE
    cache_mb = cache.stat().st_size / 1e6 if cache.exists() else 0.0
    cache.unlink(missing_ok=True)
    uncached = run_child("--child-store", str(path), kind)
    opened_raw = run_child("--child-raw", *raw_args)
    for name in raw_args[:1] + raw_args[2:]:
        Path(name).unlink()

    store = FaissStore(path=str(path), index=kind)
    store.warm_up()
    queries = vectors(args.queries, seed=7)
    mask = np.arange(size) % 10 == 3
    selector = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
    row = {"index": kind, "size": size, "write_per_s": size / write_seconds}
    row["disk_mb"], row["cache_mb"] = disk, cache_mb
    row["open_s"], row["rss_mb"] = opened["seconds"], opened["rss_mb"]
    row["open_sqlite_s"], row["rss_sqlite_mb"] = uncached["seconds"], uncached["rss_mb"]
    row["raw_open_s"] = opened_raw["seconds"]
    row["raw_rss_mb"] = opened_raw["rss_mb"]

    def store_search(filters):
        return lambda q: [int(h.id[1:]) for h in store.search(q, k=10, filters=filters)]

    for label, filters, sel, keep in (
        ("all", None, None, None),
        ("10%", {"bucket": 3}, selector, mask),
    ):
        truth = exact_top10(data[:size], queries, keep)
        # query by query, ragline and raw faiss in turns (alternating which goes first), in two
        # rounds: a busy moment of the machine hits both sides alike
        ours_search, raw_search = store_search(filters), (lambda q, s=sel: raw.search(q, s))
        ours, theirs, found, raw_found = [], [], [], []
        for round_ in range(2):
            for number, query in enumerate(queries):
                sides = [(ours_search, ours, found), (raw_search, theirs, raw_found)]
                if number % 2:
                    sides.reverse()  # neither side always runs first
                for search, seconds, results in sides:
                    started = time.perf_counter()
                    result = search(query)
                    seconds.append(time.perf_counter() - started)
                    if round_ == 0:
                        results.append(result)
        row[f"p50_{label}"], row[f"p95_{label}"] = percentiles(ours)
        row[f"raw_p50_{label}"], row[f"raw_p95_{label}"] = percentiles(theirs)
        row[f"recall_{label}"] = recall(found, truth)
        row[f"raw_recall_{label}"] = recall(raw_found, truth)
    index = store._index
    row["bytes_per_vector"] = (
        index.bytes_per_vector() if hasattr(index, "bytes_per_vector") else 4 * DIMENSION
    )
    store.close()
    return row


def bm25_refresh(path: Path, size: int, data: np.ndarray) -> str:
    from rag.connectors.retrievers.bm25 import BM25Retriever
    from rag.connectors.stores.faiss import FaissStore

    store = FaissStore(path=str(path), index="flat")
    retriever = BM25Retriever(store=store)
    started = time.perf_counter()
    retriever.warm_up()
    first = time.perf_counter() - started
    from rag.core.documents import Chunk

    extra = vectors(1_000, seed=11)
    new = [
        Chunk(id=f"c{size + i:07d}", text=text(size + i), metadata=c.metadata, embedding=extra[i])
        for i, c in enumerate(chunks(0, 1_000, extra))
    ]
    store.write(new)
    started = time.perf_counter()
    retriever.retrieve("vector index chunk", k=10)  # the query that notices the change
    refresh = time.perf_counter() - started
    assert any(h.id == new[0].id for h in retriever.retrieve(new[0].text, k=10))
    store.close()
    return (
        f"BM25 over {size} chunks: first build {first:.1f}s; after a 1,000-chunk ingest the next "
        f"query refreshed it in {refresh:.1f}s ({refresh / first:.2f}x of the first build)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="chunks per index")
    parser.add_argument("--hnsw-size", type=int, default=200_000, help="chunks for HNSW")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--indexes", nargs="*", default=[kind for kind, _ in INDEXES])
    parser.add_argument("--work", type=Path, default=None, help="folder for the stores")
    parser.add_argument("--child-store", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-raw", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_store:
        child_open_store(*args.child_store)
        return
    if args.child_raw:
        child_open_raw(*args.child_raw)
        return
    import platform

    import faiss

    work = args.work or Path(tempfile.mkdtemp(prefix="ragline-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at start; "
        f"faiss {faiss.__version__}; {args.queries} queries, k=10"
    )
    data = vectors(args.size, seed=1)
    rows, bm25 = [], ""
    for kind in args.indexes:
        size = min(args.size, args.hnsw_size) if kind == "hnsw" else args.size
        rows.append(measure_index(kind, size, work, data, args))
        print(f"  {json.dumps(rows[-1])}", file=sys.stderr)  # a partial run still tells
        if kind == "flat":
            bm25 = bm25_refresh(work / "flat", args.size, data)
            print(f"  {bm25}", file=sys.stderr)
    print(
        f"\n{'index':<8}{'chunks':>9}{'write/s':>9}{'disk MB':>9}{'cache MB':>9}{'B/vec':>7}"
        f"{'open s':>8}{'raw s':>7}{'sqlite s':>9}{'RSS MB':>8}{'raw MB':>8}{'RSS/raw':>8}"
        f"{'sqlite MB':>10}"
    )
    for r in rows:
        print(
            f"{r['index']:<8}{r['size']:>9}{r['write_per_s']:>9.0f}{r['disk_mb']:>9.0f}"
            f"{r['cache_mb']:>9.0f}{r['bytes_per_vector']:>7.0f}{r['open_s']:>8.1f}"
            f"{r['raw_open_s']:>7.1f}{r['open_sqlite_s']:>9.1f}{r['rss_mb']:>8.0f}"
            f"{r['raw_rss_mb']:>8.0f}{r['rss_mb'] / r['raw_rss_mb']:>8.2f}"
            f"{r['rss_sqlite_mb']:>10.0f}"
        )
    print(
        f"\n{'index':<8}{'filter':<7}{'p50 ms':>8}{'raw p50':>9}{'ratio':>7}{'p95 ms':>8}"
        f"{'raw p95':>9}{'recall@10':>10}{'raw recall':>11}"
    )
    for r in rows:
        for label in ("all", "10%"):
            print(
                f"{r['index']:<8}{label:<7}{r[f'p50_{label}']:>8.2f}{r[f'raw_p50_{label}']:>9.2f}"
                f"{r[f'p50_{label}'] / r[f'raw_p50_{label}']:>7.2f}{r[f'p95_{label}']:>8.2f}"
                f"{r[f'raw_p95_{label}']:>9.2f}{r[f'recall_{label}']:>10.3f}"
                f"{r[f'raw_recall_{label}']:>11.3f}"
            )
    if bm25:
        print("\n" + bm25)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
