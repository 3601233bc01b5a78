"""``GET /v1/health`` (no key) and ``GET /v1/stats``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

import rag
from rag.serve._errors import ERROR_RESPONSES
from rag.serve._guard import key_scope_of
from rag.serve._json import JSONResponse
from rag.serve._schemas import HealthResponse, StatsResponse
from rag.serve.routes._common import BEARER, BackendDep

router = APIRouter(tags=["service"])


@router.get("/v1/health", response_model=HealthResponse)
def health() -> dict[str, Any]:
    """Liveness; needs no key."""
    return {"status": "ok", "version": rag.__version__}


@router.get(
    "/v1/stats", response_model=StatsResponse, dependencies=BEARER, responses=ERROR_RESPONSES
)
def stats(request: Request, backend: BackendDep) -> JSONResponse:
    """Chunks, sources, store type and dimension (the shape of ``rag stats --json``); a
    scoped key counts only its own chunks."""
    return JSONResponse(backend.stats(scope=key_scope_of(request.scope)))
