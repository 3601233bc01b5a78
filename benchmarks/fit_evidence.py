"""Fit the sentence weights of ``style.evidence`` and write them, with their provenance.

    .venv/bin/python benchmarks/fit_evidence.py [--data-root ../shared/data] [--seed 0]
        [--out rag/chains/styles/evidence_weights.json]

Fitting data, and only this (the rest is for ``benchmarks/answer_quality.py`` to check on):

- WikiQA train (``wikiqa_train``), split once by :func:`split_wikiqa` (seed 0) into a fitting
  half and a check half; the fitting half is used. Target: the sentences with the best token F1
  against the gold answer sentences.
- XQuAD en dev (``xquad_en_dev``) questions outside the answer-quality benchmark's held-out sample
  (:func:`xquad_held_out`: ``--limit 100 --seed 0``). Target: the sentences of the gold paragraph
  that hold the gold answer.

Contexts are retrieved as the answer-quality benchmark does: ``examples/qa.yaml``'s own
retrieval (its splitter, embedder and hybrid retriever, its chain's ``k``;
``answer_quality.PipelineRetriever``) over each dataset's paragraphs. Every sentence of the
contexts gets the features of
:func:`rag.chains.styles.evidence.sentence_candidates` (similarity from all-MiniLM-L6-v2, the
pipeline's embedder). Sentence vectors are cached by text in ``RAGLINE_BENCH_INDEX``
(default ``/tmp/ragline-bench-index``), never in the repository, so a refit is cheap.

1. Softmax regression over the sentences of each question (the target spread over its best
   sentences): the ranking weights, once with all features (``embedding``) and once without the
   similarity features (``lexical``, for a style without an embedder).
2. A logistic calibration of the best sentence's score (is it a right sentence?), folded into
   the weights and an ``intercept``, so the style's score is a probability.
3. ``min_score``: the 3rd percentile of the best sentence's probability over the fitting
   questions whose contexts hold a right sentence (so about 3 % of answerable questions abstain).

Printed: the weights, and the fitting questions' mean F1 / hit rate of the top sentence.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pickle
import random
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

DATA_ROOT = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "rag" / "chains" / "styles" / "evidence_weights.json"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
WIKIQA_FIT_SHARE = 0.5
ABSTAIN_QUANTILE = 3.0  # percent of answerable fitting questions below min_score


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def split_wikiqa(
    rows: list[dict[str, Any]], seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """WikiQA questions split once into (fitting, check) halves with ``seed``."""
    order = sorted(rows, key=lambda r: r["_id"])
    random.Random(seed).shuffle(order)
    cut = int(len(order) * WIKIQA_FIT_SHARE)
    return order[:cut], order[cut:]


def xquad_held_out(rows: list[dict[str, Any]], limit: int = 100, seed: int = 0) -> set[str]:
    """Ids of the answer-quality benchmark's XQuAD sample (``--limit 100 --seed 0``)."""
    return {r["_id"] for r in random.Random(seed).sample(rows, limit)}


class SentenceEmbeddings:
    """Question-sentence cosine similarities with one embedding model; sentence vectors cached
    by text in memory and in ``path`` (a pickle under /tmp) between runs."""

    def __init__(self, embedder: Any, path: Path | None = None) -> None:
        self.embedder = embedder
        self.path = path
        self.cache: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            self.cache = pickle.loads(path.read_bytes())
        self.queries: dict[str, np.ndarray] = {}

    def _unit(self, matrix: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms)

    def prepare(self, texts: list[str]) -> None:
        missing = sorted({t for t in texts if t not in self.cache})
        for start in range(0, len(missing), 512):
            batch = missing[start : start + 512]
            vectors = self._unit(np.asarray(self.embedder.embed_documents(batch), dtype=np.float32))
            self.cache.update(zip(batch, vectors, strict=True))
        if missing and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(pickle.dumps(self.cache))

    def similarities(self, question: str, texts: list[str]) -> list[float]:
        query = self.queries.get(question)
        if query is None:
            query = self._unit(np.asarray([self.embedder.embed_query(question)]))[0]
        return [float(self.cache[t] @ query) for t in texts]


def collect(
    rows: list[dict[str, Any]],
    hits: list[list[Any]],
    embeddings: SentenceEmbeddings,
    target: Any,
    desc: str,
) -> list[dict[str, Any]]:
    """Per question: its sentence candidates (features) and each sentence's target value. All
    sentences and questions are embedded up front, in large batches."""
    from rag.chains.styles.evidence import sentence_candidates, set_similarities

    found = [
        (
            row,
            hit,
            sentence_candidates(
                row["question"],
                [h.chunk.text for h in hit],
                metadata=[h.chunk.metadata for h in hit],
            ),
        )
        for row, hit in zip(rows, hits, strict=True)
    ]
    print(f"{desc}: embedding the sentences of {len(found)} questions", file=sys.stderr)
    embeddings.prepare([c.text for _, _, candidates in found for c in candidates])
    questions = sorted({row["question"] for row in rows})
    vectors = embeddings.embedder.embed_queries(questions)
    embeddings.queries = dict(zip(questions, embeddings._unit(np.asarray(vectors)), strict=True))
    groups = []
    for row, hit, candidates in tqdm(found, desc=desc, file=sys.stderr):
        if not candidates:
            continue
        sims = embeddings.similarities(row["question"], [c.text for c in candidates])
        set_similarities(candidates, sims)
        values = [target(row, hit[c.context], c.text) for c in candidates]
        groups.append({"row": row, "candidates": candidates, "target": np.array(values)})
    return groups


def softmax_fit(
    groups: list[tuple[np.ndarray, np.ndarray]], *, l2: float = 1e-3, steps: int = 400
) -> np.ndarray:
    """Weights maximising the mean log-softmax probability of each group's best rows (L-BFGS)."""
    from scipy.optimize import minimize

    data = [(x, (t == t.max()).astype(np.float64)) for x, t in groups if t.max() > 0]
    data = [(x, y / y.sum()) for x, y in data]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for x, y in data:
            z = x @ w
            z = z - z.max()
            p = np.exp(z) / np.exp(z).sum()
            total -= float(y @ np.log(p + 1e-12))
            grad -= x.T @ (y - p)
        n = len(data)
        return total / n + l2 * float(w @ w), grad / n + 2 * l2 * w

    start = np.zeros(groups[0][0].shape[1])
    return np.asarray(
        minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": steps}).x
    )


def calibrate(scores: np.ndarray, right: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` of ``P(right) = sigmoid(a * score + b)`` (logistic regression, one feature)."""
    from scipy.optimize import minimize

    def loss(p: np.ndarray) -> float:
        z = p[0] * scores + p[1]
        return float(np.mean(np.logaddexp(0, z) - right * z) + 1e-4 * p[0] ** 2)

    a, b = minimize(loss, np.array([1.0, 0.0]), method="Nelder-Mead").x
    return float(a), float(b)


def fit(groups: list[dict[str, Any]], features: tuple[str, ...]) -> dict[str, Any]:
    """Weights (ranking, folded with the calibration), ``min_score`` and fit figures."""
    matrices = [
        (np.array([[c.features[f] for f in features] for c in g["candidates"]]), g["target"])
        for g in groups
    ]
    w = softmax_fit(matrices)
    best_scores, right, chosen_values, answerable_scores = [], [], [], []
    for x, t in matrices:
        z = x @ w
        top = int(np.argmax(z))
        best_scores.append(float(z[top]))
        right.append(float(t[top] == t.max() and t.max() > 0))
        chosen_values.append(float(t[top]))
    a, b = calibrate(np.array(best_scores), np.array(right))
    weights = {"intercept": round(b, 4)}
    weights.update({f: round(a * float(v), 4) for f, v in zip(features, w, strict=True)})
    probabilities = 1 / (1 + np.exp(-(a * np.array(best_scores) + b)))
    for (_, t), p in zip(matrices, probabilities, strict=True):
        if t.max() > 0:
            answerable_scores.append(float(p))
    min_score = float(np.percentile(answerable_scores, ABSTAIN_QUANTILE))
    return {
        "weights": weights,
        "min_score": round(min_score, 4),
        "top_value": statistics.fmean(chosen_values),
        "top_right": statistics.fmean(right),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--wikiqa-limit",
        type=int,
        default=None,
        help="fit on a random sample of N fitting questions",
    )
    args = parser.parse_args(argv)
    wikiqa_dir, xquad_dir = args.data_root / "wikiqa_train", args.data_root / "xquad_en_dev"
    if not (wikiqa_dir / "answers.jsonl").is_file() or not (xquad_dir / "answers.jsonl").is_file():
        print(
            f"no wikiqa_train / xquad_en_dev under {args.data_root}; nothing to fit",
            file=sys.stderr,
        )
        return 0

    from answer_quality import BENCH_INDEX, PipelineRetriever

    from rag.chains.styles.evidence import FACTOID_KINDS, FEATURES, LEXICAL_FEATURES
    from rag.core.text import question_kind
    from rag.eval.metrics import normalize_answer, token_f1

    wikiqa_fit, _ = split_wikiqa(read_jsonl(wikiqa_dir / "answers.jsonl"), args.seed)
    used: dict[str, int] = {}
    xquad_rows = read_jsonl(xquad_dir / "answers.jsonl")
    held = xquad_held_out(xquad_rows)
    xquad_fit = [r for r in xquad_rows if r["_id"] not in held]

    groups: list[dict[str, Any]] = []
    k = None
    for name, rows, directory in (
        ("wikiqa_train", wikiqa_fit, wikiqa_dir),
        ("xquad_en_dev", xquad_fit, xquad_dir),
    ):
        corpus = read_jsonl(directory / "corpus.jsonl")
        retriever = PipelineRetriever(corpus, name)
        k = retriever.k
        if (
            args.wikiqa_limit is not None
            and name == "wikiqa_train"
            and args.wikiqa_limit < len(rows)
        ):
            rows = random.Random(args.seed).sample(rows, args.wikiqa_limit)
        hits = retriever.retrieve_batch([r["question"] for r in rows], k=k)
        embeddings = SentenceEmbeddings(retriever.embedder, BENCH_INDEX / "sentence_vectors.pkl")
        if name == "wikiqa_train":

            def target(row: dict[str, Any], hit: Any, text: str) -> float:
                return token_f1(text, row["answers"])

        else:

            def target(row: dict[str, Any], hit: Any, text: str) -> float:
                inside = any(normalize_answer(a) in normalize_answer(text) for a in row["answers"])
                return float(inside and hit.chunk.metadata.get("doc_id") == row["context_id"])

        found = collect(rows, hits, embeddings, target, name)
        for group in found:
            group["dataset"] = name
        used[name] = len(rows)
        print(f"{name}: {len(found)} fitting questions", file=sys.stderr)
        groups.extend(found)

    # WikiQA's questions count twice: its natural questions are what a user asks, and XQuAD's
    # short-answer target rewards the retrieval rank more than WikiQA's does. Factoid questions
    # (who / when / where / how many) get weight sets of their own.
    weighted = groups + [g for g in groups if g["dataset"] == "wikiqa_train"]
    factoid = [g for g in weighted if question_kind(g["row"]["question"]) in FACTOID_KINDS]
    other = [g for g in weighted if question_kind(g["row"]["question"]) not in FACTOID_KINDS]
    fitted = {
        "embedding": fit(other, FEATURES),
        "lexical": fit(other, LEXICAL_FEATURES),
        "embedding_factoid": fit(factoid, FEATURES),
        "lexical_factoid": fit(factoid, LEXICAL_FEATURES),
    }
    for kind, result in fitted.items():
        print(
            f"{kind}: top sentence right for {result['top_right']:.3f} of fitting questions "
            f"(mean target {result['top_value']:.3f}); min_score {result['min_score']}"
        )
        print(json.dumps(result["weights"], indent=1))
    data = {
        "provenance": {
            "script": "benchmarks/fit_evidence.py",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "datasets": {
                "wikiqa_train": f"fitting half of split_wikiqa(seed={args.seed}) "
                f"({len(wikiqa_fit)} questions): {used['wikiqa_train']} of them"
                + (f" (random sample, seed {args.seed})" if args.wikiqa_limit else ""),
                "xquad_en_dev": f"{len(xquad_fit)} questions outside answer_quality's held-out "
                "sample (--limit 100 --seed 0)",
            },
            "seed": args.seed,
            "model": f"{EMBEDDING_MODEL} (question-sentence similarity)",
            "retrieval": f"examples/qa.yaml's (splitter.markdown 240 tokens, hybrid dense "
            f"{EMBEDDING_MODEL} + BM25 fused per document), k={k}",
            "method": "softmax regression over each question's sentences (WikiQA questions "
            "counted twice; factoid questions, who/when/where/how many, in the *_factoid sets), "
            "then a logistic calibration of the best sentence's score; min_score: the "
            f"{ABSTAIN_QUANTILE:g}th percentile of answerable fitting questions",
        },
        "features": {
            kind: list(FEATURES if kind.startswith("embedding") else LEXICAL_FEATURES)
            for kind in fitted
        },
        "weights": {kind: result["weights"] for kind, result in fitted.items()},
        "min_score": {kind: result["min_score"] for kind, result in fitted.items()},
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
