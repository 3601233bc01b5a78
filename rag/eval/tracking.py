"""Experiment tracking of eval runs: one interface, MLflow and Weights & Biases behind it.

:meth:`TrackedEval.from_result` gathers, once, what every tracker logs: each variant's
parameters and metrics, the comparison table (variants x metrics), the paired tests against the
first variant, the report's plots (PNG files written next to the report) and the report files.
A :class:`Tracker` turns that into its own runs:

- :class:`MlflowTracker` (``rag eval --mlflow``): an experiment ``ragline-eval-<name>``; one
  parent run with the tables, plots and reports, and a nested run per variant with its
  parameters, metrics and the reports. Runs go to ``./mlruns`` unless ``MLFLOW_TRACKING_URI``
  names another tracking URI.
- :class:`WandbTracker` (``rag eval --wandb``): a project ``ragline-eval-<name>`` (or
  ``WANDB_PROJECT``); one run per variant (``job_type="variant"``, parameters as its config,
  metrics as its summary) and one ``comparison`` run with the tables (``wandb.Table``), the plots
  (``wandb.Image``) and the reports (an artifact), all in one group. ``WANDB_MODE=offline``
  writes the runs under ``./wandb`` (or ``WANDB_DIR``) for a later ``wandb sync``.

Example:
    >>> # Needs an eval result and wandb (pip install 'ragline[wandb]').
    >>> from rag.eval.tracking import TrackedEval, WandbTracker
    >>> tracked = TrackedEval.from_result(result, paths)  # doctest: +SKIP
    >>> WandbTracker().log(tracked).variants  # doctest: +SKIP
    ['3q0b1x2c', 'k9d8e7f6']
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rag.core.errors import MissingDependencyError

__all__ = [
    "MlflowTracker",
    "Table",
    "TrackedEval",
    "TrackedRuns",
    "TrackedVariant",
    "Tracker",
    "WandbTracker",
    "log_eval",
    "trackers",
]


@dataclass
class Table:
    """Columns and rows (cells are JSON values; a missing metric is ``None``)."""

    columns: list[str]
    rows: list[list[Any]]

    def to_dict(self) -> dict[str, Any]:
        """``{"columns", "data"}``: the split layout MLflow and pandas read as a table."""
        return {"columns": self.columns, "data": self.rows}


@dataclass
class TrackedVariant:
    """One variant's run: its grid parameters (plus dataset and k) and mean metrics."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, float]


@dataclass
class TrackedEval:
    """What a tracker logs about one eval run; build it with :meth:`from_result`."""

    name: str
    dataset: str
    primary_metric: str
    variants: list[TrackedVariant]
    comparison: Table
    paired_tests: Table
    plots: dict[str, Path] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)

    @classmethod
    def from_result(cls, result: Any, paths: Any) -> TrackedEval:
        """Gather an :class:`~rag.eval.runner.EvalResult` and its written reports.

        The report's plots are written as PNG files to ``plots/`` beside ``report.html``.

        Args:
            result: From :func:`rag.eval.runner.run_eval`.
            paths: From :func:`rag.eval.report.write_reports`.
        """
        from rag.eval.report import comparisons, figures

        names = result.metric_names()
        comparison = Table(
            ["variant", *names, "queries"],
            [
                [v.name, *(v.metrics.get(n) for n in names), v.counts.get("queries")]
                for v in result.variants
            ],
        )
        test_columns = ["variant", "baseline", "metric", "mean_diff", "wilcoxon_p", "ttest_p", "n"]
        tests = Table(
            test_columns, [[row.get(c) for c in test_columns] for row in comparisons(result)]
        )
        plot_dir = Path(paths.html).parent / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        plots = {}
        for name, png in figures(result).items():
            plots[name] = plot_dir / f"{name}.png"
            plots[name].write_bytes(png)
        context = {"dataset": result.config.dataset.name, "k": result.config.k}
        return cls(
            name=result.config.name,
            dataset=result.config.dataset.name,
            primary_metric=result.primary_metric,
            variants=[
                TrackedVariant(v.name, {**v.params, **context}, dict(v.metrics))
                for v in result.variants
            ],
            comparison=comparison,
            paired_tests=tests,
            plots=plots,
            reports=[Path(p) for p in (paths.html, paths.json, paths.markdown, paths.csv)],
        )


@dataclass
class TrackedRuns:
    """The ids of the runs a tracker made: one per variant (in order) and the comparison's."""

    variants: list[str]
    comparison: str | None = None


@runtime_checkable
class Tracker(Protocol):
    """An experiment tracker that ``rag eval`` can log to."""

    name: str

    def require(self) -> None:
        """Raise :class:`MissingDependencyError` now if the tracker's package is missing."""
        ...

    def log(self, tracked: TrackedEval) -> TrackedRuns:
        """Log every variant and the comparison; return the run ids."""
        ...


def _require(module: str, extra: str, purpose: str) -> None:
    if importlib.util.find_spec(module) is None:  # found without importing it (slow)
        raise MissingDependencyError(module, extra, purpose)


def _mlflow_name(metric: str) -> str:
    # MLflow metric names allow letters, digits, _ - . / and spaces, not '@'
    return metric.replace("@", "_at_")


def _text_params(params: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


class MlflowTracker:
    """Log to MLflow: a parent run per eval, a nested run per variant.

    Args:
        tracking_uri: Where runs go (default ``MLFLOW_TRACKING_URI``, else ``./mlruns``).

    Raises:
        MissingDependencyError: mlflow is not installed (``pip install 'ragline[mlflow]'``).

    Example:
        >>> # Needs an eval result and MLflow (pip install 'ragline[mlflow]').
        >>> MlflowTracker().log(tracked).variants  # doctest: +SKIP
        ['5f0c...', '8a1d...']
    """

    name = "mlflow"

    def __init__(self, *, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri

    def require(self) -> None:
        _require("mlflow", "mlflow", "rag eval --mlflow")

    def log(self, tracked: TrackedEval) -> TrackedRuns:
        try:
            import mlflow
        except ImportError as err:
            raise MissingDependencyError("mlflow", "mlflow", "rag eval --mlflow") from err
        # MLflow 3 defaults to a SQLite database that needs the full install; ragline's
        # default is a ./mlruns folder, which `mlflow ui` reads too.
        uri = (
            self.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or Path("mlruns").resolve().as_uri()
        )
        if uri.startswith("file:"):
            # MLflow 3 refuses folder stores unless asked; a folder works without a server
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(f"ragline-eval-{tracked.name}")
        runs = TrackedRuns(variants=[])
        with mlflow.start_run(run_name=f"{tracked.name} ({tracked.dataset})") as parent:
            runs.comparison = parent.info.run_id
            mlflow.log_params({"dataset": tracked.dataset, "variants": len(tracked.variants)})
            mlflow.log_dict(tracked.comparison.to_dict(), "comparison.json")
            mlflow.log_dict(tracked.paired_tests.to_dict(), "paired_tests.json")
            for path in tracked.plots.values():
                mlflow.log_artifact(str(path), artifact_path="plots")
            for path in tracked.reports:
                mlflow.log_artifact(str(path))
            for variant in tracked.variants:
                with mlflow.start_run(run_name=variant.name, nested=True) as run:
                    mlflow.log_params(_text_params(variant.params))
                    mlflow.log_metrics(
                        {_mlflow_name(k): float(v) for k, v in variant.metrics.items()}
                    )
                    for path in tracked.reports:
                        mlflow.log_artifact(str(path))
                    runs.variants.append(run.info.run_id)
        return runs


class WandbTracker:
    """Log to Weights & Biases: a run per variant and a comparison run, in one group.

    Args:
        project: W&B project (default ``WANDB_PROJECT``, else ``ragline-eval-<eval name>``).
        group: Run group (default ``WANDB_RUN_GROUP``, else ``<eval name>-<time>-<random>``).
        directory: Where W&B writes its run folders (default ``WANDB_DIR``, else ``.``).

    The key, entity and mode come from W&B's own settings (``WANDB_API_KEY``,
    ``WANDB_ENTITY``, ``WANDB_MODE=offline``); ragline stores none of them.

    Raises:
        MissingDependencyError: wandb is not installed (``pip install 'ragline[wandb]'``).

    Example:
        >>> # Needs an eval result and wandb (pip install 'ragline[wandb]').
        >>> WandbTracker(project="my-evals").log(tracked).comparison  # doctest: +SKIP
        'x7f3k2p1'
    """

    name = "wandb"

    def __init__(
        self,
        *,
        project: str | None = None,
        group: str | None = None,
        directory: str | Path | None = None,
    ) -> None:
        self.project = project
        self.group = group
        self.directory = directory

    def require(self) -> None:
        _require("wandb", "wandb", "rag eval --wandb")

    def log(self, tracked: TrackedEval) -> TrackedRuns:
        try:
            import wandb
        except ImportError as err:
            raise MissingDependencyError("wandb", "wandb", "rag eval --wandb") from err
        project = self.project or os.environ.get("WANDB_PROJECT") or f"ragline-eval-{tracked.name}"
        group = (
            self.group
            or os.environ.get("WANDB_RUN_GROUP")
            or f"{tracked.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        )
        # console="off": W&B must not capture the eval's stdout (rag eval --json prints there)
        settings = wandb.Settings(console="off", quiet=True, x_save_requirements=False)

        def start(name: str, job_type: str, config: dict[str, Any]) -> Any:
            return wandb.init(
                project=project,
                group=group,
                job_type=job_type,
                name=name,
                config=config,
                dir=str(self.directory) if self.directory else None,
                settings=settings,
                reinit="create_new",
            )

        runs = TrackedRuns(variants=[])
        for variant in tracked.variants:
            with start(variant.name, "variant", variant.params) as run:
                run.summary.update(variant.metrics)
                runs.variants.append(run.id)
        config = {
            "dataset": tracked.dataset,
            "primary_metric": tracked.primary_metric,
            "variants": [v.name for v in tracked.variants],
        }
        with start(f"{tracked.name}: comparison", "comparison", config) as run:
            logged: dict[str, Any] = {
                "comparison": _wandb_table(wandb, tracked.comparison),
                "paired_tests": _wandb_table(wandb, tracked.paired_tests),
            }
            for name, path in tracked.plots.items():
                logged[f"plots/{name}"] = wandb.Image(str(path), caption=name)
            run.log(logged)
            report = wandb.Artifact(f"{_artifact_name(tracked.name)}-report", type="eval-report")
            for path in tracked.reports:
                report.add_file(str(path))
            run.log_artifact(report)
            runs.comparison = run.id
        return runs


def _wandb_table(wandb: Any, table: Table) -> Any:
    return wandb.Table(columns=table.columns, data=[list(row) for row in table.rows])


def _artifact_name(name: str) -> str:
    # artifact names allow letters, digits, '-', '_' and '.'
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "eval"


def trackers(*, mlflow: bool = False, wandb: bool = False) -> list[Tracker]:
    """The trackers ``rag eval --mlflow --wandb`` asked for, with their defaults."""
    chosen: list[Tracker] = []
    if mlflow:
        chosen.append(MlflowTracker())
    if wandb:
        chosen.append(WandbTracker())
    return chosen


def log_eval(trackers: Sequence[Tracker], result: Any, paths: Any) -> dict[str, TrackedRuns]:
    """Log one eval run to each tracker (what is logged is gathered once).

    Returns:
        The runs of each tracker, by tracker name.
    """
    if not trackers:
        return {}
    tracked = TrackedEval.from_result(result, paths)
    return {tracker.name: tracker.log(tracked) for tracker in trackers}
