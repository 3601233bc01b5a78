"""MCP: a real MCP client (the official SDK) against ``rag serve --mcp``, over streamable HTTP
on 127.0.0.1 (same keys as REST) and over stdio (a real ``rag serve --mcp --stdio`` process)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp", reason="MCP tests need the mcp package: pip install 'ragline[mcp]'")

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from rag.connectors.stores._faiss_files import OPEN_CACHE
from rag.core.pipeline import PipelineFile
from rag.pipelines.ingest import run_ingest
from rag.serve import create_app
from rag.serve.mcp import MCP_PATH, mount_mcp
from tests.serve.conftest import API_KEY, CORPUS, build_app_file, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mcp_url(qa_app_file) -> Iterator[str]:
    """The REST app with MCP mounted, served on a free loopback port."""
    app = create_app(qa_app_file, api_keys=[API_KEY])
    mount_mcp(app, host="127.0.0.1")
    with running(app) as url:
        yield url + MCP_PATH


def http_client(url: str, key: str | None = API_KEY) -> tuple[Client, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = create_mcp_http_client(headers=headers)
    return Client(streamable_http_client(url, http_client=http), mode="legacy"), http


def payload(result: Any) -> dict[str, Any]:
    """The tool's JSON result (structured content, else the text block)."""
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


@pytest.mark.integration
async def test_http_lists_search_and_ask_and_search_matches_rest(mcp_url, client):
    mcp_client, http = http_client(mcp_url)
    async with http, mcp_client:
        tools = {tool.name: tool for tool in (await mcp_client.list_tools()).tools}
        assert set(tools) == {"search", "ask"}
        assert "query" in tools["search"].input_schema["required"]
        result = payload(await mcp_client.call_tool("search", {"query": "HNSW graph", "k": 3}))
    rest = client.post("/v1/search", json={"query": "HNSW graph", "k": 3}).json()
    assert [h["id"] for h in result["hits"]] == [h["id"] for h in rest["hits"]]
    assert len(result["hits"]) == 3
    assert any("hnsw" in h["metadata"]["source"] for h in result["hits"])


@pytest.mark.integration
async def test_http_ask_answers_with_contexts_and_the_prompt(mcp_url):
    mcp_client, http = http_client(mcp_url)
    async with http, mcp_client:
        answer = payload(
            await mcp_client.call_tool("ask", {"question": "What does FAISS store?", "k": 2})
        )
    assert answer["answer"].strip()
    assert len(answer["contexts"]) == 2
    assert "prompt" in answer and answer["answer_style"] == "evidence"  # the default, copied


@pytest.mark.integration
async def test_http_ask_answers_in_the_style_the_call_names(mcp_url):
    mcp_client, http = http_client(mcp_url)
    question = {"question": "What does FAISS store?", "k": 2}
    async with http, mcp_client:
        styled = await mcp_client.call_tool("ask", {**question, "answer_style": "extractive"})
        unknown = await mcp_client.call_tool("ask", {**question, "answer_style": "bullets"})
    assert payload(styled)["answer_style"] == "extractive"
    assert unknown.is_error and "unknown answer_style 'bullets'" in unknown.content[0].text


@pytest.mark.integration
async def test_http_bad_arguments_are_tool_errors_naming_the_problem(mcp_url):
    mcp_client, http = http_client(mcp_url)
    async with http, mcp_client:
        too_many = await mcp_client.call_tool("search", {"query": "x", "k": 0})
        bad_filter = await mcp_client.call_tool(
            "search", {"query": "x", "filters": {"year": {"$between": [1, 2]}}}
        )
    assert too_many.is_error and "k" in too_many.content[0].text
    assert bad_filter.is_error and "$between" in bad_filter.content[0].text


@pytest.mark.integration
@pytest.mark.parametrize("key", [None, "wrong-key-0123456789abcdef"])
async def test_http_without_a_valid_key_is_refused(mcp_url, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    response = httpx.post(
        mcp_url,
        json=initialize,
        headers={**headers, "Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    # The SDK's client gets no session either (it reports the refusal as an MCPError).
    mcp_client, http = http_client(mcp_url, key)
    with pytest.raises(BaseException, match="unhandled errors|error response"):
        async with http, mcp_client:
            await mcp_client.list_tools()


@pytest.fixture(scope="module")
def search_config(tmp_path_factory, embedder) -> Path:
    """A search-only pipeline file over an index ingested here with the session's embedder."""
    store_path = tmp_path_factory.mktemp("mcp-stdio") / "index"
    app_file = build_app_file(store_path, embedder, None)
    report = run_ingest(app_file.pipeline("ingest"), [str(CORPUS)], progress=False)
    assert report.chunks_written > 0
    config = store_path.parent / "search.yaml"
    config.write_text(
        "components:\n"
        "  embedder: {type: embedder.sentence_transformers, init_parameters: "
        "{model: all-MiniLM-L6-v2, device: cpu}}\n"
        f"  store: {{type: store.faiss, init_parameters: {{path: '{store_path}'}}}}\n"
        "  retriever: {type: retriever.dense, init_parameters: "
        "{embedder: '@embedder', store: '@store', k: 3}}\n"
        "pipelines:\n  search: {components: [retriever]}\n"
    )
    PipelineFile.load(config)  # valid before a process is started on it
    return config


@pytest.mark.integration
@pytest.mark.slow
async def test_stdio_serves_search_to_a_real_client_process(search_config):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rag.cli", "serve", "--config", str(search_config), "--mcp", "--stdio"],
        env=env,
        cwd=str(ROOT),
    )
    cache = search_config.parent / "index" / OPEN_CACHE
    cache.unlink(missing_ok=True)
    async with Client(params, mode="legacy", read_timeout_seconds=120) as mcp_client:
        names = {tool.name for tool in (await mcp_client.list_tools()).tools}
        result = payload(await mcp_client.call_tool("search", {"query": "BM25 ranking", "k": 2}))
    assert names == {"search"}  # no chain.rag in this file, so no ask tool
    assert len(result["hits"]) == 2
    assert any("bm25" in h["metadata"]["source"] for h in result["hits"])
    assert cache.is_file()  # the client closed stdin: the server closed its store


@pytest.mark.unit
def test_stdio_needs_mcp():
    from typer.testing import CliRunner

    from rag.cli import app

    result = CliRunner().invoke(app, ["serve", "--config", "x.yaml", "--stdio"])
    assert result.exit_code == 2 and "--mcp" in result.output


# -- chain.rag using tools of an MCP server ------------------------------------------------------
@pytest.mark.integration
def test_a_chain_calls_tools_of_an_mcp_server_over_http(mcp_url, monkeypatch):
    from rag.chains import RagChain
    from tests.chains.helpers import ListRetriever, Script, reply, scripted_generator

    monkeypatch.setenv("TEST_DOCS_MCP_KEY", API_KEY)
    script = Script(
        reply(calls=[("docs_search", {"query": "BM25 ranking", "k": 2})]),
        reply("BM25 ranks by term frequency [1]."),
    )
    chain = RagChain(
        retriever=ListRetriever(texts=["Unrelated local text."]),
        generator=scripted_generator(script),
        mcp_servers=[
            {
                "url": mcp_url,
                "api_key_env": "TEST_DOCS_MCP_KEY",
                "prefix": "docs_",
                "tools": ["search"],
            }
        ],
    )
    answer = chain.ask("How does BM25 rank?")
    offered = [t["function"]["name"] for t in script.bodies[0]["tools"]]
    assert offered == ["docs_search"]  # the allow-list leaves 'ask' out
    schema = script.bodies[0]["tools"][0]["function"]["parameters"]
    assert "query" in schema["properties"] and schema["required"] == ["query"]
    (call,) = answer.tool_calls
    assert call["name"] == "docs_search" and "error" not in call
    result = json.loads(call["result"])
    assert len(result["hits"]) == 2
    assert any("bm25" in h["metadata"]["source"] for h in result["hits"])
    tool_message = script.bodies[1]["messages"][-1]
    assert tool_message["role"] == "tool" and "bm25" in tool_message["content"]
    assert chain.to_dict()["init_parameters"]["mcp_servers"][0]["api_key_env"] == (
        "TEST_DOCS_MCP_KEY"
    )  # the key's name is configuration; its value is never serialized
    assert API_KEY not in json.dumps(chain.to_dict())


@pytest.mark.integration
def test_an_mcp_tool_error_goes_back_to_the_model(mcp_url, monkeypatch):
    from rag.chains import RagChain
    from tests.chains.helpers import ListRetriever, Script, reply, scripted_generator

    monkeypatch.setenv("TEST_DOCS_MCP_KEY", API_KEY)
    script = Script(
        reply(calls=[("search", {"query": "x", "filters": {"a": {"$bogus": 1}}})]),
        reply("I could not search."),
    )
    chain = RagChain(
        retriever=ListRetriever(texts=["x"]),
        generator=scripted_generator(script),
        mcp_servers=[{"url": mcp_url, "api_key_env": "TEST_DOCS_MCP_KEY", "tools": ["search"]}],
    )
    answer = chain.ask("Search with a bad filter")
    (call,) = answer.tool_calls
    assert "$bogus" in call["error"]
    assert "$bogus" in script.bodies[1]["messages"][-1]["content"]


@pytest.mark.integration
def test_mcp_server_problems_are_config_errors_naming_the_server(mcp_url, monkeypatch):
    from rag.chains import RagChain
    from rag.core import ConfigError
    from tests.chains.helpers import ListRetriever, Script, reply, scripted_generator

    def chain(**server: Any) -> RagChain:
        return RagChain(
            retriever=ListRetriever(texts=["x"]),
            generator=scripted_generator(Script(reply("x"))),
            mcp_servers=[server],
        )

    monkeypatch.delenv("TEST_DOCS_MCP_KEY", raising=False)
    with pytest.raises(ConfigError, match="TEST_DOCS_MCP_KEY is not set"):
        chain(url=mcp_url, api_key_env="TEST_DOCS_MCP_KEY").warm_up()
    monkeypatch.setenv("TEST_DOCS_MCP_KEY", API_KEY)
    with pytest.raises(ConfigError, match=r"has no tool 'serch'.*Did you mean 'search'"):
        chain(url=mcp_url, api_key_env="TEST_DOCS_MCP_KEY", tools=["serch"]).warm_up()
    with pytest.raises(ConfigError, match=r"cannot connect to MCP server mcp_servers\[0\]"):
        chain(url=mcp_url.replace("/mcp", "/nothing-here"), timeout=20).warm_up()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({}, "exactly one of 'command'"),
        ({"command": ["x"], "url": "http://127.0.0.1:1/mcp"}, "exactly one of 'command'"),
        ({"url": "ftp://host/mcp"}, "must be an http:// or https:// URL"),
        ({"command": []}, "non-empty list of strings"),
        ({"url": "http://127.0.0.1:1/mcp", "prefx": "a_"}, "Did you mean 'prefix'?"),
        ({"url": "http://127.0.0.1:1/mcp", "prefix": "a b"}, "prefix may use only"),
    ],
)
def test_bad_mcp_server_entries_are_refused_when_the_chain_is_built(server, message):
    from rag.chains import RagChain
    from rag.core import ConfigError
    from tests.chains.helpers import ListRetriever, Script, reply, scripted_generator

    with pytest.raises(ConfigError, match="mcp_servers") as err:
        RagChain(
            retriever=ListRetriever(texts=["x"]),
            generator=scripted_generator(Script(reply("x"))),
            mcp_servers=[server],
        )
    assert message in str(err.value)


@pytest.mark.integration
@pytest.mark.slow
def test_a_chain_starts_a_stdio_mcp_server_from_its_command(search_config):
    from rag.chains import RagChain
    from tests.chains.helpers import ListRetriever, Script, reply, scripted_generator

    script = Script(
        reply(calls=[("search", {"query": "FAISS index", "k": 1})]),
        reply("FAISS indexes vectors [1]."),
    )
    chain = RagChain(
        retriever=ListRetriever(texts=["x"]),
        generator=scripted_generator(script),
        mcp_servers=[
            {
                "command": [
                    *(sys.executable, "-m", "rag.cli", "serve", "--config", str(search_config)),
                    *("--mcp", "--stdio", "--quiet"),
                ],
                "env": {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
            }
        ],
    )
    answer = chain.ask("What is FAISS?")
    (call,) = answer.tool_calls
    hits = json.loads(call["result"])["hits"]
    assert len(hits) == 1 and "faiss" in hits[0]["metadata"]["source"]


@pytest.mark.integration
def test_build_app_with_mcp_adds_the_endpoint_and_keeps_rest(qa_app_file):
    from rag.serve.cli_serve import build_app

    app = build_app(qa_app_file, api_keys=[API_KEY], mcp=True)
    # REST routes come from included routers, which FastAPI >= 0.16x keeps out of app.routes.
    paths = {getattr(r, "path", None) for r in app.routes} | set(app.openapi()["paths"])
    assert {MCP_PATH, "/v1/search", "/v1/ask"} <= paths
    plain = {getattr(r, "path", None) for r in build_app(qa_app_file, api_keys=[API_KEY]).routes}
    assert MCP_PATH not in plain
