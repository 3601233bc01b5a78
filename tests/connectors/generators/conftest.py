"""A real OpenAI-compatible server on loopback: llama-cpp-python's own, serving the packaged GGUF."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def openai_server(tmp_path_factory):
    """Base URL (``http://127.0.0.1:PORT/v1``) of ``python -m llama_cpp.server`` serving
    SmolLM2-135M under the model name ``smollm2``; stopped at the end of the session."""
    missing = [
        m
        for m in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        pytest.skip(
            f"the OpenAI-compatible test server needs {', '.join(missing)}: "
            "pip install 'ragline[openai-server]'"
        )
    from rag.connectors.generators.llama_cpp import resolve_model_path

    port = free_port()
    log = tmp_path_factory.mktemp("openai-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(resolve_model_path("smollm2-135m-instruct")),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
        "--seed",
        "0",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()}"
                )
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start in 60 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
