"""The span index behind extractive decoding: which tokens may come next, where a span may end,
and the character offsets it maps back to."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rag.connectors.generators.llama_cpp.constrained import SpanIndex

pytestmark = pytest.mark.unit


class WordVocabulary:
    """A tokenizer over words with their leading space (and punctuation alone), growing its
    vocabulary as it meets new pieces: enough to exercise the index without a model."""

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}

    def tokenize(self, text: str) -> list[int]:
        return [self.id(p.encode()) for p in re.findall(r"\s*\w+|\s*[^\w\s]|\s+", text)]

    def id(self, piece: bytes) -> int:
        return self.ids.setdefault(piece, len(self.ids))

    def piece(self, token: int) -> bytes:
        return next(p for p, i in self.ids.items() if i == token)


def index_of(texts, vocabulary=None):
    vocabulary = vocabulary or WordVocabulary()
    return SpanIndex(texts, vocabulary.tokenize, vocabulary.piece), vocabulary


def walk(index, vocabulary, words):
    state = None
    for word in words:
        state = index.advance(state, vocabulary.ids[word.encode()])
    return state


def test_spans_start_at_words_and_continue_only_as_some_context_does():
    index, vocab = index_of(["Paris is the capital of France.", "Berlin is big."])
    starts = {vocab.piece(t) for t in index.next_tokens(None)}
    assert b" Paris" in starts and b" Berlin" in starts and b"." not in starts
    state = walk(index, vocab, [" is"])
    assert len(state) == 2  # "is" occurs in both contexts
    following = {vocab.piece(t) for t in index.next_tokens(state)}
    assert following == {b" the", b" big"}
    state = walk(index, vocab, [" is", " the", " capital"])
    match = index.match(state, 3)
    assert (match.context, "Paris is the capital of France."[match.start : match.end]) == (
        0,
        "is the capital",
    )


def test_offsets_are_characters_of_the_original_text_even_with_multibyte_characters():
    text = "Ça coûte 6½ euros, près de Zürich."
    index, vocab = index_of([text])
    state = walk(index, vocab, [" près", " de", " Zürich"])
    match = index.match(state, 3)
    assert text[match.start : match.end] == "près de Zürich"
    state = walk(index, vocab, [" Ça"])
    match = index.match(state, 1)
    assert (match.start, match.end) == (0, 2)


def test_a_span_never_crosses_into_the_next_context_or_over_a_line():
    index, vocab = index_of(["alpha beta", "gamma delta", "one\ntwo"])
    state = walk(index, vocab, [" beta"])
    assert len(index.next_tokens(state)) == 0  # the end of context 1; never " gamma"
    state = walk(index, vocab, [" one"])
    assert len(index.next_tokens(state)) == 0  # the next token is a newline


def test_a_span_may_end_only_at_a_word_boundary():
    vocab = WordVocabulary()
    # "Pant" + "hers": one word in two tokens, as a BPE vocabulary writes it
    ids = {b" The": 0, b" Pant": 1, b"hers": 2, b" won": 3}
    vocab.ids = dict(ids)
    index = SpanIndex(["The Panthers won"], lambda _: [0, 1, 2, 3], vocab.piece)
    assert not index.can_end(walk(index, vocab, [" Pant"]))
    assert index.can_end(walk(index, vocab, [" Pant", "hers"]))
    assert 2 not in index.next_tokens(None).tolist()  # "hers" does not start a word


def test_sentence_ends_are_known():
    index, vocab = index_of(["It rained. Then it stopped."])
    assert index.at_sentence_end(walk(index, vocab, [" rained", "."]))
    assert not index.at_sentence_end(walk(index, vocab, [" rained"]))


def test_avoided_words_do_not_start_spans_unless_nothing_else_would():
    index, vocab = index_of(["The Broncos won in 2016."])
    index.avoid_starts({"the", "in", "won"})
    starts = {vocab.piece(t) for t in index.next_tokens(None)}
    assert starts == {b" Broncos", b" 2016"}
    only, _ = index_of(["in the"])
    only.avoid_starts({"in", "the"})
    assert len(only.next_tokens(None)) == 2  # every start avoided: keep them all


def test_a_context_whose_tokens_do_not_add_up_to_its_text_offers_no_span():
    vocab = WordVocabulary()
    lossy = lambda text: vocab.tokenize(text.lower())  # noqa: E731 - a normalizing tokenizer
    index = SpanIndex(["Upper Case", "lower case"], lossy, vocab.piece)
    contexts = {int(index.context_of[p]) for p in index.starts}
    assert contexts == {1}
    assert isinstance(index.flat, np.ndarray)


def test_empty_contexts_give_an_empty_index():
    index, _ = index_of([])
    assert len(index) == 0 and len(index.next_tokens(None)) == 0


def test_weighed_starts_keep_only_scored_places_with_their_scores():
    text = "It rained. Jane Roe founded Acme in 1990."
    index, vocab = index_of([text])
    allowed = text.index("Jane"), text.index("1990")

    def prior(context, offset):
        word = re.compile(r"\w+").search(text, offset)
        return {allowed[0]: 1.5, allowed[1]: -0.5}.get(word.start())

    index.weigh_starts(prior)
    starts = [vocab.piece(int(t)) for t in index.flat[index.starts]]
    assert starts == [b" Jane", b" 1990"]
    assert index.start_scores.tolist() == [1.5, -0.5]
    index.avoid_starts({"jane"})  # the scores stay aligned with the starts
    assert [vocab.piece(int(t)) for t in index.flat[index.starts]] == [b" 1990"]
    assert index.start_scores.tolist() == [-0.5]


def test_a_prior_that_allows_no_start_keeps_them_all():
    index, _ = index_of(["Paris is big."])
    count = len(index.starts)
    index.weigh_starts(lambda context, offset: None)
    assert len(index.starts) == count and not index.start_scores.any()
