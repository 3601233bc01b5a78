"""The body of ``rag ask`` (the typer wrapper in :mod:`rag.cli` parses the options).

``rag ask "question" --config qa.yaml`` streams the answer to stdout, then lists the citations;
``--json`` prints the ``Answer`` in the DESIGN shape; ``--questions q.jsonl`` prints one JSON
answer per line with ``"question_id"``. Logs and progress go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from rag.chains.answer import Answer
from rag.chains.rag import RagChain
from rag.cli_search import nothing_retrieved
from rag.core.errors import ConfigError, RagError
from rag.core.pipeline import PipelineFile
from rag.core.roles import Role, find_role


def find_chain(app_file: PipelineFile, pipeline: str | None, *, config: Path | str) -> RagChain:
    """The ``chain.rag`` of pipeline ``pipeline`` (``None``: of ``ask``, else the file's only one).

    The choice is :func:`rag.core.roles.find_role`'s, the one that ``rag serve`` makes too.

    Raises:
        ConfigError: a named pipeline the file lacks, no such chain, or several and none chosen by
            ``--pipeline``.
    """
    try:
        match = find_role(app_file, Role.CHAIN, pipeline=pipeline, prefer=["ask"])
    except ConfigError as err:
        raise err.located(file=str(config), line=None, field=None) from None
    assert match is not None  # required=True
    if not isinstance(match.component, RagChain):
        raise ConfigError(
            f"component '{match.name}' is a {type(match.component).__name__}; rag ask needs a "
            "chain.rag",
            file=str(config),
            field=f"components.{match.name}",
        )
    return match.component


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def _print_citations(answer: Answer, out: TextIO) -> None:
    spans = answer.spans or ([answer.span] if answer.span is not None else [])
    if answer.grounded and spans:
        where = "; ".join(f"context [{s.index}], characters {s.start}-{s.end}" for s in spans)
        out.write(f"\nGrounded: copied verbatim from {where}\n")
    if answer.citations:
        out.write("\nCitations:\n")
        for citation in answer.citations:
            out.write(f"  [{citation.index}] {citation.source}  (chunk {citation.id})\n")
    else:
        # An abstaining answer weighed the contexts and found none answering; an answer style
        # that sends nothing (style.evidence) gave them to no model.
        why = "the model cited no context"
        if answer.finish_reason == "abstain":
            why = "no context answers it"
        out.write(f"\nCitations: none ({why})\n")
        if answer.contexts:
            out.write("Contexts given to the model:\n" if answer.steps else "Contexts read:\n")
            for context in answer.contexts:
                score = "" if context.score is None else f"  (score {context.score:.3f})"
                out.write(f"  [{context.index}] {context.source}{score}\n")
    if answer.invalid_citations:
        sys.stderr.write(
            f"note: {answer.invalid_citations} citation(s) named no given context and were "
            "dropped\n"
        )


def _note_nothing_retrieved(
    answer: Answer, app_file: PipelineFile, config: Path | str, filters: dict[str, Any] | None
) -> None:
    if not answer.contexts:
        why = nothing_retrieved(app_file.components, config=config, filters=filters)
        sys.stderr.write(f"note: {why}\n")


def ask_command(
    app_file: PipelineFile,
    *,
    config: Path | str,
    question: str | None = None,
    rows: Sequence[dict[str, Any]] | None = None,
    pipeline: str | None = None,
    k: int | None = None,
    filters: dict[str, Any] | None = None,
    json_output: bool = False,
    stream: bool = True,
    quiet: bool = False,
    out: TextIO | None = None,
    style: str | None = None,
) -> int:
    """Answer one ``question`` or every row of ``rows`` (``{"_id", "text"}``).

    Returns:
        The exit code: 0, or 1 when a question of a batch failed (its line carries ``"error"``).

    ``style`` overrides the chain's ``answer_style`` (``rag ask --style``).

    Raises:
        ConfigError: no chain in the file, or an unknown ``style`` (exit 2).
        RagError: the single question failed (exit 1).
    """
    out = out or sys.stdout
    chain = find_chain(app_file, pipeline, config=config)
    if style is not None and style != chain.answer_style:
        chain = chain.with_style(style)
    chain.warm_up()
    if rows is None:
        assert question is not None
        if json_output or not stream:
            answer = chain.ask(question, filters=filters, k=k)
            if json_output:
                out.write(_dumps(answer.to_dict()) + "\n")
                _note_nothing_retrieved(answer, app_file, config, filters)
                return 0
            out.write(answer.text + "\n")
        else:
            answer = None
            for piece in chain.stream(question, filters=filters, k=k):
                if isinstance(piece, Answer):
                    answer = piece
                else:
                    out.write(piece)
                    out.flush()
            assert answer is not None
            out.write("\n")
        _print_citations(answer, out)
        _note_nothing_retrieved(answer, app_file, config, filters)
        return 0

    from tqdm import tqdm

    failed = without_contexts = 0
    for row in tqdm(rows, desc="ask", unit="question", disable=quiet, file=sys.stderr):
        try:
            data = chain.ask(str(row["text"]), filters=filters, k=k).to_dict()
            without_contexts += not data["contexts"]
        except RagError as err:
            failed += 1
            data = {"question": row["text"], "error": str(err)}
        out.write(_dumps({"question_id": row["_id"], **data}) + "\n")
        out.flush()
    if without_contexts:
        why = nothing_retrieved(app_file.components, config=config, filters=filters)
        sys.stderr.write(f"note: {without_contexts} of {len(rows)} question(s): {why}\n")
    if failed:
        sys.stderr.write(f"{failed} of {len(rows)} question(s) failed\n")
    return 1 if failed else 0
