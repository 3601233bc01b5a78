"""Ranked extractive answers: candidate spans, their ranking, and the model's choice among them
(pure functions here; the chain with the bundled model is in test_answer_styles.py)."""

from __future__ import annotations

import pytest

from rag.chains.span_ranking import (
    MODEL_FEATURES,
    MODEL_WEIGHTS,
    SPAN_WEIGHTS,
    SpanCandidate,
    candidate_spans,
    choose_span,
    complete_span,
    fits_question,
    question_kind,
    rank_sentences,
    rank_spans,
)
from rag.core.generation import SpanLogprobs
from rag.core.text import START_STOPWORDS

pytestmark = pytest.mark.unit

CONTEXTS = [
    "The weather was mild. Acme Corporation was founded in 1931 by Jane Roe in Springfield.",
    "Springfield is a city; it has 120,000 inhabitants (2010 census).",
]


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many people live in Springfield?", "number"),
        ("What percent of voters stayed home?", "number"),
        ("When was Acme founded?", "date"),
        ("In which year did it open?", "date"),
        ("Who founded Acme?", "name"),
        ("Where was Acme founded?", "where"),
        ("What does Acme make?", "what"),
    ],
)
def test_question_kind(question, kind):
    assert question_kind(question) == kind


def test_sentences_rank_by_the_rare_question_words_they_share():
    ranked = rank_sentences("When was Acme founded?", CONTEXTS)
    best = ranked[0]
    assert CONTEXTS[best.context][best.start : best.end].startswith("Acme Corporation")
    assert ranked[-1].score == 0


def test_candidates_are_phrases_of_the_best_sentences_without_stop_word_edges():
    spans = candidate_spans("When was Acme founded?", CONTEXTS, sentences=1, max_words=4)
    assert spans
    texts = {s.text for s in spans}
    assert {"1931", "Jane Roe", "Springfield"} <= texts
    for span in spans:
        assert CONTEXTS[span.context][span.start : span.end] == span.text
        words = span.text.split()
        assert words[0].lower() not in START_STOPWORDS
        assert words[-1].lower() not in START_STOPWORDS
        assert len(words) <= 4 and not span.text.endswith(".")
        assert span.context == 0 and span.start >= CONTEXTS[0].index("Acme")


def test_candidates_do_not_cross_sentence_punctuation_and_keep_numbers_whole():
    spans = candidate_spans("How many inhabitants has Springfield?", CONTEXTS, sentences=1)
    texts = {s.text for s in spans}
    assert "120,000" in texts  # a thousands separator does not split the number
    assert not any("(" in t or ";" in t for t in texts)


def test_the_period_of_an_initial_or_a_short_form_does_not_end_a_span():
    text = "The current Chief Justice is John G. Roberts, Jr. of the U.S. Supreme Court."
    texts = {s.text for s in candidate_spans("Who is the Chief Justice?", [text], sentences=1)}
    assert {"John G. Roberts", "John G. Roberts, Jr.", "U.S. Supreme Court"} <= texts
    assert "John G" not in texts


def test_no_candidates_when_no_sentence_shares_a_content_word():
    assert candidate_spans("Which river floods in spring?", CONTEXTS) == []
    assert candidate_spans("What?", CONTEXTS) == []
    assert candidate_spans("Who founded Acme?", []) == []


def test_the_fitted_weights_rank_the_answer_of_the_asked_kind_first():
    assert SPAN_WEIGHTS, "span ranking weights are missing"
    assert rank_spans(candidate_spans("When was Acme founded?", CONTEXTS))[0].text == "1931"
    assert rank_spans(candidate_spans("Who founded Acme?", CONTEXTS))[0].text == "Jane Roe"
    number = rank_spans(candidate_spans("How many inhabitants has Springfield?", CONTEXTS))
    assert number[0].text == "120,000"


def test_rank_spans_scores_with_the_given_weights_and_is_stable():
    spans = [SpanCandidate(0, 0, 1, "a", {"x": 1.0}), SpanCandidate(0, 2, 3, "b", {"x": 2.0})]
    assert [s.text for s in rank_spans(spans, {"x": 1.0})] == ["b", "a"]
    assert [s.text for s in rank_spans(spans, {"x": -1.0})] == ["a", "b"]
    assert [s.text for s in rank_spans(spans, {})] == ["a", "b"]


def test_choose_span_weighs_model_log_probabilities_against_the_ranking():
    spans = [SpanCandidate(0, 0, 4, "Acme", score=2.0), SpanCandidate(0, 5, 8, "Roe", score=0.0)]
    logprobs = [SpanLogprobs(-6.0, -6.0, -1.0, 1), SpanLogprobs(-0.5, -0.5, -1.0, 1)]
    assert choose_span(spans, logprobs, {"rank_score": 1.0})[0].text == "Acme"
    best, scored = choose_span(spans, logprobs, {"rank_score": 1.0, "total": 1.0})
    assert best.text == "Roe" and scored is logprobs[1]
    assert set(MODEL_WEIGHTS) <= set(MODEL_FEATURES)


def test_choose_span_needs_one_log_probability_per_span():
    with pytest.raises(ValueError, match="one SpanLogprobs per span"):
        choose_span([SpanCandidate(0, 0, 1, "a")], [])
    with pytest.raises(ValueError):
        choose_span([], [])


@pytest.mark.unit
def test_a_sentence_of_only_question_words_is_not_ranked_and_wrapped_lines_are_one_sentence():
    contexts = ["# BM25\n\nBM25 is a ranking function\nfrom the probabilistic relevance framework."]
    ranked = rank_sentences("What is BM25?", contexts)
    texts = [(contexts[0][s.start : s.end], s.score > 0) for s in ranked]
    assert texts == [
        ("BM25 is a ranking function\nfrom the probabilistic relevance framework.", True),
        ("# BM25", False),
    ]


def test_features_see_the_question_words_next_to_and_around_the_span():
    contexts = ["In 1886 Tesla partnered with Robert Lane, and the firm was soon gone."]
    spans = candidate_spans("Who did Tesla partner with in 1886?", contexts, sentences=1)
    by_text = {s.text: s.features for s in spans}
    lane = by_text["Robert Lane"]
    # "with" is a stop word: the nearest content word on the left is "partnered" (partner)
    assert lane["left_question_word"] == 1.0 and lane["right_question_word"] == 0.0
    # "In 1886 Tesla partnered" lie within 5 words on its left: 3 question words of 10 places
    assert lane["window_question_words"] == pytest.approx(3 / 10)
    gone = by_text["gone"]
    assert gone["left_question_word"] == 0.0 and gone["window_question_words"] == 0.0
    assert by_text["Tesla"]["right_question_word"] == 1.0


@pytest.mark.unit
@pytest.mark.parametrize(
    ("question", "text", "span", "fits"),
    [
        ("Who led the army?", "In May 1756 Montcalm led the army.", "May 1756", False),
        ("Who led the army?", "In May 1756 Montcalm led the army.", "Montcalm", True),
        ("Where did it land?", "It landed on 20 July at Tranquility Base.", "20 July", False),
        ("How many games did he win?", "In 2004, Jennings won 74 games.", "2004", False),
        ("How many games did he win?", "In 2004, Jennings won 74 games.", "74", True),
        ("How old was she?", "She retired on May 6 aged 61.", "6", False),
        ("How old was she?", "She retired on May 6 aged 61.", "61", True),
        # a number a noun follows counts it, whatever its size
        ("How many guests came?", "By 1900 2000 guests came.", "1900", False),
        ("How many guests came?", "By 1900 2000 guests came.", "2000", True),
        # a date is what these ask for
        ("When did he win?", "In 2004, Jennings won 74 games.", "2004", True),
        ("What did he win in 2004?", "In 2004, Jennings won 74 games.", "2004", True),
    ],
)
def test_fits_question_drops_dates_for_who_and_years_for_how_many(question, text, span, fits):
    start = text.index(span)
    assert fits_question(question, text, start, start + len(span)) is fits


def completed_span(question: str, text: str, span: str) -> str:
    """``span`` (its first place in ``text``) as :func:`complete_span` completes it."""
    start = text.index(span)
    found = complete_span(question, text, start, start + len(span))
    return text[found[0] : found[1]]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("question", "text", "span", "completed"),
    [
        (
            "How many people live there?",
            "It has 3.7 million inhabitants.",
            "million",
            "3.7 million",
        ),
        ("How many did he win?", "Jennings won 74 games.", "games", "74 games"),
        ("How many games did he win?", "Jennings won 74 games.", "games", "74"),
        (
            "How old are the fossils?",
            "The fossils are 515 million years old.",
            "515",
            "515 million",
        ),
        ("How much did it grow?", "It grew by 40 percent in May.", "40", "40 percent"),
        (
            "When did the test occur?",
            "It occurred on January 27, 1967, at noon.",
            "January 27",
            "January 27, 1967",
        ),
        ("When did it close?", "It closed in February 2010.", "February", "February 2010"),
        (
            "How old is Kirk Douglas?",
            "Kirk Douglas (born Issur Danielovitch; December 9, 1916) is an actor.",
            "9, 1916",
            "December 9, 1916",
        ),
        (
            "When was he born?",
            "He was born on 9 December 1916 in Amsterdam.",
            "December",
            "9 December 1916",
        ),
        # other questions and spans stay as they are
        ("Who won?", "Jennings won 74 games.", "games", "games"),
        ("When did it close?", "It closed in 2010, and reopened.", "2010", "2010"),
        ("How many were there?", "In total 40 of them stayed.", "40", "40"),
        ("When did it open?", "On day 12 May was busy.", "12", "12"),  # a day, not after a month
        ("In which year did it close?", "It closed on 25 February 2010.", "2010", "2010"),
        (
            "When is the day?",
            "It is celebrated on 19th November every year.",
            "November",
            "19th November",
        ),
        (
            "What year did Martin Luther King die?",
            "Martin Luther King, Jr. (January 15, 1929 – April 4, 1968) was a clergyman.",
            "January 15, 1929",
            "April 4, 1968",
        ),
        ("When did the war end?", "The war (1939-1945) changed Europe.", "1939", "1945"),
        (
            "When was he born?",
            "He (January 15, 1929 – April 4, 1968) was a clergyman.",
            "January 15, 1929",
            "January 15, 1929",
        ),
    ],
)
def test_complete_span_takes_the_whole_number_or_date(question, text, span, completed):
    assert completed_span(question, text, span) == completed


@pytest.mark.unit
@pytest.mark.parametrize(
    ("question", "text", "span", "completed"),
    [
        # a name is taken whole, over the capitalized words beside the span
        (
            "What storm hit?",
            "In May, Tropical Storm Beryl hit the city.",
            "Beryl",
            "Tropical Storm Beryl",
        ),
        ("What river?", "A bridge crossed the River Tyne then.", "Tyne", "River Tyne"),
        (
            "Which railway?",
            "It is the Tyne and Wear Metro system.",
            "Tyne and Wear",
            "Tyne and Wear Metro",
        ),
        (
            "Who leads it?",
            "It is led by Rev. Paul T. Stallsworth now.",
            "Stallsworth",
            "Paul T. Stallsworth",
        ),
        # ... but not over a title, a stop word, a sentence end or punctuation
        (
            "Who went?",
            "Costa Rican President José María Figueres went.",
            "José María Figueres",
            "José María Figueres",
        ),
        ("Who spoke?", "In 2013 Kenyatta spoke.", "Kenyatta", "Kenyatta"),
        ("Who spoke?", "President Kenyatta spoke.", "Kenyatta", "Kenyatta"),
        (
            "What goal?",
            "It was Satyagraha. Gandhi's Satyagraha won.",
            "Gandhi's Satyagraha",
            "Gandhi's Satyagraha",
        ),
        ("Who won?", "Jennings, Rutter and Holzhauer played.", "Jennings", "Jennings"),
        ("Who won?", "The winner was smith today.", "smith", "smith"),
        # a question that asks for several: the list of names the span opens
        (
            "Who were two of his advisers?",
            "Liu Bingzhong and Yao Shu advised him.",
            "Liu Bingzhong",
            "Liu Bingzhong and Yao Shu",
        ),
        (
            "What are some large pharmacy companies?",
            "They are Omnicare, Kindred Healthcare and PharMerica.",
            "Omnicare",
            "Omnicare, Kindred Healthcare and PharMerica",
        ),
        ("Who were the founders?", "Smith and the others founded it.", "Smith", "Smith"),
        # numbers and dates keep their own rules
        ("When did it close?", "It closed in February 2010.", "2010", "2010"),
    ],
)
def test_complete_span_takes_a_whole_name(question, text, span, completed):
    assert completed_span(question, text, span) == completed


@pytest.mark.unit
@pytest.mark.parametrize(
    ("question", "text", "span", "completed"),
    [
        (
            "Approximately how many works?",
            "It holds more than 70,000 works.",
            "70,000",
            "more than 70,000",
        ),
        ("What percent of girls?", "It is up to 30% of girls.", "30%", "up to 30%"),
        ("How many voted?", "In 2010 over 40 percent voted.", "40", "over 40 percent"),
        ("How far is it?", "It is about 340 miles away.", "340 miles", "340 miles"),  # rounded
        ("How many live there?", "It has fewer than 500 people.", "500", "fewer than 500"),
        ("How many points?", "They won 24–10 at home.", "24", "24"),  # a score is no range
        ("How many were there?", "More of them came: 40 stayed.", "40", "40"),
    ],
)
def test_complete_span_keeps_the_words_that_bound_a_number(question, text, span, completed):
    assert completed_span(question, text, span) == completed


@pytest.mark.unit
@pytest.mark.parametrize(
    ("question", "text", "span", "completed"),
    [
        # a last word that only repeats the question goes, with its preposition
        (
            "What types of extraction do stratigraphers look for?",
            "They look for hydrocarbon extraction.",
            "hydrocarbon extraction",
            "hydrocarbon",
        ),
        (
            "What was the population of Jacksonville as of 2010?",
            "The population was 1,345,596 in 2010.",
            "1,345,596 in 2010",
            "1,345,596",
        ),
        # ... but not a name's word, a possessive's noun, nor an object after an article
        ("Which river flows there?", "The Tyne River flows there.", "Tyne River", "Tyne River"),
        (
            "Which conjecture holds?",
            "Polignac's conjecture holds.",
            "Polignac's conjecture",
            "Polignac's conjecture",
        ),
        (
            "Who pleaded before the court?",
            "Gandhi pleaded guilty and told the court.",
            "Gandhi pleaded guilty and told the court",
            "Gandhi pleaded guilty and told the court",
        ),
        # ... nor a span of question words alone
        ("What extraction?", "They used extraction.", "extraction", "extraction"),
    ],
)
def test_complete_span_drops_a_last_word_that_repeats_the_question(question, text, span, completed):
    assert completed_span(question, text, span) == completed


@pytest.mark.unit
def test_complete_span_looks_back_a_bounded_stretch_on_hostile_text():
    # 200,000 digits before the span: a search back to the text's start took minutes
    assert completed_span("How many?", "1" * 200_000 + " over 5", "5") == "over 5"
    # a "name" of 50,000 capitalized words grows by at most NAME_WORDS on each side
    text = "Xy " * 50_000 + "Bob Xy" + " Xy" * 50_000
    assert completed_span("Who?", text, "Bob") == " ".join(["Xy"] * 6 + ["Bob"] + ["Xy"] * 6)
