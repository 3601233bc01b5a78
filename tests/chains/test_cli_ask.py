"""``rag ask`` in-process, with examples/qa.yaml, the real embedder, FAISS and the local model."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.chains import EvidenceStyle, RagChain
from rag.chains.cli_ask import ask_command
from rag.cli import app, read_questions
from rag.core import ConfigError, Pipeline, PipelineFile

from .helpers import ListRetriever, Script, reply, scripted_generator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def qa_config(tmp_path_factory):
    """examples/qa.yaml with its index in a temporary folder, short answers, and two sources
    ingested through ``rag ingest``."""
    root = tmp_path_factory.mktemp("ask")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in ("hnsw.html", "bm25.md"):
        shutil.copy(EXAMPLES / "corpus" / name, corpus / name)
    config = root / "qa.yaml"
    config.write_text(
        (EXAMPLES / "qa.yaml")
        .read_text()
        .replace("${RAG_INDEX_DIR:-.rag/example-index}", str(root / "index"))
        .replace("device: auto", "device: cpu")
        .replace("max_tokens: 256", "max_tokens: 8")
        .replace("      k: 4\n", "      k: 2\n")
    )
    result = invoke("ingest", corpus, "--config", config, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chunks_written"] > 0
    return config


@pytest.mark.integration
def test_ask_streams_the_answer_then_lists_citations(qa_config):
    result = invoke("ask", "What is BM25?", "--config", qa_config, "--quiet")
    assert result.exit_code == 0, result.output
    answer, _, citations = result.stdout.partition("\nCitations:")
    assert answer.strip()
    cited = citations.lstrip("\n").startswith("  [")
    assert cited or "Contexts given to the model:\n  [1] " in citations


@pytest.mark.integration
def test_ask_with_nothing_retrieved_says_why_on_stderr(qa_config, tmp_path):
    unmatched = invoke(
        "ask", "What is BM25?", "--config", qa_config, "--filter", '{"source": "x.md"}', "--quiet"
    )
    assert unmatched.exit_code == 0 and unmatched.stdout.startswith("I don't know.")
    assert 'nothing retrieved: no chunk matches the filter {"source": "x.md"}' in unmatched.stderr
    empty_config = tmp_path / "empty.yaml"  # an index nothing was ingested into
    index = qa_config.parent / "index"
    empty_config.write_text(qa_config.read_text().replace(str(index), str(tmp_path / "index")))
    empty = invoke("ask", "What is BM25?", "--config", empty_config, "--quiet")
    assert empty.exit_code == 0 and empty.stdout.startswith("I don't know.")
    assert "holds no chunks; ingest first: rag ingest FILES --config" in empty.stderr
    as_json = invoke("ask", "What is BM25?", "--config", empty_config, "--json", "--quiet")
    assert json.loads(as_json.stdout)["contexts"] == [] and "ingest first" in as_json.stderr
    questions = tmp_path / "questions.txt"
    questions.write_text("What is BM25?\nWhat is HNSW?\n")
    batch = invoke("ask", "--questions", questions, "--config", empty_config, "--quiet")
    assert batch.exit_code == 0 and len(batch.stdout.splitlines()) == 2
    assert "note: 2 of 2 question(s): nothing retrieved: store" in batch.stderr


@pytest.mark.integration
def test_ask_json_prints_the_design_shape(qa_config):
    result = invoke("ask", "What is BM25?", "--config", qa_config, "--json", "--k", "2", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"answer", "citations", "contexts", "prompt", "timings"}
    assert len(data["contexts"]) == 2
    assert data["contexts"][0]["source"].endswith((".md", ".html"))
    # style.evidence (examples/qa.yaml): a sentence copied from a context, nothing sent to a model
    assert data["answer_style"] == "evidence" and data["grounded"] is True
    assert data["prompt"] == "" and data["spans"][0]["index"] == data["citations"][0]["index"]
    assert data["timings"]["total"] > 0


@pytest.mark.integration
def test_ask_questions_file_prints_one_json_answer_per_line(qa_config, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\ufeff"  # saved with a byte order mark, as Windows editors do
        + json.dumps({"_id": "q1", "text": "What is BM25?"})
        + "\n"
        + json.dumps({"_id": "q2", "question": "why " * 2100})
        + "\n"
    )
    source = str(next(p for p in (qa_config.parent / "corpus").iterdir() if p.suffix == ".md"))
    result = invoke(
        "ask",
        "--questions",
        questions,
        "--config",
        qa_config,
        "--k",
        "1",
        "--filter",
        json.dumps({"source": source}),
        "-q",
    )
    assert result.exit_code == 1  # one question failed; the other was answered
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["question_id"] == "q1" and first["answer"]
    assert [c["source"] for c in first["contexts"]] == [source]
    assert second["question_id"] == "q2" and "does not fit" in second["error"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either a QUESTION or --questions FILE"),
        (("What?", "--questions", "q.jsonl"), "give either a QUESTION or --questions FILE"),
        (("What?", "--filter", "{oops"), "--filter is not valid JSON"),
        (("What?", "--filter", '{"year": {"$gtx": 1}}'), "$gtx"),
        (("What?", "--style", "short"), "Known: evidence, extractive, concise, sentences"),
        ((" \t",), "question: the question is blank"),
    ],
)
def test_bad_usage_exits_2(qa_config, args, message):
    result = invoke("ask", *args, "--config", qa_config)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("q.txt", "What is BM25?\n\nWho led the Cranfield experiments?\n"),
        ("q.csv", "id,question\n1,What is BM25?\n3,Who led the Cranfield experiments?\n"),
        ("q.tsv", "question\tid\nWhat is BM25?\t1\nWho led the Cranfield experiments?\t3\n"),
        (
            "q.jsonl",
            '{"question": "What is BM25?"}\n\n{"question": "Who led the Cranfield experiments?"}\n',
        ),
    ],
)
def test_a_questions_file_is_jsonl_csv_tsv_or_one_question_per_line(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert read_questions(path, text_fields=("text", "question")) == [
        {"_id": "1", "text": "What is BM25?"},
        {"_id": "3", "text": "Who led the Cranfield experiments?"},
    ]


FORMATS = 'JSON Lines ({"_id": ..., "question": ...} per line), CSV or TSV with a header'


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "content", "message", "names_formats"),
    [
        (
            "q.jsonl",
            '{"question": "Why?"}\n{"q": "x"}\n',
            "q.jsonl:2: no text or question field (fields: q)",
            True,
        ),
        ("q.jsonl", "\n\n", "q.jsonl: no questions in the file", True),
        ("q.jsonl", "What is BM25?\n", "q.jsonl:1: invalid JSON", True),
        ("q.jsonl", '{"question": 5}\n', "q.jsonl:1: 'question' must be text, got 5", False),
        ("q.jsonl", '{"question": ' + "[" * 3000 + "]" * 3000 + "}\n", "nested 3001 levels", True),
        ("q.csv", "id,question\n1,caf\xe9?\n", "q.csv:2: not UTF-8 text", True),
    ],
)
def test_a_bad_questions_file_exits_2_naming_the_line(
    tmp_path, name, content, message, names_formats
):
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1"))
    result = invoke("ask", "--questions", path, "--config", EXAMPLES / "qa.yaml")
    assert result.exit_code == 2
    assert message in result.stderr
    assert (FORMATS in result.stderr) is names_formats


@pytest.mark.integration
def test_a_file_without_a_chain_exits_2_naming_it():
    config = EXAMPLES / "ingest.yaml"
    result = invoke("ask", "What?", "--config", config)
    assert result.exit_code == 2
    assert str(config) in result.stderr and "chain.rag" in result.stderr


@pytest.mark.integration
def test_a_bad_prompt_template_exits_2_with_the_line(qa_config, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(qa_config.read_text().replace("Question: {question}", "Question: {query}", 1))
    result = invoke("ask", "What?", "--config", broken)
    assert result.exit_code == 2
    assert f"{broken}:" in result.stderr
    assert "prompt_template must contain {question}" in result.stderr


def scripted_app(*responses, **chain_params):
    chain = RagChain(
        retriever=ListRetriever(texts=["Paris is the capital of France."]),
        generator=scripted_generator(Script(*responses)),
        **chain_params,
    )
    ask = Pipeline("ask")
    ask.add_component("chain", chain)
    return PipelineFile(pipelines={"ask": ask})


@pytest.mark.unit
def test_no_stream_prints_the_answer_then_citations():
    out = io.StringIO()
    code = ask_command(
        scripted_app(reply("Paris [1] [5].")),
        config="qa.yaml",
        question="Capital?",
        stream=False,
        out=out,
    )
    lines = out.getvalue().splitlines()
    assert code == 0
    assert lines[0] == "Paris [1] [5]."
    assert lines[2] == "Citations:" and lines[3].startswith("  [1] doc1.md  (chunk ")
    assert len(lines) == 4  # the invalid [5] is not listed


@pytest.mark.unit
def test_an_answer_without_citations_lists_the_contexts_it_was_given():
    out = io.StringIO()
    code = ask_command(
        scripted_app(reply("Paris.")), config="qa.yaml", question="Capital?", stream=False, out=out
    )
    lines = out.getvalue().splitlines()
    assert code == 0
    assert lines[2:] == [
        "Citations: none (the model cited no context)",
        "Contexts given to the model:",
        "  [1] doc1.md  (score 1.000)",
    ]


@pytest.mark.unit
def test_an_evidence_answer_that_abstains_says_no_context_answers_and_no_model_was_asked():
    out = io.StringIO()
    app = scripted_app(answer_style=EvidenceStyle(min_score=0.99))
    code = ask_command(app, config="qa.yaml", question="Capital?", stream=False, out=out)
    assert code == 0
    assert out.getvalue().splitlines() == [
        "I don't know.",
        "",
        "Citations: none (no context answers it)",
        "Contexts read:",
        "  [1] doc1.md  (score 1.000)",
    ]


@pytest.mark.unit
def test_batch_answers_carry_question_ids():
    out = io.StringIO()
    rows = [{"_id": "a", "text": "Capital?"}, {"_id": "b", "text": "Again?"}]
    code = ask_command(
        scripted_app(reply("Paris [1].")), config="qa.yaml", rows=rows, quiet=True, out=out
    )
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 0
    assert [a["question_id"] for a in answers] == ["a", "b"]
    assert answers[1]["question"] == "Again?" and answers[1]["citations"][0]["source"] == "doc1.md"


@pytest.mark.unit
def test_the_chain_is_found_without_an_ask_pipeline_when_there_is_only_one():
    app_file = scripted_app(reply("Paris."))
    app_file.pipelines = {"qa": app_file.pipelines["ask"]}
    out = io.StringIO()
    assert ask_command(app_file, config="qa.yaml", question="Q?", json_output=True, out=out) == 0
    assert json.loads(out.getvalue())["answer"] == "Paris."
    with pytest.raises(ConfigError, match="pipeline 'qa' has no component of type chain.rag"):
        retriever_only = Pipeline("qa")
        retriever_only.add_component("retriever", ListRetriever(texts=["x"]))
        ask_command(
            PipelineFile(pipelines={"qa": retriever_only}),
            config="qa.yaml",
            question="Q?",
            pipeline="qa",
        )


@pytest.mark.unit
def test_style_switches_the_chain_and_a_grounded_answer_says_where_it_was_copied_from():
    out = io.StringIO()
    app_file = scripted_app(reply('[1] "the capital of France"'))
    code = ask_command(
        app_file, config="qa.yaml", question="Paris?", stream=False, out=out, style="extractive"
    )
    lines = out.getvalue().splitlines()
    assert code == 0
    assert lines[0] == "the capital of France"
    assert lines[2] == "Grounded: copied verbatim from context [1], characters 9-30"
    assert lines[3:5] == ["", "Citations:"] and lines[5].startswith("  [1] doc1.md  (chunk ")
    assert app_file.pipelines["ask"].get_component("chain").answer_style == "sentences"
    with pytest.raises(ConfigError, match="Known: evidence, extractive, concise, sentences"):
        ask_command(app_file, config="qa.yaml", question="Paris?", style="short", out=out)
