"""Kill a real ``rag ingest`` with SIGKILL at random moments, resume, and check the store.

The subprocess uses the same pipeline (a YAML file) as the in-process runs, so the final
in-process run resumes what the killed runs left. After every kill, each stored chunk must be
recorded for its source (the invariant that makes resuming exact); after the final run, the
store must hold exactly the chunks of the current corpus: none missing, none duplicated, no
chunk of an older version.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.pipelines.ingest import run_ingest
from tests.pipelines.ingest_helpers import (
    expected_chunks,
    make_pipeline,
    paragraph,
    pipeline_yaml,
    write_corpus,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 3
MAX_JITTER_S = 0.4
SEED = int(os.environ.get("RAGLINE_CRASH_SEED", "20261128"))


def change_many(corpus: Path) -> None:
    """Version 2: every Markdown file changes, one is removed, one is added."""
    for i, path in enumerate(sorted(corpus.glob("a-*.md"))):
        if i == 3:
            path.unlink()
            continue
        text = path.read_text().replace("plain words", f"revised words {i}")
        path.write_text(text + "\n" + paragraph("extra", i) + "\n")
    (corpus / "c-new.md").write_text("# New\n\n" + paragraph("new", 1) + "\n")


class FaissCase:
    name = "faiss"

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "index"

    def yaml(self) -> str:
        return f"type: store.faiss\ninit_parameters: {{path: '{self.path}'}}"

    def open(self):
        from rag.connectors.stores.faiss import FaissStore

        return FaissStore(path=str(self.path))

    def records_file(self) -> Path:
        return self.path / "records.sqlite"

    def stored(self) -> dict[str, str]:
        store = self.open()
        chunks = store.get(store.ids())
        assert store.count() == len(chunks) == len({c.id for c in chunks})
        assert (store._index.ntotal if store._index is not None else 0) == len(chunks)
        store.close()
        return {c.id: c.text for c in chunks}


class MilvusCase:
    name = "milvus-lite"

    def __init__(self, tmp: Path) -> None:
        self.uri = str(tmp / "milvus.db")

    def yaml(self) -> str:
        return (
            "type: store.milvus\n"
            f"init_parameters: {{uri: '{self.uri}', collection: crash, dimension: 384}}"
        )

    def open(self):
        from rag.connectors.stores.milvus import MilvusStore

        return MilvusStore(uri=self.uri, collection="crash", dimension=384)

    def records_file(self) -> Path:
        return Path(f"{self.uri}.crash.records.sqlite")

    def stored(self) -> dict[str, str]:
        store = self.open()
        store.warm_up()
        ids = [c.id for c in store.iter_chunks()] if hasattr(store, "iter_chunks") else []
        chunks = store.get(ids)
        assert store.count() == len(chunks) == len(set(ids))
        self.release(store)
        return {c.id: c.text for c in chunks}

    def release(self, store) -> None:
        """Close, and stop this process's embedded milvus-lite server: it holds the file lock
        that the next ``rag ingest`` subprocess needs."""
        from milvus_lite.server_manager import server_manager_instance

        store.close()
        server_manager_instance.release_server(self.uri)


def milvus_available() -> str | None:
    try:
        import milvus_lite  # noqa: F401

        from rag.connectors.stores.milvus import MilvusStore  # noqa: F401
    except ImportError as err:
        return f"store.milvus is not usable here ({err}); install 'ragline[milvus]'"
    return None


CASES = [
    pytest.param(FaissCase, id="faiss"),
    pytest.param(
        MilvusCase,
        id="milvus-lite",
        marks=pytest.mark.skipif(milvus_available() is not None, reason=str(milvus_available())),
    ),
]


def recorded_ids(records_file: Path) -> set[str]:
    db = sqlite3.connect(records_file)
    try:
        return {row[0] for row in db.execute("SELECT chunk_id FROM chunk_ids")}
    finally:
        db.close()


def wait_for_progress(
    records_file: Path, proc: subprocess.Popen, *, committed: int, since: float
) -> bool:
    """Block until the subprocess has committed ``committed`` sources and begun another.

    Only this run's record writes count (the WAL file changes on every record write), not a
    source left pending by the previous, killed run.
    """
    deadline = time.monotonic() + 120
    wal = records_file.with_name(records_file.name + "-wal")
    query = "SELECT SUM(status='done' AND written_at > ?), SUM(status='pending') FROM sources"
    while time.monotonic() < deadline and proc.poll() is None:
        if records_file.exists():
            try:
                db = sqlite3.connect(records_file, timeout=1)
                done, pending = db.execute(query, (since,)).fetchone()
                db.close()
                written = wal.exists() and wal.stat().st_mtime > since
                if written and (done or 0) >= committed and (pending or 0) > 0:
                    return True
            except sqlite3.Error:
                pass
        time.sleep(0.01)
    return False


def ingest_and_kill(
    config: Path, corpus: Path, records_file: Path, *, committed: int, jitter: float
) -> bool:
    """Run ``rag ingest`` in a subprocess; SIGKILL it after ``committed`` sources + ``jitter`` s.

    Returns whether it was killed (``False``: it finished first, which must then be a success).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    since = time.time()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rag.cli",
            "ingest",
            str(corpus),
            "--config",
            str(config),
            "--mode",
            "full",
            "--quiet",
            "--json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        if wait_for_progress(records_file, proc, committed=committed, since=since):
            time.sleep(jitter)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if not killed and proc.returncode != 0:
            raise AssertionError(proc.stderr.read().decode()[-2000:])
        return killed
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


@pytest.mark.parametrize("case_type", CASES)
def test_sigkill_at_random_points_then_resume_leaves_exactly_the_right_chunks(
    case_type, embedder, tmp_path
):
    case = case_type(tmp_path)
    corpus = write_corpus(tmp_path / "corpus", files=10)
    config = pipeline_yaml(tmp_path / "pipeline.yaml", store=case.yaml(), batch_size=2)
    rng = random.Random(f"{SEED}-{case.name}")
    killed = 0
    for attempt in range(KILLS):
        if attempt == 1:  # the first kill interrupts the first ingest, the others version 2
            change_many(corpus)
        # a random point: after k committed sources, a random moment into the next one
        committed, jitter = rng.randint(0, 6), rng.uniform(0, MAX_JITTER_S)
        was_killed = ingest_and_kill(
            config, corpus, case.records_file(), committed=committed, jitter=jitter
        )
        killed += was_killed
        print(
            f"{case.name} kill {attempt}: after {committed} sources + {jitter:.2f} s: "
            f"killed={was_killed}, {len(case.stored())} chunks stored"
        )
        # the invariant that makes resuming exact: nothing stored that is not recorded
        assert set(case.stored()) <= recorded_ids(case.records_file()), f"kill {attempt}"
    assert killed >= 2, "the runs finished before the kill points; use a larger corpus"
    store = case.open()
    report = run_ingest(make_pipeline(embedder, store), [corpus], mode="full", progress=False)
    if isinstance(case, MilvusCase):
        case.release(store)
    else:
        store.close()
    assert report.errors == []
    assert case.stored() == expected_chunks(corpus)
