"""retriever.multi_query and retriever.hyde: real model rewrites over a real FAISS index, RRF
checked against fusion.py, fallbacks when the generator fails, YAML round trip, bad input."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.retrievers.fusion import reciprocal_rank_fusion
from rag.connectors.retrievers.query_strategies import (
    HydeRetriever,
    MultiQueryRetriever,
    parse_queries,
)
from rag.connectors.stores.faiss import FaissStore
from rag.core import Chunk, ConfigError, Pipeline, PipelineFile
from tests.chains.helpers import Script, reply, scripted_generator

TEXTS = [
    "Paris is the capital of France and its largest city.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Berlin is the capital of Germany.",
    "The Brandenburg Gate is a monument in Berlin.",
    "Madrid is the capital of Spain.",
    "Photosynthesis turns light, water and carbon dioxide into sugar in plants.",
    "Chlorophyll is the green pigment that absorbs light in leaves.",
    "BM25 ranks documents by term frequency and inverse document frequency.",
]


@pytest.fixture(scope="module")
def dense(tmp_path_factory, embedder) -> DenseRetriever:
    store = FaissStore(path=str(tmp_path_factory.mktemp("strategies") / "index"))
    store.warm_up()
    chunks = [Chunk.create(text=t, source_id=f"doc{i}.md", position=0) for i, t in enumerate(TEXTS)]
    for chunk, vector in zip(chunks, embedder.embed_documents(TEXTS)):
        chunk.embedding = vector
    store.write(chunks, policy="upsert")
    return DenseRetriever(embedder=embedder, store=store, k=4)


def failing_generator() -> Any:
    """A generator whose endpoint answers 500: a real GenerationError after no retries."""
    script = Script(httpx.Response(500, json={"error": {"message": "model is down"}}))
    return scripted_generator(script, max_retries=0)


def expected_fusion(retriever: Any, texts: list[str], *, k: int, depth: int) -> list[tuple]:
    lists = [[h.id for h in retriever.retrieve(t, k=depth)] for t in texts]
    return [(doc_id, score) for doc_id, score in reciprocal_rank_fusion(lists)[:k]]


# -- parsing ------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("reply_text", "limit", "expected"),
    [
        (
            "1. capital of France\n2) French capital city\n3: Paris",
            3,
            ["capital of France", "French capital city", "Paris"],
        ),
        ("- a b\n* c d\n• e f", 3, ["a b", "c d", "e f"]),
        ('"quoted query"\n\n  \nQuoted Query', 3, ["quoted query"]),
        ("Where is Paris?\nparis location", 3, ["paris location"]),  # the original is dropped
        ("Q1: first one\nQ2: second one\nthird one", 2, ["first one", "second one"]),
    ],
)
def test_parse_queries(reply_text, limit, expected):
    assert parse_queries(reply_text, limit=limit, exclude=["Where is Paris?"]) == expected


# -- multi-query --------------------------------------------------------------------------------
@pytest.mark.integration
def test_multi_query_searches_the_model_rewrites_and_fuses_by_rrf(dense, local_generator):
    multi = MultiQueryRetriever(
        retriever=dense, generator=local_generator, num_queries=3, k=4, candidates=8
    )
    out = multi.run(query="Which city is the French capital?")
    queries = out["queries"]
    assert queries[0] == "Which city is the French capital?"
    assert 2 <= len(queries) <= 4  # the original and up to 3 distinct rewrites
    assert len({q.casefold() for q in queries}) == len(queries)
    expected = expected_fusion(dense, queries, k=4, depth=8)
    assert [(h.id, pytest.approx(h.score)) for h in out["hits"]] == expected
    assert out["hits"][0].chunk.text.startswith("Paris")


@pytest.mark.unit
def test_scripted_rewrites_are_searched_in_order():
    from tests.chains.helpers import ListRetriever

    script = Script(reply("1. capital of france\n2. paris city\n3. capital of france"))
    inner = ListRetriever(texts=["a", "b", "c"])
    multi = MultiQueryRetriever(
        retriever=inner, generator=scripted_generator(script), num_queries=3
    )
    out = multi.run(query="What is the capital of France?", k=2)
    assert out["queries"] == ["What is the capital of France?", "capital of france", "paris city"]
    assert [c["query"] for c in inner.calls] == out["queries"]
    assert "3 different search queries" in script.bodies[0]["messages"][-1]["content"]
    assert len(out["hits"]) == 2


@pytest.mark.unit
@pytest.mark.parametrize("strategy", [MultiQueryRetriever, HydeRetriever])
def test_a_failing_generator_falls_back_to_the_plain_query_with_a_warning(strategy, caplog):
    from tests.chains.helpers import ListRetriever

    inner = ListRetriever(texts=["a", "b", "c"])
    wrapped = strategy(retriever=inner, generator=failing_generator(), k=2)
    with caplog.at_level(logging.WARNING, logger="rag.retrievers"):
        out = wrapped.run(query="capital of France")
    assert out["queries"] == ["capital of France"]
    assert [h.id for h in out["hits"]] == [h.id for h in inner.retrieve("x", k=2)]
    assert [c["query"] for c in inner.calls] == ["capital of France", "x"]
    (record,) = [r for r in caplog.records if r.name == "rag.retrievers"]
    assert "generator failed" in record.getMessage()
    assert "model is down" in record.getMessage()
    assert "'capital of France'" in record.getMessage()


@pytest.mark.unit
def test_a_reply_without_usable_queries_falls_back_too(caplog):
    from tests.chains.helpers import ListRetriever

    script = Script(reply("capital of France\n\n"))  # only the original again
    multi = MultiQueryRetriever(
        retriever=ListRetriever(texts=["a"]), generator=scripted_generator(script)
    )
    with caplog.at_level(logging.WARNING, logger="rag.retrievers"):
        assert multi.run(query="capital of France")["queries"] == ["capital of France"]
    assert "no usable text" in caplog.text


# -- HyDE ---------------------------------------------------------------------------------------
@pytest.mark.integration
def test_hyde_searches_a_generated_passage_with_the_query(dense, local_generator):
    hyde = HydeRetriever(retriever=dense, generator=local_generator, k=3, max_tokens=48)
    out = hyde.run(query="How do plants make sugar from light?")
    query, passage = out["queries"]
    assert query == "How do plants make sugar from light?"
    assert passage and passage != query
    expected = expected_fusion(dense, out["queries"], k=3, depth=50)
    assert [(h.id, pytest.approx(h.score)) for h in out["hits"]] == expected
    assert any("Photosynthesis" in h.chunk.text for h in out["hits"])


@pytest.mark.unit
def test_hyde_without_the_original_searches_only_the_passage():
    from tests.chains.helpers import ListRetriever

    inner = ListRetriever(texts=["a", "b"])
    script = Script(reply("Plants use chlorophyll to turn light into sugar."))
    hyde = HydeRetriever(
        retriever=inner, generator=scripted_generator(script), include_original=False, k=2
    )
    out = hyde.run(query="How do plants make sugar?")
    assert out["queries"] == ["Plants use chlorophyll to turn light into sugar."]
    assert [h.score for h in out["hits"]] == [1.0, 0.9]  # one list: the retriever's own scores
    assert "How do plants make sugar?" in script.bodies[0]["messages"][-1]["content"]


# -- configuration ------------------------------------------------------------------------------
@pytest.mark.unit
def test_yaml_round_trip(tmp_path):
    text = (
        "components:\n"
        "  embedder: {type: embedder.sentence_transformers, init_parameters: {model: all-MiniLM-L6-v2}}\n"
        f"  store: {{type: store.faiss, init_parameters: {{path: '{tmp_path / 'index'}'}}}}\n"
        "  dense: {type: retriever.dense, init_parameters: {embedder: '@embedder', store: '@store'}}\n"
        "  generator: {type: generator.llama_cpp, init_parameters: {model: smollm2-135m-instruct}}\n"
        "  multi: {type: retriever.multi_query, init_parameters: "
        "{retriever: '@dense', generator: '@generator', num_queries: 2}}\n"
        "  hyde: {type: retriever.hyde, init_parameters: "
        "{retriever: '@dense', generator: '@generator', include_original: false}}\n"
        "pipelines:\n  multi: {components: [multi]}\n  hyde: {components: [hyde]}\n"
    )
    app = PipelineFile.load(tmp_path / "p.yaml", text=text)
    assert isinstance(app.components["multi"], MultiQueryRetriever)
    assert app.components["multi"].retriever is app.components["dense"]
    again = PipelineFile.load(tmp_path / "q.yaml", text=app.dump())
    assert again.to_dict() == app.to_dict()
    assert again.components["hyde"].include_original is False


@pytest.mark.unit
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_queries": 0}, "num_queries must be at least 1"),
        ({"k": 0}, "k must be at least 1"),
        ({"prompt_template": "Rewrite this"}, "must contain {query}"),
        ({"prompt_template": "{query} {style}"}, "may use only {query}, {n}"),
        ({"retriever": "not a retriever"}, "retriever must have retrieve"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    from tests.chains.helpers import ListRetriever

    base: dict[str, Any] = {
        "retriever": ListRetriever(texts=["a"]),
        "generator": scripted_generator(Script(reply("x"))),
    }
    with pytest.raises(ConfigError) as err:
        MultiQueryRetriever(**{**base, **params})
    assert message in str(err.value)


@pytest.mark.unit
def test_the_queries_searched_are_recorded_on_the_current_span():
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tests.chains.helpers import ListRetriever

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pipeline = Pipeline(tracer_provider=provider)
    script = Script(reply("paris city"))
    pipeline.add_component(
        "multi",
        MultiQueryRetriever(
            retriever=ListRetriever(texts=["a"]), generator=scripted_generator(script)
        ),
    )
    pipeline.run(query="capital of France")
    (component,) = [s for s in exporter.get_finished_spans() if s.name == "ragline.component"]
    assert list(component.attributes["ragline.multi_query.queries"]) == [
        "capital of France",
        "paris city",
    ]
    assert component.attributes["ragline.multi_query.fallback"] is False
