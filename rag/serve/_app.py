"""The FastAPI application: :func:`create_app` builds it from a pipeline file.

Endpoints (all under ``/v1``; every one but ``/v1/health`` needs ``Authorization: Bearer KEY``):

=========================  ======================================================================
``GET /health``            liveness and version (no key needed)
``GET /stats``             chunks, sources, store type and dimension (``rag stats --json``)
``POST /search``           hits for a query (``rag search --json``)
``POST /ask``              an answer with citations (``rag ask --json``); ``"stream": true``
                           streams server-sent events
``POST /documents``        ingest inline JSON documents, server-side ``paths`` under the allowed
                           roots, or uploaded files (``multipart/form-data``, field ``files``)
``DELETE /documents``      delete chunks by ``ids`` or ``filters``
``POST /chat/completions`` OpenAI-compatible: the last user message is asked to the RAG chain
``GET /models``            the one model name chat completions answer to
``POST /embeddings``       OpenAI-compatible embeddings from the pipeline's embedder
``POST /embed``            the same, in the shape of Text Embeddings Inference's ``/embed``
=========================  ======================================================================

Errors are JSON, ``{"error": {"message", "type", "code", "param", "fields"}}`` (the OpenAI
shape, so OpenAI clients show the message), never a stack trace; invalid input is a 422 whose
``fields`` name each offending field.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

import rag
from rag.core.documents import Document
from rag.core.errors import (
    ConfigError,
    EmbeddingError,
    FilterError,
    GenerationError,
    InvalidInputError,
    RagError,
    StoreLockedError,
)
from rag.core.pipeline import PipelineFile
from rag.core.threads import iterate_in_thread
from rag.serve._backend import Backend, Forbidden, NotConfigured, PathNotAllowed, UploadRejected
from rag.serve._guard import Guard, error_body, key_scope_of
from rag.serve._json import JSONResponse, dumps
from rag.serve._keys import ApiKey
from rag.serve._schemas import (
    AskRequest,
    AskResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeleteRequest,
    DeleteResponse,
    DocumentsRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    ErrorResponse,
    HealthResponse,
    IngestResponse,
    ModelList,
    SearchRequest,
    SearchResponse,
    StatsResponse,
    publish_filter_schemas,
)

logger = logging.getLogger("rag.serve")

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_UPLOAD_FILES = 100
PUBLIC_PATHS = ("/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")

_CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
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


# One server-sent event as OpenAPI 3.1 documents a stream (its schema describes each event):
# ``data`` is the JSON text of a token, an answer, an error or a completion chunk.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "contentMediaType": "application/json"}},
}
_SSE_EVENT_NAMED: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["token", "answer", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (for a 405's ``Allow``)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _error(status: int, message: str, *, code: str | None = None, param: str | None = None):
    return JSONResponse(
        error_body(status, message, code=code or _CODES.get(status, "error"), param=param),
        status_code=status,
    )


# OpenAI answers invalid parameters with 400, which its SDKs raise as ``BadRequestError``; the
# OpenAI-compatible routes do the same (the body is the same, ``param`` naming the field).
_OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings"})


def _invalid_status(request: Request) -> int:
    return 400 if request.url.path in _OPENAI_PATHS else 422


def _validation_response(errors: Sequence[Any], status: int = 422) -> JSONResponse:
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


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return _validation_response(err.errors(), _invalid_status(request))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException) -> JSONResponse:
        response = _error(err.status_code, str(err.detail))
        for name, value in (err.headers or {}).items():
            response.headers[name] = value
        if err.status_code == 405:  # every method of the path, not only the first route's
            response.headers["allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(PathNotAllowed)
    async def _path(request: Request, err: PathNotAllowed) -> JSONResponse:
        return _error(403, str(err), code="path_not_allowed", param=err.param)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, err: Forbidden) -> JSONResponse:
        return _error(403, str(err), code="forbidden", param=err.param)

    @app.exception_handler(UploadRejected)
    async def _upload(request: Request, err: UploadRejected) -> JSONResponse:
        return _validation_response(
            [{"loc": ("body", "files"), "msg": f"{e['source']}: {e['error']}"} for e in err.errors]
        )

    @app.exception_handler(NotConfigured)
    async def _not_configured(request: Request, err: NotConfigured) -> JSONResponse:
        return _error(404, str(err), code="not_configured")

    @app.exception_handler(RagError)
    async def _rag(request: Request, err: RagError) -> JSONResponse:
        if isinstance(err, InvalidInputError):
            return _error(_invalid_status(request), str(err), code="invalid_input", param=err.path)
        if isinstance(err, StoreLockedError):  # a `rag ingest` is writing the store: retry later
            response = _error(503, str(err), code="store_locked")
            response.headers["retry-after"] = "10"
            return response
        if isinstance(err, FilterError):
            return _error(422, str(err), code="invalid_filter", param="filters")
        if isinstance(err, ConfigError):
            return _error(400, str(err), code="configuration_error")
        if isinstance(err, GenerationError):
            logger.warning("generation failed: %s", err)
            return _error(502, f"the model failed: {err}", code="generation_error")
        if isinstance(err, EmbeddingError):
            logger.warning("embedding failed: %s", err)
            return _error(502, f"the embedder failed: {err}", code="embedding_error")
        logger.exception("request failed", exc_info=err)
        return _error(500, "internal error; the server log has the details", code="internal")

    @app.exception_handler(Exception)
    async def _crash(request: Request, err: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server log has the details", code="internal")


# -- streaming ------------------------------------------------------------------------------------
def _sse(data: Any, event: str | None = None) -> str:
    text = data if isinstance(data, str) else dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def _stream_error(err: BaseException) -> dict[str, Any]:
    if isinstance(err, GenerationError):
        return error_body(502, f"the model failed: {err}", code="generation_error")
    logger.exception("stream failed", exc_info=err)
    return error_body(500, "internal error; the server log has the details", code="internal")


# -- the application ------------------------------------------------------------------------------
def create_app(
    pipeline_file: PipelineFile | str | Path,
    *,
    api_keys: Sequence[str | ApiKey],
    no_auth: bool = False,
    allowed_roots: Sequence[str | Path] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    search_pipeline: str = "search",
    ask_pipeline: str = "ask",
    ingest_pipeline: str = "ingest",
    model_name: str = "ragline",
    warm_up: bool = True,
    ui: bool = False,
    reports_dir: str | Path | None = None,
) -> FastAPI:
    """Build the HTTP API for a pipeline file.

    Args:
        pipeline_file: A loaded :class:`PipelineFile` or the path of its YAML.
        api_keys: Keys accepted as ``Authorization: Bearer KEY`` (compared in constant time):
            plain strings have full access, :class:`~rag.serve._keys.ApiKey` entries carry a
            scope (a tenant's enforced filter and allowed operations).
        no_auth: Serve without keys (local development only); ``api_keys`` must then be empty.
        allowed_roots: Directories whose files ``POST /v1/documents {"paths": [...]}`` may
            ingest; empty disables ingestion by path.
        max_body_bytes: Largest request body (JSON or uploads), in bytes.
        search_pipeline: Pipeline whose retriever serves ``/v1/search``.
        ask_pipeline: Pipeline whose ``chain.rag`` serves ``/v1/ask`` and chat completions.
        ingest_pipeline: Pipeline that ingests documents.
        model_name: The model name chat completions report and ``/v1/models`` lists.
        warm_up: Load models and open stores when the server starts.
        ui: Serve the browser playground at ``/`` (:mod:`rag.serve.ui`); its calls need a key.
        reports_dir: With ``ui``, the folder whose evaluation reports the playground lists.

    Returns:
        The FastAPI application (serve it with uvicorn, or see :func:`rag.serve.serve`).

    Raises:
        ConfigError: no keys and no ``no_auth`` (or both), a bad limit, or a file with nothing
            to serve.

    Example:
        >>> # Loads the models, then serves until stopped.
        >>> from rag.serve import create_app
        >>> app = create_app("examples/qa.yaml", api_keys=["k-0123456789abcdef"])  # doctest: +SKIP
        >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
    """
    if not api_keys and not no_auth:
        raise ConfigError(
            "refusing to serve without API keys: set RAGLINE_API_KEYS=key1,key2 (clients send "
            "'Authorization: Bearer key1'), or pass --no-auth for local development"
        )
    if api_keys and no_auth:
        raise ConfigError("API keys were given together with no_auth; choose one")
    if reports_dir is not None and not ui:
        raise ConfigError("--reports lists evaluation reports in the playground; add --ui")
    if max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    if not isinstance(pipeline_file, PipelineFile):
        pipeline_file = PipelineFile.load(pipeline_file)
    backend = Backend(
        pipeline_file,
        search_pipeline=search_pipeline,
        ask_pipeline=ask_pipeline,
        ingest_pipeline=ingest_pipeline,
        allowed_roots=allowed_roots,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            await run_in_threadpool(backend.warm_up)
        yield

    app = FastAPI(
        title="ragline",
        version=rag.__version__,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        lifespan=lifespan,
    )
    app.state.backend = backend
    _install_error_handlers(app)
    bearer = [Security(HTTPBearer(auto_error=False, description="A key of RAGLINE_API_KEYS."))]

    @app.get("/v1/health", response_model=HealthResponse, tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness; needs no key."""
        return {"status": "ok", "version": rag.__version__}

    @app.get(
        "/v1/stats",
        response_model=StatsResponse,
        dependencies=bearer,
        responses=_ERRORS,
        tags=["service"],
    )
    def stats(request: Request) -> JSONResponse:
        """Chunks, sources, store type and dimension (the shape of ``rag stats --json``); a
        scoped key counts only its own chunks."""
        return JSONResponse(backend.stats(scope=key_scope_of(request.scope)))

    @app.post(
        "/v1/search",
        response_model=SearchResponse,
        dependencies=bearer,
        responses=_ERRORS,
        tags=["rag"],
    )
    def search(body: SearchRequest, request: Request) -> JSONResponse:
        """The chunks nearest to ``query`` (the shape of ``rag search --json``)."""
        scope = key_scope_of(request.scope)
        hits = backend.search(body.query, k=body.k, filters=body.filters, scope=scope)
        return JSONResponse({"query": body.query, "hits": [h.to_dict() for h in hits]})

    @app.post(
        "/v1/ask",
        response_model=AskResponse,
        dependencies=bearer,
        responses={
            **_ERRORS,
            200: {
                "content": {"text/event-stream": {"schema": _SSE_EVENT_NAMED}},
                "description": "The answer, or with `stream: true` server-sent events: "
                '`token` events `{"text": ...}`, then one `answer` event (the JSON answer).',
            },
        },
        tags=["rag"],
    )
    async def ask(body: AskRequest, request: Request) -> Any:
        """Answer ``question`` with citations (the shape of ``rag ask --json``)."""
        scope = key_scope_of(request.scope)
        problem = await run_in_threadpool(backend.check_question, body.question)
        if problem:
            return _error(422, problem, code="question_too_long", param="body.question")
        if not body.stream:
            answer = await run_in_threadpool(
                backend.ask, body.question, k=body.k, filters=body.filters, scope=scope
            )
            return JSONResponse(jsonable_encoder(answer.to_dict()))

        async def events() -> AsyncIterator[str]:
            pieces = iterate_in_thread(
                lambda: backend.stream(body.question, k=body.k, filters=body.filters, scope=scope),
                lock=backend.lock,
            )
            try:
                async for piece in pieces:
                    if isinstance(piece, str):
                        yield _sse({"text": piece}, "token")
                    else:
                        yield _sse(jsonable_encoder(piece.to_dict()), "answer")
            except Exception as err:
                yield _sse(_stream_error(err), "error")

        return StreamingResponse(events(), media_type="text/event-stream")

    documents_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/DocumentsRequest"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "minItems": 1,
                                "maxItems": MAX_UPLOAD_FILES,
                            },
                            "replace": {"type": "boolean", "default": True},
                        },
                    }
                },
            },
        }
    }

    @app.post(
        "/v1/documents",
        response_model=IngestResponse,
        dependencies=bearer,
        responses={**_ERRORS, 403: {"model": ErrorResponse, "description": "Path not allowed."}},
        openapi_extra=documents_body,
        tags=["documents"],
    )
    async def add_documents(request: Request) -> JSONResponse:
        """Ingest inline JSON ``documents``, server-side ``paths`` (under the allowed roots), or
        uploaded ``files`` (``multipart/form-data``). Answers the shape of ``rag ingest --json``.
        """
        scope = key_scope_of(request.scope)
        content_type = request.headers.get("content-type", "application/json").lower()
        if content_type.startswith("multipart/form-data"):
            files, replace = await _read_uploads(request)
            report = await run_in_threadpool(
                backend.ingest_uploads, files, replace=replace, scope=scope
            )
            return JSONResponse(report.to_dict())
        if not content_type.startswith("application/json"):
            return _error(
                415,
                f"unsupported content type '{content_type}'; send application/json or "
                "multipart/form-data",
            )
        try:
            body = DocumentsRequest.model_validate_json(await request.body())
        except ValidationError as err:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in err.errors()]
            ) from None
        if body.paths is not None:
            report = await run_in_threadpool(backend.ingest_paths, body.paths, scope=scope)
        else:
            documents = [
                Document(id=d.id, text=d.text, metadata=dict(d.metadata))
                for d in body.documents or []
            ]
            report = await run_in_threadpool(
                backend.ingest_documents, documents, replace=body.replace, scope=scope
            )
        return JSONResponse(report.to_dict())

    @app.delete(
        "/v1/documents",
        response_model=DeleteResponse,
        dependencies=bearer,
        responses=_ERRORS,
        tags=["documents"],
    )
    def delete_documents(body: DeleteRequest, request: Request) -> JSONResponse:
        """Delete chunks by ``ids`` or by ``filters`` (a JSON body, as DELETE allows); a scoped
        key deletes only its own chunks."""
        scope = key_scope_of(request.scope)
        deleted = backend.delete(ids=body.ids, filters=body.filters, scope=scope)
        return JSONResponse({"deleted": deleted})

    @app.get(
        "/v1/models",
        response_model=ModelList,
        dependencies=bearer,
        responses=_ERRORS,
        tags=["openai"],
    )
    def models() -> dict[str, Any]:
        """The model chat completions answer to (OpenAI-compatible)."""
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "ragline"}],
        }

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletionResponse,
        dependencies=bearer,
        responses={
            **_ERRORS,
            200: {
                "content": {"text/event-stream": {"schema": _SSE_EVENT}},
                "description": "A chat completion, or with `stream: true` its chunks as "
                "server-sent events ending with `data: [DONE]`.",
            },
        },
        tags=["openai"],
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        """OpenAI-compatible: the last user message is answered by the RAG chain; citations
        come back in the extra ``citations`` field."""
        scope = key_scope_of(request.scope)
        question = body.question()
        problem = await run_in_threadpool(backend.check_question, question)
        if problem:
            return _error(400, problem, code="question_too_long", param="body.messages")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not body.stream:
            answer = await run_in_threadpool(
                backend.ask, question, k=body.k, filters=body.filters, scope=scope
            )
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": body.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer.text},
                            "finish_reason": _finish_reason(answer.finish_reason),
                        }
                    ],
                    "usage": answer.usage.to_dict(),
                    "citations": [c.to_dict() for c in answer.citations],
                }
            )
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            return _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
            )

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            pieces = iterate_in_thread(
                lambda: backend.stream(question, k=body.k, filters=body.filters, scope=scope),
                lock=backend.lock,
            )
            try:
                async for piece in pieces:
                    if isinstance(piece, str):
                        yield chunk({"content": piece})
                        continue
                    citations = [c.to_dict() for c in piece.citations]
                    yield chunk({}, _finish_reason(piece.finish_reason), citations=citations)
                    if include_usage:
                        yield _sse(
                            {
                                "id": completion_id,
                                "object": "chat.completion.chunk",
                                "created": created,
                                "model": body.model,
                                "choices": [],
                                "usage": piece.usage.to_dict(),
                            }
                        )
            except Exception as err:
                yield _sse(_stream_error(err))
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post(
        "/v1/embeddings",
        response_model=EmbeddingsResponse,
        dependencies=bearer,
        responses=_ERRORS,
        tags=["openai"],
    )
    async def embeddings(body: EmbeddingsRequest) -> JSONResponse:
        """OpenAI-compatible embeddings of ``input`` by the pipeline's embedder (as it embeds
        documents); ``encoding_format: base64`` sends little-endian float32 bytes."""
        vectors, tokens = await run_in_threadpool(backend.embed, body.texts())
        encode = _base64_vector if body.encoding_format == "base64" else _float_vector
        data = [
            {"object": "embedding", "index": i, "embedding": encode(v)}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": body.model, "usage": usage})

    @app.post(
        "/v1/embed",
        response_model=list[list[float]],
        dependencies=bearer,
        responses=_ERRORS,
        tags=["embeddings"],
    )
    async def embed(body: EmbedRequest) -> JSONResponse:
        """Embeddings in the shape of Text Embeddings Inference's ``POST /embed``: one list of
        numbers per input."""
        vectors, _ = await run_in_threadpool(backend.embed, body.texts())
        if body.normalize:
            vectors = _unit_rows(vectors)
        return JSONResponse([_float_vector(v) for v in vectors])

    from rag.serve._kserve import kserve_router  # /v2: the Open Inference Protocol (KServe)

    app.include_router(kserve_router(backend))
    _publish_documents_schema(app)
    public_paths = tuple(PUBLIC_PATHS)
    if ui:  # the page and its static files are public; every API call it makes needs a key
        from rag.serve.ui import mount_ui

        public_paths += mount_ui(app, reports_dir=reports_dir)
    app.add_middleware(
        Guard,
        api_keys=None if no_auth else list(api_keys),
        public_paths=public_paths,
        max_body_bytes=max_body_bytes,
    )
    return app


def _finish_reason(reason: str | None) -> str:
    return reason if reason in ("stop", "length") else "stop"


def _float_vector(vector: Any) -> list[float]:
    return vector.astype("float32").tolist()


def _base64_vector(vector: Any) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def _unit_rows(vectors: Any) -> Any:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


async def _read_uploads(request: Request) -> tuple[list[tuple[str, bytes]], bool]:
    form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES + 10)
    files: list[tuple[str, bytes]] = []
    fields: list[dict[str, str]] = []
    for index, item in enumerate(form.getlist("files")):
        if not isinstance(item, UploadFile) or not item.filename:
            fields.append(
                {"field": f"body.files[{index}]", "message": "must be a file upload with a name"}
            )
            continue
        name = PurePosixPath(item.filename.replace("\\", "/")).name
        if not name or name in (".", ".."):
            fields.append({"field": f"body.files[{index}]", "message": "invalid file name"})
            continue
        files.append((name, await item.read()))
    unknown = sorted(set(form.keys()) - {"files", "replace"})
    fields += [{"field": f"body.{key}", "message": "unknown field"} for key in unknown]
    replace_text = str(form.get("replace", "true")).lower()
    if replace_text not in ("true", "false", "1", "0"):
        fields.append({"field": "body.replace", "message": "must be true or false"})
    if not files and not fields:
        fields.append({"field": "body.files", "message": "at least one file is required"})
    if fields:
        raise RequestValidationError(
            [
                {"loc": tuple(f["field"].split(".")), "msg": f["message"], "type": "value_error"}
                for f in fields
            ]
        )
    return files, replace_text in ("true", "1")


def _publish_documents_schema(app: FastAPI) -> None:
    """Add the JSON body of ``POST /v1/documents`` (read by hand) to the OpenAPI components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        definitions = DocumentsRequest.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(definitions.pop("$defs", {}))
        components["DocumentsRequest"] = definitions
        schema = publish_filter_schemas(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
