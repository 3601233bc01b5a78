"""OpenTelemetry tracing, optional and free when off.

ragline opens a span per pipeline component (``ragline.component``) and per chain stage
(``ragline.ask`` with children ``ragline.retrieve``, ``ragline.prompt``, ``ragline.generate``
and ``ragline.tool_call``), with timings and token counts as attributes:

====================================  ==========================================================
``ragline.seconds``                   wall time of the stage (every span)
``gen_ai.usage.input_tokens``         prompt tokens (``generate`` spans, summed on ``ask``)
``gen_ai.usage.output_tokens``        completion tokens (idem)
``ragline.k``, ``ragline.hits``       contexts asked for and found (``retrieve``)
``ragline.component``                 the component's name in the pipeline
====================================  ==========================================================

Where the spans go, in order:

1. a ``tracer_provider`` passed by the caller (``RagChain(tracer_provider=...)``,
   ``Pipeline(tracer_provider=...)``): tests, or applications that keep their own provider;
2. with ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, an OTLP
   exporter over HTTP, installed once as OpenTelemetry's global provider unless the application
   already installed one (``pip install 'ragline[otel]'``);
3. a global provider the application installed itself;
4. otherwise nowhere: every call is a no-op on one shared inert object, and OpenTelemetry is
   not even imported.

ragline keeps no state of its own: the only global is the one OpenTelemetry keeps.

Example:
    >>> from rag.core.tracing import tracer_for
    >>> tracing = tracer_for(None)  # nothing configured: the no-op tracer
    >>> with tracing.span("ragline.retrieve", {"ragline.k": 5}) as span:
    ...     span.set_attribute("ragline.hits", 5)
    >>> tracing.enabled
    False
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("rag.tracing")

TRACER_NAME = "ragline"
OTLP_ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Either one turns OTLP export on."""

Attributes = Mapping[str, Any]


class _NoopSpan:
    """Stands in for a span (and its context manager) when tracing is off."""

    __slots__ = ()

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None  # never swallows the exception

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Attributes) -> None:
        pass

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        pass

    def end(self) -> None:
        pass

    def is_recording(self) -> bool:
        return False


NOOP_SPAN = _NoopSpan()


class Tracing:
    """ragline's handle on an OpenTelemetry tracer; with ``tracer=None`` every call is a no-op.

    Args:
        tracer: An ``opentelemetry.trace.Tracer``, or ``None`` for the no-op.

    Example:
        >>> # Needs the OpenTelemetry SDK (pip install 'ragline[otel]').
        >>> from opentelemetry.sdk.trace import TracerProvider  # doctest: +SKIP
        >>> tracing = tracer_for(TracerProvider())  # doctest: +SKIP
        >>> with tracing.span("ragline.retrieve") as span:  # doctest: +SKIP
        ...     span.set_attribute("ragline.hits", 3)
    """

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Any | None = None) -> None:
        self._tracer = tracer

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(self, name: str, attributes: Attributes | None = None, *, parent: Any = None) -> Any:
        """A context manager for a span that is the current span inside the block.

        Args:
            name: The span name (``ragline.<stage>``).
            attributes: Initial attributes.
            parent: A span to parent this one on (default: the current span).
        """
        if self._tracer is None:
            return NOOP_SPAN
        return self._current_span(self._tracer, name, attributes, parent)

    @contextmanager
    def _current_span(
        self, tracer: Any, name: str, attributes: Attributes | None, parent: Any
    ) -> Iterator[Any]:
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent is not None else None
        started = time.perf_counter()
        with tracer.start_as_current_span(
            name, context=context, attributes=dict(attributes or {})
        ) as span:
            try:
                yield span
            finally:
                span.set_attribute("ragline.seconds", time.perf_counter() - started)

    def start_span(
        self, name: str, attributes: Attributes | None = None, *, parent: Any = None
    ) -> Any:
        """A span that is *not* made current; the caller ends it with :func:`end_span`.

        For spans that live across ``yield`` (a streamed answer), where changing the current
        context would leak into the consumer's code.
        """
        if self._tracer is None:
            return NOOP_SPAN
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent is not None else None
        return self._tracer.start_span(name, context=context, attributes=dict(attributes or {}))


NOOP_TRACING = Tracing(None)


def end_span(
    span: Any, *, seconds: float | None = None, error: BaseException | None = None
) -> None:
    """End a span from :meth:`Tracing.start_span`, recording its time and any error."""
    if span is NOOP_SPAN:
        return
    if seconds is not None:
        span.set_attribute("ragline.seconds", seconds)
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()


def _otlp_endpoint() -> str | None:
    for name in OTLP_ENDPOINT_ENVS:
        value = os.environ.get(name)
        if value:
            return value
    return None


@functools.cache
def _install_otlp(endpoint: str) -> bool:
    """Install an OTLP/HTTP exporting provider as OpenTelemetry's global one (once).

    Returns whether spans can be exported: False when the packages are missing (a warning says
    what to install) or another provider is already installed (that one is used instead).
    """
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as err:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set (%s) but OpenTelemetry is not installed (%s); "
            "tracing stays off. Install it with: pip install 'ragline[otel]'",
            endpoint,
            err.name,
        )
        return False
    if _installed_provider() is not None:
        return True  # the application's own provider wins
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": TRACER_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)  # flushed by the SDK's own atexit hook
    return True


def _installed_provider() -> Any | None:
    """The global provider an application installed, if OpenTelemetry is loaded at all."""
    if "opentelemetry.trace" not in sys.modules:
        return None  # nobody imported OpenTelemetry, so nobody configured it
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider


def tracer_for(tracer_provider: Any | None = None) -> Tracing:
    """The :class:`Tracing` to use: from ``tracer_provider``, else from the environment (see
    the module docstring), else the no-op.

    Example:
        >>> tracer_for(None).enabled  # no provider, no OTEL_EXPORTER_OTLP_ENDPOINT
        False
    """
    if tracer_provider is not None:
        return Tracing(tracer_provider.get_tracer(TRACER_NAME))
    endpoint = _otlp_endpoint()
    if endpoint is not None and not _install_otlp(endpoint):
        return NOOP_TRACING
    provider = _installed_provider()
    return NOOP_TRACING if provider is None else Tracing(provider.get_tracer(TRACER_NAME))


def traced_retrieve(
    retriever: Any,
    query: str,
    *,
    k: int | None = None,
    filters: Any = None,
    tracing: Tracing | None = None,
) -> Any:
    """``retriever.retrieve(query, k=, filters=)`` inside a ``ragline.retrieve`` span (what
    ``rag search`` runs; a no-op wrapper when tracing is off).

    Example:
        >>> class Echo:
        ...     def retrieve(self, query, *, k=None, filters=None):
        ...         return [query] * (k or 1)
        >>> traced_retrieve(Echo(), "hnsw", k=2)
        ['hnsw', 'hnsw']
    """
    tracing = tracing or tracer_for(None)
    with tracing.span("ragline.retrieve", {"ragline.k": k or 0}) as span:
        hits = retriever.retrieve(query, k=k, filters=filters)
        span.set_attribute("ragline.hits", len(hits))
    return hits


def current_span() -> Any | None:
    """The recording span of the current context, or None (also when OpenTelemetry is not
    loaded), so a component can annotate the stage it runs in without a tracer of its own."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    span = trace.get_current_span()
    return span if span.is_recording() else None
