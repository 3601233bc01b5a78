"""The eval runner end to end on a tiny synthetic BEIR set (real embedder, FAISS and BM25)."""

from __future__ import annotations

import json
import shutil

import pytest

from rag.core.component import Component
from rag.core.errors import ConfigError
from rag.core.registry import Registry
from rag.eval.report import write_reports
from rag.eval.runner import load_eval_config, run_eval
from tests.eval.helpers import EVAL, write_answers, write_eval


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    """One run of a 2 x 2 grid (chunk_size x retriever), shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("grid")
    path = write_eval(folder, EVAL)
    out = folder / "out"
    result = run_eval(load_eval_config(path), out_dir=out, progress=False)
    paths = write_reports(result, out_dir=out)
    return path, out, result, paths


@pytest.mark.integration
def test_each_ingestion_configuration_is_ingested_once(grid_run):
    _, out, result, _ = grid_run
    stores = sorted(p for p in (out / "stores").iterdir())
    assert len(stores) == 2  # two chunk sizes; the retriever choice shares the store
    for store in stores:
        report = json.loads((store / "ingest.json").read_text())
        assert report["chunks_written"] >= 6 and report["errors"] == []
    assert len(list((out / "variants").iterdir())) == 4
    assert [v.name for v in result.variants] == [
        "chunk_size=32 retriever=dense",
        "chunk_size=32 retriever=bm25",
        "chunk_size=64 retriever=dense",
        "chunk_size=64 retriever=bm25",
    ]


@pytest.mark.integration
def test_retrieved_chunks_map_back_to_beir_doc_ids(grid_run):
    _, _, result, _ = grid_run
    dense = result.variants[0]
    assert dense.metrics["ndcg@10"] > 0.9
    assert set(dense.metrics) == {"ndcg@10", "recall@5", "mrr@10", "map@100", "p@1"}
    records = [json.loads(line) for line in (dense.directory / "retrieval.jsonl").open()]
    q2 = next(r for r in records if r["query_id"] == "q2")
    assert q2["ranking"][0][0] == "d3"
    assert len({d for d, _ in q2["ranking"]}) == len(q2["ranking"])  # one entry per document
    assert q2["contexts"][0]["doc_id"] == "d3"


@pytest.mark.integration
def test_reports_follow_the_cli_contract(grid_run):
    _, out, _, paths = grid_run
    summary = json.loads(paths.json.read_text())
    assert summary["dataset"] == "data"
    assert summary["report"] == str(out / "report.html")
    assert [set(v) >= {"name", "metrics"} for v in summary["variants"]] == [True] * 4
    assert len(summary["comparisons"]) == 3
    assert {"wilcoxon_p", "ttest_p", "mean_diff"} <= set(summary["comparisons"][0])
    table = paths.markdown.read_text()
    assert "| variant | ndcg@10 | recall@5 | mrr@10 | map@100 | p@1 | queries |" in table
    assert (
        paths.csv.read_text().splitlines()[0]
        == "variant,ndcg@10,recall@5,mrr@10,map@100,p@1,queries"
    )
    html = paths.html.read_text()
    assert html.count("data:image/png;base64,") == 2  # metrics with CIs, latency
    assert "Worst queries by ndcg@10" in html and "Paired significance tests" in html
    assert len(paths.per_query.read_text().splitlines()) == 16


@pytest.mark.integration
def test_interrupted_run_resumes_where_it_stopped(grid_run, tmp_path):
    path, out, result, _ = grid_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    variant_dir = copy / "variants" / result.variants[0].directory.name
    results = variant_dir / "retrieval.jsonl"
    lines = results.read_text().splitlines()
    kept = lines[:2]
    # an interruption: two queries done, the third written halfway
    results.write_text("\n".join(kept) + "\n" + lines[2][:25])
    again = run_eval(load_eval_config(path), out_dir=copy, progress=False)
    records = [json.loads(line) for line in results.read_text().splitlines()[:2]]
    assert records == [json.loads(line) for line in kept]  # not recomputed
    assert sorted(again.variants[0].per_query) == ["q1", "q2", "q3", "q4"]
    assert again.variants[0].metrics == pytest.approx(result.variants[0].metrics)
    assert sorted(p.name for p in (copy / "stores").iterdir()) == sorted(
        p.name for p in (out / "stores").iterdir()
    )


# -- configuration errors (no model needed) -----------------------------------------------------
@pytest.mark.unit
def test_grid_key_naming_no_parameter_is_a_located_error(tmp_path):
    body = EVAL.replace("splitter.chunk_size: [32, 64]", "splitter.chunk_sise: [32, 64]")
    path = write_eval(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_eval_config(path)
    err = info.value
    assert err.file == str(path) and err.line == 9 and err.field == "grid.splitter.chunk_sise"
    assert "component 'splitter' has no parameter 'chunk_sise'" in str(err)
    assert "Did you mean 'splitter.chunk_size'" in str(err)
    assert "Valid: splitter.chunk_size, splitter.chunk_overlap" in str(err)


@pytest.mark.unit
def test_grid_key_naming_no_component_lists_valid_keys(tmp_path):
    path = write_eval(tmp_path, EVAL.replace("splitter.chunk_size", "chunker.size"))
    with pytest.raises(
        ConfigError,
        match=r"'chunker.size' names no component parameter.*valid keys: retriever, embedder.model",
    ):
        load_eval_config(path)


@pytest.mark.unit
def test_unknown_metric_name_in_eval_file_lists_valid_ones(tmp_path):
    path = write_eval(tmp_path, EVAL.replace("p@1]", "bleu]"))
    with pytest.raises(ConfigError) as info:
        load_eval_config(path)
    assert info.value.line == 7 and info.value.field == "metrics[4]"
    assert "unknown metric 'bleu'" in str(info.value)
    assert "Valid: ndcg@k, recall@k, p@k, map@k, mrr@k" in str(info.value)
    assert "exact_match, f1" in str(info.value)


@pytest.mark.unit
def test_unknown_retriever_choice(tmp_path):
    path = write_eval(tmp_path, EVAL.replace("[dense, bm25]", "[dense, bm52]"))
    with pytest.raises(
        ConfigError, match=r"retriever 'bm52' is not a retriever.*Did you mean 'bm25'"
    ) as info:
        load_eval_config(path)
    assert info.value.field == "grid.retriever.1"


@pytest.mark.unit
def test_bad_override_value_fails_before_running(tmp_path):
    path = write_eval(tmp_path, EVAL.replace("[32, 64]", "[32, -1]"))
    with pytest.raises(ConfigError, match="variant 'chunk_size=-1 retriever=dense' does not build"):
        load_eval_config(path)


@pytest.mark.unit
def test_answer_metrics_need_a_chain(tmp_path):
    path = write_eval(tmp_path, EVAL.replace("p@1]", "p@1, exact_match]"))
    with pytest.raises(ConfigError, match=r"answer metric\(s\) exact_match need an 'answers"):
        load_eval_config(path)


# -- answers, with a fake chain and a fake judge (their logic is what is tested) -------------------
class FakeChain(Component):
    """Answers from a fixed table, retrieving and citing the first context like chain.rag."""

    outputs = {"answer": dict}

    def __init__(self, *, retriever: Component, replies: dict[str, str]) -> None:
        self.retriever = retriever
        self.replies = replies

    def warm_up(self) -> None:
        self.retriever.warm_up()

    def run(self, question: str) -> dict:
        if question not in self.replies:
            raise RuntimeError("model crashed")
        hits = self.retriever.retrieve(question, k=3)
        contexts = [
            {"id": h.chunk.id, "text": h.chunk.text, "score": h.score, "metadata": h.chunk.metadata}
            for h in hits
        ]
        answer = {
            "text": self.replies[question],
            "contexts": contexts,
            "citations": [{"id": hits[0].chunk.id, "source": hits[0].chunk.source}],
            "timings": {"retrieve": 0.01, "generate": 0.02},
        }
        return {"answer": answer}


class FlakyJudge(Component):
    """Fails every call for questions mentioning jazz; scores 5 otherwise."""

    outputs = {"text": str}

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, messages, **options):
        from rag.core.generation import GenerationResult

        self.calls += 1
        if "jazz" in messages[0]["content"]:
            raise RuntimeError("judge timeout")
        return GenerationResult(text="Score: 5")

    def run(self, messages: list) -> dict:
        return {"text": self.generate(messages).text}


ANSWER_PIPELINE_EXTRA = """\
  chain:
    type: chain.fake
    init_parameters:
      retriever: "@dense"
      replies:
        "what is the capital of France": "Paris"
        "how do plants make sugar from sunlight": "They make glucose"
  judge:
    type: generator.fake
"""

ANSWER_EVAL = """\
dataset:
  format: beir
  path: data
  answers: data/answers.jsonl
  answer_fields: {gold_doc_ids: context_id}
pipeline: pipeline.yaml
retriever: dense
k: 5
metrics: [ndcg@10, exact_match, f1, contains_answer, answer_in_context, citation_precision,
          citation_recall, groundedness]
answers:
  chain: chain
  judge: {generator: judge, metrics: [faithfulness], retries: 1}
"""


@pytest.mark.integration
def test_answer_metrics_and_judge_failures_are_counted(tmp_path):
    from tests.eval.helpers import PIPELINE

    pipeline = PIPELINE.replace("pipelines:", ANSWER_PIPELINE_EXTRA + "pipelines:")
    path = write_eval(tmp_path, ANSWER_EVAL, pipeline=pipeline)
    write_answers(tmp_path / "data" / "answers.jsonl")
    registry = Registry({"chain.fake": FakeChain, "generator.fake": FlakyJudge})
    config = load_eval_config(path, registry=registry)
    result = run_eval(config, out_dir=tmp_path / "out", progress=False)
    variant = result.variants[0]
    # q2 "Paris" is exact; q3 "They make glucose" is wrong; q4 (jazz) crashes the chain
    assert variant.per_query["q2"]["exact_match"] == 1.0
    assert variant.per_query["q3"]["exact_match"] == 0.0
    assert variant.metrics["exact_match"] == 0.5
    assert [variant.per_query[q]["contains_answer"] for q in ("q2", "q3")] == [1.0, 0.0]
    assert variant.counts["answer_errors"] == 2  # q1 (no reply) and q4 crashed; recorded
    assert variant.per_query["q2"]["citation_precision"] == 1.0
    assert variant.per_query["q2"]["answer_in_context"] == 1.0
    assert variant.metrics["faithfulness"] == 1.0
    assert "faithfulness_failed" not in variant.counts
    records = [json.loads(line) for line in (variant.directory / "answers.jsonl").open()]
    crashed = next(r for r in records if r["query_id"] == "q4")
    assert crashed["error"] == "RuntimeError: model crashed"
    assert variant.latency["answer.generate"] == [0.02, 0.02]
    assert len(variant.latency["retrieve"]) == 4  # the batched retrieval of every query


@pytest.mark.integration
def test_judge_failure_is_recorded_and_counted_not_averaged(tmp_path):
    from tests.eval.helpers import PIPELINE

    extra = ANSWER_PIPELINE_EXTRA.replace(
        '"how do plants make sugar from sunlight": "They make glucose"',
        '"where did jazz music start": "New Orleans"',
    )
    pipeline = PIPELINE.replace("pipelines:", extra + "pipelines:")
    path = write_eval(tmp_path, ANSWER_EVAL, pipeline=pipeline)
    write_answers(tmp_path / "data" / "answers.jsonl")
    registry = Registry({"chain.fake": FakeChain, "generator.fake": FlakyJudge})
    result = run_eval(
        load_eval_config(path, registry=registry), out_dir=tmp_path / "out", progress=False
    )
    variant = result.variants[0]
    assert variant.per_query["q4"]["faithfulness"] is None
    assert variant.counts["faithfulness_failed"] == 1
    assert variant.metrics["faithfulness"] == 1.0  # the mean of the rows the judge scored
    html = write_reports(result, out_dir=tmp_path / "out").markdown.read_text()
    assert '"faithfulness_failed": 1' in html


@pytest.mark.integration
def test_mlflow_logs_params_metrics_and_report(grid_run, tmp_path, monkeypatch):
    mlflow = pytest.importorskip(
        "mlflow", reason="mlflow is optional: pip install 'ragline[mlflow]'"
    )
    from rag.eval.cli_eval import log_to_mlflow

    _, _, result, paths = grid_run
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    run_ids = log_to_mlflow(result, paths)
    assert len(run_ids) == 4
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_ids[0])
    assert run.data.params["retriever"] == "dense"
    assert run.data.params["splitter.chunk_size"] == "32"
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(result.variants[0].metrics["ndcg@10"])
    artifacts = {a.path for a in client.list_artifacts(run_ids[0])}
    assert {"report.html", "summary.json"} <= artifacts
