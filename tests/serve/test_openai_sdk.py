"""The official OpenAI Python SDK as a client of a real ``rag serve`` on 127.0.0.1.

The OpenAI-compatible routes are checked with the client people use, not with ragline's own
idea of the contract: models, chat (plain and streamed, with usage), embeddings (the SDK asks
for base64 by default and decodes it), and errors the SDK turns into its typed exceptions.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.serve.conftest import API_KEY

openai = pytest.importorskip("openai", reason="the OpenAI SDK is not installed: pip install openai")
pytestmark = pytest.mark.integration
QUESTION = "What is FAISS?"


@pytest.fixture()
def sdk(base_url):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0, timeout=300)
    yield client
    client.close()


def test_models_lists_the_served_model(sdk):
    models = sdk.models.list()
    assert [m.id for m in models.data] == ["ragline"]
    assert models.data[0].owned_by == "ragline"


def test_chat_completion(sdk):
    completion = sdk.chat.completions.create(
        model="ragline", messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.object == "chat.completion" and completion.model == "ragline"
    (choice,) = completion.choices
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage  # counted by the generator (0 when the answer style decodes none)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens >= 0
    # ragline's extra field survives the SDK (what is cited is the answer style's business)
    citations = completion.model_extra["citations"]
    assert isinstance(citations, list) and all(c["source"] and c["id"] for c in citations)


def test_streamed_chat_completion_with_usage(sdk):
    stream = sdk.chat.completions.create(
        model="ragline",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and not any(finishes[:-1])
    usage = chunks[-1].usage  # include_usage: one last chunk without choices
    assert (
        chunks[-1].choices == []
        and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    )
    assert all(c.id == chunks[0].id for c in chunks)


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_embeddings_equal_the_local_embedder(sdk, embedder, encoding):
    texts = ["The cat sat on the mat.", "FAISS searches dense vectors."]
    kwargs = {} if encoding == "base64" else {"encoding_format": "float"}  # the SDK's default
    response = sdk.embeddings.create(model="all-MiniLM-L6-v2", input=texts, **kwargs)
    vectors = np.asarray([d.embedding for d in response.data], dtype=np.float32)
    assert [d.index for d in response.data] == [0, 1]
    assert np.allclose(vectors, embedder.embed_documents(texts), atol=1e-6)
    assert response.usage.prompt_tokens > 0


def test_a_wrong_key_is_an_authentication_error(base_url):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(
            model="ragline", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 401
    assert "missing or invalid API key" in caught.value.message
    assert caught.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="m", input=["a"])
    client.close()


# 400 is what OpenAI answers to an invalid parameter, and so do ragline's OpenAI-compatible
# routes: the SDK raises BadRequestError and exposes the offending field as ``param``.


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda c: c.chat.completions.create(
                model="ragline", messages=[{"role": "user", "content": "hi"}], temperature=5
            ),
            "temperature",
        ),
        (
            lambda c: c.chat.completions.create(
                model="ragline", messages=[{"role": "user", "content": "hi"}], n=2
            ),
            "n",
        ),
        (lambda c: c.chat.completions.create(model="ragline", messages=[]), "messages"),
        (lambda c: c.embeddings.create(model="m", input=[]), "input"),
    ],
)
def test_invalid_parameters_are_typed_sdk_errors_naming_the_field(sdk, call, field):
    with pytest.raises(openai.APIStatusError) as caught:
        call(sdk)
    error = caught.value
    assert isinstance(error, openai.BadRequestError), (error.status_code, error.message)
    assert error.status_code == 400
    assert error.param is not None and error.param.split(".")[-1] == field, error.param
    assert field in error.message and error.type == "invalid_request_error"
