"""IR metrics equal trec_eval's (pytrec_eval called directly); answer metrics follow SQuAD."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from rag.core.errors import ConfigError
from rag.eval.metrics import (
    answer_in_context,
    citation_scores,
    contains_answer,
    evaluate_run,
    exact_match,
    groundedness,
    mean_metrics,
    normalize_answer,
    parse_metric,
    token_f1,
)

pytestmark = pytest.mark.unit


def _random_case(seed: int):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(25):
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 2, 3]) for d in judged}
        ranked = rng.sample(docs, rng.randint(0, 40))  # some queries retrieve nothing
        run[f"q{q}"] = {d: 100.0 - i - rng.random() * 0.5 for i, d in enumerate(ranked)}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_trec_eval_on_the_same_run(seed):
    qrels, run = _random_case(seed)
    ours = evaluate_run(qrels, run, ["ndcg@10", "ndcg@5", "recall@20", "p@5", "map@100", "mrr@10"])
    reference = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut.5,10", "recall.20", "P.5", "map_cut.100"}
    ).evaluate({q: r for q, r in run.items() if r})
    cut10 = {q: dict(sorted(r.items(), key=lambda kv: -kv[1])[:10]) for q, r in run.items() if r}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut10)
    pairs = {
        "ndcg@10": "ndcg_cut_10",
        "ndcg@5": "ndcg_cut_5",
        "recall@20": "recall_20",
        "p@5": "P_5",
        "map@100": "map_cut_100",
    }
    for query in qrels:
        for name, measure in pairs.items():
            expected = reference.get(query, {}).get(measure, 0.0)
            assert round(ours[query][name], 4) == round(expected, 4), (query, name)
        assert round(ours[query]["mrr@10"], 4) == round(rr.get(query, {}).get("recip_rank", 0.0), 4)
    assert set(ours) == set(qrels)


def test_ndcg_matches_the_formula_by_hand():
    # graded gains 3, 0, 2 at ranks 1..3; ideal order 3, 2, 1 (d4 is relevant but not retrieved)
    qrels = {"q": {"a": 3, "c": 2, "d": 1}}
    ours = evaluate_run(qrels, {"q": ["a", "b", "c"]}, ["ndcg@3"])["q"]["ndcg@3"]
    dcg = 3 / math.log2(2) + 0 + 2 / math.log2(4)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ours == pytest.approx(dcg / idcg, abs=1e-4)


def test_ranking_order_is_kept_even_with_tied_scores():
    # trec_eval would break the tie by doc id (descending) and put "z" first
    qrels = {"q": {"a": 1}}
    assert evaluate_run(qrels, {"q": {"a": 0.5, "z": 0.5}}, ["mrr@10"])["q"]["mrr@10"] == 1.0


def test_mrr_is_cut_at_k():
    qrels = {"q": {"c": 1}}
    values = evaluate_run(qrels, {"q": ["a", "b", "c"]}, ["mrr@2", "mrr@3"])["q"]
    assert values == {"mrr@2": 0.0, "mrr@3": pytest.approx(1 / 3)}


def test_judged_query_missing_from_run_scores_zero():
    per_query = evaluate_run({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": ["a"]}, ["recall@10"])
    assert per_query == {"q1": {"recall@10": 1.0}, "q2": {"recall@10": 0.0}}
    assert mean_metrics(per_query) == {"recall@10": 0.5}


def test_mean_skips_missing_values():
    assert mean_metrics({"a": {"x": 1.0, "y": None}, "b": {"x": 0.0, "y": 0.5}}) == {
        "x": 0.5,
        "y": 0.5,
    }


@pytest.mark.parametrize("bad", ["ndgc@10", "ndcg", "ndcg@0", "bleu"])
def test_unknown_metric_lists_the_valid_ones(bad):
    with pytest.raises(ConfigError, match=r"Valid: ndcg@k, recall@k, p@k, map@k, mrr@k"):
        parse_metric(bad)


def test_typo_gets_a_suggestion():
    with pytest.raises(ConfigError, match="Did you mean 'ndcg'"):
        parse_metric("ndgc@10")


def test_squad_normalization_and_scores():
    assert normalize_answer("The Eiffel-Tower, in  Paris!") == "eiffeltower in paris"
    assert exact_match("the Denver Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert exact_match("Broncos of Denver", ["Denver Broncos"]) == 0.0
    # prediction 3 tokens, gold 2, overlap 2: P=2/3, R=1 -> F1=0.8
    assert token_f1("Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    assert token_f1("nothing", ["Denver Broncos"]) == 0.0


def test_unicode_punctuation_is_punctuation():
    # SQuAD's script strips ASCII only: the typographic apostrophe missed "Grey's" and the
    # dash of an evidence answer ("1998 — Acme was ...") counted as a predicted word
    assert exact_match("Grey\u2019s Anatomy", ["Grey's Anatomy"]) == 1.0
    assert token_f1("1998 \u2014 founded in 1998", ["founded in 1998"]) == pytest.approx(6 / 7)
    assert normalize_answer("\u00abParis\u00bb \u2026 \u3001Lyon") == "paris lyon"
    symbols = "caf\u00e9 \u00b1 5 \u20ac"  # letters and symbols (Sm, Sc) stay
    assert normalize_answer(symbols) == symbols


def test_answer_in_context_matches_whole_tokens():
    assert answer_in_context(["Paris"], ["Paris is the capital."]) == 1.0
    assert answer_in_context(["Paris"], ["Parisian cafes"]) == 0.0


def test_contains_answer_finds_the_gold_answer_in_a_longer_answer():
    sentence = "Super Bowl 50 was won by the Denver Broncos, 24-10."
    assert contains_answer(sentence, ["denver broncos"]) == 1.0  # normalized
    assert exact_match(sentence, ["Denver Broncos"]) == 0.0
    assert token_f1(sentence, ["Denver Broncos"]) < 0.4
    assert contains_answer("The Parisian cafes", ["Paris"]) == 0.0  # whole words only
    assert contains_answer("Anything.", ["", "the"]) == 0.0  # nothing left to look for


def test_citation_scores():
    assert citation_scores(["d1", "d2", "d2"], ["d1", "d3"]) == {
        "citation_precision": 0.5,
        "citation_recall": 0.5,
    }
    assert citation_scores([], ["d1"]) == {"citation_precision": None, "citation_recall": 0.0}


def test_groundedness_counts_supported_content_tokens():
    assert groundedness("The capital is Paris", ["Paris is the capital of France"]) == 1.0
    assert groundedness("Berlin is the capital", ["Paris is the capital"]) == 0.5
    assert groundedness("the of", ["x"]) is None
    # an evidence answer copied verbatim, its span put first: the dash is no unsupported word
    span_first = "Meta AI Research — FAISS is a library written at Meta AI Research."
    assert groundedness(span_first, ["FAISS is a library written at Meta AI Research."]) == 1.0
    assert groundedness("— …", ["x"]) is None
    # symbols survive normalization; standing alone they are no unsupported word either
    assert groundedness("recall → 0.9 ± 0.1", ["recall was 0.9, give or take 0.1"]) == 1.0
