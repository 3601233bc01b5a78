"""The HTTP API on a real uvicorn server (loopback), the real embedder and the local model."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.serve.conftest import API_KEY, OTHER_KEY, build_app_file, running

pytestmark = pytest.mark.integration


def _sse_events(text: str) -> list[tuple[str | None, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        event, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append((event, "\n".join(data)))
    return events


def _assert_error(response: httpx.Response, status: int, *, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert error["message"]
    if field is not None:
        assert field in [f["field"] for f in error["fields"]], error
    return error


# -- authentication ---------------------------------------------------------------------------------
def test_health_needs_no_key(base_url):
    response = httpx.get(f"{base_url}/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/stats"),
        ("POST", "/v1/search"),
        ("POST", "/v1/ask"),
        ("POST", "/v1/documents"),
        ("DELETE", "/v1/documents"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-key-0123456789abcdef", f"Basic {API_KEY}", "Bearer"]
)
def test_every_endpoint_but_health_needs_a_valid_key(base_url, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    # A malformed body must not be parsed (and answered 422) before the key is checked.
    response = httpx.request(
        method, f"{base_url}{path}", headers=headers, content=b"{not json", timeout=30
    )
    error = _assert_error(response, 401)
    assert error["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"


def test_any_configured_key_is_accepted(base_url):
    for key in (API_KEY, OTHER_KEY):
        response = httpx.get(f"{base_url}/v1/stats", headers={"Authorization": f"bearer {key}"})
        assert response.status_code == 200, key


# -- search and stats -------------------------------------------------------------------------------
def test_search_matches_the_in_process_retriever(client, qa_app_file):
    response = client.post("/v1/search", json={"query": "How does HNSW find neighbours?", "k": 3})
    assert response.status_code == 200
    body = response.json()
    retriever = qa_app_file.pipeline("search").get_component("retriever")
    expected = retriever.retrieve("How does HNSW find neighbours?", k=3)
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]
    assert any(h["metadata"]["source"].endswith("hnsw.html") for h in body["hits"])
    assert body["hits"][0]["score"] == pytest.approx(expected[0].score, abs=1e-5)


def test_search_applies_filters(client):
    response = client.post(
        "/v1/search",
        json={"query": "vector search", "k": 5, "filters": {"file_type": {"$in": ["txt"]}}},
    )
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert hits and all(h["metadata"]["file_type"] == "txt" for h in hits)


def test_stats_has_the_cli_shape(client):
    body = client.get("/v1/stats").json()
    assert set(body) == {"chunks", "sources", "store", "dimension"}
    assert body["store"] == "store.faiss" and body["dimension"] == 384 and body["chunks"] > 0


# -- bad input --------------------------------------------------------------------------------------
def test_unknown_filter_operator_is_a_field_level_422(client):
    response = client.post("/v1/search", json={"query": "q", "filters": {"year": {"$near": 3}}})
    error = _assert_error(response, 422, field="body.filters")
    assert "$near" in error["message"] and "$gte" in error["message"]  # offender and options


def test_unknown_field_is_refused(client):
    response = client.post("/v1/search", json={"query": "q", "filter": {"source": "a.md"}})
    error = _assert_error(response, 422, field="body.filter")
    assert "not permitted" in error["message"]


def test_malformed_json_is_a_422(client):
    response = client.post(
        "/v1/search", content=b'{"query": "q",', headers={"content-type": "application/json"}
    )
    error = _assert_error(response, 422)
    assert "JSON" in error["message"]


@pytest.mark.parametrize("body", [{"query": ""}, {"query": "q", "k": 0}, {"query": "q", "k": "x"}])
def test_invalid_values_name_their_field(client, body):
    field = "body.k" if "k" in body else "body.query"
    _assert_error(client.post("/v1/search", json=body), 422, field=field)


def test_oversized_body_is_refused_from_its_length(client):
    response = client.post("/v1/search", json={"query": "x" * 70_000})
    error = _assert_error(response, 413)
    assert "65536" in error["message"]


def test_oversized_chunked_body_is_refused_while_reading(client):
    def chunks():
        for _ in range(20):
            yield b" " * 8192  # no Content-Length: the server counts as it reads

    response = client.post(
        "/v1/search", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_error(response, 413)


def test_an_internal_error_is_json_without_a_stack_trace(embedder, tmp_path):
    app_file = build_app_file(tmp_path / "index", embedder, None)
    retriever = app_file.pipeline("search").get_component("retriever")

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail /etc/passwd")

    retriever.retrieve = broken  # this app's own retriever instance
    from rag.serve import create_app

    with running(create_app(app_file, api_keys=[API_KEY])) as url:
        response = httpx.post(
            f"{url}/v1/search",
            json={"query": "q"},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    error = _assert_error(response, 500)
    assert "secret detail" not in response.text and error["code"] == "internal"


# -- documents --------------------------------------------------------------------------------------
def test_inline_documents_are_searchable_replaced_and_deleted(client):
    text = "The okapi is a giraffid mammal of the Congo rainforest with striped legs."
    added = client.post(
        "/v1/documents",
        json={"documents": [{"id": "okapi.txt", "text": text, "metadata": {"lang": "en"}}]},
    )
    assert added.status_code == 200, added.text
    assert added.json()["chunks_written"] == 1
    hits = client.post(
        "/v1/search", json={"query": "okapi rainforest", "k": 1, "filters": {"lang": "en"}}
    ).json()["hits"]
    assert hits[0]["text"] == text and hits[0]["metadata"]["source"] == "okapi.txt"

    replaced = client.post(
        "/v1/documents",
        json={"documents": [{"id": "okapi.txt", "text": "Okapis eat leaves and fruit."}]},
    )
    assert replaced.json()["chunks_deleted"] == 1  # the old version's chunk
    found = client.post(
        "/v1/search", json={"query": "okapi", "k": 5, "filters": {"source": "okapi.txt"}}
    ).json()["hits"]
    assert [h["text"] for h in found] == ["Okapis eat leaves and fruit."]

    deleted = client.request("DELETE", "/v1/documents", json={"ids": [found[0]["id"]]})
    assert deleted.json() == {"deleted": 1}
    gone = client.post("/v1/search", json={"query": "okapi", "filters": {"source": "okapi.txt"}})
    assert gone.json()["hits"] == []


def test_delete_by_filter_and_bad_delete_requests(client):
    docs = [
        {"id": f"tmp{i}.txt", "text": f"Temporary note {i}.", "metadata": {"batch": 7}}
        for i in range(3)
    ]
    assert client.post("/v1/documents", json={"documents": docs}).status_code == 200
    before = client.get("/v1/stats").json()["chunks"]
    response = client.request("DELETE", "/v1/documents", json={"filters": {"batch": 7}})
    assert response.json() == {"deleted": 3}
    assert client.get("/v1/stats").json()["chunks"] == before - 3
    _assert_error(client.request("DELETE", "/v1/documents", json={"filters": {}}), 422)
    _assert_error(
        client.request("DELETE", "/v1/documents", json={"filters": {"a": {"$regex": "x"}}}),
        422,
        field="body.filters",
    )


def test_uploaded_files_are_ingested_under_their_name(client):
    files = [
        ("files", ("../../capybara.md", b"# Capybara\n\nThe capybara is the largest rodent.\n"))
    ]
    response = client.post("/v1/documents", files=files)
    assert response.status_code == 200, response.text
    assert response.json()["chunks_written"] >= 1
    hits = client.post("/v1/search", json={"query": "largest rodent", "k": 1}).json()["hits"]
    assert hits[0]["metadata"]["source"] == "capybara.md"  # the directories are dropped
    mixed = [
        ("files", ("x.exe", b"MZ")),
        ("files", ("okapi.md", b"# Okapi\n\nA forest giraffe.\n")),
    ]
    partly = client.post("/v1/documents", files=mixed)
    assert partly.status_code == 200  # what loads is ingested; the rest is named per file
    assert "unsupported file type" in partly.json()["errors"][0]["error"]
    assert partly.json()["errors"][0]["source"] == "x.exe"
    unsupported = client.post("/v1/documents", files=[("files", ("x.exe", b"MZ"))])
    error = _assert_error(unsupported, 422, field="body.files")  # nothing could be loaded
    assert "x.exe" in error["message"] and "unsupported file type" in error["message"]
    _assert_error(
        client.post("/v1/documents", data={"replace": "true"}, files=[("other", ("a.md", b"x"))]),
        422,
    )


def test_paths_under_the_allowed_root_are_ingested_incrementally(client):
    first = client.post("/v1/documents", json={"paths": ["docs"]})
    assert first.status_code == 200, first.text
    assert first.json()["sources"] == 1 and first.json()["chunks_written"] >= 1
    again = client.post("/v1/documents", json={"paths": ["docs/zebra.md"]}).json()
    assert again["chunks_written"] == 0 and again["chunks_skipped"] >= 1
    hits = client.post("/v1/search", json={"query": "striped equines", "k": 1}).json()["hits"]
    source = hits[0]["metadata"]["source"]
    assert source.endswith("zebra.md")
    # Deleting a file's chunks through the API drops its ingestion record, so ingesting the
    # unchanged file again writes it back instead of trusting a record of chunks that are gone.
    deleted = client.request("DELETE", "/v1/documents", json={"filters": {"source": source}})
    assert deleted.json()["deleted"] == first.json()["chunks_written"]
    restored = client.post("/v1/documents", json={"paths": ["docs"]}).json()
    assert restored["chunks_written"] == first.json()["chunks_written"]


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.md",  # '..' out of the root
        "docs/../../outside",
        "escape/secret.md",  # a symlink inside the root that points out
        "escape",
        "/etc/passwd",
    ],
)
def test_paths_outside_the_allowed_roots_are_refused(client, roots, path):
    response = client.post("/v1/documents", json={"paths": [path]})
    error = _assert_error(response, 403)
    assert error["code"] == "path_not_allowed"
    leaked = client.post("/v1/search", json={"query": "launch code", "k": 3}).json()["hits"]
    assert all("secret" not in h["metadata"]["source"] for h in leaked)


def test_documents_need_exactly_one_kind_of_input(client):
    _assert_error(client.post("/v1/documents", json={}), 422)
    _assert_error(client.post("/v1/documents", json={"paths": ["docs"], "documents": []}), 422)
    _assert_error(
        client.post("/v1/documents", content=b"x", headers={"content-type": "text/plain"}), 415
    )


# -- answers ----------------------------------------------------------------------------------------
def test_ask_answers_with_contexts_and_prompt(client):
    response = client.post("/v1/ask", json={"question": "What is FAISS?", "k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"].strip()
    assert len(body["contexts"]) == 2
    assert all(c["id"] in {x["id"] for x in body["contexts"]} for c in body["citations"])
    assert body["timings"]["total"] > 0
    # with a local model the default style copies the answering sentence: nothing is sent to
    # the model, so the prompt is empty, and a copied answer carries the span it came from
    assert body["answer_style"] == "evidence" and body["prompt"] == ""
    if body["grounded"]:
        span = body["span"]
        assert span["id"] in {c["id"] for c in body["contexts"]}


def test_ask_answers_in_the_style_the_request_names(client):
    question = {"question": "What does FAISS store?", "k": 2}
    response = client.post("/v1/ask", json={**question, "answer_style": "extractive"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer_style"] == "extractive" and body["answer"].strip()
    assert client.post("/v1/ask", json=question).json()["answer_style"] == "evidence"  # as before
    with client.stream(
        "POST", "/v1/ask", json={**question, "answer_style": "style.extractive", "stream": True}
    ) as streamed:
        events = _sse_events(streamed.read().decode())
    assert json.loads(events[-1][1])["answer_style"] == "extractive"
    error = _assert_error(
        client.post("/v1/ask", json={**question, "answer_style": "extractiv"}),
        422,
        field="body.answer_style",
    )
    assert "Did you mean 'extractive'?" in error["message"] and "sentences" in error["message"]


def test_ask_response_keeps_the_proven_span_of_an_extractive_answer():
    from rag.chains.answer import Answer, AnswerSpan, Context
    from rag.serve._schemas import AskResponse

    context = Context(index=1, id="c1", text="FAISS stores dense vectors.", source="f.md")
    answer = Answer(
        question="What does FAISS store?",
        text="dense vectors",
        contexts=[context],
        answer_style="extractive",
        grounded=True,
        span=AnswerSpan(index=1, id="c1", start=13, end=26, logprob=-0.5),
    )
    body = AskResponse.model_validate(answer.to_dict()).model_dump()
    assert body["grounded"] is True
    assert body["span"] == {"index": 1, "id": "c1", "start": 13, "end": 26, "logprob": -0.5}


def test_ask_streams_tokens_then_the_answer(client):
    with client.stream("POST", "/v1/ask", json={"question": "What is BM25?", "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(r.read().decode())
    tokens = [json.loads(data)["text"] for event, data in events if event == "token"]
    assert tokens and events[-1][0] == "answer"
    answer = json.loads(events[-1][1])
    assert "".join(tokens) == answer["answer"]


def test_an_abandoned_stream_releases_the_model(base_url, client):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=60) as other,
        other.stream("POST", "/v1/ask", json={"question": "What is RAG?", "stream": True}) as r,
    ):
        first = next(r.iter_lines())
        assert first.startswith("event: token")
        # the client hung up after one token; the model lock must be free again
    response = client.post("/v1/search", json={"query": "RAG", "k": 1}, timeout=30)
    assert response.status_code == 200


def test_ask_refuses_a_question_that_cannot_fit(client, local_generator):
    question = "\N{EURO SIGN}" * 3_000  # under the 4000-character limit, but one token each
    assert local_generator.count_tokens(question) > local_generator.context_window
    response = client.post("/v1/ask", json={"question": question})
    error = _assert_error(response, 422)
    assert error["code"] == "question_too_long"


def test_openai_client_talks_to_the_pipeline(base_url):
    openai = pytest.importorskip("openai")
    llm = openai.OpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)
    assert [m.id for m in llm.models.list()] == ["ragline"]
    completion = llm.chat.completions.create(
        model="ragline",
        messages=[{"role": "user", "content": "What is FAISS?"}],
        max_tokens=16,
        extra_body={"k": 2},
    )
    assert completion.choices[0].message.content.strip()
    assert completion.model_extra["citations"]  # ragline's extra field
    stream = llm.chat.completions.create(
        model="ragline", messages=[{"role": "user", "content": "What is FAISS?"}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == completion.choices[0].message.content  # greedy, same prompt
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base_url}/v1", api_key="x" * 20, max_retries=0).models.list()


def test_openai_client_picks_the_answer_style_as_an_extension(base_url, client):
    openai = pytest.importorskip("openai")
    llm = openai.OpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)
    question = "What does FAISS store?"
    completion = llm.chat.completions.create(
        model="ragline",
        messages=[{"role": "user", "content": question}],
        extra_body={"k": 2, "answer_style": "extractive"},
    )
    asked = client.post(
        "/v1/ask", json={"question": question, "k": 2, "answer_style": "extractive"}
    )
    assert completion.choices[0].message.content == asked.json()["answer"]
    with pytest.raises(openai.BadRequestError, match="answer_style"):
        llm.chat.completions.create(
            model="ragline",
            messages=[{"role": "user", "content": question}],
            extra_body={"answer_style": "bullets"},
        )


def test_chat_completions_validates_messages(client):
    no_user = {"model": "ragline", "messages": [{"role": "system", "content": "hi"}]}
    _assert_error(client.post("/v1/chat/completions", json=no_user), 400)
    bad_role = {"model": "ragline", "messages": [{"role": "wizard", "content": "hi"}]}
    _assert_error(client.post("/v1/chat/completions", json=bad_role), 400)


# -- concurrency --------------------------------------------------------------------------------------
async def test_fifty_concurrent_requests_complete(base_url):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=120, limits=limits
    ) as http:
        requests = [
            http.post("/v1/search", json={"query": f"vector index number {i}", "k": 3})
            for i in range(44)
        ]
        requests += [http.get("/v1/stats") for _ in range(3)]
        requests += [http.post("/v1/ask", json={"question": f"What is RAG {i}?"}) for i in range(3)]
        responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 50
    assert all(len(r.json()["hits"]) == 3 for r in responses[:44])


# -- schema -----------------------------------------------------------------------------------------
def test_openapi_schema_is_published(base_url):
    schema = httpx.get(f"{base_url}/openapi.json").json()
    assert {
        "/v1/ask",
        "/v1/search",
        "/v1/documents",
        "/v1/health",
        "/v1/stats",
        "/v1/chat/completions",
    } <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    documents = schema["paths"]["/v1/documents"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(documents)
    assert "DocumentIn" in schema["components"]["schemas"]
