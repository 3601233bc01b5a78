"""API keys on the gRPC API: every service but health and reflection needs a bearer key.

Imported by :mod:`rag.serve._grpc` once it has checked that the ``grpc`` extra is installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from rag.serve._keys import API_KEYS_ENV, ApiKey, KeyRing

PUBLIC_SERVICES = frozenset({health.SERVICE_NAME, reflection.SERVICE_NAME})
"""Services that answer without a key."""

UNAUTHENTICATED = (
    "missing or invalid API key; send the metadata 'authorization: Bearer <key>' with a key "
    f"from the server's {API_KEYS_ENV}"
)
"""The details of every ``UNAUTHENTICATED`` answer."""


def _refusal(handler: Any) -> Any:
    """A handler of the same kind as ``handler`` that answers ``UNAUTHENTICATED`` at once."""

    async def refuse(request: Any, context: Any) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)

    async def refuse_streaming(request: Any, context: Any) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)
        yield  # pragma: no cover  (makes this an async generator, as the method expects)

    if handler.response_streaming:
        factory = (
            grpc.stream_stream_rpc_method_handler
            if handler.request_streaming
            else grpc.unary_stream_rpc_method_handler
        )
        return factory(refuse_streaming)
    factory = (
        grpc.stream_unary_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return factory(refuse)


class KeyInterceptor(grpc.aio.ServerInterceptor):
    """Bearer API keys on every service but health and reflection (constant-time check).

    Args:
        api_keys: Accepted keys; ``None`` turns authentication off (``rag serve --no-auth``).

    Example:
        >>> # Needs a running grpc.aio server to intercept calls.
        >>> keys = KeyInterceptor(["k-0123456789abcdef"])  # doctest: +SKIP
        >>> keys.authorized([("authorization", "Bearer k-0123456789abcdef")])  # doctest: +SKIP
        True
    """

    def __init__(self, api_keys: Collection[str | ApiKey] | KeyRing | None) -> None:
        self.keys = (
            api_keys
            if isinstance(api_keys, KeyRing)
            else KeyRing(None if api_keys is None else list(api_keys))
        )

    def authorized(self, metadata: Sequence[tuple[str, Any]] | None) -> bool:
        header = next((v for name, v in metadata or () if name == "authorization"), None)
        return self.keys.scope_of_header(header) is not None

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        service = handler_call_details.method.lstrip("/").partition("/")[0]
        if handler is None or service in PUBLIC_SERVICES:
            return handler
        if self.authorized(handler_call_details.invocation_metadata):
            return handler
        return _refusal(handler)
