"""``generator.openai``: any OpenAI-compatible chat-completions endpoint, over ``httpx``.

Works with OpenAI itself, vLLM, llama.cpp's server, Ollama, LM Studio and others that speak
``POST {base_url}/chat/completions``. The API key is a :class:`~rag.core.secrets.Secret`: YAML
holds ``${OPENAI_API_KEY}``, and the value is read from the environment when the client opens.

Retries: a 429, a 5xx or a connection error is retried ``max_retries`` times, waiting
``backoff * 2**attempt`` seconds (or the server's ``Retry-After``, capped at ``max_backoff``).
Other errors fail at once. Every error names the URL and the HTTP status.

Tests (and applications) pass ``transport=httpx.MockTransport(handler)`` or their own
``httpx.Client`` instead of patching anything.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from rag.connectors._http import (
    check_http_url,
    check_retries,
    post_with_retries,
    secret_reference,
)
from rag.core.component import Component
from rag.core.errors import GenerationError
from rag.core.generation import GenerationResult, Message, ToolCall, Usage
from rag.core.secrets import Secret

OPTIONS = ("temperature", "top_p", "max_tokens", "stop", "seed", "tool_choice")
# Remote tokenizers are unknown here: estimate conservatively (real BPE vocabularies average
# about four characters per token in English; three keeps the estimate on the safe side).
CHARS_PER_TOKEN = 3


class OpenAIGenerator(Component):
    """A chat model behind an OpenAI-compatible HTTP endpoint.

    Args:
        model: The model name the endpoint expects (no default: name it).
        base_url: Endpoint root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``.
        api_key: Environment variable reference (``${OPENAI_API_KEY}``); ``None`` sends no key.
        temperature: Sampling temperature.
        top_p: Nucleus sampling threshold; ``None`` leaves the server's default.
        max_tokens: Most tokens generated per call.
        stop: Stop sequences.
        seed: Sampling seed, when the server supports one.
        timeout: Seconds to wait for a response (read), per attempt.
        connect_timeout: Seconds to wait for a connection.
        max_retries: Retries after a 429, 5xx or connection error (0 disables retries).
        backoff: First wait between attempts in seconds (doubles each retry).
        max_backoff: Longest wait between attempts, including a server's ``Retry-After``.
        context_window: The model's context size in tokens (remote models cannot be asked).
        extra_body: Extra JSON fields sent with every request.
        transport: An ``httpx`` transport (``httpx.MockTransport`` in tests); not serialized.
        client: A ready ``httpx.Client`` to use instead of building one; not serialized.

    Example:
        >>> generator = OpenAIGenerator(
        ...     model="gpt-4o-mini",
        ...     base_url="https://api.openai.com/v1",
        ...     api_key=Secret.from_env("OPENAI_API_KEY"),
        ... )
        >>> generator.to_dict()["init_parameters"]["api_key"]
        '${OPENAI_API_KEY}'
    """

    outputs = {"text": str, "result": GenerationResult}
    _NOT_SERIALIZED = ("transport", "client")

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: Secret | None = None,
        temperature: float = 0.0,
        top_p: float | None = None,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        seed: int | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        context_window: int = 8192,
        extra_body: dict[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        base_url = check_http_url(base_url)
        check_retries(max_retries)
        api_key = secret_reference(api_key)
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.stop = list(stop or [])
        self.seed = seed
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._context_window = context_window
        self.extra_body = dict(extra_body or {})
        self._transport = transport
        self._client = client
        self._lock = threading.Lock()
        self.attempts = 0
        """HTTP attempts made by the last call (1 + retries)."""

    @property
    def init_parameters(self) -> dict[str, Any]:
        params = super().init_parameters
        for name in self._NOT_SERIALIZED:
            params.pop(name, None)
        return params

    @property
    def url(self) -> str:
        """The chat-completions URL."""
        return f"{self.base_url}/chat/completions"

    @property
    def context_window(self) -> int:
        return self._context_window

    # -- lifecycle -----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Open the HTTP client (reads the API key from the environment)."""
        if self._client is not None:
            return
        with self._lock:
            if self._client is not None:
                return
            headers = {"Content-Type": "application/json"}
            if self.api_key is not None:
                headers["Authorization"] = f"Bearer {self.api_key.resolve()}"
            self._client = httpx.Client(
                headers=headers,
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                transport=self._transport,
            )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- tokens --------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """A conservative estimate (the remote tokenizer is not available here)."""
        return len(text) // CHARS_PER_TOKEN + 1

    def count_message_tokens(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None
    ) -> int:
        """Estimated prompt tokens: contents plus a few tokens of framing per message."""
        total = sum(self.count_tokens(str(m.get("content") or "")) + 4 for m in messages)
        if tools:
            total += self.count_tokens(json.dumps(list(tools)))
        return total + 3

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to about ``max_tokens`` tokens."""
        return text[: max(0, max_tokens) * CHARS_PER_TOKEN]

    # -- requests ------------------------------------------------------------------------------
    def _body(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None,
        stream: bool,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise TypeError(
                f"unknown generation option(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(OPTIONS)}"
            )
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire_message(m) for m in messages],
            "temperature": options.get("temperature", self.temperature),
            "max_tokens": options.get("max_tokens", self.max_tokens),
            "stream": stream,
        }
        top_p = options.get("top_p", self.top_p)
        if top_p is not None:
            body["top_p"] = top_p
        stop = options.get("stop") or self.stop
        if stop:
            body["stop"] = stop
        seed = options.get("seed", self.seed)
        if seed is not None:
            body["seed"] = seed
        if tools:
            body["tools"] = list(tools)
            if "tool_choice" in options:
                body["tool_choice"] = options["tool_choice"]
        body.update(self.extra_body)
        return body

    def _send(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """POST with bounded retries; returns an open response with status 2xx."""
        self.warm_up()
        assert self._client is not None
        attempts: list[int] = []
        try:
            return post_with_retries(
                self._client,
                self.url,
                body,
                max_retries=self.max_retries,
                backoff=self.backoff,
                max_backoff=self.max_backoff,
                error=GenerationError,
                stream=stream,
                attempts=attempts,
            )
        finally:
            self.attempts = attempts[0] if attempts else 0

    def generate(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        stream: bool = False,
        **options: Any,
    ) -> GenerationResult | Iterator[str | GenerationResult]:
        """Send ``messages`` (and ``tools`` in OpenAI format) to the endpoint.

        Args:
            messages: OpenAI-style chat messages.
            tools: ``[{"type": "function", "function": {...}}]``.
            stream: Return an iterator of text pieces (server-sent events) ending with the
                ``GenerationResult``.
            **options: Per-call ``temperature``, ``top_p``, ``max_tokens``, ``stop``, ``seed``,
                ``tool_choice``.

        Raises:
            GenerationError: naming the URL and the status (after bounded retries), or a body that
                is not a chat completion.
        """
        body = self._body(messages, tools, stream, options)
        if stream:
            return self._stream(body)
        response = self._send(body, stream=False)
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise GenerationError(
                f"{self.url} returned HTTP {response.status_code} with a body that is not a chat "
                f"completion ({type(err).__name__}: {err}): {response.text[:200]!r}"
            ) from None
        usage = data.get("usage") or {}
        return GenerationResult(
            text=message.get("content") or "",
            tool_calls=[self._tool_call(c) for c in message.get("tool_calls") or []],
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            ),
            finish_reason=choice.get("finish_reason"),
        )

    def _tool_call(self, call: dict[str, Any]) -> ToolCall:
        function = call.get("function") or {}
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
        except json.JSONDecodeError:
            # Kept as text so the chain can tell the model its arguments were invalid.
            arguments = {"__invalid_json__": raw}
        return ToolCall(
            name=str(function.get("name", "")), arguments=arguments, id=call.get("id", "")
        )

    def _stream(self, body: dict[str, Any]) -> Iterator[str | GenerationResult]:
        response = self._send(body, stream=True)
        pieces: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage = Usage()
        finish_reason = None
        try:
            for data in _server_sent_events(response, self.url):
                if data.get("usage"):
                    usage = Usage(
                        prompt_tokens=int(data["usage"].get("prompt_tokens") or 0),
                        completion_tokens=int(data["usage"].get("completion_tokens") or 0),
                    )
                for choice in data.get("choices") or []:
                    finish_reason = choice.get("finish_reason") or finish_reason
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        pieces.append(delta["content"])
                        yield delta["content"]
                    for part in delta.get("tool_calls") or []:
                        entry = calls.setdefault(
                            int(part.get("index", 0)),
                            {"id": "", "function": {"name": "", "arguments": ""}},
                        )
                        entry["id"] = part.get("id") or entry["id"]
                        function = part.get("function") or {}
                        entry["function"]["name"] += function.get("name") or ""
                        entry["function"]["arguments"] += function.get("arguments") or ""
        except httpx.TransportError as err:
            raise GenerationError(f"stream from {self.url} broke: {err}") from err
        finally:
            response.close()
        if not usage.completion_tokens and pieces:
            usage.completion_tokens = len(pieces)  # one piece per token on every server seen
        yield GenerationResult(
            text="".join(pieces),
            tool_calls=[self._tool_call(calls[i]) for i in sorted(calls)],
            usage=usage,
            finish_reason=finish_reason,
        )

    def run(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> dict:
        """Generate once; ``result`` carries tool calls and token usage."""
        result = self.generate(messages, tools=tools)
        assert isinstance(result, GenerationResult)
        return {"text": result.text, "result": result}


def _wire_message(message: Message) -> dict[str, Any]:
    """A message as the wire format wants it (tool-call arguments as JSON text)."""
    wire = dict(message)
    if wire.get("tool_calls"):
        wire["tool_calls"] = [
            {
                **call,
                "function": {
                    **call["function"],
                    "arguments": call["function"]["arguments"]
                    if isinstance(call["function"].get("arguments"), str)
                    else json.dumps(call["function"].get("arguments") or {}),
                },
            }
            for call in wire["tool_calls"]
        ]
    return wire


def _server_sent_events(response: httpx.Response, url: str) -> Iterator[dict[str, Any]]:
    """JSON payloads of the ``data:`` lines of an SSE stream, until ``[DONE]``."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # comments, event names, keep-alives, blank separators
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            data = json.loads(payload)
        except json.JSONDecodeError:
            raise GenerationError(
                f"{url} sent a stream event that is not JSON: {payload[:200]!r}"
            ) from None
        if isinstance(data, dict) and data.get("error"):
            raise GenerationError(f"{url} reported an error mid-stream: {data['error']}")
        if isinstance(data, dict):
            yield data
