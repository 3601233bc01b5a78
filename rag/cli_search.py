"""The body of ``rag search`` (the typer wrapper in :mod:`rag.cli` parses the options).

``rag search "query"`` prints ranked hits (``--json``: the DESIGN shape); ``--queries q.jsonl``
embeds the queries in batches and prints one JSON object per query or, with ``--format trec``,
a TREC run where each document appears once (its best chunk).
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from rag.cli_output import print_json
from rag.core.errors import did_you_mean
from rag.core.graph import Pipeline
from rag.core.protocols import RetrievesBatches

BATCH = 256
"""Queries given to the retriever at once (``--queries``)."""


def hits_to_trec(query_id: str, hits: Sequence[Any], k: int) -> list[str]:
    """TREC run lines (``qid Q0 docid rank score ragline``) for one query: the first ``k``
    documents, each once; a document is the chunk's ``doc_id`` metadata, else its source.

    Example:
        >>> from rag.core.documents import Chunk, Hit
        >>> sources = ["a.md", "a.md", "b.md"]
        >>> hits = [
        ...     Hit(chunk=Chunk(id=str(i), text="t", metadata={"source": s}), score=1 / (i + 1))
        ...     for i, s in enumerate(sources)
        ... ]
        >>> hits_to_trec("q1", hits, 10)
        ['q1 Q0 a.md 1 1.000000 ragline', 'q1 Q0 b.md 2 0.333333 ragline']
    """
    lines, seen = [], set()
    for hit in hits:
        doc = str(hit.chunk.metadata.get("doc_id") or hit.chunk.metadata.get("source", hit.id))
        if doc in seen:
            continue
        seen.add(doc)
        lines.append(f"{query_id} Q0 {doc} {len(seen)} {hit.score:.6f} ragline")
        if len(seen) == k:
            break
    return lines


def empty_stores(components: Mapping[str, Any], *, config: Path | str) -> str | None:
    r"""What to say when every store among ``components`` holds no chunks (``None`` when one
    holds some, when there is no store, or when a store cannot count): the store, its path and
    the ingest command.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> print(empty_stores({"store": FaissStore()}, config="qa.yaml"))
        store 'store' holds no chunks; ingest first: rag ingest FILES --config qa.yaml
    """
    from rag.core.errors import RagError
    from rag.core.roles import Role

    def holds_none(store: Any) -> bool:
        store.warm_up()
        return store.count() == 0  # a count only: the full stats count sources too (slow)

    stores = {n: c for n, c in components.items() if Role.STORE.played_by(c)}
    try:
        empty = [n for n, store in stores.items() if holds_none(store)]
    except (RagError, OSError):  # a store that cannot count: say no more than what is known
        return None
    if not stores or len(empty) < len(stores):
        return None
    path = getattr(stores[empty[0]], "path", None)
    where = f" ({path})" if path else ""
    return (
        f"store '{empty[0]}'{where} holds no chunks; ingest first: "
        f"rag ingest FILES --config {config}"
    )


def nothing_retrieved(
    components: Mapping[str, Any], *, config: Path | str, filters: dict[str, Any] | None
) -> str:
    r"""Why a search retrieved nothing, for a note on stderr: the file's stores hold no chunks
    (:func:`empty_stores`: ingest first, or ``${RAG_INDEX_DIR}`` names another index), or the
    filter matched none.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> why = nothing_retrieved({"store": FaissStore()}, config="qa.yaml", filters=None)
        >>> print(why.replace("; ", ";\n"))
        nothing retrieved: store 'store' holds no chunks;
        ingest first: rag ingest FILES --config qa.yaml
    """
    empty = empty_stores(components, config=config)
    if empty:
        return f"nothing retrieved: {empty}"
    if filters:
        why = f"nothing retrieved: no chunk matches the filter {json.dumps(filters)}"
        unknown = unknown_filter_fields(components, filters)
        return f"{why}; {unknown}" if unknown else why
    return "nothing retrieved"


def unknown_filter_fields(components: Mapping[str, Any], filters: dict[str, Any]) -> str | None:
    r"""The metadata fields ``filters`` names that no chunk of any store among ``components``
    has (a misspelt field matches nothing, silently), with the closest field the chunks do
    have; ``None`` when every field exists somewhere or a store cannot tell.

    Example:
        >>> from rag.connectors.stores.faiss import FaissStore
        >>> from rag.core.documents import Chunk
        >>> import numpy as np
        >>> store = FaissStore()
        >>> _ = store.write([Chunk(id="a", text="x", embedding=np.ones(2, "float32"),
        ...                        metadata={"source": "a.md"})])
        >>> print(unknown_filter_fields({"store": store}, {"sorce": "a.md"}))
        no chunk has the metadata field 'sorce'. Did you mean 'source'?
    """
    from rag.core.errors import RagError
    from rag.core.filters import field_names, parse_filter
    from rag.core.protocols import Enumerable
    from rag.core.roles import Role

    stores = [c for c in components.values() if Role.STORE.played_by(c)]
    try:
        missing = [
            name
            for name in sorted(field_names(parse_filter(filters)))
            if stores and all(store.count({name: {"$exists": True}}) == 0 for store in stores)
        ]
        if not missing:
            return None
        known: set[str] = set()
        for store in stores:  # the fields of a sample of chunks, for the suggestion
            if isinstance(store, Enumerable):
                for chunk in itertools.islice(store.iter_chunks(batch_size=100), 100):
                    known.update(chunk.metadata)
    except (RagError, OSError):  # a store that cannot count or list: say no more
        return None
    noun = "field" if len(missing) == 1 else "fields"
    named = []
    for name in missing:
        hint = did_you_mean(name, sorted(known))  # " Did you mean 'x'?" or ""
        named.append(f"'{name}'.{hint}" if hint else f"'{name}'")
    return f"no chunk has the metadata {noun} " + "; ".join(named)


def search_one(
    search_pipeline: Pipeline,
    retriever: Any,
    query: str,
    *,
    k: int,
    filters: dict[str, Any] | None,
    json_output: bool,
) -> int:
    """Print the hits for ``query``: from ``retriever`` when the pipeline has one, else from
    running the whole pipeline (its first ``hits`` output). Returns how many were printed."""
    if retriever is not None:
        from rag.core.tracing import traced_retrieve

        retriever.warm_up()
        hits = traced_retrieve(retriever, query, k=k, filters=filters)
    else:
        outputs = search_pipeline.run(query=query, k=k, filters=filters)
        hits = next((v["hits"] for v in outputs.values() if "hits" in v), [])
    if json_output:
        print_json({"query": query, "hits": [h.to_dict() for h in hits]})
        return len(hits)
    for rank, hit in enumerate(hits, start=1):
        section = hit.chunk.metadata.get("section")
        where = hit.chunk.source + (f" § {section}" if section else "")
        snippet = " ".join(hit.chunk.text.split())[:160]
        typer.echo(f"{rank:>2}. {hit.score:.3f}  {where}\n    {snippet}")
    return len(hits)


def search_batch(
    retriever: Any,
    rows: Sequence[dict[str, Any]],
    *,
    k: int,
    filters: dict[str, Any] | None,
    output_format: str,
    quiet: bool,
) -> int:
    """Print the hits of every row (``{"_id", "text"}``) as JSONL or a TREC run. Returns how
    many rows retrieved nothing."""
    retriever.warm_up()
    fetch = k if output_format == "jsonl" else k * 4  # several chunks can share a document
    batch = retriever.retrieve_batch if isinstance(retriever, RetrievesBatches) else None
    from tqdm import tqdm

    empty = 0
    with tqdm(total=len(rows), desc="search", unit="query", disable=quiet, file=sys.stderr) as bar:
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            texts = [r["text"] for r in part]
            results = (
                batch(texts, k=fetch, filters=filters)
                if batch
                else [retriever.retrieve(t, k=fetch, filters=filters) for t in texts]
            )
            for row, hits in zip(part, results):
                empty += not hits
                if output_format == "trec":
                    for line in hits_to_trec(row["_id"], hits, k):
                        typer.echo(line)
                else:
                    print_json(
                        {
                            "query_id": row["_id"],
                            "query": row["text"],
                            "hits": [h.to_dict() for h in hits],
                        }
                    )
            bar.update(len(part))
    return empty
