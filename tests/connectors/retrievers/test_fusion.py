"""Fusion and MMR against the papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest

from rag.connectors.retrievers.fusion import (
    maximal_marginal_relevance,
    normalize_scores,
    reciprocal_rank_fusion,
    weighted_score_fusion,
)

pytestmark = pytest.mark.unit


def test_rrf_is_the_papers_sum():
    rankings = [["a", "b", "c"], ["c", "a"], ["d"]]
    fused = dict(reciprocal_rank_fusion(rankings))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 61)
    order = [doc for doc, _ in reciprocal_rank_fusion(rankings)]
    assert order == ["a", "c", "d", "b"]


def test_rrf_weights_constant_and_duplicates():
    fused = dict(reciprocal_rank_fusion([["a", "a", "b"], ["b"]], k=0, weights=[2.0, 1.0]))
    assert fused == {"a": pytest.approx(2.0), "b": pytest.approx(2 / 3 + 1.0)}
    with pytest.raises(ValueError, match="one per ranking"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])
    assert reciprocal_rank_fusion([]) == []


def test_weighted_fusion_uses_min_max():
    np.testing.assert_allclose(normalize_scores([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(normalize_scores([5.0, 5.0]), [1.0, 1.0])
    fused = dict(
        weighted_score_fusion(
            [[("a", 10.0), ("b", 5.0), ("c", 0.0)], [("c", 0.9), ("a", 0.1)]],
            weights=[0.5, 1.0],
        )
    )
    assert fused == {
        "a": pytest.approx(0.5 * 1.0 + 1.0 * 0.0),
        "b": pytest.approx(0.5 * 0.5),
        "c": pytest.approx(0.5 * 0.0 + 1.0 * 1.0),
    }


def _mmr_reference(query, docs, k, lam):
    """Carbonell & Goldstein (1998), literally: argmax over R \\ S of
    λ·cos(d, q) − (1 − λ)·max_{s ∈ S} cos(d, s), with the max term 0 while S is empty."""

    def cos(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    selected: list[int] = []
    while len(selected) < min(k, len(docs)):
        best, best_score = None, -np.inf
        for i, doc in enumerate(docs):
            if i in selected:
                continue
            redundancy = max((cos(doc, docs[s]) for s in selected), default=0.0)
            score = lam * cos(doc, query) - (1 - lam) * redundancy
            if score > best_score:
                best, best_score = i, score
        selected.append(best)
    return selected


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 0.8, 1.0])
def test_mmr_matches_the_papers_formula(lam):
    rng = np.random.default_rng(int(lam * 10))
    docs = rng.normal(size=(25, 6))
    docs[5] = docs[3] + 0.01 * rng.normal(size=6)  # a near duplicate (not an exact tie)
    query = rng.normal(size=6)
    assert maximal_marginal_relevance(query, docs, k=8, lambda_mult=lam) == _mmr_reference(
        query, docs, 8, lam
    )


def test_mmr_edges():
    assert maximal_marginal_relevance(np.ones(3), np.zeros((0, 3)), k=3) == []
    assert maximal_marginal_relevance(np.ones(2), np.eye(2), k=5, lambda_mult=1.0) == [0, 1]
    with pytest.raises(ValueError, match="lambda_mult"):
        maximal_marginal_relevance(np.ones(2), np.eye(2), k=1, lambda_mult=1.5)
    duplicates = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert maximal_marginal_relevance(np.array([1.0, 0.1]), duplicates, k=2, lambda_mult=0.3) == [
        0,
        2,
    ]
