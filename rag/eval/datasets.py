"""Evaluation datasets: BEIR folders, QA sets (JSONL) and generic JSONL/CSV with a field mapping.

Every loader validates up front and raises :class:`EvalDataError` naming the file, the first
offenders and how many there are, so a run never starts on data it would silently mis-score:

- BEIR (``corpus.jsonl`` with ``_id``/``title``/``text``, ``queries.jsonl`` with ``_id``/``text``,
  ``qrels/<split>.tsv`` with the header ``query-id corpus-id score``): a missing qrels file,
  qrels naming unknown documents or queries, duplicate ids and empty texts are errors.
- QA JSONL (``question``, ``answers``, optional gold document ids): a line without a required
  field is an error that names the line.

Example:
    >>> # Needs the Cranfield dataset of ../shared/data.
    >>> from rag.eval.datasets import load_beir
    >>> data = load_beir("../shared/data/cranfield")  # doctest: +SKIP
    >>> len(data.queries), len(data.qrels)  # doctest: +SKIP
    (225, 225)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError, InvalidInputError
from rag.core.limits import allow_long_csv_fields, loads_json
from rag.core.lines import UndecodableLine, decoded_lines

__all__ = [
    "EvalDataError",
    "EvalDataset",
    "EvalQuery",
    "load_beir",
    "load_dataset",
    "load_qa",
    "read_rows",
]

_SHOWN = 5  # offenders listed in an error message


class EvalDataError(ConfigError):
    """An evaluation dataset is malformed (``rag eval`` exits 2, naming file and offenders)."""


def _offenders(items: Sequence[Any]) -> str:
    shown = ", ".join(repr(x) if not isinstance(x, str) else x for x in items[:_SHOWN])
    more = f" ... ({len(items)} in all)" if len(items) > _SHOWN else f" ({len(items)} in all)"
    return shown + more


@dataclass
class EvalQuery:
    """One query (or question) of a dataset.

    Attributes:
        id: Query id (``_id`` of BEIR's queries.jsonl).
        text: The query or question.
        answers: Gold answers (QA sets); empty for retrieval-only sets.
        gold_doc_ids: Documents that support the answer (QA sets), used for citation metrics.
    """

    id: str
    text: str
    answers: list[str] = field(default_factory=list)
    gold_doc_ids: list[str] = field(default_factory=list)


@dataclass
class EvalDataset:
    """Queries, relevance judgments and (optionally) the corpus to ingest.

    Attributes:
        name: Short name for reports (the folder or file stem).
        queries: Queries in file order.
        qrels: ``{query_id: {doc_id: relevance}}`` (graded, ``>= 1`` is relevant).
        corpus_path: A JSONL file with ``_id``/``title``/``text`` rows the runner ingests.
        doc_ids: Ids of the corpus documents (empty when there is no corpus).
    """

    name: str
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    corpus_path: Path | None = None
    doc_ids: set[str] = field(default_factory=set)

    @property
    def has_answers(self) -> bool:
        """Whether any query carries gold answers."""
        return any(q.answers for q in self.queries)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queries": len(self.queries),
            "judged_queries": len(self.qrels),
            "documents": len(self.doc_ids),
            "with_answers": sum(1 for q in self.queries if q.answers),
        }


# -- readers -----------------------------------------------------------------------------------
def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file (a byte order mark dropped), decoded line by
    line so that text in another encoding is an error naming its line."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise EvalDataError("file not found", file=str(path)) from None
    with handle:
        try:
            yield from decoded_lines(handle)
        except UndecodableLine as err:
            raise EvalDataError(
                f"not UTF-8 text ({err.reason} at byte {err.byte_in_line} of the line); re-save "
                "the file as UTF-8",
                file=str(path),
                line=err.line,
            ) from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            row = loads_json(line, where=f"{path}:{number}")
        except json.JSONDecodeError as err:
            raise EvalDataError(f"invalid JSON ({err.msg})", file=str(path), line=number) from None
        except InvalidInputError as err:  # nested too deep, NaN or Infinity
            raise EvalDataError(err.message, file=str(path), line=number) from None
        if not isinstance(row, dict):
            raise EvalDataError("each line must be a JSON object", file=str(path), line=number)
        yield number, row


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    allow_long_csv_fields()
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # line by line, as the JSONL reader: memory stays flat and a bad byte names its line
    reader = csv.DictReader((line for _, line in _text_lines(path)), delimiter=delimiter)
    for row in reader:
        yield reader.line_num, dict(row)


def _text_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in _text_lines(path):
        if line.strip():
            yield number, {"text": line.strip()}


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    r"""``(line number, row)`` of a JSON Lines file, of a CSV / TSV file with a header row (a
    row's values are text), or of a ``.txt`` file (one ``{"text": line}`` per line), by the
    file's suffix. Blank JSONL and text lines are skipped; the file must be UTF-8.

    Raises:
        EvalDataError: the file is missing or not UTF-8, or a line is not a JSON object
            (naming the line).

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "questions.tsv"
        >>> _ = path.write_text("id\tquestion\nq1\tWhat is BM25?\n", encoding="utf-8")
        >>> list(read_rows(path))
        [(2, {'id': 'q1', 'question': 'What is BM25?'})]
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _csv_rows(path)
    return _text_rows(path) if suffix == ".txt" else _jsonl_rows(path)


def _check_duplicates(ids: Sequence[str], path: Path, what: str) -> None:
    seen: set[str] = set()
    duplicates = []
    for item in ids:
        if item in seen and item not in duplicates:
            duplicates.append(item)
        seen.add(item)
    if duplicates:
        raise EvalDataError(f"duplicate {what} id(s): {_offenders(duplicates)}", file=str(path))


def read_corpus_ids(path: Path, *, empty_documents: str = "error") -> set[str]:
    """Validate a BEIR ``corpus.jsonl`` and return its document ids.

    Args:
        path: The corpus file.
        empty_documents: ``error`` (default) or ``keep``: an empty document stays in the id set
            (qrels may name it) but cannot be retrieved, which lowers recall honestly.

    Raises:
        EvalDataError: missing ``_id``, duplicate ids, or empty documents under ``error``.
    """
    if empty_documents not in ("error", "keep"):
        raise ConfigError(
            f"empty_documents must be 'error' or 'keep', got {empty_documents!r}",
            field="dataset.empty_documents",
        )
    ids: list[str] = []
    empty: list[str] = []
    for number, row in _jsonl_rows(path):
        if "_id" not in row:
            raise EvalDataError("corpus row has no '_id'", file=str(path), line=number)
        doc_id = str(row["_id"])
        ids.append(doc_id)
        text = f"{row.get('title') or ''} {row.get('text') or ''}"
        if not text.strip():
            empty.append(doc_id)
    _check_duplicates(ids, path, "document")
    if empty and empty_documents == "error":
        raise EvalDataError(
            f"empty document text (title and text) for id(s): {_offenders(empty)}; fix the "
            "corpus, or set 'empty_documents: keep' under dataset to evaluate them as "
            "unretrievable",
            file=str(path),
        )
    return set(ids)


def read_queries(path: Path) -> list[EvalQuery]:
    """Read a BEIR ``queries.jsonl``.

    Raises:
        EvalDataError: a row without ``_id`` or ``text`` (naming the line), duplicates, empty text.
    """
    queries: list[EvalQuery] = []
    empty: list[str] = []
    for number, row in _jsonl_rows(path):
        for key in ("_id", "text"):
            if key not in row:
                raise EvalDataError(
                    f"query row has no '{key}' (fields: {', '.join(row) or 'none'})",
                    file=str(path),
                    line=number,
                )
        query = EvalQuery(id=str(row["_id"]), text=str(row["text"]))
        if not query.text.strip():
            empty.append(query.id)
        queries.append(query)
    _check_duplicates([q.id for q in queries], path, "query")
    if empty:
        raise EvalDataError(f"empty query text for id(s): {_offenders(empty)}", file=str(path))
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id corpus-id score`` with a header line).

    Raises:
        EvalDataError: the file is missing, a line has fewer than three columns or a
            non-integer score (naming the line), or a pair is judged twice.
    """
    if not path.is_file():
        raise EvalDataError("qrels file not found", file=str(path))
    qrels: dict[str, dict[str, int]] = {}
    repeated: list[str] = []
    for number, line in _text_lines(path):
        parts = line.rstrip("\r\n").split("\t")
        if number == 1 and parts[:2] == ["query-id", "corpus-id"]:
            continue
        if not line.strip():
            continue
        if len(parts) < 3:
            raise EvalDataError(
                "a qrels line needs 'query-id<TAB>corpus-id<TAB>score'",
                file=str(path),
                line=number,
            )
        query_id, doc_id, score = parts[0], parts[1], parts[2]
        try:
            relevance = int(float(score))
        except ValueError:
            raise EvalDataError(
                f"score {score!r} is not a number", file=str(path), line=number
            ) from None
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged:
            repeated.append(f"{query_id}/{doc_id}")
        judged[doc_id] = relevance
    if repeated:
        raise EvalDataError(
            f"query/document pair(s) judged twice: {_offenders(repeated)}", file=str(path)
        )
    return qrels


def check_qrels(
    qrels: Mapping[str, Mapping[str, int]],
    *,
    query_ids: set[str],
    doc_ids: set[str] | None,
    file: str,
) -> None:
    """Qrels may only name known queries and (when a corpus is given) known documents.

    Raises:
        EvalDataError: listing the first unknown ids and how many there are.
    """
    unknown_queries = sorted(q for q in qrels if q not in query_ids)
    if unknown_queries:
        raise EvalDataError(
            f"qrels name {len(unknown_queries)} unknown query id(s): {_offenders(unknown_queries)}",
            file=file,
        )
    if doc_ids is not None:
        unknown_docs = sorted({d for judged in qrels.values() for d in judged if d not in doc_ids})
        if unknown_docs:
            raise EvalDataError(
                f"qrels name {len(unknown_docs)} unknown document id(s): "
                f"{_offenders(unknown_docs)}",
                file=file,
            )


# -- QA sets -----------------------------------------------------------------------------------
QA_FIELDS = {"id": "_id", "question": "question", "answers": "answers", "gold_doc_ids": None}
"""Default field mapping of a QA JSONL file (SQuAD-like)."""


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        # CSV cells can hold a JSON list or a '|'-separated list
        text = value.strip()
        if text.startswith("["):
            try:
                return [str(v) for v in json.loads(text)]
            except json.JSONDecodeError:
                pass
        return [part.strip() for part in text.split("|") if part.strip()] if text else []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def load_qa(
    path: str | Path,
    *,
    fields: Mapping[str, str | None] | None = None,
    corpus: str | Path | None = None,
    name: str | None = None,
) -> EvalDataset:
    """Load a QA set from JSONL or CSV.

    Args:
        path: The file (``.jsonl`` or ``.csv``).
        fields: Maps ``id``, ``question``, ``answers`` and ``gold_doc_ids`` to the file's field
            names (defaults: ``_id``, ``question``, ``answers``, none). ``id`` may be ``None``
            (line numbers are used). A gold id field also yields qrels (relevance 1).
        corpus: Optional BEIR-style ``corpus.jsonl`` to ingest for retrieval.
        name: Report name (default: the file stem).

    Raises:
        EvalDataError: a missing field names line N; duplicate ids; gold ids not in ``corpus``.

    Example:
        >>> # Needs a QA file, qa.jsonl.
        >>> data = load_qa("qa.jsonl", fields={"gold_doc_ids": "context_id"})  # doctest: +SKIP
        >>> data.queries[0].answers  # doctest: +SKIP
        ['Denver Broncos']
    """
    path = Path(path)
    mapping = {**QA_FIELDS, **(fields or {})}
    unknown = set(mapping) - set(QA_FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown field mapping key(s) {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(QA_FIELDS)}",
            field="dataset.fields",
        )
    queries: list[EvalQuery] = []
    for number, row in read_rows(path):
        required = [mapping["question"], mapping["answers"]]
        for key in (k for k in required if k):
            if key not in row or row[key] in (None, ""):
                raise EvalDataError(
                    f"missing field '{key}' (fields: {', '.join(row) or 'none'}); map another "
                    "field with dataset.fields",
                    file=str(path),
                    line=number,
                )
        id_key = mapping["id"]
        if id_key and id_key not in row:
            raise EvalDataError(
                f"missing field '{id_key}' (fields: {', '.join(row) or 'none'}); map another "
                "field with dataset.fields (id: null numbers the questions by line)",
                file=str(path),
                line=number,
            )
        query_id = str(row[id_key]) if id_key else str(number)
        answers = _as_list(row[mapping["answers"]])
        if not answers:
            raise EvalDataError("empty 'answers' list", file=str(path), line=number)
        question = str(row[mapping["question"]])
        if not question.strip():
            raise EvalDataError("empty question", file=str(path), line=number)
        gold_key = mapping["gold_doc_ids"]
        gold = _as_list(row.get(gold_key)) if gold_key else []
        queries.append(EvalQuery(id=query_id, text=question, answers=answers, gold_doc_ids=gold))
    _check_duplicates([q.id for q in queries], path, "question")
    qrels = {q.id: dict.fromkeys(q.gold_doc_ids, 1) for q in queries if q.gold_doc_ids}
    corpus_path = Path(corpus) if corpus else None
    doc_ids: set[str] = set()
    if corpus_path is not None:
        doc_ids = read_corpus_ids(corpus_path)
        check_qrels(qrels, query_ids={q.id for q in queries}, doc_ids=doc_ids, file=str(path))
    return EvalDataset(
        name=name or path.stem,
        queries=queries,
        qrels=qrels,
        corpus_path=corpus_path,
        doc_ids=doc_ids,
    )


# -- BEIR --------------------------------------------------------------------------------------
def load_beir(
    path: str | Path,
    *,
    split: str = "test",
    answers: str | Path | None = None,
    answer_fields: Mapping[str, str | None] | None = None,
    empty_documents: str = "error",
    name: str | None = None,
) -> EvalDataset:
    """Load a BEIR folder; optionally attach gold answers from a QA JSONL keyed by query id.

    Args:
        path: Folder with ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: The qrels split.
        answers: A QA file (see :func:`load_qa`) whose ids are query ids (XQuAD's answers.jsonl).
        answer_fields: Field mapping for ``answers``.
        empty_documents: ``error`` or ``keep`` (see :func:`read_corpus_ids`).
        name: Report name (default: the folder name).

    Returns:
        The dataset; only queries with qrels are kept (as BEIR does), unless answers are given.

    Raises:
        EvalDataError: missing files, unknown ids in qrels, duplicates, empty texts.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise EvalDataError("BEIR dataset folder not found", file=str(folder))
    corpus_path = folder / "corpus.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for needed in (corpus_path, folder / "queries.jsonl"):
        if not needed.is_file():
            raise EvalDataError(
                f"not a BEIR folder: {needed.name} is missing (expected corpus.jsonl, "
                "queries.jsonl and qrels/<split>.tsv)",
                file=str(folder),
            )
    if not qrels_path.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        hint = f"splits found: {', '.join(found)}" if found else "the folder has no qrels"
        raise EvalDataError(
            f"qrels file qrels/{split}.tsv not found ({hint}); set dataset.split",
            file=str(folder),
        )
    doc_ids = read_corpus_ids(corpus_path, empty_documents=empty_documents)
    queries = read_queries(folder / "queries.jsonl")
    qrels = read_qrels(qrels_path)
    check_qrels(qrels, query_ids={q.id for q in queries}, doc_ids=doc_ids, file=str(qrels_path))
    if answers is not None:
        qa = load_qa(answers, fields=answer_fields)
        by_id = {q.id: q for q in qa.queries}
        unknown = sorted(set(by_id) - {q.id for q in queries})
        if unknown:
            raise EvalDataError(
                f"answers name {len(unknown)} unknown query id(s): {_offenders(unknown)}",
                file=str(answers),
            )
        for query in queries:
            if query.id in by_id:
                query.answers = by_id[query.id].answers
                query.gold_doc_ids = by_id[query.id].gold_doc_ids or sorted(
                    d for d, rel in qrels.get(query.id, {}).items() if rel > 0
                )
        queries = [q for q in queries if q.id in qrels or q.answers]
    else:
        queries = [q for q in queries if q.id in qrels]
    return EvalDataset(
        name=name or folder.name,
        queries=queries,
        qrels=qrels,
        corpus_path=corpus_path,
        doc_ids=doc_ids,
    )


FORMATS = ("beir", "qa", "jsonl", "csv")


def load_dataset(spec: Mapping[str, Any], *, base_dir: Path | None = None) -> EvalDataset:
    """Load the ``dataset:`` section of an eval YAML.

    ``{format: beir, path, split, answers, answer_fields, empty_documents}`` or
    ``{format: qa|jsonl|csv, path, fields, corpus}``; relative paths resolve against
    ``base_dir`` (the eval file's folder).

    Raises:
        ConfigError: an unknown format or key (field ``dataset.<key>``).
        EvalDataError: the data itself is malformed.
    """
    base = base_dir or Path.cwd()

    def resolve(value: Any) -> Path | None:
        if value is None:
            return None
        candidate = Path(str(value)).expanduser()
        return candidate if candidate.is_absolute() else base / candidate

    fmt = spec.get("format", "beir")
    allowed = {
        "beir": {"format", "path", "split", "answers", "answer_fields", "empty_documents", "name"},
        "qa": {"format", "path", "fields", "corpus", "name"},
    }
    allowed["jsonl"] = allowed["csv"] = allowed["qa"]
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown dataset format {fmt!r}; valid: {', '.join(FORMATS)}", field="dataset.format"
        )
    for key in spec:
        if key not in allowed[fmt]:
            raise ConfigError(
                f"unknown key '{key}' for dataset format {fmt}; valid: "
                f"{', '.join(sorted(allowed[fmt]))}",
                field=f"dataset.{key}",
            )
    if "path" not in spec:
        raise ConfigError("dataset needs a 'path'", field="dataset.path")
    path = resolve(spec["path"])
    assert path is not None
    if fmt == "beir":
        return load_beir(
            path,
            split=str(spec.get("split", "test")),
            answers=resolve(spec.get("answers")),
            answer_fields=spec.get("answer_fields"),
            empty_documents=str(spec.get("empty_documents", "error")),
            name=spec.get("name"),
        )
    return load_qa(
        path, fields=spec.get("fields"), corpus=resolve(spec.get("corpus")), name=spec.get("name")
    )
