"""``POST /v1/ask``: an answer with citations, whole or as server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse

from rag.serve._errors import ERROR_RESPONSES, error, stream_error
from rag.serve._guard import key_scope_of
from rag.serve._json import JSONResponse
from rag.serve._schemas import AskRequest, AskResponse
from rag.serve.routes._common import BEARER, SSE_EVENT_NAMED, BackendDep, sse

router = APIRouter(tags=["rag"])


@router.post(
    "/v1/ask",
    response_model=AskResponse,
    dependencies=BEARER,
    responses={
        **ERROR_RESPONSES,
        200: {
            "content": {"text/event-stream": {"schema": SSE_EVENT_NAMED}},
            "description": "The answer, or with `stream: true` server-sent events: "
            '`token` events `{"text": ...}`, then one `answer` event (the JSON answer).',
        },
    },
)
async def ask(body: AskRequest, request: Request, backend: BackendDep) -> Any:
    """Answer ``question`` with citations (the shape of ``rag ask --json``)."""
    scope = key_scope_of(request.scope)
    problem = await run_in_threadpool(backend.check_question, body.question, body.answer_style)
    if problem:
        return error(422, problem, code="question_too_long", param="body.question")
    if not body.stream:
        answer = await run_in_threadpool(backend.ask_request, body.question, body, scope)
        return JSONResponse(jsonable_encoder(answer.to_dict()))

    async def events() -> AsyncIterator[str]:
        try:
            async for piece in backend.stream_request(body.question, body, scope):
                if isinstance(piece, str):
                    yield sse({"text": piece}, "token")
                else:
                    yield sse(jsonable_encoder(piece.to_dict()), "answer")
        except Exception as err:
            yield sse(stream_error(err), "error")

    return StreamingResponse(events(), media_type="text/event-stream")
