"""Splitters: documents into chunks, sized in the embedding model's tokens.

Sizing chunks with the model's own tokenizer means no chunk is silently truncated at the
model's maximum sequence length: a ``chunk_size`` larger than the model accepts is refused.

- ``splitter.recursive``: split at paragraph, line, sentence, then word boundaries until pieces
  fit, then merge neighbours up to ``chunk_size`` with ``chunk_overlap``; with ``balanced: true``
  a long text is cut into the fewest chunks that fit, of about equal length (no short tail
  chunk, no title left alone).
- ``splitter.sentence``: whole sentences packed up to ``chunk_size``; overlap in sentences.
- ``splitter.markdown``: one section per header, split further when long, with the header path
  kept in ``metadata["headers"]`` (and ``metadata["section"]``).
- ``splitter.semantic``: cut where adjacent-sentence embedding similarity drops, with a token
  cap; uses the pipeline's embedder.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.core.component import Component, warm_up_parts
from rag.core.deps import require
from rag.core.documents import Chunk, Document
from rag.core.errors import ConfigError
from rag.core.protocols import Embedder
from rag.core.text import markdown_headings, split_sentences
from rag.pipelines._balance import balanced_merge, leaves, sentence_final
from rag.pipelines._balance import split_keep as _split_keep

DEFAULT_SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]
_SPECIAL_TOKEN_ALLOWANCE = 2  # [CLS] and [SEP] that the embedding model adds


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}", field=name)


class TokenCounter:
    """Counts tokens of character spans of one text with one tokenizer pass (offsets)."""

    def __init__(self, tokenizer: Any, text: str) -> None:
        if tokenizer is None:
            self._starts: list[int] | None = None
            return
        encoding = tokenizer(
            text,
            add_special_tokens=False,
            return_offsets_mapping=True,
            truncation=False,
            verbose=False,
        )
        self._starts = [start for start, end in encoding["offset_mapping"] if end > start]

    def __call__(self, start: int, end: int) -> int:
        if self._starts is None:
            return end - start
        return bisect.bisect_left(self._starts, end) - bisect.bisect_left(self._starts, start)


_TOKENIZERS: dict[str, tuple[Any, int]] = {}
_TOKENIZER_LOCK = threading.Lock()


def load_tokenizer(model: str) -> tuple[Any, int]:
    """The fast tokenizer and max sequence length of an embedding model, loaded once."""
    with _TOKENIZER_LOCK:
        if model not in _TOKENIZERS:
            from rag.connectors.embedders.sentence_transformers import resolve_model_path

            transformers = require(
                "transformers",
                package="transformers",
                extra="embed",
                purpose="Token-sized splitting",
            )
            path = resolve_model_path(model)
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            max_length = 512
            config = Path(path, "sentence_bert_config.json")
            if config.exists():
                max_length = int(json.loads(config.read_text()).get("max_seq_length", max_length))
            else:
                max_length = min(int(tokenizer.model_max_length), 8192)
            _TOKENIZERS[model] = (tokenizer, max_length)
        return _TOKENIZERS[model]


class BaseSplitter(Component):
    """What every splitter shares: the size checks, the tokenizer, ``run`` and chunk building.

    A subclass implements ``split_text(text) -> [(start, end), ...]``; chunks get deterministic
    ids and a ``start_index``. Sizes count tokens of ``tokenizer`` when one is set, else
    characters.

    Example:
        >>> class Halves(BaseSplitter):
        ...     def split_text(self, text):
        ...         return [(0, len(text) // 2), (len(text) // 2, len(text))]
        >>> splitter = Halves(chunk_size=100, chunk_overlap=0, tokenizer=None)
        >>> [c.text for c in splitter.split_document(Document(id="a.md", text="one two"))]
        ['one', 'two']
    """

    outputs = {"chunks": list[Chunk]}

    def __init__(
        self,
        *,
        chunk_size: int,
        chunk_overlap: int,
        tokenizer: str | None,
    ) -> None:
        if chunk_size < 1:
            raise ConfigError(
                f"chunk_size must be at least 1, got {chunk_size}", field="chunk_size"
            )
        if chunk_overlap < 0 or chunk_overlap >= chunk_size:
            raise ConfigError(
                f"chunk_overlap must be >= 0 and smaller than chunk_size ({chunk_size}), "
                f"got {chunk_overlap}",
                field="chunk_overlap",
            )
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.tokenizer = tokenizer
        self._tokenizer: Any = None

    def warm_up(self) -> None:
        if self.tokenizer is None or self._tokenizer is not None:
            return
        tokenizer, max_length = load_tokenizer(self.tokenizer)
        limit = max_length - _SPECIAL_TOKEN_ALLOWANCE
        if self.chunk_size > limit:
            raise ConfigError(
                f"chunk_size {self.chunk_size} exceeds what {self.tokenizer} embeds "
                f"({max_length} tokens including 2 special tokens); chunks would be truncated. "
                f"Use chunk_size <= {limit}",
                field="chunk_size",
            )
        self._tokenizer = tokenizer

    def _counter(self, text: str) -> TokenCounter:
        self.warm_up()
        return TokenCounter(self._tokenizer, text)

    def split_text(self, text: str) -> list[tuple[int, int]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, documents: list[Document]) -> dict[str, Any]:
        chunks: list[Chunk] = []
        for document in documents:
            chunks.extend(self.split_document(document))
        return {"chunks": chunks}

    def split_document(self, document: Document) -> list[Chunk]:
        spans = self.split_text(document.text)
        return self._make_chunks(document, document.text, spans, {})

    @staticmethod
    def _make_chunks(
        document: Document,
        text: str,
        spans: Sequence[tuple[int, int]],
        extra: dict[str, Any],
        offset: int = 0,
        first_position: int = 0,
    ) -> list[Chunk]:
        chunks = []
        position = first_position
        for start, end in spans:
            piece = text[start:end].strip()
            if not piece:
                continue
            lead = len(text[start:end]) - len(text[start:end].lstrip())
            metadata = {**document.metadata, **extra, "start_index": offset + start + lead}
            chunks.append(
                Chunk.create(
                    text=piece, source_id=document.id, position=position, metadata=metadata
                )
            )
            position += 1
        return chunks


def _merge(
    pieces: list[tuple[int, int]], count: TokenCounter, size: int, overlap: int
) -> list[tuple[int, int]]:
    """Greedily merge adjacent spans up to ``size``, starting each new chunk ``overlap`` back."""
    chunks: list[tuple[int, int]] = []
    current: list[tuple[int, int]] = []
    for piece in pieces:
        if current and count(current[0][0], piece[1]) > size:
            chunks.append((current[0][0], current[-1][1]))
            while current and (
                count(current[0][0], current[-1][1]) > overlap
                or count(current[0][0], piece[1]) > size
            ):
                current.pop(0)
        current.append(piece)
    if current:
        chunks.append((current[0][0], current[-1][1]))
    return chunks


class RecursiveSplitter(BaseSplitter):
    """Split at the coarsest boundary that makes pieces fit, then merge up to ``chunk_size``.

    Args:
        chunk_size: Maximum chunk length, in tokens of ``tokenizer`` (characters without one).
        chunk_overlap: Length repeated between consecutive chunks, same unit.
        tokenizer: Embedding model whose tokenizer measures length (``all-MiniLM-L6-v2``);
            ``None`` measures characters.
        separators: Boundaries to try, coarsest first; ``""`` splits anywhere.
        balanced: ``False`` fills each chunk up to ``chunk_size`` and leaves the rest to the
            last one (a text of 1.1 chunks gives a full chunk and a scrap; a title line can
            end up alone). ``True`` cuts a text into the fewest chunks that fit, of about equal
            length, at the coarsest boundaries near each cut (pieces of at most a quarter
            chunk are regrouped), which retrieves better (benchmarks/retrieval_quality.py).
        sentence_boundaries: Cut a paragraph at its sentence ends
            (:func:`rag.core.text.sentences`) before the separators finer than a line break,
            so a chunk ends inside a sentence only where one sentence does not fit. ``". "``
            alone misses a sentence that ends in a quote or bracket (``." "Next``) and cuts
            after "Dr." or "U.S.". ``False`` (the default) cuts at the separators only, as
            before this parameter, so existing indexes keep their chunks (turning it on
            re-splits and re-embeds every source at the next ingest); retrieval and answer
            quality measured the same either way (docs/how-to/chunking.md).

    Example:
        >>> splitter = RecursiveSplitter(chunk_size=10, chunk_overlap=0)
        >>> doc = Document(id="d", text="one two three. four five six.")
        >>> [c.text for c in splitter.run(documents=[doc])["chunks"]]
        ['one two', 'three.', 'four five', 'six.']
        >>> balanced = RecursiveSplitter(chunk_size=20, chunk_overlap=0, balanced=True)
        >>> [c.text for c in balanced.run(documents=[doc])["chunks"]]
        ['one two three.', 'four five six.']
    """

    def __init__(
        self,
        *,
        chunk_size: int = 200,
        chunk_overlap: int = 20,
        tokenizer: str | None = None,
        separators: list[str] | None = None,
        balanced: bool = False,
        sentence_boundaries: bool = False,
    ) -> None:
        super().__init__(chunk_size=chunk_size, chunk_overlap=chunk_overlap, tokenizer=tokenizer)
        _check_flag("balanced", balanced)
        _check_flag("sentence_boundaries", sentence_boundaries)
        self.separators = separators
        self.balanced = balanced
        self.sentence_boundaries = sentence_boundaries

    def split_text(self, text: str) -> list[tuple[int, int]]:
        count = self._counter(text)
        return self.spans(text, 0, len(text), count)

    def spans(self, text: str, start: int, end: int, count: TokenCounter) -> list[tuple[int, int]]:
        """Chunk spans of ``text[start:end]``, greedy or balanced as configured."""
        separators = list(self.separators or DEFAULT_SEPARATORS)
        if not self.balanced:  # greedy: the pieces of every cut merged as they come
            return leaves(
                text,
                start,
                end,
                count,
                separators,
                self.chunk_size,
                self.sentence_boundaries,
                merge=lambda pieces: _merge(pieces, count, self.chunk_size, self.chunk_overlap),
            )
        if count(start, end) <= self.chunk_size:
            return [(start, end)]
        limit = max(1, self.chunk_size // 4)
        pieces = leaves(text, start, end, count, separators, limit, self.sentence_boundaries)
        preferred = sentence_final(text, pieces) if self.sentence_boundaries else None
        return balanced_merge(pieces, count, self.chunk_size, self.chunk_overlap, preferred)


class SentenceSplitter(BaseSplitter):
    """Pack whole sentences into chunks of at most ``chunk_size`` tokens.

    A sentence longer than ``chunk_size`` is split at word boundaries.

    Args:
        chunk_size: Maximum chunk length in tokens (characters without a tokenizer).
        chunk_overlap: Number of trailing *sentences* repeated at the start of the next chunk.
        tokenizer: Embedding model whose tokenizer measures length.

    Example:
        >>> splitter = SentenceSplitter(chunk_size=30, chunk_overlap=0)
        >>> doc = Document(id="d", text="First one. Second one here. Third.")
        >>> [c.text for c in splitter.run(documents=[doc])["chunks"]]
        ['First one. Second one here.', 'Third.']
    """

    def __init__(
        self, *, chunk_size: int = 200, chunk_overlap: int = 1, tokenizer: str | None = None
    ) -> None:
        super().__init__(chunk_size=chunk_size, chunk_overlap=chunk_overlap, tokenizer=tokenizer)

    def split_text(self, text: str) -> list[tuple[int, int]]:
        count = self._counter(text)
        sentences: list[tuple[int, int]] = []
        for span in split_sentences(text):
            if count(*span) > self.chunk_size:
                words = _split_keep(text, span[0], span[1], " ")
                sentences.extend(_merge(words, count, self.chunk_size, 0))
            else:
                sentences.append(span)
        chunks: list[tuple[int, int]] = []
        index = 0
        while index < len(sentences):
            end = index
            while (
                end + 1 < len(sentences)
                and count(sentences[index][0], sentences[end + 1][1]) <= self.chunk_size
            ):
                end += 1
            chunks.append((sentences[index][0], sentences[end][1]))
            if end + 1 >= len(sentences):
                break
            index = max(end + 1 - self.chunk_overlap, index + 1)
        return chunks


class MarkdownSplitter(BaseSplitter):
    """Split Markdown at headers; long sections are split further (recursively).

    Every chunk carries ``metadata["headers"]`` (the header path, e.g. ``["Guide", "Install"]``)
    and ``metadata["section"]`` (``"Guide > Install"``). Headers are ``#`` lines or setext
    headings (a line underlined with ``===`` or ``---``); those inside code fences are ignored.

    Args:
        chunk_size: Maximum chunk length in tokens (characters without a tokenizer).
        chunk_overlap: Overlap between chunks of one long section, same unit.
        tokenizer: Embedding model whose tokenizer measures length.
        include_header_path: Prefix each chunk's text with its header path, which helps
            retrieval of sections whose body does not repeat the topic.
        balanced: Split a long section into chunks of about equal length (see
            ``splitter.recursive``'s ``balanced``).
        sentence_boundaries: Cut a long paragraph at its sentence ends first (see
            ``splitter.recursive``'s ``sentence_boundaries``).

    Example:
        >>> splitter = MarkdownSplitter(chunk_size=100, chunk_overlap=0)
        >>> doc = Document(id="d.md", text="# Guide\\nIntro.\\n## Install\\nRun pip.")
        >>> [(c.text, c.metadata["section"]) for c in splitter.run(documents=[doc])["chunks"]]
        [('# Guide\\nIntro.', 'Guide'), ('## Install\\nRun pip.', 'Guide > Install')]
    """

    def __init__(
        self,
        *,
        chunk_size: int = 200,
        chunk_overlap: int = 20,
        tokenizer: str | None = None,
        include_header_path: bool = False,
        balanced: bool = False,
        sentence_boundaries: bool = False,
    ) -> None:
        super().__init__(chunk_size=chunk_size, chunk_overlap=chunk_overlap, tokenizer=tokenizer)
        _check_flag("balanced", balanced)
        _check_flag("sentence_boundaries", sentence_boundaries)
        self.include_header_path = include_header_path
        self.balanced = balanced
        self.sentence_boundaries = sentence_boundaries

    def _sections(self, text: str) -> list[tuple[int, int, list[str]]]:
        headers = markdown_headings(text)
        sections: list[tuple[int, int, list[str]]] = []
        path: list[tuple[int, str]] = []
        starts = [start for start, _, _ in headers]
        if not starts or starts[0] > 0:
            sections.append((0, starts[0] if starts else len(text), []))
        for i, (start, level, title) in enumerate(headers):
            path = [(lvl, name) for lvl, name in path if lvl < level]
            path.append((level, title))
            end = starts[i + 1] if i + 1 < len(starts) else len(text)
            sections.append((start, end, [name for _, name in path]))
        return sections

    def split_document(self, document: Document) -> list[Chunk]:
        text = document.text
        recursive = RecursiveSplitter(
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            balanced=self.balanced,
            sentence_boundaries=self.sentence_boundaries,
        )
        chunks: list[Chunk] = []
        for start, end, headers in self._sections(text):
            if not text[start:end].strip():
                continue
            section = text[start:end]
            prefix = " > ".join(headers) + "\n" if self.include_header_path and headers else ""
            budget_text = prefix + section
            count = self._counter(budget_text)
            recursive._tokenizer = self._tokenizer
            inner = recursive.spans(budget_text, len(prefix), len(budget_text), count)
            extra = {"headers": headers, "section": " > ".join(headers)}
            for piece in self._make_chunks(
                document,
                budget_text,
                inner,
                extra,
                offset=start - len(prefix),
                first_position=len(chunks),
            ):
                if prefix:
                    piece = Chunk.create(
                        text=prefix + piece.text,
                        source_id=document.id,
                        position=piece.metadata["chunk_index"],
                        metadata=piece.metadata,
                    )
                chunks.append(piece)
        return chunks


def sentence_spans(text: str, count: TokenCounter, chunk_size: int) -> list[tuple[int, int]]:
    """Sentences of ``text``; one longer than ``chunk_size`` is split at word boundaries."""
    sentences: list[tuple[int, int]] = []
    for span in split_sentences(text):
        if count(*span) > chunk_size:
            words = _split_keep(text, span[0], span[1], " ")
            sentences.extend(_merge(words, count, chunk_size, 0))
        else:
            sentences.append(span)
    return sentences


THRESHOLD_TYPES = ("percentile", "absolute")


@runtime_checkable
class _EmbedsDocuments(Protocol):
    """What the semantic splitter calls: embed_documents only (isinstance against the whole
    Embedder would read its dimension, loading the model, on Python 3.11)."""

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


class SemanticSplitter(BaseSplitter):
    """Cut where the meaning shifts: between adjacent sentences whose embeddings differ most.

    Each sentence is embedded once; the similarity across the gap between sentences ``i`` and
    ``i + 1`` compares the mean embedding of sentence ``i`` and its ``buffer_size`` predecessors
    with that of sentence ``i + 1`` and its ``buffer_size`` successors (which steadies short
    sentences). A cut is made at a gap when that similarity drops:

    - ``threshold_type: percentile``: the cosine *distance* is above the ``threshold``-th
      percentile of the document's distances (``95``: the 5 % sharpest drops);
    - ``threshold_type: absolute``: the cosine *similarity* is below ``threshold``.

    A group longer than ``chunk_size`` is cut again at its own sharpest drop until every chunk
    fits, so the token cap holds whatever the threshold.

    Args:
        embedder: The embedder that measures similarity, usually the pipeline's own
            (``embedder: "@embedder"`` in a pipeline file).
        chunk_size: Maximum chunk length in tokens of ``tokenizer`` (characters without one).
        tokenizer: Embedding model whose tokenizer measures length (``all-MiniLM-L6-v2``).
        threshold_type: ``percentile`` or ``absolute`` (see above).
        threshold: A percentile in [0, 100], or a cosine similarity in [-1, 1].
        buffer_size: Extra sentences on each side of a gap averaged into its comparison
            (``0``: compare the two adjacent sentences alone).

    Example:
        >>> # Needs a loaded embedder and a document.
        >>> splitter = SemanticSplitter(embedder=embedder, chunk_size=128,  # doctest: +SKIP
        ...                             threshold_type="absolute", threshold=0.3)
        >>> [c.text for c in splitter.run(documents=[doc])["chunks"]]  # doctest: +SKIP
        ['Cats purr. Cats nap all day.', 'Stocks fell. Markets were volatile.']
    """

    def __init__(
        self,
        *,
        embedder: Embedder,
        chunk_size: int = 200,
        tokenizer: str | None = None,
        threshold_type: str = "percentile",
        threshold: float = 95.0,
        buffer_size: int = 1,
    ) -> None:
        super().__init__(chunk_size=chunk_size, chunk_overlap=0, tokenizer=tokenizer)
        if threshold_type not in THRESHOLD_TYPES:
            raise ConfigError(
                f"threshold_type must be one of {', '.join(THRESHOLD_TYPES)}, "
                f"got {threshold_type!r}",
                field="threshold_type",
            )
        low, high = (0.0, 100.0) if threshold_type == "percentile" else (-1.0, 1.0)
        if not low <= threshold <= high:
            kind = "a percentile" if threshold_type == "percentile" else "a cosine similarity"
            raise ConfigError(
                f"threshold for threshold_type {threshold_type!r} is {kind} in "
                f"[{low:g}, {high:g}], got {threshold}",
                field="threshold",
            )
        if buffer_size < 0:
            raise ConfigError(f"buffer_size must be >= 0, got {buffer_size}", field="buffer_size")
        if not isinstance(embedder, _EmbedsDocuments):
            raise ConfigError(
                f"embedder must have embed_documents(texts); {type(embedder).__name__} does not",
                field="embedder",
            )
        self.embedder = embedder
        self.threshold_type = threshold_type
        self.threshold = threshold
        self.buffer_size = buffer_size

    def warm_up(self) -> None:
        super().warm_up()
        warm_up_parts(self.embedder)

    def similarities(self, text: str, sentences: Sequence[tuple[int, int]]) -> np.ndarray:
        """Cosine similarity across each gap between sentences ``i`` and ``i + 1``.

        Each sentence is embedded once; the two sides of a gap are the mean embeddings of up
        to ``buffer_size + 1`` sentences before it and after it.
        """
        vectors = np.asarray(
            self.embedder.embed_documents([text[a:b] for a, b in sentences]),
            dtype=np.float64,
        )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1.0, norms)
        sums = np.vstack([np.zeros(vectors.shape[1]), np.cumsum(vectors, axis=0)])
        size, last = self.buffer_size + 1, len(sentences)
        gaps = np.arange(1, last)  # the gap before sentence g
        left = sums[gaps] - sums[np.maximum(gaps - size, 0)]
        right = sums[np.minimum(gaps + size, last)] - sums[gaps]
        left /= np.maximum(np.linalg.norm(left, axis=1, keepdims=True), 1e-12)
        right /= np.maximum(np.linalg.norm(right, axis=1, keepdims=True), 1e-12)
        return np.einsum("ij,ij->i", left, right)

    def split_text(self, text: str) -> list[tuple[int, int]]:
        count = self._counter(text)
        sentences = sentence_spans(text, count, self.chunk_size)
        if len(sentences) < 2:
            return sentences
        similarity = self.similarities(text, sentences)
        distance = 1.0 - similarity
        if self.threshold_type == "percentile":
            cuts = distance > np.percentile(distance, self.threshold)
        else:
            cuts = similarity < self.threshold
        groups: list[tuple[int, int]] = []  # sentence index ranges [first, last]
        first = 0
        for i, cut in enumerate(cuts):
            if cut:
                groups.append((first, i))
                first = i + 1
        groups.append((first, len(sentences) - 1))
        spans: list[tuple[int, int]] = []
        for lo, hi in groups:
            spans.extend(self._cap(sentences, distance, count, lo, hi))
        return spans

    def _cap(
        self,
        sentences: Sequence[tuple[int, int]],
        distance: np.ndarray,
        count: TokenCounter,
        lo: int,
        hi: int,
    ) -> list[tuple[int, int]]:
        """Sentences ``lo..hi`` as one span, or cut at their sharpest drop until each fits."""
        if lo == hi or count(sentences[lo][0], sentences[hi][1]) <= self.chunk_size:
            return [(sentences[lo][0], sentences[hi][1])]
        cut = lo + int(np.argmax(distance[lo:hi]))  # between sentence `cut` and `cut + 1`
        return [
            *self._cap(sentences, distance, count, lo, cut),
            *self._cap(sentences, distance, count, cut + 1, hi),
        ]
