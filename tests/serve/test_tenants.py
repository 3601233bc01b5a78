"""Tenants: scoped API keys through every front door (REST search, ask, documents, stats, the
OpenAI-compatible chat, gRPC, MCP) over one real FAISS store that two tenants share.

Each tenant ingests a document named ``animals.md`` (the same source name) and one of its own,
through its own key; every test then proves that a tenant can neither see, cite, count nor
delete the other's chunks, and that what it writes carries its tenant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rag.core.errors import ConfigError
from rag.serve._keys import (
    API_KEYS_FILE_ENV,
    ApiKey,
    KeyRing,
    KeyScope,
    keys_from_env,
    load_keys_file,
)
from tests.serve.conftest import API_KEY, build_app_file, free_port, running

ACME = "acme-key-0123456789abcdef"
GLOBEX = "globex-key-0123456789abcdef"
GLOBEX_READER = "globex-read-0123456789abcdef"
SCOPED = [
    ApiKey(ACME, KeyScope("acme", filter={"tenant": "acme"})),
    ApiKey(GLOBEX, KeyScope("globex", filter={"tenant": "globex"})),
    ApiKey(GLOBEX_READER, KeyScope("globex-reader", {"tenant": "globex"}, frozenset({"read"}))),
]
DOCUMENTS = {
    ACME: [
        {"id": "animals.md", "text": "Zebras have black and white stripes. Acme keeps zebras."},
        {"id": "acme-only.md", "text": "Acme rocket skates reach ninety miles per hour."},
    ],
    GLOBEX: [
        {"id": "animals.md", "text": "Zebras graze beside the Globex lake and sleep standing up."},
        {"id": "globex-only.md", "text": "Globex builds doomsday devices inside a volcano."},
    ],
}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def tenants(tmp_path_factory, embedder, local_generator) -> Iterator[dict[str, Any]]:
    """REST (with MCP mounted) and gRPC over one backend; each tenant ingested over REST."""
    from rag.serve import GrpcServer, create_app

    app_file = build_app_file(
        tmp_path_factory.mktemp("tenants") / "index", embedder, local_generator
    )
    keys: list[str | ApiKey] = [API_KEY, *SCOPED]
    app = create_app(app_file, api_keys=keys, allowed_roots=[tmp_path_factory.mktemp("root")])
    mcp = pytest.importorskip("rag.serve.mcp")
    mcp.mount_mcp(app, host="127.0.0.1")
    grpc_server = None
    if _has_grpc():
        grpc_server = GrpcServer(app.state.backend, api_keys=keys, port=free_port())
        grpc_server.start()
    try:
        with running(app) as url:
            for key, documents in DOCUMENTS.items():
                response = httpx.post(
                    f"{url}/v1/documents", json={"documents": documents}, headers=auth(key)
                )
                assert response.status_code == 200, response.text
                assert response.json()["chunks_written"] == 2
            target = f"127.0.0.1:{grpc_server.port}" if grpc_server else None
            yield {"url": url, "grpc": target, "backend": app.state.backend}
    finally:
        if grpc_server is not None:
            grpc_server.stop()


def _has_grpc() -> bool:
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True


def client(tenants: dict[str, Any], key: str) -> httpx.Client:
    return httpx.Client(base_url=tenants["url"], headers=auth(key), timeout=120)


def tenants_of(items: list[dict[str, Any]]) -> set[Any]:
    return {item["metadata"].get("tenant") for item in items}


# -- REST -------------------------------------------------------------------------------------
@pytest.mark.integration
def test_ingested_documents_are_stamped_and_same_named_sources_do_not_collide(tenants):
    with client(tenants, API_KEY) as admin:
        hits = admin.post("/v1/search", json={"query": "zebras", "k": 10}).json()["hits"]
    animals = [h for h in hits if h["metadata"]["source"] == "animals.md"]
    assert tenants_of(animals) == {"acme", "globex"}  # one chunk each, neither overwritten
    assert len({h["id"] for h in animals}) == 2
    assert tenants_of(hits) == {"acme", "globex"}


@pytest.mark.integration
@pytest.mark.parametrize(("key", "tenant"), [(ACME, "acme"), (GLOBEX, "globex")])
def test_search_sees_only_the_tenants_chunks(tenants, key, tenant):
    with client(tenants, key) as http:
        hits = http.post("/v1/search", json={"query": "zebras", "k": 10}).json()["hits"]
        assert hits and tenants_of(hits) == {tenant}
        other = "globex" if tenant == "acme" else "acme"
        reaching = http.post(
            "/v1/search", json={"query": "zebras", "k": 10, "filters": {"tenant": other}}
        )
        assert reaching.status_code == 200 and reaching.json()["hits"] == []


@pytest.mark.integration
def test_stats_count_only_the_tenants_chunks(tenants):
    with client(tenants, ACME) as acme, client(tenants, API_KEY) as admin:
        mine = acme.get("/v1/stats").json()
        everything = admin.get("/v1/stats").json()
    assert mine["chunks"] == 2 and mine["sources"] == 2
    assert everything["chunks"] >= 4 and everything["sources"] == 3


@pytest.mark.integration
def test_ask_and_chat_cite_only_the_tenants_chunks(tenants):
    with client(tenants, ACME) as acme:
        answer = acme.post("/v1/ask", json={"question": "Where do zebras sleep?", "k": 4})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["contexts"] and tenants_of(body["contexts"]) == {"acme"}
        assert not any("Globex" in c["text"] for c in body["contexts"])
        acme_ids = {c["id"] for c in body["contexts"]}
        assert {c["id"] for c in body["citations"]} <= acme_ids
        chat = acme.post(
            "/v1/chat/completions",
            json={
                "model": "ragline",
                "messages": [{"role": "user", "content": "What does Globex build?"}],
            },
        )
        assert chat.status_code == 200, chat.text
        admin_hits = httpx.post(
            f"{tenants['url']}/v1/search",
            json={"query": "Globex volcano", "k": 10},
            headers=auth(API_KEY),
        ).json()["hits"]
        globex_ids = {h["id"] for h in admin_hits if h["metadata"]["tenant"] == "globex"}
        assert globex_ids
        assert not {c["id"] for c in chat.json()["citations"]} & globex_ids
        with acme.stream(
            "POST", "/v1/ask", json={"question": "What does Globex build?", "stream": True}
        ) as streamed:
            events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
        final = json.loads(events[-1].removeprefix("data: "))
        assert tenants_of(final["contexts"]) == {"acme"}


@pytest.mark.integration
def test_a_tenant_cannot_delete_another_tenants_chunks(tenants):
    with client(tenants, API_KEY) as admin, client(tenants, ACME) as acme:
        admin.post(
            "/v1/documents",
            json={"documents": [{"id": "shared.md", "text": "A shared note about otters."}]},
        )
        others = [
            h["id"]
            for h in admin.post("/v1/search", json={"query": "volcano otters", "k": 20}).json()[
                "hits"
            ]
            if h["metadata"].get("tenant") != "acme"
        ]
        assert others
        by_id = acme.request("DELETE", "/v1/documents", json={"ids": others})
        assert by_id.status_code == 200 and by_id.json() == {"deleted": 0}
        everything = {"filters": {"source": {"$exists": True}}}
        admin_count = admin.get("/v1/stats").json()["chunks"]
        deleted = acme.request("DELETE", "/v1/documents", json=everything).json()["deleted"]
        assert deleted == 2  # its own two, nothing else
        assert admin.get("/v1/stats").json()["chunks"] == admin_count - 2
        assert acme.get("/v1/stats").json()["chunks"] == 0
        # put them back for the other tests (a module-scoped store)
        restored = acme.post("/v1/documents", json={"documents": DOCUMENTS[ACME]})
        assert restored.json()["chunks_written"] == 2


@pytest.mark.integration
def test_replacing_a_source_replaces_only_the_tenants_chunks(tenants):
    with client(tenants, GLOBEX) as globex, client(tenants, ACME) as acme:
        before = globex.get("/v1/stats").json()["chunks"]
        new = {"id": "animals.md", "text": "Acme zebras now live in the south paddock."}
        report = acme.post("/v1/documents", json={"documents": [new]}).json()
        assert report["chunks_written"] == 1 and report["chunks_deleted"] == 1
        assert globex.get("/v1/stats").json()["chunks"] == before
        hits = globex.post("/v1/search", json={"query": "zebras", "k": 10}).json()["hits"]
        assert any("Globex lake" in h["text"] for h in hits)
        acme.post("/v1/documents", json={"documents": DOCUMENTS[ACME][:1]})


@pytest.mark.integration
def test_a_conflicting_tenant_value_is_refused_naming_the_field(tenants):
    document = {"id": "x.md", "text": "Sneaky.", "metadata": {"tenant": "globex"}}
    with client(tenants, ACME) as acme:
        response = acme.post("/v1/documents", json={"documents": [document]})
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "forbidden" and error["param"] == "documents[0].metadata.tenant"
        same = {**document, "metadata": {"tenant": "acme"}}  # its own value is fine
        assert acme.post("/v1/documents", json={"documents": [same]}).status_code == 200
        acme.request("DELETE", "/v1/documents", json={"filters": {"source": "x.md"}})


@pytest.mark.integration
def test_a_read_only_key_reads_its_tenant_and_cannot_write(tenants):
    with client(tenants, GLOBEX_READER) as reader:
        hits = reader.post("/v1/search", json={"query": "volcano", "k": 10}).json()["hits"]
        assert hits and tenants_of(hits) == {"globex"}
        for method, body in (
            ("POST", {"documents": [{"id": "r.md", "text": "Not allowed."}]}),
            ("DELETE", {"filters": {"source": "globex-only.md"}}),
        ):
            response = reader.request(method, "/v1/documents", json=body)
            assert response.status_code == 403, response.text
            assert "globex-reader" in response.json()["error"]["message"]
        upload = reader.post("/v1/documents", files=[("files", ("u.md", b"# U\n\nText.\n"))])
        assert upload.status_code == 403
    with client(tenants, GLOBEX) as globex:
        assert globex.get("/v1/stats").json()["chunks"] == 2


@pytest.mark.integration
def test_uploads_are_stamped_and_server_paths_need_a_full_key(tenants):
    with client(tenants, ACME) as acme:
        files = [("files", ("tapir.md", b"# Tapir\n\nTapirs have short trunks.\n"))]
        assert acme.post("/v1/documents", files=files).status_code == 200
        hits = acme.post("/v1/search", json={"query": "tapir trunks", "k": 1}).json()["hits"]
        assert hits[0]["metadata"]["source"] == "tapir.md"
        assert hits[0]["metadata"]["tenant"] == "acme"
        paths = acme.post("/v1/documents", json={"paths": ["."]})
        assert paths.status_code == 403 and paths.json()["error"]["param"] == "paths"
        acme.request("DELETE", "/v1/documents", json={"filters": {"source": "tapir.md"}})


# -- gRPC -------------------------------------------------------------------------------------
@pytest.mark.integration
def test_grpc_applies_the_scope_to_every_method(tenants):
    grpc = pytest.importorskip("grpc")
    from rag.serve.proto import ragline_pb2 as pb
    from rag.serve.proto import ragline_pb2_grpc as pb_grpc

    if tenants["grpc"] is None:
        pytest.skip("the gRPC API needs: pip install 'ragline[grpc]'")

    def metadata(key: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key}"),)

    with grpc.insecure_channel(tenants["grpc"]) as channel:
        stub = pb_grpc.RaglineStub(channel)
        found = stub.Search(pb.SearchRequest(query="zebras", k=10), metadata=metadata(GLOBEX))
        assert found.hits and {h.metadata["tenant"] for h in found.hits} == {"globex"}
        stats = stub.Stats(pb.StatsRequest(), metadata=metadata(GLOBEX))
        assert stats.chunks == 2 and stats.sources == 2
        events = list(
            stub.Ask(
                pb.AskRequest(question="What do zebras do?", k=4),
                metadata=metadata(GLOBEX),
                timeout=120,
            )
        )
        answer = events[-1].answer
        assert answer.contexts and {c.metadata["tenant"] for c in answer.contexts} == {"globex"}

        def ingest(key: str, metadata_value: dict[str, Any] | None) -> Any:
            document = pb.Document(id="g.md", text="Globex gardens grow giant gourds.")
            if metadata_value is not None:
                document.metadata.update(metadata_value)
            return stub.Ingest(iter([pb.IngestRequest(document=document)]), metadata=metadata(key))

        for key, meta in ((GLOBEX, {"tenant": "acme"}), (GLOBEX_READER, None)):
            with pytest.raises(grpc.RpcError) as caught:
                ingest(key, meta)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert ingest(GLOBEX, None).chunks_written == 1
        gourds = stub.Search(pb.SearchRequest(query="gourds", k=1), metadata=metadata(GLOBEX))
        assert gourds.hits[0].metadata["tenant"] == "globex"
        none = stub.Search(pb.SearchRequest(query="gourds", k=10), metadata=metadata(ACME))
        assert all(h.metadata["tenant"] == "acme" for h in none.hits)
    with client(tenants, GLOBEX) as globex:
        globex.request("DELETE", "/v1/documents", json={"filters": {"source": "g.md"}})


# -- MCP --------------------------------------------------------------------------------------
@pytest.mark.integration
async def test_mcp_tools_apply_the_scope(tenants):
    pytest.importorskip("mcp")
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers=auth(ACME))
    mcp_client = Client(
        streamable_http_client(tenants["url"] + "/mcp", http_client=http), mode="legacy"
    )
    async with http, mcp_client:
        result = await mcp_client.call_tool("search", {"query": "zebras volcano", "k": 10})
        assert not result.is_error, result.content
        hits = (result.structured_content or json.loads(result.content[0].text))["hits"]
        assert hits and tenants_of(hits) == {"acme"}
        asked = await mcp_client.call_tool("ask", {"question": "What does Globex build?"})
        assert not asked.is_error, asked.content
        answer = asked.structured_content or json.loads(asked.content[0].text)
        assert tenants_of(answer["contexts"]) == {"acme"}


# -- the keys file ----------------------------------------------------------------------------
KEYS_FILE = """\
keys:
  - name: acme
    key: ${ACME_TEST_KEY}
    filter: {tenant: acme}
    operations: [read, write]
  - name: globex-reader
    key: globex-read-0123456789abcdef
    filter: {tenant: globex}
    operations: [read]
"""


def test_a_keys_file_gives_each_key_its_scope(tmp_path, monkeypatch):
    path = tmp_path / "keys.yaml"
    path.write_text(KEYS_FILE)
    monkeypatch.setenv("ACME_TEST_KEY", ACME)
    keys = load_keys_file(path)
    ring = KeyRing(keys)
    acme = ring.scope_of(ACME.encode())
    assert acme == KeyScope("acme", {"tenant": "acme"}, frozenset({"read", "write"}))
    reader = ring.scope_of_header(f"Bearer {GLOBEX_READER}")
    assert reader is not None and reader.operations == frozenset({"read"})
    assert ring.scope_of(b"not-a-key-0123456789") is None
    assert ACME not in repr(keys)  # the key never shows
    monkeypatch.setenv("RAGLINE_API_KEYS", API_KEY)
    monkeypatch.setenv(API_KEYS_FILE_ENV, str(path))
    from_env = keys_from_env()
    assert from_env[0] == API_KEY and len(from_env) == 3  # plain keys keep full access


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("keys:\n  - name: a\n    key: short\n", 3, "at least 16 characters"),
        ("keys:\n  - name: a\n    key: k-0123456789abcdef\n    filter: {$or: []}\n", 4, "$or"),
        (
            "keys:\n  - name: a\n    key: k-0123456789abcdef\n    filter: {tenant: [x]}\n",
            4,
            "must be a text, number or boolean",
        ),
        (
            "keys:\n  - name: a\n    key: k-0123456789abcdef\n    operations: [admin]\n",
            4,
            "operations",
        ),
        ("keys:\n  - name: a\n    key: k-0123456789abcdef\n    tenant: x\n", 2, "unknown field"),
        (
            "keys:\n  - {name: a, key: k-0123456789abcdef}\n  - {name: a, key: k-fedcba987654321}\n",
            3,
            "used twice",
        ),
        ("- k-0123456789abcdef\n", None, "one field, 'keys'"),
    ],
)
def test_a_wrong_keys_file_names_the_file_line_and_field(tmp_path, text, line, expected):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_keys_file(path)
    message = str(caught.value)
    assert str(path) in message and expected in message
    if line is not None:
        assert f"{path}:{line}" in message
    assert "0123456789abcdef" not in message  # never the key


def test_a_key_given_twice_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        KeyRing([ACME, ApiKey(ACME, KeyScope("acme"))])


@pytest.mark.integration
def test_rag_serve_reads_the_keys_file(tmp_path, monkeypatch, embedder):
    """``build_app`` takes the keys file's scoped keys beside RAGLINE_API_KEYS."""
    from rag.serve.cli_serve import build_app

    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"name": "acme", "key": ACME, "filter": {"t": "a"}}]}))
    monkeypatch.delenv("RAGLINE_API_KEYS", raising=False)
    app_file = build_app_file(tmp_path / "index", embedder, None)
    app = build_app(app_file, keys_file=path)
    guard_keys = _guard_of(app).keys
    assert len(guard_keys) == 1 and guard_keys.scope_of(ACME.encode()).filter == {"t": "a"}


def _guard_of(app: Any) -> Any:
    from rag.serve._guard import Guard

    stack = app.build_middleware_stack()
    while stack is not None and not isinstance(stack, Guard):
        stack = getattr(stack, "app", None)
    assert stack is not None
    return stack
