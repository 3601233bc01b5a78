"""``POST /v1/search``: the chunks nearest to a query."""

from __future__ import annotations

from fastapi import APIRouter, Request

from rag.serve._errors import ERROR_RESPONSES
from rag.serve._guard import key_scope_of
from rag.serve._json import JSONResponse
from rag.serve._schemas import SearchRequest, SearchResponse
from rag.serve.routes._common import BEARER, BackendDep

router = APIRouter(tags=["rag"])


@router.post(
    "/v1/search", response_model=SearchResponse, dependencies=BEARER, responses=ERROR_RESPONSES
)
def search(body: SearchRequest, request: Request, backend: BackendDep) -> JSONResponse:
    """The chunks nearest to ``query`` (the shape of ``rag search --json``)."""
    scope = key_scope_of(request.scope)
    hits = backend.search(body.query, k=body.k, filters=body.filters, scope=scope)
    return JSONResponse({"query": body.query, "hits": [h.to_dict() for h in hits]})
