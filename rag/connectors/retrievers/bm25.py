"""``retriever.bm25``: lexical retrieval with ``bm25s`` over the chunks of a vector store.

The retriever does not keep its own copy of the corpus to maintain: it reads chunk texts from
the store it is given (``store: "@store"`` in a pipeline file) and refreshes its index lazily
whenever the store's content changed, so upserts and deletes done by ingestion show up at the
next query. Change detection uses the store's ``fingerprint()`` when it has one (``store.faiss``
bumps a generation counter in SQLite on every write), else the count and ids.

The refresh is incremental: the analyzed tokens of every chunk are kept by chunk id, so after a
small ingest only the new or changed chunks are tokenized (the expensive step: stemming); the
bm25s score matrix is then recomputed from the kept tokens, because BM25's idf and average
length change with every document. Queries between two store changes never refresh.

With ``path`` set, the index and the tokens are saved there together with the fingerprint they
reflect: the next process loads the index as is if the store did not change, and otherwise
tokenizes only what changed since.

With ``context_template`` (contextual indexing, see :mod:`rag.connectors._context`) each chunk
is indexed as the template renders it from its metadata, e.g. with its document's title, while
hits carry the chunk's own text; use the embedder's template so both retrievers see the same.

Filters follow :mod:`rag.core.filters` (evaluated with :func:`~rag.core.filters.matches` before
ranking, so a filtered query returns ``k`` hits whenever ``k`` matching chunks contain a query
term).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._context import check_template, render
from rag.connectors._deps import require
from rag.core.component import Component
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.filters import matches, parse_filter
from rag.core.limits import resolve_k
from rag.core.protocols import Enumerable, Filters, Fingerprinted

_FORMAT = 3  # 2: chunks.jsonl also holds each chunk's tokens; 3: and its indexed text


def _bm25s() -> Any:
    return require("bm25s", package="bm25s", extra="hybrid", purpose="retriever.bm25")


@functools.cache
def _incremental_bm25() -> type:
    """``bm25s.BM25`` that builds its score matrix from kept per-chunk term counts.

    bm25s documents ``build_index_from_ids`` as the method to override to build the index another
    way. This one gets ``(term ids, term frequencies, length)`` per chunk, already counted when the
    chunk was first tokenized, and computes every score in one vectorized pass with bm25s's own
    idf and tf formulas, so a refresh after a small ingest costs array arithmetic, not a Python
    loop over every token of the corpus. The result equals ``bm25s.BM25.index`` (a test pins it).
    """
    bm25s = _bm25s()
    from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

    class IncrementalBM25(bm25s.BM25):  # type: ignore[misc, name-defined]
        def build_index_from_ids(
            self,
            unique_token_ids: list[int],
            corpus_token_ids: list[tuple[np.ndarray, np.ndarray, int]],
            show_progress: bool = False,
            leave_progress: bool = False,
        ) -> dict[str, Any]:
            n_docs, n_vocab = len(corpus_token_ids), len(unique_token_ids)
            lengths = np.array([length for _, _, length in corpus_token_ids], dtype=np.int64)
            sizes = np.array([len(ids) for ids, _, _ in corpus_token_ids], dtype=np.int64)
            vocab_idx = np.concatenate([ids for ids, _, _ in corpus_token_ids]).astype(
                self.int_dtype
            )
            tf = np.concatenate([tf for _, tf, _ in corpus_token_ids]).astype(self.dtype)
            doc_idx = np.repeat(np.arange(n_docs, dtype=self.int_dtype), sizes)
            doc_freqs = np.bincount(vocab_idx, minlength=n_vocab)
            idf_of = _select_idf_scorer(self.idf_method)
            values, inverse = np.unique(doc_freqs, return_inverse=True)
            table = np.array([idf_of(int(v), N=n_docs) if v else 0.0 for v in values])
            idf = table[inverse].astype(self.dtype)
            tfc = _select_tfc_scorer(self.method)(
                tf_array=tf,
                l_d=lengths[doc_idx],
                l_avg=lengths.mean(),
                k1=self.k1,
                b=self.b,
                delta=self.delta,
            )
            scores = (idf[vocab_idx] * tfc).astype(self.dtype)
            self.nonoccurrence_array = None
            data, indices, indptr = self._np_csc(
                data=scores, rows=doc_idx, cols=vocab_idx, shape=(n_docs, n_vocab)
            )
            return {
                "data": data.astype(self.dtype),
                "indices": indices,
                "indptr": indptr,
                "num_docs": n_docs,
            }

    return IncrementalBM25


def store_fingerprint(store: Any) -> str:
    """A token that changes when the store's content changes (see the module docstring)."""
    if isinstance(store, Fingerprinted):
        return str(store.fingerprint())
    digest = hashlib.sha256()
    if isinstance(store, Enumerable):
        for chunk_id in sorted(store.ids()):
            digest.update(chunk_id.encode() + b"\x00")
    return f"count:{store.count()}:{digest.hexdigest()[:16]}"


class BM25Retriever(Component):
    """Okapi BM25 over the texts of a vector store's chunks.

    Args:
        store: The store whose chunks are searched (any store with ``iter_chunks()``).
        path: Directory where the index is persisted; ``None`` keeps it in memory only.
        k: Hits to return by default.
        k1: BM25 term-frequency saturation (0.9 as in Anserini/Pyserini).
        b: BM25 length normalization (0.4 as in Anserini/Pyserini).
        method: bm25s scoring variant: ``lucene``, ``robertson``, ``atire``, ``bm25l``,
            ``bm25+``.
        stemmer: Snowball stemmer language (``english`` = Porter2) via PyStemmer, or ``None``.
        stopwords: ``en`` for English stopwords, a list of words, or ``None``.
        filters: Default metadata filter, merged (``$and``) with filters given at run time.
        context_template: Index each chunk as this template renders it from the chunk's
            metadata, e.g. ``"{title}\n{text}"`` (the embedder's ``context_template``);
            ``None`` indexes the chunk text alone.

    Example:
        >>> # Needs an ingested index at .rag/index.
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> retriever = BM25Retriever(store=FaissStore(path=".rag/index"), k=5)
        >>> retriever.run(query="hnsw graph")["hits"]  # doctest: +SKIP
        [Hit(chunk=Chunk(id='...', text='HNSW builds a layered graph ...', ...), score=7.1)]
    """

    outputs = {"hits": list[Hit]}

    def __init__(
        self,
        *,
        store: Component,
        path: str | None = None,
        k: int = 10,
        k1: float = 0.9,
        b: float = 0.4,
        method: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | list[str] | None = "en",
        filters: dict[str, Any] | None = None,
        context_template: str | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        check_template(context_template)
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        parse_filter(filters)
        self.store = store
        self.path = path
        self.k = k
        self.k1 = k1
        self.b = b
        self.method = method
        self.stemmer = stemmer
        self.stopwords = stopwords
        self.filters = filters
        self.context_template = context_template
        self._lock = threading.RLock()
        self._index: Any = None
        self._chunks: list[Chunk] = []
        # chunk id -> (indexed text, its tokens); the indexed text is the chunk's text in context
        self._tokens: dict[str, tuple[str, list[str]]] = {}
        self._vocab: dict[str, int] = {}  # token -> column of the score matrix
        self._counts: dict[str, tuple[str, tuple[np.ndarray, np.ndarray, int]]] = {}
        self._fingerprint: str | None = None
        self._stemmer_obj: Any = None

    # -- index ------------------------------------------------------------------------------
    def warm_up(self) -> None:
        self.store.warm_up()
        with self._lock:
            self._refresh()

    def _settings(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "k1": self.k1,
            "b": self.b,
            "method": self.method,
            "stemmer": self.stemmer,
            "stopwords": self.stopwords,
            "context_template": self.context_template,
        }

    def _stem(self) -> Any:
        if self.stemmer is None:
            return None
        if self._stemmer_obj is None:
            stemmer_module = require(
                "Stemmer", package="PyStemmer", extra="hybrid", purpose="BM25 stemming"
            )
            try:
                self._stemmer_obj = stemmer_module.Stemmer(self.stemmer)
            except KeyError:
                known = ", ".join(stemmer_module.algorithms())
                raise ConfigError(
                    f"unknown stemmer language {self.stemmer!r}. Known: {known}", field="stemmer"
                ) from None
        return self._stemmer_obj

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Lower-cased word tokens, stopwords removed, stemmed: the analyzer of index and query."""
        bm25s = _bm25s()
        return bm25s.tokenize(
            list(texts),
            stopwords=self.stopwords or [],
            stemmer=self._stem(),
            return_ids=False,
            show_progress=False,
        )

    def _refresh(self) -> None:
        fingerprint = store_fingerprint(self.store)
        if fingerprint == self._fingerprint:
            return
        if self._fingerprint is None and self._load(fingerprint):
            return
        if not isinstance(self.store, Enumerable):
            raise ConfigError(
                f"retriever.bm25 reads chunk texts from its store, but "
                f"{type(self.store).__name__} cannot list its chunks (it lacks ids() and "
                "iter_chunks(), the Enumerable ability of rag.core.protocols); use store.faiss, "
                "store.milvus or store.weaviate",
                field="store",
            )
        stored = self.store.iter_chunks()
        chunks = [Chunk(id=c.id, text=c.text, metadata=c.metadata) for c in stored]
        if self._update(chunks):
            self._fingerprint = fingerprint
            self._save()
        else:
            self._fingerprint = fingerprint

    def index_text(self, chunk: Chunk) -> str:
        """What ``chunk`` is indexed as: its text under ``context_template`` (or alone)."""
        return render(self.context_template, chunk.text, chunk.metadata)

    def _analyze(self, texts: list[str]) -> list[list[str]]:
        """Tokens of chunk texts for the index (one call per refresh, only for what changed)."""
        return self.tokenize(texts) if texts else []

    def _update(self, chunks: list[Chunk]) -> bool:
        """Bring the index to ``chunks``, tokenizing only new or changed texts.

        Returns:
            Whether the index changed (``False`` when only metadata changed, or nothing).
        """
        indexed = {c.id: self.index_text(c) for c in chunks}
        stale = [
            c.id
            for c in chunks
            if c.id not in self._tokens or self._tokens[c.id][0] != indexed[c.id]
        ]
        fresh = dict(zip(stale, self._analyze([indexed[i] for i in stale])))
        same_corpus = not fresh and [c.id for c in chunks] == [c.id for c in self._chunks]
        self._tokens = {
            c.id: (indexed[c.id], fresh[c.id] if c.id in fresh else self._tokens[c.id][1])
            for c in chunks
        }
        self._chunks = chunks  # the metadata may have changed even when no text did
        if same_corpus and (self._index is not None or not chunks):
            return False
        self._build_index([self._tokens[c.id][1] for c in chunks])
        return True

    def _postings(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray, int]:
        """Term ids, term frequencies and length of one chunk, kept until its text changes."""
        kept = self._counts.get(chunk.id)
        text, tokens = self._tokens[chunk.id]
        if kept is not None and kept[0] == text:
            return kept[1]
        ids = np.fromiter(
            (self._vocab.setdefault(t, len(self._vocab)) for t in tokens), np.int64, len(tokens)
        )
        unique, counts = np.unique(ids, return_counts=True)
        postings = (unique, counts.astype(np.float32), len(tokens))
        self._counts[chunk.id] = (text, postings)
        return postings

    def _build_index(self, corpus_tokens: list[list[str]]) -> None:
        if not corpus_tokens:
            self._index = None
            return
        if self.method in ("bm25l", "bm25+"):  # these need bm25s's non-occurrence array
            index = _bm25s().BM25(k1=self.k1, b=self.b, method=self.method)
            index.index(corpus_tokens, show_progress=False)
        else:
            postings = [self._postings(chunk) for chunk in self._chunks]
            self._counts = {c.id: self._counts[c.id] for c in self._chunks}
            index = _incremental_bm25()(k1=self.k1, b=self.b, method=self.method)
            index.index(
                (postings, dict(self._vocab)), show_progress=False, create_empty_token=False
            )
        self._index = index

    def _save(self) -> None:
        if not self.path:
            return
        directory = Path(self.path)
        directory.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            self._index.save(str(directory / "bm25s"))
        tmp = directory / "chunks.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as out:
            for chunk in self._chunks:
                indexed, tokens = self._tokens[chunk.id]
                record = {**chunk.to_dict(), "indexed": indexed, "tokens": tokens}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, directory / "chunks.jsonl")
        state = {
            "fingerprint": self._fingerprint,
            "settings": self._settings(),
            "chunks": len(self._chunks),
        }
        (directory / "state.json").write_text(json.dumps(state))

    def _load(self, fingerprint: str) -> bool:
        """Load the saved tokens; also the saved index when it reflects ``fingerprint``.

        Returns:
            Whether the loaded index is current (no refresh needed).
        """
        if not self.path:
            return False
        directory = Path(self.path)
        try:
            state = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError):
            return False
        if state.get("settings") != self._settings():
            return False  # another analyzer or scoring: start over
        try:
            with (directory / "chunks.jsonl").open(encoding="utf-8") as lines:
                records = [json.loads(line) for line in lines]
            chunks = [Chunk(id=d["id"], text=d["text"], metadata=d["metadata"]) for d in records]
            tokens = {d["id"]: (d["indexed"], list(d["tokens"])) for d in records}
            current = state.get("fingerprint") == fingerprint
            index = None
            if current and chunks:
                index = _bm25s().BM25.load(str(directory / "bm25s"))
        except (OSError, ValueError, KeyError, TypeError):
            return False  # unreadable: rebuilt from the store
        self._tokens = tokens
        if not current:
            return False  # the kept tokens make the refresh from the store incremental
        self._index, self._chunks, self._fingerprint = index, chunks, fingerprint
        return True

    # -- retrieval ----------------------------------------------------------------------------
    def _filters(self, filters: Filters | None) -> Filters | None:
        if self.filters and filters:
            return {"$and": [dict(self.filters), dict(filters)]}
        return filters or self.filters

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed chunk for ``query`` (aligned with the index order)."""
        with self._lock:
            self._refresh()
            if self._index is None:
                return np.zeros(0, dtype=np.float32)
            vocab = self._index.vocab_dict
            tokens = [t for t in self.tokenize([query])[0] if t in vocab]
            if not tokens:
                return np.zeros(len(self._chunks), dtype=np.float32)
            return np.asarray(self._index.get_scores(tokens), dtype=np.float32)

    def retrieve(
        self, query: str, *, k: int | None = None, filters: Filters | None = None
    ) -> list[Hit]:
        """Hits for one query: chunks containing a query term, best BM25 score first."""
        node = parse_filter(self._filters(filters))
        limit = resolve_k(k, self.k)
        with self._lock:
            scores = self.scores(query)
            chunks = self._chunks
        if scores.size == 0:
            return []
        if node is not None:
            mask = np.fromiter((matches(node, c.metadata) for c in chunks), bool, len(chunks))
            scores = np.where(mask, scores, 0.0)
        positive = int(np.count_nonzero(scores > 0))
        limit = min(limit, positive)
        if limit == 0:
            return []
        top = np.argpartition(-scores, limit - 1)[:limit]
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by index order
        return [Hit(chunks[i], float(scores[i])) for i in top]

    def retrieve_batch(
        self, queries: Sequence[str], *, k: int | None = None, filters: Filters | None = None
    ) -> list[list[Hit]]:
        """Hits for many queries."""
        return [self.retrieve(q, k=k, filters=filters) for q in queries]

    def run(
        self, query: str, k: int | None = None, filters: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"hits": self.retrieve(query, k=k, filters=filters)}
