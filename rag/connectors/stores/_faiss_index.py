"""Compressed FAISS indexes of ``store.faiss``: ``index: int8`` and ``index: binary``.

- ``int8``: faiss's ``IndexScalarQuantizer`` with ``QT_8bit`` codes, one byte per dimension
  (a quarter of ``flat``), each dimension's range trained on the stored vectors. Search scores
  the query against the decoded codes; no rescoring.
- ``binary``: one sign bit per dimension (a 32nd of ``flat``) in an ``IndexBinaryFlat``,
  searched by Hamming distance for ``rescore_factor * max(k, 10)`` candidates (``rescore_factor``
  is 50 by default), which are then rescored exactly with their int8 codes (``rescore: int8``,
  1 + 1/8 bytes per dimension in all) or with their float vectors (``rescore: float``, for the
  last bit of quality at 4 + 1/8 bytes). The sign is taken after subtracting the mean of the
  training vectors: sentence embeddings share a common direction, and without centering many
  bits say the same thing.

Both train on the stored vectors (a sample of up to :data:`TRAIN_SAMPLE`): on the first write,
again each time the store has doubled since (until the sample is full), and on every rebuild
from SQLite; SQLite keeps the float vectors, so the index is always rebuilt from the truth.

The classes offer the part of the faiss ``Index`` interface that ``store.faiss`` uses (``add``,
``search`` with an ``IDSelector`` in ``SearchParameters``, ``remove_ids``, ``reconstruct_batch``,
``ntotal``, ``d``), and save to / load from one file with :func:`save_index` / :func:`load_index`.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.core.errors import ConfigError

COMPRESSED_INDEX_TYPES = ("int8", "binary")
RESCORE_TYPES = ("int8", "float")
TRAIN_SAMPLE = 65_536  # vectors a compressed index trains on, at most
# candidates per hit: recall@10 0.972 at 1M synthetic chunks (benchmarks/scale.py; 20: 0.835);
# on 3,196 MiniLM vectors 20 already gave 0.985 (10: 0.966)
DEFAULT_RESCORE_FACTOR = 50
SERIAL_BELOW = 16  # queries: fewer are searched on one OpenMP thread
_threads_lock = threading.Lock()
_serial_depth = 0
_saved_threads = 0
_MAGIC = b"RAGLINE-FAISS-COMPRESSED\n"


def _faiss() -> Any:
    return require("faiss", package="faiss-cpu", extra="embed", purpose="store.faiss")


@contextmanager
def serial(queries: int) -> Iterator[None]:
    """Run faiss on one OpenMP thread while searching a few queries.

    The scalar-quantizer and binary scans open an OpenMP parallel region per call; for one
    query on a busy machine the threads' spin-waiting costs far more than the scan (60 ms
    against 0.2 ms for 3,000 int8 vectors on a loaded 2-core box).
    """
    global _serial_depth, _saved_threads
    if queries >= SERIAL_BELOW:
        yield
        return
    faiss = _faiss()
    with _threads_lock:
        if _serial_depth == 0:
            _saved_threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
        _serial_depth += 1
    try:
        yield
    finally:
        with _threads_lock:
            _serial_depth -= 1
            if _serial_depth == 0:
                faiss.omp_set_num_threads(_saved_threads)


def check_options(index: str, dimension: int | None, rescore: str, rescore_factor: int) -> None:
    """Refuse options a compressed index cannot use, naming the field and the fix."""
    if rescore not in RESCORE_TYPES:
        raise ConfigError(
            f"rescore must be one of {', '.join(RESCORE_TYPES)}, got {rescore!r}", field="rescore"
        )
    if (
        isinstance(rescore_factor, bool)
        or not isinstance(rescore_factor, int)
        or rescore_factor < 1
    ):
        raise ConfigError(
            f"rescore_factor must be a whole number >= 1 (candidates per hit), got "
            f"{rescore_factor!r}",
            field="rescore_factor",
        )
    if index == "binary" and dimension is not None and dimension % 8:
        raise ConfigError(
            f"index: binary needs a dimension divisible by 8 (one byte per 8 sign bits), got "
            f"{dimension}; use index: int8 or flat",
            field="index",
        )


class _Compressed:
    """What both compressed indexes share: training state and the faiss-like surface."""

    kind = ""

    def __init__(self, d: int, metric: str) -> None:
        self.d = d
        self.metric = metric
        self.trained_on = 0  # how many vectors the codes were trained on

    @property
    def _metric_type(self) -> int:
        faiss = _faiss()
        return faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2

    def _int8(self) -> Any:
        faiss = _faiss()
        return faiss.IndexScalarQuantizer(self.d, faiss.ScalarQuantizer.QT_8bit, self._metric_type)

    @property
    def is_trained(self) -> bool:
        return self.trained_on > 0

    def wants_training(self) -> bool:
        """Whether the store has doubled since training (and the sample is not yet full)."""
        return self.trained_on < TRAIN_SAMPLE and self.ntotal >= 2 * max(self.trained_on, 1)

    def train(self, vectors: np.ndarray) -> None:
        raise NotImplementedError

    def add(self, vectors: np.ndarray) -> None:
        """Add rows (training on them first when nothing was trained yet)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not len(vectors):
            return
        if not self.is_trained:
            self.train(vectors)
        self._add(vectors)

    def _add(self, vectors: np.ndarray) -> None:
        raise NotImplementedError

    @property
    def ntotal(self) -> int:
        raise NotImplementedError

    def bytes_per_vector(self) -> float:
        raise NotImplementedError


class Int8Index(_Compressed):
    """int8 scalar quantization (faiss ``QT_8bit``): 1 byte per dimension.

    Example:
        >>> import numpy as np
        >>> index = Int8Index(8, "ip")
        >>> index.add(np.eye(8, dtype="float32"))
        >>> index.search(np.eye(8, dtype="float32")[:1], 1)[1].tolist()
        [[0]]
    """

    kind = "int8"

    def __init__(self, d: int, metric: str) -> None:
        super().__init__(d, metric)
        self.codes = self._int8()

    def train(self, vectors: np.ndarray) -> None:
        self.codes = self._int8()
        self.codes.train(np.ascontiguousarray(vectors, dtype=np.float32))
        self.trained_on = len(vectors)

    def _add(self, vectors: np.ndarray) -> None:
        self.codes.add(vectors)

    @property
    def ntotal(self) -> int:
        return int(self.codes.ntotal)

    def search(
        self, query: np.ndarray, k: int, params: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        query = np.ascontiguousarray(query, dtype=np.float32)
        with serial(len(query)):
            return self.codes.search(query, k, params=params)

    def remove_ids(self, selector: Any) -> int:
        return int(self.codes.remove_ids(selector))

    def reconstruct_batch(self, positions: np.ndarray) -> np.ndarray:
        return self.codes.reconstruct_batch(np.asarray(positions, dtype=np.int64))

    def bytes_per_vector(self) -> float:
        return float(self.codes.code_size)

    def _parts(self) -> dict[str, bytes]:
        return {"codes": _faiss().serialize_index(self.codes).tobytes()}

    def _restore(self, parts: dict[str, bytes]) -> None:
        self.codes = _faiss().deserialize_index(np.frombuffer(parts["codes"], dtype=np.uint8))


class BinaryIndex(_Compressed):
    """Sign bits searched by Hamming distance, candidates rescored with int8 or float vectors.

    Example:
        >>> import numpy as np
        >>> vectors = np.random.default_rng(0).standard_normal((100, 16)).astype("float32")
        >>> index = BinaryIndex(16, "ip", rescore="float")
        >>> index.add(vectors)
        >>> int(index.search(vectors[:1], 1)[1][0, 0])
        0
    """

    kind = "binary"

    def __init__(
        self,
        d: int,
        metric: str,
        *,
        rescore: str = "int8",
        rescore_factor: int = DEFAULT_RESCORE_FACTOR,
    ) -> None:
        super().__init__(d, metric)
        check_options("binary", d, rescore, rescore_factor)
        self.rescore = rescore
        self.rescore_factor = rescore_factor
        self.center = np.zeros(d, dtype=np.float32)
        self.bits = _faiss().IndexBinaryFlat(d)
        self.vectors = self._rescorer()

    def _rescorer(self) -> Any:
        if self.rescore == "float":
            faiss = _faiss()
            return faiss.IndexFlatIP(self.d) if self.metric == "ip" else faiss.IndexFlatL2(self.d)
        return self._int8()

    def train(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.center = vectors.mean(axis=0).astype(np.float32)
        self.vectors = self._rescorer()
        if not self.vectors.is_trained:
            self.vectors.train(vectors)
        self.bits = _faiss().IndexBinaryFlat(self.d)
        self.trained_on = len(vectors)

    def signs(self, vectors: np.ndarray) -> np.ndarray:
        """Packed sign bits of the centered vectors (``d / 8`` bytes a row)."""
        return np.packbits(np.asarray(vectors) > self.center, axis=1)

    def _add(self, vectors: np.ndarray) -> None:
        self.bits.add(self.signs(vectors))
        self.vectors.add(vectors)

    @property
    def ntotal(self) -> int:
        return int(self.bits.ntotal)

    def search(
        self, query: np.ndarray, k: int, params: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best by exact score among the ``rescore_factor * max(k, 10)`` nearest in
        Hamming distance (only among the selector's rows when ``params`` carries one)."""
        faiss = _faiss()
        query = np.ascontiguousarray(query, dtype=np.float32)
        n = len(query)
        distances = np.full((n, k), -np.inf if self.metric == "ip" else np.inf, dtype=np.float32)
        labels = np.full((n, k), -1, dtype=np.int64)
        if self.ntotal == 0:
            return distances, labels
        depth = min(self.rescore_factor * max(k, 10), self.ntotal)
        selector = params.sel if params is not None else None
        binary_params = faiss.SearchParameters(sel=selector) if selector is not None else None
        with serial(n):
            _, candidates = self.bits.search(self.signs(query), depth, params=binary_params)
        for row in range(n):
            found = candidates[row][candidates[row] >= 0]
            if not len(found):
                continue
            exact = self.vectors.reconstruct_batch(found)
            if self.metric == "ip":
                scores = exact @ query[row]
                order = np.lexsort((found, -scores))[:k]
            else:
                diff = exact - query[row]
                scores = np.einsum("ij,ij->i", diff, diff)
                order = np.lexsort((found, scores))[:k]
            distances[row, : len(order)] = scores[order]
            labels[row, : len(order)] = found[order]
        return distances, labels

    def remove_ids(self, selector: Any) -> int:
        removed = int(self.bits.remove_ids(selector))
        self.vectors.remove_ids(selector)
        return removed

    def reconstruct_batch(self, positions: np.ndarray) -> np.ndarray:
        return self.vectors.reconstruct_batch(np.asarray(positions, dtype=np.int64))

    def bytes_per_vector(self) -> float:
        rescore = self.d * 4 if self.rescore == "float" else self.vectors.code_size
        return self.d / 8 + rescore

    def _parts(self) -> dict[str, bytes]:
        faiss = _faiss()
        return {
            "bits": faiss.serialize_index_binary(self.bits).tobytes(),
            "vectors": faiss.serialize_index(self.vectors).tobytes(),
            "center": self.center.tobytes(),
        }

    def _restore(self, parts: dict[str, bytes]) -> None:
        faiss = _faiss()
        self.bits = faiss.deserialize_index_binary(np.frombuffer(parts["bits"], dtype=np.uint8))
        self.vectors = faiss.deserialize_index(np.frombuffer(parts["vectors"], dtype=np.uint8))
        self.center = np.frombuffer(parts["center"], dtype=np.float32).copy()


CompressedIndex = Int8Index | BinaryIndex


def new_index(
    kind: str,
    d: int,
    metric: str,
    *,
    rescore: str = "int8",
    rescore_factor: int = DEFAULT_RESCORE_FACTOR,
) -> CompressedIndex:
    """An empty compressed index of ``kind`` (``int8`` or ``binary``)."""
    if kind == "int8":
        return Int8Index(d, metric)
    if kind == "binary":
        return BinaryIndex(d, metric, rescore=rescore, rescore_factor=rescore_factor)
    raise ConfigError(
        f"unknown compressed index {kind!r}; known: {', '.join(COMPRESSED_INDEX_TYPES)}",
        field="index",
    )


def training_sample(db: sqlite3.Connection, limit: int = TRAIN_SAMPLE) -> np.ndarray:
    """Up to ``limit`` stored vectors, spread evenly over the rows (every n-th row id)."""
    (count,) = db.execute("SELECT count(*) FROM chunks").fetchone()
    step = max(1, -(-int(count) // limit))
    rows = db.execute(
        "SELECT vector FROM chunks WHERE rowid % ? = 0 ORDER BY rowid LIMIT ?", (step, limit)
    ).fetchall()
    if len(rows) < min(int(count), limit) // 2:  # row ids with gaps: take the first rows
        rows = db.execute("SELECT vector FROM chunks ORDER BY rowid LIMIT ?", (limit,)).fetchall()
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([np.frombuffer(blob, dtype=np.float32) for (blob,) in rows])


def save_index(index: CompressedIndex, path: str | Path) -> None:
    """Write a compressed index to one file (a header line, then its faiss parts)."""
    parts = index._parts()
    header = {
        "kind": index.kind,
        "d": index.d,
        "metric": index.metric,
        "trained_on": index.trained_on,
        "parts": {name: len(blob) for name, blob in parts.items()},
    }
    if isinstance(index, BinaryIndex):
        header["rescore"] = index.rescore
        header["rescore_factor"] = index.rescore_factor
    with open(path, "wb") as out:
        out.write(_MAGIC)
        out.write(json.dumps(header).encode() + b"\n")
        for blob in parts.values():
            out.write(blob)


def is_compressed_file(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(_MAGIC)) == _MAGIC


def load_index(
    path: str | Path,
    kind: str,
    *,
    rescore: str = "int8",
    rescore_factor: int = DEFAULT_RESCORE_FACTOR,
) -> CompressedIndex:
    """Read what :func:`save_index` wrote.

    Raises:
        ValueError: the file is not a compressed index of ``kind`` with these options (the
            store then rebuilds it from SQLite).
    """
    with open(path, "rb") as handle:
        if handle.read(len(_MAGIC)) != _MAGIC:
            raise ValueError(f"{path} is not a ragline compressed index")
        stream = io.BufferedReader(handle)  # type: ignore[arg-type]
        header = json.loads(stream.readline())
        if header.get("kind") != kind:
            raise ValueError(f"{path} holds a {header.get('kind')} index, not {kind}")
        if kind == "binary" and header.get("rescore") != rescore:
            raise ValueError(f"{path} rescores with {header.get('rescore')}, not {rescore}")
        parts = {name: stream.read(size) for name, size in header["parts"].items()}
    if any(len(parts[name]) != size for name, size in header["parts"].items()):
        raise ValueError(f"{path} is truncated")
    index = new_index(
        kind, int(header["d"]), header["metric"], rescore=rescore, rescore_factor=rescore_factor
    )
    index._restore(parts)
    index.trained_on = int(header["trained_on"])
    return index
