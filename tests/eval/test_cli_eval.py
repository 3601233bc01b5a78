"""``rag eval``: exit codes, gates, --json."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.eval.cli_eval import check_gates, eval_command, parse_gates
from tests.eval.helpers import EVAL, write_eval

ONE_VARIANT = EVAL.replace(
    "grid:\n  splitter.chunk_size: [32, 64]\n  retriever: [dense, bm25]\n", ""
)


@pytest.mark.unit
def test_gate_on_a_metric_not_computed_exits_2_before_running(tmp_path):
    path = write_eval(tmp_path, EVAL)
    stderr = io.StringIO()
    code = eval_command(path, out=tmp_path / "out", fail_under=["recall@100=0.5"], stderr=stderr)
    assert code == 2
    assert "--fail-under names metric(s) that" in stderr.getvalue()
    assert "recall@100" in stderr.getvalue() and "Computed: ndcg@10, recall@5" in stderr.getvalue()
    assert not (tmp_path / "out").exists()


@pytest.mark.unit
def test_bad_gate_syntax_and_bad_config_exit_2(tmp_path):
    path = write_eval(tmp_path, EVAL)
    stderr = io.StringIO()
    assert eval_command(path, fail_under=["ndcg@10>0.3"], stderr=stderr) == 2
    assert "expects metric=value" in stderr.getvalue()
    bad = write_eval(tmp_path / "bad", EVAL.replace("k: 5", "kk: 5"))
    stderr = io.StringIO()
    assert eval_command(bad, stderr=stderr) == 2
    assert f"{bad}:6, field 'kk': unknown key 'kk'" in stderr.getvalue()


@pytest.mark.unit
def test_parse_and_check_gates():
    gates = parse_gates(["ndcg@10=0.30", "recall@100=0.5"])
    assert gates == {"ndcg@10": 0.30, "recall@100": 0.5}
    missed = check_gates({"a": {"ndcg@10": 0.29, "recall@100": 0.9}}, gates)
    assert missed == ["a: ndcg@10 = 0.2900 < 0.3"]


@pytest.mark.integration
def test_rag_eval_json_and_gates(tmp_path):
    path = write_eval(tmp_path, ONE_VARIANT)
    out = tmp_path / "out"
    runner = CliRunner()
    passed = runner.invoke(
        app,
        ["eval", str(path), "--out", str(out), "--json", "--quiet", "--fail-under", "ndcg@10=0.5"],
    )
    assert passed.exit_code == 0, passed.output
    summary = json.loads(passed.stdout.strip().splitlines()[-1])
    assert summary["dataset"] == "data"
    assert summary["variants"][0]["name"] == "default"
    assert summary["variants"][0]["metrics"]["ndcg@10"] > 0.5
    assert summary["report"] == str(out / "report.html")
    # the second run resumes from the results on disk and misses a gate it cannot reach
    missed = runner.invoke(
        app, ["eval", str(path), "--out", str(out), "--quiet", "--fail-under", "ndcg@10=1.01"]
    )
    assert missed.exit_code == 1
    assert "gate missed: default: ndcg@10" in missed.stderr
