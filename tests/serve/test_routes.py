"""The app as composed from routers: its OpenAPI document is pinned, and 405s list every method.

No model loads here: the app is built over ``examples/qa.yaml`` without warming up, and only
routes that answer before any component runs are called.

When the API changes on purpose, rewrite the pinned document and review its diff::

    .venv/bin/python -m tests.serve.test_routes
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import rag
from rag.serve import create_app

pytestmark = pytest.mark.unit

PINNED = Path(__file__).with_name("openapi.json")
KEY = "k-0123456789abcdef"


def _openapi(*, ui: bool) -> dict[str, Any]:
    app = create_app("examples/qa.yaml", api_keys=[KEY], warm_up=False, ui=ui)
    schema = json.loads(json.dumps(app.openapi()))
    assert schema["info"]["version"] == rag.__version__
    schema["info"]["version"] = "<rag.__version__>"  # the pin survives a release
    return schema


def test_the_openapi_document_is_the_pinned_one():
    assert PINNED.exists(), "no pinned document: run .venv/bin/python -m tests.serve.test_routes"
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    current = _openapi(ui=False)
    assert list(current["paths"]) == list(pinned["paths"]), "paths or their order changed"
    assert current == pinned, (
        "the OpenAPI document changed; if on purpose, rewrite it with "
        "'.venv/bin/python -m tests.serve.test_routes' and review the diff"
    )


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/documents", "DELETE, POST"),  # two routers' worth of one path
        ("PUT", "/v1/search", "POST"),
        ("POST", "/v1/health", "GET"),
        ("PATCH", "/v1/chat/completions", "POST"),
        ("DELETE", "/v2/models/any/infer", "POST"),  # the KServe router's
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
def test_a_wrong_method_is_a_405_that_lists_every_allowed_one(method, path, allowed):
    client = TestClient(create_app("examples/qa.yaml", api_keys=[KEY], warm_up=False))
    response = client.request(method, path, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


if __name__ == "__main__":
    PINNED.write_text(json.dumps(_openapi(ui=False), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {PINNED}")
