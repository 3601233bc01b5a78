"""The outermost layer of the API: API keys and request body limits.

It is a plain ASGI middleware, so it answers before any body is read or parsed: a request
without a valid key is a 401 even when its body is malformed or huge, and a body over the limit
is refused from its ``Content-Length`` or, for chunked uploads, as soon as the running total
passes the limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from rag.serve._keys import API_KEYS_ENV, key_is_valid

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(HTTPException):
    """The request body passed ``max_body_bytes`` while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})


def error_body(status: int, message: str, *, code: str, param: str | None = None) -> dict:
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "code": code, "param": param, "fields": []}}


class Guard:
    """ASGI middleware: bearer API keys on every path but ``public_paths``, and a body limit.

    Args:
        app: The wrapped ASGI application.
        api_keys: Accepted keys; ``None`` turns authentication off (``rag serve --no-auth``).
        public_paths: Paths served without a key (health, the OpenAPI schema and its docs).
        max_body_bytes: Largest request body accepted, in bytes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: Collection[str] | None,
        public_paths: Collection[str],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.keys = None if api_keys is None else [k.encode() for k in api_keys]
        self.public_paths = frozenset(public_paths)
        self.max_body_bytes = max_body_bytes

    def _authorized(self, scope: Scope) -> bool:
        if self.keys is None or scope["path"] in self.public_paths:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and key_is_valid(token.strip(), self.keys)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            await send_json(
                send,
                401,
                error_body(
                    401,
                    "missing or invalid API key; send 'Authorization: Bearer <key>' with a key "
                    f"from the server's {API_KEYS_ENV}",
                    code="invalid_api_key",
                ),
                {"www-authenticate": "Bearer"},
            )
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    message = (
                        f"request body is larger than the limit of {limit} bytes"
                        if declared > limit
                        else "invalid Content-Length header"
                    )
                    status = 413 if declared > limit else 400
                    code = "body_too_large" if status == 413 else "bad_content_length"
                    await send_json(send, status, error_body(status, message, code=code), {})
                    return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as err:
            if started:
                raise
            body = error_body(413, str(err.detail), code="body_too_large")
            await send_json(send, 413, body, {})
