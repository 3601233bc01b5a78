"""Metrics as pure functions: IR metrics through ``pytrec_eval``, answer metrics as SQuAD does.

IR metric names are stable, lower case and take a cutoff: ``ndcg@10``, ``recall@100``,
``mrr@10``, ``map@100``, ``p@5``. They are computed by trec_eval (through ``pytrec_eval``), so
they equal ``trec_eval -m ndcg_cut.10`` and friends on the same run:

====================  ===========================================================
ragline               trec_eval measure
====================  ===========================================================
``ndcg@k``            ``ndcg_cut.k`` (linear gain: the graded relevance)
``recall@k``          ``recall.k``
``p@k``               ``P.k``
``map@k``             ``map_cut.k``
``mrr@k``             ``recip_rank`` on the run cut to its first k documents
====================  ===========================================================

Answer metrics: :func:`exact_match` and :func:`token_f1` (SQuAD v1.1, with MLQA's punctuation:
:func:`normalize_answer`),
:func:`contains_answer` (a sentence answer that holds the gold answer), :func:`answer_in_context`,
:func:`citation_scores`, :func:`groundedness`.

Example:
    >>> from rag.eval.metrics import evaluate_run, mean_metrics
    >>> qrels = {"q1": {"d1": 1, "d3": 1}}
    >>> per_query = evaluate_run(qrels, {"q1": ["d1", "d2", "d3"]}, ["recall@2", "mrr@10"])
    >>> per_query["q1"]
    {'recall@2': 0.5, 'mrr@10': 1.0}
    >>> mean_metrics(per_query)
    {'recall@2': 0.5, 'mrr@10': 1.0}
"""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rag.core.deps import require
from rag.core.errors import ConfigError, did_you_mean
from rag.core.text import STOPWORDS

__all__ = [
    "ANSWER_METRICS",
    "IR_METRIC_FAMILIES",
    "MetricName",
    "answer_in_context",
    "citation_scores",
    "contains_answer",
    "evaluate_run",
    "exact_match",
    "groundedness",
    "mean_metrics",
    "normalize_answer",
    "parse_metric",
    "token_f1",
    "validate_metric_names",
]

IR_METRIC_FAMILIES = {
    "ndcg": "ndcg_cut",
    "recall": "recall",
    "p": "P",
    "map": "map_cut",
    "mrr": "recip_rank",
}
"""ragline family -> trec_eval measure."""

ANSWER_METRICS = (
    "exact_match",
    "f1",
    "contains_answer",
    "answer_in_context",
    "citation_precision",
    "citation_recall",
    "groundedness",
)
"""Model-free answer metrics (need the chain)."""

JUDGE_METRICS = ("faithfulness", "answer_relevance")
"""Metrics scored by a judge generator."""


@dataclass(frozen=True)
class MetricName:
    """A parsed IR metric name such as ``ndcg@10``."""

    family: str
    k: int

    def __str__(self) -> str:
        return f"{self.family}@{self.k}"

    @property
    def trec_measure(self) -> str:
        """The trec_eval measure computing it (``ndcg_cut_10``; MRR cuts the run instead)."""
        measure = IR_METRIC_FAMILIES[self.family]
        return measure if self.family == "mrr" else f"{measure}_{self.k}"


_METRIC_RE = re.compile(r"^([a-z]+)@(\d+)$")


def parse_metric(name: str) -> MetricName:
    """Parse ``ndcg@10``.

    Raises:
        ConfigError: an unknown family or a missing/invalid cutoff, listing the valid forms.
    """
    match = _METRIC_RE.match(name.strip().lower())
    valid = ", ".join(f"{f}@k" for f in IR_METRIC_FAMILIES)
    if not match or match.group(1) not in IR_METRIC_FAMILIES or int(match.group(2)) < 1:
        family = name.split("@")[0].lower()
        hint = did_you_mean(family, IR_METRIC_FAMILIES) if "@" in name else ""
        raise ConfigError(
            f"unknown metric '{name}'.{hint} Valid: {valid} (k >= 1, e.g. ndcg@10), "
            f"{', '.join(ANSWER_METRICS)}, {', '.join(JUDGE_METRICS)}"
        )
    return MetricName(match.group(1), int(match.group(2)))


def validate_metric_names(names: Iterable[str]) -> tuple[list[MetricName], list[str]]:
    """Split metric names into IR metrics and answer/judge metrics, rejecting unknown ones.

    Raises:
        ConfigError: an unknown name, listing the valid ones.
    """
    ir: list[MetricName] = []
    other: list[str] = []
    for name in names:
        if name in ANSWER_METRICS or name in JUDGE_METRICS:
            other.append(name)
        else:
            ir.append(parse_metric(name))
    return ir, other


# -- IR metrics --------------------------------------------------------------------------------
def _as_scored(ranking: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """Scores that reproduce the given order in trec_eval.

    trec_eval re-sorts a run by score and breaks ties by document id, which would silently
    reorder a ranking with tied scores; rank-derived scores keep the ranking as given.
    """
    if isinstance(ranking, Mapping):
        ordered = sorted(ranking, key=lambda d: -float(ranking[d]))
    else:
        ordered = list(dict.fromkeys(ranking))
    return {doc: float(len(ordered) - i) for i, doc in enumerate(ordered)}


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Sequence[str] | Mapping[str, float]],
    metrics: Sequence[str | MetricName],
) -> dict[str, dict[str, float]]:
    """Per-query IR metrics of a run, computed by trec_eval.

    Args:
        qrels: ``{query_id: {doc_id: relevance}}``; relevance ``>= 1`` is relevant.
        run: ``{query_id: [doc_id, ...]}`` best first, or ``{query_id: {doc_id: score}}``
            (higher is better; ties keep the mapping's order).
        metrics: Names such as ``ndcg@10``.

    Returns:
        ``{query_id: {metric: value}}`` for every judged query; a judged query that the run
        misses scores 0 (as ``trec_eval -c``).
    """
    pytrec_eval = require(
        "pytrec_eval", package="pytrec-eval-terrier", extra="eval", purpose="IR metrics"
    )
    parsed = [m if isinstance(m, MetricName) else parse_metric(m) for m in metrics]
    judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    scored = {q: _as_scored(run.get(q, ())) for q in judged}
    per_query: dict[str, dict[str, float]] = {q: {} for q in judged}
    plain = [m for m in parsed if m.family != "mrr"]
    if plain:
        measures = {IR_METRIC_FAMILIES[m.family] + "." + str(m.k) for m in plain}
        results = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(
            {q: s for q, s in scored.items() if s}
        )
        for query in judged:
            values = results.get(query, {})
            for metric in plain:
                per_query[query][str(metric)] = float(values.get(metric.trec_measure, 0.0))
    for metric in (m for m in parsed if m.family == "mrr"):
        cut = {
            q: dict(sorted(s.items(), key=lambda kv: -kv[1])[: metric.k]) for q, s in scored.items()
        }
        results = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(
            {q: s for q, s in cut.items() if s}
        )
        for query in judged:
            per_query[query][str(metric)] = float(results.get(query, {}).get("recip_rank", 0.0))
    # keep the caller's metric order
    order = [str(m) for m in parsed]
    return {q: {name: values[name] for name in order} for q, values in per_query.items()}


def mean_metrics(per_query: Mapping[str, Mapping[str, float | None]]) -> dict[str, float]:
    """Mean of every metric over the queries that have a value for it (``None`` is skipped)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for values in per_query.values():
        for name, value in values.items():
            if value is None:
                continue
            sums[name] = sums.get(name, 0.0) + float(value)
            counts[name] = counts.get(name, 0) + 1
    return {name: sums[name] / counts[name] for name in sums}


# -- answer metrics (SQuAD v1.1) ---------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")


class _PunctuationTable(dict[int, int | None]):
    """A ``str.translate`` table that deletes punctuation: ASCII's and every Unicode ``P*``
    character, decided once per code point."""

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        punctuation = char in string.punctuation or unicodedata.category(char).startswith("P")
        self[code] = None if punctuation else code
        return self[code]


_PUNCTUATION = _PunctuationTable()


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalization: lower case, no punctuation, no articles, single spaces.

    Punctuation is ASCII's and Unicode's (category ``P*``), as the MLQA evaluation script
    has it: SQuAD's script removes ASCII punctuation only, so "Grey’s" (a typographic
    apostrophe) would not match "Grey's" and a dash "—" would count as a word.

    >>> normalize_answer("The  Denver Broncos!")
    'denver broncos'
    >>> normalize_answer("Grey’s Anatomy — «season 3»")
    'greys anatomy season 3'
    """
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalized prediction equals any normalized gold answer.

    >>> exact_match("the Broncos", ["Broncos"])
    1.0
    """
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(a) for a in answers))


def _f1(prediction: str, answer: str) -> float:
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(answer).split()
    common = collections.Counter(predicted) & collections.Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted)
    recall = overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1, the maximum over gold answers.

    >>> round(token_f1("Denver Broncos won", ["Denver Broncos"]), 4)
    0.8
    """
    return max((_f1(prediction, a) for a in answers), default=0.0)


def contains_answer(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when a normalized gold answer occurs, as whole words, in the normalized prediction.

    The measure for answers longer than the gold one (a quoted sentence, a generated
    paragraph), which exact match and token F1 score low even when they are right.

    >>> contains_answer("The Broncos won Super Bowl 50.", ["Denver Broncos", "Broncos"])
    1.0
    >>> contains_answer("The Panthers lost.", ["Broncos"])
    0.0
    """
    return answer_in_context(answers, [prediction])


def answer_in_context(answers: Sequence[str], contexts: Sequence[str]) -> float:
    """1.0 when any normalized gold answer occurs in any normalized retrieved context.

    >>> answer_in_context(["Denver Broncos"], ["... the Denver Broncos defeated ..."])
    1.0
    """
    normalized = [f" {normalize_answer(c)} " for c in contexts]
    for answer in answers:
        needle = normalize_answer(answer)
        if needle and any(f" {needle} " in c for c in normalized):
            return 1.0
    return 0.0


def citation_scores(cited: Iterable[str], gold: Iterable[str]) -> dict[str, float | None]:
    """Precision and recall of cited document ids against gold document ids.

    Precision is ``None`` when nothing was cited, recall is ``None`` when there is no gold
    document: a missing value is left out of the mean instead of counting as 0 or 1.

    >>> citation_scores(["d1", "d2"], ["d1"])
    {'citation_precision': 0.5, 'citation_recall': 1.0}
    """
    cited_set, gold_set = set(cited), set(gold)
    hits = len(cited_set & gold_set)
    return {
        "citation_precision": hits / len(cited_set) if cited_set else None,
        "citation_recall": hits / len(gold_set) if gold_set else None,
    }


def content_tokens(text: str) -> list[str]:
    """Normalized tokens without stop words and without tokens of no letter or digit (what
    :func:`groundedness` checks): normalization removes punctuation but keeps symbols, and an
    arrow or a "±" standing alone is no word.

    >>> content_tokens("Meta AI — FAISS is → a library ±")
    ['meta', 'ai', 'faiss', 'library']
    """
    return [
        t
        for t in normalize_answer(text).split()
        if t not in STOPWORDS and any(ch.isalnum() for ch in t)
    ]


def groundedness(answer: str, contexts: Sequence[str]) -> float | None:
    """Share of the answer's content tokens that occur in the cited contexts (model-free).

    Returns ``None`` for an answer without content tokens (nothing to check).

    >>> groundedness("Broncos won in Santa Clara", ["The Broncos won. Levi's Stadium, Santa Clara"])
    1.0
    >>> groundedness("Panthers won", ["The Broncos won."])
    0.5
    """
    tokens = content_tokens(answer)
    if not tokens:
        return None
    supported = {t for c in contexts for t in normalize_answer(c).split()}
    return sum(1 for t in tokens if t in supported) / len(tokens)
