import doctest

import pytest

import rag.core.text
from rag.core.text import (
    KINDS,
    STOPWORDS,
    answer_type,
    content_stems,
    fits_kind,
    question_kind,
    sentences,
    stem,
    word_windows,
)

pytestmark = pytest.mark.unit


def parts(text: str) -> list[str]:
    return [text[a:b] for a, b in sentences(text)]


def test_the_examples_in_the_docstrings_hold():
    result = doctest.testmod(rag.core.text)
    assert result.attempted >= 10 and result.failed == 0


# -- sentences --------------------------------------------------------------------------------
def test_sentences_split_on_end_punctuation_before_a_capital_or_digit():
    text = "Dr. smith came. He left in 1990! 2001 was next? yes.\nNew line"
    assert parts(text) == ["Dr. smith came.", "He left in 1990!", "2001 was next? yes.", "New line"]


def test_a_windows_blank_line_ends_a_sentence():
    assert parts("# Top\r\n\r\nIntro text\r\n \r\nMore text.") == [
        "# Top",
        "Intro text",
        "More text.",
    ]


def test_a_title_does_not_end_a_sentence():
    text = "Dr. Smith went home. He slept! Did he dream? Yes. The end."
    assert parts(text) == ["Dr. Smith went home.", "He slept!", "Did he dream?", "Yes.", "The end."]


def test_initials_and_titles_do_not_end_a_sentence():
    text = "Dr. Herbert A. Simon won. He served in the U.S. Navy. St. Louis is No. 5 on it."
    assert parts(text) == [
        "Dr. Herbert A. Simon won.",
        "He served in the U.S. Navy.",
        "St. Louis is No. 5 on it.",
    ]


def test_a_camel_case_word_starts_a_sentence_and_a_lower_case_word_does_not():
    text = "It is slow. efSearch is the breadth. iOS runs on it. See e.g. iPhone. it stays."
    assert parts(text) == [
        "It is slow.",
        "efSearch is the breadth.",
        "iOS runs on it.",
        "See e.g. iPhone. it stays.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "See Fig. 3 for the graph.",
        "It was shown (Smith et al. 1998) first.",
        "Martin Luther King Jr. Day is in January.",
        "The shares of Acme Inc. (ticker ACME) rose.",
        'A song by "Sgt. Pepper" himself.',
        "He wrote it ca. 1660 in Boston.",
    ],
)
def test_short_forms_followed_by_a_name_or_number_end_nothing(text):
    assert parts(text) == [text]


def test_a_closing_quote_or_bracket_stays_with_its_sentence_and_ends_it():
    text = 'He said "We won." Then he left. (It was late.) Nobody saw it.'
    assert parts(text) == ['He said "We won."', "Then he left.", "(It was late.)", "Nobody saw it."]
    # after a closing quote even a short form ends the sentence
    assert parts('It was Acme Ltd." "That company grew.') == [
        'It was Acme Ltd."',
        '"That company grew.',
    ]


def test_hard_wrapped_lines_headings_and_list_items():
    text = "HNSW builds a graph\nof layers. It is fast.\n\n# Tuning\n- M: links\n1. ef: width"
    assert parts(text) == [
        "HNSW builds a graph\nof layers.",
        "It is fast.",
        "# Tuning",
        "- M: links",
        "1. ef: width",
    ]


def test_chinese_and_japanese_end_marks_need_no_space():
    assert parts("北京是首都。上海很大！你去过吗？") == ["北京是首都。", "上海很大！", "你去过吗？"]
    assert parts("「行こう。」と彼は言った。") == ["「行こう。」", "と彼は言った。"]


def test_ranges_are_offsets_into_the_text_and_skip_blank_ones():
    text = "  First one.   Second one.  \n\n\n  "
    assert sentences(text) == [(2, 12), (15, 26)]
    assert parts(text) == ["First one.", "Second one."]
    assert sentences("") == [] and sentences(" \n\n ") == []


def windows(text: str, max_words: int) -> list[str]:
    return [text[a:b] for a, b in word_windows(text, 0, len(text), max_words)]


def test_a_sentence_within_the_limit_is_one_window_as_given():
    assert word_windows("  one two three  ", 2, 15, 3) == [(2, 15)]
    assert word_windows("   ", 0, 3, 5) == []


def test_a_long_run_of_words_is_cut_at_a_clause_or_line_end_in_the_second_half():
    text = "alpha beta gamma, delta epsilon zeta eta theta"
    assert windows(text, 4) == ["alpha beta gamma,", "delta epsilon zeta eta", "theta"]
    text = "alpha beta gamma delta\nepsilon zeta eta theta iota"
    assert windows(text, 5) == ["alpha beta gamma delta", "epsilon zeta eta theta iota"]
    # a clause end in the window's first half is too early: the window is cut at its limit
    assert windows("alpha, beta gamma delta epsilon zeta", 5) == [
        "alpha, beta gamma delta epsilon",
        "zeta",
    ]


def test_windows_cover_every_word_once_and_respect_the_limit():
    text = " ".join(f"w{i}" + ("," if i % 7 == 0 else "") for i in range(503))
    found = word_windows(text, 0, len(text), 40)
    assert all(len(text[a:b].split()) <= 40 for a, b in found)
    assert " ".join(text[a:b] for a, b in found).split() == text.split()
    with pytest.raises(ValueError, match="max_words"):
        word_windows(text, 0, len(text), 0)


def test_a_long_text_splits_in_linear_time():
    # the look-back for a short form is bounded, so this takes a fraction of a second
    assert len(sentences("A. Smith left. " * 20_000)) == 20_000


# -- words ------------------------------------------------------------------------------------
def test_one_stop_word_list_of_126_lower_case_words():
    assert len(STOPWORDS) == 126 and all(w == w.lower() for w in STOPWORDS)
    assert {"the", "which", "yourselves"} <= STOPWORDS and "acme" not in STOPWORDS
    assert rag.core.text.START_STOPWORDS is STOPWORDS


@pytest.mark.parametrize(
    ("word", "expected"),
    [("Played", "play"), ("plays", "play"), ("playing", "play"), ("cities", "cit"),
     ("quickly", "quick"), ("is", "is"), ("bus", "bus"), ("Bowl", "bowl")],
)  # fmt: skip
def test_stem_takes_one_suffix_off_and_keeps_three_characters(word, expected):
    assert stem(word) == expected


def test_content_stems_leave_stop_words_out():
    assert content_stems("Who founded the Acme company?") == {"acme", "company", "found"}
    assert content_stems("Who is it?") == set()


# -- questions --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many people live in Springfield?", "number"),
        ("What percent of voters stayed home?", "number"),
        ("How often does it run?", "number"),
        ("How fast were the winds?", "number"),  # a measure, as "how tall" is
        ("How deep is the lake?", "number"),
        ("When was Acme founded?", "date"),
        ("In what year was it built?", "date"),
        ("In which year did it open?", "date"),
        ("Who founded Acme?", "name"),
        ("Which poet wrote The Masque of Anarchy?", "name"),
        ("What was the name of the ship?", "name"),
        ("Where was Acme founded?", "where"),
        ("Which country won?", "where"),
        ("What does Acme make?", "what"),
        ("Why is the sky blue?", "what"),
    ],
)
def test_question_kind(question, kind):
    assert question_kind(question) == kind and kind in KINDS


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many people live in Berlin?", "number"),
        ("When did the war end?", "date"),
        ("In what year was it built?", "date"),
        ("Who founded Acme?", "name"),
        ("Which poet wrote The Masque of Anarchy?", "name"),
        ("Where is Acme?", "name"),
        ("Why is the sky blue?", None),
    ],
)
def test_answer_type_of_a_question(question, kind):
    assert answer_type(question) == kind


@pytest.mark.parametrize(
    ("word", "kind", "fits"),
    [("42", "number", True), ("$", "number", True), ("dozen", "number", True),
     ("sixty", "number", True), ("Nineteen", "number", True), ("thousands", "number", True),
     ("Jane", "number", False), ("none", "number", False), ("1990s", "date", True),
     ("March", "date", True), ("12345", "date", False), ("Paris", "where", True), ("Jane", "name", True),
     ("jane", "name", False), ("Jane", "what", False), ("Jane", None, False), ("", "name", False)],
)  # fmt: skip
def test_fits_kind(word, kind, fits):
    assert fits_kind(word, kind) is fits
