"""Tracing: the span tree of one ``ask`` (real model) and of a pipeline run, with the SDK's
in-memory exporter; OTLP export to a real HTTP receiver; nothing at all when off."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.core import Pipeline
from rag.core.tracing import NOOP_SPAN, OTLP_ENDPOINT_ENVS, traced_retrieve, tracer_for
from tests.core.toys import Add

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="pip install 'ragline[otel]'")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture()
def provider(exporter) -> Any:
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture(autouse=True)
def no_otlp_env(monkeypatch) -> None:
    for name in OTLP_ENDPOINT_ENVS:
        monkeypatch.delenv(name, raising=False)


def tree(spans: list[Any]) -> dict[str, Any]:
    """``{"root": span, "children": {parent span id: [child names in start order]}}``."""
    roots = [s for s in spans if s.parent is None]
    children: dict[int, list[Any]] = {}
    for span in sorted(spans, key=lambda s: s.start_time):
        if span.parent is not None:
            children.setdefault(span.parent.span_id, []).append(span)
    assert len(roots) == 1, [s.name for s in roots]
    return {"root": roots[0], "children": children}


def names(spans: list[Any]) -> list[str]:
    return [s.name for s in spans]


# -- off ----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_without_provider_or_endpoint_tracing_is_the_shared_no_op():
    tracing = tracer_for(None)
    assert not tracing.enabled
    assert tracing.span("ragline.retrieve") is NOOP_SPAN
    assert tracing.start_span("ragline.ask") is NOOP_SPAN


@pytest.mark.unit
def test_off_does_not_even_import_opentelemetry():
    """A pipeline run and a chain ask in a fresh interpreter leave OpenTelemetry unimported."""
    script = textwrap.dedent(
        """
        import sys
        from rag.core import Pipeline
        from rag.chains import RagChain
        from tests.core.toys import Add
        from tests.chains.helpers import ListRetriever, Script, reply, scripted_generator

        pipeline = Pipeline()
        pipeline.add_component("add", Add(amount=2))
        assert pipeline.run(value=1) == {"add": {"value": 3}}
        chain = RagChain(
            retriever=ListRetriever(texts=["Paris is in France."]),
            generator=scripted_generator(Script(reply("Paris [1]."))),
        )
        assert chain.ask("Where is Paris?").text == "Paris [1]."
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(loaded)
        assert not loaded, loaded
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# -- pipelines -----------------------------------------------------------------------------------
@pytest.mark.unit
def test_a_pipeline_run_is_one_span_with_a_child_per_component(provider, exporter):
    pipeline = Pipeline("numbers", tracer_provider=provider)
    pipeline.add_component("one", Add(amount=1))
    pipeline.add_component("ten", Add(amount=10))
    assert pipeline.run(value=0) == {"ten": {"value": 11}}
    spans = exporter.get_finished_spans()
    shape = tree(list(spans))
    root = shape["root"]
    assert root.name == "ragline.pipeline" and root.attributes["ragline.pipeline"] == "numbers"
    components = shape["children"][root.context.span_id]
    assert [s.attributes["ragline.component"] for s in components] == ["one", "ten"]
    assert names(components) == ["ragline.component"] * 2
    assert all(s.attributes["ragline.seconds"] >= 0 for s in spans)


@pytest.mark.unit
def test_a_failing_component_marks_its_span_and_the_pipeline_span_as_errors(provider, exporter):
    class Broken(Add):
        def run(self, value: int) -> dict[str, Any]:
            raise ValueError("no numbers today")

    pipeline = Pipeline(tracer_provider=provider)
    pipeline.add_component("broken", Broken())
    with pytest.raises(ValueError, match="no numbers today"):
        pipeline.run(value=1)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    for name in ("ragline.pipeline", "ragline.component"):
        assert spans[name].status.status_code is StatusCode.ERROR
    assert (
        "no numbers today" in spans["ragline.component"].events[0].attributes["exception.message"]
    )


@pytest.mark.unit
def test_traced_retrieve_records_k_and_hits(provider, exporter):
    from tests.chains.helpers import ListRetriever

    hits = traced_retrieve(
        ListRetriever(texts=["a", "b", "c"]), "q", k=2, tracing=tracer_for(provider)
    )
    (span,) = exporter.get_finished_spans()
    assert len(hits) == 2
    assert span.name == "ragline.retrieve"
    assert span.attributes["ragline.k"] == 2 and span.attributes["ragline.hits"] == 2


# -- chains --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def faiss_retriever(tmp_path_factory, embedder) -> Any:
    from rag.connectors.retrievers.dense import DenseRetriever
    from rag.connectors.stores.faiss import FaissStore
    from rag.core import Chunk

    store = FaissStore(path=str(tmp_path_factory.mktemp("tracing") / "index"))
    store.warm_up()
    texts = [
        "Paris is the capital of France.",
        "Berlin is the capital of Germany.",
        "Madrid is the capital of Spain.",
    ]
    chunks = [Chunk.create(text=t, source_id=f"doc{i}.md", position=0) for i, t in enumerate(texts)]
    for chunk, vector in zip(chunks, embedder.embed_documents(texts)):
        chunk.embedding = vector
    store.write(chunks, policy="upsert")
    return DenseRetriever(embedder=embedder, store=store, k=2)


@pytest.mark.integration
@pytest.mark.parametrize("stream", [False, True])
def test_the_span_tree_of_one_ask(faiss_retriever, local_generator, provider, exporter, stream):
    from rag.chains import Answer, RagChain

    chain = RagChain(  # a style that calls the generator (evidence, the default, does not)
        retriever=faiss_retriever,
        generator=local_generator,
        k=2,
        tracer_provider=provider,
        answer_style="sentences",
    )
    if stream:
        *pieces, answer = list(chain.stream("What is the capital of France?"))
        assert all(isinstance(p, str) for p in pieces)
    else:
        answer = chain.ask("What is the capital of France?")
    assert isinstance(answer, Answer)
    spans = list(exporter.get_finished_spans())
    shape = tree(spans)
    root = shape["root"]
    assert root.name == "ragline.ask"
    stages = shape["children"][root.context.span_id]
    assert names(stages) == ["ragline.retrieve", "ragline.prompt", "ragline.generate"]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    retrieve, prompt, generate = stages
    assert retrieve.attributes["ragline.k"] == 2
    assert retrieve.attributes["ragline.hits"] == len(answer.contexts) == 2
    assert prompt.attributes["ragline.contexts"] == 2
    # Token counts are the model's own, the same as the answer reports.
    assert generate.attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens > 0
    assert generate.attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert root.attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert root.attributes["ragline.stream"] is stream
    # Timings: each stage span carries the seconds the answer reports for it.
    assert retrieve.attributes["ragline.seconds"] <= answer.timings["retrieve"] + 1e-3
    assert generate.attributes["ragline.seconds"] >= answer.timings["generate"] - 1e-3
    assert root.attributes["ragline.seconds"] >= answer.timings["total"] - 1e-3
    assert all(root.start_time <= s.start_time <= s.end_time <= root.end_time for s in stages)


@pytest.mark.unit
def test_tool_calls_get_their_own_spans(provider, exporter):
    from rag.chains import RagChain
    from tests.chains.helpers import ListRetriever, Script, reply, scripted_generator

    script = Script(
        reply(calls=[("calculator", {"expression": "6 * 7"}), ("nope", {})]),
        reply("It is 42 [1]."),
    )
    chain = RagChain(
        retriever=ListRetriever(texts=["Six times seven is asked often."]),
        generator=scripted_generator(script),
        tools=["calculator"],
        tracer_provider=provider,
    )
    answer = chain.ask("What is 6 * 7?")
    assert answer.text == "It is 42 [1]."
    shape = tree(list(exporter.get_finished_spans()))
    stages = shape["children"][shape["root"].context.span_id]
    assert names(stages) == [
        "ragline.retrieve",
        "ragline.prompt",
        "ragline.generate",
        "ragline.tool_call",
        "ragline.tool_call",
        "ragline.generate",
    ]
    calculator, unknown = stages[3], stages[4]
    assert calculator.attributes["ragline.tool"] == "calculator"
    assert "ragline.tool_error" not in calculator.attributes
    assert "unknown tool 'nope'" in unknown.attributes["ragline.tool_error"]
    assert shape["root"].attributes["gen_ai.usage.input_tokens"] == 20  # 10 per scripted call


@pytest.mark.unit
def test_a_failed_ask_is_an_error_span(provider, exporter):
    import httpx

    from rag.chains import RagChain
    from rag.core import GenerationError
    from tests.chains.helpers import ListRetriever, Script, scripted_generator

    script = Script(httpx.Response(400, json={"error": {"message": "bad request"}}))
    chain = RagChain(
        retriever=ListRetriever(texts=["x"]),
        generator=scripted_generator(script, max_retries=0),
        tracer_provider=provider,
    )
    with pytest.raises(GenerationError):
        chain.ask("Anything?")
    root = tree(list(exporter.get_finished_spans()))["root"]
    assert root.name == "ragline.ask" and root.status.status_code is StatusCode.ERROR


@pytest.mark.unit
def test_a_global_provider_installed_by_the_application_is_used():
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from rag.core import Pipeline
        from tests.core.toys import Add

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        pipeline = Pipeline("app")
        pipeline.add_component("add", Add())
        with trace.get_tracer("app").start_as_current_span("request"):
            pipeline.run(value=1)
        spans = {s.name: s for s in exporter.get_finished_spans()}
        assert spans["ragline.pipeline"].parent.span_id == spans["request"].context.span_id
        assert spans["ragline.component"].attributes["ragline.component"] == "add"
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# -- OTLP ----------------------------------------------------------------------------------------
@pytest.fixture()
def otlp_receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A real HTTP server on 127.0.0.1 that records OTLP/HTTP trace exports."""
    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            if self.path == "/v1/traces":
                bodies.append(self.rfile.read(length))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()


@pytest.mark.integration
def test_otlp_endpoint_in_the_environment_exports_spans(otlp_receiver):
    url, bodies = otlp_receiver
    script = textwrap.dedent(
        """
        from rag.core import Pipeline
        from tests.core.toys import Add

        pipeline = Pipeline("exported")
        pipeline.add_component("plus_one", Add(amount=1))
        pipeline.run(value=1)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        PYTHONPATH=str(ROOT), OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_SERVICE_NAME="ragline-test"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    exported = b"".join(bodies)  # the SDK flushes its batch at exit
    for text in (b"ragline.pipeline", b"ragline.component", b"plus_one", b"ragline-test"):
        assert text in exported
