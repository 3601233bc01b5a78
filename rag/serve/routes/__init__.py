"""The REST API's routes, one :class:`fastapi.APIRouter` per area.

:func:`rag.serve._app.create_app` includes them in this order (the order of the OpenAPI
document's paths): :mod:`~rag.serve.routes.service` (health, stats),
:mod:`~rag.serve.routes.search`, :mod:`~rag.serve.routes.ask`,
:mod:`~rag.serve.routes.documents`, :mod:`~rag.serve.routes.openai_chat` (models, chat completions),
:mod:`~rag.serve.routes.embeddings`; then the KServe ``/v2`` routes
(:func:`rag.serve._kserve.kserve_router`) and, with ``ui``, the playground.

Every route takes the app's :class:`~rag.serve._backend.Backend` as a dependency
(:data:`~rag.serve.routes._common.BackendDep`), so a router holds no state and serves any app
that includes it; errors are answered by :mod:`rag.serve._errors`.
"""

from __future__ import annotations

from fastapi import APIRouter

from rag.serve.routes import ask, documents, embeddings, openai_chat, search, service

ROUTERS: tuple[APIRouter, ...] = (
    service.router,
    search.router,
    ask.router,
    documents.router,
    openai_chat.router,
    embeddings.router,
)
"""Every ``/v1`` router, in the order the app includes them."""

__all__ = ["ROUTERS"]
