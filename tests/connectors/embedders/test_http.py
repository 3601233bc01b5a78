"""embedder.http: OpenAI-compatible and TEI-style remote embeddings.

The wire behaviour (batching, concurrency, retries, malformed answers) is tested through
``httpx.MockTransport``; the vectors are tested against a real server on loopback: ragline's own
``rag serve`` app (uvicorn on 127.0.0.1) exposing ``/v1/embeddings`` and ``/v1/embed`` with the
bundled all-MiniLM-L6-v2, compared with the local embedder.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from rag.connectors.embedders.http import HttpEmbedder
from rag.connectors.stores.faiss import FaissStore
from rag.core import Pipeline
from rag.core.errors import ConfigError, EmbeddingError, MissingEnvVarError
from rag.core.registry import default_registry
from rag.pipelines.ingest import run_ingest
from rag.pipelines.loaders import FileLoader
from rag.pipelines.splitters import RecursiveSplitter
from rag.pipelines.writer import StoreWriter
from tests.serve.conftest import build_app_file, running

API_KEY = "embed-test-key-0123456789"
BASE = "http://embed.test/v1"
TEXTS = [
    "FAISS",
    "The cat sat on the mat.",
    "boundary layer transition on a swept wing at supersonic speed " * 4,
    "word " * 400,  # longer than the model's 256 tokens: truncated the same way on both sides
    "Stock markets fell sharply.",
    "an experimental study of heat transfer in a laminar flow over a flat plate",
    "Zebras are African equines with black-and-white striped coats.",
]


def _vector(text: str, dim: int = 4) -> list[float]:
    """A deterministic fake vector per text (mock servers only)."""
    seed = sum(text.encode()) % 1000
    return [float(seed + i) for i in range(dim)]


class OpenAIHandler:
    """A mock /embeddings endpoint: records requests; ``fail`` maps request number -> response."""

    def __init__(self, *, dim: int = 4, fail=None, shuffle: bool = False, encoding="float"):
        self.dim, self.fail, self.shuffle, self.encoding = dim, fail or {}, shuffle, encoding
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(json.loads(request.content))
            number = len(self.requests)
        if number in self.fail:
            return self.fail[number]
        body = self.requests[number - 1]
        data = []
        for i, text in enumerate(body["input"]):
            vector = _vector(text, self.dim)
            if self.encoding == "base64":
                vector = base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        if self.shuffle:
            data.reverse()
        return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"]})


def _embedder(handler, **kwargs) -> HttpEmbedder:
    options = {"base_url": BASE, "model": "m", "backoff": 0.0, "normalize": False}
    return HttpEmbedder(**{**options, **kwargs}, transport=httpx.MockTransport(handler))


# -- configuration -------------------------------------------------------------------------------
@pytest.mark.unit
def test_round_trip_keeps_the_key_as_a_reference():
    embedder = HttpEmbedder(
        base_url="http://127.0.0.1:8080/", api="tei", api_key="${TEI_TOKEN}", batch_size=8
    )
    data = embedder.to_dict()
    assert data["type"] == "embedder.http"
    assert data["init_parameters"]["api_key"] == "${TEI_TOKEN}"
    assert "transport" not in data["init_parameters"]
    assert embedder.url == "http://127.0.0.1:8080/embed"
    again = default_registry.resolve("embedder.http").from_dict(data)
    assert again == embedder and again.to_dict() == data


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"api": "cohere"}, "api"),
        ({"api": "openai", "model": None}, "model"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"dimension": 0}, "dimension"),
        ({"base_url": "127.0.0.1:8080"}, "base_url"),
        ({"api_key": "sk-live-abcdef0123456789"}, "api_key"),
        ({"max_retries": 11}, "max_retries"),
    ],
)
def test_bad_configuration_names_the_field(kwargs, field):
    options = {"base_url": BASE, "model": "m", **kwargs}
    with pytest.raises(ConfigError) as caught:
        HttpEmbedder(**options)
    assert caught.value.field == field


@pytest.mark.unit
def test_missing_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("RAGLINE_TEST_NO_SUCH_KEY", raising=False)
    embedder = HttpEmbedder(base_url=BASE, model="m", api_key="${RAGLINE_TEST_NO_SUCH_KEY}")
    with pytest.raises(MissingEnvVarError, match="RAGLINE_TEST_NO_SUCH_KEY"):
        embedder.warm_up()


# -- batching, order, concurrency ----------------------------------------------------------------
@pytest.mark.unit
def test_batches_keep_input_order_even_when_the_server_reorders():
    handler = OpenAIHandler(shuffle=True)
    embedder = _embedder(handler, batch_size=3, max_concurrency=2)
    texts = [f"text number {i}" for i in range(8)]
    vectors = embedder.embed_documents(texts)
    assert [len(r["input"]) for r in handler.requests] == [3, 3, 2]
    assert sorted(t for r in handler.requests for t in r["input"]) == sorted(texts)
    assert np.array_equal(vectors, np.array([_vector(t) for t in texts], dtype=np.float32))
    assert all(r["model"] == "m" and r["encoding_format"] == "float" for r in handler.requests)


@pytest.mark.unit
def test_base64_embeddings_are_decoded():
    embedder = _embedder(OpenAIHandler(encoding="base64"))
    vectors = embedder.embed_documents(["a", "bb"])
    assert np.array_equal(vectors, np.array([_vector("a"), _vector("bb")], dtype=np.float32))


@pytest.mark.unit
def test_requests_in_flight_never_exceed_max_concurrency():
    limit = 3
    inner = OpenAIHandler()
    in_flight, peak, arrived = [0], [0], [0]
    lock = threading.Lock()
    # The first ``limit`` requests wait for each other: they can only all pass the barrier if
    # they really run at the same time.
    barrier = threading.Barrier(limit, timeout=30)

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            arrived[0] += 1
            first_wave = arrived[0] <= limit
        try:
            if first_wave:
                barrier.wait()
            return inner(request)
        finally:
            with lock:
                in_flight[0] -= 1

    embedder = _embedder(handler, batch_size=1, max_concurrency=limit)
    vectors = embedder.embed_documents([f"t{i}" for i in range(12)])
    assert vectors.shape == (12, 4)
    assert peak[0] == limit and len(inner.requests) == 12


@pytest.mark.unit
def test_vectors_are_normalized_when_asked():
    embedder = _embedder(OpenAIHandler(), normalize=True)
    vectors = embedder.embed_documents(["a", "b"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


@pytest.mark.unit
def test_tei_format_and_prefixes():
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=[_vector(t) for t in seen[-1]["inputs"]])

    embedder = _embedder(
        handler, api="tei", model=None, query_prefix="query: ", document_prefix="passage: "
    )
    embedder.embed_documents(["x"])
    embedder.embed_query("y")
    assert seen == [
        {"inputs": ["passage: x"], "normalize": False, "truncate": True},
        {"inputs": ["query: y"], "normalize": False, "truncate": True},
    ]


@pytest.mark.unit
def test_cache_avoids_repeated_requests(tmp_path):
    handler = OpenAIHandler()
    first = _embedder(handler, cache_dir=str(tmp_path)).embed_documents(["a", "b"])
    again = _embedder(handler, cache_dir=str(tmp_path))
    assert np.array_equal(again.embed_documents(["b", "a", "c"])[:2], first[::-1])
    assert [r["input"] for r in handler.requests] == [["a", "b"], ["c"]]
    assert again.cache_hits == 2


# -- retries -------------------------------------------------------------------------------------
@pytest.mark.unit
def test_429_and_5xx_are_retried_then_succeed():
    handler = OpenAIHandler(
        fail={
            1: httpx.Response(429, json={"error": {"message": "slow down"}}),
            2: httpx.Response(503, text="overloaded"),
        }
    )
    vectors = _embedder(handler, max_retries=2).embed_documents(["a"])
    assert len(handler.requests) == 3
    assert np.array_equal(vectors[0], np.asarray(_vector("a"), dtype=np.float32))


@pytest.mark.unit
def test_retries_are_bounded_and_the_error_names_url_and_status():
    handler = OpenAIHandler(fail={n: httpx.Response(502, text="bad gateway") for n in range(1, 9)})
    with pytest.raises(EmbeddingError) as caught:
        _embedder(handler, max_retries=2).embed_documents(["a"])
    message = str(caught.value)
    assert f"{BASE}/embeddings returned HTTP 502" in message and "3 attempt(s)" in message
    assert len(handler.requests) == 3


@pytest.mark.unit
def test_client_errors_are_not_retried():
    handler = OpenAIHandler(
        fail={1: httpx.Response(401, json={"error": {"message": "invalid api key"}})}
    )
    with pytest.raises(EmbeddingError, match=r"/embeddings returned HTTP 401: invalid api key"):
        _embedder(handler, max_retries=3).embed_documents(["a"])
    assert len(handler.requests) == 1


@pytest.mark.unit
def test_timeouts_are_retried():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"data": [{"embedding": [1.0, 0.0], "index": 0}]})

    vectors = _embedder(handler, max_retries=1, timeout=0.5).embed_documents(["a"])
    assert len(calls) == 2 and vectors.tolist() == [[1.0, 0.0]]


# -- malformed answers ---------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, text="<html>gateway</html>"), "not JSON"),
        (httpx.Response(200, json={"vectors": []}), 'not an object with a "data" list'),
        (httpx.Response(200, json={"data": [{"embedding": [1.0, 2.0], "index": 0}]}), "1 vector"),
        (
            httpx.Response(
                200, json={"data": [{"embedding": [1, 2], "index": 0}, {"embedding": [1]}]}
            ),
            "lists of numbers of one length",
        ),
        (
            httpx.Response(
                200,
                json={
                    "data": [{"embedding": [1, 2], "index": 0}, {"embedding": [1, 2], "index": 0}]
                },
            ),
            "indices",
        ),
        (
            httpx.Response(
                200,
                json={"data": [{"embedding": ["x", 2], "index": i} for i in range(2)]},
            ),
            "lists of numbers",
        ),
    ],
)
def test_malformed_answers_name_the_url(response, message):
    handler = OpenAIHandler(fail={1: response})
    with pytest.raises(EmbeddingError, match=message) as caught:
        _embedder(handler).embed_documents(["a", "b"])
    assert f"{BASE}/embeddings" in str(caught.value)


@pytest.mark.unit
def test_wrong_dimension_is_refused():
    handler = OpenAIHandler(dim=3)
    with pytest.raises(EmbeddingError, match=r"dimension 3, expected 4 \(the configured"):
        _embedder(handler, dimension=4).embed_documents(["a"])


@pytest.mark.unit
def test_a_batch_of_another_dimension_fails_the_whole_call():
    odd = httpx.Response(200, json={"data": [{"embedding": [1.0, 2.0], "index": 0}]})
    handler = OpenAIHandler(fail={3: odd})
    embedder = _embedder(handler, batch_size=1, max_concurrency=1)
    with pytest.raises(EmbeddingError, match="dimension 2, expected 4"):
        embedder.embed_documents(["a", "b", "c", "d"])
    assert embedder.dimension == 4


@pytest.mark.unit
def test_non_finite_values_are_refused():
    bad = httpx.Response(200, content=b'{"data": [{"embedding": [NaN, 1.0], "index": 0}]}')
    with pytest.raises(EmbeddingError, match="NaN"):
        _embedder(OpenAIHandler(fail={1: bad})).embed_documents(["a"])


# -- the Open Inference Protocol (KServe v2) -----------------------------------------------------
class KServeHandler:
    """A mock ``/v2/models/{name}/infer``: records requests, answers ``[n, dim]`` FP32."""

    def __init__(self, *, dim: int = 4, outputs=None, nested: bool = False):
        self.dim, self.outputs, self.nested = dim, outputs, nested
        self.requests: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((str(request.url), body))
        texts = body["inputs"][0]["data"]
        rows = [_vector(t, self.dim) for t in texts]
        data = rows if self.nested else [x for row in rows for x in row]
        tensor = {"name": "embedding", "datatype": "FP32", "shape": [len(texts), self.dim]}
        outputs = self.outputs(texts) if self.outputs else [{**tensor, "data": data}]
        body = json.dumps({"model_name": "m", "outputs": outputs})  # NaN allowed: a bad server
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})


def _kserve(handler, **kwargs) -> HttpEmbedder:
    options = {"base_url": "http://triton.test:8000", "api": "kserve", "model": "e5 small"}
    options |= {"backoff": 0.0, "normalize": False}
    return HttpEmbedder(**{**options, **kwargs}, transport=httpx.MockTransport(handler))


@pytest.mark.unit
def test_kserve_requests_are_v2_infer_calls_in_batches():
    handler = KServeHandler()
    embedder = _kserve(handler, batch_size=3, max_concurrency=1, input_name="input_text")
    texts = [f"text {i}" for i in range(7)]
    vectors = embedder.embed_documents(texts)
    assert np.array_equal(vectors, np.array([_vector(t) for t in texts], dtype=np.float32))
    urls = {url for url, _ in handler.requests}
    assert urls == {"http://triton.test:8000/v2/models/e5%20small/infer"}
    bodies = [body for _, body in handler.requests]
    assert [b["inputs"][0]["shape"] for b in bodies] == [[3], [3], [1]]
    assert bodies[0] == {
        "inputs": [{"name": "input_text", "shape": [3], "datatype": "BYTES", "data": texts[:3]}]
    }
    assert embedder.dimension == 4


@pytest.mark.unit
def test_kserve_output_is_chosen_by_name_and_may_come_nested():
    def outputs(texts):
        n = len(texts)
        return [
            {"name": "tokens", "datatype": "INT64", "shape": [n, 2], "data": [1, 2] * n},
            {
                "name": "sentence_embedding",
                "datatype": "FP64",
                "shape": [n, 4],
                "data": [_vector(t) for t in texts],  # nested rows, as some servers send
            },
        ]

    named = _kserve(KServeHandler(outputs=outputs), output_name="sentence_embedding")
    assert np.array_equal(named.embed_documents(["a", "b"]), np.array([_vector("a"), _vector("b")]))
    assert named._body(["a"])["outputs"] == [{"name": "sentence_embedding"}]
    unnamed = _kserve(KServeHandler(outputs=outputs))
    with pytest.raises(
        EmbeddingError, match=r"2 outputs \['tokens', 'sentence_embedding'\]; set output_name"
    ):
        unnamed.embed_documents(["a"])
    wrong = _kserve(KServeHandler(outputs=outputs), output_name="pooled")
    with pytest.raises(
        EmbeddingError, match=r"no output named 'pooled'.*'tokens', 'sentence_embedding'"
    ):
        wrong.embed_documents(["a"])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"datatype": "BYTES"}, "datatype 'BYTES'; vectors must be one of FP16, FP32, FP64"),
        ({"shape": [2]}, r"shape \[2\], not \[texts, dimension\]"),
        ({"shape": [3, 4]}, r"3 vector\(s\) for 2 text\(s\)"),
        ({"data": [0.5] * 7}, r"7 numbers for an output of shape \[2, 4\]"),
        ({"data": ["x"] * 8}, "not a list of numbers"),
        ({"data": [float("nan")] * 8}, "NaN or infinite"),
    ],
)
def test_kserve_malformed_outputs_name_the_url(tensor, message):
    def outputs(texts):
        base = {"name": "embedding", "datatype": "FP32", "shape": [2, 4], "data": [0.5] * 8}
        return [{**base, **tensor}]

    embedder = _kserve(KServeHandler(outputs=outputs))
    with pytest.raises(EmbeddingError, match=message) as caught:
        embedder.embed_documents(["a", "b"])
    assert "http://triton.test:8000/v2/models/e5%20small/infer" in str(caught.value)


@pytest.mark.unit
def test_kserve_retries_and_reads_the_v2_error_shape():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(503, json={"error": "model is loading"})
        if len(calls) == 2:
            return httpx.Response(400, json={"error": "inputs[0].datatype: must be BYTES"})
        raise AssertionError("a 400 must not be retried")

    embedder = _kserve(handler, max_retries=2)
    with pytest.raises(EmbeddingError, match="HTTP 400.*inputs\\[0\\].datatype: must be BYTES"):
        embedder.embed_documents(["a"])
    assert len(calls) == 2


@pytest.mark.unit
def test_kserve_needs_a_model_name():
    with pytest.raises(ConfigError, match="api 'kserve' needs the name") as caught:
        HttpEmbedder(base_url="http://127.0.0.1:8000", api="kserve")
    assert caught.value.field == "model"
    embedder = HttpEmbedder(base_url="http://127.0.0.1:8000", api="kserve", model="m")
    assert embedder.to_dict()["init_parameters"]["input_name"] == "text"
    assert HttpEmbedder.from_dict(embedder.to_dict()) == embedder


# -- a real server on loopback -------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    """``rag serve``'s app over the session's local embedder, with an API key."""
    from rag.serve import create_app

    app_file = build_app_file(tmp_path_factory.mktemp("served") / "index", embedder, None)
    with running(create_app(app_file, api_keys=[API_KEY])) as url:
        yield url


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv("RAGLINE_TEST_EMBED_KEY", API_KEY)
    return "${RAGLINE_TEST_EMBED_KEY}"


@pytest.mark.integration
@pytest.mark.parametrize(("api", "root"), [("openai", "/v1"), ("tei", "/v1"), ("kserve", "")])
def test_remote_vectors_equal_the_local_embedder(server, embedder, key, api, root):
    remote = HttpEmbedder(
        base_url=f"{server}{root}",
        api=api,
        model="all-MiniLM-L6-v2",
        api_key=key,
        batch_size=2,
        max_concurrency=2,
    )
    try:
        vectors = remote.embed_documents(TEXTS)
        query = remote.embed_query("Where did the cat sit?")
        dimension = remote.dimension
    finally:
        remote.close()
    local = embedder.embed_documents(TEXTS)
    assert vectors.shape == local.shape == (len(TEXTS), 384) and dimension == 384
    cosines = np.sum(vectors * local, axis=1)
    assert cosines.min() >= 1 - 1e-5, cosines
    assert float(query @ embedder.embed_query("Where did the cat sit?")) >= 1 - 1e-5


@pytest.mark.integration
def test_remote_without_a_key_is_refused_once(server):
    remote = HttpEmbedder(base_url=f"{server}/v1", model="m", max_retries=3, backoff=0.0)
    with pytest.raises(EmbeddingError, match=rf"{server}/v1/embeddings returned HTTP 401"):
        remote.embed_documents(["a"])


def _ingest_pipeline(store_path: Path, embedder) -> Pipeline:
    pipeline = Pipeline("ingest")
    pipeline.add_component("loader", FileLoader())
    pipeline.add_component("splitter", RecursiveSplitter(chunk_size=40, chunk_overlap=0))
    pipeline.add_component("embedder", embedder)
    pipeline.add_component("writer", StoreWriter(store=FaissStore(path=str(store_path))))
    return pipeline


@pytest.fixture()
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in {
        "zebra.md": "Zebras are African equines with black-and-white striped coats. " * 3,
        "faiss.md": "FAISS is a library for efficient similarity search of dense vectors. " * 3,
        "cat.txt": "The cat sat on the mat and looked at the rain outside. " * 3,
    }.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.integration
def test_ingest_through_the_remote_embedder(server, key, corpus, tmp_path, embedder):
    remote = HttpEmbedder(
        base_url=f"{server}/v1", model="all-MiniLM-L6-v2", api_key=key, batch_size=4
    )
    pipeline = _ingest_pipeline(tmp_path / "index", remote)
    report = run_ingest(pipeline, [str(corpus)], progress=False)
    assert report.chunks_written > 3 and not report.errors
    store = pipeline.components["writer"].store
    hits = store.search(embedder.embed_query("striped horses of Africa"), k=1)
    assert hits[0].chunk.metadata["source"].endswith("zebra.md")


def _bad_server_app(mode: str):
    """A real (loopback) embedding service that answers wrongly in one way, after a good
    first request: so a failure in a later batch must also leave nothing written."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    calls = [0]

    async def embeddings(request: Request):
        body = await request.json()
        calls[0] += 1
        texts = body["input"]
        good = [{"index": i, "embedding": _vector(t, 384)} for i, t in enumerate(texts)]
        if calls[0] == 1:
            return JSONResponse({"data": good})
        if mode == "dimension":
            return JSONResponse(
                {"data": [{"index": i, "embedding": [0.5] * 3} for i in range(len(texts))]}
            )
        if mode == "not-json":
            return PlainTextResponse("upstream worker crashed")
        return JSONResponse({"data": good[:-1]})  # fewer vectors than texts

    return Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])


@pytest.mark.integration
@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("dimension", "dimension 3, expected 384"),
        ("not-json", "not JSON"),
        ("fewer", r"returned \d+ vector\(s\) for \d+ text\(s\)"),
    ],
)
def test_bad_server_fails_the_ingest_and_writes_nothing(mode, message, corpus, tmp_path):
    with running(_bad_server_app(mode)) as url:
        remote = HttpEmbedder(
            base_url=f"{url}/v1", model="m", batch_size=2, max_concurrency=1, max_retries=0
        )
        pipeline = _ingest_pipeline(tmp_path / "index", remote)
        with pytest.raises(EmbeddingError, match=message) as caught:
            run_ingest(pipeline, [str(corpus)], progress=False)
    assert f"{url}/v1/embeddings" in str(caught.value)
    store = FaissStore(path=str(tmp_path / "index"))
    store.warm_up()
    assert store.count() == 0


@pytest.mark.unit
def test_connection_settings_do_not_change_the_ingest_fingerprint():
    from rag.pipelines.ingest import pipeline_fingerprint

    def fingerprint(**kwargs) -> str:
        pipeline = Pipeline("ingest")
        options = {"base_url": BASE, "model": "m", **kwargs}
        pipeline.add_component("embedder", HttpEmbedder(**options))
        return pipeline_fingerprint(pipeline)

    base = fingerprint()
    assert fingerprint(max_concurrency=16, timeout=5.0, max_retries=0, api_key="${K}") == base
    assert fingerprint(model="other-model") != base
    assert fingerprint(base_url="http://other.test/v1") != base


@pytest.mark.unit
def test_example_pipeline_file_round_trips_with_the_key_as_a_reference(monkeypatch):
    from rag.core import PipelineFile

    monkeypatch.setenv("EMBED_API_KEY", "the-real-key-never-written")
    example = Path(__file__).resolve().parents[3] / "examples" / "remote_embeddings.yaml"
    app = PipelineFile.load(example)
    embedder = app.components["embedder"]
    assert isinstance(embedder, HttpEmbedder) and embedder.expected_dimension == 384
    text = app.dump()
    assert "${EMBED_API_KEY}" in text and "the-real-key-never-written" not in text
    assert PipelineFile.load("again.yaml", text=text).to_dict() == app.to_dict()
