"""The gRPC API beside the REST one: ``rag serve --config qa.yaml --grpc-port 50051``.

The service ``ragline.v1.Ragline`` (``rag/serve/proto/ragline.proto``) has four methods:

==========  =========================================================================
``Search``  unary: the hits for a query (``POST /v1/search``)
``Ask``     server streaming: ``Token`` events as they are generated, then one ``Answer``
``Ingest``  client streaming: optional ``IngestOptions``, then ``Document`` messages
``Stats``   unary: chunks, sources, store and dimension (``GET /v1/stats``)
==========  =========================================================================

The standard ``grpc.health.v1.Health`` and server reflection services run beside it and need
no key (as ``/v1/health`` needs none). Everything else is the REST API's: the same
:class:`~rag.serve._backend.Backend` object (one lock, one copy of each model), the same keys
(metadata ``authorization: Bearer KEY``), the same request models and limits
(:mod:`rag.serve._schemas`), and ``max_message_bytes`` plays the part of the body limit.

Status codes: a missing or wrong key is ``UNAUTHENTICATED``; a key whose scope does not allow
the call (a read-only key ingesting) is ``PERMISSION_DENIED``; invalid input, a message that is
not a valid protobuf, or a question too long for the context window is ``INVALID_ARGUMENT``
whose details start with the offending field; a message or an ``Ingest`` stream over the limits
is ``RESOURCE_EXHAUSTED``; a pipeline file without what a method needs is ``UNIMPLEMENTED``; a
failing model is ``UNAVAILABLE``; anything else is ``INTERNAL`` (the server log has the trace).

Needs the ``grpc`` extra: ``pip install 'ragline[grpc]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any

from rag.core.deps import require
from rag.core.documents import Document
from rag.core.errors import (
    ConfigError,
    FilterError,
    GenerationError,
    InvalidInputError,
    RagError,
    StoreLockedError,
)
from rag.serve._backend import Backend, Forbidden, NotConfigured
from rag.serve._json import json_safe
from rag.serve._keys import API_KEYS_ENV, ApiKey, KeyRing, KeyScope
from rag.serve._schemas import MAX_DOCUMENTS, AskRequest, DocumentIn, SearchRequest

grpc = require("grpc", package="grpcio", extra="grpc", purpose="the gRPC API")
require("grpc_health.v1.health", package="grpcio-health-checking", extra="grpc", purpose="gRPC")
require("grpc_reflection.v1alpha", package="grpcio-reflection", extra="grpc", purpose="gRPC")
require("google.protobuf", package="protobuf", extra="grpc", purpose="the gRPC API")

from google.protobuf.message import DecodeError  # noqa: E402
from google.protobuf.struct_pb2 import ListValue, Struct  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from rag.serve._grpc_keys import (  # noqa: E402
    UNAUTHENTICATED,
    KeyInterceptor,
)
from rag.serve.proto import ragline_pb2 as pb  # noqa: E402

logger = logging.getLogger("rag.serve.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Ragline"].full_name
"""``ragline.v1.Ragline``."""

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""Largest request message and largest ``Ingest`` stream, in bytes (the REST body limit)."""


class InvalidArgument(RagError):
    """A request field is wrong; the message starts with the field's name."""


class _Malformed:
    """Stands for a request whose bytes are not a valid protobuf message."""

    def __init__(self, message_type: str, reason: str) -> None:
        self.message_type = message_type
        self.reason = reason


def _tolerant(message_class: Any) -> Callable[[bytes], Any]:
    """A deserializer that never raises: grpc would answer a failing one with ``INTERNAL``."""

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as err:
            return _Malformed(message_class.DESCRIPTOR.full_name, str(err))

    return parse


def _check_wellformed(request: Any, field: str = "request") -> None:
    if isinstance(request, _Malformed):
        raise InvalidArgument(
            f"{field}: not a valid {request.message_type} message ({request.reason})"
        )


# -- protobuf <-> python --------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Struct numbers are doubles; a whole number comes back as an int, as JSON would give."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _python_of(value: Any) -> Any:
    """A Struct's values as Python, non-finite numbers kept (the request models refuse them
    with the field's name; ``json_format`` would fail on them first, as an internal error)."""
    if isinstance(value, Struct):
        return {key: _python_of(item) for key, item in value.items()}
    if isinstance(value, ListValue):
        return [_python_of(item) for item in value]
    return value


def _struct_of(message: Any, field: str) -> dict[str, Any] | None:
    if not message.HasField(field):
        return None
    return _plain(_python_of(getattr(message, field)))  # protobuf fields are attributes


def _to_struct(data: Mapping[str, Any] | None) -> Struct:
    struct = Struct()
    if data:
        # JSON values only; a stored NaN or infinity goes out as null, as in the REST answers
        struct.update(json_safe(json.loads(json.dumps(data, default=str))))
    return struct


def _field_errors(err: ValidationError, prefix: str = "") -> str:
    """``query: String should have at least 1 character; k: ...`` from pydantic's errors."""
    parts = []
    for error in err.errors():
        location = ".".join(str(part) for part in error.get("loc", ()))
        field = f"{prefix}.{location}" if prefix and location else prefix or location or "request"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts) or "invalid request"


def _validated(model: Any, data: dict[str, Any], *, prefix: str = "") -> Any:
    """``data`` checked by the REST API's request model (the same fields, the same limits)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InvalidArgument(_field_errors(err, prefix)) from None


def _hit_message(hit: Any) -> Any:
    return pb.Hit(
        id=hit.chunk.id,
        score=float(hit.score),
        text=hit.chunk.text,
        metadata=_to_struct(hit.chunk.metadata),
    )


def _answer_message(answer: Any) -> Any:
    data = answer.to_dict()
    return pb.Answer(
        question=data["question"],
        answer=data["answer"],
        citations=[pb.Citation(**c) for c in data["citations"]],
        contexts=[
            pb.Context(
                index=c["index"],
                id=c["id"],
                source=c["source"],
                score=c["score"],
                text=c["text"],
                metadata=_to_struct(c["metadata"]),
                trimmed=c["trimmed"],
            )
            for c in data["contexts"]
        ],
        prompt=data["prompt"],
        timings=data["timings"],
        usage={k: int(v) for k, v in data["usage"].items() if v is not None},
        invalid_citations=data["invalid_citations"],
        dropped_contexts=data["dropped_contexts"],
        steps=data["steps"],
        finish_reason=data["finish_reason"] or "",
        messages=[_to_struct(m) for m in data["messages"]],
        tool_calls=[_to_struct(t) for t in data["tool_calls"]],
        answer_style=data["answer_style"],
        grounded=data["grounded"],
        spans=[pb.AnswerSpan(**span) for span in data["spans"]],
    )


# -- errors ---------------------------------------------------------------------------------
def _status_of(err: BaseException) -> tuple[Any, str]:
    code = grpc.StatusCode
    if isinstance(err, InvalidArgument):
        return code.INVALID_ARGUMENT, str(err)
    if isinstance(err, FilterError):
        return code.INVALID_ARGUMENT, f"filters: {err}"
    if isinstance(err, InvalidInputError):
        return code.INVALID_ARGUMENT, str(err)
    if isinstance(err, Forbidden):
        return code.PERMISSION_DENIED, str(err)
    if isinstance(err, StoreLockedError):
        return code.UNAVAILABLE, str(err)
    if isinstance(err, NotConfigured):
        return code.UNIMPLEMENTED, str(err)
    if isinstance(err, ConfigError):
        return code.FAILED_PRECONDITION, str(err)
    if isinstance(err, GenerationError):
        logger.warning("generation failed: %s", err)
        return code.UNAVAILABLE, f"the model failed: {err}"
    logger.error("gRPC request failed", exc_info=err)
    return code.INTERNAL, "internal error; the server log has the details"


@contextlib.asynccontextmanager
async def _mapped_errors(context: Any) -> AsyncIterator[None]:
    """Turn the backend's exceptions into gRPC status codes (one table, :func:`_status_of`)."""
    try:
        yield
    except (grpc.aio.AbortError, asyncio.CancelledError):
        raise
    except Exception as err:
        code, message = _status_of(err)
        await context.abort(code, message)


# -- the service ----------------------------------------------------------------------------
class RaglineService:
    """The methods of ``ragline.v1.Ragline`` over a :class:`Backend` (asyncio handlers).

    Blocking backend calls run in worker threads; answer tokens come through
    :func:`rag.core.threads.iterate_in_thread`, so a cancelled ``Ask`` (client gone, deadline
    passed) closes the model's generator and releases the backend's lock.
    """

    def __init__(
        self, backend: Backend, *, max_message_bytes: int, keys: KeyRing | None = None
    ) -> None:
        self.backend = backend
        self.max_message_bytes = max_message_bytes
        self.keys = keys if keys is not None else KeyRing(None)

    async def _scope(self, context: Any) -> KeyScope:
        """The caller's scope, from its ``authorization`` metadata (the interceptor checked it)."""
        header = next(
            (v for k, v in context.invocation_metadata() or () if k == "authorization"), None
        )
        scope = self.keys.scope_of_header(header)
        if scope is None:  # the interceptor refuses these first; never trust that alone
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)
        assert scope is not None
        return scope

    async def Search(self, request: Any, context: Any) -> Any:
        async with _mapped_errors(context):
            _check_wellformed(request)
            scope = await self._scope(context)
            data: dict[str, Any] = {"query": request.query}
            if request.HasField("k"):
                data["k"] = request.k
            data["filters"] = _struct_of(request, "filters")
            body = _validated(SearchRequest, data)
            hits = await asyncio.to_thread(
                self.backend.search, body.query, k=body.k, filters=body.filters, scope=scope
            )
            return pb.SearchResponse(query=body.query, hits=[_hit_message(h) for h in hits])

    async def Ask(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async with _mapped_errors(context):
            _check_wellformed(request)
            scope = await self._scope(context)
            data: dict[str, Any] = {"question": request.question}
            if request.HasField("k"):
                data["k"] = request.k
            data["filters"] = _struct_of(request, "filters")
            if request.HasField("answer_style"):
                data["answer_style"] = request.answer_style
            body = _validated(AskRequest, data)
            problem = await asyncio.to_thread(
                self.backend.check_question, body.question, body.answer_style
            )
            if problem:
                raise InvalidArgument(f"question: {problem}")
            async for piece in self.backend.stream_request(body.question, body, scope):
                if isinstance(piece, str):
                    yield pb.AskEvent(token=pb.Token(text=piece))
                else:
                    yield pb.AskEvent(answer=_answer_message(piece))

    async def Ingest(self, request_iterator: Any, context: Any) -> Any:
        async with _mapped_errors(context):
            scope = await self._scope(context)
            replace = True
            documents: list[Document] = []
            received = 0
            position = 0
            async for message in request_iterator:
                field = f"documents[{len(documents)}]"
                _check_wellformed(message, field)
                received += message.ByteSize()
                if received > self.max_message_bytes:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"the Ingest stream is larger than the limit of "
                        f"{self.max_message_bytes} bytes; send the documents in several calls",
                    )
                kind = message.WhichOneof("item")
                if kind == "options":
                    if position:
                        raise InvalidArgument("options: only the first message may carry options")
                    if message.options.HasField("replace"):
                        replace = message.options.replace
                elif kind == "document":
                    if len(documents) >= MAX_DOCUMENTS:
                        await context.abort(
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"documents: more than {MAX_DOCUMENTS} documents in one Ingest "
                            "stream; send them in several calls",
                        )
                    doc = message.document
                    data = {"id": doc.id, "text": doc.text}
                    metadata = _struct_of(doc, "metadata")
                    if metadata is not None:
                        data["metadata"] = metadata
                    checked = _validated(DocumentIn, data, prefix=field)
                    documents.append(
                        Document(id=checked.id, text=checked.text, metadata=dict(checked.metadata))
                    )
                else:
                    raise InvalidArgument(f"{field}: the message has neither options nor document")
                position += 1
            if not documents:
                raise InvalidArgument("documents: the stream carried no document")
            report = await asyncio.to_thread(
                self.backend.ingest_documents, documents, replace=replace, scope=scope
            )
            data = report.to_dict()
            return pb.IngestResponse(
                sources=data["sources"],
                chunks_written=data["chunks_written"],
                chunks_skipped=data["chunks_skipped"],
                chunks_deleted=data["chunks_deleted"],
                errors=[
                    pb.IngestError(source=str(e.get("source", "")), error=str(e.get("error", "")))
                    for e in data["errors"]
                ],
                seconds=data["seconds"],
            )

    async def Stats(self, request: Any, context: Any) -> Any:
        async with _mapped_errors(context):
            _check_wellformed(request)
            scope = await self._scope(context)
            stats = await asyncio.to_thread(self.backend.stats, scope=scope)
            return pb.StatsResponse(
                chunks=stats["chunks"],
                sources=stats["sources"],
                store=stats["store"] or "",
                dimension=stats["dimension"],
            )

    def handler(self) -> Any:
        """The generic handler of the service.

        Built here rather than with the generated ``add_RaglineServicer_to_server`` so that the
        deserializers are tolerant: bytes that are not a valid message get ``INVALID_ARGUMENT``
        naming the message type, not grpc's ``INTERNAL`` "Exception deserializing request".
        """
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Search": grpc.unary_unary_rpc_method_handler(
                    self.Search,
                    request_deserializer=_tolerant(pb.SearchRequest),
                    response_serializer=pb.SearchResponse.SerializeToString,
                ),
                "Ask": grpc.unary_stream_rpc_method_handler(
                    self.Ask,
                    request_deserializer=_tolerant(pb.AskRequest),
                    response_serializer=pb.AskEvent.SerializeToString,
                ),
                "Ingest": grpc.stream_unary_rpc_method_handler(
                    self.Ingest,
                    request_deserializer=_tolerant(pb.IngestRequest),
                    response_serializer=pb.IngestResponse.SerializeToString,
                ),
                "Stats": grpc.unary_unary_rpc_method_handler(
                    self.Stats,
                    request_deserializer=_tolerant(pb.StatsRequest),
                    response_serializer=pb.StatsResponse.SerializeToString,
                ),
            },
        )


# -- the server -----------------------------------------------------------------------------
def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    return f"{host}:{port}"


class GrpcServer:
    """The gRPC API of a :class:`Backend`, served from its own event loop in a thread.

    ``rag serve --grpc-port N`` runs it beside uvicorn over the REST app's backend, so both
    front doors share one lock and one copy of each model.

    Args:
        backend: What to serve (``app.state.backend`` of :func:`rag.serve.create_app`).
        api_keys: Keys accepted as metadata ``authorization: Bearer KEY`` (plain strings have
            full access, :class:`~rag.serve._keys.ApiKey` entries their scope); ``None`` serves
            without keys (local development).
        host: Address to bind.
        port: Port to bind; 0 picks a free one (see :attr:`port` after :meth:`start`).
        max_message_bytes: Largest request message, and largest ``Ingest`` stream, in bytes.
        grace_seconds: How long :meth:`stop` lets running calls finish.

    Example:
        >>> # Loads the models, then serves until stopped.
        >>> from rag.serve import create_app
        >>> app = create_app("examples/qa.yaml", api_keys=["k-0123456789abcdef"])  # doctest: +SKIP
        >>> server = GrpcServer(  # doctest: +SKIP
        ...     app.state.backend, api_keys=["k-0123456789abcdef"], port=50051
        ... )
        >>> server.start()  # doctest: +SKIP
        50051
        >>> server.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: Backend,
        *,
        api_keys: Collection[str | ApiKey] | None,
        host: str = "127.0.0.1",
        port: int = 50051,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        grace_seconds: float = 5.0,
    ) -> None:
        if api_keys is not None and not api_keys:
            raise ConfigError(
                f"refusing to serve gRPC without API keys: set {API_KEYS_ENV}, or pass "
                "api_keys=None (--no-auth) for local development"
            )
        if max_message_bytes < 1:
            raise ConfigError(f"max_message_bytes must be at least 1, got {max_message_bytes}")
        self.backend = backend
        self.api_keys = None if api_keys is None else list(api_keys)
        self.keys = KeyRing(self.api_keys)
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.grace_seconds = grace_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> int:
        """Bind and start serving in a background thread; returns the bound port.

        Raises:
            ConfigError: the address cannot be bound (in use, or not an address of this host).
        """
        if self._thread is not None:
            raise RuntimeError("the gRPC server is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve(ready))
            except BaseException as err:
                failure.append(err)
                ready.set()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="ragline-grpc", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise ConfigError(
                f"cannot serve gRPC on {_address(self.host, self.port)}: {failure[0]}; "
                "choose another --grpc-port"
            ) from failure[0]
        return self.port

    async def _serve(self, ready: threading.Event) -> None:
        server = grpc.aio.server(
            interceptors=[KeyInterceptor(self.keys)],
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        service = RaglineService(
            self.backend, max_message_bytes=self.max_message_bytes, keys=self.keys
        )
        server.add_generic_rpc_handlers((service.handler(),))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME), server)
        self.port = server.add_insecure_port(_address(self.host, self.port))
        await server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, serving)
        self._stop = asyncio.Event()
        ready.set()
        await self._stop.wait()
        await health_servicer.enter_graceful_shutdown()
        await server.stop(self.grace_seconds)

    def stop(self) -> None:
        """Stop accepting calls, let running ones finish (``grace_seconds``), then return."""
        if self._thread is None or self._loop is None:
            return
        if self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> GrpcServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
