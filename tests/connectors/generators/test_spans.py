"""Span scoring without a model: how rows of log-probabilities become span scores."""

from __future__ import annotations

import numpy as np
import pytest

from rag.connectors.generators.llama_cpp import spans as spans_module
from rag.connectors.generators.llama_cpp.spans import log_softmax, score

pytestmark = pytest.mark.unit
VOCAB = 6
END = np.asarray([5])  # the token that ends a span


class TableScorer:
    """A scorer whose next-token log-probabilities depend only on the last token: enough to
    check the arithmetic, and it records what was evaluated."""

    def __init__(self, fail: bool = False) -> None:
        rng = np.random.default_rng(0)
        self.table = log_softmax(rng.normal(size=(VOCAB, VOCAB)))
        self.evaluated: list[list[int]] = []
        self.forgotten = 0
        self.fail = fail

    def prompt(self, tokens):
        return self.table[tokens[-1]]

    def continuations(self, continuations):
        if self.fail:
            raise RuntimeError("decode failed")
        self.evaluated.extend(list(c) for c in continuations)
        return [self.table[np.asarray(c)] for c in continuations]

    def forget(self):
        self.forgotten += 1


def test_log_softmax_matches_the_reference_and_is_stable():
    logits = np.asarray([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]])
    expected = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    assert np.allclose(log_softmax(logits), expected)
    assert np.allclose(np.exp(log_softmax(logits)).sum(axis=-1), 1.0)


def test_a_span_scores_the_sum_of_its_token_logprobs_and_its_end():
    scorer = TableScorer()
    (result,) = score(scorer, [0, 1], [[2, 3, 4]], END)
    table = scorer.table
    assert result.first == pytest.approx(table[1][2])
    assert result.total == pytest.approx(table[1][2] + table[2][3] + table[3][4])
    assert result.end == pytest.approx(table[4][5]) and result.tokens == 3


def test_nested_and_repeated_spans_are_evaluated_once_from_the_longest():
    scorer = TableScorer()
    spans = [[2], [2, 3], [2, 3, 4], [4], [2, 3]]
    together = score(scorer, [1], spans, END)
    assert scorer.evaluated == [[2, 3, 4], [4]]
    for tokens, result in zip(spans, together, strict=True):
        (alone,) = score(TableScorer(), [1], [tokens], END)
        assert (result.first, result.total, result.end) == pytest.approx(
            (alone.first, alone.total, alone.end)
        )


def test_an_empty_span_scores_minus_infinity():
    (result,) = score(TableScorer(), [1], [[]], END)
    assert result.total == -np.inf and result.tokens == 0
    assert score(TableScorer(), [1], [], END) == []


def test_a_failed_decode_forgets_the_cache_and_raises():
    scorer = TableScorer(fail=True)
    with pytest.raises(RuntimeError, match="decode failed"):
        score(scorer, [1], [[2]], END)
    assert scorer.forgotten == 1


def test_the_span_terminators_are_text():
    assert "." in spans_module.SPAN_TERMINATORS and "\n" in spans_module.SPAN_TERMINATORS
