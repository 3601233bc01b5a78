"""``rag eval eval.yaml [--out DIR] [--fail-under metric=value ...] [--mlflow] [--wandb] [--json]``.

Exit codes: 0 every gate passed; 1 a gate was missed (or the job failed); 2 bad usage or
configuration, including a gate on a metric the eval file does not compute.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from rag.core.errors import ConfigError, MissingDependencyError, RagError

__all__ = ["check_gates", "eval_command", "log_to_mlflow", "parse_gates"]


def parse_gates(items: Sequence[str]) -> dict[str, float]:
    """``["ndcg@10=0.30"]`` -> ``{"ndcg@10": 0.30}``.

    Raises:
        ConfigError: an item that is not ``metric=number``.
    """
    gates: dict[str, float] = {}
    for item in items:
        metric, sep, raw = item.partition("=")
        try:
            if not sep or not metric.strip():
                raise ValueError
            gates[metric.strip()] = float(raw)
        except ValueError:
            raise ConfigError(
                f"--fail-under expects metric=value (e.g. ndcg@10=0.30), got '{item}'",
                field="--fail-under",
            ) from None
    return gates


def check_gates(
    metrics_by_variant: dict[str, dict[str, float]], gates: dict[str, float]
) -> list[str]:
    """Messages for every variant whose metric is below its gate (empty: all passed)."""
    missed = []
    for variant, metrics in metrics_by_variant.items():
        for metric, threshold in gates.items():
            value = metrics.get(metric)
            if value is None:
                missed.append(f"{variant}: {metric} was not computed (no query has a value)")
            elif value < threshold:
                missed.append(f"{variant}: {metric} = {value:.4f} < {threshold}")
    return missed


def log_to_mlflow(result: Any, paths: Any) -> list[str]:
    """Log to MLflow (see :class:`rag.eval.tracking.MlflowTracker`); returns the variants' run ids.

    Raises:
        MissingDependencyError: mlflow is not installed (``pip install 'ragline[mlflow]'``).
    """
    from rag.eval.tracking import MlflowTracker, log_eval

    return log_eval([MlflowTracker()], result, paths)["mlflow"].variants


def eval_command(
    config: str | Path,
    *,
    out: str | Path | None = None,
    fail_under: Sequence[str] = (),
    mlflow: bool = False,
    wandb: bool = False,
    json_output: bool = False,
    quiet: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run an eval file end to end and return the exit code.

    Args:
        config: The eval YAML.
        out: Output folder (default ``.rag/eval/<eval file stem>``).
        fail_under: Gates ``metric=value``; every variant must reach each one.
        mlflow: Log parameters, metrics and reports to MLflow.
        wandb: Log parameters, metrics, the comparison table and plots to Weights & Biases.
        json_output: Print the summary JSON on stdout instead of the Markdown table.
        quiet: No progress bars.

    Returns:
        0, 1 (gate missed or job failed) or 2 (bad usage or configuration).

    Example:
        >>> # Needs an eval file and its dataset.
        >>> eval_command("eval.yaml", fail_under=["ndcg@10=0.3"])  # doctest: +SKIP
        0
    """
    from rag.eval import tracking
    from rag.eval.report import summary_dict, summary_markdown, write_reports
    from rag.eval.runner import load_eval_config, run_eval

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr

    def error(message: str, code: int) -> int:
        print(f"error: {message}", file=stderr)
        return code

    try:
        gates = parse_gates(fail_under)
        eval_config = load_eval_config(config)
    except ConfigError as err:
        return error(str(err), 2)
    except RagError as err:
        return error(str(err), 1)
    unknown = [g for g in gates if g not in eval_config.metric_names]
    if unknown:
        return error(
            f"--fail-under names metric(s) that {config} does not compute: "
            f"{', '.join(unknown)}. Computed: {', '.join(eval_config.metric_names)} "
            "(add them under 'metrics:')",
            2,
        )
    out_dir = Path(out) if out else Path(".rag") / "eval" / Path(config).stem
    if out_dir.exists() and not out_dir.is_dir():
        return error(f"--out {out_dir} is a file; give a directory for the eval outputs", 2)
    trackers = tracking.trackers(mlflow=mlflow, wandb=wandb)
    try:
        for tracker in trackers:  # a missing package is known before a long run, not after
            tracker.require()
    except MissingDependencyError as err:
        return error(str(err), 2)
    try:
        # stdout carries only the result; libraries that print while models load or runs
        # are logged (transformers does under WANDB_MODE=offline) are sent to stderr
        with contextlib.redirect_stdout(stderr):
            result = run_eval(eval_config, out_dir=out_dir, progress=not quiet)
            paths = write_reports(result, out_dir=out_dir)
            for name, runs in tracking.log_eval(trackers, result, paths).items():
                print(f"{name}: logged {len(runs.variants)} variant run(s)", file=stderr)
    except ConfigError as err:
        return error(str(err), 2)
    except MissingDependencyError as err:
        return error(str(err), 2)
    except RagError as err:
        return error(str(err), 1)
    if json_output:
        print(json.dumps(summary_dict(result, report=paths.html), default=str), file=stdout)
    else:
        print(summary_markdown(result), file=stdout)
        print(f"report: {paths.html}", file=stdout)
    missed = check_gates({v.name: v.metrics for v in result.variants}, gates)
    for message in missed:
        print(f"gate missed: {message}", file=stderr)
    return 1 if missed else 0
