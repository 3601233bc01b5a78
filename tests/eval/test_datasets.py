"""Dataset loaders: BEIR folders, QA JSONL/CSV, and their up-front validation."""

from __future__ import annotations

import json

import pytest

from rag.core.errors import ConfigError
from rag.eval.datasets import EvalDataError, load_beir, load_dataset, load_qa
from tests.eval.helpers import QRELS, write_answers, write_beir

pytestmark = pytest.mark.unit


def test_beir_folder_loads_queries_qrels_and_corpus_ids(tmp_path):
    data = load_beir(write_beir(tmp_path / "beir"))
    assert [q.id for q in data.queries] == ["q1", "q2", "q3", "q4"]
    assert data.qrels["q1"] == {"d1": 2, "d2": 1}
    assert data.doc_ids == {"d1", "d2", "d3", "d4", "d5", "d6"}
    assert data.corpus_path == tmp_path / "beir" / "corpus.jsonl"
    assert not data.has_answers


def test_files_saved_with_a_byte_order_mark_load_the_same(tmp_path):
    folder = write_beir(tmp_path / "beir")
    for path in [folder / "queries.jsonl", folder / "corpus.jsonl", *folder.rglob("*.tsv")]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    data = load_beir(folder)
    assert [q.id for q in data.queries] == ["q1", "q2", "q3", "q4"]
    assert data.qrels["q1"] == {"d1": 2, "d2": 1}
    assert data.doc_ids == {"d1", "d2", "d3", "d4", "d5", "d6"}
    qa = tmp_path / "qa.csv"
    qa.write_bytes(b"\xef\xbb\xbfid,q,gold\n1,Capital of France?,Paris\n")
    (question,) = load_qa(qa, fields={"id": "id", "question": "q", "answers": "gold"}).queries
    assert question.id == "1" and question.answers == ["Paris"]


def test_beir_keeps_only_judged_queries(tmp_path):
    data = load_beir(write_beir(tmp_path / "beir", qrels=[("q2", "d3", 1)]))
    assert [q.id for q in data.queries] == ["q2"]


def test_folder_without_qrels_is_an_error_naming_the_split(tmp_path):
    folder = write_beir(tmp_path / "beir", with_qrels=False)
    with pytest.raises(EvalDataError, match=r"qrels/test\.tsv not found .*no qrels") as info:
        load_beir(folder)
    assert info.value.file == str(folder)


def test_wrong_split_lists_the_splits_found(tmp_path):
    folder = write_beir(tmp_path / "beir")
    with pytest.raises(
        EvalDataError, match=r"qrels/dev\.tsv not found \(splits found: test\); set dataset.split"
    ):
        load_beir(folder, split="dev")


def test_qrels_naming_unknown_documents_list_first_offenders_and_count(tmp_path):
    bad = [*QRELS, *[("q1", f"missing{i}", 1) for i in range(7)]]
    folder = write_beir(tmp_path / "beir", qrels=bad)
    with pytest.raises(EvalDataError) as info:
        load_beir(folder)
    message = str(info.value)
    assert "7 unknown document id(s)" in message
    assert "missing0, missing1, missing2, missing3, missing4 ... (7 in all)" in message
    assert message.startswith(str(folder / "qrels" / "test.tsv"))


def test_qrels_naming_unknown_queries(tmp_path):
    folder = write_beir(tmp_path / "beir", qrels=[*QRELS, ("q99", "d1", 1)])
    with pytest.raises(EvalDataError, match=r"1 unknown query id\(s\): q99 \(1 in all\)"):
        load_beir(folder)


def test_duplicate_document_ids(tmp_path):
    folder = write_beir(tmp_path / "beir")
    with (folder / "corpus.jsonl").open("a") as handle:
        handle.write(json.dumps({"_id": "d1", "title": "", "text": "again"}) + "\n")
    with pytest.raises(EvalDataError, match=r"duplicate document id\(s\): d1"):
        load_beir(folder)


def test_empty_document_is_an_error_unless_kept(tmp_path):
    docs = {"d1": ("", "text"), "d2": ("", "  ")}
    folder = write_beir(tmp_path / "beir", docs=docs, qrels=[("q1", "d2", 1)])
    with pytest.raises(
        EvalDataError, match=r"empty document text .*d2 \(1 in all\).*empty_documents: keep"
    ):
        load_beir(folder)
    assert load_beir(folder, empty_documents="keep").doc_ids == {"d1", "d2"}


def test_qrels_line_with_bad_score_names_the_line(tmp_path):
    folder = write_beir(tmp_path / "beir")
    with (folder / "qrels" / "test.tsv").open("a") as handle:
        handle.write("q1\td3\thigh\n")
    with pytest.raises(EvalDataError) as info:
        load_beir(folder)
    assert info.value.line == len(QRELS) + 2
    assert "score 'high' is not a number" in str(info.value)


def test_beir_with_answers_file_attaches_gold_answers(tmp_path):
    folder = write_beir(tmp_path / "beir")
    answers = write_answers(tmp_path / "answers.jsonl")
    data = load_beir(folder, answers=answers, answer_fields={"gold_doc_ids": "context_id"})
    by_id = {q.id: q for q in data.queries}
    assert by_id["q2"].answers == ["Paris"]
    assert by_id["q2"].gold_doc_ids == ["d3"]
    assert by_id["q1"].answers == []
    assert data.has_answers


def test_qa_file_with_missing_field_names_line_n(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [
        {"_id": "a", "question": "Who?", "answers": ["me"]},
        {"_id": "b", "question": "What?", "answers": ["it"]},
        {"_id": "c", "question": "Where?"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(EvalDataError) as info:
        load_qa(path)
    assert info.value.line == 3
    assert f"{path}:3" in str(info.value)
    assert "missing field 'answers'" in str(info.value)


def test_qa_csv_with_field_mapping(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text(
        'id,q,gold,doc\n1,Capital of France?,Paris|paris city,d3\n2,Jazz?,"[""New Orleans""]",d6\n'
    )
    data = load_qa(
        path, fields={"id": "id", "question": "q", "answers": "gold", "gold_doc_ids": "doc"}
    )
    assert [q.answers for q in data.queries] == [["Paris", "paris city"], ["New Orleans"]]
    assert data.qrels == {"1": {"d3": 1}, "2": {"d6": 1}}


def test_qa_tsv_reads_tab_separated_fields(tmp_path):
    path = tmp_path / "qa.tsv"
    path.write_text("id\tquestion\tanswers\nq1\tWhat is BM25, briefly?\tranking function\n")
    (query,) = load_qa(path, fields={"id": "id"}).queries
    assert (query.id, query.text, query.answers) == (
        "q1",
        "What is BM25, briefly?",
        ["ranking function"],
    )
    with pytest.raises(EvalDataError) as info:
        load_qa(path)  # the default id field is _id
    assert f"{path}:2" in str(info.value)
    assert "missing field '_id' (fields: id, question, answers)" in str(info.value)
    assert "dataset.fields" in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        (
            "qa.jsonl",
            b'{"_id": "a", "question": "Who?", "answers": ["me"]}\n{"_id": "b", "question": "caf\xe9?"}\n',
            2,
        ),
        ("qa.csv", b"_id,question,answers\na,Who?,me\nb,caf\xe9?,it\n", 3),
    ],
)
def test_a_file_in_another_encoding_names_its_line_and_the_fix(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(EvalDataError) as info:
        load_qa(path)
    assert info.value.line == line
    assert "not UTF-8 text" in str(info.value) and "re-save the file as UTF-8" in str(info.value)


def test_beir_queries_and_qrels_in_another_encoding_are_errors_not_crashes(tmp_path):
    folder = write_beir(tmp_path / "beir")
    queries = folder / "queries.jsonl"
    original = queries.read_bytes()
    queries.write_bytes(original + '{"_id": "q9", "text": "café"}\n'.encode("cp1252"))
    with pytest.raises(EvalDataError, match=r"queries\.jsonl:5: not UTF-8 text"):
        load_beir(folder)
    queries.write_bytes(original)
    qrels = next(folder.rglob("*.tsv"))
    qrels.write_bytes(qrels.read_bytes() + "q1\tcafé\t1\n".encode("cp1252"))
    with pytest.raises(EvalDataError, match="not UTF-8 text"):
        load_beir(folder)


def test_a_line_nested_too_deep_is_an_error_naming_it(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"_id": "a", "question": "Who?", "answers": ' + "[" * 5000 + "]" * 5000 + "}\n"
    )
    with pytest.raises(EvalDataError, match=r"qa\.jsonl:1: JSON nested 5001 levels deep"):
        load_qa(path)


def test_qa_gold_ids_must_be_in_the_corpus(tmp_path):
    corpus = write_beir(tmp_path / "beir") / "corpus.jsonl"
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps({"_id": "a", "question": "q?", "answers": ["x"], "doc": "nope"}) + "\n"
    )
    with pytest.raises(EvalDataError, match=r"unknown document id\(s\): nope"):
        load_qa(path, fields={"gold_doc_ids": "doc"}, corpus=corpus)


def test_load_dataset_rejects_unknown_format_and_keys(tmp_path):
    with pytest.raises(
        ConfigError, match="unknown dataset format 'parquet'; valid: beir, qa, jsonl, csv"
    ):
        load_dataset({"format": "parquet", "path": "x"}, base_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        load_dataset({"format": "beir", "path": "x", "spilt": "test"}, base_dir=tmp_path)
    assert info.value.field == "dataset.spilt"


def test_load_dataset_resolves_paths_against_base_dir(tmp_path):
    write_beir(tmp_path / "beir")
    data = load_dataset({"format": "beir", "path": "beir"}, base_dir=tmp_path)
    assert data.name == "beir"
