"""Hostile input at the service's front doors (issue 20): deep JSON, non-finite numbers,
blank documents, booleans that are numbers, deep JSONL uploads, and chunks stored with
non-finite metadata before such metadata was refused. Each gets a named 4xx (or gRPC
``INVALID_ARGUMENT`` / an MCP tool error), never a 500, and answers stay valid JSON."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.serve._schemas import MAX_FILTER_NESTING
from tests.serve.conftest import API_KEY, build_app_file, free_port, running

AUTH = {"Authorization": f"Bearer {API_KEY}"}
DEEP = 20_000  # 40 kB of brackets: under the test server's 64 KiB body limit


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def assert_error(response: httpx.Response, status: int, *, names: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    fields = " ".join(f["field"] for f in error.get("fields", []))
    assert names in error["message"] or names in fields or names == error.get("param"), error
    return error


@pytest.fixture()
def http(base_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=120) as client:
        yield client


# -- REST -------------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize(
    "path", ["/v1/search", "/v1/ask", "/v1/documents", "/v1/chat/completions", "/v1/embed"]
)
def test_a_body_nested_20000_deep_is_a_422_before_any_parser_recurses(http, path):
    body = '{"query": "q", "filters": {"a": ' + nested(DEEP) + "}}"
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 422, names="body")
    assert (
        error["code"] == "nesting_too_deep" and "levels deep; the limit is 64" in error["message"]
    )


@pytest.mark.integration
def test_a_filter_nested_deeper_than_the_schema_allows_is_named(http):
    filters: dict[str, Any] = {"source": "a.md"}
    for _ in range(MAX_FILTER_NESTING):
        filters = {"$and": [filters]}
    response = http.post("/v1/search", json={"query": "q", "filters": filters})
    assert_error(response, 422, names="body.filters")
    assert "$and" in response.json()["error"]["message"]


@pytest.mark.integration
@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity"])
@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v1/search", '{"query": "q", "filters": {"score": {"$gt": %s}}}'),
        ("/v1/ask", '{"question": "q", "filters": {"score": %s}}'),
        ("/v1/documents", '{"documents": [{"id": "n.md", "text": "t", "metadata": {"s": %s}}]}'),
        (
            "/v1/chat/completions",
            '{"model": "m", "messages": [{"role": "user", "content": "q"}], "temperature": %s}',
        ),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(http, path, template, number):
    response = http.post(
        path, content=template % number, headers={"content-type": "application/json"}
    )
    openai_route = path == "/v1/chat/completions"  # OpenAI's own status for a bad parameter
    assert response.status_code == (400 if openai_route else 422), response.text
    error = response.json()["error"]
    field = error["fields"][0]["field"] if error["fields"] else error["param"]
    assert field.split(".")[-1] in ("filters", "metadata", "temperature", "s"), error


@pytest.mark.integration
@pytest.mark.parametrize("text", [" ", "\n\t  \n", "\u3000"])
def test_a_whitespace_only_document_is_a_422_naming_the_text(http, text):
    response = http.post("/v1/documents", json={"documents": [{"id": "w.md", "text": text}]})
    assert_error(response, 422, names="body.documents.0.text")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/ask", {"question": "q", "stream": 0}, "body.stream"),
        ("/v1/ask", {"question": "q", "stream": "true"}, "body.stream"),
        ("/v1/search", {"query": "q", "k": "5"}, "body.k"),
        ("/v1/search", {"query": "q", "k": True}, "body.k"),
        ("/v1/documents", {"documents": [], "replace": 1}, "body.replace"),
        ("/v1/embed", {"inputs": ["a"], "normalize": 1}, "body.normalize"),
    ],
)
def test_numbers_are_not_booleans_nor_texts_numbers(http, path, body, field):
    assert_error(http.post(path, json=body), 422, names=field)


@pytest.mark.integration
def test_a_whole_float_is_an_integer_as_json_schema_says(http):
    response = http.post("/v1/search", json={"query": "FAISS", "k": 2.0})
    assert response.status_code == 200 and len(response.json()["hits"]) == 2


@pytest.mark.integration
def test_a_deep_jsonl_upload_is_a_4xx_naming_the_file_and_nothing_is_written(http):
    before = http.get("/v1/stats").json()["chunks"]
    row = '{"text": "deep", "meta": ' + nested(DEEP) + "}\n"
    files = [("files", ("deep.jsonl", row.encode()))]
    error = assert_error(http.post("/v1/documents", files=files), 422, names="body.files")
    assert "deep.jsonl" in error["message"]
    assert http.get("/v1/stats").json()["chunks"] == before


# -- chunks stored with non-finite metadata (before it was refused) ---------------------------
@pytest.fixture(scope="module")
def tainted(tmp_path_factory, embedder, local_generator) -> Iterator[dict[str, Any]]:
    """A store whose one chunk holds ``score: Infinity`` and ``ratio: NaN`` in SQLite, served
    over REST (with MCP) and gRPC."""
    from rag.core.documents import Document

    folder = tmp_path_factory.mktemp("tainted") / "index"
    writer_file = build_app_file(folder, embedder, None)
    pipeline = writer_file.pipeline("ingest")
    pipeline.warm_up()
    splitter = pipeline.get_component("splitter")
    store = pipeline.get_component("writer").store
    chunks = splitter.split_document(
        Document(id="odd.md", text="The odd number is infinity itself.")
    )
    for chunk, vector in zip(chunks, embedder.embed_documents([c.text for c in chunks])):
        chunk.embedding = vector
    store.write(chunks, policy="upsert")
    store.flush()
    store.close()
    database = next(Path(folder).glob("*.sqlite"))
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT rowid, metadata FROM chunks").fetchall()
        for rowid, metadata in rows:
            data = json.loads(metadata)
            tampered = json.dumps({**data, "score": float("inf"), "ratio": float("nan")})
            db.execute("UPDATE chunks SET metadata = ? WHERE rowid = ?", (tampered, rowid))
    from rag.serve import GrpcServer, create_app

    app = create_app(build_app_file(folder, embedder, local_generator), api_keys=[API_KEY])
    mcp = pytest.importorskip("rag.serve.mcp")
    mcp.mount_mcp(app, host="127.0.0.1")
    grpc_server = GrpcServer(app.state.backend, api_keys=[API_KEY], port=free_port())
    grpc_server.start()
    try:
        with running(app) as url:
            yield {"url": url, "grpc": f"127.0.0.1:{grpc_server.port}"}
    finally:
        grpc_server.stop()


@pytest.mark.integration
def test_stored_non_finite_metadata_is_answered_as_null_by_rest(tainted):
    with httpx.Client(base_url=tainted["url"], headers=AUTH, timeout=120) as http:
        search = http.post("/v1/search", json={"query": "odd number", "k": 1})
        assert search.status_code == 200, search.text
        metadata = search.json()["hits"][0]["metadata"]
        assert metadata["score"] is None and metadata["ratio"] is None
        assert "Infinity" not in search.text and "NaN" not in search.text
        ask = http.post("/v1/ask", json={"question": "What is the odd number?"})
        assert ask.status_code == 200, ask.text
        assert ask.json()["contexts"][0]["metadata"]["score"] is None
        with http.stream(
            "POST", "/v1/ask", json={"question": "What is the odd number?", "stream": True}
        ) as streamed:
            events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
        final = json.loads(events[-1].removeprefix("data: "))  # strict JSON: no Infinity
        assert final["contexts"][0]["metadata"]["ratio"] is None


@pytest.mark.integration
def test_stored_non_finite_metadata_is_answered_by_grpc_and_mcp(tainted):
    grpc = pytest.importorskip("grpc")
    from rag.serve.proto import ragline_pb2 as pb
    from rag.serve.proto import ragline_pb2_grpc as pb_grpc

    metadata = (("authorization", f"Bearer {API_KEY}"),)
    with grpc.insecure_channel(tainted["grpc"]) as channel:
        stub = pb_grpc.RaglineStub(channel)
        found = stub.Search(pb.SearchRequest(query="odd number", k=1), metadata=metadata)
        assert found.hits[0].metadata.fields["score"].WhichOneof("kind") == "null_value"


@pytest.mark.integration
async def test_stored_non_finite_metadata_is_answered_by_mcp(tainted):
    pytest.importorskip("mcp")
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers=AUTH)
    client = Client(
        streamable_http_client(tainted["url"] + "/mcp", http_client=http), mode="legacy"
    )
    async with http, client:
        result = await client.call_tool("search", {"query": "odd number", "k": 1})
        assert not result.is_error, result.content
        hits = (result.structured_content or json.loads(result.content[0].text))["hits"]
        assert hits[0]["metadata"]["score"] is None
        refused = await client.call_tool(
            "search", {"query": "odd", "filters": {"score": {"$gt": float("inf")}}}
        )
        # JSON has no infinity: the client sends null, which the filter grammar refuses
        assert refused.is_error and "filter.score" in refused.content[0].text


# -- gRPC entry checks ------------------------------------------------------------------------
@pytest.mark.integration
def test_grpc_refuses_non_finite_metadata_and_filters_with_invalid_argument(tainted):
    grpc = pytest.importorskip("grpc")
    from rag.serve.proto import ragline_pb2 as pb
    from rag.serve.proto import ragline_pb2_grpc as pb_grpc

    metadata = (("authorization", f"Bearer {API_KEY}"),)
    with grpc.insecure_channel(tainted["grpc"]) as channel:
        stub = pb_grpc.RaglineStub(channel)
        document = pb.Document(id="inf.md", text="Infinite.")
        document.metadata.update({"score": float("inf")})
        with pytest.raises(grpc.RpcError) as caught:
            stub.Ingest(iter([pb.IngestRequest(document=document)]), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "documents[0].metadata" in caught.value.details()
        request = pb.SearchRequest(query="q")
        request.filters.update({"score": float("nan")})
        with pytest.raises(grpc.RpcError) as caught:
            stub.Search(request, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "filters" in caught.value.details()
        blank = pb.Document(id="blank.md", text="   ")
        with pytest.raises(grpc.RpcError) as caught:
            stub.Ingest(iter([pb.IngestRequest(document=blank)]), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "documents[0].text" in caught.value.details()
