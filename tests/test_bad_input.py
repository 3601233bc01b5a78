"""The catalogue of bad and hostile input (issue 20, part A): every case exits with its named
code, the message names the offender, and no traceback or secret is printed.

The pipelines use a tiny hashing embedder defined here (imported from YAML with
``RAGLINE_ALLOW_IMPORTS=1``), so ingesting costs milliseconds and no model loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.core.component import Component
from rag.core.documents import Chunk
from rag.pipelines.records import writer_lock

pytestmark = pytest.mark.unit

SECRET = "hunter2-very-secret-pw"


class HashEmbedder(Component):
    """Deterministic 16-dimensional bag-of-words vectors (no model)."""

    outputs = {"chunks": list[Chunk]}

    def __init__(self, *, dimension: int = 16) -> None:
        self.dimension = dimension

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in text.lower().split():
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector + 1.0 / np.sqrt(self.dimension)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self._vector(t) for t in texts]) if texts else np.zeros((0, 16))

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def run(self, chunks: list[Chunk]) -> dict[str, Any]:
        vectors = self.embed_documents([c.text for c in chunks])
        for chunk, vector in zip(chunks, vectors):
            chunk.embedding = vector
        return {"chunks": chunks}


PIPELINE = """\
components:
  embedder:
    type: tests.test_bad_input:HashEmbedder
  store:
    type: store.faiss
    init_parameters:
      path: {index}
  loader:
    type: loader.files
  splitter:
    type: splitter.recursive
    init_parameters:
      chunk_size: 64
      chunk_overlap: 0
  writer:
    type: writer.store
    init_parameters:
      store: "@store"
  retriever:
    type: retriever.dense
    init_parameters: {{store: "@store", embedder: "@embedder"}}
pipelines:
  ingest: {{components: [loader, splitter, embedder, writer]}}
  search: {{components: [retriever]}}
"""


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def clean(result: Any, *, code: int, names: list[str]) -> str:
    """Assert the exit code, that each of ``names`` is in the output, no traceback, no secret."""
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output
    assert SECRET not in output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"raised {result.exception!r}")
    for name in names:
        assert name in output, (name, output)
    return output


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGLINE_ALLOW_IMPORTS", "1")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Cats\n\nCats purr and nap in the sun all day long.\n")
    (corpus / "b.txt").write_text("Stocks fell sharply today as markets reacted to rates.\n")
    config = tmp_path / "pipeline.yaml"
    config.write_text(PIPELINE.format(index=tmp_path / "index"))
    return tmp_path, corpus, config


def ingest(corpus: Path, config: Path, *extra: Any) -> Any:
    return invoke("ingest", corpus, "--config", config, "--json", "--quiet", *extra)


# -- 1. YAML: billion laughs, cycles, devices --------------------------------------------------
def test_billion_laughs_is_refused_fast(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    body = "\n".join("  " + line for line in lines)
    path = tmp_path / "laughs.yaml"
    path.write_text(f"metadata:\n{body}\ncomponents: {{}}\n")
    started = time.perf_counter()
    out = clean(invoke("validate", path), code=2, names=[str(path), "alias"])
    assert time.perf_counter() - started < 30  # it used to run out of memory
    assert "more than 100000 values" in out


def test_self_referencing_alias_names_its_line(tmp_path):
    path = tmp_path / "cycle.yaml"
    path.write_text("components:\n  x: &a {path: x, extra: *a}\n")
    clean(invoke("validate", path), code=2, names=[f"{path}:2", "cycle"])


def test_validate_dev_zero_is_not_read_forever():
    clean(invoke("validate", "/dev/zero"), code=2, names=["/dev/zero", "not a regular file"])


def test_a_huge_yaml_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("metadata: '" + "x" * (5 * 1024 * 1024) + "'\n")
    clean(invoke("validate", path), code=2, names=[str(path), "larger than 4 MiB"])


def test_duplicate_key_names_the_file_and_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("components:\n  a: {type: loader.files}\n  a: {type: loader.files}\n")
    clean(invoke("validate", path), code=2, names=[f"{path}:3", "duplicate key 'a'", "line 2"])


@pytest.mark.parametrize(
    ("replace", "names"),
    [
        (("chunk_size: 64", "chunk_size: 0"), [":13", "chunk_size"]),
        (
            ("chunk_size: 64", 'chunk_size: "sixty-four"'),
            [":13", "chunk_size", "must be an integer", "'sixty-four'"],
        ),
        (("loader.files", "loader.files\n    init_parameters: {encoding: 7}"), [":10", "encoding"]),
    ],
    ids=["zero", "words", "int-for-str"],
)
def test_parameter_errors_name_the_keys_own_line(workspace, replace, names):
    _, _, config = workspace
    config.write_text(config.read_text().replace(*replace))
    out = clean(invoke("validate", config), code=2, names=[str(config), *names])
    assert "not supported between" not in out


def test_device_quantum_exits_2_with_its_line(workspace, tmp_path):
    path = tmp_path / "device.yaml"
    path.write_text(
        "components:\n  store:\n    type: store.faiss\n    init_parameters:\n"
        f"      path: {tmp_path / 'i'}\n      device: quantum\n"
    )
    clean(invoke("validate", path), code=2, names=[f"{path}:6", "device", "'quantum'"])


@pytest.mark.parametrize("where", ["file", "proc"])
def test_store_path_that_is_a_file_or_under_proc(workspace, where):
    root, _, config = workspace
    target = root / "a-file" if where == "file" else Path("/proc/ragline-index")
    (root / "a-file").write_text("not a folder")
    config.write_text(config.read_text().replace(str(root / "index"), str(target)))
    clean(invoke("validate", config), code=2, names=[f"{config}:7", str(target)])


def test_model_path_that_is_a_file_exits_2(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    model = tmp_path / "model.bin"
    model.write_text("not a model")
    path = tmp_path / "p.yaml"
    path.write_text(
        "components:\n  embedder:\n    type: embedder.sentence_transformers\n"
        f"    init_parameters: {{model: {model}, device: cpu}}\n"
        f"  store: {{type: store.faiss, init_parameters: {{path: {tmp_path / 'i'}}}}}\n"
        "  retriever:\n    type: retriever.dense\n"
        '    init_parameters: {store: "@store", embedder: "@embedder"}\n'
        "pipelines:\n  search: {components: [retriever]}\n"
    )
    clean(invoke("search", "hello", "--config", path), code=2, names=[str(model)])


# -- 2. JSONL depth, 3. non-finite numbers -----------------------------------------------------
def test_deep_jsonl_line_is_one_row_error_and_the_rest_is_ingested(workspace):
    _, corpus, config = workspace
    (corpus / "deep.jsonl").write_text(
        '{"text": "fine row"}\n' + "[" * 100_000 + "]" * 100_000 + "\n"
    )
    out = clean(ingest(corpus, config), code=0, names=[])
    report = json.loads(out)
    assert report["sources"] == 3
    sources = [e["source"] for e in report["errors"]]
    assert sources == [(corpus / "deep.jsonl").as_posix() + ":2"]
    assert "nested 100000 levels deep" in report["errors"][0]["error"]
    assert report["chunks_written"] >= 3  # a.md, b.txt and the fine row


@pytest.mark.parametrize("number", ["1e400", "NaN", "-Infinity"])
def test_non_finite_metadata_is_refused_per_row(workspace, number):
    _, corpus, config = workspace
    (corpus / "rows.jsonl").write_text(
        '{"text": "good", "score": 1.5}\n' + f'{{"text": "bad", "score": {number}}}\n'
    )
    report = json.loads(clean(ingest(corpus, config), code=0, names=[]))
    assert [e["source"] for e in report["errors"]] == [(corpus / "rows.jsonl").as_posix() + ":2"]
    assert "not" in report["errors"][0]["error"] and "finite" in report["errors"][0]["error"]
    result = invoke("search", "good", "--config", config, "--json")
    data = json.loads(clean(result, code=0, names=[]))  # strict JSON: no Infinity
    assert all(h["metadata"].get("score") in (None, 1.5) for h in data["hits"])


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ('"ten"', ["'k'", "must be an integer"]),
        ("-1", ["k: must be a whole number of at least 1", "got -1"]),
        ("1e400", ["--input k", "finite"]),
    ],
    ids=["string", "negative", "infinite"],
)
def test_run_inputs_of_the_wrong_kind_exit_2(workspace, value, names):
    _, _, config = workspace
    result = invoke(
        "run", config, "--pipeline", "search", "--input", "query=cats", "--input", f"k={value}"
    )
    clean(result, code=2, names=names)


def test_filter_nested_1000_deep_exits_2(workspace):
    _, _, config = workspace
    deep = '{"$not": ' * 1000 + '{"a": 1}' + "}" * 1000
    result = invoke("search", "cats", "--config", config, "--filter", deep)
    clean(result, code=2, names=["--filter", "nested"])


def test_filter_with_nan_exits_2(workspace):
    _, _, config = workspace
    result = invoke("search", "cats", "--config", config, "--filter", '{"score": NaN}')
    clean(result, code=2, names=["--filter", "NaN"])


# -- 4. broken stores --------------------------------------------------------------------------
def test_deleted_chunks_sqlite_is_named_and_the_data_comes_back(workspace):
    root, corpus, config = workspace
    first = json.loads(clean(ingest(corpus, config), code=0, names=[]))
    assert first["chunks_written"] >= 2
    index = root / "index"
    for name in ("chunks.sqlite", "chunks.sqlite-wal", "chunks.sqlite-shm"):
        (index / name).unlink(missing_ok=True)
    out = clean(invoke("stats", "--config", config), code=2, names=["chunks.sqlite", "index.faiss"])
    assert "run 'rag ingest' again" in out
    # The repair the message names: move the index aside and ingest again.
    (index / "index.faiss").unlink()
    (index / "index.json").unlink()
    again = json.loads(clean(ingest(corpus, config), code=0, names=[]))
    assert again["chunks_written"] == first["chunks_written"]  # not skipped as "done"
    stats = json.loads(clean(invoke("stats", "--config", config, "--json"), code=0, names=[]))
    assert stats["chunks"] == first["chunks_written"]


def test_records_claiming_chunks_the_store_lost_are_reingested(workspace, caplog):
    root, corpus, config = workspace
    first = json.loads(clean(ingest(corpus, config), code=0, names=[]))
    # Empty the store behind the records' back (a dropped collection, a restored backup).
    db = sqlite3.connect(root / "index" / "chunks.sqlite")
    db.execute("DELETE FROM chunks WHERE text LIKE '%Cats%'")
    db.execute("UPDATE info SET value = value + 1 WHERE key = 'generation'")
    db.commit()
    db.close()
    again = json.loads(clean(ingest(corpus, config), code=0, names=[]))
    assert again["chunks_written"] >= 1
    assert again["chunks_skipped"] >= 1  # b.txt was intact
    stats = json.loads(clean(invoke("stats", "--config", config, "--json"), code=0, names=[]))
    assert stats["chunks"] == first["chunks_written"]


def test_index_json_of_the_wrong_shape_is_rebuilt(workspace):
    root, corpus, config = workspace
    first = json.loads(clean(ingest(corpus, config), code=0, names=[]))
    (root / "index" / "index.json").write_text("[]")
    result = invoke("stats", "--config", config, "--json")
    assert json.loads(clean(result, code=0, names=[]))["chunks"] == first["chunks_written"]


@pytest.mark.parametrize("name", ["chunks.sqlite", "records.sqlite"])
def test_corrupt_sqlite_files_are_named(workspace, name):
    root, corpus, config = workspace
    clean(ingest(corpus, config), code=0, names=[])
    for suffix in ("", "-wal", "-shm"):
        (root / "index" / f"{name}{suffix}").unlink(missing_ok=True)
    (root / "index" / name).write_bytes(b"this is not a database at all" * 100)
    result = ingest(corpus, config)
    clean(result, code=2, names=[str(root / "index" / name)])


def test_foreign_sqlite_is_refused(workspace):
    root, _, config = workspace
    (root / "index").mkdir()
    db = sqlite3.connect(root / "index" / "chunks.sqlite")
    db.execute("CREATE TABLE chunks (name TEXT, price REAL)")
    db.commit()
    db.close()
    clean(invoke("stats", "--config", config), code=2, names=["chunks.sqlite", "another program"])


def test_a_second_writer_exits_2_naming_the_holder(workspace):
    root, corpus, config = workspace
    with writer_lock(str(root / "index" / "records.sqlite"), timeout=0):
        result = ingest(corpus, config, "--lock-timeout", "0.3")
    clean(result, code=2, names=[f"process {os.getpid()}", "records.sqlite.lock", "since"])
    clean(ingest(corpus, config), code=0, names=[])  # released


# -- 5. secrets --------------------------------------------------------------------------------
def test_url_credentials_are_never_printed(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("EMB_URL", f"http://admin:{SECRET}@127.0.0.1:9/v1")
    path = tmp_path / "remote.yaml"
    path.write_text(
        "components:\n  embedder:\n    type: embedder.http\n    init_parameters:\n"
        "      base_url: ${EMB_URL}\n      model: m\n      max_retries: 0\n"
        f"  store: {{type: store.faiss, init_parameters: {{path: {tmp_path / 'i'}}}}}\n"
        "  retriever:\n    type: retriever.dense\n"
        '    init_parameters: {store: "@store", embedder: "@embedder"}\n'
        "pipelines:\n  search: {components: [retriever]}\n"
    )
    result = invoke("search", "hello", "--config", path)
    out = clean(result, code=1, names=["http://***@127.0.0.1:9"])
    assert "admin" not in out


def test_a_literal_api_key_is_refused_without_echo(tmp_path):
    path = tmp_path / "key.yaml"
    path.write_text(
        "components:\n  embedder:\n    type: embedder.http\n    init_parameters:\n"
        f"      base_url: http://127.0.0.1:9/v1\n      model: m\n      api_key: sk-{SECRET}\n"
    )
    clean(invoke("validate", path), code=2, names=[f"{path}:7", "api_key", "environment"])


def test_a_literal_secret_elsewhere_warns_without_echo(tmp_path):
    path = tmp_path / "key.yaml"
    path.write_text(
        "components:\n  generator:\n    type: generator.openai\n    init_parameters:\n"
        "      base_url: http://127.0.0.1:9/v1\n      model: m\n"
        f"      extra_body: {{user_token: sk-{SECRET}}}\n"
    )
    result = invoke("validate", path)
    if result.exit_code == 2 and "extra_body" in result.output:
        pytest.skip("generator.openai takes no extra_body here")
    clean(result, code=0, names=["warning:", f"{path}:7", "extra_body.user_token"])


# -- weak spots: usage -------------------------------------------------------------------------
def test_search_with_an_unknown_pipeline_exits_2(workspace):
    _, _, config = workspace
    clean(
        invoke("search", "cats", "--config", config, "--pipeline", "nope"),
        code=2,
        names=["'nope'", "Pipelines: ingest, search"],
    )


def test_search_for_a_blank_query_exits_2(workspace):
    _, _, config = workspace
    clean(invoke("search", "  ", "--config", config), code=2, names=["QUERY is blank"])


def test_ask_with_an_unknown_pipeline_exits_2(workspace):
    _, _, config = workspace
    clean(
        invoke("ask", "cats?", "--config", config, "--pipeline", "nope"),
        code=2,
        names=["'nope'", "ingest, search"],
    )


def test_eval_out_that_is_a_file_exits_2(tmp_path):
    from tests.eval.helpers import EVAL, write_eval

    path = write_eval(tmp_path, EVAL)
    out = tmp_path / "out.txt"
    out.write_text("a file")
    clean(invoke("eval", path, "--out", out), code=2, names=[str(out), "is a file"])


def test_symlink_loop_fifo_and_unlistable_dir_are_reported_per_file(workspace, monkeypatch):
    _, corpus, config = workspace
    (corpus / "loop.md").symlink_to(corpus / "loop.md")
    os.mkfifo(corpus / "pipe.txt")
    hidden = corpus / "locked"
    hidden.mkdir()
    (hidden / "c.md").write_text("# Hidden\n\nNobody can list this folder.\n")
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:  # as if chmod 000 (root ignores permission bits)
        if Path(path) == hidden:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = json.loads(clean(ingest(corpus, config), code=0, names=[]))
    errors = {e["source"]: e["error"] for e in report["errors"]}
    assert "symbolic link loop" in errors[(corpus / "loop.md").as_posix()]
    assert "FIFO" in errors[(corpus / "pipe.txt").as_posix()]
    assert "cannot list directory" in errors[hidden.as_posix()]
    assert report["chunks_written"] >= 2  # the readable files went in


def test_a_missing_path_and_a_fifo_given_directly(workspace, tmp_path):
    _, _, config = workspace
    fifo = tmp_path / "direct.txt"
    os.mkfifo(fifo)
    report = json.loads(clean(ingest(fifo, config), code=0, names=[]))
    assert "FIFO" in report["errors"][0]["error"]


def test_whitespace_only_files_are_errors(workspace):
    _, corpus, config = workspace
    (corpus / "blank.txt").write_text("   \n\t \n")
    report = json.loads(clean(ingest(corpus, config), code=0, names=[]))
    assert {"source": (corpus / "blank.txt").as_posix(), "error": "empty file"} in report["errors"]


def test_no_traceback_for_an_unexpected_error(workspace, monkeypatch):
    _, corpus, config = workspace
    monkeypatch.delenv("RAG_DEBUG", raising=False)
    import rag.pipelines.ingest as ingest_module

    def boom(*_: Any, **__: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(ingest_module, "run_ingest", boom)
    clean(ingest(corpus, config), code=1, names=["unexpected KeyError", "RAG_DEBUG=1"])


def test_search_json_stays_json_over_an_old_store_holding_infinity(workspace):
    root, corpus, config = workspace
    clean(ingest(corpus, config), code=0, names=[])
    db = sqlite3.connect(root / "index" / "chunks.sqlite")  # as an older ragline let it in
    for rowid, metadata in db.execute("SELECT rowid, metadata FROM chunks").fetchall():
        value = {**json.loads(metadata), "score": float("inf")}
        db.execute("UPDATE chunks SET metadata=? WHERE rowid=?", (json.dumps(value), rowid))
    db.commit()
    db.close()
    result = invoke("search", "cats purr", "--config", config, "--json")
    out = clean(result, code=0, names=[])
    assert "Infinity" not in out
    assert json.loads(out)["hits"][0]["metadata"]["score"] is None
