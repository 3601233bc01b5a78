"""Pure functions for combining and diversifying rankings.

- :func:`reciprocal_rank_fusion`: Cormack, Clarke & Büttcher (SIGIR 2009),
  ``score(d) = Σ_i w_i / (k + rank_i(d))`` with 1-based ranks and ``k = 60``.
- :func:`weighted_score_fusion`: a weighted sum of per-list min-max normalized scores
  (a document missing from a list contributes 0 for it).
- :func:`zscore_fusion`: a weighted sum of per-list z-scores, ``(s - mean) / std`` over the
  list's candidates (a document missing from a list gets that list's lowest z-score). Unlike
  min-max, one outlying top score does not squash the rest of its list.
- :func:`document_ranking` and :func:`document_fusion`: fusion at the level of documents, for
  retrievers that return chunks. Each list is first collapsed to documents: a document takes the
  place (1-based rank among the list's documents) and the score of its best chunk in that list.
  The document lists are fused as above (RRF or weighted), and each fused document is represented
  by its best ``chunks_per_document`` chunks, ordered by the same fusion applied to the chunks.
  A document with many matching chunks thus counts once per retriever, not once per chunk.
- :func:`maximal_marginal_relevance`: Carbonell & Goldstein (SIGIR 1998),
  ``argmax_{d ∈ R \\ S} [λ·Sim1(d, q) − (1 − λ)·max_{d' ∈ S} Sim2(d, d')]``, picked greedily.

Example:
    >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]])[0]
    ('b', 0.03252247488101534)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RRF_K = 60
FUSIONS = ("rrf", "weighted", "zscore")


def _check_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ValueError(f"got {len(weights)} weights for {count} rankings; give one per ranking")
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must not be negative, got {list(weights)}")
    return [float(w) for w in weights]


def _sorted(scores: Mapping[str, float], first_seen: Mapping[str, int]) -> list[tuple[str, float]]:
    # ties keep the order in which documents were first seen, so results are deterministic
    return sorted(scores.items(), key=lambda item: (-item[1], first_seen[item[0]]))


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    *,
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse ranked id lists by reciprocal rank (best first).

    Args:
        rankings: One list of ids per retriever, best first.
        k: The RRF constant (60 in the paper); larger values flatten the rank discount.
        weights: Optional weight per ranking (default 1 each).

    Returns:
        ``(id, fused score)`` pairs, best first.
    """
    if k < 0:
        raise ValueError(f"k must not be negative, got {k}")
    weights = _check_weights(weights, len(rankings))
    scores: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for weight, ranking in zip(weights, rankings):
        seen_here: set[str] = set()
        for rank, doc_id in enumerate(ranking, start=1):
            if doc_id in seen_here:
                continue  # only a document's best rank in a list counts
            seen_here.add(doc_id)
            first_seen.setdefault(doc_id, len(first_seen))
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (k + rank)
    return _sorted(scores, first_seen)


def normalize_scores(scores: Sequence[float]) -> np.ndarray:
    """Min-max normalize to [0, 1]; equal scores all become 1."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.ones_like(values)
    return (values - low) / (high - low)


def weighted_score_fusion(
    results: Sequence[Sequence[tuple[str, float]]],
    *,
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse scored lists by a weighted sum of min-max normalized scores (best first).

    Args:
        results: One list of ``(id, score)`` per retriever (higher is better).
        weights: Optional weight per list (default 1 each).
    """
    weights = _check_weights(weights, len(results))
    fused: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for weight, pairs in zip(weights, results):
        best: dict[str, float] = {}
        for doc_id, score in pairs:
            best[doc_id] = max(score, best.get(doc_id, -np.inf))
        normalized = normalize_scores(list(best.values()))
        for doc_id, value in zip(best, normalized):
            first_seen.setdefault(doc_id, len(first_seen))
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * float(value)
    return _sorted(fused, first_seen)


def zscore_fusion(
    results: Sequence[Sequence[tuple[str, float]]],
    *,
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse scored lists by a weighted sum of per-list z-scores (best first).

    Each list's scores (an id's best, when it appears twice) are standardized over that list,
    ``z = (s - mean) / std``; an id missing from a list gets that list's lowest z-score (it
    scored below every candidate there), and a list whose scores are all equal gives 0 to its
    ids. The fused score is ``Σ_i w_i · z_i``.

    Args:
        results: One list of ``(id, score)`` per retriever (higher is better).
        weights: Optional weight per list (default 1 each).

    Example:
        >>> dense = [("a", 0.9), ("b", 0.5), ("c", 0.4)]
        >>> lexical = [("b", 12.0), ("c", 3.0)]
        >>> [i for i, _ in zscore_fusion([dense, lexical])]
        ['b', 'a', 'c']
    """
    weights = _check_weights(weights, len(results))
    standardized: list[dict[str, float]] = []
    for pairs in results:
        best: dict[str, float] = {}
        for doc_id, score in pairs:
            best[doc_id] = max(score, best.get(doc_id, -np.inf))
        values = np.asarray(list(best.values()), dtype=np.float64)
        spread = float(values.std()) if values.size else 0.0
        z = (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
        standardized.append(dict(zip(best, z.tolist())))
    first_seen: dict[str, int] = {}
    for z_of in standardized:
        for doc_id in z_of:
            first_seen.setdefault(doc_id, len(first_seen))
    fused = dict.fromkeys(first_seen, 0.0)
    for weight, z_of in zip(weights, standardized):
        floor = min(z_of.values(), default=0.0)
        for doc_id in fused:
            fused[doc_id] += weight * z_of.get(doc_id, floor)
    return _sorted(fused, first_seen)


def document_ranking(
    pairs: Sequence[tuple[str, float]], document_of: Mapping[str, str]
) -> list[tuple[str, float]]:
    """Collapse a chunk ranking to documents: each document once, at its best chunk's place.

    Args:
        pairs: ``(chunk id, score)`` pairs of one retriever, best first.
        document_of: The document id of every chunk id in ``pairs``.

    Returns:
        ``(document id, best chunk score)`` pairs in the order of each document's first chunk.

    Example:
        >>> of = {"a1": "a", "a2": "a", "b1": "b"}
        >>> document_ranking([("a1", 3.0), ("b1", 2.0), ("a2", 1.0)], of)
        [('a', 3.0), ('b', 2.0)]
    """
    best: dict[str, float] = {}
    for chunk_id, score in pairs:
        document = document_of[chunk_id]
        best[document] = max(score, best.get(document, score))
    return list(best.items())


def fuse(
    results: Sequence[Sequence[tuple[str, float]]],
    *,
    fusion: str = "rrf",
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse scored lists with ``fusion`` (``rrf`` uses only the order; ``weighted`` and
    ``zscore`` the scores)."""
    if fusion == "rrf":
        return reciprocal_rank_fusion(
            [[i for i, _ in pairs] for pairs in results], k=k, weights=weights
        )
    if fusion == "weighted":
        return weighted_score_fusion(results, weights=weights)
    if fusion == "zscore":
        return zscore_fusion(results, weights=weights)
    raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")


def document_fusion(
    results: Sequence[Sequence[tuple[str, float]]],
    document_of: Mapping[str, str],
    *,
    fusion: str = "rrf",
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
    chunks_per_document: int = 1,
) -> list[tuple[str, float]]:
    """Fuse chunk rankings by document; return each top document's best chunks (best first).

    ``score(d)`` is :func:`fuse` over the lists of :func:`document_ranking`, so with RRF
    ``score(d) = Σ_i w_i / (k + rank_i(d))`` where ``rank_i(d)`` is the rank of ``d``'s best chunk
    among the *documents* of list ``i``. The chunks of a document are ordered by :func:`fuse` over
    the chunk lists, and its first ``chunks_per_document`` are returned, each with ``score(d)``.

    Args:
        results: One list of ``(chunk id, score)`` per retriever, best first.
        document_of: The document id of every chunk id.
        fusion: ``rrf`` or ``weighted``.
        k: The RRF constant.
        weights: Optional weight per list.
        chunks_per_document: Chunks returned per document (at least 1).

    Returns:
        ``(chunk id, document score)`` pairs: documents best first, and within a document its
        chunks best first.

    Example:
        >>> dense = [("a1", 0.9), ("a2", 0.8), ("b1", 0.7)]
        >>> lexical = [("b1", 9.0), ("a2", 5.0)]
        >>> of = {"a1": "a", "a2": "a", "b1": "b"}
        >>> [c for c, _ in document_fusion([dense, lexical], of, chunks_per_document=2)]
        ['a2', 'a1', 'b1']
    """
    if chunks_per_document < 1:
        raise ValueError(f"chunks_per_document must be at least 1, got {chunks_per_document}")
    documents = fuse(
        [document_ranking(pairs, document_of) for pairs in results],
        fusion=fusion,
        k=k,
        weights=weights,
    )
    chunks_of: dict[str, list[str]] = {}
    for chunk_id, _ in fuse(results, fusion=fusion, k=k, weights=weights):
        chunks_of.setdefault(document_of[chunk_id], []).append(chunk_id)
    return [
        (chunk_id, score)
        for document, score in documents
        for chunk_id in chunks_of[document][:chunks_per_document]
    ]


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def maximal_marginal_relevance(
    query_vector: np.ndarray,
    candidate_vectors: np.ndarray,
    *,
    k: int,
    lambda_mult: float = 0.5,
) -> list[int]:
    """Indices of ``k`` candidates picked greedily by MMR, with cosine for Sim1 and Sim2.

    Args:
        query_vector: The query embedding.
        candidate_vectors: One row per candidate (the set R of the paper).
        k: How many to pick.
        lambda_mult: λ in [0, 1]; 1 is pure relevance, 0 pure diversity.

    Example:
        >>> import numpy as np
        >>> docs = np.array([[1.0, 0.0], [0.99, 0.1], [0.6, 0.8]])
        >>> maximal_marginal_relevance(np.array([1.0, 0.2]), docs, k=2, lambda_mult=0.5)
        [1, 2]
    """
    if not 0.0 <= lambda_mult <= 1.0:
        raise ValueError(f"lambda_mult must be in [0, 1], got {lambda_mult}")
    candidates = _unit_rows(np.atleast_2d(np.asarray(candidate_vectors, dtype=np.float64)))
    if candidates.shape[0] == 0 or k < 1:
        return []
    query = _unit_rows(np.asarray(query_vector, dtype=np.float64).reshape(1, -1))[0]
    relevance = candidates @ query
    pairwise = candidates @ candidates.T
    selected: list[int] = []
    redundancy = np.full(candidates.shape[0], -np.inf)
    available = np.ones(candidates.shape[0], dtype=bool)
    for _ in range(min(k, candidates.shape[0])):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        scores = lambda_mult * relevance - (1.0 - lambda_mult) * penalty
        scores[~available] = -np.inf
        best = int(np.argmax(scores))  # ties: the earlier (better ranked) candidate
        selected.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, pairwise[best])
    return selected
