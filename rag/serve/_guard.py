"""The outermost layer of the API: API keys and request body limits.

It is a plain ASGI middleware, so it answers before any body is read or parsed: a request
without a valid key is a 401 even when its body is malformed or huge, and a body over the limit
is refused from its ``Content-Length`` or, for chunked uploads, as soon as the running total
passes the limit.

It also resolves the key's :class:`~rag.serve._keys.KeyScope` (what it may see and do) and leaves
it in the ASGI scope under :data:`SCOPE_KEY` for the endpoints, and refuses a JSON body nested
deeper than :data:`rag.core.limits.MAX_JSON_DEPTH` before any parser recurses into it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from rag.core.errors import RagError
from rag.core.limits import MAX_JSON_DEPTH, json_depth
from rag.serve._keys import API_KEYS_ENV, ApiKey, KeyRing, KeyScope

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_KEY = "ragline.key_scope"
"""Where the Guard leaves the request's :class:`KeyScope` in the ASGI scope."""


def key_scope_of(scope: Scope) -> KeyScope:
    """The :class:`KeyScope` the Guard found for a request (an ASGI scope or ``request.scope``).

    Raises:
        RuntimeError: the request did not pass through the Guard (a wiring bug, never a client's).
    """
    found = scope.get(SCOPE_KEY)
    if not isinstance(found, KeyScope):
        raise RuntimeError("the request has no key scope: is the Guard middleware installed?")
    return found


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            kind = value.split(b";")[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return False


class BodyTooLarge(HTTPException, RagError):
    """The request body passed ``max_body_bytes`` while it was being read.

    ``HTTPException`` comes first, so Starlette answers it with its own status (413).
    """

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
        api_keys: Collection[str | ApiKey] | None,
        public_paths: Collection[str],
        max_body_bytes: int,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.keys = KeyRing(None if api_keys is None else list(api_keys))
        self.public_paths = frozenset(public_paths)
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    def _key_scope(self, scope: Scope) -> KeyScope | None:
        header = next((v for n, v in scope.get("headers", ()) if n == b"authorization"), None)
        found = self.keys.scope_of_header(header)
        if found is None and scope["path"] in self.public_paths:
            return KeyScope("public", operations=frozenset())  # public pages read no data
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key_scope = self._key_scope(scope)
        if key_scope is None:
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
        scope[SCOPE_KEY] = key_scope
        if _is_json(scope):
            receive = await self._checked_json(scope, receive, send, limit)
            if receive is None:
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

    async def _checked_json(
        self, scope: Scope, receive: Receive, send: Send, limit: int
    ) -> Receive | None:
        """Read a JSON body (bounded by ``limit``) and refuse it when nested too deep.

        Returns:
            A ``receive`` that replays the body, or None when a response was already sent.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"", receive, first=message)
            size += len(message.get("body", b""))
            if size > limit:
                body = error_body(
                    413,
                    f"request body is larger than the limit of {limit} bytes",
                    code="body_too_large",
                )
                await send_json(send, 413, body, {})
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        depth = json_depth(data.decode("utf-8", errors="replace"))
        if depth > self.max_json_depth:
            message_text = (
                f"request body: JSON nested {depth} levels deep; the limit is "
                f"{self.max_json_depth}. Flatten the data"
            )
            body = error_body(422, message_text, code="nesting_too_deep", param="body")
            body["error"]["fields"] = [{"field": "body", "message": message_text}]
            await send_json(send, 422, body, {})
            return None
        return _replay(data, receive)


def _replay(data: bytes, receive: Receive, *, first: Message | None = None) -> Receive:
    """A ``receive`` that gives ``data`` (or ``first``) once, then defers to ``receive``."""
    pending: list[Message] = (
        [first]
        if first is not None
        else [{"type": "http.request", "body": data, "more_body": False}]
    )

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
