"""retriever.hybrid with ``fusion: zscore``: the z-score sum against scipy, then the component."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rag.connectors.retrievers.fusion import FUSIONS, fuse, zscore_fusion
from rag.connectors.retrievers.hybrid import HybridRetriever
from rag.core.documents import Chunk, Hit

pytestmark = pytest.mark.unit


def reference(results, weights):
    """The formula with scipy's z-score: missing ids take their list's lowest z."""
    ids = list(dict.fromkeys(i for pairs in results for i, _ in pairs))
    total = dict.fromkeys(ids, 0.0)
    for weight, pairs in zip(weights, results):
        names = [i for i, _ in pairs]
        z = stats.zscore(np.array([s for _, s in pairs], dtype=np.float64))
        for i in ids:
            total[i] += weight * (z[names.index(i)] if i in names else z.min())
    return total


def test_zscore_fusion_matches_the_formula():
    rng = np.random.default_rng(7)
    ids = [f"d{n}" for n in range(30)]
    dense = [(i, float(s)) for i, s in zip(rng.permutation(ids)[:20], np.sort(rng.random(20)))]
    lexical = [(i, float(s)) for i, s in zip(rng.permutation(ids)[:15], rng.random(15) * 20)]
    fused = dict(zscore_fusion([dense, lexical], weights=[1.0, 0.7]))
    expected = reference([dense, lexical], [1.0, 0.7])
    assert fused.keys() == expected.keys()
    for doc_id, score in expected.items():
        assert fused[doc_id] == pytest.approx(score)
    ranked = [i for i, _ in zscore_fusion([dense, lexical], weights=[1.0, 0.7])]
    assert ranked == sorted(expected, key=lambda i: -expected[i])


def test_zscore_uses_how_far_a_score_stands_out():
    # RRF ties a and b (each first once); z-scores prefer b, whose lead in its list is larger
    dense = [("a", 0.80), ("b", 0.79), ("c", 0.78)]
    lexical = [("b", 30.0), ("c", 5.0), ("a", 4.0)]
    assert fuse([dense, lexical], fusion="zscore")[0][0] == "b"
    assert "zscore" in FUSIONS


def test_equal_scores_and_empty_lists():
    assert zscore_fusion([[("a", 1.0), ("b", 1.0)], []]) == [("a", 0.0), ("b", 0.0)]
    assert zscore_fusion([[], []]) == []
    with pytest.raises(ValueError, match="weights"):
        zscore_fusion([[("a", 1.0)]], weights=[1.0, 2.0])


def hit(chunk_id: str, doc: str, score: float) -> Hit:
    return Hit(Chunk(id=chunk_id, text=chunk_id, metadata={"doc_id": doc}), score)


def test_hybrid_zscore_at_document_level():
    hybrid = HybridRetriever(
        retrievers=[object(), object()],  # type: ignore[list-item]
        fusion="zscore",
        weights=[1.0, 0.5],
        chunks_per_document=2,
    )
    dense = [hit("a1", "a", 0.9), hit("b1", "b", 0.5), hit("a2", "a", 0.45), hit("c1", "c", 0.4)]
    lexical = [hit("c1", "c", 9.0), hit("b1", "b", 8.0)]
    fused = hybrid.fuse([dense, lexical], k=10)
    # documents by z-score sum; a's two chunks stay together, best first
    per_doc = reference(
        [[("a", 0.9), ("b", 0.5), ("c", 0.4)], [("c", 9.0), ("b", 8.0)]], [1.0, 0.5]
    )
    order = sorted(per_doc, key=lambda d: -per_doc[d])
    assert [h.chunk.metadata["doc_id"] for h in fused] == [
        d for d in order for _ in range(2 if d == "a" else 1)
    ]
    assert fused[0].score == pytest.approx(per_doc[order[0]])
