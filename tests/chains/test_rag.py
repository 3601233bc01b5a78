"""chain.rag: prompts, context fitting, citations, tool loops, streaming and async."""

from __future__ import annotations

import asyncio
import json

import pytest

from rag.chains import Answer, Context, RagChain, parse_citations
from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
from rag.connectors.generators.llama_cpp import LlamaCppGenerator
from rag.connectors.generators.openai import OpenAIGenerator
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.core import ConfigError, GenerationError, InvalidInputError, Pipeline, PipelineFile, Secret

from .helpers import QA_COMPONENTS_YAML, ListRetriever, Script, reply, scripted_generator

FACTS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "Madrid is the capital of Spain.",
]


def chain_with(generator, texts=FACTS, **params):
    return RagChain(retriever=ListRetriever(texts=list(texts)), generator=generator, **params)


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Question: {question}", "prompt_template must contain {contexts}"),
        ("Contexts: {contexts}", "prompt_template must contain {question}"),
        ("{contexts} {question} {answer}", "unknown field(s) {answer}"),
        ("{contexts} {question", "not a valid template"),
    ],
)
def test_bad_prompt_templates_are_config_errors(template, message):
    script = Script(reply("x"))
    with pytest.raises(ConfigError) as err:
        chain_with(scripted_generator(script), prompt_template=template)
    assert message in str(err.value)


@pytest.mark.unit
def test_bad_template_in_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "qa.yaml"
    path.write_text(
        QA_COMPONENTS_YAML
        + (
            "  chain:\n"
            "    type: chain.rag\n"
            "    init_parameters:\n"
            "      retriever: '@retriever'\n"
            "      generator: '@generator'\n"
            "      prompt_template: 'Answer {question}'\n"
            "pipelines:\n"
            "  ask: {components: [chain]}\n"
        )
    )
    with pytest.raises(ConfigError) as err:
        PipelineFile.load(path)
    assert f"{path}:8" in str(err.value)
    assert "prompt_template must contain {contexts}" in str(err.value)


@pytest.mark.unit
def test_unknown_tool_name_in_configuration_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown tool 'calculater'. Did you mean 'calculator'"):
        chain_with(scripted_generator(Script(reply("x"))), tools=["calculater"])


@pytest.mark.unit
def test_chain_round_trips_through_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGLINE_TEST_KEY", "sk-test")
    embedder = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="cpu")
    store = FaissStore(path=str(tmp_path / "index"))
    retriever = DenseRetriever(embedder=embedder, store=store, k=3)
    for generator in (
        LlamaCppGenerator(model="smollm2-135m-instruct", context_size=1024, max_tokens=64),
        OpenAIGenerator(
            model="gpt-4o-mini",
            base_url="https://api.openai.com/v1",
            api_key=Secret.from_env("RAGLINE_TEST_KEY"),
        ),
    ):
        pipeline = Pipeline("ask")
        pipeline.add_component(
            "chain",
            RagChain(
                retriever=retriever,
                generator=generator,
                prompt_template="Q: {question}\n{contexts}",
                tools=["calculator"],
                retrieval_tool=True,
                max_steps=3,
            ),
        )
        text = pipeline.dump(tmp_path / "ask.yaml")
        assert "prompt_template: 'Q: {question}" in text or "Q: {question}" in text
        assert "sk-test" not in text
        assert Pipeline.load(tmp_path / "ask.yaml") == pipeline


@pytest.mark.unit
def test_callable_tools_serialize_as_import_paths():
    from .test_tools import weather

    chain = chain_with(scripted_generator(Script(reply("x"))), tools=[weather, "calculator"])
    assert chain.to_dict()["init_parameters"]["tools"] == [
        "tests.chains.test_tools:weather",
        "calculator",
    ]


@pytest.mark.unit
def test_examples_qa_yaml_round_trips(tmp_path):
    app = PipelineFile.load("examples/qa.yaml")
    assert set(app.pipelines) >= {"ingest", "search", "ask"}
    (chain,) = [c for c in app.pipelines["ask"].components.values()]
    assert isinstance(chain, RagChain)
    assert chain.generator.model == "smollm2-135m-instruct"
    assert chain.retriever is app.components["retriever"]
    app.dump(tmp_path / "qa.yaml")
    assert PipelineFile.load(tmp_path / "qa.yaml").to_dict() == app.to_dict()


# -- citations ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_citations_map_numbers_to_chunks_and_count_invalid_ones():
    contexts = [Context(index=i, id=f"c{i}", source=f"s{i}.md", text="t") for i in (1, 2, 3)]
    cited, invalid = parse_citations("A [2]. B [1, 3][2]. C [7] and [0]. Not one: [x].", contexts)
    assert [(c.index, c.id, c.source) for c in cited] == [
        (2, "c2", "s2.md"),
        (1, "c1", "s1.md"),
        (3, "c3", "s3.md"),
    ]
    assert invalid == 2
    assert parse_citations("no citations", contexts) == ([], 0)


# -- the chain with a scripted remote generator ----------------------------------------------
@pytest.mark.unit
def test_answer_carries_prompt_contexts_citations_and_timings():
    script = Script(reply("Paris [1]; not Berlin [2]; and [9]."))
    chain = chain_with(scripted_generator(script), k=2)
    answer = chain.ask("What is the capital of France?", filters={"lang": "en"})
    assert chain.retriever.calls == [
        {"query": "What is the capital of France?", "k": 2, "filters": {"lang": "en"}}
    ]
    assert [c.index for c in answer.contexts] == [1, 2]
    assert answer.prompt == (
        "Contexts:\n[1] Paris is the capital of France.\n\n"
        "[2] Berlin is the capital of Germany.\n\n"
        "Question: What is the capital of France?\n\n"
        "Answer in two or three sentences. After each sentence write the number of the context "
        "it comes from in square brackets, like [1]."
    )
    (body,) = script.bodies
    assert body["messages"] == answer.messages
    assert body["stop"] == ["\n\n[", "\nQuestion:", "\nContext:", "\nContexts:", "(source:"]
    assert answer.messages[-1]["content"] == answer.prompt
    assert [c.source for c in answer.citations] == ["doc1.md", "doc2.md"]
    assert answer.invalid_citations == 1
    assert set(answer.timings) >= {"retrieve", "prompt", "generate", "tools", "total"}
    assert answer.usage.total_tokens == 13
    data = json.loads(json.dumps(answer.to_dict()))
    assert set(data) >= {"answer", "citations", "contexts", "prompt", "timings", "usage"}
    assert data["citations"][0] == {"id": answer.contexts[0].id, "source": "doc1.md", "index": 1}
    assert data["contexts"][1]["score"] == 0.9


@pytest.mark.unit
@pytest.mark.parametrize("question", ["", "   \n\t"])
def test_a_blank_question_is_invalid_input_and_reaches_no_component(question):
    script = Script(reply("Paris [1]"))
    chain = chain_with(scripted_generator(script))
    with pytest.raises(InvalidInputError, match="question.*blank"):
        chain.ask(question)
    with pytest.raises(InvalidInputError, match="blank"):
        next(chain.stream(question))
    assert chain.retriever.calls == [] and script.bodies == []
    with pytest.raises(InvalidInputError, match="must be text, got int"):
        chain.ask(5)  # type: ignore[arg-type]


@pytest.mark.unit
def test_run_works_as_a_pipeline_component():
    pipeline = Pipeline("ask")
    pipeline.add_component("chain", chain_with(scripted_generator(Script(reply("Paris [1]")))))
    outputs = pipeline.run(question="Capital of France?", k=1)
    answer = outputs["chain"]["answer"]
    assert isinstance(answer, Answer) and answer.text == "Paris [1]"
    assert len(answer.contexts) == 1


@pytest.mark.unit
def test_a_k_of_0_is_refused_not_read_as_the_default():
    script = Script(reply("Paris [1]"))
    chain = chain_with(scripted_generator(script), k=1)
    with pytest.raises(InvalidInputError, match="k: must be a whole number of at least 1"):
        chain.ask("Capital of France?", k=0)
    assert script.bodies == []


@pytest.mark.unit
def test_tool_loop_runs_the_tool_and_returns_its_result_to_the_model():
    script = Script(reply(calls=[("calculator", {"expression": "6 * 7"})]), reply("It is 42 [1]."))
    chain = chain_with(scripted_generator(script), tools=["calculator"])
    answer = chain.ask("What is six times seven?")
    assert answer.text == "It is 42 [1]." and answer.steps == 2
    assert answer.tool_calls == [
        {
            "id": "call_0",
            "name": "calculator",
            "arguments": {"expression": "6 * 7"},
            "result": "42",
            "seconds": answer.tool_calls[0]["seconds"],
        }
    ]
    first, second = script.bodies
    assert first["tools"][0]["function"]["name"] == "calculator"
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_0",
        "name": "calculator",
        "content": "42",
    }
    assert second["messages"][-2]["tool_calls"][0]["function"]["arguments"] == (
        '{"expression": "6 * 7"}'
    )
    assert answer.usage.completion_tokens == 6


@pytest.mark.unit
@pytest.mark.parametrize(
    ("call", "error"),
    [
        (("calculator", {"expr": "1"}), "invalid arguments for tool 'calculator': unknown"),
        (("calculator", "{not json"), "invalid arguments for tool 'calculator': arguments are"),
        (("calculator", {"expression": "1 / 0"}), "tool 'calculator' failed: ZeroDivisionError"),
        (("delete_everything", {}), "unknown tool 'delete_everything'"),
    ],
)
def test_tool_errors_go_back_to_the_model_as_messages(call, error):
    script = Script(reply(calls=[call]), reply("Sorry."))
    answer = chain_with(scripted_generator(script), tools=["calculator"]).ask("Compute.")
    assert answer.text == "Sorry."
    assert answer.tool_calls[0]["error"].startswith(error)
    assert script.bodies[1]["messages"][-1]["content"].startswith("error: " + error)


@pytest.mark.unit
def test_loop_stops_at_max_steps_with_a_final_call_without_tools():
    script = Script(reply(calls=[("calculator", {"expression": "1 + 1"})]), reply("Done."))
    script.responses = [reply(calls=[("calculator", {"expression": "1 + 1"})])] * 2 + [
        reply("Done.")
    ]
    chain = chain_with(scripted_generator(script), tools=["calculator"], max_steps=3)
    answer = chain.ask("Loop forever.")
    assert len(script.bodies) == 3 and answer.steps == 3
    assert [b.get("tool_choice") for b in script.bodies] == [None, None, "none"]
    assert len(answer.tool_calls) == 2
    assert answer.finish_reason == "max_steps"
    assert answer.text == "Done."


@pytest.mark.unit
def test_retriever_as_a_tool_adds_citable_contexts():
    texts = ["HNSW builds a layered graph.", "BM25 ranks by term frequency."]
    script = Script(
        reply(calls=[("search_documents", {"query": "what is bm25"})]),
        reply("BM25 ranks by term frequency [2]."),
    )
    chain = chain_with(scripted_generator(script), texts, retrieval_tool=True, k=2)
    chain.retrieve_first = False
    answer = chain.ask("What is BM25?")
    assert [c.text for c in answer.contexts] == texts
    assert [c.source for c in answer.citations] == ["doc2.md"]
    assert script.bodies[1]["messages"][-1]["content"].startswith("[1] HNSW")
    assert answer.prompt.startswith("Contexts:\n\n\nQuestion: What is BM25?")


@pytest.mark.unit
def test_streaming_with_a_scripted_remote_generator():
    events = [{"choices": [{"delta": {"content": p}}]} for p in ("Paris ", "[1]", ".")]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    import httpx

    script = Script(httpx.Response(200, text=body))
    items = list(chain_with(scripted_generator(script)).stream("Capital of France?"))
    assert items[:-1] == ["Paris ", "[1]", "."]
    assert isinstance(items[-1], Answer) and items[-1].text == "Paris [1]."
    assert script.bodies[0]["stream"] is True


@pytest.mark.unit
def test_generator_errors_propagate_with_the_url():
    import httpx

    script = Script(httpx.Response(503, text="down"))
    chain = chain_with(scripted_generator(script, max_retries=1))
    with pytest.raises(
        GenerationError, match=r"http://llm.test/v1/chat/completions returned HTTP 503"
    ):
        chain.ask("Anything?")
    assert len(script.bodies) == 2


# -- the chain with the real local model -------------------------------------------------------
@pytest.mark.integration
def test_answers_with_the_local_model(local_generator):
    chain = chain_with(local_generator, k=2, answer_style="sentences")
    answer = chain.ask("What is the capital of France?")
    assert answer.text.strip()
    assert answer.usage.prompt_tokens == local_generator.count_message_tokens(answer.messages)
    assert answer.timings["generate"] > 0 and answer.steps == 1
    assert answer.finish_reason in ("stop", "length")


@pytest.fixture(scope="module")
def small_window_generator():
    """The packaged model with a 512-token window, so filling it is quick."""
    generator = LlamaCppGenerator(
        model="smollm2-135m-instruct", context_size=512, threads=2, max_tokens=8, seed=0
    )
    generator.warm_up()
    return generator


@pytest.mark.integration
def test_contexts_are_fitted_to_the_window_and_never_overflow(small_window_generator):
    generator = small_window_generator
    long_texts = [
        f"Passage {i}. " + "The quick brown fox jumps over the lazy dog. " * 12 for i in range(8)
    ]
    chain = chain_with(generator, long_texts, k=8, min_context_tokens=1, answer_style="sentences")
    question = "Which passage mentions the fox?"
    candidates = [
        Context.from_hit(i, hit)
        for i, hit in enumerate(chain.retriever.retrieve("q", k=8), start=1)
    ]
    kept, dropped = chain.fit_contexts(question, candidates)
    assert 0 < len(kept) < 8 and dropped == 8 - len(kept)
    assert [c.index for c in kept] == list(range(1, len(kept) + 1))  # highest-ranked kept
    assert all(not c.trimmed for c in kept[:-1])
    assert kept[-1].trimmed and candidates[len(kept) - 1].text.startswith(kept[-1].text)
    messages = chain.build_messages(question, kept)
    used = generator.count_message_tokens(messages)
    assert used + generator.max_tokens <= generator.context_window
    assert used + generator.max_tokens > generator.context_window - 40  # and it is filled
    answer = chain.ask(question)
    assert answer.dropped_contexts == dropped and len(answer.contexts) == len(kept)
    assert answer.usage.prompt_tokens == used


@pytest.mark.integration
def test_a_context_too_small_to_be_useful_is_dropped_not_trimmed(small_window_generator):
    chain = chain_with(
        small_window_generator,
        ["short fact. " * 30, "x " * 400],
        k=2,
        min_context_tokens=10_000,
    )
    candidates = [
        Context.from_hit(i, h) for i, h in enumerate(chain.retriever.retrieve("q", k=2), 1)
    ]
    kept, dropped = chain.fit_contexts("q?", candidates)
    assert [c.index for c in kept] == [1] and not kept[0].trimmed and dropped == 1


@pytest.mark.integration
def test_question_longer_than_the_window_is_an_error(local_generator):
    chain = chain_with(local_generator)
    with pytest.raises(GenerationError, match="the question does not fit") as err:
        chain.ask("why " * 2100)
    assert "context window is 2048" in str(err.value)


@pytest.mark.integration
def test_stream_yields_tokens_then_the_answer(local_generator):
    chain = chain_with(local_generator, k=1, answer_style="sentences")
    items = list(chain.stream("What is the capital of France?"))
    *pieces, answer = items
    assert isinstance(answer, Answer)
    assert len(pieces) > 1 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == answer.text == chain.ask("What is the capital of France?").text
    assert 0 < answer.timings["first_token"] <= answer.timings["total"]


@pytest.mark.integration
async def test_aask_and_astream_inside_a_running_loop(local_generator):
    chain = chain_with(local_generator, k=1)
    first, second = await asyncio.gather(
        chain.aask("What is the capital of France?"), chain.arun("What is the capital of France?")
    )
    assert first.text == second.text and first.text
    items = [item async for item in chain.astream("What is the capital of France?")]
    assert isinstance(items[-1], Answer)
    assert "".join(items[:-1]) == items[-1].text == first.text


@pytest.mark.integration
async def test_astream_reraises_errors_in_the_consumer(local_generator):
    chain = chain_with(local_generator)
    with pytest.raises(GenerationError, match="does not fit"):
        async for _ in chain.astream("why " * 2100):
            pass


@pytest.mark.integration
async def test_astream_can_be_abandoned_early(local_generator):
    chain = chain_with(local_generator, k=1)
    stream = chain.astream("What is the capital of France?")
    first = await stream.__anext__()
    assert isinstance(first, str)
    await stream.aclose()  # the worker stops and the model lock is released
    assert (await chain.aask("What is the capital of France?")).text


@pytest.mark.integration
@pytest.mark.slow
def test_local_model_tool_calls_are_valid_under_the_grammar(local_generator):
    chain = chain_with(
        local_generator, tools=["calculator"], max_steps=2, k=1, answer_style="sentences"
    )  # the default with a local model, style.evidence, offers no tools
    answer = chain.ask("Use the calculator to compute 12 * 7.")
    assert answer.steps in (1, 2)
    for call in answer.tool_calls:
        assert call["name"] == "calculator"  # the grammar allows no other name
        assert "invalid arguments" not in call.get("error", "")
    assert answer.text


@pytest.mark.unit
def test_retrieval_tool_reuses_numbers_of_passages_already_given():
    script = Script(
        reply(calls=[("search_documents", {"query": "capital of france"})]),
        reply("Paris [1]."),
    )
    chain = chain_with(scripted_generator(script), retrieval_tool=True, k=2)
    answer = chain.ask("Capital of France?")
    assert [c.index for c in answer.contexts] == [1, 2]  # no duplicates added
    assert script.bodies[1]["messages"][-1]["content"].startswith("[1] Paris")
    assert [c.source for c in answer.citations] == ["doc1.md"]
