"""The Open Inference Protocol (KServe v2 REST) over the pipeline's embedder.

Triton, KServe, Seldon MLServer and TorchServe's KServe mode speak this protocol; with it,
``rag serve`` is a model server for its embedding model, and any of their clients (and
``embedder.http`` with ``api: kserve``) can embed through it. Behind the same API keys as
every other route (``Authorization: Bearer KEY``):

===================================  ==========================================================
``GET /v2``                          server metadata: name, version, extensions (none)
``GET /v2/health/live``              ``{"live": true}``
``GET /v2/health/ready``             ``{"ready": true}`` (503 with ``false`` without embedder)
``GET /v2/models/{name}``            model metadata: its one input and one output tensor
``GET /v2/models/{name}/ready``      ``{"name", "ready"}``
``POST /v2/models/{name}/infer``     one ``BYTES`` input of texts, shape ``[n]`` (or ``[n, 1]``)
                                     -> output ``embedding``, ``FP32``, shape ``[n, dimension]``
===================================  ==========================================================

Texts are embedded as documents are (the embedder's ``document_prefix`` applies), exactly as
``POST /v1/embeddings`` does. The served model's name is the embedder's model name without its
directory (``all-MiniLM-L6-v2``), see :func:`served_model_name`. Errors are the protocol's
``{"error": "message"}`` (400 for a bad request, 404 for an unknown model); the binary tensor
extension is not supported (JSON only), and the routes are left out of ``/openapi.json`` (the
protocol's own specification describes them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

import rag
from rag.core.errors import RagError
from rag.serve._backend import Backend

INPUT_NAME = "text"
OUTPUT_NAME = "embedding"
DEFAULT_MODEL_NAME = "embedder"


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class _RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An inference request of the Open Inference Protocol (JSON form)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[_Tensor]
    outputs: list[_RequestedOutput] | None = None


class BadInferRequest(RagError, ValueError):
    """A request this model cannot run; the message names the offending field."""


@runtime_checkable
class _NamesItsModel(Protocol):
    """An embedder configured with a model name or path (``embedder.sentence_transformers``)."""

    model: str


def served_model_name(embedder: Any) -> str:
    """The name the embedder is served under: its ``model`` without a directory.

    >>> class Embedder:
    ...     model = "models/all-MiniLM-L6-v2"
    >>> served_model_name(Embedder()), served_model_name(object())
    ('all-MiniLM-L6-v2', 'embedder')
    """
    model = embedder.model if isinstance(embedder, _NamesItsModel) else None
    if isinstance(model, str) and model.strip("/"):
        return model.rstrip("/").rsplit("/", 1)[-1]
    return DEFAULT_MODEL_NAME


def _flat(data: list[Any]) -> Iterator[Any]:
    for item in data:
        if isinstance(item, list):
            yield from _flat(item)  # nesting is bounded by the Guard's JSON depth limit
        else:
            yield item


def texts_of(request: InferRequest, model: str) -> list[str]:
    """The texts of a request, checked against the model's one ``BYTES`` input.

    Raises:
        BadInferRequest: naming the field (``inputs[0].datatype``, ...) and what it must be.
    """
    if len(request.inputs) != 1:
        raise BadInferRequest(
            f"inputs: model '{model}' has one input, '{INPUT_NAME}' (BYTES, shape [n]); "
            f"got {len(request.inputs)}"
        )
    tensor = request.inputs[0]
    if tensor.name != INPUT_NAME:
        raise BadInferRequest(
            f"inputs[0].name: model '{model}' has no input {tensor.name!r}; its input is "
            f"'{INPUT_NAME}'"
        )
    if tensor.datatype != "BYTES":
        raise BadInferRequest(
            f"inputs[0].datatype: input '{INPUT_NAME}' is BYTES (texts), not {tensor.datatype!r}"
        )
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise BadInferRequest(
            f"inputs[0].shape: input '{INPUT_NAME}' has shape [n] or [n, 1], not {shape}"
        )
    texts = list(_flat(tensor.data))
    if len(texts) != shape[0]:
        raise BadInferRequest(
            f"inputs[0].data: {len(texts)} element(s) for shape {shape} (expected {shape[0]})"
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadInferRequest(
                f"inputs[0].data[{index}]: BYTES elements are strings in JSON, not "
                f"{type(text).__name__}"
            )
    for index, output in enumerate(request.outputs or []):
        if output.name != OUTPUT_NAME:
            raise BadInferRequest(
                f"outputs[{index}].name: model '{model}' has no output {output.name!r}; its "
                f"output is '{OUTPUT_NAME}'"
            )
    return texts


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def kserve_router(backend: Backend) -> APIRouter:
    """The ``/v2`` routes over ``backend``'s embedder (see the module doc).

    Example:
        >>> # Needs a service backend over a loaded pipeline.
        >>> from fastapi import FastAPI
        >>> app = FastAPI()  # doctest: +SKIP
        >>> app.include_router(kserve_router(backend))  # doctest: +SKIP
    """
    router = APIRouter(prefix="/v2", include_in_schema=False)

    def model_name() -> str:
        return served_model_name(backend.embedder)

    def unknown(name: str) -> JSONResponse | None:
        if backend.embedder is None:
            return _error(
                404,
                "the pipeline file has no embedder to serve; add an 'ingest' pipeline or a "
                "retriever with an embedder",
            )
        if name != model_name():
            return _error(
                404, f"model {name!r} is not served here; this server serves '{model_name()}'"
            )
        return None

    def dimension() -> int:
        with backend.lock:
            backend.embedder.warm_up()
            return int(backend.embedder.dimension)

    @router.get("")
    def server_metadata() -> dict[str, Any]:
        return {"name": "ragline", "version": rag.__version__, "extensions": []}

    @router.get("/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/health/ready")
    def ready() -> JSONResponse:
        is_ready = backend.embedder is not None
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    @router.get("/models/{name}")
    async def model_metadata(name: str) -> JSONResponse:
        problem = unknown(name)
        if problem is not None:
            return problem
        size = await run_in_threadpool(dimension)
        return JSONResponse(
            {
                "name": name,
                "versions": [],
                "platform": f"ragline/{type(backend.embedder).__name__}",
                "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, size]}],
            }
        )

    @router.get("/models/{name}/ready")
    def model_ready(name: str) -> JSONResponse:
        problem = unknown(name)
        return problem if problem is not None else JSONResponse({"name": name, "ready": True})

    @router.post("/models/{name}/infer")
    async def infer(name: str, request: Request) -> JSONResponse:
        problem = unknown(name)
        if problem is not None:
            return problem
        if "inference-header-content-length" in request.headers:
            return _error(
                400,
                "the binary tensor extension is not supported; send the request as JSON "
                "(no Inference-Header-Content-Length)",
            )
        try:
            body = InferRequest.model_validate(json.loads(await request.body()))
            texts = texts_of(body, name)
        except json.JSONDecodeError as err:
            return _error(400, f"the request body is not JSON: {err}")
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "body"
            return _error(400, f"{field}: {first['msg']} ({err.error_count()} error(s))")
        except BadInferRequest as err:
            return _error(400, str(err))
        if texts:
            vectors, _ = await run_in_threadpool(backend.embed, texts)
            shape, data = [len(texts), int(vectors.shape[1])], vectors.reshape(-1).tolist()
        else:
            shape, data = [0, await run_in_threadpool(dimension)], []
        output = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": shape, "data": data}
        answer: dict[str, Any] = {"model_name": name, "outputs": [output]}
        if body.id is not None:
            answer["id"] = body.id
        return JSONResponse(answer)

    return router
