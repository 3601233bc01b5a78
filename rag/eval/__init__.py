"""Evaluation: datasets, metrics, the batch runner behind ``rag eval``, reports and tracking.

Example:
    >>> # Needs the Cranfield dataset of ../shared/data.
    >>> from rag.eval import load_eval_config, run_eval, write_reports
    >>> config = load_eval_config("examples/eval/cranfield.yaml")  # doctest: +SKIP
    >>> result = run_eval(config, out_dir=".rag/eval/cranfield")  # doctest: +SKIP
    >>> write_reports(result).html  # doctest: +SKIP
    PosixPath('.rag/eval/cranfield/report.html')

Heavy optional packages (pytrec_eval, scipy, matplotlib, jinja2, mlflow, wandb) are imported when
a function needs them; ``pip install 'ragline[eval]'`` installs all but the trackers, MLflow and
Weights & Biases (:mod:`rag.eval.tracking`), which have their own extras.
"""

from __future__ import annotations

from rag.eval.datasets import (
    EvalDataError,
    EvalDataset,
    EvalQuery,
    load_beir,
    load_dataset,
    load_qa,
)
from rag.eval.metrics import (
    answer_in_context,
    citation_scores,
    contains_answer,
    evaluate_run,
    exact_match,
    groundedness,
    mean_metrics,
    token_f1,
)
from rag.eval.report import write_reports
from rag.eval.runner import EvalConfig, EvalResult, load_eval_config, run_eval

__all__ = [
    "EvalConfig",
    "EvalDataError",
    "EvalDataset",
    "EvalQuery",
    "EvalResult",
    "answer_in_context",
    "citation_scores",
    "contains_answer",
    "evaluate_run",
    "exact_match",
    "groundedness",
    "load_beir",
    "load_dataset",
    "load_eval_config",
    "load_qa",
    "mean_metrics",
    "run_eval",
    "token_f1",
    "write_reports",
]
