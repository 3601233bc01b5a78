"""The gRPC API: a real server on 127.0.0.1 beside the REST app, driven by the generated client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

grpc = pytest.importorskip("grpc", reason="the gRPC API needs: pip install 'ragline[grpc]'")

from google.protobuf import json_format  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (  # noqa: E402
    ProtoReflectionDescriptorDatabase,
)

from rag.core.errors import ConfigError  # noqa: E402
from rag.pipelines.ingest import run_ingest  # noqa: E402
from rag.serve import API_KEYS_ENV, GrpcServer, create_app  # noqa: E402
from rag.serve._schemas import MAX_QUERY_CHARS  # noqa: E402
from rag.serve.proto import ragline_pb2 as pb  # noqa: E402
from rag.serve.proto import ragline_pb2_grpc as pb_grpc  # noqa: E402
from tests.serve.conftest import (  # noqa: E402
    API_KEY,
    CORPUS,
    OTHER_KEY,
    build_app_file,
    free_port,
    running,
)

LIMIT = 64 * 1024
AUTH = (("authorization", f"Bearer {API_KEY}"),)


def struct(data: dict[str, Any]) -> Any:
    message = pb.SearchRequest().filters
    message.update(data)
    return message


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder, local_generator) -> Iterator[dict[str, Any]]:
    """REST (uvicorn) and gRPC over one backend, on their own store of examples/corpus."""
    app_file = build_app_file(
        tmp_path_factory.mktemp("grpc-store") / "index", embedder, local_generator
    )
    report = run_ingest(app_file.pipeline("ingest"), [str(CORPUS)], progress=False)
    assert report.chunks_written > 0 and not report.errors
    app = create_app(app_file, api_keys=[API_KEY, OTHER_KEY], max_body_bytes=LIMIT)
    backend = app.state.backend
    server = GrpcServer(backend, api_keys=[API_KEY, OTHER_KEY], port=0, max_message_bytes=LIMIT)
    with running(app) as url, server:
        yield {"url": url, "target": f"127.0.0.1:{server.port}", "backend": backend}


@pytest.fixture()
def channel(served) -> Iterator[Any]:
    with grpc.insecure_channel(served["target"]) as chan:
        yield chan


@pytest.fixture()
def stub(channel) -> Any:
    return pb_grpc.RaglineStub(channel)


def status_of(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def ingest_stream(*messages: Any) -> Iterator[Any]:
    yield from messages


# -- the same answers as REST ---------------------------------------------------------------
@pytest.mark.integration
def test_search_returns_what_rest_returns(served, stub):
    rest = httpx.post(
        f"{served['url']}/v1/search",
        json={"query": "How does HNSW find neighbours?", "k": 3},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    ).json()
    reply = stub.Search(
        pb.SearchRequest(query="How does HNSW find neighbours?", k=3), metadata=AUTH
    )
    assert reply.query == rest["query"]
    assert [h.id for h in reply.hits] == [h["id"] for h in rest["hits"]]
    assert [h.score for h in reply.hits] == pytest.approx([h["score"] for h in rest["hits"]])
    assert [json_format.MessageToDict(h.metadata) for h in reply.hits] == [
        h["metadata"] for h in rest["hits"]
    ]
    assert len(reply.hits) == 3


@pytest.mark.integration
def test_search_applies_the_filter_grammar(served, stub):
    source = stub.Search(pb.SearchRequest(query="vector index"), metadata=AUTH).hits[0]
    wanted = json_format.MessageToDict(source.metadata)["source"]
    request = pb.SearchRequest(query="vector index", k=10, filters=struct({"source": wanted}))
    hits = stub.Search(request, metadata=AUTH).hits
    assert hits and {json_format.MessageToDict(h.metadata)["source"] for h in hits} == {wanted}


@pytest.mark.integration
def test_stats_match_rest(served, stub):
    rest = httpx.get(
        f"{served['url']}/v1/stats", headers={"Authorization": f"Bearer {API_KEY}"}
    ).json()
    reply = stub.Stats(pb.StatsRequest(), metadata=(("authorization", f"Bearer {OTHER_KEY}"),))
    assert (reply.chunks, reply.sources, reply.store, reply.dimension) == (
        rest["chunks"],
        rest["sources"],
        rest["store"],
        rest["dimension"],
    )


# -- keys -----------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer not-a-key-0123456789"),),
        (("authorization", f"Basic {API_KEY}"),),
        (("authorization", f"Bearer {API_KEY}x"),),
    ],
    ids=["no-key", "wrong-key", "wrong-scheme", "longer-key"],
)
def test_every_method_needs_a_key(stub, metadata):
    calls = [
        lambda: stub.Search(pb.SearchRequest(query="x"), metadata=metadata),
        lambda: stub.Stats(pb.StatsRequest(), metadata=metadata),
        lambda: list(stub.Ask(pb.AskRequest(question="x"), metadata=metadata)),
        lambda: stub.Ingest(
            ingest_stream(pb.IngestRequest(document=pb.Document(id="a", text="b"))),
            metadata=metadata,
        ),
    ]
    for call in calls:
        code, details = status_of(call)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer <key>" in details and API_KEYS_ENV in details


@pytest.mark.integration
def test_health_and_reflection_answer_without_a_key(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "ragline.v1.Ragline"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    database = ProtoReflectionDescriptorDatabase(channel)
    assert {"ragline.v1.Ragline", "grpc.health.v1.Health"} <= set(database.get_services())
    from google.protobuf.descriptor_pool import DescriptorPool

    service = DescriptorPool(database).FindServiceByName("ragline.v1.Ragline")
    assert sorted(m.name for m in service.methods) == ["Ask", "Ingest", "Search", "Stats"]
    assert service.methods_by_name["Ask"].server_streaming
    assert service.methods_by_name["Ingest"].client_streaming


# -- streaming ------------------------------------------------------------------------------
@pytest.mark.integration
def test_ask_streams_tokens_then_one_answer_with_citations(stub):
    events = list(
        stub.Ask(pb.AskRequest(question="What does FAISS store?", k=2), metadata=AUTH, timeout=120)
    )
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "answer" and kinds.count("answer") == 1
    assert kinds[:-1] and set(kinds[:-1]) == {"token"}
    answer = events[-1].answer
    assert "".join(e.token.text for e in events[:-1]) == answer.answer
    assert answer.question == "What does FAISS store?"
    assert len(answer.contexts) == 2 and answer.answer.strip()
    assert {c.id for c in answer.citations} <= {c.id for c in answer.contexts}
    assert answer.timings
    assert answer.answer_style == "evidence"  # as REST: the style, and where a copy came from
    if answer.grounded:
        span = answer.spans[0]
        context = answer.contexts[span.index - 1]
        assert span.id == context.id and context.text[span.start : span.end].split()


@pytest.mark.integration
def test_ask_answers_in_the_style_the_request_names(stub):
    request = pb.AskRequest(question="What does FAISS store?", k=2, answer_style="extractive")
    events = list(stub.Ask(request, metadata=AUTH, timeout=120))
    assert events[-1].answer.answer_style == "extractive" and events[-1].answer.answer.strip()
    bad = pb.AskRequest(question="What does FAISS store?", answer_style="extractiv")
    code, details = status_of(lambda: list(stub.Ask(bad, metadata=AUTH)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("answer_style:")
    assert "Did you mean 'extractive'?" in details


def endless(backend: Any, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make ``backend.stream`` yield the model's first token, then filler forever.

    Such a stream can only end by being closed, so the returned event (set when the generator
    is closed) proves that the server closed it.
    """
    closed = threading.Event()
    real = backend.stream

    def spied(question: str, **options: Any) -> Iterator[Any]:
        inner = real(question, **options)

        def pieces() -> Iterator[Any]:
            try:
                yield next(inner)
                while True:
                    time.sleep(0.01)
                    yield " ."
            finally:
                inner.close()
                closed.set()

        return pieces()

    monkeypatch.setattr(backend, "stream", spied)
    return closed


def lock_is_free(backend: Any) -> bool:
    if backend.lock.acquire(timeout=30):
        backend.lock.release()
        return True
    return False


@pytest.mark.integration
def test_a_cancelled_stream_closes_the_generator_and_frees_the_model(served, stub, monkeypatch):
    closed = endless(served["backend"], monkeypatch)
    call = stub.Ask(pb.AskRequest(question="What is BM25?"), metadata=AUTH, timeout=120)
    received = [next(call) for _ in range(5)]
    assert all(e.WhichOneof("event") == "token" for e in received)
    call.cancel()
    assert closed.wait(30), "the generator was not closed after the client cancelled"
    assert lock_is_free(served["backend"])
    monkeypatch.undo()
    events = list(stub.Ask(pb.AskRequest(question="What is BM25?"), metadata=AUTH, timeout=120))
    assert events[-1].WhichOneof("event") == "answer"


@pytest.mark.integration
def test_a_deadline_ends_the_stream_and_frees_the_model(served, stub, monkeypatch):
    closed = endless(served["backend"], monkeypatch)
    call = stub.Ask(pb.AskRequest(question="What is BM25?"), metadata=AUTH, timeout=3)
    tokens = 0
    with pytest.raises(grpc.RpcError) as caught:
        for _ in call:
            tokens += 1
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert tokens > 0
    assert closed.wait(30), "the generator was not closed when the deadline passed"
    assert lock_is_free(served["backend"])


@pytest.mark.integration
def test_ingest_streams_documents_and_search_finds_them(served, stub):
    before = stub.Stats(pb.StatsRequest(), metadata=AUTH).chunks
    documents = [
        pb.Document(
            id="grpc/okapi.md",
            text="Okapis are forest giraffids of the Congo with zebra-striped legs.",
            metadata=struct({"year": 2024, "tags": ["animal"]}),
        ),
        pb.Document(id="grpc/quokka.md", text="Quokkas are small smiling marsupials of Rottnest."),
    ]
    messages = [pb.IngestRequest(options=pb.IngestOptions(replace=True))]
    messages += [pb.IngestRequest(document=d) for d in documents]
    report = stub.Ingest(iter(messages), metadata=AUTH, timeout=120)
    assert report.sources == 2 and report.chunks_written >= 2 and not report.errors
    assert stub.Stats(pb.StatsRequest(), metadata=AUTH).chunks == before + report.chunks_written
    request = pb.SearchRequest(query="forest giraffe", k=1, filters=struct({"year": 2024}))
    hit = stub.Search(request, metadata=AUTH).hits[0]
    metadata = json_format.MessageToDict(hit.metadata)
    assert metadata["source"] == "grpc/okapi.md" and metadata["tags"] == ["animal"]
    stored = served["backend"].store.get([hit.id])[0]
    assert stored.metadata["year"] == 2024 and isinstance(stored.metadata["year"], int)
    again = stub.Ingest(iter(messages), metadata=AUTH, timeout=120)  # replace: no duplicates
    assert stub.Stats(pb.StatsRequest(), metadata=AUTH).chunks == before + again.chunks_written


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.SearchRequest(query=""), "query:"),
        (pb.SearchRequest(query="x" * (MAX_QUERY_CHARS + 1)), "query:"),
        (pb.SearchRequest(query="x", k=0), "k:"),
        (pb.SearchRequest(query="x", k=101), "k:"),
        (pb.SearchRequest(query="x", filters=struct({"year": {"$near": 3}})), "filters:"),
    ],
    ids=["empty-query", "long-query", "k-zero", "k-over", "bad-filter"],
)
def test_invalid_search_requests_name_the_field(stub, request_, field):
    code, details = status_of(lambda: stub.Search(request_, metadata=AUTH))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field), details


@pytest.mark.integration
def test_invalid_ask_and_ingest_requests_name_the_field(stub):
    code, details = status_of(lambda: list(stub.Ask(pb.AskRequest(question=""), metadata=AUTH)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("question:")
    cases = [
        ([pb.IngestRequest(document=pb.Document(id="a", text=""))], "documents[0].text:"),
        (
            [
                pb.IngestRequest(document=pb.Document(id="a", text="b")),
                pb.IngestRequest(document=pb.Document(id="", text="b")),
            ],
            "documents[1].id:",
        ),
        (
            [
                pb.IngestRequest(document=pb.Document(id="a", text="b")),
                pb.IngestRequest(options=pb.IngestOptions(replace=False)),
            ],
            "options:",
        ),
        ([pb.IngestRequest()], "documents[0]:"),
        ([], "documents:"),
    ]
    for messages, field in cases:
        code, details = status_of(lambda m=messages: stub.Ingest(iter(m), metadata=AUTH))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.startswith(field), details


@pytest.mark.integration
def test_bytes_that_are_not_a_message_are_invalid_argument(channel):
    raw = channel.unary_unary("/ragline.v1.Ragline/Search")  # no serializer: bytes on the wire
    code, details = status_of(lambda: raw(b"\x0a\xff\xff\xff", metadata=AUTH))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("request: not a valid ragline.v1.SearchRequest message")


@pytest.mark.integration
def test_oversize_messages_and_streams_are_resource_exhausted(served, stub):
    code, _ = status_of(lambda: stub.Search(pb.SearchRequest(query="x" * LIMIT), metadata=AUTH))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    before = stub.Stats(pb.StatsRequest(), metadata=AUTH).chunks
    # each message fits the limit; together they pass it, and nothing is written
    messages = [
        pb.IngestRequest(document=pb.Document(id=f"big-{i}", text="word " * 4000)) for i in range(4)
    ]
    code, details = status_of(lambda: stub.Ingest(iter(messages), metadata=AUTH))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"limit of {LIMIT} bytes" in details
    assert stub.Stats(pb.StatsRequest(), metadata=AUTH).chunks == before


@pytest.mark.unit
def test_a_port_in_use_is_a_configuration_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = GrpcServer(object(), api_keys=[API_KEY], port=taken.getsockname()[1])  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="choose another --grpc-port"):
            server.start()


@pytest.mark.unit
def test_an_empty_key_list_is_refused():
    with pytest.raises(ConfigError, match="without API keys"):
        GrpcServer(object(), api_keys=[])  # type: ignore[arg-type]


# -- rag serve --grpc-port ------------------------------------------------------------------
def example_config(tmp_path: Path) -> Path:
    config = tmp_path / "ingest.yaml"
    examples = Path(__file__).resolve().parents[2] / "examples"
    config.write_text(
        (examples / "ingest.yaml")
        .read_text()
        .replace("${RAG_INDEX_DIR:-.rag/example-index}", str(tmp_path / "index"))
    )
    return config


@pytest.mark.unit
def test_grpc_port_without_the_grpc_extra_names_the_install_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rag.cli import app

    monkeypatch.setitem(sys.modules, "grpc", None)  # as if grpcio were not installed
    monkeypatch.delitem(sys.modules, "rag.serve._grpc", raising=False)
    args = ["serve", "--config", str(example_config(tmp_path)), "--grpc-port", "0"]
    result = CliRunner().invoke(app, args, env={API_KEYS_ENV: API_KEY})
    assert result.exit_code == 1
    assert "pip install 'ragline[grpc]'" in result.output
    assert not (tmp_path / "index").exists()  # refused before any model or store was opened


@pytest.mark.integration
@pytest.mark.slow
def test_rag_serve_grpc_port_serves_both_apis(tmp_path):
    config = example_config(tmp_path)
    port, grpc_port = free_port(), free_port()
    command = [sys.executable, "-m", "rag.cli", "serve", "--config", str(config)]
    command += ["--port", str(port), "--grpc-port", str(grpc_port)]
    env = {**os.environ, API_KEYS_ENV: API_KEY, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as chan:
            health = health_pb2_grpc.HealthStub(chan)
            request = health_pb2.HealthCheckRequest(service="ragline.v1.Ragline")
            try:
                reply = health.Check(request, timeout=90, wait_for_ready=True)
            except grpc.RpcError:
                process.terminate()
                pytest.fail(process.communicate(timeout=20)[1])
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = pb_grpc.RaglineStub(chan)
            code, _ = status_of(lambda: stub.Stats(pb.StatsRequest()))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            stats = stub.Stats(pb.StatsRequest(), metadata=AUTH)
            assert (stats.chunks, stats.store, stats.HasField("dimension")) == (
                0,
                "store.faiss",
                False,
            )
        deadline = time.monotonic() + 60
        while True:  # uvicorn starts right after the gRPC server
            try:
                rest = httpx.get(
                    f"http://127.0.0.1:{port}/v1/stats",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the REST API did not come up"
                time.sleep(0.2)
        assert rest.json()["chunks"] == 0
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as chan:
            stopped = ingest_through_a_sigterm(pb_grpc.RaglineStub(chan), process)
        assert stopped.sources == 2 and stopped.chunks_written == 2 and not stopped.errors
        process.wait(timeout=30)
    finally:
        process.terminate()
        process.wait(timeout=20)
    # The call finished before the store was closed: its chunks were saved with the index.
    from rag.connectors.stores.faiss import FaissStore

    store = FaissStore(path=str(tmp_path / "index"))
    store.warm_up()
    assert store.count() == 2


def ingest_through_a_sigterm(stub: Any, process: subprocess.Popen[str]) -> Any:
    """An Ingest stream that sends SIGTERM to the server between its two documents: a graceful
    stop lets the open call finish (and the store close after it) rather than cut it."""

    def messages() -> Iterator[Any]:
        yield pb.IngestRequest(document=pb.Document(id="okapi.md", text="Okapis are giraffids."))
        time.sleep(0.5)  # the server has the stream open
        process.terminate()
        time.sleep(1.0)  # the server is shutting down
        yield pb.IngestRequest(document=pb.Document(id="quokka.md", text="Quokkas hop."))

    return stub.Ingest(messages(), metadata=AUTH, timeout=60)
