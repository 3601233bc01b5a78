"""style.evidence: the answering sentence of the contexts, copied verbatim, cited and grounded."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.chains import EvidenceStyle, RagChain
from rag.chains.styles.evidence import (
    DEFAULT_WEIGHTS_FILE,
    FEATURES,
    SEPARATOR,
    factoid_span,
    sentence_candidates,
)
from rag.core import ConfigError

from .helpers import ListRetriever, Script, reply, scripted_generator

FACTS = [
    "Paris is the capital of France. It lies on the Seine.",
    "Berlin is the capital of Germany. It has 3.7 million inhabitants living in twelve boroughs.",
    "BM25 is a ranking function used by search engines. It was developed in the 1970s.",
]


def evidence_chain(texts=FACTS, **params):
    script = Script(reply("must not be asked"))
    chain = RagChain(
        retriever=ListRetriever(texts=list(texts)),
        generator=scripted_generator(script),
        answer_style=EvidenceStyle(**params),
        k=3,
    )
    return chain, script


def assert_grounded(answer):
    assert answer.grounded and answer.spans and answer.span == answer.spans[0]
    cited = {c.index for c in answer.citations}
    pieces = []
    for span in answer.spans:
        assert span.index in cited
        context = answer.contexts[span.index - 1]
        assert context.id == span.id
        pieces.append(" ".join(context.text[span.start : span.end].split()))
    # "sentence", "sentence sentence" or "span — sentence(s)"
    assert answer.text in (" ".join(pieces), f"{pieces[0]}{SEPARATOR}{' '.join(pieces[1:])}")


@pytest.mark.unit
def test_the_answer_is_the_sentence_that_answers_copied_and_cited_with_no_generation():
    chain, script = evidence_chain()
    answer = chain.ask("What is BM25?")
    assert answer.text == "BM25 is a ranking function used by search engines."
    assert [c.source for c in answer.citations] == ["doc3.md"]
    assert_grounded(answer)
    assert script.bodies == []  # nothing was sent to the generator
    assert (answer.prompt, answer.messages, answer.steps) == ("", [], 0)
    assert answer.answer_style == "evidence" and answer.finish_reason == "stop"
    data = answer.to_dict()
    assert data["grounded"] is True and data["spans"][0]["start"] == answer.span.start


@pytest.mark.unit
def test_a_factoid_question_gets_the_short_span_first_then_its_sentence():
    # min_score 0.1: without an embedder (lexical weights) the probabilities here are low;
    # "3.7 million" is the best span with probability 0.24 (beside "3.7", "twelve", ...)
    chain, _ = evidence_chain(min_score=0.1, min_span_probability=0.2)
    answer = chain.ask("How many inhabitants does Berlin have?")
    # "It has ..." points back, so the sentence it points to comes with it
    assert answer.text == (
        f"3.7 million{SEPARATOR}Berlin is the capital of Germany. "
        "It has 3.7 million inhabitants living in twelve boroughs."
    )
    assert_grounded(answer)
    assert len(answer.spans) == 2 and answer.spans[0].index == answer.spans[1].index == 2
    plain, _ = evidence_chain(factoid_span=False, with_antecedent=False, min_score=0.1)
    assert plain.ask("How many inhabitants does Berlin have?").text == (
        "It has 3.7 million inhabitants living in twelve boroughs."
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    ("question", "sentence", "span"),
    [
        ("When was BM25 developed?", "It was developed in the 1970s.", "1970s"),
        ("Who founded Acme?", "Acme was founded by Jane Roe.", "Jane Roe"),
        ("Why is the sky blue?", "The sky is blue because of scattering.", None),
        # the year belongs to the date, the initial to the name
        ("When was Secretariat born?", "Secretariat was born on March 30, 1970.", "March 30, 1970"),
        ("Who is the Chief Justice?", "The Chief Justice is John G. Roberts.", "John G. Roberts"),
        # the date the ranker puts first names no one: the best name comes first instead
        (
            "Who led the army in 1756?",
            "In May 1756 the Marquis de Montcalm led the army.",
            "Montcalm",
        ),
    ],
)
def test_factoid_span(question, sentence, span):
    found = factoid_span(question, sentence)
    assert (sentence[found[0] : found[1]] if found else None) == span


@pytest.mark.unit
def test_the_line_breaks_of_a_hard_wrapped_source_read_as_spaces():
    chain, _ = evidence_chain(
        texts=["The second experiment used 1,400\nabstracts and 225\n  queries. It ended."],
        min_score=0.0,
    )
    answer = chain.ask("How many queries did the second experiment use?")
    assert answer.text.endswith("The second experiment used 1,400 abstracts and 225 queries.")
    assert "\n" not in answer.text
    span = answer.spans[-1]
    assert answer.contexts[0].text[span.start : span.end].count("\n") == 2
    assert_grounded(answer)


@pytest.mark.unit
def test_a_factoid_span_at_the_start_of_its_sentence_is_followed_by_the_sentence():
    chain, _ = evidence_chain(
        texts=["William Shakespeare wrote Hamlet around 1600. It is a tragedy."], min_score=0.0
    )
    answer = chain.ask("Who wrote Hamlet?")
    assert (
        answer.text
        == f"William Shakespeare{SEPARATOR}William Shakespeare wrote Hamlet around 1600."
    )
    assert_grounded(answer)


@pytest.mark.unit
def test_a_factoid_span_comes_first_only_where_the_answer_likely_lies():
    sentence = "It has 3.7 million inhabitants living in twelve boroughs."
    question = "How many inhabitants does Berlin have?"
    assert factoid_span(question, sentence, 0.2) == (7, 18)  # "3.7 million", probability 0.24
    assert factoid_span(question, sentence, 0.3) is None
    chain, _ = evidence_chain(min_score=0.1)  # the default: 0.3
    assert chain.ask(question).text.startswith("Berlin is the capital")
    # a "who" span that holds a date or a number is no name, however it ranks
    assert factoid_span("Who did Kennedy run against?", "He died on November 22, 1963.") is None
    # a "how many" span is no year and no day of a date
    games = "In 2004, Jennings won 74 games before he was defeated."
    start, end = factoid_span("How many games did Jennings win?", games)
    assert games[start:end].startswith("74")
    born = "Bob Seger (born May 6, 1945) is an American singer."
    assert factoid_span("How old is Bob Seger?", born, 0.0) is None
    named = "In 1960 Kennedy ran against Richard Nixon, the vice president."
    start, end = factoid_span("Who did Kennedy run against?", named)
    assert named[start:end] == "Richard Nixon"


@pytest.mark.unit
def test_no_sentence_above_the_threshold_is_i_dont_know_and_not_grounded():
    chain, script = evidence_chain(min_score=0.999)
    answer = chain.ask("What is BM25?")
    assert answer.text == "I don't know." and not answer.grounded
    assert answer.citations == [] and answer.spans == [] and answer.span is None
    assert answer.finish_reason == "abstain" and script.bodies == []
    unrelated, _ = evidence_chain()
    answer = unrelated.ask("Which river floods every spring?")
    assert answer.text == "I don't know." and not answer.grounded


@pytest.mark.integration
@pytest.mark.parametrize("question", ["What", "What is it?", "Who are you?", "When?"])
def test_a_question_without_a_content_word_is_i_dont_know(question, embedder):
    # with the embedder every sentence has a similarity, and any clears a threshold of 0
    chain, _ = evidence_chain(embedder=embedder, min_score=0.0)
    answer = chain.ask(question)
    assert answer.text == "I don't know." and answer.finish_reason == "abstain"
    assert not answer.grounded and answer.citations == []


@pytest.mark.integration
def test_a_question_of_numbers_alone_needs_a_sentence_that_holds_one(embedder):
    # "What is 2 * 21?" quoted the quick start's BM25 definition: no sentence holds 2 or 21
    chain, _ = evidence_chain(embedder=embedder, min_score=0.0)
    answer = chain.ask("What is 2 * 21?")
    assert answer.text == "I don't know." and not answer.grounded
    texts = ["The okapi was described in 1901.", *FACTS]
    dated, _ = evidence_chain(texts=texts, embedder=embedder, min_score=0.0)
    assert dated.ask("1901?").text == texts[0]  # numbers alone, and a sentence holds one


@pytest.mark.unit
def test_more_sentences_when_asked_and_they_score_close(tmp_path):
    # weights of coverage alone, so the sentences holding the question's words score close
    sets = ("embedding", "lexical", "embedding_factoid", "lexical_factoid")
    weights = tmp_path / "coverage.json"
    weights.write_text(
        json.dumps(
            {
                "weights": {name: {"intercept": 0.0, "coverage": 4.0} for name in sets},
                "min_score": dict.fromkeys(sets, 0.0),
            }
        )
    )
    params = {"weights": str(weights), "max_sentences": 3, "factoid_span": False}
    chain, _ = evidence_chain(with_antecedent=False, **params)
    answer = chain.ask("What is the capital of Germany and how many inhabitants does it have?")
    assert len(answer.spans) >= 2
    assert answer.grounded and {s.index for s in answer.spans} <= {
        c.index for c in answer.citations
    }
    for span in answer.spans:
        context = answer.contexts[span.index - 1]
        assert " ".join(context.text[span.start : span.end].split()) in answer.text
    # the sentence an answer "It has ..." points back to comes once, not again as a second one
    pointing, _ = evidence_chain(texts=[FACTS[1]], **params)
    answer = pointing.ask("How many inhabitants live in the twelve boroughs?")
    assert answer.text == FACTS[1]
    assert [(s.start, s.end) for s in answer.spans] == [(0, len(FACTS[1]))]


PLAYOFFS = [
    "The Broncos defeated the Pittsburgh Steelers in the divisional round. They then beat the "
    "New England Patriots in the AFC Championship Game.",
    FACTS[0],
]


@pytest.mark.unit
def test_a_detailed_question_gets_the_next_best_sentence_too_and_a_query_one():
    detailed = (
        "Which team did the Denver Broncos defeat in the divisional playoff round in January?"
    )
    chain, _ = evidence_chain(texts=PLAYOFFS, factoid_span=False)
    answer = chain.ask(detailed)
    assert answer.text == PLAYOFFS[0]  # both sentences, the best first, joined by a space
    assert [(s.start, s.end) for s in answer.spans] == [(0, 69), (70, len(PLAYOFFS[0]))]
    assert_grounded(answer)
    assert chain.ask("Which team did the Broncos defeat?").text == PLAYOFFS[0][:69]
    one, _ = evidence_chain(texts=PLAYOFFS, factoid_span=False, detailed_max_sentences=1)
    assert one.ask(detailed).text == PLAYOFFS[0][:69]
    # a runner-up from another passage is not added: the answer stays one passage's words
    apart, _ = evidence_chain(texts=[PLAYOFFS[0][:69], PLAYOFFS[0][70:]], factoid_span=False)
    assert apart.ask(detailed).text == PLAYOFFS[0][:69]


@pytest.mark.unit
def test_tools_are_not_offered_to_a_model_the_style_never_reads_and_a_warning_says_so(caplog):
    # the tool loop used to run first: a generator call (and any tool it asked for) whose
    # reply the evidence answer then ignored
    script = Script(reply(calls=[("calculator", {"expression": "6 * 7"})]), reply("42"))
    chain = RagChain(
        retriever=ListRetriever(texts=FACTS),
        generator=scripted_generator(script),
        answer_style=EvidenceStyle(),
        tools=["calculator"],
        retrieval_tool=True,
        k=3,
    )
    with caplog.at_level("WARNING", logger="rag.chains"):
        answer = chain.ask("What is BM25?")
    assert answer.answer_style == "evidence" and answer.text.startswith("BM25 is a ranking")
    assert script.bodies == [] and answer.steps == 0 and answer.tool_calls == []
    assert "style.evidence answers from the retrieved contexts" in caplog.text
    assert "calculator, search_documents will not be offered" in caplog.text
    assert "retrieve_first" not in caplog.text
    asked = chain.with_style("sentences").ask("What is six times seven?")  # a generating style
    assert asked.tool_calls[0]["result"] == "42" and asked.text == "42"
    assert script.bodies[0]["tools"][0]["function"]["name"] == "calculator"


@pytest.mark.unit
def test_without_retrieve_first_a_warning_says_evidence_has_nothing_to_read(caplog):
    chain = RagChain(
        retriever=ListRetriever(texts=FACTS),
        generator=scripted_generator(Script(reply("must not be asked"))),
        answer_style=EvidenceStyle(),
        retrieve_first=False,
    )
    with caplog.at_level("WARNING", logger="rag.chains"):
        answer = chain.ask("What is BM25?")
    assert answer.text == "I don't know." and answer.contexts == []
    assert "retrieve_first is false, and style.evidence calls no model" in caplog.text


@pytest.mark.unit
def test_streaming_yields_the_answer_then_the_record():
    chain, _ = evidence_chain()
    *pieces, answer = list(chain.stream("What is BM25?"))
    assert pieces == [answer.text] and answer.grounded


@pytest.mark.unit
def test_sentence_features_are_the_documented_ones():
    found = sentence_candidates("Who founded Acme?", ["It rained. Acme was founded by Jane Roe."])
    assert [c.text for c in found] == ["It rained.", "Acme was founded by Jane Roe."]
    assert set(found[0].features) == set(FEATURES)
    assert found[1].features["coverage"] == 1.0 and found[0].features["coverage_gap"] == -1.0
    assert found[1].features["position"] == 0.5 and found[0].features["first_sentence"] == 1.0


def _fit_script(name: str = "fit_evidence"):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.unit
def test_the_fit_records_the_commit_whose_code_computed_the_features(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("needs the git command")
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ on it
    fit = _fit_script()
    repo = tmp_path / "repo"
    (repo / "rag").mkdir(parents=True)
    (tmp_path / "link").symlink_to(repo)  # a checkout reached through a link (macOS's /tmp)
    monkeypatch.setattr(fit, "ROOT", tmp_path / "link")
    out = repo / "rag" / "weights.json"
    assert fit.code_commit(out) == "unknown"  # not a git checkout

    def git(*args: str) -> str:
        command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
        return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    (repo / "rag" / "features.py").write_text("A = 1\n")
    out.write_text("{}")
    git("add", "-A")
    git("commit", "-qm", "fit here")
    head = git("rev-parse", "--short", "HEAD").strip()
    assert fit.code_commit(out) == head
    out.write_text('{"weights": {}}')  # the file being written is no change of the code
    assert fit.code_commit(out) == head
    (repo / "rag" / "features.py").write_text("A = 2\n")
    assert fit.code_commit(out) == f"{head}+changes"


@pytest.mark.unit
def test_the_shipped_weights_record_their_provenance():
    data = json.loads(DEFAULT_WEIGHTS_FILE.read_text())
    provenance = data["provenance"]
    for key in ("script", "date", "commit", "datasets", "seed", "model", "retrieval", "method"):
        assert provenance[key] is not None and provenance[key] != "", key
    assert set(provenance["datasets"]) == {"wikiqa_train", "xquad_en_dev"}
    assert provenance["script"] == "benchmarks/fit_evidence.py"
    assert {"embedding", "lexical"} <= set(data["weights"])
    assert set(data["weights"]) <= {"embedding", "lexical", "embedding_factoid", "lexical_factoid"}
    for name, weights in data["weights"].items():
        assert "intercept" in weights and set(weights) <= {"intercept", *FEATURES}, name
        assert 0.0 < data["min_score"][name] < 1.0


@pytest.mark.unit
def test_bad_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="max_sentences must be at least 1"):
        EvidenceStyle(max_sentences=0)
    with pytest.raises(ConfigError, match="min_score is a probability"):
        EvidenceStyle(min_score=2.0)
    with pytest.raises(ConfigError, match="min_span_probability is a probability.*-0.1"):
        EvidenceStyle(min_span_probability=-0.1)
    with pytest.raises(ConfigError, match="detailed_max_sentences must be at least 1, got 0"):
        EvidenceStyle(detailed_max_sentences=0)
    with pytest.raises(ConfigError, match="max_sentence_words must be at least 1, got 0"):
        EvidenceStyle(max_sentence_words=0)
    missing = tmp_path / "nope.json"
    chain, _ = evidence_chain(weights=str(missing))
    with pytest.raises(ConfigError, match=r"nope\.json.*benchmarks/fit_evidence\.py"):
        chain.ask("What is BM25?")


@pytest.mark.integration
def test_with_the_embedder_a_paraphrase_finds_its_sentence(embedder):
    texts = [
        "The museum opened in 1901. Its roof was rebuilt after a storm.",
        "Glaciers form where snow piles up faster than it melts, year after year.",
    ]
    chain, _ = evidence_chain(texts, embedder=embedder, min_score=0.001)  # the ranking
    answer = chain.ask("how do ice sheets come into being")
    assert answer.text == texts[1]
    assert_grounded(answer)


def unpunctuated_transcript() -> str:
    filler = "so we talked about the rollout and the team and the schedule for next week"
    fact = "the outage was caused by an expired certificate on the load balancer"
    return " ".join([filler] * 6 + [fact] + [filler] * 6)  # 200 words, no sentence end


@pytest.mark.unit
def test_text_without_sentence_punctuation_is_quoted_in_windows_not_whole():
    transcript = unpunctuated_transcript()
    chain, _ = evidence_chain(texts=[transcript, FACTS[0]], max_sentence_words=30)
    answer = chain.ask("What caused the outage?")
    assert "expired certificate" in answer.text
    assert len(answer.text.split()) <= 30 < len(transcript.split())
    assert_grounded(answer)


@pytest.mark.unit
def test_the_default_window_keeps_natural_sentences_whole_and_cuts_run_on_text():
    long_sentence = " ".join(["word"] * 90) + "."
    assert [c.text for c in sentence_candidates("What?", [long_sentence])] == [long_sentence]
    found = sentence_candidates("What?", [unpunctuated_transcript()])
    assert len(found) == 2 and all(len(c.text.split()) <= 100 for c in found)
    assert found[1].previous_index == 0  # the windows of one run read in order


@pytest.mark.unit
def test_heading_and_title_lines_are_not_candidates():
    texts = [
        "# BM25\n\nBM25 is a ranking function.",
        "Tuning HNSW\nThree parameters control an HNSW index. M is the number of links.",
        "The Cranfield experiments\n\nCyril Cleverdon led them.",
    ]
    found = sentence_candidates("What is it?", texts)
    assert [c.text for c in found] == [
        "BM25 is a ranking function.",
        "Three parameters control an HNSW index.",
        "M is the number of links.",
        "Cyril Cleverdon led them.",
    ]
    assert all(texts[c.context][c.start : c.end] == c.text for c in found)
    assert [c.features["first_sentence"] for c in found] == [1.0, 1.0, 0.0, 1.0]


@pytest.mark.unit
def test_a_short_line_continued_in_lower_case_is_not_a_title():
    # an HTML page's bold word comes out of the loader on a line of its own
    text = "Tuning HNSW\nThree parameters control it.\nM\nis the number of links each node keeps."
    found = sentence_candidates("What does M control?", [text])
    assert [c.text for c in found] == [
        "Three parameters control it.",
        "M\nis the number of links each node keeps.",
    ]


@pytest.mark.unit
def test_document_start_pronoun_and_previous_similarity_features():
    texts = ["Acme makes anvils. It was founded in 1998.", "Acme sells them. They are heavy."]
    metadata = [{"chunk_index": 0}, {"chunk_index": 3}]
    found = sentence_candidates("When?", texts, [0.1, 0.9, 0.4, 0.2], metadata)
    assert [c.features["document_start"] for c in found] == [1.0, 0.0, 0.0, 0.0]
    assert [c.features["pronoun_start"] for c in found] == [0.0, 1.0, 0.0, 1.0]
    assert [c.features["similarity_previous"] for c in found] == [0.0, 0.1, 0.0, 0.4]


@pytest.mark.unit
def test_novelty_is_the_share_of_a_sentences_content_words_the_question_does_not_name():
    question = "What does the parameter M control in an HNSW index?"
    texts = ["Three parameters control an HNSW index. M is the number of links each node keeps."]
    restates, answers = sentence_candidates(question, texts)
    assert restates.features["novelty"] == pytest.approx(1 / 5)  # "three" of five
    assert answers.features["novelty"] == pytest.approx(4 / 5)  # all but "M"
    assert sentence_candidates("What?", ["The the of."])[0].features["novelty"] == 0.0


@pytest.mark.unit
def test_the_fit_takes_both_data_sets_for_every_weight_set_and_wikiqa_twice(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    fit = _fit_script()

    def group(dataset: str, question: str) -> dict:
        return {"dataset": dataset, "row": {"question": question}}

    wikiqa_what, wikiqa_who = (
        group("wikiqa_train", "what is bm25"),
        group("wikiqa_train", "who wrote it"),
    )
    xquad_what, xquad_who = group("xquad_en_dev", "What is it?"), group("xquad_en_dev", "Who led?")
    other, factoid = fit.weight_set_groups([wikiqa_what, wikiqa_who, xquad_what, xquad_who])
    assert other == [wikiqa_what, xquad_what, wikiqa_what]
    assert factoid == [wikiqa_who, xquad_who, wikiqa_who]


@pytest.mark.unit
def test_factoid_questions_use_their_own_weight_set_when_the_file_has_one(tmp_path):
    data = json.loads(DEFAULT_WEIGHTS_FILE.read_text())
    data["weights"]["lexical_factoid"] = {"intercept": -1.0, "reciprocal_rank": 1.0}
    data["min_score"]["lexical_factoid"] = 0.123
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(data))
    style = EvidenceStyle(weights=str(path))
    assert style.weight_set("When was Acme founded?") == "lexical_factoid"
    assert style.weight_set("how do glaciers form") == "lexical"
    assert style.threshold("When was Acme founded?") == 0.123
    plain = EvidenceStyle(weights=str(DEFAULT_WEIGHTS_FILE))
    if "lexical_factoid" not in plain.fitted["weights"]:  # a file without one: the common set
        assert plain.weight_set("When was Acme founded?") == "lexical"


@pytest.mark.unit
def test_a_sentence_is_compared_with_the_question_under_its_heading():
    text = (
        "## Index types\n\nA flat index compares the query with every vector. It is exact.\n\n"
        "## Why retrieve first\n\nA language model only knows its training data."
    )
    found = sentence_candidates("When should I use a flat index?", [text], metadata=[{}])
    assert [c.text_in_context for c in found] == [
        "Index types\nA flat index compares the query with every vector.",
        "Index types\nIt is exact.",
        "Why retrieve first\nA language model only knows its training data.",
    ]
    titled = sentence_candidates("Who?", ["Kickoff was at 6:30."], metadata=[{"title": "SB 50"}])
    assert titled[0].text_in_context == "SB 50\nKickoff was at 6:30."
    # "It is exact." points back to the sentence before it, not across a heading
    assert [c.previous_start for c in found] == [None, found[0].start, None]
    assert sentence_candidates("Who?", ["Kickoff."])[0].text_in_context == "Kickoff."


@pytest.mark.unit
def test_ranks_definitions_early_question_words_and_first_context():
    texts = [
        "It rained on Monday. BM25 is a ranking function.",
        "Search engines rank the documents they hold for every query with BM25.",
    ]
    found = sentence_candidates("What is BM25?", texts, [0.2, 0.9, 0.5])
    assert [c.features["similarity_rank"] for c in found] == [1 / 3, 1.0, 0.5]
    assert [c.features["definition"] for c in found] == [0.0, 1.0, 0.0]
    assert [c.features["question_words_early"] for c in found] == [0.0, 1.0, 0.0]
    assert [c.features["first_context"] for c in found] == [1.0, 1.0, 0.0]
    assert [c.features["similarity_in_context_gap"] for c in found] == pytest.approx([-0.7, 0, 0])
    how = sentence_candidates("How does a search find neighbours?", texts)
    assert [c.features["how_position"] for c in how] == [1.0, 0.5, 1.0]
    numbers = sentence_candidates("How many queries?", ["It used 225 queries. It was big."])
    assert [c.features["number_for_number"] for c in numbers] == [1.0, 0.0]


@pytest.mark.unit
def test_answer_type_features_look_for_the_kind_of_answer_a_factoid_question_asks():
    texts = ["Acme sold anvils in Ohio. In 1998 Jane Roe founded Acme. Anvils are heavy."]
    who = sentence_candidates("Who founded Acme?", texts)
    assert [c.features["answer_type_fits"] for c in who] == [1.0, 1.0, 0.0]  # Ohio, Jane Roe
    assert [c.features["answer_type_count"] for c in who] == [1 / 3, 2 / 3, 0.0]
    when = sentence_candidates("When was Acme founded?", texts)
    assert [c.features["answer_type_fits"] for c in when] == [0.0, 1.0, 0.0]
    what = sentence_candidates("What did Acme sell?", texts)
    assert {c.features["answer_type_fits"] for c in what} == {0.0}


@pytest.mark.unit
def test_the_cross_fitting_folds_split_xquad_with_the_held_out_sample_first(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ on it
    fit = _fit_script()
    rows = [{"_id": f"q{i}"} for i in range(230)]
    folds = [fit.xquad_fold(rows, k) for k in range(fit.XQUAD_FOLDS)]
    assert folds[0] == fit.xquad_held_out(rows)  # what the shipped files leave out
    assert sum(len(f) for f in folds) == len(rows) == len(set().union(*folds))  # a partition
    assert sorted(len(f) for f in folds[1:]) == [26, 26, 26, 26, 26]
    assert (
        fit.xquad_fit_provenance(130, 2)
        == "130 questions outside cross-fitting fold 2 (xquad_fold)"
    )
    with pytest.raises(ValueError, match="fold must be 0 to 5, got 6"):
        fit.xquad_fold(rows, 6)


@pytest.mark.unit
def test_the_span_rules_sample_lies_outside_the_held_out_fold(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ on it
    cross = _fit_script("crossfit_xquad")
    rows = [{"_id": f"q{i}"} for i in range(400)]
    developed = cross.rule_sample(rows)
    assert len(developed) == cross.RULE_SAMPLE == 200
    assert not developed & cross.fit_evidence.xquad_fold(rows, 0)
    assert cross.rule_sample(list(rows)) == developed  # the same sample every run
