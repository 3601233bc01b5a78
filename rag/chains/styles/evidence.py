"""``style.evidence``: the sentence of the retrieved contexts that answers the question, verbatim.

No text is generated. Every sentence of the contexts is scored by a logistic model over what the
pipeline already holds (:data:`FEATURES`): its embedding similarity to the question (the
retriever's embedding model, given as ``embedder: "@embedder"``), the share of the question's
rare words it contains (both also read with the sentence before it), how much of it is not the
question's words, its position in its context, its context's retrieval rank and its length,
some weighed by how much detail the question gives. The best sentence is the answer, copied
from its context with its offsets and cited: ``grounded`` is true (the line breaks of
hard-wrapped text read as spaces in ``Answer.text``; the offsets point at the source as it is).
For a short factoid question (who / when / where / how many / which) the short span of that
sentence that fits the question comes first (:mod:`rag.chains.span_ranking`), then the sentence:
``"1998 — The company was founded in 1998."``. For those questions and detailed ones, with an
embedder, a fitted cross-encoder (:mod:`rag.chains.styles.evidence_reranker`) first reorders the
best three sentences (``rerank_questions``). When no sentence's probability reaches
``min_score`` (or, without an embedder, when the best sentence shares no content word with the
question), or when the question has no content word at all ("What", "Who are you?"), the answer
is "I don't know." and ``grounded`` is false.

The weights are data (:data:`DEFAULT_WEIGHTS_FILE`), fitted by ``benchmarks/fit_evidence.py`` on
a fitting part of WikiQA train and XQuAD questions outside the answer-quality benchmark's sample;
the file records its provenance. Without an embedder the style uses the file's ``lexical``
weights (fitted without the similarity features).

Example:
    >>> from rag.chains.answer import Context
    >>> contexts = [Context(1, "c1", "a.md", "It rained. Acme was founded by Jane Roe in 1998.")]
    >>> found = rank_sentences("When was Acme founded?", contexts, weights=lexical_weights())
    >>> contexts[0].text[found[0].start : found[0].end]
    'Acme was founded by Jane Roe in 1998.'
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rag.chains import span_ranking
from rag.chains.answer import AnswerSpan, Citation, Context
from rag.chains.extractive import normalize_space
from rag.chains.styles.base import NO_ANSWER, Draft, Style, StyleRequest
from rag.chains.styles.evidence_reranker import SentenceReranker
from rag.core.abilities import RunsOnDevice
from rag.core.component import Component
from rag.core.errors import ConfigError
from rag.core.text import (
    WORD,
    content_stems,
    fits_kind,
    question_kind,
    sentences,
    stem,
    word_windows,
)

DEFAULT_WEIGHTS_FILE = Path(__file__).with_name("evidence_weights.json")
"""The fitted weights shipped with ragline (see its ``provenance``)."""
DETAILED = (
    "similarity_gap",
    "similarity_rank",
    "coverage_gap",
    "coverage_rank",
    "position",
    "document_start",
    "first_context",
    "definition",
)
"""Features that also enter times the question's detail (``<name>_detailed``, see
:func:`question_detail`): a question written from its paragraph names many of its words, a
search query few, and the two are answered by different sentences."""
FEATURES = (
    "similarity",
    "similarity_gap",
    "similarity_rank",
    "similarity_in_context_gap",
    "similarity_first_context",
    "coverage",
    "coverage_gap",
    "coverage_rank",
    "question_words_early",
    "reciprocal_rank",
    "first_context",
    "first_sentence",
    "position",
    "document_start",
    "first_context_document_start",
    "how_position",
    "how_document_start",
    "definition",
    "number_for_number",
    "answer_type_fits",
    "answer_type_count",
    "log_words",
    "short",
    "question_mark",
    "novelty",
    "pronoun_start",
    "similarity_previous",
    "similarity_window",
    "similarity_window_gap",
    "coverage_window",
    "coverage_window_gap",
    *(f"{name}_detailed" for name in DETAILED),
)
"""What a sentence is scored on (``similarity*`` are 0 without an embedder).

- ``*_gap``: the value minus the best of the question's sentences (``similarity_in_context_gap``:
  of its own context's); ``*_rank``: 1 / (1 + its rank among them).
- ``question_words_early``: the share of the question's content words among its first
  :data:`EARLY_WORDS` words (a sentence *about* the question's subject names it first).
- ``first_context``: its context was retrieved first. ``document_start``: the first sentence of
  its document (first of a context whose chunk is its document's first, ``chunk_index`` 0).
- ``how_*``: position features of a "how ..." question that asks no number (a process is told
  from the start). ``definition``: it reads "X is a ...", "refers to" or "is defined as".
- ``number_for_number``: it holds a digit and the question asks how many / when.
  ``answer_type_*``: for a factoid question, whether (and how many, up to 3, over 3) of its
  words not in the question look like the answer asked for (a number, a date, a name:
  :func:`rag.core.text.fits_kind`; a sentence's first word is no name).
- ``novelty``: the share of its content words that are not the question's ("Three parameters
  control an HNSW index." restates "What does the parameter M control in an HNSW index?" and
  tells little: 0.2).
- ``pronoun_start``: it opens with a word that points back ("It", "This", "They", ...);
  ``similarity_previous``: for such a sentence, the similarity of the sentence before it in its
  context (the one the pronoun points to), else 0.
- ``*_window``: similarity and coverage of the sentence read with the one before it in its
  section (:func:`window_similarities`): "It was re-established in 1991" is about what the
  sentence before it names.
- ``*_detailed``: a feature of :data:`DETAILED` times :func:`question_detail`.
"""
EARLY_WORDS = 8
DETAIL_WORDS = (3, 8)
"""Content words of a question of detail 0 (this many or fewer) and of detail 1 (this many or
more): :func:`question_detail`."""
DETAILED_QUESTION = 0.5
"""The :func:`question_detail` from which a question is detailed (six or more content words)
and its answer may hold ``detailed_max_sentences`` sentences."""
DEFINITION = re.compile(
    r"^\W*(?:\w+\W+){0,12}?(?:is|are|was|were)\s+(?:a|an|the|one)\b|\brefers? to\b|"
    r"\bis defined as\b|\bis the term\b",
    re.IGNORECASE,
)
"""A defining sentence: "A glacier cave is a cave ...", "... refers to ...", "is defined as"."""
LEXICAL_FEATURES = tuple(f for f in FEATURES if not f.startswith("similarity"))
POINTING_BACK = frozenset(
    {"it", "its", "this", "these", "that", "those", "they", "their", "them", "he", "she", "his"}
    | {"her", "such", "both"}
)
"""Words that, opening a sentence, point back to the one before it."""
FACTOID_KINDS = ("number", "date", "name", "where")
RERANK_QUESTIONS = ("factoid", "factoid_or_detailed", "all")
"""The values of :class:`EvidenceStyle`'s ``rerank_questions``."""
MIN_SPAN_PROBABILITY = 0.3
"""The default ``min_span_probability`` of :class:`EvidenceStyle`."""
MAX_SENTENCE_WORDS = 100
"""The longest sentence quoted whole (:class:`EvidenceStyle`'s ``max_sentence_words``): longer
ones, which text without sentence punctuation makes, are cut into windows of words. One in
10,000 sentences of the contexts retrieved for the fitting questions is longer (the longest:
162 words)."""
SEPARATOR = " — "
"""Between the factoid span and its sentence."""


@dataclass
class SentenceCandidate:
    """A sentence of one context: ``contexts[context].text[start:end]`` (0-based context)."""

    context: int
    start: int
    end: int
    text: str
    features: dict[str, float] = field(default_factory=dict)
    probability: float = 0.0
    logit: float = 0.0
    """The logistic model's log-odds that it answers (``probability`` before the sigmoid)."""
    heading: str = ""
    """The heading line above it in its context (or its document's title), "" without."""
    previous_start: int | None = None
    """Where the sentence before it starts (same context and section), ``None`` for a first."""
    previous_index: int | None = None
    """The index of the sentence before it among the question's sentences (``None``: none)."""
    detail: float = 0.0
    """The question's :func:`question_detail` (the same for every sentence of a question)."""

    @property
    def text_in_context(self) -> str:
        """What the sentence is embedded as for ``similarity``, as its chunk is indexed: under
        its heading (a sentence that points back is scored by ``similarity_previous`` too)."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def question_detail(question: str) -> float:
    """How much of its answer's wording ``question`` names, from 0 (at most 3 content words, as
    a search query: "hnsw m parameter") to 1 (8 or more, as a question written from the
    paragraph that answers it).

    Example:
        >>> question_detail("what is bm25"), question_detail(
        ...     "Which quarterback led the Broncos to victory in Super Bowl XXXIII at age 38?")
        (0.0, 1.0)
    """
    low, high = DETAIL_WORDS
    return min(1.0, max(0.0, (len(content_stems(question)) - low) / (high - low)))


def sentence_candidates(
    question: str,
    contexts: Sequence[str],
    similarities: Sequence[float] | None = None,
    metadata: Sequence[Mapping[str, Any]] | None = None,
    max_words: int = MAX_SENTENCE_WORDS,
) -> list[SentenceCandidate]:
    """Every sentence of ``contexts`` with its :data:`FEATURES` (``similarities``: the cosine
    similarity of each sentence to the question, in order; ``None``: 0; ``metadata``: each
    context's chunk metadata, whose ``chunk_index`` tells a document's first chunk; ``None``:
    every context is taken for its document's start). A sentence of over ``max_words`` words
    is cut into windows (:func:`rag.core.text.word_windows`), each a candidate.

    Example:
        >>> found = sentence_candidates("Who founded Acme?", ["Acme was founded by Jane Roe."])
        >>> found[0].features["coverage"], found[0].features["first_sentence"]
        (1.0, 1.0)
    """
    stems = content_stems(question)
    kind = question_kind(question)
    asked = {w.lower() for w in WORD.findall(question)}
    how = kind == "what" and question.lstrip().lower().startswith("how")
    detail = question_detail(question)
    found: list[SentenceCandidate] = []
    words_of: list[set[str]] = []
    early_of: list[set[str]] = []
    for number, text in enumerate(contexts):
        position = 0
        opens = metadata is None or metadata[number].get("chunk_index", 0) == 0
        heading = str((metadata[number].get("title") if metadata is not None else "") or "")
        previous: int | None = None
        previous_index: int | None = None
        for sentence_start, sentence_end in sentences(text):
            body = _after_headings(text, sentence_start, sentence_end)
            if body > sentence_start:
                heading = _last_line(text[sentence_start:body]).lstrip("# ").strip() or heading
                previous = previous_index = None  # a new section: nothing to point back to
            if body >= sentence_end:
                continue  # a heading or title line: it names a topic, it answers nothing
            for start, end in word_windows(text, body, sentence_end, max_words):
                piece = text[start:end]
                found.append(
                    SentenceCandidate(
                        number,
                        start,
                        end,
                        piece,
                        heading=heading,
                        previous_start=previous,
                        previous_index=previous_index,
                        detail=detail,
                    )
                )
                previous, previous_index = start, len(found) - 1
                features = found[-1].features
                features["position"] = 1.0 / (1 + position)
                features["document_start"] = float(opens and position == 0)
                words = [stem(w) for w in WORD.findall(piece)]
                words_of.append(set(words))
                early_of.append(set(words[:EARLY_WORDS]))
                position += 1
    frequency = collections.Counter(w for words in words_of for w in words)
    total = max(1, len(found))
    idf = {w: math.log(1 + total / frequency.get(w, 0.5)) for w in stems}
    weight = sum(idf.values()) or 1.0
    for candidate, words, early in zip(found, words_of, early_of, strict=True):
        count = len(WORD.findall(candidate.text))
        own = content_stems(candidate.text)
        features = candidate.features
        first_context = float(candidate.context == 0)
        before = candidate.previous_index
        window = words if before is None else words | words_of[before]
        features.update(
            coverage=sum(idf[w] for w in stems & words) / weight,
            coverage_window=sum(idf[w] for w in stems & window) / weight,
            question_words_early=len(stems & early) / max(1, len(stems)),
            reciprocal_rank=1.0 / (1 + candidate.context),
            first_context=first_context,
            first_sentence=float(features["position"] == 1.0),
            first_context_document_start=first_context * features["document_start"],
            how_position=how * features["position"],
            how_document_start=how * features["document_start"],
            definition=float(DEFINITION.search(candidate.text) is not None),
            number_for_number=float(
                kind in ("number", "date") and any(c.isdigit() for c in candidate.text)
            ),
            **_answer_type_features(candidate.text, kind, asked),
            log_words=math.log(1 + count),
            short=float(count < 6),
            question_mark=float(candidate.text.rstrip("\"')").endswith("?")),
            novelty=len(own - stems) / max(1, len(own)),
            pronoun_start=float(_points_back(candidate.text)),
        )
    _relative(found, "coverage")
    _relative(found, "coverage_window", rank=False)
    set_similarities(found, similarities)
    return found


def _answer_type_features(sentence: str, kind: str, asked: set[str]) -> dict[str, float]:
    if kind not in FACTOID_KINDS:
        return {"answer_type_fits": 0.0, "answer_type_count": 0.0}
    words = WORD.findall(sentence)
    fits = sum(
        1
        for i, w in enumerate(words)
        if w.lower() not in asked and fits_kind(w, kind) and (i > 0 or kind in ("number", "date"))
    )
    return {"answer_type_fits": float(fits > 0), "answer_type_count": min(3, fits) / 3}


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _relative(found: Sequence[SentenceCandidate], name: str, *, rank: bool = True) -> None:
    """Set ``<name>_gap`` (the value minus the best) and, unless ``rank`` is false,
    ``<name>_rank`` (1 / (1 + rank))."""
    values = [c.features[name] for c in found]
    best = max(values, default=0.0)
    order = sorted(range(len(found)), key=lambda i: -values[i])
    for place, i in enumerate(order):
        found[i].features[f"{name}_gap"] = values[i] - best
        if rank:
            found[i].features[f"{name}_rank"] = 1.0 / (1 + place)


def _set_detailed(found: Sequence[SentenceCandidate]) -> None:
    """Set the ``<name>_detailed`` features (a :data:`DETAILED` feature times the detail)."""
    for candidate in found:
        features = candidate.features
        for name in DETAILED:
            features[f"{name}_detailed"] = candidate.detail * features[name]


_END_MARKS = tuple(".!?:;\"')]”’")
HEADING_WORDS = 8
"""A line of at most this many words without an end mark is a title ("Tuning HNSW")."""


def _points_back(sentence: str) -> bool:
    first = WORD.search(sentence)
    return first is not None and first.group().lower() in POINTING_BACK


def _is_heading(line: str, following: str = "") -> bool:
    """Whether ``line`` is a title line; ``following``, the text after it: a short line that
    the next line continues in lower case (hard-wrapped text: "The b parameter" then "sets how
    strongly ...") is part of its sentence, not a title."""
    line = line.strip()
    if line.startswith("#"):
        return True
    if following.lstrip()[:1].islower():
        return False
    return not line.endswith(_END_MARKS) and len(WORD.findall(line)) <= HEADING_WORDS


def _after_headings(text: str, start: int, end: int) -> int:
    """Where the sentence ``text[start:end]`` starts once leading heading lines are skipped
    (``end`` when it is all headings)."""
    while start < end:
        newline = text.find("\n", start, end)
        line_end = end if newline < 0 else newline
        if not _is_heading(text[start:line_end], text[line_end:end]):
            return start
        start = line_end
        while start < end and text[start].isspace():
            start += 1
    return end


def set_similarities(
    found: Sequence[SentenceCandidate],
    similarities: Sequence[float] | None,
    window_values: Sequence[float] | None = None,
) -> None:
    """Set the ``similarity*`` features from each sentence's similarity to the question
    (``None``: 0) and, in ``window_values``, read with the sentence before it
    (:func:`window_similarities`; ``None``: the sentence's own), then the ``_detailed``
    features.

    Example:
        >>> found = sentence_candidates("Who?", ["Ann sang. She won."])
        >>> set_similarities(found, [0.5, 0.25], [0.5, 0.75])
        >>> [c.features["similarity_window_gap"] for c in found]
        [-0.25, 0.0]
    """
    values = [0.0] * len(found) if similarities is None else [float(v) for v in similarities]
    windows = values if window_values is None else [float(v) for v in window_values]
    best_in_context: dict[int, float] = {}
    for candidate, value, window in zip(found, values, windows, strict=True):
        candidate.features["similarity"] = value
        candidate.features["similarity_window"] = window
        candidate.features["similarity_first_context"] = value * (candidate.context == 0)
        best = best_in_context.get(candidate.context, value)
        best_in_context[candidate.context] = max(best, value)
    _relative(found, "similarity")
    _relative(found, "similarity_window", rank=False)
    previous: SentenceCandidate | None = None
    for candidate in found:
        features = candidate.features
        features["similarity_in_context_gap"] = (
            features["similarity"] - best_in_context[candidate.context]
        )
        follows = previous is not None and previous.context == candidate.context
        features["similarity_previous"] = (
            previous.features["similarity"]  # type: ignore[union-attr]
            if follows and features.get("pronoun_start")
            else 0.0
        )
        previous = candidate
    _set_detailed(found)


def window_similarities(
    found: Sequence[SentenceCandidate], vectors: Any, query: Any
) -> list[float]:
    """The similarity to the question of each sentence read with the one before it: the cosine
    of ``query`` and the sum of the two sentences' unit ``vectors`` (a matrix, one row per
    sentence of ``found``, in order); a first sentence's own similarity. Summing the sentence
    vectors costs no second embedding.

    Example:
        >>> import numpy as np
        >>> found = sentence_candidates("Who?", ["Ann sang. She won."])
        >>> vectors = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> [round(v, 3) for v in window_similarities(found, vectors, np.array([1.0, 0.0]))]
        [1.0, 0.707]
    """
    import numpy as np

    similarities = []
    for candidate, vector in zip(found, vectors, strict=True):
        if candidate.previous_index is not None:
            vector = vector + vectors[candidate.previous_index]
        norm = float(np.linalg.norm(vector))
        similarities.append(float(vector @ query) / norm if norm else 0.0)
    return similarities


def set_vector_similarities(found: Sequence[SentenceCandidate], vectors: Any, query: Any) -> None:
    """:func:`set_similarities` from the unit ``vectors`` of ``found`` (a matrix, one row per
    sentence, in order) and the question's unit vector ``query``: each sentence's cosine and its
    :func:`window_similarities`.

    Example:
        >>> import numpy as np
        >>> found = sentence_candidates("Who?", ["Ann sang. She won."])
        >>> set_vector_similarities(found, np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 0.0]))
        >>> [round(c.features["similarity_window"], 3) for c in found]
        [1.0, 0.707]
    """
    similarities = [float(v) for v in vectors @ query]
    set_similarities(found, similarities, window_similarities(found, vectors, query))


def score(
    found: Sequence[SentenceCandidate], weights: Mapping[str, float]
) -> list[SentenceCandidate]:
    """``found`` with the probability of the logistic model ``weights`` (feature name -> weight,
    and ``intercept``) that each answers the question, best first."""
    bias = float(weights.get("intercept", 0.0))
    for candidate in found:
        z = bias + sum(float(weights.get(n, 0.0)) * v for n, v in candidate.features.items())
        candidate.logit = z
        candidate.probability = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
    return sorted(found, key=lambda c: (-c.probability, c.context, c.start))


@functools.lru_cache(maxsize=8)
def _read_weights(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"cannot read evidence weights from {path}: {err}; refit them with "
            "benchmarks/fit_evidence.py or leave weights unset for the shipped file",
            field="weights",
        ) from None
    for key in ("embedding", "lexical"):
        if key not in data.get("weights", {}):
            raise ConfigError(
                f"evidence weights file {path} has no weights.{key}; refit it with "
                "benchmarks/fit_evidence.py",
                field="weights",
            )
    return dict(data)


def lexical_weights(path: str | Path = DEFAULT_WEIGHTS_FILE) -> dict[str, float]:
    """The weights used without an embedder (``intercept`` plus :data:`LEXICAL_FEATURES`)."""
    return dict(_read_weights(str(path))["weights"]["lexical"])


def rank_sentences(
    question: str,
    contexts: Sequence[Context],
    *,
    weights: Mapping[str, float],
    similarities: Sequence[float] | None = None,
) -> list[SentenceCandidate]:
    """The sentences of ``contexts`` scored (:func:`score`), best first."""
    texts, metadata = [c.text for c in contexts], [c.metadata for c in contexts]
    return score(sentence_candidates(question, texts, similarities, metadata), weights)


def factoid_weighted(question: str) -> bool:
    """Whether ``question`` is ranked by the ``*_factoid`` weight sets (who / when / where / how
    many, :data:`FACTOID_KINDS`): the questions ``benchmarks/fit_evidence.py`` fits them on. A
    "which" question (:func:`asks_factoid`) that names no such kind is not.

    Example:
        >>> factoid_weighted("When was it built?"), factoid_weighted("Which library is it?")
        (True, False)
    """
    return question_kind(question) in FACTOID_KINDS


def asks_factoid(question: str) -> bool:
    """Whether ``question`` asks a short factoid (who / when / where / how many, or one opening
    with "which"): the questions whose answer puts a short span first and whose best sentences
    the cross-encoder reorders (``rerank_questions``).

    Example:
        >>> [asks_factoid(q) for q in ("Who won?", "Which library is it?", "What is BM25?")]
        [True, True, False]
    """
    if factoid_weighted(question):
        return True
    return re.match(r"\s*(in |at |on |of )?which\b", question.lower()) is not None


def factoid_span(
    question: str, sentence: str, min_probability: float = 0.0
) -> tuple[int, int] | None:
    """The offsets in ``sentence`` of the short span answering a factoid ``question`` (who, when,
    where, how many, which), or ``None``: not a factoid question, no span fits the answer asked
    for (the best span that :func:`rag.chains.span_ranking.fits_question` is taken: a "who"
    span names no date, a "how many" span is no year), or its probability
    (the softmax of :func:`rag.chains.span_ranking.rank_spans`' scores over the sentence's
    spans) is below ``min_probability``.

    Example:
        >>> text = "Acme was founded by Jane Roe in 1998."
        >>> start, end = factoid_span("When was Acme founded?", text)
        >>> text[start:end]
        '1998'
        >>> factoid_span("Who ran against Kennedy?", "He was shot on November 22.") is None
        True
    """
    if not asks_factoid(question):
        return None
    kind = question_kind(question)
    spans = span_ranking.rank_spans(span_ranking.candidate_spans(question, [sentence], sentences=1))
    best = next(
        (s for s in spans if span_ranking.fits_question(question, sentence, s.start, s.end)), None
    )
    if best is None:
        return None
    if kind in FACTOID_KINDS and not best.features.get(f"{kind}:any_fits"):
        return None
    if 1.0 / sum(math.exp(max(-60.0, s.score - best.score)) for s in spans) < min_probability:
        return None
    start, end = span_ranking.complete_span(question, sentence, best.start, best.end)
    if end - start >= len(sentence.rstrip(" .")):
        return None  # the whole sentence: nothing shorter to put first
    return start, end


class EvidenceStyle(Style):
    """The answering sentence of the contexts, copied verbatim and cited (``grounded``).

    Args:
        embedder: The embedding model for question-sentence similarity (in YAML
            ``"@embedder"``, the retriever's); ``None``: lexical features only.
        weights: A weights file written by ``benchmarks/fit_evidence.py`` (``None``: the shipped
            :data:`DEFAULT_WEIGHTS_FILE`).
        min_score: Below this probability for the best sentence the answer is "I don't know."
            (``None``: the file's fitted ``min_score``).
        max_sentences: Most sentences in the answer: the best, then others of at least
            ``min_score`` and half its probability, in order of score.
        detailed_max_sentences: Most sentences for a detailed question (six or more content
            words, :data:`DETAILED_QUESTION`, as a question written from the passage that
            answers it): the best, then the next best of at least ``min_score`` while they
            come from the best's context. The scorer often cannot tell which of two sentences
            of one passage that both match many of the question's words holds the answer; a
            short query ("what is bm25") gets ``max_sentences``.
        factoid_span: Put the short span first for who / when / where / how many / which.
        min_span_probability: Put it first only when its probability among the sentence's
            spans reaches this (:func:`factoid_span`). At 0.3, the spans of XQuAD fitting
            questions kept score token F1 0.60 (0.3-0.5) and 0.85 (over 0.5) against the gold
            answer, those left out 0.17-0.36.
        with_antecedent: An answer sentence that opens with a word pointing back ("It is
            exact ...") comes with the sentence before it, so the answer reads on its own.
        rerank_top: With an embedder, the best this many sentences by the logistic score are
            reordered by a cross-encoder read of question and sentence together
            (:class:`~rag.chains.styles.evidence_reranker.SentenceReranker`, a forward pass of
            all-MiniLM-L6-v2 per sentence) for the questions ``rerank_questions`` names; ``0``
            or ``1``: the logistic order alone. Each sentence keeps its own probability for
            ``min_score``.
        rerank_questions: Which questions the cross-encoder reorders: ``"factoid"`` (who /
            when / where / how many / which, :func:`asks_factoid`), ``"factoid_or_detailed"``
            (the default: those and the detailed questions, :data:`DETAILED_QUESTION`) or
            ``"all"``. Replayed out-of-fold on the fitting questions, the share of XQuAD's whose
            first sentence holds the answer goes from 78.3 % (no reordering) to 80.5 / 82.3 /
            82.9 % and WikiQA F1 from 0.648 to 0.654 / 0.655 / 0.666; but on the quick start's
            technical corpus ``"all"`` picks "Three parameters control an HNSW index." for what
            M controls and misanswers 2 of its 14 questions more, while the short questions
            the others leave alone answer as without reordering (docs/how-to/answer-styles.md).
        reranker: An adapter file written by ``benchmarks/fit_evidence_reranker.py``
            (``None``: the shipped
            :data:`~rag.chains.styles.evidence_reranker.DEFAULT_RERANKER_FILE`).
        reranker_device: Where the cross-encoder runs: ``auto`` (the default) follows an
            embedder with a ``device`` setting (:class:`~rag.core.abilities.RunsOnDevice`, so a
            GPU embedder gets a GPU cross-encoder) when torch sees a GPU, and is the CPU
            otherwise; or ``cpu``, ``cuda``, ``cuda:1``, ... A device named here that torch
            cannot use is a config error at ``warm_up``.
        max_sentence_words: A sentence of more words (text without sentence punctuation: a
            transcript, a log, a flattened table) is weighed and quoted in windows of this
            many words, cut at a clause or line end where one falls in the window's second
            half, so an answer never quotes a whole chunk.

    The style sends nothing to the generator and so needs no ability of it.

    Example:
        >>> style = EvidenceStyle(max_sentences=1)
        >>> style.to_dict()["type"]
        'style.evidence'
    """

    name = "evidence"
    uses_tools: ClassVar[bool] = False  # the answer is read from the contexts, not generated
    takes_embedder: ClassVar[bool] = True

    def __init__(
        self,
        *,
        embedder: Component | None = None,
        weights: str | None = None,
        min_score: float | None = None,
        max_sentences: int = 1,
        detailed_max_sentences: int = 2,
        factoid_span: bool = True,
        min_span_probability: float = MIN_SPAN_PROBABILITY,
        with_antecedent: bool = True,
        rerank_top: int = 3,
        rerank_questions: str = "factoid_or_detailed",
        reranker: str | None = None,
        reranker_device: str = "auto",
        max_sentence_words: int = MAX_SENTENCE_WORDS,
    ) -> None:
        if max_sentence_words < 1:
            raise ConfigError(
                f"max_sentence_words must be at least 1, got {max_sentence_words}",
                field="max_sentence_words",
            )
        for name, value in (
            ("max_sentences", max_sentences),
            ("detailed_max_sentences", detailed_max_sentences),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}", field=name)
        if not 0.0 <= min_span_probability <= 1.0:
            raise ConfigError(
                "min_span_probability is a probability between 0 and 1, got "
                f"{min_span_probability}",
                field="min_span_probability",
            )
        if rerank_top < 0:
            raise ConfigError(
                f"rerank_top must be 0 (no reranking) or more, got {rerank_top}",
                field="rerank_top",
            )
        if rerank_questions not in RERANK_QUESTIONS:
            raise ConfigError(
                f"rerank_questions must be one of {', '.join(map(repr, RERANK_QUESTIONS))}, "
                f"got {rerank_questions!r}",
                field="rerank_questions",
            )
        if min_score is not None and not 0.0 <= min_score <= 1.0:
            raise ConfigError(
                f"min_score is a probability between 0 and 1, got {min_score}", field="min_score"
            )
        self.embedder = embedder
        self.weights = weights
        self.min_score = min_score
        self.max_sentences = max_sentences
        self.detailed_max_sentences = detailed_max_sentences
        self.factoid_span = factoid_span
        self.min_span_probability = min_span_probability
        self.with_antecedent = with_antecedent
        self.rerank_top = rerank_top
        self.rerank_questions = rerank_questions
        self.reranker = reranker
        self.reranker_device = reranker_device
        self.max_sentence_words = max_sentence_words
        self._reranker: SentenceReranker | None = None

    def warm_up(self, generator: Any = None) -> None:
        """Read the weights, warm up the embedder and load the reranker (with an embedder).

        Raises:
            ConfigError: the weights or reranker file cannot be read or lacks a weight set.
        """
        _read_weights(str(self.weights or DEFAULT_WEIGHTS_FILE))
        if self.embedder is not None:
            self.embedder.warm_up()
            if self.rerank_top > 1:
                self.sentence_reranker().warm_up()

    def sentence_reranker(self) -> SentenceReranker:
        """The cross-encoder of ``reranker`` on :meth:`reranker_on` (read once)."""
        if self._reranker is None:
            self._reranker = SentenceReranker(self.reranker, device=self.reranker_on())
        return self._reranker

    def reranker_on(self) -> str:
        """The device the cross-encoder runs on (``reranker_device``, resolved).

        Example:
            >>> EvidenceStyle(reranker_device="cuda:1").reranker_on()
            'cuda:1'
            >>> EvidenceStyle().reranker_on()  # no embedder to follow
            'cpu'
        """
        if self.reranker_device != "auto":
            return self.reranker_device
        followed = self.embedder if isinstance(self.embedder, RunsOnDevice) else None
        device = followed.device if followed is not None else "cpu"
        if device == "cpu":
            return device
        from rag.connectors.embedders.sentence_transformers import pick_device

        # an ONNX embedder may run on a GPU that this torch build cannot use: then the CPU
        found = pick_device("auto")
        return device if found != "cpu" and device != "auto" else found

    @property
    def fitted(self) -> dict[str, Any]:
        """The weights file's content (weights, ``min_score`` and ``provenance``)."""
        return _read_weights(str(self.weights or DEFAULT_WEIGHTS_FILE))

    def reserve_tokens(self, generator: Any) -> int:
        return 0  # nothing is generated

    def calls_generator(self, request: StyleRequest) -> bool:
        return False

    def weight_set(self, question: str) -> str:
        """The name of the fitted weight set for ``question``: ``embedding`` or ``lexical``
        (with or without an embedder), suffixed ``_factoid`` for a factoid question (who /
        when / where / how many) when the file has such a set."""
        name = "embedding" if self.embedder is not None else "lexical"
        factoid = f"{name}_factoid"
        if factoid_weighted(question) and factoid in self.fitted["weights"]:
            return factoid
        return name

    def threshold(self, question: str = "") -> float:
        """The ``min_score`` in use (for ``question``'s weight set)."""
        if self.min_score is not None:
            return self.min_score
        return float(self.fitted["min_score"][self.weight_set(question)])

    def unit_vectors(self, question: str, texts: Sequence[str]) -> tuple[Any, Any] | None:
        """The unit vectors of ``question`` and of ``texts`` (a matrix), ``None`` without an
        embedder."""
        if self.embedder is None or not texts:
            return None
        import numpy as np

        query = np.asarray(self.embedder.embed_query(question), dtype=np.float32)  # type: ignore[attr-defined]
        matrix = np.asarray(self.embedder.embed_documents(list(texts)), dtype=np.float32)  # type: ignore[attr-defined]
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return query / (np.linalg.norm(query) or 1.0), matrix / np.where(norms == 0, 1.0, norms)

    def rank(self, question: str, contexts: Sequence[Context]) -> list[SentenceCandidate]:
        """The sentences of ``contexts``, most probable answer first."""
        texts = [c.text for c in contexts]
        found = sentence_candidates(
            question,
            texts,
            metadata=[c.metadata for c in contexts],
            max_words=self.max_sentence_words,
        )
        vectors = self.unit_vectors(question, [c.text_in_context for c in found])
        if vectors is not None:
            query, matrix = vectors
            set_vector_similarities(found, matrix, query)
        weight_set = self.weight_set(question)
        ranked = score(found, self.fitted["weights"][weight_set])
        if vectors is None or len(ranked) < 2 or not self.reranks(question):
            return ranked
        return self._reranked(question, ranked, weight_set)

    def reranks(self, question: str) -> bool:
        """Whether the cross-encoder reorders the best sentences for ``question`` (given an
        embedder): ``rerank_top`` of 2 or more and a question ``rerank_questions`` names."""
        if self.rerank_top < 2:
            return False
        if self.rerank_questions == "all" or asks_factoid(question):
            return True
        detailed = question_detail(question) >= DETAILED_QUESTION
        return self.rerank_questions == "factoid_or_detailed" and detailed

    def _reranked(
        self, question: str, ranked: list[SentenceCandidate], weight_set: str
    ) -> list[SentenceCandidate]:
        """``ranked`` with its best :attr:`rerank_top` reordered by their logit plus the
        reranker's weighted score."""
        reranker = self.sentence_reranker()
        top = ranked[: self.rerank_top]
        extra = reranker.scores(question, [c.text_in_context for c in top])
        beta = reranker.beta(weight_set)
        order = sorted(range(len(top)), key=lambda i: (-(top[i].logit + beta * extra[i]), i))
        return [top[i] for i in order] + ranked[len(top) :]

    def answer(self, request: StyleRequest) -> Iterator[str | Draft]:
        contexts = request.contexts
        ranked = self.rank(request.question, contexts)
        threshold = self.threshold(request.question)
        stems = content_stems(request.question)
        if (
            not stems  # "What", "Who are you?": nothing to look for
            or not ranked
            # the reranker reorders the best few; whether to answer is the logistic model's call
            or max(c.probability for c in ranked[: self._reordered(request.question)]) < threshold
            or self._unrelated(stems, ranked[0])
        ):
            draft = Draft(text=NO_ANSWER, finish_reason="abstain")
        else:
            chosen = self._chosen(ranked, threshold)
            draft = self._draft(request.question, chosen, contexts)
        if request.stream:
            yield draft.text
        yield draft

    def _reordered(self, question: str) -> int:
        """How many of the best sentences the reranker may have reordered (1: none)."""
        return self.rerank_top if self.embedder is not None and self.reranks(question) else 1

    def _chosen(
        self, ranked: Sequence[SentenceCandidate], threshold: float
    ) -> list[SentenceCandidate]:
        """The answer's sentences: the best, then others up to the question's limit."""
        best = ranked[0]
        if best.detail >= DETAILED_QUESTION and self.detailed_max_sentences > self.max_sentences:
            # the next best sentences while they come from the best's passage
            same = itertools.takewhile(lambda c: c.context == best.context, ranked[1:])
            others = [c for c in same if c.probability >= threshold]
            return [best, *others[: self.detailed_max_sentences - 1]]
        floor = max(threshold, best.probability / 2)
        others = [c for c in ranked[1:] if c.probability >= floor]
        return [best, *others[: self.max_sentences - 1]]

    def _unrelated(self, stems: set[str], best: SentenceCandidate) -> bool:
        """A best sentence that shares none of the question's content words (``stems``) is no
        evidence for it, however it ranks: without an embedder, and with one when those words
        hold no letter ("What is 2 * 21?": numbers have no meaning to match)."""
        if best.features["coverage"] > 0.0:
            return False
        return self.embedder is None or not any(ch.isalpha() for word in stems for ch in word)

    def _draft(
        self, question: str, chosen: Sequence[SentenceCandidate], contexts: Sequence[Context]
    ) -> Draft:
        pieces: list[str] = []
        spans: list[AnswerSpan] = []
        citations: dict[int, Citation] = {}
        first = chosen[0]
        found = (
            factoid_span(question, first.text, self.min_span_probability)
            if self.factoid_span
            else None
        )
        if found is not None:
            context = contexts[first.context]
            start, end = first.start + found[0], first.start + found[1]
            pieces.append(normalize_space(context.text[start:end]))
            spans.append(AnswerSpan(context.index, context.id, start, end))
        sentence_spans = len(spans)  # the spans after the factoid span are sentences
        for candidate in chosen:
            context = contexts[candidate.context]
            if any(
                s.id == context.id and s.start <= candidate.start < s.end
                for s in spans[sentence_spans:]
            ):
                continue  # already in the answer: the sentence an answer "It ..." points to
            start = candidate.start
            points_back = candidate.features.get("pronoun_start") and self.with_antecedent
            if candidate is first and points_back and candidate.previous_start is not None:
                start = candidate.previous_start
            # a hard-wrapped source's line breaks read as spaces; the span keeps the offsets
            pieces.append(normalize_space(context.text[start : candidate.end]))
            spans.append(AnswerSpan(context.index, context.id, start, candidate.end))
            citations.setdefault(context.index, Citation(context.index, context.id, context.source))
        # "span — sentence", "sentence", "sentence sentence": the separator follows the span only
        text = SEPARATOR.join([*pieces[:sentence_spans], " ".join(pieces[sentence_spans:])])
        return Draft(text=text, citations=list(citations.values()), grounded=True, spans=spans)
