"""The OpenAI-compatible chat routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

An invalid parameter is a 400 here, as OpenAI answers (see :mod:`rag.serve._errors`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from rag.serve._errors import ERROR_RESPONSES, error, stream_error
from rag.serve._guard import key_scope_of
from rag.serve._json import JSONResponse
from rag.serve._openai_schemas import ChatCompletionRequest, ChatCompletionResponse, ModelList
from rag.serve.routes._common import BEARER, SSE_EVENT, BackendDep, sse

router = APIRouter(tags=["openai"])


@router.get("/v1/models", response_model=ModelList, dependencies=BEARER, responses=ERROR_RESPONSES)
def models(request: Request) -> dict[str, Any]:
    """The model chat completions answer to (OpenAI-compatible)."""
    model_name: str = request.app.state.model_name
    return {
        "object": "list",
        "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "ragline"}],
    }


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    dependencies=BEARER,
    responses={
        **ERROR_RESPONSES,
        200: {
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
            "description": "A chat completion, or with `stream: true` its chunks as "
            "server-sent events ending with `data: [DONE]`.",
        },
    },
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, backend: BackendDep
) -> Any:
    """OpenAI-compatible: the last user message is answered by the RAG chain; citations
    come back in the extra ``citations`` field."""
    scope = key_scope_of(request.scope)
    question = body.question()
    problem = await run_in_threadpool(backend.check_question, question, body.answer_style)
    if problem:
        return error(400, problem, code="question_too_long", param="body.messages")
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not body.stream:
        answer = await run_in_threadpool(backend.ask_request, question, body, scope)
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
        return sse(
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
        try:
            async for piece in backend.stream_request(question, body, scope):
                if isinstance(piece, str):
                    yield chunk({"content": piece})
                    continue
                citations = [c.to_dict() for c in piece.citations]
                yield chunk({}, _finish_reason(piece.finish_reason), citations=citations)
                if include_usage:
                    yield sse(
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
            yield sse(stream_error(err))
        yield sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream")


def _finish_reason(reason: str | None) -> str:
    return reason if reason in ("stop", "length") else "stop"
