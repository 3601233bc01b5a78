"""``ranker.cross_encoder``: rerank hits with a sentence-transformers CrossEncoder.

A cross-encoder reads the query and each chunk together and scores the pair, which ranks far
better than comparing two separately made embeddings, at the price of one forward pass per hit:
retrieve many (50-100) cheaply, rerank, keep a few.

No cross-encoder ships as a Python package, so ``model`` is a local directory (one saved with
``CrossEncoder.save(path)`` or copied from the Hugging Face cache); ragline never downloads a
model at run time.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from rag.connectors._deps import require
from rag.core.component import Component
from rag.core.documents import Hit
from rag.core.errors import ConfigError, ModelNotFoundError
from rag.core.limits import resolve_k


def resolve_cross_encoder_path(model: str) -> str:
    """The local directory of ``model`` (a path, or a name already in the Hugging Face cache).

    Raises:
        ModelNotFoundError: saying that no cross-encoder ships as a package and what to pass.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    cache = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    cached = cache / ("models--" + model.replace("/", "--")) / "snapshots"
    snapshots = sorted(cached.glob("*")) if cached.is_dir() else []
    if snapshots:
        return str(snapshots[-1])
    raise ModelNotFoundError(
        f"cross-encoder model '{model}' not found: it is not a local directory and not in the "
        f"Hugging Face cache at {cache}. No cross-encoder ships as a Python package and ragline "
        "never downloads models at run time: save one to a directory (for example "
        "CrossEncoder('cross-encoder/ms-marco-MiniLM-L6-v2').save('models/reranker') on a "
        "machine with network access) and pass that path as model."
    )


class CrossEncoderRanker(Component):
    """Rerank retrieved hits by a cross-encoder's relevance score (best first).

    Args:
        model: Local directory of a sentence-transformers CrossEncoder.
        top_k: Hits to keep after reranking; ``None`` keeps them all.
        batch_size: Query-chunk pairs per forward pass.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ...
        max_length: Truncate each pair to this many tokens (model default when ``None``).
        score_threshold: Drop hits whose reranked score is below this value.

    Example:
        >>> # Needs a cross-encoder saved under models/reranker (none ships) and hits.
        >>> ranker = CrossEncoderRanker(model="models/reranker", top_k=3)
        >>> ranker.run(query="What is HNSW?", hits=hits)["hits"]  # doctest: +SKIP
        [Hit(chunk=Chunk(id='...', text='HNSW builds a layered graph ...'), score=8.9), ...]
    """

    outputs = {"hits": list[Hit]}

    def __init__(
        self,
        *,
        model: str,
        top_k: int | None = None,
        batch_size: int = 32,
        device: str = "auto",
        max_length: int | None = None,
        score_threshold: float | None = None,
    ) -> None:
        if top_k is not None and top_k < 1:
            raise ConfigError(
                f"top_k must be at least 1 (or null for all), got {top_k}", field="top_k"
            )
        self.model = model
        self.top_k = top_k
        self.batch_size = batch_size
        self.device = device
        self.max_length = max_length
        self.score_threshold = score_threshold
        self._model: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            path = resolve_cross_encoder_path(self.model)
            st = require(
                "sentence_transformers",
                package="sentence-transformers",
                extra="embed",
                purpose="ranker.cross_encoder",
            )
            device = self.device
            if device == "auto":
                torch = require("torch", package="torch", extra="embed", purpose="Reranking")
                device = "cuda" if torch.cuda.is_available() else "cpu"
            kwargs: dict[str, Any] = {"device": device}
            if self.max_length is not None:
                kwargs["max_length"] = self.max_length
            self._model = st.CrossEncoder(path, **kwargs)

    def score(self, query: str, texts: list[str]) -> list[float]:
        """The cross-encoder's score of each ``(query, text)`` pair."""
        if not texts:
            return []
        self.warm_up()
        scores = self._model.predict(
            [(query, text) for text in texts],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return [float(s) for s in scores.reshape(len(texts), -1)[:, -1]]

    def rank(self, query: str, hits: list[Hit], *, top_k: int | None = None) -> list[Hit]:
        """New hits carrying the cross-encoder's scores, best first (ties keep input order)."""
        scores = self.score(query, [h.chunk.text for h in hits])
        order = sorted(range(len(hits)), key=lambda i: -scores[i])
        ranked = [Hit(hits[i].chunk, scores[i]) for i in order]
        if self.score_threshold is not None:
            ranked = [h for h in ranked if h.score >= self.score_threshold]
        default = self.top_k or len(ranked)  # shown in the error only
        limit = self.top_k if top_k is None else resolve_k(top_k, default, name="top_k")
        return ranked if limit is None else ranked[:limit]

    def run(self, query: str, hits: list[Hit], top_k: int | None = None) -> dict[str, Any]:
        return {"hits": self.rank(query, hits, top_k=top_k)}
