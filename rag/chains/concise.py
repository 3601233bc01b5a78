"""Focused ``concise`` answers: the model reads the sentence that matches the question best.

A small local model (SmolLM2-135M) answers a question far better from one sentence than from five
passages: given the numbered contexts it copies or restates whole sentences, given the one sentence
that shares most rare words with the question (:func:`rag.chains.span_ranking.rank_sentences`) and
an answer turn opened with "The answer is", it names the answer. ``chain.rag`` uses this for the
``concise`` style with generators that take an answer prefix and for ranked ``extractive``
answers (``focus_sentences``); this module holds the text handling around that call:

- :func:`focus` picks the sentences the model reads (none when no sentence shares a content word
  with the question: the chain then answers "I don't know." without asking the model);
- :func:`trim_restatement` drops a restated question from the start of the reply ("The new
  platform is called Internet2" -> "Internet2");
- :func:`cited_reply` strips the model's own citation marks and cites the context of the sentence
  the answer was read from (the model saw no other).

Example:
    >>> shown = focus("Who founded Acme?", ["It rained.", "Acme was founded by Jane Roe."], 1)
    >>> [(s.context, s.text) for s in shown]
    [(1, 'Acme was founded by Jane Roe.')]
    >>> trim_restatement("Acme was founded by Jane Roe", "Who founded Acme?")
    'Jane Roe'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.chains.answer import CITATION_MARK
from rag.chains.span_ranking import question_stems, rank_sentences
from rag.core.text import START_STOPWORDS, stem

_WORD = re.compile(r"\w+")
_CITATION = re.compile(r"\s*" + CITATION_MARK.pattern)  # with the space before it
_EDGES = " \t\n:.\"'\u201c\u201d"  # stripped from both ends of a reply
# Words a restatement runs through before the answer ("... is called X", "... was named X"),
# besides the stop words (which hold the forms of "be", "do" and "have").
_LINKING_WORDS = frozenset({"called", "known", "named"})


@dataclass(frozen=True)
class FocusSentence:
    """A sentence shown to the model: ``contexts[context].text[start:end]`` (0-based context)."""

    context: int
    start: int
    end: int
    text: str


def focus(question: str, contexts: Sequence[str], sentences: int) -> list[FocusSentence]:
    """The ``sentences`` sentences of ``contexts`` sharing most rare words with ``question``, best
    first (the sentences :func:`~rag.chains.span_ranking.candidate_spans` takes spans from);
    none when not even the best shares a content word with the question."""
    ranked = rank_sentences(question, contexts)[:sentences]
    if not ranked or ranked[0].score <= 0:
        return []
    return [
        FocusSentence(s.context, s.start, s.end, contexts[s.context][s.start : s.end])
        for s in ranked
    ]


def trim_restatement(reply: str, question: str) -> str:
    """``reply`` without a leading restatement of ``question``: the words up to the first one
    that is neither a question word, a stop word nor "called"/"known"/"named" go, when at least
    one of them was a question word and something is left.

    Example:
        >>> trim_restatement("The Canary Islands are off the coast of Africa",
        ...                  "What continent are the Canary Islands off the coast of?")
        'Africa'
        >>> trim_restatement("Paris", "What is the capital of France?")
        'Paris'
    """
    stems = question_stems(question)
    words = reply.split()
    restated = False
    for position, word in enumerate(words):
        bare = "".join(_WORD.findall(word)).lower()
        if bare and stem(bare) in stems:
            restated = True
        elif bare and bare not in START_STOPWORDS and bare not in _LINKING_WORDS:
            return " ".join(words[position:]) if restated else reply
    return reply


def cited_reply(reply: str, question: str, shown: Sequence[FocusSentence]) -> tuple[str, int]:
    """The answer text of a focused reply and the 0-based context it cites.

    The model's citation marks, quotes, a leading colon and a final full stop go; a restated
    question is trimmed; the cited context is that of the shown sentence sharing most words with
    the answer (the first on ties).

    Example:
        >>> shown = focus("Who founded Acme?", ["Acme was founded by Jane Roe."], 1)
        >>> cited_reply(': "Jane Roe" [1].', "Who founded Acme?", shown)
        ('Jane Roe', 0)
    """
    text = _CITATION.sub("", reply).strip(_EDGES)
    text = trim_restatement(text, question).strip(_EDGES)
    words = {w.lower() for w in _WORD.findall(text)}
    best = max(
        shown,
        key=lambda s: (len(words & {w.lower() for w in _WORD.findall(s.text)}), -shown.index(s)),
    )
    return text, best.context
