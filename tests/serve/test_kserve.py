"""rag serve's ``/v2`` routes: the Open Inference Protocol (KServe v2 REST) over the pipeline's
embedder, on a real uvicorn server on 127.0.0.1 with the session's all-MiniLM-L6-v2."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from rag.serve._kserve import served_model_name
from tests.serve.conftest import API_KEY, build_app_file, running

pytestmark = pytest.mark.integration
MODEL = "all-MiniLM-L6-v2"
TEXTS = ["The cat sat on the mat.", "FAISS searches dense vectors.", "Zebras have stripes."]


@pytest.fixture(scope="module")
def kserve_url(tmp_path_factory, embedder):
    from rag.serve import create_app

    app_file = build_app_file(tmp_path_factory.mktemp("kserve") / "index", embedder, None)
    with running(create_app(app_file, api_keys=[API_KEY])) as url:
        yield url


@pytest.fixture()
def v2(kserve_url):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=f"{kserve_url}/v2", headers=headers, timeout=120) as http:
        yield http


def _infer_body(texts, **tensor):
    return {
        "inputs": [
            {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts, **tensor}
        ]
    }


def test_health_and_metadata(v2, kserve_url):
    assert v2.get("/health/live").json() == {"live": True}
    assert v2.get("/health/ready").json() == {"ready": True}
    server = v2.get(f"{kserve_url}/v2").json()
    assert server["name"] == "ragline" and server["extensions"] == []
    metadata = v2.get(f"/models/{MODEL}").json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    assert v2.get(f"/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}


def test_infer_returns_the_local_vectors(v2, embedder):
    answer = v2.post(f"/models/{MODEL}/infer", json={"id": "r1", **_infer_body(TEXTS)}).json()
    assert answer["model_name"] == MODEL and answer["id"] == "r1"
    (output,) = answer["outputs"]
    assert output["name"] == "embedding" and output["datatype"] == "FP32"
    assert output["shape"] == [3, 384] and len(output["data"]) == 3 * 384
    vectors = np.asarray(output["data"], dtype=np.float32).reshape(3, 384)
    assert np.allclose(vectors, embedder.embed_documents(TEXTS), atol=1e-6)


def test_shape_n_by_1_empty_batches_and_requested_outputs(v2):
    nested = {
        "inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]}],
        "outputs": [{"name": "embedding"}],
    }
    assert v2.post(f"/models/{MODEL}/infer", json=nested).json()["outputs"][0]["shape"] == [2, 384]
    empty = v2.post(f"/models/{MODEL}/infer", json=_infer_body([])).json()
    assert empty["outputs"][0]["shape"] == [0, 384] and empty["outputs"][0]["data"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_infer_body(["a"], datatype="FP32"), "inputs[0].datatype: input 'text' is BYTES"),
        (
            _infer_body(["a"], name="input_ids"),
            "inputs[0].name: model 'all-MiniLM-L6-v2' has no input 'input_ids'",
        ),
        (_infer_body(["a", "b"], shape=[3]), "inputs[0].data: 2 element(s) for shape [3]"),
        (_infer_body(["a"], shape=[1, 2]), "inputs[0].shape: input 'text' has shape [n] or [n, 1]"),
        (_infer_body([1]), "inputs[0].data[0]: BYTES elements are strings in JSON, not int"),
        ({"inputs": []}, "inputs: model 'all-MiniLM-L6-v2' has one input"),
        (
            {**_infer_body(["a"]), "outputs": [{"name": "logits"}]},
            "outputs[0].name: model 'all-MiniLM-L6-v2' has no output 'logits'",
        ),
        ({"inputs": [{"name": "text"}]}, "inputs.0.shape: Field required"),
        ({"input": []}, "inputs: Field required"),
    ],
)
def test_bad_requests_are_400_naming_the_field(v2, body, message):
    response = v2.post(f"/models/{MODEL}/infer", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_non_json_and_binary_requests_are_refused(v2):
    response = v2.post(
        f"/models/{MODEL}/infer", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422) and "JSON" in response.text
    binary = v2.post(
        f"/models/{MODEL}/infer",
        content=b"{}",
        headers={
            "Inference-Header-Content-Length": "2",
            "content-type": "application/octet-stream",
        },
    )
    assert binary.status_code == 400 and "binary tensor extension" in binary.json()["error"]


def test_unknown_model_is_404_naming_the_served_one(v2):
    for response in (
        v2.get("/models/gpt-4"),
        v2.get("/models/gpt-4/ready"),
        v2.post("/models/gpt-4/infer", json=_infer_body(["a"])),
    ):
        assert response.status_code == 404
        assert (
            response.json()["error"]
            == f"model 'gpt-4' is not served here; this server serves '{MODEL}'"
        )


def test_every_v2_route_needs_the_key(kserve_url):
    for method, path in [
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("GET", f"/v2/models/{MODEL}"),
        ("POST", f"/v2/models/{MODEL}/infer"),
    ]:
        response = httpx.request(method, kserve_url + path, json=_infer_body(["a"]), timeout=30)
        assert response.status_code == 401, (path, response.text)
        wrong = httpx.request(
            method, kserve_url + path, headers={"Authorization": "Bearer nope"}, timeout=30
        )
        assert wrong.status_code == 401


def test_routes_stay_out_of_the_openapi_schema(kserve_url):
    schema = httpx.get(f"{kserve_url}/openapi.json", timeout=30).json()
    assert not [path for path in schema["paths"] if path.startswith("/v2")]


@pytest.mark.unit
def test_served_model_name_is_the_model_without_its_directory():
    class Named:
        model = "/models/bge-small-en/"

    assert served_model_name(Named()) == "bge-small-en"
    assert served_model_name(object()) == "embedder"
