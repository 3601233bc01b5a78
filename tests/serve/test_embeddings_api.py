"""``POST /v1/embeddings`` (OpenAI-compatible) and ``POST /v1/embed`` (TEI-style) on a real
uvicorn server (loopback) over the session's local embedder."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from tests.serve.conftest import API_KEY, build_app_file, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(tmp_path_factory, embedder):
    from rag.serve import create_app

    app_file = build_app_file(tmp_path_factory.mktemp("embed-api") / "index", embedder, None)
    with running(create_app(app_file, api_keys=[API_KEY], max_body_bytes=64 * 1024)) as base:
        yield base


@pytest.fixture()
def client(url):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        yield http


def _error(response: httpx.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and "Traceback" not in response.text
    if field is not None:
        assert field in [f["field"] for f in error["fields"]], error
    return error


def test_openai_embeddings_match_the_local_embedder(client, embedder):
    texts = ["What is FAISS?", "The cat sat on the mat."]
    response = client.post("/v1/embeddings", json={"model": "my-model", "input": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "my-model"
    assert [item["index"] for item in body["data"]] == [0, 1]
    vectors = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    assert np.allclose(vectors, embedder.embed_documents(texts), atol=1e-6)
    expected_tokens = sum(len(ids) for ids in embedder.tokenizer(texts)["input_ids"])
    assert body["usage"] == {"prompt_tokens": expected_tokens, "total_tokens": expected_tokens}


def test_base64_and_a_single_string(client, embedder):
    response = client.post(
        "/v1/embeddings", json={"model": "m", "input": "FAISS", "encoding_format": "base64"}
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    vector = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
    assert np.array_equal(vector, embedder.embed_documents(["FAISS"])[0])


def test_tei_embed_returns_unit_vectors(client, embedder):
    response = client.post("/v1/embed", json={"inputs": ["a zebra", "a horse"]})
    assert response.status_code == 200, response.text
    vectors = np.array(response.json(), dtype=np.float32)
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors, embedder.embed_documents(["a zebra", "a horse"]), atol=1e-6)


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/embed"])
def test_a_key_is_required(url, path):
    _error(httpx.post(f"{url}{path}", json={"model": "m", "input": ["x"]}), 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m", "input": []}, "body.input"),
        ({"model": "m", "input": ["ok", ""]}, "body.input"),
        ({"model": "m", "input": [[101, 2023]]}, "body.input"),  # token arrays
        ({"model": "m", "input": ["x"] * 2049}, "body.input"),
        ({"model": "m", "input": ["x"], "encoding_format": "int8"}, "body.encoding_format"),
        ({"model": "m", "input": ["x"], "dimensions": 64}, "body.dimensions"),
        ({"input": ["x"]}, "body.model"),
    ],
)
def test_bad_embeddings_requests_name_the_field(client, body, field):
    # OpenAI answers an invalid parameter with 400, and so does this route.
    _error(client.post("/v1/embeddings", json=body), 400, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": []}, "body.inputs"),
        ({"inputs": ["x"], "truncate": False}, "body.truncate"),
        ({"inputs": ["x"], "normalise": True}, "body.normalise"),
    ],
)
def test_bad_embed_requests_name_the_field(client, body, field):
    _error(client.post("/v1/embed", json=body), 422, field)


def test_a_body_over_the_limit_is_refused(client):
    _error(client.post("/v1/embeddings", json={"model": "m", "input": ["word " * 20_000]}), 413)
