"""The ``rag`` command, run in-process with the real model and FAISS."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus"
    shutil.copytree(EXAMPLES / "corpus", corpus)
    (corpus / "broken.txt").write_bytes(b"\x00\x01binary")
    config = root / "ingest.yaml"
    config.write_text(
        (EXAMPLES / "ingest.yaml")
        .read_text()
        .replace("${RAG_INDEX_DIR:-.rag/example-index}", str(root / "index"))
    )
    return root, corpus, config


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def ingested(workspace):
    _root, corpus, config = workspace
    result = invoke("ingest", corpus, "--config", config, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    return workspace, json.loads(result.stdout)


def test_ingest_json_reports_counts_and_bad_files(ingested):
    (_, corpus, _), report = ingested
    assert set(report) == {
        "sources",
        "chunks_written",
        "chunks_skipped",
        "chunks_deleted",
        "errors",
        "seconds",
    }
    assert report["sources"] == 8
    assert report["chunks_written"] >= 7
    assert report["errors"] == [
        {
            "source": (corpus / "broken.txt").as_posix(),
            "error": "binary content (NUL bytes); not a text file",
        }
    ]


def test_ingest_closes_the_store_so_the_next_open_skips_sqlite(ingested, monkeypatch):
    (root, _, _), report = ingested
    assert (root / "index" / "open-cache.npz").is_file()  # written when rag ingest closed it
    from rag.connectors.stores.faiss import FaissStore

    def no_sqlite_read(*_args):
        raise AssertionError("opened from SQLite, not from the open cache")

    monkeypatch.setattr(FaissStore, "_read_rows", no_sqlite_read)
    store = FaissStore(path=str(root / "index"))
    assert store.count() >= report["chunks_written"]
    store.close()


def test_ingest_leaves_hidden_files_out_unless_asked(tmp_path):
    (tmp_path / "docs" / ".drafts").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# A\n\nShown text.\n")
    (tmp_path / "docs" / ".drafts" / "b.md").write_text("# B\n\nDraft text.\n")
    config = tmp_path / "ingest.yaml"
    config.write_text(
        (EXAMPLES / "ingest.yaml")
        .read_text()
        .replace("${RAG_INDEX_DIR:-.rag/example-index}", str(tmp_path / "index"))
    )
    plain = invoke("ingest", tmp_path / "docs", "--config", config, "--json", "--quiet")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["sources"] == 1
    hidden = invoke(
        "ingest", tmp_path / "docs", "--config", config, "--include-hidden", "--json", "--quiet"
    )
    report = json.loads(hidden.stdout)
    assert (report["sources"], report["chunks_written"], report["chunks_skipped"]) == (2, 1, 1)


def test_strict_mode_exits_1_on_errors(ingested):
    (_, corpus, config), _ = ingested
    result = invoke("ingest", corpus / "broken.txt", "--config", config, "--strict", "--quiet")
    assert result.exit_code == 1


def test_search_json_and_filter(ingested):
    (_, corpus, config), _ = ingested
    result = invoke(
        "search", "How should I tune HNSW efSearch?", "--config", config, "--json", "--k", 3
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["query"].startswith("How should")
    assert len(data["hits"]) == 3
    assert data["hits"][0]["metadata"]["source"].endswith("hnsw.html")
    assert set(data["hits"][0]) == {"id", "score", "text", "metadata"}
    only_bm25 = invoke(
        "search",
        "tune HNSW",
        "--config",
        config,
        "--json",
        "--filter",
        json.dumps({"source": (corpus / "bm25.md").as_posix()}),
    )
    hits = json.loads(only_bm25.stdout)["hits"]
    assert hits and all(h["metadata"]["source"].endswith("bm25.md") for h in hits)


def test_batch_search_trec_lists_each_document_once(ingested, tmp_path):
    (_, _, config), _ = ingested
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        '{"_id": "q1", "text": "BM25 parameters"}\n{"_id": "q2", "text": "Cranfield experiments"}\n'
    )
    result = invoke(
        "search", "--queries", queries, "--config", config, "--format", "trec", "--k", 3, "--quiet"
    )
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.strip().splitlines()]
    assert [line[0] for line in lines] == ["q1"] * 3 + ["q2"] * 3
    assert lines[0][2].endswith("bm25.md") and lines[3][2].endswith("cranfield.txt")
    for qid in ("q1", "q2"):
        docs = [line[2] for line in lines if line[0] == qid]
        assert len(docs) == len(set(docs))
        assert [line[3] for line in lines if line[0] == qid] == ["1", "2", "3"]
    jsonl = invoke("search", "--queries", queries, "--config", config, "--k", 2, "--quiet")
    rows = [json.loads(line) for line in jsonl.stdout.strip().splitlines()]
    assert [r["query_id"] for r in rows] == ["q1", "q2"] and len(rows[0]["hits"]) == 2


def test_a_search_that_finds_nothing_says_why_on_stderr(ingested, tmp_path):
    (_, _, config), _ = ingested
    unmatched = invoke(
        "search", "tune HNSW", "--config", config, "--filter", '{"source": "nowhere.md"}'
    )
    assert unmatched.exit_code == 0 and unmatched.stdout == ""
    assert 'note: nothing retrieved: no chunk matches the filter {"source": "nowhere.md"}' in (
        unmatched.stderr
    )
    assert "metadata field" not in unmatched.stderr  # the field exists; its value matched none
    misspelt = invoke(
        "search", "tune HNSW", "--config", config, "--filter", '{"sorce": "bm25.md"}', "--json"
    )
    assert misspelt.exit_code == 0 and json.loads(misspelt.stdout)["hits"] == []
    assert "no chunk has the metadata field 'sorce'. Did you mean 'source'?" in misspelt.stderr
    empty_config = tmp_path / "empty.yaml"  # an index nothing was ingested into
    empty_config.write_text(config.read_text().replace(str(config.parent / "index"), str(tmp_path)))
    empty = invoke("search", "tune HNSW", "--config", empty_config, "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["hits"] == []
    assert f"store 'store' ({tmp_path}) holds no chunks; ingest first: rag ingest FILES" in (
        empty.stderr
    )
    queries = tmp_path / "queries.txt"
    queries.write_text("tune HNSW\nBM25 parameters\n")
    batch = invoke("search", "--queries", queries, "--config", empty_config, "--quiet")
    assert batch.exit_code == 0 and "note: 2 of 2 queries: nothing retrieved" in batch.stderr


def test_stats_json(ingested):
    (_, _, config), report = ingested
    result = invoke("stats", "--config", config, "--json")
    assert json.loads(result.stdout) == {
        "chunks": report["chunks_written"],
        "sources": 7,
        "store": "store.faiss",
        "dimension": 384,
    }


def test_reingest_is_idempotent(ingested):
    (_, corpus, config), report = ingested
    invoke("ingest", corpus, "--config", config, "--json", "--quiet")
    stats = json.loads(invoke("stats", "--config", config, "--json").stdout)
    assert stats["chunks"] == report["chunks_written"]


def test_run_command_with_inputs(ingested):
    (_, _, config), _ = ingested
    result = invoke(
        "run",
        config,
        "--pipeline",
        "search",
        "--input",
        "query=What is BM25?",
        "--input",
        "k=2",
        "--json",
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["retriever"]["hits"]
    assert len(hits) == 2


@pytest.mark.unit
def test_validate_ok_and_bad(tmp_path):
    assert invoke("validate", EXAMPLES / "ingest.yaml").exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("components:\n  store:\n    type: store.fiass\n")
    result = invoke("validate", bad)
    assert result.exit_code == 2
    assert f"{bad}:3" in result.stderr
    assert "did you mean 'store.faiss'" in result.stderr.lower()


@pytest.mark.unit
def test_bad_usage_exits_2(tmp_path):
    config = EXAMPLES / "ingest.yaml"
    assert invoke("search", "--config", config).exit_code == 2  # no query
    bad_filter = invoke("search", "q", "--config", config, "--filter", "{nope")
    assert bad_filter.exit_code == 2 and "--filter is not valid JSON" in bad_filter.stderr
    bad_op = invoke("search", "q", "--config", config, "--filter", '{"a": {"$regex": "x"}}')
    assert bad_op.exit_code == 2 and "unknown operator '$regex'" in bad_op.stderr
    assert invoke("ingest", tmp_path, "--config", config, "--mode", "fast").exit_code == 2
    assert invoke("stats", "--config", tmp_path / "missing.yaml").exit_code == 2


@pytest.mark.unit
def test_empty_stores_names_an_empty_store_and_stays_quiet_otherwise(tmp_path):
    import numpy as np

    from rag.cli_search import empty_stores
    from rag.connectors.stores.faiss import FaissStore
    from rag.core.documents import Chunk
    from rag.core.errors import StoreUnavailableError

    class Unreachable(FaissStore):
        def count(self, filters=None):
            raise StoreUnavailableError("store.milvus", "http://127.0.0.1:1", "uri", "refused")

    class NoStats(FaissStore):  # the note needs a count only, never the slower full stats
        def stats(self):
            raise AssertionError("stats() called")

    empty = NoStats(path=str(tmp_path / "index"))
    assert empty_stores({"store": empty}, config="qa.yaml") == (
        f"store 'store' ({tmp_path / 'index'}) holds no chunks; ingest first: "
        "rag ingest FILES --config qa.yaml"
    )
    filled = FaissStore()
    filled.write([Chunk(id="a", text="okapi", embedding=np.array([1.0, 0.0], dtype=np.float32))])
    assert empty_stores({"store": empty, "other": filled}, config="qa.yaml") is None
    assert empty_stores({"store": Unreachable()}, config="qa.yaml") is None
    assert empty_stores({"retriever": object()}, config="qa.yaml") is None
