"""Embeddings from the pipeline's embedder: ``POST /v1/embeddings`` (OpenAI-compatible, a 400
for an invalid parameter) and ``POST /v1/embed`` (Text Embeddings Inference's shape)."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from rag.serve._errors import ERROR_RESPONSES
from rag.serve._json import JSONResponse
from rag.serve._openai_schemas import EmbeddingsRequest, EmbeddingsResponse, EmbedRequest
from rag.serve.routes._common import BEARER, BackendDep

router = APIRouter()


@router.post(
    "/v1/embeddings",
    response_model=EmbeddingsResponse,
    dependencies=BEARER,
    responses=ERROR_RESPONSES,
    tags=["openai"],
)
async def embeddings(body: EmbeddingsRequest, backend: BackendDep) -> JSONResponse:
    """OpenAI-compatible embeddings of ``input`` by the pipeline's embedder (as it embeds
    documents); ``encoding_format: base64`` sends little-endian float32 bytes."""
    vectors, tokens = await run_in_threadpool(backend.embed, body.texts())
    encode = _base64_vector if body.encoding_format == "base64" else _float_vector
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse({"object": "list", "data": data, "model": body.model, "usage": usage})


@router.post(
    "/v1/embed",
    response_model=list[list[float]],
    dependencies=BEARER,
    responses=ERROR_RESPONSES,
    tags=["embeddings"],
)
async def embed(body: EmbedRequest, backend: BackendDep) -> JSONResponse:
    """Embeddings in the shape of Text Embeddings Inference's ``POST /embed``: one list of
    numbers per input."""
    vectors, _ = await run_in_threadpool(backend.embed, body.texts())
    if body.normalize:
        vectors = _unit_rows(vectors)
    return JSONResponse([_float_vector(v) for v in vectors])


def _float_vector(vector: Any) -> list[float]:
    return vector.astype("float32").tolist()


def _base64_vector(vector: Any) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def _unit_rows(vectors: Any) -> Any:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
