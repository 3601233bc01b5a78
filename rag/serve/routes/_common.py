"""What every router shares: the backend of the app a request reached, the key check, events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from rag.serve._backend import Backend
from rag.serve._json import dumps

BEARER = [Security(HTTPBearer(auto_error=False, description="A key of RAGLINE_API_KEYS."))]
"""Documents ``Authorization: Bearer KEY`` on a route; the :class:`~rag.serve._guard.Guard`
middleware checks the key before any route runs."""


async def backend_of(request: Request) -> Backend:
    """The :class:`Backend` of the app serving ``request`` (``create_app`` stores it)."""
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated[Backend, Depends(backend_of)]
"""A route parameter that receives the app's backend (no OpenAPI parameter)."""


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event carrying ``data`` as JSON (a string is sent as it is)."""
    text = data if isinstance(data, str) else dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


# One server-sent event as OpenAPI 3.1 documents a stream (its schema describes each event):
# ``data`` is the JSON text of a token, an answer, an error or a completion chunk.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "contentMediaType": "application/json"}},
}
SSE_EVENT_NAMED: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["token", "answer", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}
