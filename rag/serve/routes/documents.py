"""``POST /v1/documents`` (inline JSON, server paths or uploads) and ``DELETE /v1/documents``."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from rag.core.documents import Document
from rag.serve._errors import ERROR_RESPONSES, error
from rag.serve._guard import key_scope_of
from rag.serve._json import JSONResponse
from rag.serve._schemas import (
    DeleteRequest,
    DeleteResponse,
    DocumentsRequest,
    ErrorResponse,
    IngestResponse,
)
from rag.serve.routes._common import BEARER, BackendDep

MAX_UPLOAD_FILES = 100

router = APIRouter(tags=["documents"])

# The body is read by hand (JSON or multipart), so its two shapes are documented here; the
# JSON one's schema is added to the components by ``publish_documents_schema``.
_DOCUMENTS_BODY: dict[str, Any] = {
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


@router.post(
    "/v1/documents",
    response_model=IngestResponse,
    dependencies=BEARER,
    responses={
        **ERROR_RESPONSES,
        403: {"model": ErrorResponse, "description": "Path not allowed."},
    },
    openapi_extra=_DOCUMENTS_BODY,
)
async def add_documents(request: Request, backend: BackendDep) -> JSONResponse:
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
        return error(
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
            Document(id=d.id, text=d.text, metadata=dict(d.metadata)) for d in body.documents or []
        ]
        report = await run_in_threadpool(
            backend.ingest_documents, documents, replace=body.replace, scope=scope
        )
    return JSONResponse(report.to_dict())


@router.delete(
    "/v1/documents", response_model=DeleteResponse, dependencies=BEARER, responses=ERROR_RESPONSES
)
def delete_documents(body: DeleteRequest, request: Request, backend: BackendDep) -> JSONResponse:
    """Delete chunks by ``ids`` or by ``filters`` (a JSON body, as DELETE allows); a scoped
    key deletes only its own chunks."""
    scope = key_scope_of(request.scope)
    deleted = backend.delete(ids=body.ids, filters=body.filters, scope=scope)
    return JSONResponse({"deleted": deleted})


def publish_documents_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document) with the JSON body of ``POST /v1/documents`` (read by
    hand, so FastAPI does not see it) added to its components."""
    definitions = DocumentsRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(definitions.pop("$defs", {}))
    components["DocumentsRequest"] = definitions
    return schema


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
