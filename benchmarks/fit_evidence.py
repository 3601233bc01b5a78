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
   sentences, L2 penalty :data:`L2`): the ranking weights, once with all features
   (``embedding``) and once without the similarity features (``lexical``, for a style without
   an embedder), fitted on both sets, WikiQA's questions counted twice (:func:`weight_set_groups`);
   factoid questions (who / when / where / how many) get weight sets of their own
   (``*_factoid``).
2. A logistic calibration (is the best sentence a right one?) over the best sentence's score
   and its similarity and coverage levels, alone and with the sentence before it
   (:data:`LEVELS`), folded into the weights and an ``intercept``, so the style's score is a
   probability. Each fitting question is also asked with another question's contexts
   (:func:`unrelated_contexts`) as a case with no answer.
3. ``min_score``: the 1st percentile of the best sentence's probability over the fitting
   questions whose contexts hold a right sentence (about 1 % of answerable fitting questions
   abstain; held-out questions abstain more, see ``benchmarks/answer_quality.py``).

Printed: the weights, the fitting questions' mean F1 / hit rate of the top sentence, and how
often each set abstains on the fitting questions asked with unrelated contexts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pickle
import random
import statistics
import subprocess
import sys
from collections.abc import Sequence
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
ABSTAIN_QUANTILE = 1.0  # percent of answerable fitting questions below min_score
L2 = 1e-4
"""The weights' L2 penalty. Five-fold cross-validation on the fitting questions is flat over
1e-4 .. 2e-3 (WikiQA F1 0.640 / 0.644 / 0.640 at 1e-4 / 5e-4 / 2e-3, XQuAD holds 0.814 / 0.814
/ 0.806), so the earlier fit's 1e-4 stays."""


def code_commit(out: Path) -> str:
    """The commit whose code computed the features (short hash), with ``+changes`` when
    ``rag/`` or ``benchmarks/`` differ from it (``out`` itself aside); ``unknown`` outside a git
    checkout. Weights fitted on another commit's features can weigh features that the style no
    longer computes the same way: refit when this is far behind."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    root, target = ROOT.resolve(), out.resolve()
    paths = ["rag", "benchmarks"]
    if target.is_relative_to(root):
        paths.append(f":(exclude){target.relative_to(root)}")
    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", *paths)
    except OSError:
        return "unknown"
    return head + ("+changes" if changed else "")


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


XQUAD_FOLDS = 6
"""Folds of ``benchmarks/crossfit_xquad.py``: fold 0 is :func:`xquad_held_out` (what the
shipped files leave out), folds 1-5 split the other questions."""


def xquad_fold(rows: list[dict[str, Any]], fold: int = 0) -> set[str]:
    """Ids of XQuAD cross-fitting fold ``fold`` (0 .. :data:`XQUAD_FOLDS` - 1): fold 0 is the
    answer-quality benchmark's held-out sample, folds 1-5 the other questions shuffled (seed 7)
    and dealt out in turn; a fit with ``--fold K`` leaves fold K out."""
    if not 0 <= fold < XQUAD_FOLDS:
        raise ValueError(f"fold must be 0 to {XQUAD_FOLDS - 1}, got {fold}")
    held = xquad_held_out(rows)
    if fold == 0:
        return held
    rest = sorted(r["_id"] for r in rows if r["_id"] not in held)
    random.Random(7).shuffle(rest)
    return set(rest[fold - 1 :: XQUAD_FOLDS - 1])


def add_fold_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--fold K`` option of the fit scripts: the XQuAD fold (:func:`xquad_fold`) left out."""
    parser.add_argument("--fold", type=int, default=0, choices=range(XQUAD_FOLDS), help=help)


def xquad_fit_provenance(count: int, fold: int) -> str:
    """How a fit's provenance names the ``count`` XQuAD questions it used (all but ``fold``)."""
    left_out = (
        "answer_quality's held-out sample (--limit 100 --seed 0)"
        if fold == 0
        else f"cross-fitting fold {fold} (xquad_fold)"
    )
    return f"{count} questions outside {left_out}"


class SentenceEmbeddings:
    """Unit vectors of questions and sentences with one embedding model; sentence vectors
    cached by text in memory and in ``path`` (a pickle under /tmp) between runs."""

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

    def query(self, question: str) -> np.ndarray:
        """The unit vector of ``question``."""
        query = self.queries.get(question)
        if query is None:
            query = self._unit(np.asarray([self.embedder.embed_query(question)]))[0]
        return query


def collect(
    rows: list[dict[str, Any]],
    hits: list[list[Any]],
    embeddings: SentenceEmbeddings,
    target: Any,
    desc: str,
) -> list[dict[str, Any]]:
    """Per question: its sentence candidates (features) and each sentence's target value. All
    sentences and questions are embedded up front, in large batches."""
    from rag.chains.styles.evidence import sentence_candidates, set_vector_similarities

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
    embeddings.prepare([c.text_in_context for _, _, candidates in found for c in candidates])
    questions = sorted({row["question"] for row in rows})
    vectors = embeddings.embedder.embed_queries(questions)
    embeddings.queries = dict(zip(questions, embeddings._unit(np.asarray(vectors)), strict=True))
    groups = []
    for row, hit, candidates in tqdm(found, desc=desc, file=sys.stderr):
        if not candidates:
            continue
        query = embeddings.query(row["question"])
        matrix = np.stack([embeddings.cache[c.text_in_context] for c in candidates])
        set_vector_similarities(candidates, matrix, query)
        values = [target(row, hit[c.context], c.text) for c in candidates]
        groups.append({"row": row, "candidates": candidates, "target": np.array(values)})
    return groups


def unrelated_contexts(
    rows: list[dict[str, Any]], hits: list[list[Any]], seed: int = 0
) -> list[list[Any]]:
    """For each question, the contexts retrieved for another question whose gold document is
    another one (``doc_id`` / ``context_id`` and ``title`` differ): no sentence answers it."""
    order = list(range(len(rows)))
    random.Random(seed + 1).shuffle(order)

    def gold(row: dict[str, Any]) -> tuple[Any, Any]:
        return row.get("doc_id", row.get("context_id")), row.get("title")

    donors = []
    for i, row in enumerate(rows):
        for j in order[i:] + order[:i]:
            if all(a is None or a != b for a, b in zip(gold(row), gold(rows[j]), strict=True)):
                donors.append(hits[j])
                break
        else:
            donors.append([])
    return donors


def softmax_fit(
    groups: list[tuple[np.ndarray, np.ndarray]], *, l2: float = L2, steps: int = 500
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


LEVELS = ("similarity", "coverage", "similarity_window", "coverage_window")
"""Features whose level (not only their rank within a question) the calibration reads: it adds
``c * level`` to a feature and ``-c * level`` to its ``_gap``, which moves every sentence of a
question alike (the ranking stays) but lets an unrelated best sentence score low."""


def calibrate(columns: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Logistic regression ``P(right) = sigmoid(columns @ c[:-1] + c[-1])`` (small L2)."""
    from scipy.optimize import minimize

    x = np.hstack([columns, np.ones((len(columns), 1))])

    def loss(c: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ c
        p = 1 / (1 + np.exp(-z))
        penalty = 1e-4 * float(c[:-1] @ c[:-1])
        grad = x.T @ (p - right) / len(x)
        grad[:-1] += 2e-4 * c[:-1]
        return float(np.mean(np.logaddexp(0, z) - right * z)) + penalty, grad

    start = np.zeros(x.shape[1])
    start[0] = 1.0
    return np.asarray(minimize(loss, start, jac=True, method="L-BFGS-B").x)


def fit(
    groups: list[dict[str, Any]],
    features: tuple[str, ...],
    unrelated: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Weights (ranking, folded with the calibration), ``min_score`` and fit figures.

    ``unrelated``: questions asked with another question's contexts (no right sentence); the
    calibration learns from them that a best sentence far from the question is no answer."""
    levels = [features.index(f) for f in LEVELS if f in features and f"{f}_gap" in features]

    def matrix(group: dict[str, Any]) -> np.ndarray:
        return np.array([[c.features[f] for f in features] for c in group["candidates"]])

    matrices = [(matrix(g), g["target"]) for g in groups]
    w = softmax_fit(matrices)
    columns, right, chosen_values = [], [], []
    for x, t in [*matrices, *((matrix(g), None) for g in unrelated)]:
        z = x @ w
        top = int(np.argmax(z))
        columns.append([float(z[top]), *(float(x[top, i]) for i in levels)])
        right.append(float(t is not None and t[top] == t.max() and t.max() > 0))
        if t is not None:
            chosen_values.append(float(t[top]))
    c = calibrate(np.array(columns), np.array(right))
    folded = c[0] * w
    for i, level in zip(levels, c[1:-1], strict=True):
        folded[i] += level
        folded[features.index(f"{features[i]}_gap")] -= level
    weights = {"intercept": round(float(c[-1]), 4)}
    weights.update({f: round(float(v), 4) for f, v in zip(features, folded, strict=True)})
    probabilities = 1 / (1 + np.exp(-(np.array(columns) @ c[:-1] + c[-1])))
    answerable = [
        float(p) for (_, t), p in zip(matrices, probabilities[: len(matrices)]) if t.max() > 0
    ]
    unrelated_p = probabilities[len(matrices) :]
    min_score = float(np.percentile(answerable, ABSTAIN_QUANTILE))
    return {
        "weights": weights,
        "min_score": round(min_score, 4),
        "top_value": statistics.fmean(chosen_values),
        "top_right": statistics.fmean(right[: len(matrices)]),
        "unrelated_abstain": float(np.mean(unrelated_p < min_score)) if len(unrelated_p) else None,
    }


def is_factoid(group: dict[str, Any]) -> bool:
    """Whether ``group``'s question is factoid (who / when / where / how many): it is ranked by
    the ``*_factoid`` weight sets."""
    from rag.chains.styles.evidence import factoid_weighted

    return factoid_weighted(group["row"]["question"])


def weight_set_groups(
    groups: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The questions each weight set is fitted on: (questions that ask no short answer, factoid
    questions: who / when / where / how many), both from both datasets, WikiQA's counted twice
    (its natural questions are what a user asks).

    In a five-fold cross-validation over the fitting questions (2026-12-07, two shuffles
    averaged), fitting the first set on both datasets instead of WikiQA alone, with the
    ``novelty`` feature, raised the top sentence's mean target from 0.646 to 0.659 (WikiQA F1)
    and from 0.804 to 0.814 (XQuAD holds); counting WikiQA once gave 0.668 / 0.817 but answered
    the quick start's "What does the parameter M control in an HNSW index?" with "Three
    parameters control an HNSW index."."""
    weighted = groups + [g for g in groups if g["dataset"] == "wikiqa_train"]
    other = [g for g in weighted if not is_factoid(g)]
    factoid = [g for g in weighted if is_factoid(g)]
    return other, factoid


def fitting_groups(
    data_root: Path,
    seed: int = 0,
    wikiqa_limit: int | None = None,
    with_unrelated: bool = True,
    fold: int = 0,
) -> dict[str, Any]:
    """The fitting questions' sentence candidates and targets (:func:`collect`), retrieved as
    the answer-quality benchmark retrieves (XQuAD without :func:`xquad_fold` ``fold``; 0: the
    benchmark's held-out sample): ``groups`` (each with its ``dataset``),
    ``unrelated`` (each asked with another question's contexts; empty unless
    ``with_unrelated``), ``used`` (questions per dataset), ``k``, ``wikiqa_fit`` and
    ``xquad_fit`` (the fitting rows)."""
    from answer_quality import BENCH_INDEX, PipelineRetriever

    from rag.eval.metrics import normalize_answer, token_f1

    wikiqa_dir, xquad_dir = data_root / "wikiqa_train", data_root / "xquad_en_dev"
    wikiqa_fit, _ = split_wikiqa(read_jsonl(wikiqa_dir / "answers.jsonl"), seed)
    used: dict[str, int] = {}
    xquad_rows = read_jsonl(xquad_dir / "answers.jsonl")
    held = xquad_fold(xquad_rows, fold)
    xquad_fit = [r for r in xquad_rows if r["_id"] not in held]

    groups: list[dict[str, Any]] = []
    unrelated: list[dict[str, Any]] = []
    k = None
    for name, rows, directory in (
        ("wikiqa_train", wikiqa_fit, wikiqa_dir),
        ("xquad_en_dev", xquad_fit, xquad_dir),
    ):
        corpus = read_jsonl(directory / "corpus.jsonl")
        retriever = PipelineRetriever(corpus, name)
        k = retriever.k
        if wikiqa_limit is not None and name == "wikiqa_train" and wikiqa_limit < len(rows):
            rows = random.Random(seed).sample(rows, wikiqa_limit)
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
        if with_unrelated:
            donors = unrelated_contexts(rows, hits, seed)
            unrelated.extend(collect(rows, donors, embeddings, lambda *_: 0.0, f"{name} unrelated"))

    return {
        "groups": groups,
        "unrelated": unrelated,
        "used": used,
        "k": k,
        "wikiqa_fit": wikiqa_fit,
        "xquad_fit": xquad_fit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    add_fold_argument(
        parser,
        "the XQuAD fold left out (0: answer_quality's held-out sample; 1-5: for "
        "benchmarks/crossfit_xquad.py)",
    )
    parser.add_argument(
        "--wikiqa-limit",
        type=int,
        default=None,
        help="fit on a random sample of N fitting questions",
    )
    args = parser.parse_args(argv)
    commit = code_commit(args.out)  # before the fit: the code that computes the features
    wikiqa_dir, xquad_dir = args.data_root / "wikiqa_train", args.data_root / "xquad_en_dev"
    if not (wikiqa_dir / "answers.jsonl").is_file() or not (xquad_dir / "answers.jsonl").is_file():
        print(
            f"no wikiqa_train / xquad_en_dev under {args.data_root}; nothing to fit",
            file=sys.stderr,
        )
        return 0

    from rag.chains.styles.evidence import FEATURES, LEXICAL_FEATURES

    found = fitting_groups(args.data_root, args.seed, args.wikiqa_limit, fold=args.fold)
    groups, unrelated, used, k = found["groups"], found["unrelated"], found["used"], found["k"]
    wikiqa_fit, xquad_fit = found["wikiqa_fit"], found["xquad_fit"]

    other, factoid = weight_set_groups(groups)
    unrelated_factoid = [g for g in unrelated if is_factoid(g)]
    unrelated_other = [g for g in unrelated if g not in unrelated_factoid]
    fitted = {
        "embedding": fit(other, FEATURES, unrelated_other),
        "lexical": fit(other, LEXICAL_FEATURES, unrelated_other),
        "embedding_factoid": fit(factoid, FEATURES, unrelated_factoid),
        "lexical_factoid": fit(factoid, LEXICAL_FEATURES, unrelated_factoid),
    }
    for kind, result in fitted.items():
        print(
            f"{kind}: top sentence right for {result['top_right']:.3f} of fitting questions "
            f"(mean target {result['top_value']:.3f}); min_score {result['min_score']}; "
            f"abstains on {result['unrelated_abstain']:.3f} of questions asked with unrelated "
            "contexts"
        )
        print(json.dumps(result["weights"], indent=1))
    data = {
        "provenance": {
            "script": "benchmarks/fit_evidence.py",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "commit": commit,
            "datasets": {
                "wikiqa_train": f"fitting half of split_wikiqa(seed={args.seed}) "
                f"({len(wikiqa_fit)} questions): {used['wikiqa_train']} of them"
                + (f" (random sample, seed {args.seed})" if args.wikiqa_limit else ""),
                "xquad_en_dev": xquad_fit_provenance(len(xquad_fit), args.fold),
            },
            "seed": args.seed,
            "model": f"{EMBEDDING_MODEL} (question-sentence similarity)",
            "retrieval": f"examples/qa.yaml's (splitter.markdown 240 tokens, hybrid dense "
            f"{EMBEDDING_MODEL} + BM25 fused per document), k={k}",
            "method": f"softmax regression (L2 {L2:g}) over each question's sentences of both "
            "sets, WikiQA's counted twice: questions that ask no short answer in the embedding / "
            "lexical sets, factoid questions (who/when/where/how many) in the *_factoid sets; "
            "then a logistic calibration of the best sentence's score and its similarity and "
            "coverage levels (alone and with the sentence before it), with each fitting "
            "question also asked with another question's contexts as a no-answer case; "
            "min_score: "
            f"{ABSTAIN_QUANTILE:g} % of the answerable fitting questions score below it",
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
