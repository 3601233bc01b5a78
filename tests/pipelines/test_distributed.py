"""The Ray runner on a local Ray instance: same chunks and vectors as the local runner."""

from __future__ import annotations

import numpy as np
import pytest

from rag.connectors.stores.faiss import FaissStore
from rag.core.errors import PipelineError, StoreLockedError
from rag.core.pipeline import Pipeline
from rag.pipelines.ingest import run_ingest
from rag.pipelines.loaders import FileLoader
from rag.pipelines.records import writer_lock
from tests.pipelines.ingest_helpers import expected_chunks, make_pipeline, write_corpus

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'ragline[ray]'")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def embedded(store) -> dict[str, np.ndarray]:
    return {c.id: c.embedding for c in store.get(store.ids())}


def test_ray_runner_matches_the_local_runner(local_ray, embedder, tmp_path):
    from rag.pipelines.distributed import run_ingest_ray

    corpus = write_corpus(tmp_path / "corpus")
    local = FaissStore(path=str(tmp_path / "local"))
    run_ingest(make_pipeline(embedder, local), [corpus], progress=False)
    distributed = FaissStore(path=str(tmp_path / "ray"))
    pipeline = make_pipeline(embedder, distributed, batch_size=16)
    report = run_ingest_ray(pipeline, [corpus], progress=False)
    expected = expected_chunks(corpus)
    assert report.errors == []
    assert report.chunks_written == len(expected)
    mine, theirs = embedded(distributed), embedded(local)
    assert set(mine) == set(theirs) == set(expected)
    for chunk_id, vector in theirs.items():
        np.testing.assert_allclose(mine[chunk_id], vector, atol=1e-5)

    # the same records: a re-run is free, and a change is incremental on Ray too
    again = run_ingest_ray(pipeline, [corpus], progress=False)
    assert (again.chunks_written, again.chunks_skipped) == (0, len(expected))
    write_corpus(corpus, version=2)
    changed = run_ingest_ray(pipeline, [corpus], mode="full", progress=False)
    assert {c.id: c.text for c in distributed.get(distributed.ids())} == expected_chunks(corpus)
    assert changed.chunks_deleted > 0

    # chunks the records claim but the store lost are written again, as the local runner does
    distributed.clear()
    restored = run_ingest_ray(pipeline, [corpus], progress=False)
    assert restored.chunks_written == len(expected_chunks(corpus)) == distributed.count()


def test_ray_runner_waits_for_the_writer_lock(tmp_path, embedder):
    from rag.pipelines.distributed import run_ingest_ray

    corpus = write_corpus(tmp_path / "corpus")
    store = FaissStore(path=str(tmp_path / "index"))
    pipeline = make_pipeline(embedder, store)
    records = pipeline.components["writer"].records.path
    with writer_lock(records), pytest.raises(StoreLockedError, match="another ingest"):
        run_ingest_ray(pipeline, [corpus], progress=False, lock_timeout=0.2)
    assert store.count() == 0


def test_ray_runner_refuses_a_pipeline_it_cannot_distribute(tmp_path):
    from rag.pipelines.distributed import run_ingest_ray

    pipeline = Pipeline(name="odd")
    pipeline.add_component("loader", FileLoader())
    with pytest.raises(PipelineError, match="--runner local"):
        run_ingest_ray(pipeline, [tmp_path], mode="none", progress=False)


@pytest.fixture
def milvus_server(tmp_path):
    """A real Milvus gRPC endpoint on 127.0.0.1: milvus-lite's server, which the Ray workers
    reach over loopback exactly as they would reach a Milvus server."""
    pytest.importorskip(
        "milvus_lite", reason="milvus-lite is not installed: pip install 'ragline[milvus]'"
    )
    from milvus_lite.server_manager import server_manager_instance

    path = str(tmp_path / "server.db")
    uri = server_manager_instance.start_and_get_uri(path)
    assert uri is not None and uri.startswith("http://127.0.0.1:")
    yield uri
    server_manager_instance.release_server(path)


def test_parallel_writers_fill_a_milvus_server_like_the_local_runner(
    local_ray, embedder, milvus_server, tmp_path, monkeypatch
):
    from rag.connectors.stores.milvus import MilvusStore
    from rag.pipelines import distributed
    from rag.pipelines.distributed import run_ingest_ray

    submitted: list[int] = []
    submit = distributed._ParallelWrites.submit

    def counting_submit(self, chunks, recorded):
        submitted.append(len(chunks))
        return submit(self, chunks, recorded)

    monkeypatch.setattr(distributed._ParallelWrites, "submit", counting_submit)

    corpus = write_corpus(tmp_path / "corpus")
    store = MilvusStore(uri=milvus_server, collection="parallel")
    assert store.concurrent_writers
    pipeline = make_pipeline(
        embedder, store, batch_size=8, records_path=str(tmp_path / "records.sqlite")
    )
    report = run_ingest_ray(pipeline, [corpus], num_writers=3, progress=False)
    expected = expected_chunks(corpus)
    assert report.errors == []
    assert report.chunks_written == len(expected)
    assert {c.id: c.text for c in store.get(store.ids())} == expected
    assert len(submitted) > 1, "batches after the first go to the writer actors"

    write_corpus(corpus, version=2)
    changed = run_ingest_ray(pipeline, [corpus], mode="full", num_writers=2, progress=False)
    assert {c.id: c.text for c in store.get(store.ids())} == expected_chunks(corpus)
    assert changed.chunks_deleted > 0
    store.close()


def test_parallel_writers_are_refused_for_a_store_one_process_owns(tmp_path, embedder):
    from rag.pipelines.distributed import run_ingest_ray

    pipeline = make_pipeline(embedder, FaissStore(path=str(tmp_path / "index")))
    with pytest.raises(PipelineError, match="--writers 0"):
        run_ingest_ray(pipeline, [tmp_path], num_writers=2, progress=False)
