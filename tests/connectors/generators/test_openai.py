"""generator.openai against a real OpenAI-compatible server on loopback, and its error paths
through ``httpx.MockTransport``."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from rag.connectors.generators.openai import OpenAIGenerator
from rag.core import ConfigError, GenerationError, Pipeline, Secret
from rag.core.generation import GenerationResult, Generator

from .conftest import free_port

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the documents.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}
BASE = "http://llm.test/v1"


def completion(content="Paris.", *, tool_calls=None, finish_reason="stop"):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
    }


class Recorder:
    """A MockTransport handler that answers with scripted responses and keeps the requests."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(response, Exception):
            raise response
        return response

    @property
    def bodies(self):
        return [json.loads(r.content) for r in self.requests]


def mocked(handler, **params):
    params = {"max_retries": 2, "backoff": 0.0, **params}
    return OpenAIGenerator(
        model="test-model", base_url=BASE, transport=httpx.MockTransport(handler), **params
    )


# -- against the real server ---------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_generates_from_a_real_server(openai_server):
    generator = OpenAIGenerator(model="smollm2", base_url=openai_server, max_tokens=8, seed=0)
    assert isinstance(generator, Generator)
    result = generator.generate(QUESTION)
    assert isinstance(result, GenerationResult)
    assert result.text
    assert result.usage.prompt_tokens > 0 and 0 < result.usage.completion_tokens <= 8
    assert generator.attempts == 1


@pytest.mark.integration
@pytest.mark.slow
def test_streams_server_sent_events_from_a_real_server(openai_server):
    generator = OpenAIGenerator(model="smollm2", base_url=openai_server, max_tokens=8, seed=0)
    whole = generator.generate(QUESTION)
    items = list(generator.generate(QUESTION, stream=True))
    pieces, final = items[:-1], items[-1]
    assert isinstance(final, GenerationResult)
    assert len(pieces) > 1
    assert "".join(pieces) == final.text == whole.text
    assert final.finish_reason in ("stop", "length")


@pytest.mark.integration
@pytest.mark.slow
def test_tool_call_in_openai_format_from_a_real_server(openai_server):
    generator = OpenAIGenerator(model="smollm2", base_url=openai_server, max_tokens=40, seed=0)
    result = generator.generate(
        [{"role": "user", "content": "Search the documents for HNSW."}],
        tools=[SEARCH_TOOL],
        tool_choice={"type": "function", "function": {"name": "search"}},
    )
    (call,) = result.tool_calls
    assert call.name == "search"
    assert isinstance(call.arguments.get("query"), str)
    assert call.id


@pytest.mark.integration
def test_server_down_is_retried_a_bounded_number_of_times():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    generator = OpenAIGenerator(model="m", base_url=url, max_retries=2, backoff=0.0)
    with pytest.raises(GenerationError) as err:
        generator.generate(QUESTION)
    assert f"cannot reach {url}/chat/completions" in str(err.value)
    assert "after 3 attempt(s)" in str(err.value)
    assert generator.attempts == 3


# -- error paths through MockTransport -----------------------------------------------------------
@pytest.mark.unit
def test_429_is_retried_then_succeeds():
    handler = Recorder(
        httpx.Response(429, json={"error": {"message": "slow down"}}),
        httpx.Response(503, text="busy"),
        httpx.Response(200, json=completion("Paris.")),
    )
    generator = mocked(handler)
    assert generator.generate(QUESTION).text == "Paris."
    assert len(handler.requests) == 3 and generator.attempts == 3


@pytest.mark.unit
def test_persistent_500_fails_naming_url_and_status_after_bounded_retries():
    handler = Recorder(httpx.Response(500, json={"error": {"message": "model crashed"}}))
    generator = mocked(handler, max_retries=3)
    with pytest.raises(GenerationError) as err:
        generator.generate(QUESTION)
    message = str(err.value)
    assert f"{BASE}/chat/completions returned HTTP 500: model crashed" in message
    assert "after 4 attempt(s)" in message
    assert len(handler.requests) == 4


@pytest.mark.unit
def test_client_errors_are_not_retried():
    handler = Recorder(httpx.Response(400, json={"error": {"message": "bad model name"}}))
    with pytest.raises(GenerationError, match="HTTP 400: bad model name"):
        mocked(handler).generate(QUESTION)
    assert len(handler.requests) == 1


@pytest.mark.unit
def test_retry_after_is_honoured_but_capped():
    handler = Recorder(
        httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(200, json=completion())
    )
    generator = mocked(handler, backoff=0.01, max_backoff=0.05)
    start = time.monotonic()
    generator.generate(QUESTION)
    assert 0.05 <= time.monotonic() - start < 2


@pytest.mark.unit
def test_connection_errors_are_retried():
    handler = Recorder(httpx.ConnectError("refused"), httpx.Response(200, json=completion("ok")))
    assert mocked(handler).generate(QUESTION).text == "ok"
    assert len(handler.requests) == 2


@pytest.mark.unit
@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json={"object": "list", "data": []}),
        httpx.Response(200, json={"choices": []}),
    ],
)
def test_garbage_body_names_url_and_status(response):
    with pytest.raises(GenerationError) as err:
        mocked(Recorder(response)).generate(QUESTION)
    assert f"{BASE}/chat/completions returned HTTP 200 with a body that is not a chat" in str(
        err.value
    )


@pytest.mark.unit
def test_garbage_stream_event_names_url():
    body = b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\ndata: {not json\n\n'
    handler = Recorder(httpx.Response(200, content=body))
    with pytest.raises(GenerationError, match=f"{BASE}/chat/completions sent a stream event"):
        list(mocked(handler).generate(QUESTION, stream=True))


@pytest.mark.unit
def test_request_body_carries_settings_messages_and_tools():
    handler = Recorder(httpx.Response(200, json=completion()))
    generator = mocked(handler, temperature=0.3, max_tokens=9, stop=["\n"], seed=5)
    history = [
        *QUESTION,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "search", "arguments": {"query": "x"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "found"},
    ]
    generator.generate(history, tools=[SEARCH_TOOL], tool_choice="auto", max_tokens=4)
    (body,) = handler.bodies
    assert body["model"] == "test-model"
    assert (body["temperature"], body["max_tokens"], body["stop"], body["seed"]) == (
        0.3,
        4,
        ["\n"],
        5,
    )
    assert body["tools"] == [SEARCH_TOOL] and body["tool_choice"] == "auto"
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"query": "x"}'
    assert handler.requests[0].url == f"{BASE}/chat/completions"


@pytest.mark.unit
def test_tool_calls_are_parsed_including_invalid_json_arguments():
    calls = [
        {
            "id": "a",
            "type": "function",
            "function": {"name": "search", "arguments": '{"query": "q"}'},
        },
        {"id": "b", "type": "function", "function": {"name": "search", "arguments": "{oops"}},
    ]
    response = httpx.Response(
        200, json=completion(None, tool_calls=calls, finish_reason="tool_calls")
    )
    result = mocked(Recorder(response)).generate(QUESTION, tools=[SEARCH_TOOL])
    assert [c.arguments for c in result.tool_calls] == [
        {"query": "q"},
        {"__invalid_json__": "{oops"},
    ]
    assert result.text == "" and result.finish_reason == "tool_calls"


@pytest.mark.unit
def test_streamed_tool_call_deltas_are_assembled():
    events = [
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c1",
                                "function": {"name": "search", "arguments": ""},
                            }
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"que'}}]}}
            ]
        },
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"arguments": 'ry": "hnsw"}'}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        },
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    items = list(mocked(Recorder(httpx.Response(200, text=body))).generate(QUESTION, stream=True))
    (result,) = items
    assert result.tool_calls[0].name == "search"
    assert result.tool_calls[0].arguments == {"query": "hnsw"}
    assert result.finish_reason == "tool_calls"


@pytest.mark.unit
def test_api_key_comes_from_the_environment_and_is_never_serialized(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGLINE_TEST_KEY", "sk-secret-value")
    handler = Recorder(httpx.Response(200, json=completion()))
    generator = mocked(handler, api_key=Secret.from_env("RAGLINE_TEST_KEY"))
    generator.generate(QUESTION)
    assert handler.requests[0].headers["authorization"] == "Bearer sk-secret-value"
    pipeline = Pipeline("remote")
    pipeline.add_component("generator", generator)
    text = pipeline.dump(tmp_path / "remote.yaml")
    assert "sk-secret-value" not in text and "${RAGLINE_TEST_KEY}" in text
    assert "transport" not in text
    assert "sk-secret-value" not in repr(generator)
    assert Pipeline.load(tmp_path / "remote.yaml") == pipeline


@pytest.mark.unit
def test_a_literal_key_in_configuration_is_refused():
    with pytest.raises(ConfigError, match="never hold the key itself"):
        OpenAIGenerator(model="m", base_url=BASE, api_key="sk-abc-123")


@pytest.mark.unit
def test_missing_api_key_variable_is_reported(monkeypatch):
    monkeypatch.delenv("RAGLINE_UNSET_KEY", raising=False)
    generator = mocked(
        Recorder(httpx.Response(200, json=completion())), api_key="${RAGLINE_UNSET_KEY}"
    )
    with pytest.raises(ConfigError, match="RAGLINE_UNSET_KEY is not set"):
        generator.generate(QUESTION)


@pytest.mark.unit
def test_bad_configuration_values():
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIGenerator(model="m", base_url="localhost:8080")
    with pytest.raises(ConfigError, match="max_retries"):
        OpenAIGenerator(model="m", base_url=BASE, max_retries=100)


@pytest.mark.integration
def test_extractive_chain_through_a_real_server_is_grounded_only_when_verified(openai_server):
    from rag.chains import RagChain
    from rag.chains.extractive import NO_ANSWER, find_quote
    from rag.chains.rag import QUOTE_INSTRUCTION
    from tests.chains.helpers import ListRetriever

    texts = ["Paris is the capital of France.", "Berlin is the capital of Germany."]
    generator = OpenAIGenerator(model="smollm2", base_url=openai_server, max_tokens=24, seed=0)
    chain = RagChain(
        retriever=ListRetriever(texts=texts), generator=generator, answer_style="extractive", k=2
    )
    answer = chain.ask("What is the capital of France?")
    assert QUOTE_INSTRUCTION in answer.prompt
    assert answer.answer_style == "extractive"
    found = find_quote(answer.text, texts)
    # grounded exactly when the reply is found verbatim in a context, and then cited
    assert answer.grounded == (found is not None and answer.text != NO_ANSWER)
    if answer.grounded:
        assert texts[found.context][answer.span.start : answer.span.end] == answer.text
        assert [c.index for c in answer.citations] == [found.context + 1]
    else:
        assert answer.span is None
