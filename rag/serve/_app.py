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

The routes live in :mod:`rag.serve.routes`, one router per area; the error answers in
:mod:`rag.serve._errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi

import rag
from rag.core.errors import ConfigError
from rag.core.pipeline import PipelineFile
from rag.serve._backend import Backend
from rag.serve._errors import install_error_handlers
from rag.serve._guard import Guard
from rag.serve._keys import ApiKey
from rag.serve._schemas import publish_filter_schemas
from rag.serve.routes import ROUTERS
from rag.serve.routes.documents import publish_documents_schema

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
PUBLIC_PATHS = ("/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


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
    close_on_shutdown: bool = False,
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
        close_on_shutdown: Close the file's components when the server stops (a store's
            connection and files: ``store.faiss`` then writes its open cache, so the next
            process opens without reading every row; an in-memory store loses its rows).

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
        if close_on_shutdown:
            await run_in_threadpool(backend.app_file.close)

    app = FastAPI(
        title="ragline",
        version=rag.__version__,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        lifespan=lifespan,
    )
    app.state.backend = backend  # the routes' dependency (rag.serve.routes._common.backend_of)
    app.state.model_name = model_name
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    from rag.serve._kserve import kserve_router  # /v2: the Open Inference Protocol (KServe)

    app.include_router(kserve_router(backend))
    _publish_extra_schemas(app)
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


def _publish_extra_schemas(app: FastAPI) -> None:
    """Add what FastAPI does not see to the OpenAPI document: the JSON body of
    ``POST /v1/documents`` (read by hand) and the filter grammar's schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schema = publish_filter_schemas(publish_documents_schema(schema))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
