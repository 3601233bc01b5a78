"""The one ingest path: documents in memory (the server's), the stats dict, the shared checks,
and the parameters that don't change vectors."""

from __future__ import annotations

from typing import Any

import pytest

from rag.connectors.stores.faiss import FaissStore
from rag.core.documents import Document
from rag.core.errors import StoreLockedError
from rag.core.pipeline import Pipeline
from rag.pipelines.ingest import (
    check_ingest_pipeline,
    ingest_documents,
    ingest_stages,
    pipeline_fingerprint,
    run_ingest,
    store_stats,
)
from rag.pipelines.records import VECTOR_NEUTRAL_PARAMETERS, writer_lock
from rag.pipelines.splitters import RecursiveSplitter
from rag.pipelines.writer import StoreWriter
from tests.pipelines.ingest_helpers import CHUNK_SIZE, make_pipeline, paragraph, write_corpus
from tests.test_bad_input import HashEmbedder

pytestmark = pytest.mark.unit


class CountingEmbedder(HashEmbedder):
    """Records the size of every embedding call."""

    def __init__(self) -> None:
        super().__init__(dimension=16)
        self.calls: list[int] = []

    def embed_documents(self, texts: list[str]) -> Any:
        self.calls.append(len(texts))
        return super().embed_documents(texts)


def splitter() -> RecursiveSplitter:
    return RecursiveSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=0, tokenizer=None)


def document(name: str, words: str, parts: int = 3, **metadata: Any) -> Document:
    text = "\n\n".join(paragraph(f"{words}{i}", i) for i in range(parts))
    return Document(id=name, text=text, metadata={"source": name, **metadata})


def texts_of(store: FaissStore, source: str) -> list[str]:
    return sorted(c.text for c in store.iter_chunks() if c.source == source)


def test_documents_are_split_embedded_and_written_in_windows(tmp_path):
    store = FaissStore(path=str(tmp_path / "index"))
    writer = StoreWriter(store=store, batch_size=2)
    embedder = CountingEmbedder()
    docs = [document("a.md", "alpha"), document("b.md", "beta")]
    report = ingest_documents(docs, embedder=embedder, writer=writer, splitter=splitter())
    chunks = [c for d in docs for c in splitter().split_document(d)]
    assert (report.sources, report.chunks_written, report.chunks_deleted) == (2, len(chunks), 0)
    assert max(embedder.calls) <= 2 and sum(embedder.calls) == len(chunks)
    assert sorted(store.ids()) == sorted(c.id for c in chunks)
    assert FaissStore(path=str(tmp_path / "index")).count() == len(chunks)  # flushed to disk


def test_replace_deletes_only_what_the_new_version_lacks(tmp_path):
    store = FaissStore(path=str(tmp_path / "index"))
    writer = StoreWriter(store=store)
    old = document("a.md", "alpha", parts=3)
    ingest_documents([old, document("b.md", "beta")], embedder=HashEmbedder(), writer=writer)
    new = Document(id="a.md", text=old.text.rsplit("\n\n", 1)[0], metadata={"source": "a.md"})
    kept = texts_of(store, "b.md")
    report = ingest_documents(
        [new], embedder=HashEmbedder(), writer=writer, splitter=splitter(), replace=True
    )
    assert texts_of(store, "a.md") == sorted(c.text for c in splitter().split_document(new))
    assert report.chunks_deleted == 1  # the old one-chunk version's chunk; upserts don't count
    assert texts_of(store, "b.md") == kept  # another source is untouched


def test_replace_honours_the_callers_filter(tmp_path):
    store = FaissStore(path=str(tmp_path / "index"))
    writer = StoreWriter(store=store)
    for tenant in ("acme", "globex"):
        doc = document(f"{tenant}/a.md", tenant, parts=1, source="a.md", tenant=tenant)
        ingest_documents([doc], embedder=HashEmbedder(), writer=writer)
    doc = document("acme/a2", "acme-new", parts=1, source="a.md", tenant="acme")
    report = ingest_documents(
        [doc],
        embedder=HashEmbedder(),
        writer=writer,
        replace=True,
        replace_filter=lambda source: {"source": source, "tenant": "acme"},
    )
    assert report.chunks_deleted == 1
    tenants = sorted(c.metadata["tenant"] for c in store.iter_chunks())
    assert tenants == ["acme", "globex"]
    assert any("acme-new" in c.text for c in store.iter_chunks())


def test_replace_forgets_the_records_so_a_file_ingest_writes_again(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=1)
    store = FaissStore(path=str(tmp_path / "index"))
    pipeline = make_pipeline(HashEmbedder(), store)
    first = run_ingest(pipeline, [corpus], progress=False)
    source = str(corpus / "a-0.md")
    writer = pipeline.components["writer"]
    assert source in writer.records.sources()
    replacement = Document(id=source, text="Short.", metadata={"source": source})
    ingest_documents([replacement], embedder=HashEmbedder(), writer=writer, replace=True)
    assert source not in writer.records.sources()
    again = run_ingest(pipeline, [corpus], progress=False)
    assert again.chunks_written == first.chunks_written - 8  # a-0.md again; b.jsonl unchanged


def test_without_a_writer_documents_go_to_the_store_with_upsert(tmp_path):
    store = FaissStore()
    docs = [document("a.md", "alpha", parts=1)]
    assert ingest_documents(docs, embedder=HashEmbedder(), store=store).chunks_written == 1
    again = ingest_documents(docs, embedder=HashEmbedder(), store=store)
    assert (again.chunks_written, store.count()) == (1, 1)  # upserted, not duplicated


def test_documents_need_somewhere_to_go():
    with pytest.raises(ValueError, match="needs a writer"):
        ingest_documents([document("a.md", "alpha")], embedder=HashEmbedder())


def test_documents_wait_for_the_writer_lock(tmp_path):
    store = FaissStore(path=str(tmp_path / "index"))
    writer = StoreWriter(store=store)
    with writer_lock(writer.records.path), pytest.raises(StoreLockedError, match="another"):
        ingest_documents(
            [document("a.md", "alpha")], embedder=HashEmbedder(), writer=writer, lock_timeout=0.2
        )
    assert store.count() == 0


def test_store_stats_counts_all_or_only_what_a_filter_selects(tmp_path):
    store = FaissStore(path=str(tmp_path / "index"))
    docs = [document("a.md", "alpha", team="red"), document("b.md", "beta", team="blue")]
    ingest_documents(docs, embedder=HashEmbedder(), store=store, splitter=splitter())
    everything = store_stats(store)
    assert everything == {
        "chunks": store.count(),
        "sources": 2,
        "store": "store.faiss",
        "dimension": 16,
    }
    red = store_stats(store, filters={"team": "red"})
    assert red == {
        "chunks": store.count({"team": "red"}),
        "sources": 1,
        "store": "store.faiss",
        "dimension": 16,
    }


class CountOnlyStore:
    """A store with only the five core methods (no ability): stats fall back to count()."""

    def __init__(self) -> None:
        self.warmed = False

    def warm_up(self) -> None:
        self.warmed = True

    def write(self, chunks: Any, policy: Any = "upsert") -> int:
        return len(chunks)

    def search(self, vector: Any, k: int = 10, filters: Any = None) -> list[Any]:
        return []

    def delete(self, ids: Any = None, filters: Any = None) -> int:
        return 0

    def count(self, filters: Any = None) -> int:
        return 3 if filters else 7

    def get(self, ids: Any) -> list[Any]:
        return []


def test_store_stats_of_a_store_without_abilities():
    store = CountOnlyStore()
    stats = store_stats(store)
    assert store.warmed
    assert (stats["chunks"], stats["sources"], stats["dimension"]) == (7, None, None)
    scoped = store_stats(store, filters={"team": "red"})
    assert (scoped["chunks"], scoped["sources"], scoped["dimension"]) == (3, None, None)


def test_check_ingest_pipeline_names_what_is_missing():
    with pytest.raises(ValueError, match="mode must be one of"):
        check_ingest_pipeline(Pipeline(name="p"), "sideways")
    only_splitter = Pipeline(name="p")
    only_splitter.add_component("splitter", splitter())
    with pytest.raises(Exception, match="no component takes 'sources'"):
        check_ingest_pipeline(only_splitter, "none")
    pipeline = make_pipeline(HashEmbedder(), FaissStore())
    name, writer = check_ingest_pipeline(pipeline, "incremental")
    assert name == "writer" and writer is pipeline.components["writer"]


@pytest.mark.parametrize("name", sorted(VECTOR_NEUTRAL_PARAMETERS))
def test_a_vector_neutral_parameter_does_not_change_the_fingerprint(name):
    class Tunable(HashEmbedder):
        def __init__(self, *, dimension: int = 16, **options: Any) -> None:
            super().__init__(dimension=dimension)
            self.options = options

        def to_dict(self, *, resolved: bool = False) -> dict[str, Any]:
            data = super().to_dict()
            data["init_parameters"] = {"dimension": self.dimension, **self.options}
            return data

    def fingerprint(embedder: Any) -> str:
        return pipeline_fingerprint(make_pipeline(embedder, FaissStore()))

    base = fingerprint(Tunable())
    assert fingerprint(Tunable(**{name: "changed"})) == base
    assert fingerprint(Tunable(dimension=32)) != base  # a parameter that changes vectors


def test_recognizing_the_streaming_shape_loads_no_model():
    class LazyEmbedder(HashEmbedder):
        @property
        def dimension(self) -> int:  # a real embedder loads its model here
            raise AssertionError("the model was loaded to recognize the pipeline")

        @dimension.setter
        def dimension(self, value: int) -> None:
            pass

    pipeline = make_pipeline(LazyEmbedder(), FaissStore())
    stages = ingest_stages(pipeline)
    assert stages is not None and stages.embedder is pipeline.components["embedder"]


def test_later_parameters_at_their_old_behaviour_keep_the_fingerprint_of_stores_before_them():
    class SplitterOfOld(RecursiveSplitter):  # to_dict as it was before `balanced` existed
        def to_dict(self, *, resolved: bool = False) -> dict[str, Any]:
            data = super().to_dict(resolved=resolved)
            del data["init_parameters"]["balanced"]
            del data["init_parameters"]["sentence_boundaries"]
            return {**data, "type": "splitter.recursive"}

    def fingerprint(chunker: RecursiveSplitter) -> str:
        pipeline = Pipeline(name="ingest")
        pipeline.add_component("splitter", chunker)
        pipeline.add_component("embedder", HashEmbedder())
        return pipeline_fingerprint(pipeline)

    options = {"chunk_size": CHUNK_SIZE, "chunk_overlap": 0, "tokenizer": None}
    old = fingerprint(SplitterOfOld(**options))
    assert fingerprint(RecursiveSplitter(**options)) == old  # upgrading re-embeds nothing
    assert fingerprint(RecursiveSplitter(**options, balanced=True)) != old  # new chunks
    assert fingerprint(RecursiveSplitter(**options, sentence_boundaries=True)) != old
