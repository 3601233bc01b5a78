"""Small doubles for chain tests: a retriever over a fixed list, scripted OpenAI responses."""

from __future__ import annotations

import json
from typing import Any

import httpx

from rag.connectors.generators.openai import OpenAIGenerator
from rag.core import Chunk, Component, Hit

# The components of a question-answering pipeline file, before its chain (YAML text).
QA_COMPONENTS_YAML = (
    "components:\n"
    "  retriever: {type: retriever.dense, init_parameters: {embedder: '@embedder', store: '@store'}}\n"
    "  embedder: {type: embedder.sentence_transformers, init_parameters: {model: all-MiniLM-L6-v2}}\n"
    "  store: {type: store.faiss}\n"
    "  generator: {type: generator.llama_cpp, init_parameters: {model: smollm2-135m-instruct}}\n"
)


class ListRetriever(Component):
    """Returns the given texts in order (scores 1.0, 0.9, ...), as chunks of ``doc<i>.md``."""

    outputs = {"hits": list[Hit]}

    def __init__(self, *, texts: list[str]) -> None:
        self.texts = texts
        self.calls: list[dict[str, Any]] = []

    def retrieve(self, query: str, *, k: int | None = None, filters: Any = None) -> list[Hit]:
        self.calls.append({"query": query, "k": k, "filters": filters})
        chunks = [
            Chunk.create(text=t, source_id=f"doc{i}.md", position=0)
            for i, t in enumerate(self.texts, start=1)
        ]
        return [Hit(c, round(1.0 - i / 10, 3)) for i, c in enumerate(chunks[: k or 5])]

    def run(self, query: str) -> dict[str, Any]:
        return {"hits": self.retrieve(query)}


def reply(
    content: str | None = None, *, calls: list[tuple[str, Any]] | None = None
) -> httpx.Response:
    """An OpenAI chat completion with ``content`` or tool ``calls`` [(name, arguments)]."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for i, (name, args) in enumerate(calls)
        ]
    return httpx.Response(
        200,
        json={
            "choices": [{"message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3},
        },
    )


class Script:
    """MockTransport handler: answers with ``responses`` in order (the last one repeats)."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


def scripted_generator(script: Script, **params: Any) -> OpenAIGenerator:
    return OpenAIGenerator(
        model="scripted",
        base_url="http://llm.test/v1",
        transport=httpx.MockTransport(script),
        backoff=0.0,
        context_window=4096,
        max_tokens=64,
        **params,
    )
