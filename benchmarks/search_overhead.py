"""Search latency of ragline's stores against the same library called directly, in one run.

    python benchmarks/search_overhead.py [--n 50000] [--queries 200] [--stores faiss-flat,...]

For each store (FAISS flat, FAISS HNSW, milvus-lite FLAT) the same random unit vectors
(dimension 384, seeded) are written once through ragline and once straight into the library,
then the same queries run one at a time (raw and ragline back to back for each query, so both
meet the same load on a shared machine), unfiltered and with two filters:

- ``{"b10": 3}`` keeps 10 % of the rows (``b10 = i % 10``),
- ``{"b1000": 7}`` keeps 0.1 % (``b1000 = i % 1000``).

"raw" is the library with the filter already turned into its own terms, built *outside* the
timed loop: FAISS gets an ``IDSelectorBatch`` of the matching ids (HNSW with the same
``efSearch``), milvus-lite gets ``b10 == 3`` on an INT64 scalar field. ragline's time covers all
it does per query: parsing and evaluating the filter, choosing exact scoring or a selector, and
reading text and metadata of the hits.

``--raw same`` (the default) compares like for like: raw searches ragline's *own* index or
collection, so both walk the same graph over the same segments. FAISS raw returns labels and
distances only (FAISS holds no text; ragline also looks up id and text, held in memory up to the
store's ``text_cache_mb`` and else read from SQLite, and copies the metadata); milvus-lite raw asks
for the same ``text`` and ``metadata`` output fields ragline reads, filtering on ragline's typed
``meta_b10``/``meta_b1000`` columns. ``--raw own`` searches an index/collection the library built by
itself instead (FAISS: one ``add`` of all vectors, so a different HNSW graph; milvus-lite: INT64
ids, no text or JSON, ids only in the answer): that ratio also counts what ragline's schema and
batched writes cost. p50 and p95 are in milliseconds and ``ratio`` is ragline over raw (p50).
recall@k of both sides against exact filtered search is printed too, since the two may choose
different strategies.

Targets (issue 11): unfiltered <= 1.15x raw; filtered FAISS <= 2x raw with the same selector;
filtered milvus-lite <= 1.5x raw. Skips milvus-lite politely when it is not installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DIMENSION = 384
FILTERS: dict[str, dict[str, Any] | None] = {
    "no filter": None,
    "10 %": {"b10": 3},
    "0.1 %": {"b1000": 7},
}
STORES = ("faiss-flat", "faiss-hnsw", "milvus-lite")


def make_data(n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    asked = rng.normal(size=(queries, DIMENSION)).astype(np.float32)
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    return vectors, asked


def matching(n: int, filters: dict[str, Any] | None) -> np.ndarray:
    rows = np.arange(n)
    if filters is None:
        return rows
    ((field, value),) = filters.items()
    modulo = int(field[1:])
    return rows[rows % modulo == value]


def timed_pair(
    raw: Callable[[np.ndarray], list[int]],
    ragline: Callable[[np.ndarray], list[int]],
    queries: np.ndarray,
) -> tuple[tuple[list, list], tuple[list, list]]:
    """Per query, raw and ragline back to back (alternating which goes first), so both meet
    the same load on a shared machine; returns ``(times_ms, results)`` for each side."""
    sides = (raw, ragline)
    for query in queries[:5]:  # warm caches
        for search in sides:
            search(query)
    times: tuple[list, list] = ([], [])
    results: tuple[list, list] = ([], [])
    for i, query in enumerate(queries):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            started = time.perf_counter()
            results[side].append(sides[side](query))
            times[side].append((time.perf_counter() - started) * 1000)
    return (times[0], results[0]), (times[1], results[1])


def recall(results: list[list[int]], truth: list[list[int]]) -> float:
    found = sum(len(set(r) & set(t)) for r, t in zip(results, truth))
    return found / max(sum(len(t) for t in truth), 1)


# -- FAISS ------------------------------------------------------------------------------------
def faiss_pair(
    kind: str, vectors: np.ndarray, tmp: Path, k: int, same: bool = True
) -> dict[str, Any]:
    import faiss

    from rag.connectors.stores.faiss import FaissStore
    from rag.core.documents import Chunk

    n = len(vectors)
    if kind == "faiss-hnsw":
        raw = faiss.IndexHNSWFlat(DIMENSION, 32, faiss.METRIC_INNER_PRODUCT)
        raw.hnsw.efConstruction = 200
    else:
        raw = faiss.IndexFlatIP(DIMENSION)
    started = time.perf_counter()
    raw.add(vectors)
    raw_write = time.perf_counter() - started

    store = FaissStore(path=str(tmp / kind), index="hnsw" if kind == "faiss-hnsw" else "flat")
    store.warm_up()
    started = time.perf_counter()
    for start in range(0, n, 5_000):
        store.write(
            [
                Chunk(
                    id=f"c{i:07d}",
                    text=f"chunk {i}",
                    metadata={"source": f"doc{i // 10}.md", "b10": i % 10, "b1000": i % 1000},
                    embedding=vectors[i],
                )
                for i in range(start, min(start + 5_000, n))
            ]
        )
    store.flush()
    ragline_write = time.perf_counter() - started
    ef = store.ef_search

    def raw_search(filters: dict[str, Any] | None) -> Callable[[np.ndarray], list[int]]:
        params = None
        if filters is not None:
            selector = faiss.IDSelectorBatch(matching(n, filters).astype(np.int64))
            params = (
                faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
                if kind == "faiss-hnsw"
                else faiss.SearchParameters(sel=selector)
            )
        elif kind == "faiss-hnsw":
            params = faiss.SearchParametersHNSW(efSearch=ef)

        # ragline maps FAISS positions to SQLite row ids; writes here go in order, so the
        # position i is row i + 1 and the chunk c{i}.
        index = store._index if same else raw

        def search(query: np.ndarray) -> list[int]:
            _, labels = index.search(query.reshape(1, -1), k, params=params)
            return [int(i) for i in labels[0] if i >= 0]

        return search

    def ragline_search(filters: dict[str, Any] | None) -> Callable[[np.ndarray], list[int]]:
        def search(query: np.ndarray) -> list[int]:
            return [int(h.id[1:]) for h in store.search(query, k=k, filters=filters)]

        return search

    return {
        "raw": raw_search,
        "ragline": ragline_search,
        "writes": (raw_write, ragline_write),
        "close": store.close,
    }


# -- milvus-lite ------------------------------------------------------------------------------
def milvus_pair(vectors: np.ndarray, tmp: Path, k: int, same: bool = True) -> dict[str, Any]:
    from pymilvus import DataType, MilvusClient

    from rag.connectors.stores.milvus import MilvusStore
    from rag.core.documents import Chunk

    n = len(vectors)
    client = MilvusClient(uri=str(tmp / "raw.db"))
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIMENSION)
    schema.add_field("b10", DataType.INT64)
    schema.add_field("b1000", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
    client.create_collection("raw", schema=schema, index_params=index, consistency_level="Strong")
    started = time.perf_counter()
    for start in range(0, n, 1_000):
        client.insert(
            "raw",
            [
                {"id": i, "vector": vectors[i].tolist(), "b10": i % 10, "b1000": i % 1000}
                for i in range(start, min(start + 1_000, n))
            ],
        )
    client.flush("raw")
    raw_write = time.perf_counter() - started

    store = MilvusStore(uri=str(tmp / "ragline.db"), collection="ragline")
    store.warm_up()
    started = time.perf_counter()
    for start in range(0, n, 5_000):
        store.write(
            [
                Chunk(
                    id=f"c{i:07d}",
                    text=f"chunk {i}",
                    metadata={"source": f"doc{i // 10}.md", "b10": i % 10, "b1000": i % 1000},
                    embedding=vectors[i],
                )
                for i in range(start, min(start + 5_000, n))
            ]
        )
    store.flush()
    ragline_write = time.perf_counter() - started

    def raw_search(filters: dict[str, Any] | None) -> Callable[[np.ndarray], list[int]]:
        prefix = "meta_" if same else ""
        expr = (
            ""
            if filters is None
            else " and ".join(f"{prefix}{f} == {v}" for f, v in filters.items())
        )
        target = store.client if same else client
        name, fields = ("ragline", ["text", "metadata"]) if same else ("raw", [])

        def search(query: np.ndarray) -> list[int]:
            result = target.search(
                name,
                data=[query.tolist()],
                limit=k,
                filter=expr,
                output_fields=fields,
                search_params={"metric_type": "IP", "params": {}},
            )
            return [int(str(hit["id"]).lstrip("c")) for hit in result[0]]

        return search

    def ragline_search(filters: dict[str, Any] | None) -> Callable[[np.ndarray], list[int]]:
        def search(query: np.ndarray) -> list[int]:
            return [int(h.id[1:]) for h in store.search(query, k=k, filters=filters)]

        return search

    def close() -> None:
        store.close()
        client.close()

    return {
        "raw": raw_search,
        "ragline": ragline_search,
        "writes": (raw_write, ragline_write),
        "close": close,
    }


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="vectors in each store")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--stores", default=",".join(STORES), help=f"subset of {STORES}")
    parser.add_argument(
        "--raw",
        choices=("same", "own"),
        default="same",
        help="raw searches ragline's own index/collection (same) or one it built itself (own)",
    )
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - set(STORES)
    if unknown:
        parser.error(f"unknown store(s) {sorted(unknown)}; choose from {', '.join(STORES)}")
    if "milvus-lite" in stores:
        try:
            import milvus_lite  # noqa: F401
            import pymilvus  # noqa: F401
        except ImportError:
            print("milvus-lite skipped: pip install 'ragline[milvus]'", file=sys.stderr)
            stores.remove("milvus-lite")

    vectors, queries = make_data(args.n, args.queries)
    truth: dict[str, list[list[int]]] = {}
    for label, filters in FILTERS.items():
        rows = matching(args.n, filters)
        scores = queries @ vectors[rows].T
        top = np.argsort(-scores, axis=1, kind="stable")[:, : args.k]
        truth[label] = [[int(rows[j]) for j in line] for line in top]

    print(f"machine: {machine()}")
    print(
        f"{args.n} random unit vectors, dimension {DIMENSION}, k={args.k}, {args.queries} queries,"
        f" raw on {'the store' if args.raw == 'same' else 'its own'} index (--raw {args.raw})"
    )
    header = (
        f"{'store':<13}{'filter':<11}{'raw p50':>9}{'raw p95':>9}{'rag p50':>9}{'rag p95':>9}"
        f"{'ratio':>8}{'recall raw':>12}{'recall rag':>12}"
    )
    lines = [header]
    with tempfile.TemporaryDirectory() as tmp:
        for name in stores:
            same = args.raw == "same"
            pair = (
                milvus_pair(vectors, Path(tmp), args.k, same)
                if name == "milvus-lite"
                else faiss_pair(name, vectors, Path(tmp), args.k, same)
            )
            raw_write, ragline_write = pair["writes"]
            print(
                f"  {name}: wrote {args.n} vectors, raw {raw_write:.1f} s, "
                f"ragline {ragline_write:.1f} s",
                file=sys.stderr,
            )
            for label, filters in FILTERS.items():
                (raw_times, raw_results), (rag_times, rag_results) = timed_pair(
                    pair["raw"](filters), pair["ragline"](filters), queries
                )
                raw_p50, rag_p50 = np.percentile(raw_times, 50), np.percentile(rag_times, 50)
                line = (
                    f"{name:<13}{label:<11}{raw_p50:>9.2f}{np.percentile(raw_times, 95):>9.2f}"
                    f"{rag_p50:>9.2f}{np.percentile(rag_times, 95):>9.2f}"
                    f"{rag_p50 / raw_p50:>7.2f}x"
                    f"{recall(raw_results, truth[label]):>12.3f}"
                    f"{recall(rag_results, truth[label]):>12.3f}"
                )
                print(line, file=sys.stderr)
                lines.append(line)
            pair["close"]()
    print("\n".join(lines))
    print("times in ms; ratio = ragline p50 / raw p50")
    print("targets: unfiltered <= 1.15x; filtered FAISS <= 2x; filtered milvus-lite <= 1.5x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
