"""Small chunks to search, larger context to return: the splitters behind ``retriever.parent``.

- ``splitter.parent``: a *parent* splitter cuts each document into sections, a *child* splitter
  cuts each section into small chunks. Only the children are embedded and stored; each carries
  its parent in metadata (``parent_id``, ``parent_text``, ``parent_index``).
- ``splitter.sentence_window``: one chunk per sentence, carrying the sentence with its
  ``window_size`` neighbours on each side in ``metadata["window"]``.

The context to return travels in the chunk's own metadata, so it is stored, persisted and
deleted with the chunk by every vector store (no second docstore to keep in sync, and
incremental re-ingestion replaces it with the chunk). The cost is space: a parent's text is
repeated on each of its children, so keep parents to a few thousand characters (stores cap
metadata: Pinecone at 40 KB per vector).

Example:
    >>> from rag.core.documents import Document
    >>> from rag.pipelines.splitters import RecursiveSplitter
    >>> splitter = ParentChildSplitter(
    ...     parent=RecursiveSplitter(chunk_size=30, chunk_overlap=0),
    ...     child=RecursiveSplitter(chunk_size=25, chunk_overlap=0),
    ... )
    >>> doc = Document(id="d", text="Cats purr and nap all day.\\n\\nStocks fell sharply today.")
    >>> chunks = splitter.run(documents=[doc])["chunks"]
    >>> [(c.text, c.metadata["parent_index"]) for c in chunks]
    [('Cats purr and nap all', 0), ('day.', 0), ('Stocks fell sharply', 1), ('today.', 1)]
    >>> chunks[1].metadata["parent_text"]
    'Cats purr and nap all day.'
"""

from __future__ import annotations

from typing import Any

from rag.core.component import Component, warm_up_parts
from rag.core.documents import Chunk, Document
from rag.core.errors import ConfigError
from rag.core.roles import Splitter
from rag.pipelines.splitters import BaseSplitter, TokenCounter, sentence_spans

PARENT_ID = "parent_id"
PARENT_TEXT = "parent_text"
PARENT_INDEX = "parent_index"
WINDOW = "window"


def _require_splitter(value: Any, field: str) -> None:
    if not isinstance(value, Splitter):
        raise ConfigError(
            f"{field} must be a splitter (splitter.recursive, splitter.markdown, ...); "
            f"{type(value).__name__} has no split_document()",
            field=field,
        )


class ParentChildSplitter(Component):
    """Split into parents, then each parent into the children that are embedded and searched.

    Every child chunk keeps the parent's metadata (``headers`` from ``splitter.markdown``, a
    PDF ``page``) and adds ``parent_id`` (the parent's deterministic chunk id),
    ``parent_text`` and ``parent_index`` (the parent's position in its document);
    ``start_index`` is relative to the document. ``retriever.parent`` swaps a child hit for
    its parent.

    Args:
        parent: The splitter that makes parents (sections), e.g. ``splitter.markdown`` with a
            large ``chunk_size``.
        child: The splitter that cuts each parent into small chunks, sized for the embedder.

    Example:
        >>> from rag.pipelines.splitters import MarkdownSplitter, SentenceSplitter
        >>> splitter = ParentChildSplitter(
        ...     parent=MarkdownSplitter(chunk_size=2000, chunk_overlap=0),
        ...     child=SentenceSplitter(chunk_size=200, chunk_overlap=0),
        ... )
        >>> doc = Document(id="a.md", text="# Cats\\nCats purr. Cats nap.")
        >>> [c.metadata["parent_text"] for c in splitter.run(documents=[doc])["chunks"]]
        ['# Cats\\nCats purr. Cats nap.']
    """

    outputs = {"chunks": list[Chunk]}

    def __init__(self, *, parent: Splitter, child: Splitter) -> None:
        _require_splitter(parent, "parent")
        _require_splitter(child, "child")
        self.parent = parent
        self.child = child

    def warm_up(self) -> None:
        warm_up_parts(self.parent, self.child)

    def run(self, documents: list[Document]) -> dict[str, Any]:
        chunks: list[Chunk] = []
        for document in documents:
            chunks.extend(self.split_document(document))
        return {"chunks": chunks}

    def split_document(self, document: Document) -> list[Chunk]:
        children: list[Chunk] = []
        for parent_index, parent in enumerate(self.parent.split_document(document)):
            section = Document(id=parent.id, text=parent.text, metadata=dict(parent.metadata))
            parent_start = int(parent.metadata.get("start_index", 0))
            for child in self.child.split_document(section):
                metadata = dict(child.metadata)
                metadata.pop("chunk_index", None)
                metadata["start_index"] = parent_start + int(metadata.get("start_index", 0))
                metadata[PARENT_ID] = parent.id
                metadata[PARENT_TEXT] = parent.text
                metadata[PARENT_INDEX] = parent_index
                children.append(
                    Chunk.create(
                        text=child.text,
                        source_id=document.id,
                        position=len(children),
                        metadata=metadata,
                    )
                )
        return children


class SentenceWindowSplitter(BaseSplitter):
    """One chunk per sentence; the sentence with its neighbours is kept in ``metadata["window"]``.

    Single sentences embed sharply; the window gives the generator the surrounding context
    (``retriever.parent`` with ``mode: window`` returns it in place of the sentence). A
    sentence longer than ``chunk_size`` is split at word boundaries.

    Args:
        window_size: Sentences kept on each side of the sentence.
        chunk_size: Maximum sentence length in tokens of ``tokenizer`` (characters without).
        tokenizer: Embedding model whose tokenizer measures length.

    Example:
        >>> splitter = SentenceWindowSplitter(window_size=1)
        >>> doc = Document(id="d", text="One. Two. Three.")
        >>> [(c.text, c.metadata["window"]) for c in splitter.run(documents=[doc])["chunks"]]
        [('One.', 'One. Two.'), ('Two.', 'One. Two. Three.'), ('Three.', 'Two. Three.')]
    """

    def __init__(
        self,
        *,
        window_size: int = 2,
        chunk_size: int = 200,
        tokenizer: str | None = None,
    ) -> None:
        super().__init__(chunk_size=chunk_size, chunk_overlap=0, tokenizer=tokenizer)
        if window_size < 0:
            raise ConfigError(f"window_size must be >= 0, got {window_size}", field="window_size")
        self.window_size = window_size

    def split_text(self, text: str) -> list[tuple[int, int]]:
        return sentence_spans(text, self._counter(text), self.chunk_size)

    def split_document(self, document: Document) -> list[Chunk]:
        text = document.text
        count: TokenCounter = self._counter(text)
        sentences = [
            span
            for span in sentence_spans(text, count, self.chunk_size)
            if text[span[0] : span[1]].strip()
        ]
        chunks = self._make_chunks(document, text, sentences, {})  # one chunk per span
        last = len(sentences) - 1
        for index, chunk in enumerate(chunks):
            start = sentences[max(0, index - self.window_size)][0]
            end = sentences[min(last, index + self.window_size)][1]
            chunk.metadata[WINDOW] = text[start:end].strip()
        return chunks
