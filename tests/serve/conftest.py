"""Real uvicorn servers on 127.0.0.1 for the API tests, over a FAISS store in a tmp dir.

The apps are built with :func:`rag.serve.create_app` from a pipeline file assembled in Python
around the session's embedder and local generator, so no model loads twice.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.chains.rag import RagChain
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.core import Pipeline, PipelineFile
from rag.pipelines.ingest import run_ingest
from rag.pipelines.loaders import FileLoader
from rag.pipelines.splitters import RecursiveSplitter
from rag.pipelines.writer import StoreWriter

API_KEY = "test-key-0123456789abcdef"
OTHER_KEY = "second-key-fedcba9876543210"
CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"


def build_app_file(store_path: Path, embedder: Any, generator: Any | None) -> PipelineFile:
    """ingest [loader, splitter, embedder, writer], search [retriever], ask [chain]."""
    store = FaissStore(path=str(store_path))
    retriever = DenseRetriever(embedder=embedder, store=store, k=3)
    ingest = Pipeline("ingest")
    ingest.add_component("loader", FileLoader())
    ingest.add_component("splitter", RecursiveSplitter(chunk_size=120, chunk_overlap=0))
    ingest.add_component("embedder", embedder)
    ingest.add_component("writer", StoreWriter(store=store))
    search = Pipeline("search")
    search.add_component("retriever", retriever)
    pipelines = {"ingest": ingest, "search": search}
    if generator is not None:
        ask = Pipeline("ask")
        ask.add_component("chain", RagChain(retriever=retriever, generator=generator, k=2))
        pipelines["ask"] = ask
    return PipelineFile(pipelines=pipelines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yield its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An allowed root with documents, a symlink that leads out of it, and an outside dir."""
    base = tmp_path_factory.mktemp("roots")
    root, outside = base / "allowed", base / "outside"
    (root / "docs").mkdir(parents=True)
    outside.mkdir()
    (root / "docs" / "zebra.md").write_text(
        "# Zebras\n\nZebras are African equines with black-and-white striped coats.\n"
    )
    (outside / "secret.md").write_text("# Secret\n\nThe launch code is 0000.\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return {"root": root, "outside": outside}


@pytest.fixture(scope="session")
def qa_app_file(tmp_path_factory, embedder, local_generator) -> PipelineFile:
    """The served pipeline file, with examples/corpus ingested."""
    corpus = tmp_path_factory.mktemp("corpus")
    shutil.copytree(CORPUS, corpus, dirs_exist_ok=True)
    app_file = build_app_file(tmp_path_factory.mktemp("store") / "index", embedder, local_generator)
    report = run_ingest(app_file.pipeline("ingest"), [str(corpus)], progress=False)
    assert report.chunks_written > 0 and not report.errors
    return app_file


@pytest.fixture(scope="session")
def base_url(qa_app_file, roots) -> Iterator[str]:
    """The main server: two keys, one allowed root, a 64 KiB body limit."""
    from rag.serve import create_app

    app = create_app(
        qa_app_file,
        api_keys=[API_KEY, OTHER_KEY],
        allowed_roots=[roots["root"]],
        max_body_bytes=64 * 1024,
    )
    with running(app) as url:
        yield url


@pytest.fixture()
def client(base_url) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120
    ) as http:
        yield http
