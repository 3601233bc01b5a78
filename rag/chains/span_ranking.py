"""Ranked extractive answers: every short span of the question's sentences, scored as a whole.

A SQuAD-style answer is a short phrase of the sentence that shares most (rare) words with the
question, near those words, of the type the question asks for. This module lists those phrases
(:func:`candidate_spans`), scores each with a linear model over a few features of its text and
place (:func:`rank_spans`, weights :data:`SPAN_WEIGHTS`), and combines the best
``span_candidates`` with the log-probabilities a language model gives each of them as the
answer (:func:`choose_span`, weights :data:`MODEL_WEIGHTS`): the model decides among spans the
features find plausible, token by token, but can only ever pick a span of a context.

The weights were fitted by softmax regression over candidates (the target: the candidates with the
best token F1 against the gold answers) on XQuAD English questions in ``../shared/data`` outside
``benchmarks/answer_quality.py``'s seed-0 sample of 100, over the contexts that benchmark
retrieves (``examples/qa.yaml``'s hybrid retrieval, k=4); ``benchmarks/fit_span_ranker.py`` refits
and prints them (``--out FILE`` writes both tables with their provenance to a file that
``ExtractiveStyle(span_weights=FILE)`` reads, :func:`read_weights`). Features that look at the
question words around a span (``window_question_words``, ``left_/right_question_word``) raised
the ranking alone from 0.363 to 0.377 token F1 in a 5-fold cross-validation over those 503
questions.

Example:
    >>> spans = candidate_spans("Who founded Acme?", ["It rained. Acme was founded by Jane Roe."])
    >>> rank_spans(spans)[0].text
    'Jane Roe'
"""

from __future__ import annotations

import collections
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError
from rag.core.generation import SpanLogprobs
from rag.core.text import (
    KINDS,
    MONTHS,
    START_STOPWORDS,
    STOPWORDS,
    TITLES,
    WORD,
    abbreviation_period,
    content_stems,
    question_kind,
    sentences,
    stem,
)
from rag.core.text import fits_kind as _fits

# Words (with inner hyphens, apostrophes, decimal points, thousands separators and a trailing
# %), "$", or one punctuation character.
_TOKEN = re.compile(r"\w+(?:[-'.,]\w+)*%?|\$|[^\w\s]")
_WORD = re.compile(r"\w+")
_SPAN_BREAKS = frozenset('.;:()"')
_STOP_STEMS = frozenset(stem(w) for w in START_STOPWORDS)
__all__ = ["KINDS", "question_kind"]  # re-exported from rag.core.text


@dataclass
class SpanCandidate:
    """A span of one context that may answer the question, with its features and score.

    Attributes:
        context: Position of the context in the list given (0-based).
        start: Character offset of the span in that context's text.
        end: Character offset just past the span.
        text: ``contexts[context][start:end]``.
        features: Feature name -> value (see :func:`candidate_spans`).
        score: The ranking score (:func:`rank_spans`, then :func:`choose_span`).
    """

    context: int
    start: int
    end: int
    text: str
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0


@dataclass(frozen=True)
class RankedSentence:
    """A sentence of a context (character offsets) and its overlap score with the question."""

    score: float
    context: int
    start: int
    end: int


question_stems = content_stems
"""The stems of a question's content words: :func:`rag.core.text.content_stems`."""


def rank_sentences(question: str, contexts: Sequence[str]) -> list[RankedSentence]:
    """The sentences of ``contexts`` by the summed idf (over these sentences) of the question's
    content-word stems they contain; ties keep context order. A sentence with no content word
    besides the question's (a heading such as "# BM25") scores 0: it cannot hold the answer."""
    stems = question_stems(question)
    found = []
    for number, text in enumerate(contexts):
        for start, end in sentences(text):
            words = {stem(w) for w in _WORD.findall(text[start:end])}
            found.append((number, start, end, words))
    frequency = collections.Counter(w for *_, words in found for w in words)
    total = len(found)
    ranked = [
        RankedSentence(
            sum(math.log(1 + total / frequency[w]) for w in words & stems)
            if words - stems - _STOP_STEMS
            else 0.0,
            number,
            start,
            end,
        )
        for number, start, end, words in found
    ]
    return sorted(ranked, key=lambda s: (-s.score, s.context))


def candidate_spans(
    question: str, contexts: Sequence[str], *, sentences: int = 2, max_words: int = 8
) -> list[SpanCandidate]:
    """Every span of up to ``max_words`` words in the ``sentences`` best sentences (see
    :func:`rank_sentences`) that neither starts nor ends with a stop word or punctuation and
    does not cross ``. ; : ( ) "``, with its features. Empty when no sentence shares a content
    word with the question (the contexts do not seem to answer it).

    Features: the sentence's score relative to the best (``sentence``), its rank and context
    position, the span's length in words, how many of its words are question words, the distance
    in words to the nearest question word in the sentence and on which side, the share of question
    words among the :data:`WINDOW_WORDS` words on each side (``window_question_words``), whether
    the nearest content word on its left / right is a question word (``left_question_word``,
    ``right_question_word``: "partnered with *Robert Lane*" for "Who did Tesla partner with?"),
    whether the words around it are boundaries (stop words, punctuation, question words), whether
    it cuts a run of capitalised words, commas, "and"/"or", capitals, digits,
    ``-ed``/``-ing``/``-ly`` endings, and per answer kind (:func:`question_kind`) whether its
    first or any word fits the kind.

    Example:
        >>> spans = candidate_spans("Who won the cup?", ["It rained. Acme won the cup in 1990."])
        >>> [s.text for s in spans][:4]
        ['Acme', 'Acme won', 'Acme won the cup', 'Acme won the cup in 1990']
    """
    kind = question_kind(question)
    stems = question_stems(question)
    ranked = rank_sentences(question, contexts)
    if not ranked or ranked[0].score <= 0:
        return []
    best = ranked[0].score
    spans: list[SpanCandidate] = []
    for rank, sentence in enumerate(ranked[:sentences]):
        text = contexts[sentence.context]
        words = _words(text, sentence.start, sentence.end)
        asked = [stem(w.rstrip(".")) in stems for w, _, _ in words]
        anchors = [i for i, flag in enumerate(asked) if flag]
        # Words a phrase stops at: stop words, punctuation, question words.
        edges = [
            w.lower() in START_STOPWORDS or not _content(w) or flag
            for (w, _, _), flag in zip(words, asked, strict=True)
        ]
        count = len(words)
        for i in range(count):
            for j in range(i, min(count, i + max_words)):
                span = words[i : j + 1]
                first, last = span[0][0], span[-1][0]
                if first.lower() in START_STOPWORDS or last.lower() in START_STOPWORDS:
                    continue
                if not _content(first) or not last[0].isalnum():
                    continue
                if any(w in _SPAN_BREAKS for w, _, _ in span):
                    continue
                features = _features(words, asked, anchors, edges, i, j, kind)
                features["sentence"] = sentence.score / best
                features["second_sentence"] = float(rank == 1)
                features["context"] = float(sentence.context)
                start, end = span[0][1], span[-1][2]
                spans.append(SpanCandidate(sentence.context, start, end, text[start:end], features))
    return spans


_HOW_MANY = re.compile(r"\s*how (many|much|old)\b")
_YEAR_NUMBER = re.compile(r"\b(?:1\d{3}|20\d{2})\b")
_COUNTED_NOUN = re.compile(r" ([a-z]+)\b")


def fits_question(question: str, text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` can answer ``question`` at all: a who / where span holds no
    number and no month (it names no date), and a "how many / much / old" span is no year and no
    day of a date ("In 2004, he won 74 games": "74", not "2004"). Other spans all can. Both
    answer styles drop the spans that cannot (the span ranker's features score the answer
    kind, but may still put a date first for "Who led the army in 1756?").

    Example:
        >>> text = "In May 1756 Montcalm led the army."
        >>> fits_question("Who led the army?", text, 3, 11), fits_question("Who?", text, 12, 20)
        (False, True)
        >>> text = "In 2004, Jennings won 74 games."
        >>> fits_question("How many games?", text, 3, 7), fits_question("How many?", text, 22, 24)
        (False, True)
    """
    kind = question_kind(question)
    words = [w.lower() for w in WORD.findall(text[start:end])]
    if kind in ("name", "where"):
        return not any(w[0].isdigit() or w in MONTHS for w in words)
    if kind == "number" and _HOW_MANY.match(question.lower()):
        if any(w in MONTHS for w in words) or _year_in(text, start, end):
            return False
        before = [w.lower() for w in WORD.findall(text, max(0, start - LOOK_BACK), start)[-1:]]
        return not (len(words) == 1 and words[0].isdigit() and before and before[0] in MONTHS)
    return True


def _year_in(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` holds a year: a number 1000-2099 that no lower-case noun
    follows ("In 2004, he won", "by 1900 the city", but not "2000 guests attended")."""
    for found in _YEAR_NUMBER.finditer(text, start, end):
        counted = _COUNTED_NOUN.match(text, found.end())
        if counted is None or counted.group(1) in STOPWORDS:
            return True
    return False


_SCALE = r"(?:hundred|thousand|million|billion|trillion|percent|per cent)\b"
LOOK_BACK = 64
"""Characters before a span that its completion looks at: a number, a word or a name before
it is found there in the same time on any text (a search back to the text's start took
minutes on a run of 200,000 digits)."""
_NUMBER_BEFORE = re.compile(r"(?:\$\s?)?(?<![\d.,])\d[\d.,]*\s+$")
_WORD_BEFORE = re.compile(r"\b(\w+)\s+$")
_BOUND = r"\b(?:(?:more|less|fewer) than|up to|at (?:least|most)|over|under)"
"""Words that bound the number after them and so change what it says ("more than 70,000");
not those that only round it ("about 340 miles" answers with "340 miles")."""


def complete_span(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` of ``text[start:end]`` with the rest of the number, date or name it is
    part of: for a number question the number right before it ("3.7 million" when the span is
    "million", "74 games"), a scale word after its digits ("515 million", "40 percent"), the
    words that bound it ("more than 70,000", "up to 30%");
    for a date question the year after a month or a day ("March 30, 1970", "January 1967");
    for both, unless the question asks for a year, the month before a day and the day before a
    month ("December 9, 1916" when the span is "9, 1916", "9 December 1916"); for a question
    about an end (:data:`ENDING`: die, death, ended, closed ...), the date after a dash that ends
    the span's range ("1968" for "1929 – 1968"); for any other question the whole name a span
    starts or ends in ("Tropical Storm Beryl" for "Beryl", not the title before it:
    "President Ma Ying-jeou" gives "Ma Ying-jeou") and, when the question asks for several
    (:data:`ASKS_SEVERAL`), the names listed after it ("Liu Bingzhong and Yao Shu"). For every
    question, a last word that only repeats the question goes ("74" for "How many games did he
    win?", not "74 games"; :func:`_without_question_tail`): on 200 XQuAD fitting questions this
    lifted extractive F1 from 0.454 to 0.460. Both answer styles complete the span they answer
    with.

    Example:
        >>> text = "Berlin has 3.7 million inhabitants; it was founded on March 30, 1237."
        >>> start, end = complete_span("How many people live there?", text, 15, 22)
        >>> text[start:end]
        '3.7 million'
        >>> start, end = complete_span("When was it founded?", text, 54, 62)
        >>> text[start:end]
        'March 30, 1237'
        >>> text = "Who were two of his advisers? Liu Bingzhong and Yao Shu were."
        >>> start, end = complete_span(text[:29], text, 30, 43)
        >>> text[start:end]
        'Liu Bingzhong and Yao Shu'
    """
    kind = question_kind(question)
    if kind == "number":
        before = _NUMBER_BEFORE.search(text, max(0, start - LOOK_BACK), start)
        if before is not None:
            start = before.start()
        after = re.match(r"\s+" + _SCALE, text[end:].lower())
        if after is not None and text[end - 1].isdigit():
            end += after.end()
        if text[start:end][:1].isdigit() or text[start:end][:1] == "$":
            head = text[max(0, start - 20) : start]
            bound = re.search(_BOUND + r"\s+$", head, re.IGNORECASE)
            if bound is not None:  # "more than 70,000", "up to 30%": the number as stated
                start -= len(head) - bound.start()
    if kind == "date":
        words = WORD.findall(text[start:end])
        last = words[-1].lower() if words else ""
        year = re.match(r",?\s+\d{3,4}\b", text[end:])
        if year is not None and (last in MONTHS or _is_day(last)):
            end += year.end()
    asks_year = re.search(r"\byears?\b", question, re.IGNORECASE) is not None
    if kind == "date" and ENDING.search(question):
        # "When did she die?" over "(August 13, 1818 – October 19, 1893)": the range's end
        then = re.match(r"\s*[–—−-]\s*([^()\[\];]*?\d{3,4})(?=\s*[)\];,.]|\s*$)", text[end:])
        if then is not None:
            start, end = end + then.start(1), end + then.end(1)
    if kind in ("date", "number") and not asks_year:  # "In which year ...?": not its day
        words = WORD.findall(text[start:end])
        first = words[0].lower() if words else ""
        before = _WORD_BEFORE.search(text, max(0, start - LOOK_BACK), start)
        previous = before.group(1).lower() if before is not None else ""
        if (_is_day(first) and previous in MONTHS) or (first in MONTHS and _is_day(previous)):
            start = before.start(1)  # type: ignore[union-attr]
    if kind not in ("date", "number"):
        start, end = _whole_name(text, start, end)
        if ASKS_SEVERAL.search(question):
            end = _with_listed_names(text, start, end)
    return start, _without_question_tail(question, text, start, end)


_LAST_TWO_WORDS = re.compile(r"(\S+)\s+(\S+)\s*$")
TAIL_PREPOSITIONS = frozenset({"in", "of", "at", "on", "for", "by", "during", "from", "since"})
"""A preposition that goes with a question word it ends on: "1,345,596 in 2010"."""


def _without_question_tail(question: str, text: str, start: int, end: int) -> int:
    """The end of ``text[start:end]`` without a last word that only repeats the question: a noun
    it names ("hydrocarbon extraction" for "what types of extraction?" is "hydrocarbon") or a
    phrase of it ("1,345,596 in 2010" for "the population as of 2010"). A capitalized word, a
    possessive's noun ("Polignac's conjecture") and a word after any other stop word ("told the
    court") stay: they are part of a name or of what the span says."""
    last_two = _LAST_TWO_WORDS.search(text, max(start, end - LOOK_BACK), end)
    if last_two is None or last_two.start() < start:
        return end
    previous, last = last_two.group(1), last_two.group(2).rstrip(".,;:!?")
    if last[:1].isupper() or stem(last.lower()) not in question_stems(question):
        return end
    bare = previous.lower().strip("\"'()[],")
    if bare in TAIL_PREPOSITIONS:
        cut = last_two.start(1)  # "in 2010": the phrase goes
    elif not bare or bare in STOPWORDS or bare.endswith(("'s", "’s")) or not _content(bare):
        return end  # "told the court", "Polignac's conjecture", "— court": it stays
    else:
        cut = last_two.end(1)  # "hydrocarbon extraction": the repeated noun goes
    while cut > start and text[cut - 1] in " \t,":  # not text[:cut].rstrip(): no copy
        cut -= 1
    return cut if content_stems(text[start:cut]) or re.search(r"\d", text[start:cut]) else end


ASKS_SEVERAL = re.compile(
    r"\b(?:two|three|four|five|six|both|several|some|who were|what were|what are)\b",
    re.IGNORECASE,
)
"""A question that asks for more than one thing ("Who were two of his advisers?")."""


def _with_listed_names(text: str, start: int, end: int) -> int:
    """The end of the list of names (up to :data:`NAME_WORDS` more) a name span opens ("Liu
    Bingzhong and Yao Shu")."""
    if not _ENDS_IN_NAME.search(text[start:end]):
        return end
    for _ in range(NAME_WORDS):
        more = _LISTED_NAME.match(text, end)
        if more is None or more.group(1).split()[0].lower() in STOPWORDS:
            break
        end = more.end(1)
    return end


_NAME_CHARS = r"[\w'’&-]"
_NAME_WORD = rf"[A-Z](?:\.|{_NAME_CHARS}*)"
"""A capitalized word, or an initial ("T.")."""
_NAME_BEFORE = re.compile(
    rf"(?<!{_NAME_CHARS})(?<!\.)([A-Z](?:\.|{_NAME_CHARS}{{0,40}}))[ \t]{{1,3}}$"
)
"""The capitalized word that ends a text, before one to three spaces (bounded, so that looking
back costs the same on any text)."""


def _whole_name(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` grown over the capitalized words next to a span that starts or ends in
    one (up to :data:`NAME_WORDS` on each side), so a name is whole ("Tropical Storm Beryl" for
    "Beryl", "Tyne and Wear Metro" for "Tyne and Wear"); a stop word ("In", "The"), a title
    before it ("President") or punctuation ends the name."""
    span = text[start:end]
    if re.match(_NAME_WORD, span):
        for _ in range(NAME_WORDS):
            before = _NAME_BEFORE.search(text, max(0, start - LOOK_BACK), start)
            if before is None:
                break
            word = before.group(1).lower()
            if word in STOPWORDS or word in TITLES or _opens_sentence(text, before.start(1)):
                break  # a stop word, a title, or a capital that may only open the sentence
            start = before.start(1)
    if _ENDS_IN_NAME.search(span):
        for _ in range(NAME_WORDS):
            after = _NAME_AFTER.match(text, end)
            if after is None or after.group(1).lower() in STOPWORDS:
                break
            end = after.end(1)
    return start, end


NAME_WORDS = 6
"""The most capitalized words a name grows by on each side of its span."""
_NAME_AFTER = re.compile(rf"[ \t]{{1,3}}({_NAME_WORD})")
_LISTED_NAME = re.compile(
    rf"(?:,[ \t]+(?:and[ \t]+)?|[ \t]+and[ \t]+)({_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,5}})"
)
_ENDS_IN_NAME = re.compile(rf"(?:^|\s){_NAME_WORD}$")


def _opens_sentence(text: str, index: int) -> bool:
    """Whether the word at ``index`` is the first of its sentence (of ``text``): it opens the
    text or follows a sentence end, not the period of an initial or a short form ("Rev. Paul")."""
    if not text[:index].strip():
        return True
    end = _SENTENCE_END_BEFORE.search(text, max(0, index - 12), index)
    return end is not None and (end.group(1) != "." or not abbreviation_period(text, end.start(1)))


_SENTENCE_END_BEFORE = re.compile(r"([.!?])[\"'’”)\]]{0,3}\s{1,3}$")


ENDING = re.compile(
    r"\b(?:die[sd]?|death|dead|killed|assassinated|executed|end(?:ed|s)?|closed|dissolved|"
    r"abolished|retired)\b",
    re.IGNORECASE,
)
"""A question about an end: a date range's second date answers it."""


def _is_day(word: str) -> bool:
    """A day of a month: "9", "19th", "1st"."""
    digits = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?", word)
    return digits is not None and 1 <= int(digits.group(1)) <= 31


WINDOW_WORDS = 5
"""Words on each side of a span whose question words ``window_question_words`` counts."""
NEIGHBOUR_WORDS = 3
"""How far (in words) ``left_/right_question_word`` look for the nearest content word."""


def _neighbour_asked(words: list[tuple[str, int, int]], asked: list[bool], order: range) -> bool:
    """Whether the first content word (not a stop word or punctuation) along ``order`` is a
    question word."""
    for n in order:
        word = words[n][0]
        if word.lower() not in START_STOPWORDS and _content(word):
            return asked[n]
    return False


def _words(text: str, start: int, end: int) -> list[tuple[str, int, int]]:
    """The tokens of ``text[start:end]`` with their offsets; the period of an initial or a short
    form stays with its word ("John G. Roberts", "H.S."), so a span does not stop inside a name."""
    words: list[tuple[str, int, int]] = []
    for m in _TOKEN.finditer(text, start, end):
        word, begin, stop = m.group(0), m.start(), m.end()
        if word == "." and words and words[-1][2] == begin and abbreviation_period(text, begin):
            previous, first, _ = words.pop()
            word, begin = previous + word, first
        words.append((word, begin, stop))
    return words


def _content(word: str) -> bool:
    return word[0].isalnum() or word == "$"


def _features(
    words: list[tuple[str, int, int]],
    asked: list[bool],
    anchors: list[int],
    edges: list[bool],
    i: int,
    j: int,
    kind: str,
) -> dict[str, float]:
    """The features of the span of ``words[i..j]`` (see :func:`candidate_spans`), but those of
    its sentence."""
    span = [w for w, _, _ in words[i : j + 1]]
    first, last = span[0], span[-1]
    length = j - i + 1
    inside = sum(asked[i : j + 1])
    if anchors:
        distance = min(min(abs(a - i), abs(a - j)) for a in anchors)
        before, after = any(a < i for a in anchors), any(a > j for a in anchors)
    else:
        distance, before, after = 10, False, False
    capitals = [w[0].isupper() for w in span if w[0].isalpha()]
    near = asked[max(0, i - WINDOW_WORDS) : i] + asked[j + 1 : j + 1 + WINDOW_WORDS]
    left = range(i - 1, max(-1, i - 1 - NEIGHBOUR_WORDS), -1)
    right = range(j + 1, min(len(words), j + 1 + NEIGHBOUR_WORDS))

    def capital_run(n: int, word: str) -> bool:  # the span cuts a run of capitalised words
        inside = 0 <= n < len(words)
        return inside and words[n][0][0].isupper() and word[0].isupper() and not asked[n]

    verb_like = first.lower().endswith(("ed", "ing")) or last.lower().endswith(("ed", "ing"))
    f = {
        "words_1": float(length == 1),
        "words_2": float(length == 2),
        "words_3": float(length == 3),
        "words_4+": float(length >= 4),
        "log_words": math.log(length),
        "question_words": float(inside),
        "only_question_words": float(inside == length),
        "log_distance": math.log1p(distance),
        "no_anchor": float(not anchors),
        "after_question_word": float(before),
        "before_question_word": float(after),
        "left_boundary": float(i == 0 or edges[i - 1]),
        "right_boundary": float(j + 1 >= len(words) or edges[j + 1]),
        "comma": float("," in span),
        "and_or": float(any(w.lower() in ("and", "or") for w in span)),
        "all_capitals": float(bool(capitals) and all(capitals)),
        "any_capital": float(any(capitals)),
        "cuts_name": float(capital_run(i - 1, first) or capital_run(j + 1, last)),
        "digit": float(any(c.isdigit() for w in span for c in w)),
        "ed_ing": float(verb_like),
        "ly": float(last.lower().endswith("ly")),
        "window_question_words": sum(near) / (2 * WINDOW_WORDS),
        "left_question_word": float(_neighbour_asked(words, asked, left)),
        "right_question_word": float(_neighbour_asked(words, asked, right)),
    }
    for name in KINDS[:-1]:
        asks = kind == name
        f[f"{name}:first_fits"] = float(asks and _fits(first, name))
        f[f"{name}:any_fits"] = float(asks and any(_fits(w, name) for w in span))
        f[f"{name}:one_word"] = float(asks and length == 1)
        f[f"{name}:log_words"] = float(asks) * math.log(length)
    for name in ("name", "where", "what"):
        f[f"{name}:all_capitals"] = float(kind == name and f["all_capitals"] > 0)
    return f


def rank_spans(
    spans: Sequence[SpanCandidate], weights: Mapping[str, float] | None = None
) -> list[SpanCandidate]:
    """``spans`` scored by ``weights`` (default :data:`SPAN_WEIGHTS`), best first (stable).

    Example:
        >>> spans = candidate_spans("When did it open?", ["The museum opened in 1901 in Paris."])
        >>> rank_spans(spans)[0].text
        '1901'
    """
    weights = SPAN_WEIGHTS if weights is None else weights
    for span in spans:
        span.score = sum(weights.get(name, 0.0) * value for name, value in span.features.items())
    return sorted(spans, key=lambda s: -s.score)


MODEL_FEATURES = ("rank_score", "first", "total", "mean", "end", "tokens")


def choose_span(
    spans: Sequence[SpanCandidate],
    logprobs: Sequence[SpanLogprobs],
    weights: Mapping[str, float] | None = None,
) -> tuple[SpanCandidate, SpanLogprobs]:
    """The span with the best weighted sum of its ranking score and its model log-probabilities
    (``weights``: default :data:`MODEL_WEIGHTS`; keys :data:`MODEL_FEATURES`), and those
    log-probabilities.

    Raises:
        ValueError: no spans, or not one log-probability per span.

    Example:
        >>> spans = [SpanCandidate(0, 0, 4, "Acme", score=1.0), SpanCandidate(0, 5, 8, "Roe")]
        >>> logprobs = [SpanLogprobs(-9.0, -9.0, -1.0, 1), SpanLogprobs(-0.5, -0.5, -1.0, 1)]
        >>> choose_span(spans, logprobs, {"rank_score": 1.0, "total": 1.0})[0].text
        'Roe'
    """
    if not spans or len(spans) != len(logprobs):
        raise ValueError(f"need one SpanLogprobs per span, got {len(logprobs)} for {len(spans)}")
    weights = MODEL_WEIGHTS if weights is None else weights

    def total(pair: tuple[SpanCandidate, SpanLogprobs]) -> float:
        values = model_features(*pair)
        return sum(weights.get(name, 0.0) * values[name] for name in MODEL_FEATURES)

    return max(zip(spans, logprobs, strict=True), key=total)


def model_features(span: SpanCandidate, lp: SpanLogprobs) -> dict[str, float]:
    """The values :data:`MODEL_WEIGHTS` weigh for ``span`` and its log-probabilities."""
    return {
        "rank_score": span.score,
        "first": lp.first,
        "total": lp.total,
        "mean": lp.total / max(1, lp.tokens),
        "end": lp.end,
        "tokens": float(lp.tokens),
    }


SPAN_WEIGHTS: dict[str, float] = {
    "after_question_word": -0.255,
    "all_capitals": 0.411,
    "and_or": 1.261,
    "any_capital": 0.262,
    "before_question_word": -0.601,
    "comma": -1.339,
    "context": -1.004,
    "cuts_name": -0.857,
    "date:any_fits": 2.34,
    "date:first_fits": 1.506,
    "date:log_words": -0.615,
    "date:one_word": 0.76,
    "ed_ing": -0.823,
    "left_boundary": 0.513,
    "left_question_word": 0.033,
    "log_distance": -0.743,
    "log_words": -0.503,
    "ly": -1.267,
    "name:all_capitals": 1.315,
    "name:any_fits": 0.226,
    "name:first_fits": 1.715,
    "name:log_words": -0.072,
    "name:one_word": -0.579,
    "no_anchor": -0.209,
    "number:any_fits": 2.175,
    "number:first_fits": 1.215,
    "number:log_words": -0.617,
    "number:one_word": 1.409,
    "only_question_words": -2.261,
    "question_words": -1.364,
    "right_boundary": 1.332,
    "right_question_word": -0.515,
    "second_sentence": -0.296,
    "sentence": 3.034,
    "what:all_capitals": 0.867,
    "where:all_capitals": 0.584,
    "where:any_fits": 0.643,
    "where:first_fits": 0.256,
    "where:log_words": -0.163,
    "where:one_word": 0.71,
    "window_question_words": 2.76,
    "words_1": -0.718,
    "words_2": 0.395,
    "words_3": 0.467,
    "words_4+": -0.046,
}
"""Weights of :func:`rank_spans` (see the module docstring for how they were fitted)."""

MODEL_WEIGHTS: dict[str, float] = {
    "rank_score": 1.0,
    "first": -0.068,
    "total": 0.115,
    "mean": 0.088,
    "end": 0.22,
    "tokens": 0.065,
}
"""Weights of :func:`choose_span` (see the module docstring for how they were fitted)."""


@dataclass(frozen=True)
class RankingWeights:
    """The two weight tables of ranked extractive answers and where they come from.

    Attributes:
        spans: The weights of :func:`rank_spans` (feature name -> weight).
        model: The weights of :func:`choose_span` (keys :data:`MODEL_FEATURES`).
        provenance: How they were fitted (dataset, questions, model, script, date, commit).

    Example:
        >>> BUILT_IN.spans is SPAN_WEIGHTS, BUILT_IN.model is MODEL_WEIGHTS
        (True, True)
    """

    spans: Mapping[str, float]
    model: Mapping[str, float]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The file :func:`read_weights` reads."""
        data = {"provenance": dict(self.provenance), "spans": dict(self.spans)}
        return json.dumps({**data, "model": dict(self.model)}, indent=1, sort_keys=True) + "\n"


BUILT_IN = RankingWeights(SPAN_WEIGHTS, MODEL_WEIGHTS, {"script": "benchmarks/fit_span_ranker.py"})
"""The weights shipped in this module (:data:`SPAN_WEIGHTS`, :data:`MODEL_WEIGHTS`)."""


@functools.lru_cache(maxsize=8)
def read_weights(path: str) -> RankingWeights:
    """The weights in ``path``, a file written by ``benchmarks/fit_span_ranker.py --out``.

    Raises:
        ConfigError: (field ``span_weights``) the file cannot be read, is not JSON, or lacks a
            table or has a weight that is not a number; the message names the file and the fix.
    """
    fix = "refit it with benchmarks/fit_span_ranker.py --out, or leave span_weights unset"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"cannot read span weights from {path}: {err}; {fix}", field="span_weights"
        ) from None
    tables = []
    for key in ("spans", "model"):
        table = data.get(key) if isinstance(data, dict) else None
        if not isinstance(table, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in table.values()
        ):
            raise ConfigError(
                f"span weights file {path} has no table {key!r} of numbers; {fix}",
                field="span_weights",
            )
        tables.append({str(k): float(v) for k, v in table.items()})
    unknown = sorted(set(tables[1]) - set(MODEL_FEATURES))
    if unknown:
        raise ConfigError(
            f"span weights file {path} weighs unknown model features {unknown}; known: "
            f"{', '.join(MODEL_FEATURES)}; {fix}",
            field="span_weights",
        )
    provenance = data.get("provenance")
    return RankingWeights(tables[0], tables[1], provenance if isinstance(provenance, dict) else {})
