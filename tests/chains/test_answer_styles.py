"""Answer styles of chain.rag (style.extractive, style.concise, style.sentences): configuration,
the quoted-span fallback (verified against the contexts), ranked extractive answers with the
bundled model, and no format echo. style.evidence is in test_evidence.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.chains import ANSWER_STYLES, Answer, ConciseStyle, ExtractiveStyle, RagChain, span_ranking
from rag.chains.answer import Context
from rag.chains.extractive import NO_ANSWER, find_quote, parse_quote
from rag.chains.rag import QUOTE_INSTRUCTION
from rag.core import ConfigError, Pipeline
from rag.core.text import answer_type, sentences

from .helpers import QA_COMPONENTS_YAML, ListRetriever, Script, reply, scripted_generator

FACTS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany. It has 3.7 million inhabitants.",
    "Madrid is the capital of Spain.",
]
CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"


def chain_with(generator, texts=FACTS, **params):
    return RagChain(retriever=ListRetriever(texts=list(texts)), generator=generator, **params)


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.unit
def test_unknown_answer_style_is_a_config_error_naming_the_allowed_values():
    with pytest.raises(ConfigError) as err:
        chain_with(scripted_generator(Script(reply("x"))), answer_style="bullet")
    message = str(err.value)
    assert "'bullet'" in message
    assert all(style in message for style in ANSWER_STYLES)


@pytest.mark.unit
def test_unknown_style_in_instructions_and_bad_span_length_are_config_errors():
    generator = scripted_generator(Script(reply("x")))
    with pytest.raises(ConfigError, match="unknown answer style"):
        chain_with(generator, instructions={"terse": "Be terse."})
    with pytest.raises(ConfigError, match="span_candidates"):
        chain_with(generator, answer_style=ExtractiveStyle(span_candidates=0))


@pytest.mark.unit
def test_unknown_answer_style_in_yaml_names_the_file(tmp_path):
    from rag.core import PipelineFile

    path = tmp_path / "qa.yaml"
    path.write_text(
        QA_COMPONENTS_YAML
        + (
            "  chain:\n"
            "    type: chain.rag\n"
            "    init_parameters: {retriever: '@retriever', generator: '@generator', answer_style: short}\n"
        )
    )
    with pytest.raises(ConfigError) as err:
        PipelineFile.load(path)
    assert "qa.yaml" in str(err.value) and "evidence, extractive, concise, sentences" in str(
        err.value
    )


@pytest.mark.unit
def test_styles_round_trip_and_change_the_instruction_and_stops(tmp_path):
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator
    from rag.connectors.retrievers.dense import DenseRetriever
    from rag.connectors.stores.faiss import FaissStore

    embedder = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="cpu")
    retriever = DenseRetriever(embedder=embedder, store=FaissStore(path=str(tmp_path / "i")))
    generator = LlamaCppGenerator(model="smollm2-135m-instruct", context_size=1024)
    pipeline = Pipeline("ask")
    pipeline.add_component(
        "chain",
        RagChain(
            retriever=retriever,
            generator=generator,
            answer_style=ExtractiveStyle(
                instruction="Copy the answer.", min_span_logprob=-4.5, span_candidates=8
            ),
        ),
    )
    pipeline.dump(tmp_path / "ask.yaml")
    again = Pipeline.load(tmp_path / "ask.yaml")
    assert again == pipeline
    loaded = again.get_component("chain")
    assert (loaded.answer_style, loaded.style.min_span_logprob, loaded.style.span_candidates) == (
        "extractive",
        -4.5,
        8,
    )
    assert loaded.instruction == "Copy the answer."

    script = Script(reply("Paris [1]"))
    chain = chain_with(scripted_generator(script), answer_style="concise", k=1)
    answer = chain.ask("What is the capital of France?")
    assert answer.prompt.endswith(
        "Answer in a few words, then write the number of the context "
        "the answer comes from in square brackets, like: Paris [1]"
    )
    assert script.bodies[0]["stop"][0] == "\n"
    assert answer.text == "Paris [1]" and answer.answer_style == "concise"
    assert not answer.grounded  # free text is never called grounded
    sentences = chain.with_style("sentences")
    assert "two or three sentences" in sentences.build_messages("q", [])[-1]["content"]
    assert sentences.retriever is chain.retriever and sentences.generator is chain.generator


# -- focused concise answers --------------------------------------------------------------------
@pytest.mark.unit
def test_focused_concise_reads_the_best_sentence_and_cites_its_context():
    script = Script(reply('The capital of Germany is "Berlin". [1]'))
    chain = chain_with(scripted_generator(script), answer_style=ConciseStyle(focus_sentences=1))
    answer = chain.ask("What is the capital of Germany?")
    sent = script.bodies[0]["messages"]
    assert [m["role"] for m in sent] == ["user"]  # no system prompt
    assert "[2] Berlin is the capital of Germany." in sent[0]["content"]
    assert "Paris" not in sent[0]["content"] and "3.7 million" not in sent[0]["content"]
    assert answer.prompt == sent[0]["content"] and answer.prompt.endswith("Answer in a few words.")
    assert "answer_prefix" not in script.bodies[0]  # an OpenAI model takes no prefix
    assert answer.text == "Berlin [2]"  # restated question trimmed, cited to the sentence's context
    assert [(c.index, c.source) for c in answer.citations] == [(2, "doc2.md")]
    assert not answer.grounded and answer.invalid_citations == 0
    *pieces, streamed = list(chain.stream("What is the capital of Germany?"))
    assert pieces == ["Berlin [2]"] and streamed.text == "Berlin [2]"


@pytest.mark.unit
def test_focused_concise_abstains_without_asking_when_no_sentence_shares_a_word():
    script = Script(reply("Paris [1]"))
    chain = chain_with(scripted_generator(script), answer_style=ConciseStyle(focus_sentences=1))
    answer = chain.ask("Who painted Guernica?")
    assert script.bodies == []  # the model was not asked
    assert answer.text == NO_ANSWER and answer.citations == []
    assert answer.finish_reason == "abstain"


@pytest.mark.unit
@pytest.mark.parametrize("text", ["[2]", ' "" ', "."])
def test_an_empty_focused_reply_is_i_dont_know(text):
    chain = chain_with(
        scripted_generator(Script(reply(text))), answer_style=ConciseStyle(focus_sentences=1)
    )
    answer = chain.ask("What is the capital of Germany?")
    assert answer.text == NO_ANSWER and answer.citations == []


@pytest.mark.unit
def test_focus_sentences_defaults_to_the_generator_and_is_validated():
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator

    local_generator = LlamaCppGenerator(model="smollm2-135m-instruct")  # not loaded
    remote = scripted_generator(Script(reply("x")))
    assert ConciseStyle().focused(remote) == 0
    assert ConciseStyle().focused(local_generator) == 1
    assert ConciseStyle(focus_sentences=0).focused(local_generator) == 0
    with pytest.raises(ConfigError, match="focus_sentences"):
        ConciseStyle(focus_sentences=-1)


@pytest.mark.integration
def test_concise_answers_from_the_bundled_model_are_short_and_cited(local_generator):
    chain = chain_with(local_generator, answer_style="concise", k=3)
    answer = chain.ask("What is the capital of Germany?")
    assert "Berlin" in answer.text and answer.text.endswith("[2]"), answer.text
    assert len(answer.text) < 40 and [c.index for c in answer.citations] == [2]
    assert answer.prompt.startswith("Contexts:\n[2] Berlin is the capital of Germany.")


@pytest.mark.unit
@pytest.mark.parametrize(
    "text", ["[1] Paris is the capital.", "Context:\n[1] Paris is the capital."]
)
def test_a_leading_context_number_is_moved_after_the_answer(text):
    chain = chain_with(scripted_generator(Script(reply(text))), k=1)
    assert chain.answer_style == "sentences"  # the default with a remote model
    answer = chain.ask("What is the capital of France?")
    assert answer.text == "Paris is the capital. [1]"
    assert [c.index for c in answer.citations] == [1]


# -- extractive through a generator without constrained decoding (a quoted span) ------------
@pytest.mark.unit
def test_a_verbatim_quote_is_grounded_with_its_offsets():
    script = Script(reply('[2] "3.7  million\ninhabitants"'))
    chain = chain_with(scripted_generator(script), answer_style="extractive", k=3)
    answer = chain.ask("How many people live in Berlin?")
    assert QUOTE_INSTRUCTION in answer.prompt
    assert answer.grounded
    assert answer.text == "3.7 million inhabitants"
    assert [c.source for c in answer.citations] == ["doc2.md"]
    span = answer.span
    assert (span.index, span.id) == (2, answer.contexts[1].id)
    assert answer.contexts[1].text[span.start : span.end] == answer.text
    data = answer.to_dict()
    assert data["grounded"] is True and data["span"]["start"] == span.start


@pytest.mark.unit
def test_a_quote_found_in_another_context_cites_that_context():
    script = Script(reply('[1] "capital of Spain"'))
    answer = chain_with(scripted_generator(script), answer_style="extractive").ask("Spain?")
    assert answer.grounded and [c.index for c in answer.citations] == [3]


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    ['[2] "Berlin has four million people"', '[2] "berlin is the capital of germany"'],
)
def test_a_quote_that_is_not_in_the_contexts_is_kept_but_not_grounded(text):
    script = Script(reply(text))
    answer = chain_with(scripted_generator(script), answer_style="extractive").ask("Berlin?")
    assert not answer.grounded and answer.span is None
    assert answer.text == parse_quote(text).text
    assert answer.to_dict()["grounded"] is False


@pytest.mark.unit
@pytest.mark.parametrize("text", ["I don't know.", "I don't know", ""])
def test_no_answer_is_i_dont_know_and_not_grounded(text):
    script = Script(reply(text))
    answer = chain_with(scripted_generator(script), answer_style="extractive").ask("Rome?")
    assert answer.text == NO_ANSWER and not answer.grounded and answer.citations == []


@pytest.mark.unit
def test_find_quote_prefers_the_named_context_and_matches_case():
    contexts = ["is the capital", "Paris is the capital"]
    assert find_quote("is the capital", contexts, prefer=1).context == 1
    assert find_quote("is the capital", contexts).context == 0
    assert find_quote("IS THE CAPITAL", contexts) is None
    assert find_quote("   ", contexts) is None


# -- where extractive spans start -----------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many people live in Berlin?", "number"),
        ("When did the war end?", "date"),
        ("In what year was it built?", "date"),
        ("Who founded Acme?", "name"),
        ("Which poet wrote The Masque of Anarchy?", "name"),
        ("Why is the sky blue?", None),
    ],
)
def test_answer_type_of_a_question(question, kind):
    assert answer_type(question) == kind


@pytest.mark.unit
def test_sentences_split_on_end_punctuation_before_a_capital_or_digit():
    text = "Dr. smith came. He left in 1990! 2001 was next? yes.\nNew line"
    parts = [text[a:b] for a, b in sentences(text)]
    assert parts == ["Dr. smith came.", "He left in 1990!", "2001 was next? yes.", "New line"]


@pytest.mark.unit
def test_initials_and_titles_do_not_end_a_sentence():
    text = "Dr. Herbert A. Simon won. He served in the U.S. Navy. St. Louis is No. 5 on it."
    parts = [text[a:b] for a, b in sentences(text)]
    assert parts == [
        "Dr. Herbert A. Simon won.",
        "He served in the U.S. Navy.",
        "St. Louis is No. 5 on it.",
    ]
    long = "A. Smith left. " * 20_000  # the look-back is bounded: a long text splits quickly
    assert len(sentences(long)) == 20_000


@pytest.mark.unit
def test_ranked_extractive_offers_the_model_no_span_that_cannot_answer():
    texts = [
        "In May 1756 the Marquis de Montcalm led the French reinforcements to New France.",
        "In 2004, Ken Jennings won 74 games in a row on Jeopardy.",
    ]
    contexts = [
        Context(index=i + 1, id=f"c{i}", source="x.txt", text=t) for i, t in enumerate(texts)
    ]
    style = ExtractiveStyle()
    who = [s.text for s in style.top_spans("Who led the French reinforcements?", contexts)]
    assert "Marquis de Montcalm" in who and not {"May 1756", "May"} & set(who)
    many = [
        s.text for s in style.top_spans("How many games did Ken Jennings win in 2004?", contexts)
    ]
    assert "74" in many and "2004" not in many


@pytest.mark.unit
def test_a_span_weights_file_changes_the_ranking_and_round_trips(tmp_path):
    contexts = [Context(index=1, id="c1", source="x.txt", text=FACTS[1])]
    question = "How many people live in Berlin?"
    shipped = [s.text for s in ExtractiveStyle().top_spans(question, contexts)]
    # weights that prefer the longest span: another span comes first
    longest = span_ranking.RankingWeights({"log_words": 5.0}, {"rank_score": 1.0}, {"by": "hand"})
    path = tmp_path / "spans.json"
    path.write_text(longest.to_json(), encoding="utf-8")
    style = ExtractiveStyle(span_weights=str(path))
    style.warm_up()
    assert style.ranking == longest
    reranked = style.top_spans(question, contexts)
    assert [s.text for s in reranked] != shipped
    assert len(reranked[0].text.split()) == max(len(s.text.split()) for s in reranked)
    dumped = style.to_dict()
    assert dumped["init_parameters"]["span_weights"] == str(path)
    assert ExtractiveStyle.from_dict(dumped).ranking == longest


@pytest.mark.unit
@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "cannot read span weights from .*missing.json"),
        ("{not json", "cannot read span weights"),
        ('{"spans": {"sentence": 1.0}}', "has no table 'model' of numbers"),
        ('{"spans": {"sentence": "high"}, "model": {}}', "has no table 'spans' of numbers"),
        ('{"spans": {}, "model": {"loudness": 1.0}}', r"unknown model features \['loudness'\]"),
    ],
)
def test_a_bad_span_weights_file_is_a_config_error_at_warm_up(tmp_path, content, match):
    path = tmp_path / ("missing.json" if content is None else "spans.json")
    if content is not None:
        path.write_text(content, encoding="utf-8")
    style = ExtractiveStyle(span_weights=str(path))
    with pytest.raises(ConfigError, match=match) as err:
        style.warm_up()
    assert err.value.field == "span_weights" and "fit_span_ranker.py --out" in str(err.value)


# -- with the bundled model ------------------------------------------------------------------
@pytest.mark.integration
def test_extractive_answers_are_spans_of_the_cited_context(local_generator):
    chain = chain_with(local_generator, answer_style="extractive", k=3)
    for question in ("What is the capital of France?", "How many people live in Berlin?"):
        answer = chain.ask(question)
        assert answer.grounded, answer.to_dict()
        (cited,) = answer.citations
        context = next(c for c in answer.contexts if c.index == cited.index)
        assert answer.span.index == cited.index
        assert context.text[answer.span.start : answer.span.end] == answer.text
        assert answer.text.strip() and answer.span.end - answer.span.start == len(answer.text)
    assert chain.ask("What is the capital of France?").text.startswith("Paris")


@pytest.mark.integration
def test_ranked_extractive_reads_the_sentences_its_spans_come_from(local_generator):
    chain = chain_with(local_generator, answer_style="extractive", k=3)
    assert chain.style.focus_sentences == 2
    question = "How many inhabitants does Berlin have?"
    answer = chain.ask(question)
    assert [m["role"] for m in answer.messages] == ["user"]
    assert "[2] Berlin is the capital of Germany.\n\n[2] It has 3.7 million" in answer.prompt
    assert "Madrid" not in answer.prompt and "Paris" not in answer.prompt
    assert answer.grounded and answer.text in answer.prompt
    whole = chain_with(local_generator, answer_style=ExtractiveStyle(focus_sentences=0), k=3)
    assert "Madrid is the capital of Spain." in whole.ask(question).prompt
    # one span to score: the model reads only the sentence that holds it
    one = chain_with(local_generator, answer_style=ExtractiveStyle(span_candidates=1), k=3)
    answer = one.ask(question)
    assert answer.prompt.count("[2] ") == 1 and "Berlin is the capital" not in answer.prompt
    assert answer.grounded and answer.text in answer.prompt


@pytest.mark.integration
def test_ranked_span_search_returns_a_grounded_span(local_generator):
    ranked = chain_with(local_generator, answer_style="extractive", k=3)
    assert ranked.style.search(local_generator) == "ranked"
    answer = ranked.ask("How many inhabitants does Berlin have?")
    assert answer.grounded and answer.text == "3.7 million", answer.to_dict()
    assert answer.citations[0].index == answer.span.index


@pytest.mark.integration
def test_ranked_extractive_says_i_dont_know_when_no_context_shares_a_word(local_generator):
    chain = chain_with(local_generator, answer_style="extractive", k=3)
    answer = chain.ask("Which river floods every spring?")
    assert answer.text == NO_ANSWER and not answer.grounded and answer.span is None
    assert answer.finish_reason == "abstain" and answer.citations == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"span_search": "beam"}, "unknown span_search 'beam'; allowed: ranked, quote"),
        ({"span_candidates": 0}, "span_candidates must be at least 1, got 0"),
    ],
)
def test_bad_span_search_settings_are_config_errors(params, match):
    with pytest.raises(ConfigError, match=match):
        ExtractiveStyle(**params)


@pytest.mark.unit
def test_ranked_span_search_with_a_generator_that_cannot_score_spans_is_a_config_error():
    remote = scripted_generator(Script(reply("x")))
    chain = chain_with(remote, answer_style=ExtractiveStyle(span_search="ranked"))
    with pytest.raises(ConfigError) as err:
        chain.ask("Berlin?")
    message = str(err.value)
    assert "style.extractive" in message and "OpenAIGenerator" in message
    assert "span scoring" in message and "span_search: quote" in message
    assert "style.evidence" in message
    # the default picks what the generator can do: a checked quote
    assert ExtractiveStyle().search(remote) == "quote"


@pytest.mark.integration
def test_extractive_abstains_below_the_threshold(local_generator):
    chain = chain_with(local_generator, answer_style=ExtractiveStyle(min_span_logprob=0.0), k=2)
    answer = chain.ask("What is the capital of France?")  # every log-probability is below 0
    assert answer.text == NO_ANSWER and not answer.grounded and answer.span is None
    assert answer.finish_reason == "abstain" and answer.citations == []


@pytest.mark.integration
def test_extractive_streams_the_span_then_the_answer(local_generator):
    chain = chain_with(local_generator, answer_style="extractive", k=2)
    *pieces, answer = list(chain.stream("What is the capital of Germany?"))
    assert isinstance(answer, Answer) and answer.grounded
    assert "".join(pieces) == answer.text


def _corpus_passages() -> list[str]:
    texts = []
    for path in sorted(CORPUS.glob("*.md")):
        texts += [p.strip() for p in path.read_text().split("\n\n") if len(p.strip()) > 120]
    return texts


@pytest.mark.integration
@pytest.mark.parametrize("style", ["sentences", "concise"])
def test_the_context_format_does_not_leak_into_answers(local_generator, style):
    passages = _corpus_passages()
    assert len(passages) >= 3
    chain = chain_with(local_generator, texts=passages, answer_style=style, k=3)
    for question in ("How does HNSW find nearest neighbours?", "What is BM25?"):
        answer = chain.ask(question)
        text = answer.text
        assert text.strip(), answer.to_dict()
        assert "(source:" not in text and "Contexts:" not in text and "Question:" not in text
        assert not text.lstrip().startswith("["), text  # no "[2] <context text>" echo
        for context in answer.contexts:  # no context's source path either
            assert context.source not in text
