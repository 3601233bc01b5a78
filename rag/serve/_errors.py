"""How the REST API answers errors: one exception -> HTTP status mapping for every route.

Every error is JSON in the OpenAI shape, ``{"error": {"message", "type", "code", "param",
"fields"}}``, never a stack trace:

| raised | status | ``code`` |
|---|---|---|
| an invalid body (``RequestValidationError``) | 422 (400) | ``validation_error``, ``fields`` |
| ``InvalidInputError`` | 422 (400) | ``invalid_input`` |
| ``FilterError`` | 422 | ``invalid_filter`` |
| ``ConfigError`` | 400 | ``configuration_error`` |
| ``PathNotAllowed`` | 403 | ``path_not_allowed`` |
| ``Forbidden`` | 403 | ``forbidden`` |
| ``UploadRejected`` | 422 | ``validation_error``, ``fields`` per file |
| ``NotConfigured`` | 404 | ``not_configured`` |
| ``StoreLockedError`` | 503 | ``store_locked``, with ``Retry-After`` |
| ``GenerationError`` | 502 | ``generation_error`` |
| ``EmbeddingError`` | 502 | ``embedding_error`` |
| ``HTTPException`` | its own | from :data:`CODES` (a 405 lists every allowed method) |
| anything else | 500 | ``internal`` (the server log has the details) |

**400 vs 422.** The OpenAI-compatible routes (:data:`OPENAI_PATHS`) answer an invalid parameter
with 400, as OpenAI does, so the OpenAI SDKs raise ``BadRequestError`` naming the field; every
other route answers it with 422 (FastAPI's convention). The body is the same either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from rag.core.errors import (
    ConfigError,
    EmbeddingError,
    FilterError,
    GenerationError,
    InvalidInputError,
    RagError,
    StoreLockedError,
)
from rag.serve._backend import Forbidden, NotConfigured, PathNotAllowed, UploadRejected
from rag.serve._guard import error_body
from rag.serve._json import JSONResponse
from rag.serve._schemas import ErrorResponse

logger = logging.getLogger("rag.serve")

CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}
"""The ``code`` of an error answered with only a status."""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "A body that cannot be parsed (not UTF-8, a broken multipart form, "
        "too many files) or a bad Content-Length; on the OpenAI-compatible routes also an invalid "
        "parameter (as OpenAI answers), `param` naming it.",
    },
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    403: {
        "model": ErrorResponse,
        "description": "The key's scope does not allow this (a read-only key writing, a "
        "tenant's key reaching outside its tenant).",
    },
    413: {"model": ErrorResponse, "description": "Request body over the size limit."},
    503: {
        "model": ErrorResponse,
        "description": "Another process (rag ingest) is writing the store; retry after the "
        "Retry-After seconds.",
    },
    422: {"model": ErrorResponse, "description": "Invalid input; `fields` names each field."},
}
"""The error answers every keyed route documents in the OpenAPI schema."""

OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings"})
"""Routes that answer an invalid parameter with 400, as OpenAI does (see the module doc)."""


def error(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> JSONResponse:
    """The JSON error answer: ``status``, ``message``, ``code`` (default: :data:`CODES`)."""
    return JSONResponse(
        error_body(status, message, code=code or CODES.get(status, "error"), param=param),
        status_code=status,
    )


def invalid_status(request: Request) -> int:
    """400 on the OpenAI-compatible routes, 422 elsewhere."""
    return 400 if request.url.path in OPENAI_PATHS else 422


def validation_response(errors: Sequence[Any], status: int = 422) -> JSONResponse:
    """An invalid-input answer whose ``fields`` name each offending field (pydantic errors)."""
    fields = []
    for err in errors:
        location = ".".join(str(part) for part in err.get("loc", ()))
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        detail = (err.get("ctx") or {}).get("error")
        if err.get("type") == "json_invalid" and detail:
            message = f"{message}: {detail}"
        fields.append({"field": location or "body", "message": message})
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
    body = error_body(
        status, summary, code="validation_error", param=fields[0]["field"] if fields else None
    )
    body["error"]["fields"] = fields
    return JSONResponse(body, status_code=status)


def stream_error(err: BaseException) -> dict[str, Any]:
    """The error body sent as the last event of a stream that failed after it began."""
    if isinstance(err, GenerationError):
        return error_body(502, f"the model failed: {err}", code="generation_error")
    logger.exception("stream failed", exc_info=err)
    return error_body(500, "internal error; the server log has the details", code="internal")


_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (for a 405's ``Allow``).

    Each method is tried through the routes' own ``matches`` (Starlette's route interface), so
    routes of included routers count too, however the FastAPI version stores them.
    """
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def _rag_error(request: Request, err: RagError) -> JSONResponse:
    if isinstance(err, InvalidInputError):
        return error(invalid_status(request), str(err), code="invalid_input", param=err.path)
    if isinstance(err, StoreLockedError):  # a `rag ingest` is writing the store: retry later
        response = error(503, str(err), code="store_locked")
        response.headers["retry-after"] = "10"
        return response
    if isinstance(err, FilterError):
        return error(422, str(err), code="invalid_filter", param="filters")
    if isinstance(err, ConfigError):
        return error(400, str(err), code="configuration_error")
    if isinstance(err, GenerationError):
        logger.warning("generation failed: %s", err)
        return error(502, f"the model failed: {err}", code="generation_error")
    if isinstance(err, EmbeddingError):
        logger.warning("embedding failed: %s", err)
        return error(502, f"the embedder failed: {err}", code="embedding_error")
    logger.exception("request failed", exc_info=err)
    return error(500, "internal error; the server log has the details", code="internal")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception a route raises as the table of the module doc says."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return validation_response(err.errors(), invalid_status(request))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException) -> JSONResponse:
        response = error(err.status_code, str(err.detail))
        for name, value in (err.headers or {}).items():
            response.headers[name] = value
        if err.status_code == 405:  # every method of the path, not only the first route's
            response.headers["allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(PathNotAllowed)
    async def _path(request: Request, err: PathNotAllowed) -> JSONResponse:
        return error(403, str(err), code="path_not_allowed", param=err.param)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, err: Forbidden) -> JSONResponse:
        return error(403, str(err), code="forbidden", param=err.param)

    @app.exception_handler(UploadRejected)
    async def _upload(request: Request, err: UploadRejected) -> JSONResponse:
        return validation_response(
            [{"loc": ("body", "files"), "msg": f"{e['source']}: {e['error']}"} for e in err.errors]
        )

    @app.exception_handler(NotConfigured)
    async def _not_configured(request: Request, err: NotConfigured) -> JSONResponse:
        return error(404, str(err), code="not_configured")

    @app.exception_handler(RagError)
    async def _rag(request: Request, err: RagError) -> JSONResponse:
        return _rag_error(request, err)

    @app.exception_handler(Exception)
    async def _crash(request: Request, err: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal error; the server log has the details", code="internal")
