"""A search issued while a source is being re-ingested sees the source's old chunks or its new
ones, never a mix, a partial set or an error (issue 20, "under load")."""

from __future__ import annotations

import os
import re
import threading
from typing import Any

import httpx
import pytest

from tests.serve.conftest import API_KEY, build_app_file, running

PARTS = 3
REINGESTS = 8
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def document(version: str) -> dict[str, Any]:
    paragraphs = [
        f"Version {version} of the live note, part {i}: zebra {version}{i} counts its stripes."
        for i in range(PARTS)
    ]
    return {"id": "live.md", "text": "\n\n".join(paragraphs)}


@pytest.mark.integration
def test_a_search_during_a_reingest_sees_one_whole_version(tmp_path, embedder):
    from rag.serve import create_app

    app = create_app(build_app_file(tmp_path / "index", embedder, None), api_keys=[API_KEY])
    seen: list[tuple[int, frozenset[str]]] = []
    problems: list[str] = []
    ingesting = threading.Event()
    with running(app) as url:
        first = httpx.post(
            f"{url}/v1/documents", json={"documents": [document("A")]}, headers=AUTH, timeout=120
        )
        assert first.status_code == 200
        chunks = first.json()["chunks_written"]
        assert chunks >= PARTS

        def reingest() -> None:
            ingesting.set()
            with httpx.Client(base_url=url, headers=AUTH, timeout=120) as http:
                for index in range(REINGESTS):
                    version = "B" if index % 2 == 0 else "A"
                    response = http.post("/v1/documents", json={"documents": [document(version)]})
                    if response.status_code != 200:
                        problems.append(f"ingest {index}: {response.status_code} {response.text}")

        writer = threading.Thread(target=reingest)
        writer.start()
        ingesting.wait(10)
        with httpx.Client(base_url=url, headers=AUTH, timeout=120) as http:
            during = 0
            for _ in range(400):  # bounded; stops once the writer is done
                response = http.post(
                    "/v1/search",
                    json={"query": "zebra stripes", "k": 20, "filters": {"source": "live.md"}},
                )
                if response.status_code != 200:
                    problems.append(f"search: {response.status_code} {response.text}")
                    continue
                hits = response.json()["hits"]
                versions = frozenset(
                    v for h in hits for v in re.findall(r"Version (\w)", h["text"])
                )
                seen.append((len(hits), versions))
                if writer.is_alive():
                    during += 1
                else:
                    break
        writer.join(timeout=300)
    assert not problems, problems
    assert during > 0  # some searches ran while the writer was re-ingesting
    mixed = [(count, versions) for count, versions in seen if count != chunks or len(versions) != 1]
    assert not mixed, f"searches saw partial or mixed versions: {mixed[:5]}"
    assert {next(iter(v)) for _, v in seen} <= {"A", "B"}


@pytest.mark.integration
def test_a_write_while_rag_ingest_holds_the_store_is_a_503_naming_the_holder(
    tmp_path, embedder, monkeypatch
):
    """The server takes the store's one-writer lock, the one ``rag ingest`` holds."""
    from rag.pipelines.records import writer_lock
    from rag.serve import create_app

    monkeypatch.setattr("rag.serve._backend.WRITE_LOCK_SECONDS", 0.5)
    app = create_app(build_app_file(tmp_path / "index", embedder, None), api_keys=[API_KEY])
    records = app.state.backend.writer.records.path
    with running(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=120) as http:
        with writer_lock(records):  # as a `rag ingest` in another process would
            response = http.post("/v1/documents", json={"documents": [document("A")]})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "store_locked"
            assert f"process {os.getpid()}" in response.json()["error"]["message"]
            assert response.headers["retry-after"] == "10"
        assert http.post("/v1/documents", json={"documents": [document("A")]}).status_code == 200
