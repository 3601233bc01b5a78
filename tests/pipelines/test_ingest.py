"""The local ingestion runner: incremental, full and none modes, streaming, reporting."""

from __future__ import annotations

import numpy as np
import pytest

from rag.connectors.stores.faiss import FaissStore
from rag.core.component import Component
from rag.core.documents import Chunk
from rag.core.errors import ConfigError, PipelineError
from rag.core.pipeline import Pipeline
from rag.pipelines.ingest import ingest_stages, pipeline_fingerprint, run_ingest
from rag.pipelines.loaders import FileLoader
from rag.pipelines.splitters import RecursiveSplitter
from tests.pipelines.ingest_helpers import (
    expected_chunks,
    make_pipeline,
    paragraph,
    write_corpus,
)

pytestmark = pytest.mark.integration


def stored(store_path) -> dict[str, str]:
    """Reopen the store from disk and return ``{id: text}`` (also checks the index agrees)."""
    store = FaissStore(path=str(store_path))
    chunks = store.get(store.ids())
    assert store.count() == len(chunks) == len({c.id for c in chunks})
    assert store._index.ntotal == len(chunks)  # the FAISS cache matches SQLite
    store.close()
    return {c.id: c.text for c in chunks}


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


def test_first_run_writes_everything_and_a_rerun_skips_everything(embedder, corpus, tmp_path):
    index = tmp_path / "index"
    pipeline = make_pipeline(embedder, FaissStore(path=str(index)), batch_size=16)
    expected = expected_chunks(corpus)
    first = run_ingest(pipeline, [corpus], progress=False)
    assert (first.sources, first.chunks_written, first.chunks_skipped) == (7, len(expected), 0)
    assert first.errors == []
    second = run_ingest(pipeline, [corpus], progress=False)
    assert (second.chunks_written, second.chunks_skipped, second.chunks_deleted) == (
        0,
        len(expected),
        0,
    )
    assert stored(index) == expected


def test_changed_sources_replace_their_chunks_and_keep_unchanged_ones(embedder, corpus, tmp_path):
    index = tmp_path / "index"
    pipeline = make_pipeline(embedder, FaissStore(path=str(index)))
    run_ingest(pipeline, [corpus], progress=False)
    before = expected_chunks(corpus)
    write_corpus(corpus, version=2)
    after = expected_chunks(corpus)
    report = run_ingest(pipeline, [corpus], mode="incremental", progress=False)
    removed_file = {i for i, t in before.items() if "topic2 " in t}
    # incremental keeps the chunks of a-2.md, whose file is gone
    assert stored(index) == {**after, **{i: before[i] for i in removed_file}}
    changed = set(before) - set(after) - removed_file
    assert report.chunks_deleted == len(changed)
    # only chunks with a new id are written: unchanged chunks of changed files are not
    assert report.chunks_written == len(set(after) - set(before))
    assert report.chunks_skipped == len(set(after) & set(before))


def test_full_mode_deletes_sources_that_are_gone(embedder, corpus, tmp_path):
    index = tmp_path / "index"
    pipeline = make_pipeline(embedder, FaissStore(path=str(index)))
    run_ingest(pipeline, [corpus], progress=False)
    before = expected_chunks(corpus)
    write_corpus(corpus, version=2)
    report = run_ingest(pipeline, [corpus], mode="full", progress=False)
    after = expected_chunks(corpus)
    assert stored(index) == after
    assert report.chunks_deleted == len(set(before) - set(after))
    # full mode only prunes under the paths it was given
    run_ingest(pipeline, [corpus / "b.jsonl"], mode="full", progress=False)
    assert stored(index) == after


def embedded_texts(embedder, monkeypatch) -> list[str]:
    """The texts ``embedder`` embeds from now on (it still embeds them)."""
    texts: list[str] = []
    embed = embedder.embed_documents

    def counting(batch, *args, **kwargs):
        texts.extend(batch)
        return embed(batch, *args, **kwargs)

    monkeypatch.setattr(embedder, "embed_documents", counting)
    return texts


def test_reused_vectors_equal_fresh_ones(embedder, corpus, tmp_path, monkeypatch):
    index = tmp_path / "index"
    pipeline = make_pipeline(embedder, FaissStore(path=str(index)))
    run_ingest(pipeline, [corpus], progress=False)
    # same texts at new line numbers: ids and texts unchanged, metadata changed
    path = corpus / "b.jsonl"
    path.write_text("\n" + path.read_text())
    embedded = embedded_texts(embedder, monkeypatch)
    report = run_ingest(pipeline, [corpus], progress=False)
    assert report.chunks_written == 8 and report.chunks_deleted == 0
    assert embedded == []  # the line numbers are not embedded: every vector was reused
    store = FaissStore(path=str(index))
    rows = [c for c in store.get(store.ids()) if c.metadata["source"].endswith("b.jsonl")]
    assert {c.metadata["line"] for c in rows} == set(range(2, 10))
    fresh = embedder.embed_documents([c.text for c in rows])
    np.testing.assert_allclose(np.vstack([c.embedding for c in rows]), fresh, atol=1e-5)
    store.close()


def test_chunks_are_embedded_in_context_with_the_embedders_template(embedder, corpus, tmp_path):
    """``rag ingest`` embeds what the embedder's ``context_template`` renders (the chunk under
    its document's title), as ``embedder.run`` does, while the store keeps the chunk's text."""
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder

    contextual = SentenceTransformersEmbedder(
        model="all-MiniLM-L6-v2", device="cpu", batch_size=32, context_template="{title}\n{text}"
    )
    index = tmp_path / "index"
    run_ingest(make_pipeline(contextual, FaissStore(path=str(index))), [corpus], progress=False)
    store = FaissStore(path=str(index))
    chunks = store.get(store.ids())
    store.close()
    assert stored(index) == expected_chunks(corpus)  # the stored text stays the chunk's own
    titled = [c for c in chunks if contextual.index_text(c) != c.text]
    assert len(titled) >= 6  # later chunks of titled documents: embedded under their title
    in_context = embedder.embed_documents([f"{c.metadata['title']}\n{c.text}" for c in titled])
    np.testing.assert_allclose(np.vstack([c.embedding for c in titled]), in_context, atol=1e-5)
    bare = embedder.embed_documents([c.text for c in titled])
    assert not np.allclose(np.vstack([c.embedding for c in titled]), bare, atol=1e-3)


def test_a_changed_title_reembeds_the_chunks_whose_text_did_not_change(tmp_path, monkeypatch):
    """A chunk embedded under its document's title (``context_template``) gets a new vector when
    only the title changed: its text and id are the same, but the stored vector is stale."""
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder

    contextual = SentenceTransformersEmbedder(
        model="all-MiniLM-L6-v2", device="cpu", context_template="{title}\n{text}"
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    body = "\n\n".join(paragraph("okapi", n) for n in range(4))
    (corpus / "okapi.md").write_text(f"# Okapis\n\n{body}\n")
    index = tmp_path / "index"
    run_ingest(make_pipeline(contextual, FaissStore(path=str(index))), [corpus], progress=False)
    (corpus / "okapi.md").write_text(f"# Giraffe\n\n{body}\n")
    pipeline = make_pipeline(contextual, FaissStore(path=str(index)))
    embedded = embedded_texts(contextual, monkeypatch)
    report = run_ingest(pipeline, [corpus], progress=False)
    store = FaissStore(path=str(index))
    chunks = store.get(store.ids())
    store.close()
    later = [c for c in chunks if not c.text.startswith("# ")]
    assert later and report.chunks_written == len(chunks) == len(embedded)
    assert {c.metadata["title"] for c in chunks} == {"Giraffe"}
    expected = contextual.embed_documents([f"Giraffe\n{c.text}" for c in later])
    np.testing.assert_allclose(np.vstack([c.embedding for c in later]), expected, atol=1e-5)


def test_mode_none_writes_everything_every_time(embedder, corpus):
    store = FaissStore()
    pipeline = make_pipeline(embedder, store)
    total = len(expected_chunks(corpus))
    for _ in range(2):
        report = run_ingest(pipeline, [corpus], mode="none", progress=False)
        assert report.chunks_written == total
    assert store.count() == total


def test_changing_the_pipeline_reingests(embedder, corpus, tmp_path):
    store = FaissStore(path=str(tmp_path / "index"))
    pipeline = make_pipeline(embedder, store)
    run_ingest(pipeline, [corpus], progress=False)
    other = make_pipeline(embedder, store)
    other.components["splitter"].chunk_size = 300  # not via init: to_dict would hide it
    other.components["splitter"]._init_parameters["chunk_size"] = 300
    assert pipeline_fingerprint(other) != pipeline_fingerprint(pipeline)
    report = run_ingest(other, [corpus], progress=False)
    assert report.chunks_skipped < report.chunks_written
    assert set(stored(tmp_path / "index")) == set(_ids_with(300, corpus))


def _ids_with(chunk_size, corpus):
    from rag.pipelines.loaders import expand_sources

    files, _ = expand_sources([corpus])
    docs = FileLoader().run(sources=files)["documents"]
    splitter = RecursiveSplitter(chunk_size=chunk_size, chunk_overlap=0)
    return [c.id for c in splitter.run(documents=docs)["chunks"]]


def test_a_failing_source_is_reported_and_keeps_its_old_chunks(embedder, corpus, tmp_path):
    index = tmp_path / "index"
    pipeline = make_pipeline(embedder, FaissStore(path=str(index)))
    run_ingest(pipeline, [corpus], progress=False)
    before = stored(index)
    (corpus / "b.jsonl").write_bytes(
        b'{"_id": "x", "text": "fine"}\n{"_id": "y", "text": "\xff\xfe broken"}\n'
    )
    (corpus / "bad.md").write_bytes(b"")
    report = run_ingest(pipeline, [corpus], progress=False)
    failed = {e["source"]: e["error"] for e in report.errors}
    assert "invalid start byte" in failed[str((corpus / "b.jsonl").as_posix())]
    assert failed[str((corpus / "bad.md").as_posix())] == "empty file"
    after = stored(index)
    assert set(before) <= set(after)  # b.jsonl's old rows are still there
    # once fixed, the next run leaves exactly the right chunks (the partial write is undone)
    write_corpus(corpus, version=1)
    run_ingest(pipeline, [corpus], progress=False)
    assert stored(index) == expected_chunks(corpus)


def test_pipeline_run_still_works_with_the_same_components(embedder, corpus):
    store = FaissStore()
    pipeline = make_pipeline(embedder, store)
    assert ingest_stages(pipeline) is not None
    outputs = pipeline.run(sources=[str(corpus / "a-0.md")])
    assert outputs["writer"]["written"] == store.count() > 0


def test_record_modes_refuse_a_fail_policy_and_a_pipeline_without_writer(embedder, corpus):
    pipeline = make_pipeline(embedder, FaissStore(), policy="fail")
    with pytest.raises(ConfigError, match="policy 'fail'"):
        run_ingest(pipeline, [corpus], progress=False)
    no_writer = Pipeline(name="split-only")
    no_writer.add_component("loader", FileLoader())
    no_writer.add_component("splitter", RecursiveSplitter())
    with pytest.raises(PipelineError, match="no writer.store"):
        run_ingest(no_writer, [corpus], progress=False)
    report = run_ingest(no_writer, [corpus], mode="none", progress=False)
    assert report.sources == 7


def test_small_windows_stream_through_the_pipeline(embedder, corpus, tmp_path):
    index = tmp_path / "index"
    pipeline = make_pipeline(embedder, FaissStore(path=str(index)))
    report = run_ingest(pipeline, [corpus], window_size=3, progress=False)
    assert stored(index) == expected_chunks(corpus)
    assert report.chunks_written == len(expected_chunks(corpus))


def test_unknown_mode_is_refused(embedder, corpus):
    with pytest.raises(ValueError, match="incremental, full, none"):
        run_ingest(make_pipeline(embedder, FaissStore()), [corpus], mode="fast")


class Tag(Component):
    """A pass-through step that makes the pipeline a shape the streaming path does not know."""

    outputs = {"chunks": list[Chunk]}

    def __init__(self, *, tag: str = "x") -> None:
        self.tag = tag

    def run(self, chunks: list[Chunk]) -> dict:
        for chunk in chunks:
            chunk.metadata["tag"] = self.tag
        return {"chunks": chunks}


def test_other_pipeline_shapes_keep_records_source_by_source(embedder, corpus, tmp_path):
    index = tmp_path / "index"
    pipeline = Pipeline(name="tagged")
    reference = make_pipeline(embedder, FaissStore(path=str(index)))
    for name, component in reference.components.items():
        if name == "embedder":
            pipeline.add_component("tag", Tag())
        pipeline.add_component(name, component)
    assert ingest_stages(pipeline) is None
    first = run_ingest(pipeline, [corpus], progress=False)
    assert first.chunks_written == len(expected_chunks(corpus))
    assert run_ingest(pipeline, [corpus], progress=False).chunks_written == 0
    write_corpus(corpus, version=2)
    report = run_ingest(pipeline, [corpus], mode="full", progress=False)
    assert report.chunks_deleted > 0
    assert stored(index) == expected_chunks(corpus)
