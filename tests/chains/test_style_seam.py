"""The answer-style seam of chain.rag: nested style components in YAML, the deprecated flat keys,
defaults per generator, declared generator abilities, with_style, and the chain's own size."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from rag.chains import (
    ConciseStyle,
    EvidenceStyle,
    ExtractiveStyle,
    RagChain,
    SentencesStyle,
)
from rag.chains.styles import STYLES, AnswerStyle
from rag.core import ConfigError, Pipeline, PipelineFile
from rag.core.abilities import (
    CountsMessageTokens,
    CountsTokens,
    ScoresSpans,
    TakesAnswerPrefix,
    has,
)

from .helpers import QA_COMPONENTS_YAML, ListRetriever, Script, reply, scripted_generator

ROOT = Path(__file__).resolve().parents[2]
FACTS = ["Paris is the capital of France.", "Berlin is the capital of Germany."]


def remote(*texts: str):
    return scripted_generator(Script(*(reply(t) for t in texts or ("x",))))


def chain_file(tmp_path: Path, answer_style: str) -> Path:
    path = tmp_path / "qa.yaml"
    path.write_text(
        QA_COMPONENTS_YAML
        + "  chain:\n"
        + "    type: chain.rag\n"
        + "    init_parameters:\n"
        + "      retriever: '@retriever'\n"
        + "      generator: '@generator'\n"
        + f"      answer_style: {answer_style}\n"
        + "pipelines:\n  ask:\n    components: [chain]\n"
    )
    return path


@pytest.mark.unit
@pytest.mark.parametrize(
    "style",
    [
        EvidenceStyle(max_sentences=2, min_score=0.2, factoid_span=False, rerank_top=3),
        ExtractiveStyle(span_candidates=4, span_search="quote", min_span_logprob=-3.0),
        ConciseStyle(focus_sentences=2, system_prompt=True, stop=["\n"]),
        SentencesStyle(instruction="Two sentences, cited."),
    ],
    ids=lambda s: s.name,
)
def test_every_style_round_trips_through_yaml(tmp_path, style):
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator
    from rag.connectors.retrievers.dense import DenseRetriever
    from rag.connectors.stores.faiss import FaissStore

    embedder = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="cpu")
    retriever = DenseRetriever(embedder=embedder, store=FaissStore(path=str(tmp_path / "i")))
    pipeline = Pipeline("ask")
    pipeline.add_component(
        "chain",
        RagChain(
            retriever=retriever,
            generator=LlamaCppGenerator(model="smollm2-135m-instruct"),
            answer_style=style,
        ),
    )
    pipeline.dump(tmp_path / "ask.yaml")
    text = (tmp_path / "ask.yaml").read_text()
    assert f"type: style.{style.name}" in text
    again = Pipeline.load(tmp_path / "ask.yaml")
    assert again == pipeline
    assert again.get_component("chain").style == style


@pytest.mark.unit
def test_evidence_shares_the_embedder_of_the_pipeline_file_by_name(tmp_path):
    path = chain_file(tmp_path, "{type: style.evidence, init_parameters: {embedder: '@embedder'}}")
    app = PipelineFile.load(path)
    chain = app.pipelines["ask"].get_component("chain")
    assert chain.style.embedder is chain.retriever.embedder
    app.dump(tmp_path / "again.yaml")
    assert "embedder: '@embedder'" in (tmp_path / "again.yaml").read_text()
    assert PipelineFile.load(tmp_path / "again.yaml").pipelines["ask"] == app.pipelines["ask"]


@pytest.mark.unit
def test_evidence_named_by_a_string_weighs_sentences_with_the_retrievers_embedder(tmp_path):
    # "answer_style: evidence", `rag ask --style evidence` and the API's answer_style used to
    # build EvidenceStyle() without an embedder: lexical features only, silently
    app = PipelineFile.load(chain_file(tmp_path, "evidence"))
    chain = app.pipelines["ask"].get_component("chain")
    assert chain.style.embedder is chain.retriever.embedder
    app.dump(tmp_path / "again.yaml")
    assert "answer_style: evidence" in (tmp_path / "again.yaml").read_text()
    assert PipelineFile.load(tmp_path / "again.yaml").pipelines["ask"] == app.pipelines["ask"]
    concise = PipelineFile.load(chain_file(tmp_path, "concise")).pipelines["ask"]
    switched = concise.get_component("chain").with_style("evidence")
    assert switched.style.embedder is switched.retriever.embedder
    # a style given as a component is taken as given: no embedder means lexical features
    given = RagChain(
        retriever=chain.retriever, generator=chain.generator, answer_style=EvidenceStyle()
    )
    assert given.style.embedder is None
    # a retriever without an embedding model (BM25, a list) leaves it lexical
    listed = RagChain(retriever=ListRetriever(texts=FACTS), generator=remote())
    assert listed.with_style("evidence").style.embedder is None


@pytest.mark.unit
@pytest.mark.parametrize("name", ["concise", "style.concise"])
def test_a_bare_style_name_gives_its_defaults(tmp_path, name):
    chain = PipelineFile.load(chain_file(tmp_path, name)).pipelines["ask"].get_component("chain")
    assert chain.answer_style == "concise" and chain.style == ConciseStyle()


@pytest.mark.unit
def test_an_unknown_style_type_in_yaml_lists_the_styles(tmp_path):
    with pytest.raises(ConfigError) as err:
        PipelineFile.load(chain_file(tmp_path, "{type: style.bullets}"))
    message = str(err.value)
    assert "qa.yaml" in message and "style.bullets" in message
    assert all(f"style.{name}" in message for name in STYLES)


@pytest.mark.unit
def test_a_style_given_in_python_as_the_yaml_mapping_says_how_to_pass_it():
    with pytest.raises(ConfigError, match=r"got dict; in Python pass the component, e\.g\. "):
        RagChain(
            retriever=ListRetriever(texts=FACTS),
            generator=remote(),
            answer_style={"type": "style.evidence", "init_parameters": {"max_sentences": 2}},
        )
    with pytest.raises(ConfigError, match=r"component, got int$"):
        RagChain(retriever=ListRetriever(texts=FACTS), generator=remote(), answer_style=5)


@pytest.mark.unit
def test_deprecated_flat_keys_warn_naming_the_new_field_and_move_into_the_style():
    with pytest.warns(FutureWarning, match=r"answer_style: \{type: style.extractive") as caught:
        chain = RagChain(
            retriever=ListRetriever(texts=FACTS),
            generator=remote(),
            answer_style="extractive",
            span_candidates=3,
            instructions={"extractive": "Copy.", "quote": "Quote it."},
        )
    assert "span_candidates" in str(caught[0].message)
    assert chain.style == ExtractiveStyle(
        span_candidates=3, instruction="Copy.", quote_instruction="Quote it."
    )
    nested = chain.to_dict()["init_parameters"]
    assert "span_candidates" not in nested and "instructions" not in nested
    assert nested["answer_style"]["init_parameters"]["span_candidates"] == 3
    with pytest.raises(ConfigError, match="span_serach.*Did you mean 'span_search'"):
        RagChain(retriever=ListRetriever(texts=FACTS), generator=remote(), span_serach="ranked")
    with pytest.raises(ConfigError, match="cannot be combined with a nested answer_style"):
        RagChain(
            retriever=ListRetriever(texts=FACTS),
            generator=remote(),
            answer_style=ExtractiveStyle(),
            span_candidates=3,
        )


@pytest.mark.unit
def test_the_default_style_is_evidence_for_a_local_model_and_sentences_for_a_remote_one():
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator

    local = LlamaCppGenerator(model="smollm2-135m-instruct")  # not loaded
    assert RagChain(retriever=ListRetriever(texts=FACTS), generator=local).answer_style == (
        "evidence"
    )
    chain = RagChain(retriever=ListRetriever(texts=FACTS), generator=remote())
    assert chain.answer_style == "sentences"
    assert chain.to_dict()["init_parameters"]["answer_style"] is None  # resolved again on load


@pytest.mark.unit
def test_generators_declare_their_abilities_through_protocols():
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator

    local = LlamaCppGenerator(model="smollm2-135m-instruct")
    for ability in (CountsTokens, CountsMessageTokens, TakesAnswerPrefix, ScoresSpans):
        assert has(local, ability), ability
    openai = remote()
    assert has(openai, CountsTokens) and has(openai, CountsMessageTokens)
    assert not has(openai, TakesAnswerPrefix) and not has(openai, ScoresSpans)
    for style in (EvidenceStyle(), ExtractiveStyle(), ConciseStyle(), SentencesStyle()):
        assert isinstance(style, AnswerStyle)


@pytest.mark.unit
def test_chains_check_abilities_through_protocols_and_the_chain_stays_small():
    sources = "\n".join(p.read_text() for p in (ROOT / "rag" / "chains").rglob("*.py"))
    assert not re.search(r"hasattr\((self\.)?generator", sources)
    assert not re.search(
        r"getattr\((self\.)?generator, \"(score_spans|generate_extractive|takes_answer_prefix)",
        sources,
    )
    assert len((ROOT / "rag" / "chains" / "rag.py").read_text().splitlines()) < 450


@pytest.mark.unit
def test_with_style_is_rebuilt_from_the_init_parameters():
    chain = RagChain(
        retriever=ListRetriever(texts=FACTS),
        generator=remote(),
        k=2,
        system_prompt="Be exact.",
        tools=["calculator"],
        max_steps=3,
        mcp_servers=[{"command": ["true"], "prefix": "docs_"}],
    )
    copy = chain.with_style("concise")
    assert copy.answer_style == "concise" and copy.style == ConciseStyle()
    assert (copy.retriever, copy.generator) == (chain.retriever, chain.generator)
    assert (copy.k, copy.prompt.system_prompt, copy.max_steps) == (2, "Be exact.", 3)
    assert copy.tools == ["calculator"]
    assert [s.to_dict() for s in copy.mcp_servers] == [s.to_dict() for s in chain.mcp_servers]
    assert copy.with_style(ExtractiveStyle(span_candidates=2)).style.span_candidates == 2
    with pytest.raises(ConfigError, match="unknown answer_style 'bullets'"):
        chain.with_style("bullets")


MCP_SERVER = '''
from mcp.server.mcpserver import MCPServer

app = MCPServer("capitals")


@app.tool()
def capital_of(country: str) -> str:
    """The capital of a country."""
    return "Paris" if country.lower() == "france" else "unknown"


app.run()
'''


@pytest.mark.integration
def test_with_style_keeps_the_mcp_tools(tmp_path):
    server = tmp_path / "capitals.py"
    server.write_text(MCP_SERVER)
    script = Script(
        reply(calls=[("geo_capital_of", {"country": "France"})]),
        reply("Paris [1]"),
    )
    chain = RagChain(
        retriever=ListRetriever(texts=FACTS),
        generator=scripted_generator(script),
        answer_style="sentences",
        mcp_servers=[{"command": [sys.executable, str(server)], "prefix": "geo_"}],
    )
    chain.warm_up()  # connects the MCP server
    copy = chain.with_style("concise")
    answer = copy.ask("What is the capital of France?")
    offered = [t["function"]["name"] for t in script.bodies[0]["tools"]]
    assert offered == ["geo_capital_of"]
    (call,) = answer.tool_calls
    assert call["name"] == "geo_capital_of" and call["result"] == "Paris"
    assert answer.answer_style == "concise"
