"""Fusion and MMR against the papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest

from rag.connectors.retrievers.fusion import (
    document_fusion,
    document_ranking,
    fuse,
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


def _document_fusion_reference(results, document_of, k, weights, per_doc):
    """The formula of the module docstring, written out: a document's rank in a list is the
    1-based rank of its best chunk among that list's documents; score(d) = Σ w_i / (k + rank_i(d));
    its chunks are ordered by Σ w_i / (k + rank_i(c)) over the chunk lists."""
    doc_scores: dict[str, float] = {}
    chunk_scores: dict[str, float] = {}
    for weight, pairs in zip(weights, results):
        documents: list[str] = []
        for chunk_id, _ in pairs:
            if document_of[chunk_id] not in documents:
                documents.append(document_of[chunk_id])
        for rank, document in enumerate(documents, start=1):
            doc_scores[document] = doc_scores.get(document, 0.0) + weight / (k + rank)
        for rank, (chunk_id, _) in enumerate(pairs, start=1):
            chunk_scores[chunk_id] = chunk_scores.get(chunk_id, 0.0) + weight / (k + rank)
    out = []
    for document in sorted(doc_scores, key=lambda d: -doc_scores[d]):
        mine = [c for c in chunk_scores if document_of[c] == document]
        for chunk_id in sorted(mine, key=lambda c: -chunk_scores[c])[:per_doc]:
            out.append((chunk_id, doc_scores[document]))
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("per_doc", [1, 2])
def test_document_rrf_matches_the_formula(seed, per_doc):
    rng = np.random.default_rng(seed)
    chunk_ids = [f"c{i}" for i in range(40)]
    document_of = {c: f"d{rng.integers(0, 12)}" for c in chunk_ids}
    # distinct random scores, so there are no ties for the order to depend on
    results = [
        [(c, float(s)) for c, s in zip(rng.permutation(chunk_ids)[:25], np.linspace(1, 0, 25))]
        for _ in range(2)
    ]
    weights = [1.0, 2.5]
    fused = document_fusion(results, document_of, k=7, weights=weights, chunks_per_document=per_doc)
    expected = _document_fusion_reference(results, document_of, 7, weights, per_doc)
    assert [c for c, _ in fused] == [c for c, _ in expected]
    assert [s for _, s in fused] == pytest.approx([s for _, s in expected])
    documents = [document_of[c] for c, _ in fused]
    assert all(documents.count(d) <= per_doc for d in documents)


def test_a_document_counts_once_per_list():
    # document a has three chunks at the top of one list; b is first in the other list
    of = {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "c1": "c"}
    dense = [("a1", 0.9), ("a2", 0.8), ("a3", 0.7), ("c1", 0.6)]
    lexical = [("b1", 7.0), ("c1", 6.0)]
    assert document_ranking(dense, of) == [("a", 0.9), ("c", 0.6)]
    fused = dict(document_fusion([dense, lexical], of, k=60))
    assert fused == {
        "a1": pytest.approx(1 / 61),  # rank 1 among dense documents
        "c1": pytest.approx(1 / 62 + 1 / 62),  # rank 2 in both document lists
        "b1": pytest.approx(1 / 61),
    }
    # chunk-level RRF would give c1 1/64 + 1/62: its rank is pushed down by a's extra chunks
    assert dict(reciprocal_rank_fusion([[c for c, _ in dense], [c for c, _ in lexical]]))[
        "c1"
    ] == pytest.approx(1 / 64 + 1 / 62)
    assert document_fusion([dense, lexical], of)[0][0] == "c1"


def test_document_weighted_fusion_uses_best_chunk_scores():
    of = {"a1": "a", "a2": "a", "b1": "b", "c1": "c"}
    dense = [("a1", 0.9), ("b1", 0.5), ("a2", 0.1)]
    lexical = [("c1", 4.0), ("a2", 3.0), ("b1", 1.0)]
    fused = document_fusion([dense, lexical], of, fusion="weighted", weights=[0.5, 1.0])
    # dense documents a 0.9, b 0.5 -> 1, 0; lexical c 4, a 3, b 1 -> 1, 2/3, 0
    expected = {"a": 0.5 * 1 + 2 / 3, "b": 0.0, "c": 1.0}
    assert [(of[c], s) for c, s in fused] == [
        (d, pytest.approx(expected[d])) for d in ("a", "c", "b")
    ]
    # a's best chunk by chunk-level weighted fusion: a2 (0.5 * 0 + 1 * 2/3) beats a1 (0.5 * 1)
    assert fused[0][0] == "a2"


def test_document_fusion_bad_input():
    with pytest.raises(ValueError, match="chunks_per_document"):
        document_fusion([[("a", 1.0)]], {"a": "a"}, chunks_per_document=0)
    with pytest.raises(ValueError, match="fusion must be one of rrf, weighted"):
        fuse([[("a", 1.0)]], fusion="borda")
    assert document_fusion([], {}) == []
