"""``rag serve``: refusals at start-up (in-process) and one real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.connectors.stores._faiss_files import OPEN_CACHE
from rag.serve import API_KEYS_ENV, parse_api_keys
from rag.serve._keys import key_is_valid
from rag.serve.cli_serve import is_loopback
from tests.serve.conftest import API_KEY, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def invoke(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["serve", *map(str, args)], env=env)


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ingest.yaml"
    path.write_text(
        (EXAMPLES / "ingest.yaml")
        .read_text()
        .replace("${RAG_INDEX_DIR:-.rag/example-index}", str(tmp_path / "index"))
    )
    return path


@pytest.mark.unit
def test_a_pipeline_file_that_fails_validation_stops_the_server(config):
    text = config.read_text().replace("type: store.faiss", "type: store.fiass")
    config.write_text(text)
    line = text.splitlines().index("    type: store.fiass") + 1
    result = invoke("--config", config, env={API_KEYS_ENV: API_KEY})
    assert result.exit_code == 2
    assert f"{config}:{line}" in result.output and "Did you mean 'store.faiss'?" in result.output


@pytest.mark.unit
def test_the_server_refuses_to_start_without_keys(config):
    result = invoke("--config", config, env={API_KEYS_ENV: ""})
    assert result.exit_code == 2
    assert "refusing to serve without API keys" in result.output and "--no-auth" in result.output


@pytest.mark.unit
def test_short_keys_are_refused(config):
    result = invoke("--config", config, env={API_KEYS_ENV: "abc"})
    assert result.exit_code == 2 and "at least 16" in result.output


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--no-auth", "--host", "0.0.0.0"], {API_KEYS_ENV: ""}, "loopback"),
        (["--no-auth"], {API_KEYS_ENV: API_KEY}, "drop --no-auth"),
    ],
)
def test_no_auth_is_for_local_development_only(config, args, env, message):
    result = invoke("--config", config, *args, env=env)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.unit
def test_an_allowed_root_must_exist(config, tmp_path):
    result = invoke(
        "--config", config, "--allow-root", tmp_path / "missing", env={API_KEYS_ENV: API_KEY}
    )
    assert result.exit_code == 2 and "is not a directory" in result.output


@pytest.mark.unit
def test_keys_are_parsed_and_compared_whole():
    assert parse_api_keys(f" {API_KEY} ,, other-key-0123456789 ") == [
        API_KEY,
        "other-key-0123456789",
    ]
    keys = [API_KEY.encode(), b"other-key-0123456789"]
    assert key_is_valid(API_KEY.encode(), keys)
    assert not key_is_valid(API_KEY.encode()[:-1], keys)
    assert not key_is_valid(API_KEY.encode() + b"x", keys)
    assert not key_is_valid(b"", keys)


@pytest.mark.unit
def test_loopback_detection():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.2", "example.com"]))


@pytest.mark.integration
@pytest.mark.slow
def test_rag_serve_runs_a_real_server(config):
    port = free_port()
    env = {**os.environ, API_KEYS_ENV: API_KEY, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "rag serve did not come up"
            time.sleep(0.2)
        assert httpx.get(f"{base}/v1/stats").status_code == 401
        stats = httpx.get(f"{base}/v1/stats", headers={"Authorization": f"Bearer {API_KEY}"})
        assert stats.json() == {
            "chunks": 0,
            "sources": 0,
            "store": "store.faiss",
            "dimension": None,
        }
        added = httpx.post(
            f"{base}/v1/documents",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"documents": [{"id": "okapi.txt", "text": "The okapi is a giraffid."}]},
            timeout=60,
        )
        assert added.status_code == 200, added.text
    finally:
        process.terminate()
        process.wait(timeout=20)
    # started on an empty index, the server said so and how to fill it
    note = f"note: store 'store' ({config.parent / 'index'}) holds no chunks; ingest first: "
    assert note + f"rag ingest FILES --config {config} (or POST /v1/documents)" in (
        process.stderr.read() if process.stderr else ""
    )
    # Stopped by SIGTERM, the server closed its store: the next process opens from the cache.
    assert (config.parent / "index" / OPEN_CACHE).is_file()


@pytest.mark.unit
def test_the_serve_package_surface_is_small_and_light():
    import rag.serve

    assert sorted(rag.serve.__all__) == [
        "API_KEYS_ENV",
        "API_KEYS_FILE_ENV",
        "ApiKey",
        "GrpcServer",
        "KeyScope",
        "api_keys_from_env",
        "create_app",
        "load_keys_file",
        "parse_api_keys",
        "serve",
    ]
    code = (
        "import sys, rag.serve; print(*(m in sys.modules for m in ('fastapi', 'uvicorn', 'grpc')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "False"]
