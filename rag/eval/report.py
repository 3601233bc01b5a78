"""Reports of an eval run: Markdown, CSV and JSON summaries, per-query JSONL and an HTML page.

The HTML report is one self-contained file (plots embedded as PNG): each metric per variant
with bootstrap 95% confidence intervals, the latency distribution per stage, paired
significance tests against the first variant, and the worst queries with what was retrieved.

Example:
    >>> from rag.eval.report import bootstrap_ci, paired_test
    >>> low, high = bootstrap_ci([0.0, 1.0, 1.0, 0.0, 1.0])
    >>> 0.0 <= low <= 0.6 <= high <= 1.0
    True
    >>> paired_test([1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0])["n"]
    4
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.deps import require
from rag.eval.results import ANSWERS_FILE, RETRIEVAL_FILE, EvalResult, VariantResult, read_results

__all__ = [
    "ReportPaths",
    "bootstrap_ci",
    "comparisons",
    "figures",
    "paired_test",
    "summary_dict",
    "summary_markdown",
    "write_reports",
]


@dataclass
class ReportPaths:
    """Where :func:`write_reports` put each file."""

    markdown: Path
    csv: Path
    json: Path
    per_query: Path
    html: Path


def bootstrap_ci(
    values: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (``scipy.stats.bootstrap``).

    Returns ``(mean, mean)`` for fewer than two values or values that are all equal.
    """
    stats = require("scipy.stats", package="scipy", extra="eval", purpose="confidence intervals")
    import numpy as np

    data = np.asarray(list(values), dtype=float)
    if len(data) < 2 or np.all(data == data[0]):
        mean = float(data.mean()) if len(data) else math.nan
        return mean, mean
    result = stats.bootstrap(
        (data,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int | None]:
    """Paired tests on per-query values of two variants (same queries, same order).

    Returns:
        ``mean_diff`` (a - b), the two-sided ``wilcoxon_p`` (signed-rank) and ``ttest_p``
        (paired t-test), and ``n``. Identical values give p = 1.0.
    """
    stats = require("scipy.stats", package="scipy", extra="eval", purpose="significance tests")
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"paired values need equal lengths, got {len(x)} and {len(y)}")
    diff = x - y
    result: dict[str, float | int | None] = {
        "n": len(x),
        "mean_diff": float(diff.mean()) if len(x) else None,
    }
    if len(x) < 2 or not np.any(diff):
        result.update(wilcoxon_p=1.0 if len(x) else None, ttest_p=1.0 if len(x) else None)
        return result
    result["wilcoxon_p"] = float(stats.wilcoxon(x, y, zero_method="zsplit").pvalue)
    t_p = stats.ttest_rel(x, y).pvalue
    result["ttest_p"] = None if math.isnan(t_p) else float(t_p)
    return result


def _values(variant: VariantResult, metric: str) -> dict[str, float]:
    return {q: float(v[metric]) for q, v in variant.per_query.items() if v.get(metric) is not None}


def comparisons(result: EvalResult, *, metric: str | None = None) -> list[dict[str, Any]]:
    """Every variant against the first one on ``metric`` (default: the primary metric)."""
    metric = metric or result.primary_metric
    if len(result.variants) < 2:
        return []
    baseline = result.variants[0]
    base = _values(baseline, metric)
    rows = []
    for variant in result.variants[1:]:
        other = _values(variant, metric)
        common = sorted(set(base) & set(other))
        test = paired_test([other[q] for q in common], [base[q] for q in common])
        rows.append({"variant": variant.name, "baseline": baseline.name, "metric": metric, **test})
    return rows


def _confidence(result: EvalResult) -> dict[str, dict[str, tuple[float, float]]]:
    return {
        variant.name: {
            metric: bootstrap_ci(list(_values(variant, metric).values()))
            for metric in variant.metrics
        }
        for variant in result.variants
    }


def summary_dict(result: EvalResult, *, report: Path | None = None) -> dict[str, Any]:
    """The ``rag eval --json`` object.

    ``{"dataset", "variants": [{"name", "metrics", ...}], "report", ...}``.
    """
    return {
        "dataset": result.config.dataset.name,
        "primary_metric": result.primary_metric,
        "variants": [v.to_dict() for v in result.variants],
        "comparisons": comparisons(result),
        "report": str(report) if report else None,
        "seconds": round(result.seconds, 3),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def summary_markdown(result: EvalResult) -> str:
    """A Markdown table of mean metrics per variant, plus the paired tests."""
    names = result.metric_names()
    lines = [
        f"# {result.config.name}: {result.config.dataset.name}",
        "",
        "| variant | " + " | ".join(names) + " | queries |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for variant in result.variants:
        cells = [_fmt(variant.metrics.get(n)) for n in names]
        lines.append(
            f"| {variant.name} | " + " | ".join(cells) + f" | {variant.counts['queries']} |"
        )
    rows = comparisons(result)
    if rows:
        lines += [
            "",
            f"Paired tests on {result.primary_metric} against '{rows[0]['baseline']}':",
            "",
            "| variant | mean diff | Wilcoxon p | t-test p | n |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in rows:
            lines.append(
                f"| {row['variant']} | {_fmt(row['mean_diff'])} | {_fmt(row['wilcoxon_p'])} | "
                f"{_fmt(row['ttest_p'])} | {row['n']} |"
            )
    failed = {
        v.name: {k: n for k, n in v.counts.items() if k.endswith("_failed") or k == "answer_errors"}
        for v in result.variants
    }
    failed = {name: c for name, c in failed.items() if any(c.values())}
    if failed:
        lines += ["", "Failed rows (left out of the means): " + json.dumps(failed)]
    return "\n".join(lines) + "\n"


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _metric_figure(result: EvalResult, ci: Mapping[str, Mapping[str, tuple[float, float]]]) -> str:
    plt = _pyplot()
    names = result.metric_names()
    columns = min(3, len(names)) or 1
    rows = math.ceil(len(names) / columns) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    labels = [v.name for v in result.variants]
    colors = plt.cm.tab10.colors
    for index, metric in enumerate(names):
        axis = axes[index // columns][index % columns]
        means = [v.metrics.get(metric, math.nan) for v in result.variants]
        low = [m - ci[v.name].get(metric, (m, m))[0] for v, m in zip(result.variants, means)]
        high = [ci[v.name].get(metric, (m, m))[1] - m for v, m in zip(result.variants, means)]
        axis.bar(
            range(len(labels)),
            means,
            yerr=[low, high],
            capsize=4,
            color=[colors[i % len(colors)] for i in range(len(labels))],
        )
        axis.set_title(metric)
        axis.set_xticks(range(len(labels)))
        axis.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        axis.set_ylim(0, max(1.0, *(m + h for m, h in zip(means, high) if not math.isnan(m))))
        axis.grid(axis="y", alpha=0.3)
    for index in range(len(names), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.suptitle("Mean per variant (error bars: bootstrap 95% CI)")
    figure.tight_layout()
    encoded = _png(figure)
    plt.close(figure)
    return encoded


def _latency_figure(result: EvalResult) -> str | None:
    stages = sorted({s for v in result.variants for s in v.latency})
    if not stages:
        return None
    plt = _pyplot()
    columns = min(3, len(stages))
    rows = math.ceil(len(stages) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.4 * rows), squeeze=False)
    for index, stage in enumerate(stages):
        axis = axes[index // columns][index % columns]
        data = [[x * 1000 for x in v.latency.get(stage, [])] or [0.0] for v in result.variants]
        axis.boxplot(data, showfliers=True)
        axis.set_xticks(range(1, len(result.variants) + 1))
        axis.set_xticklabels([v.name for v in result.variants], rotation=20, ha="right", fontsize=8)
        axis.set_title(f"{stage} latency per query")
        axis.set_ylabel("ms")
        axis.grid(axis="y", alpha=0.3)
    for index in range(len(stages), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.tight_layout()
    encoded = _png(figure)
    plt.close(figure)
    return encoded


def figures(result: EvalResult) -> dict[str, bytes]:
    """The report's plots as PNG files' bytes: ``metrics`` (means per variant with bootstrap
    95% intervals) and, when stages were timed, ``latency`` (per-query latency per stage)."""
    encoded = {"metrics": _metric_figure(result, _confidence(result))}
    latency = _latency_figure(result)
    if latency is not None:
        encoded["latency"] = latency
    return {name: base64.b64decode(data) for name, data in encoded.items()}


def _pyplot() -> Any:
    matplotlib = require("matplotlib", package="matplotlib", extra="eval", purpose="eval plots")
    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    return plt


def _records(directory: Path, name: str) -> dict[str, dict[str, Any]]:
    return read_results(directory / name)


def _worst(result: EvalResult, *, count: int = 10) -> list[dict[str, Any]]:
    metric = result.primary_metric
    qrels = result.config.dataset.qrels
    answers = {q.id: q.answers for q in result.config.dataset.queries}
    sections = []
    for variant in result.variants:
        values = _values(variant, metric)
        retrieval = _records(variant.directory, RETRIEVAL_FILE)
        answered = _records(variant.directory, ANSWERS_FILE)
        worst = sorted(values, key=lambda q: (values[q], q))[:count]
        queries = []
        for query_id in worst:
            record = retrieval.get(query_id) or answered.get(query_id) or {}
            relevant = {d for d, rel in qrels.get(query_id, {}).items() if rel > 0}
            contexts = record.get("contexts", [])
            queries.append(
                {
                    "id": query_id,
                    "text": record.get("query") or record.get("question", ""),
                    "value": values[query_id],
                    "relevant": sorted(relevant)[:10],
                    "gold_answers": answers.get(query_id, []),
                    "answer": (answered.get(query_id) or {}).get("answer"),
                    "contexts": [{**c, "relevant": c.get("doc_id") in relevant} for c in contexts],
                }
            )
        sections.append({"variant": variant.name, "metric": metric, "queries": queries})
    return sections


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>ragline eval: {{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; background: #e8f5e9; }
img { max-width: 100%; }
details { margin: 0.4em 0; }
.ctx { font-size: 13px; margin: 0.3em 0 0.3em 1em; padding: 4px 8px; border-left: 3px solid #ccc; }
.ctx.rel { border-left-color: #2e7d32; background: #f1f8e9; }
.muted { color: #666; font-size: 13px; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="muted">dataset <b>{{ dataset.name }}</b>: {{ dataset.queries }} queries
({{ dataset.judged_queries }} judged), {{ dataset.documents }} documents ·
pipeline {{ pipeline }} · k = {{ k }} · primary metric <b>{{ primary }}</b> ·
{{ seconds }} s in this invocation (resumed work is not re-timed)</p>
<h2>Summary</h2>
<table><tr><th>variant</th>{% for m in metrics %}<th>{{ m }}</th>{% endfor %}
<th>queries</th></tr>
{% for v in variants %}<tr><td>{{ v.name }}</td>
{% for m in metrics %}<td class="{{ 'best' if best[m] == v.name else '' }}">
{{ fmt(v.metrics.get(m)) }}
<br><span class="muted">[{{ fmt(ci[v.name].get(m, (none, none))[0]) }},
{{ fmt(ci[v.name].get(m, (none, none))[1]) }}]</span></td>{% endfor %}
<td>{{ v.counts.queries }}</td></tr>{% endfor %}
</table>
<p class="muted">Brackets: bootstrap 95% confidence interval of the mean over queries.</p>
{% if failures %}<p><b>Failed rows</b> (counted, left out of the means): {{ failures }}</p>
{% endif %}
<img alt="metrics per variant" src="data:image/png;base64,{{ metric_png }}">
{% if tests %}
<h2>Paired significance tests ({{ primary }}, against {{ tests[0].baseline }})</h2>
<table><tr><th>variant</th><th>mean diff</th><th>Wilcoxon p</th><th>paired t-test p</th>
<th>n</th></tr>
{% for t in tests %}<tr><td>{{ t.variant }}</td><td>{{ fmt(t.mean_diff) }}</td>
<td>{{ fmt(t.wilcoxon_p) }}</td>
<td>{{ fmt(t.ttest_p) }}</td><td>{{ t.n }}</td></tr>{% endfor %}</table>{% endif %}
{% if latency_png %}<h2>Latency</h2>
<p class="muted">Queries retrieved in a batch share one embedding call: their latency is the
batch's mean.</p>
<img alt="latency per stage" src="data:image/png;base64,{{ latency_png }}">{% endif %}
<h2>Variants</h2>
<table><tr><th>variant</th><th>parameters</th><th>ingestion</th><th>results</th></tr>
{% for v in variants %}<tr><td>{{ v.name }}</td>
<td style="text-align:left"><code>{{ v.params }}</code></td>
<td style="text-align:left">{{ v.ingest.get('chunks_written', '') }} chunks written,
{{ v.ingest.get('seconds', '') }} s</td>
<td style="text-align:left"><code>{{ v.directory }}</code></td></tr>{% endfor %}</table>
<h2>Worst queries by {{ primary }}</h2>
{% for section in worst %}<h3>{{ section.variant }}</h3>
{% for q in section.queries %}<details>
<summary><b>{{ fmt(q.value) }}</b> · {{ q.id }}: {{ q.text }}</summary>
{% if q.relevant %}<p class="muted">relevant: {{ q.relevant|join(', ') }}</p>{% endif %}
{% if q.gold_answers %}<p class="muted">gold answers: {{ q.gold_answers|join(' | ') }}
{% if q.answer is not none %} · answer: {{ q.answer }}{% endif %}</p>{% endif %}
{% for c in q.contexts %}<div class="ctx{{ ' rel' if c.relevant else '' }}"><b>{{ c.doc_id }}</b>
<span class="muted">score {{ fmt(c.score) }}{{ ' · relevant' if c.relevant else '' }}</span>
<br>{{ c.text }}</div>{% endfor %}
</details>{% endfor %}{% endfor %}
</body></html>
"""


def render_html(result: EvalResult) -> str:
    """The self-contained HTML report."""
    jinja2 = require("jinja2", package="jinja2", extra="eval", purpose="the HTML eval report")
    ci = _confidence(result)
    metrics = result.metric_names()
    best = {}
    for metric in metrics:
        scored = [(v.metrics[metric], v.name) for v in result.variants if metric in v.metrics]
        best[metric] = max(scored)[1] if len(scored) > 1 else None
    failures = {
        v.name: {
            k: n
            for k, n in v.counts.items()
            if (k.endswith("_failed") or k == "answer_errors") and n
        }
        for v in result.variants
    }
    environment = jinja2.Environment(autoescape=True)
    template = environment.from_string(_TEMPLATE)
    return template.render(
        title=result.config.name,
        dataset=result.config.dataset.summary(),
        pipeline=result.config.pipeline_path,
        k=result.config.k,
        primary=result.primary_metric,
        seconds=f"{result.seconds:.1f}",
        metrics=metrics,
        variants=result.variants,
        best=best,
        ci=ci,
        fmt=_fmt,
        none=None,
        failures={k: v for k, v in failures.items() if v},
        metric_png=_metric_figure(result, ci),
        latency_png=_latency_figure(result),
        tests=comparisons(result),
        worst=_worst(result),
    )


def write_reports(result: EvalResult, *, out_dir: str | Path | None = None) -> ReportPaths:
    """Write ``summary.{md,csv,json}``, ``per_query.jsonl`` and ``report.html``.

    Args:
        result: From :func:`rag.eval.runner.run_eval`.
        out_dir: Target folder (default: the run's out dir).
    """
    out = Path(out_dir or result.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        markdown=out / "summary.md",
        csv=out / "summary.csv",
        json=out / "summary.json",
        per_query=out / "per_query.jsonl",
        html=out / "report.html",
    )
    paths.markdown.write_text(summary_markdown(result), encoding="utf-8")
    names = result.metric_names()
    with paths.csv.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", *names, "queries"])
        for variant in result.variants:
            writer.writerow(
                [
                    variant.name,
                    *(f"{variant.metrics[n]:.6f}" if n in variant.metrics else "" for n in names),
                    variant.counts["queries"],
                ]
            )
    with paths.per_query.open("w", encoding="utf-8") as handle:
        for variant in result.variants:
            for query_id, values in variant.per_query.items():
                row = {"variant": variant.name, "query_id": query_id, "metrics": values}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    paths.html.write_text(render_html(result), encoding="utf-8")
    paths.json.write_text(
        json.dumps(summary_dict(result, report=paths.html), indent=2, default=str),
        encoding="utf-8",
    )
    return paths
