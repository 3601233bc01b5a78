"""Tracking eval runs: W&B in offline mode (read back from its run folders) and MLflow."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.eval.cli_eval import eval_command
from rag.eval.report import write_reports
from rag.eval.runner import load_eval_config, run_eval
from rag.eval.tracking import MlflowTracker, TrackedEval, Tracker, WandbTracker
from tests.eval.helpers import EVAL, write_eval

TWO_VARIANTS = EVAL.replace("  splitter.chunk_size: [32, 64]\n", "")
ONE_VARIANT = TWO_VARIANTS.replace("grid:\n  retriever: [dense, bm25]\n", "")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Any, Any]:
    """One run of two variants (dense, bm25) over one ingestion, with its reports."""
    folder = tmp_path_factory.mktemp("tracked")
    result = run_eval(
        load_eval_config(write_eval(folder, TWO_VARIANTS)), out_dir=folder / "out", progress=False
    )
    return result, write_reports(result, out_dir=folder / "out")


@pytest.fixture()
def offline(tmp_path, monkeypatch) -> Path:
    """W&B offline, no key, no network; run folders under the returned directory."""
    for name in ("WANDB_API_KEY", "WANDB_PROJECT", "WANDB_RUN_GROUP", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


# -- reading W&B's offline run files back -----------------------------------------------------
def _records(path: Path) -> Iterator[bytes]:
    """The records of a ``run-*.wandb`` file: a LevelDB log (32 KiB blocks, 7-byte headers)
    after a 7-byte ``:W&B`` file header."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:  # a block's tail too short for a header is padding
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0:
            break
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 1:  # full
            yield chunk
        elif kind == 2:  # first
            pending = chunk
        elif kind == 3:  # middle
            pending += chunk
        else:  # last
            yield pending + chunk


def read_offline_runs(directory: Path) -> dict[str, dict[str, Any]]:
    """Each offline run under ``directory`` by display name: its id, group, job type, config,
    final summary and files folder."""
    from wandb.proto import wandb_internal_pb2

    runs = {}
    for path in sorted(directory.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict[str, Any] = {"summary": {}, "files": path.parent / "files"}
        for data in _records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(
                    id=record.run.run_id,
                    name=record.run.display_name,
                    group=record.run.run_group,
                    job_type=record.run.job_type,
                    config={
                        item.key: json.loads(item.value_json)
                        for item in record.run.config.update
                        if item.key != "_wandb"
                    },
                )
            elif kind == "summary":
                for item in record.summary.update:
                    keys = [item.key] if item.key else list(item.nested_key)
                    target = run["summary"]
                    for key in keys[:-1]:
                        target = target.setdefault(key, {})
                    target[keys[-1]] = json.loads(item.value_json)
        runs[run["name"]] = run
    return runs


def metrics_of(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if not k.startswith("_")}


# -- W&B --------------------------------------------------------------------------------------
@pytest.mark.integration
def test_wandb_offline_runs_hold_params_metrics_tables_and_plots(evaluated, offline):
    pytest.importorskip("wandb", reason="W&B tracking needs: pip install 'ragline[wandb]'")
    import wandb

    result, paths = evaluated
    runs = WandbTracker().log(TrackedEval.from_result(result, paths))
    wandb.teardown()  # W&B's service writes the run files asynchronously; wait for it
    recorded = read_offline_runs(offline)
    summary = json.loads(paths.json.read_text())  # the eval JSON
    assert set(recorded) == {"retriever=dense", "retriever=bm25", "eval: comparison"}
    for variant, run_id in zip(summary["variants"], runs.variants):
        run = recorded[variant["name"]]
        assert run["id"] == run_id and run["job_type"] == "variant"
        assert metrics_of(run["summary"]) == variant["metrics"]
        assert run["config"] == {**variant["params"], "dataset": "data", "k": 5}
    comparison = recorded["eval: comparison"]
    assert comparison["id"] == runs.comparison and comparison["job_type"] == "comparison"
    assert len({run["group"] for run in recorded.values()}) == 1
    # the comparison table: one row per variant, the metrics of the eval JSON
    table_file = comparison["summary"]["comparison"]["path"]
    table = json.loads((comparison["files"] / table_file).read_text())
    names = list(summary["variants"][0]["metrics"])
    assert table["columns"] == ["variant", *names, "queries"]
    assert [row[0] for row in table["data"]] == [v["name"] for v in summary["variants"]]
    for row, variant in zip(table["data"], summary["variants"]):
        assert row[1:-1] == pytest.approx([variant["metrics"][n] for n in names])
    tests = json.loads(
        (comparison["files"] / comparison["summary"]["paired_tests"]["path"]).read_text()
    )
    assert tests["data"][0][:3] == ["retriever=bm25", "retriever=dense", summary["primary_metric"]]
    # the report's plots, as images
    for plot in ("metrics", "latency"):
        image = comparison["summary"][f"plots/{plot}"]
        assert image["_type"] == "image-file" and image["format"] == "png"
        assert (comparison["files"] / image["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
@pytest.mark.slow
def test_rag_eval_wandb_summary_equals_the_eval_json(tmp_path, offline):
    pytest.importorskip("wandb", reason="W&B tracking needs: pip install 'ragline[wandb]'")
    path = write_eval(tmp_path / "eval", ONE_VARIANT)
    command = [sys.executable, "-m", "rag.cli", "eval", str(path), "--out", str(tmp_path / "out")]
    done = subprocess.run(
        [*command, "--json", "--quiet", "--wandb"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # W&B printed nothing on stdout
    assert "wandb: logged 1 variant run(s)" in done.stderr
    recorded = read_offline_runs(offline)  # complete once the command has exited
    assert set(recorded) == {"default", "eval: comparison"}
    assert metrics_of(recorded["default"]["summary"]) == printed["variants"][0]["metrics"]
    assert printed["variants"][0]["metrics"]["ndcg@10"] > 0.5


@pytest.mark.unit
def test_a_missing_tracker_package_stops_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    path = write_eval(tmp_path, ONE_VARIANT)
    stderr = io.StringIO()
    assert eval_command(path, out=tmp_path / "out", wandb=True, stderr=stderr) == 2
    assert "pip install 'ragline[wandb]'" in stderr.getvalue()
    assert not (tmp_path / "out").exists()


@pytest.mark.unit
def test_both_trackers_implement_the_one_interface():
    for tracker in (MlflowTracker(), WandbTracker()):
        assert isinstance(tracker, Tracker)
    assert {MlflowTracker.name, WandbTracker.name} == {"mlflow", "wandb"}


# -- MLflow through the same interface --------------------------------------------------------
@pytest.mark.integration
def test_mlflow_parent_run_holds_the_comparison_and_plots(evaluated, tmp_path, monkeypatch):
    mlflow = pytest.importorskip(
        "mlflow", reason="mlflow is optional: pip install 'ragline[mlflow]'"
    )
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    result, paths = evaluated
    uri = (tmp_path / "mlruns").as_uri()
    runs = MlflowTracker(tracking_uri=uri).log(TrackedEval.from_result(result, paths))
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    children = [client.get_run(run_id) for run_id in runs.variants]
    assert [r.data.tags["mlflow.parentRunId"] for r in children] == [runs.comparison] * 2
    assert [r.info.run_name for r in children] == ["retriever=dense", "retriever=bm25"]
    assert children[1].data.metrics["ndcg_at_10"] == pytest.approx(
        result.variants[1].metrics["ndcg@10"]
    )
    artifacts = {a.path for a in client.list_artifacts(runs.comparison)}
    assert {"comparison.json", "paired_tests.json", "plots", "report.html"} <= artifacts
    plots = {a.path for a in client.list_artifacts(runs.comparison, "plots")}
    assert plots == {"plots/metrics.png", "plots/latency.png"}
    local = Path(client.download_artifacts(runs.comparison, "comparison.json", str(tmp_path)))
    table = json.loads(local.read_text())
    assert [row[0] for row in table["data"]] == ["retriever=dense", "retriever=bm25"]
