"""The ``rag`` command. Its options and ``--json`` shapes are a contract (see DESIGN.md).

Exit codes: 0 success; 1 the job ran but failed (a gate, errors in ``--strict`` mode);
2 bad usage or bad configuration (the message names the file, line and field).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer

from rag.cli_output import print_json, to_jsonable
from rag.core.errors import (
    ConfigError,
    FilterError,
    InvalidInputError,
    ModelNotFoundError,
    RagError,
    StoreCorruptError,
    StoreLockedError,
)
from rag.core.secrets import redact_urls

app = typer.Typer(
    name="rag",
    help="ragline: ingest, search, ask and evaluate with retrieval-augmented generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Pipeline file (YAML).", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr (URL credentials masked) and exit with ``code``."""
    typer.echo(f"error: {redact_urls(message)}", err=True)
    raise typer.Exit(code)


@contextmanager
def errors_to_exit_codes() -> Iterator[None]:
    """Map ragline errors to the CLI's exit codes (2: configuration/usage, 1: job failed)."""
    try:
        yield
    except (typer.Exit, typer.Abort, click.exceptions.ClickException):
        raise  # fail() inside the block, usage errors: already one line with their code
    except (ConfigError, FilterError, InvalidInputError, StoreCorruptError) as err:
        fail(str(err), 2)
    except StoreLockedError as err:
        fail(str(err), 2)
    except ModelNotFoundError as err:
        fail(str(err), 2)
    except RagError as err:
        fail(str(err), 1)
    except RecursionError:
        fail("input nested too deeply to process; flatten it", 2)
    except (
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    ) as err:
        # A path from the configuration (a model folder that is a file, ...).
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__, 2)
    except Exception as err:
        if os.environ.get("RAG_DEBUG"):
            raise
        first = str(err).splitlines()[0][:500] if str(err) else ""
        fail(
            f"unexpected {type(err).__name__}: {first} (set RAG_DEBUG=1 to see the traceback)",
            1,
        )


def configure_quiet(quiet: bool) -> None:
    """Silence third-party progress bars and logs that would clutter stderr."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def load_app(config: Path) -> Any:
    """Load a pipeline file or exit 2 with a located message."""
    from rag.core.pipeline import LiteralSecretWarning, PipelineFile

    with errors_to_exit_codes(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LiteralSecretWarning)
        loaded = PipelineFile.load(config)
    for warning in caught:
        if issubclass(warning.category, LiteralSecretWarning):
            typer.echo(f"warning: {warning.message}", err=True)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return loaded


def find_pipeline(
    app_file: Any, name: str | None, *, needs: str, config: Path, default: str
) -> Any:
    """The pipeline called ``name``; without a name, the one called ``default``, else the only
    pipeline with a free input ``needs``. A name given that the file lacks exits 2."""
    if name is not None:
        if name in app_file.pipelines:
            return app_file.pipelines[name]
        from rag.core.errors import did_you_mean

        fail(
            f"{config}: no pipeline named '{name}'.{did_you_mean(name, app_file.pipelines)} "
            f"Pipelines: {', '.join(app_file.pipelines) or '(none)'}"
        )
    name = default
    if name in app_file.pipelines:
        return app_file.pipelines[name]
    candidates = [
        p
        for p in app_file.pipelines.values()
        if any(needs in sockets for sockets in p.unconnected_inputs().values())
    ]
    if len(candidates) == 1:
        return candidates[0]
    fail(
        f"{config}: no pipeline named '{name}' (pipelines: {', '.join(app_file.pipelines)}); "
        f"add one under 'pipelines:' whose first component takes '{needs}'"
    )


def parse_filter_option(text: str | None) -> dict[str, Any] | None:
    """Parse and validate ``--filter`` JSON (exit 2 naming the problem)."""
    if not text:
        return None
    from rag.core.filters import parse_filter
    from rag.core.limits import loads_json

    with errors_to_exit_codes():
        try:
            value = loads_json(text, where="--filter")
        except json.JSONDecodeError as err:
            fail(f"--filter is not valid JSON ({err.msg} at column {err.colno}): {text[:200]}")
        parse_filter(value)
    return value


QUESTION_FILES = (
    'JSON Lines ({"_id": ..., "question": ...} per line), CSV or TSV with a header row, '
    "or .txt with one per line"
)
"""The formats ``--questions`` / ``--queries`` read (:func:`read_questions`)."""


def read_questions(path: Path, *, text_fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows ``{"_id", "text"}`` of a file of questions or queries: JSON Lines, CSV / TSV with a
    header, or plain text, by suffix (:func:`rag.eval.datasets.read_rows`). The text is the
    first of ``text_fields`` a row has; the id is its ``_id`` or ``id``, else its line number.
    A bad row exits 2 naming its line; a file without rows exits 2."""
    from rag.eval.datasets import EvalDataError, read_rows

    rows = []
    try:
        for number, row in read_rows(path):
            key = next((k for k in text_fields if k in row), None)
            if key is None:
                fail(
                    f"{path}:{number}: no {' or '.join(text_fields)} field (fields: "
                    f"{', '.join(map(str, row)) or 'none'}); a file of questions is "
                    f"{QUESTION_FILES}"
                )
            text = row[key]
            if not isinstance(text, str):
                fail(f"{path}:{number}: '{key}' must be text, got {text!r}")
            rows.append({"_id": str(row.get("_id", row.get("id", number))), "text": text})
    except EvalDataError as err:  # not found, not UTF-8, not JSON, nested too deep
        fail(f"{err}; a file of questions is {QUESTION_FILES}")
    except OSError as err:
        fail(f"cannot read {path}: {err.strerror or err}")
    if not rows:
        fail(f"{path}: no questions in the file; it is {QUESTION_FILES}")
    return rows


# -- commands ----------------------------------------------------------------------------------
@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories to ingest.")],
    config: ConfigOption,
    runner: Annotated[str, typer.Option(help="local or ray.")] = "local",
    mode: Annotated[str, typer.Option(help="incremental, full or none.")] = "incremental",
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    writers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Ray writer actors for a Milvus/Weaviate server (default 4; 0: the driver "
            "writes).",
        ),
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="Pipeline to run (default: 'ingest').")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any source failed.")] = False,
    include_hidden: Annotated[
        bool,
        typer.Option(
            help="Also read hidden files and folders inside the directories (.git, .obsidian)."
        ),
    ] = False,
    lock_timeout: Annotated[
        float,
        typer.Option(min=0, help="Seconds to wait while another ingest writes to the store."),
    ] = 10.0,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Load, split, embed and store files."""
    configure_quiet(quiet)
    from rag.pipelines.ingest import MODES, run_ingest

    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}, got '{mode}'")
    if runner not in ("local", "ray"):
        fail(f"--runner must be 'local' or 'ray', got '{runner}'")
    app_file = load_app(config)
    ingest_pipeline = find_pipeline(
        app_file, pipeline, needs="sources", config=config, default="ingest"
    )
    with errors_to_exit_codes():
        if runner == "ray":
            from rag.pipelines.distributed import run_ingest_ray

            report = run_ingest_ray(
                ingest_pipeline,
                paths,
                mode=mode,
                address=address,
                num_writers=writers,
                include_hidden=include_hidden,
                progress=not quiet,
                lock_timeout=lock_timeout,
            )
        else:
            report = run_ingest(
                ingest_pipeline,
                paths,
                mode=mode,
                include_hidden=include_hidden,
                progress=not quiet,
                lock_timeout=lock_timeout,
            )
        app_file.close()  # releases the store (store.faiss then writes its open cache)
    if json_output:
        print_json(report.to_dict())
    else:
        typer.echo(
            f"{report.sources} sources: {report.chunks_written} chunks written, "
            f"{report.chunks_skipped} skipped, {report.chunks_deleted} deleted "
            f"in {report.seconds:.1f} s"
        )
        for error in report.errors:
            typer.echo(f"  failed: {error['source']}: {error['error']}", err=True)
    if strict and report.errors:
        raise typer.Exit(1)


@app.command()
def search(
    config: ConfigOption,
    query: Annotated[str | None, typer.Argument(help="The query.")] = None,
    queries: Annotated[
        Path | None,
        typer.Option(
            help="File of queries: JSONL of {_id, text} (BEIR queries.jsonl), CSV/TSV with a "
            "header, or .txt with one per line."
        ),
    ] = None,
    k: Annotated[int, typer.Option(min=1, help="Hits per query.")] = 10,
    filter_: Annotated[
        str | None, typer.Option("--filter", help='Metadata filter, e.g. \'{"source": "a.md"}\'.')
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="Batch output: jsonl or trec.")
    ] = "jsonl",
    pipeline: Annotated[
        str | None, typer.Option(help="Pipeline to run (default: 'search').")
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Retrieve the chunks nearest to a query (or to every query of a file)."""
    configure_quiet(quiet)
    if (query is None) == (queries is None):
        fail("give either a QUERY or --queries FILE")
    if query is not None and not query.strip():
        fail("the QUERY is blank; give the words to search for")
    if output_format not in ("jsonl", "trec"):
        fail(f"--format must be jsonl or trec, got '{output_format}'")
    filters = parse_filter_option(filter_)
    app_file = load_app(config)
    search_pipeline = find_pipeline(
        app_file, pipeline, needs="query", config=config, default="search"
    )
    from rag.core.roles import Role, find_role

    with errors_to_exit_codes():
        found = find_role(search_pipeline, Role.RETRIEVER, required=False)
    retriever: Any = found.component if found else None  # else the pipeline runs as a whole
    from rag.cli_search import nothing_retrieved, search_batch, search_one

    with errors_to_exit_codes():
        if queries is None:
            found_hits = search_one(
                search_pipeline, retriever, query, k=k, filters=filters, json_output=json_output
            )
            if not found_hits:
                why = nothing_retrieved(app_file.components, config=config, filters=filters)
                typer.echo(f"note: {why}", err=True)
            return
        if retriever is None:
            fail(f"pipeline '{search_pipeline.name}' has no retriever component for --queries")
        rows = read_questions(queries, text_fields=("text", "query", "question"))
        empty = search_batch(
            retriever, rows, k=k, filters=filters, output_format=output_format, quiet=quiet
        )
        if empty:
            why = nothing_retrieved(app_file.components, config=config, filters=filters)
            typer.echo(f"note: {empty} of {len(rows)} queries: {why}", err=True)


def _parse_inputs(items: list[str]) -> dict[str, Any]:
    from rag.core.limits import loads_json

    inputs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"--input expects key=value, got '{item[:200]}'")
        try:
            inputs[key] = loads_json(raw, where=f"--input {key}")
        except json.JSONDecodeError:
            inputs[key] = raw
        except InvalidInputError as err:
            fail(str(err))
    return inputs


@app.command("run")
def run_pipeline(
    config: Annotated[Path, typer.Argument(help="Pipeline file (YAML).")],
    input_: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="key=value (value may be JSON).")
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="Pipeline to run (default: the first in the file).")
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Run any pipeline of a file with the given inputs and print its outputs."""
    configure_quiet(quiet)
    inputs = _parse_inputs(input_ or [])
    app_file = load_app(config)
    with errors_to_exit_codes():
        target = app_file.pipeline(pipeline)
        try:
            outputs = target.run(**inputs)
        except (ValueError, TypeError) as err:
            # A component refused a value given with --input (k=-1, ...).
            fail(f"{config}: pipeline '{target.name}' refused its inputs: {err}")
        from rag.pipelines.ingest import flush_pipeline

        flush_pipeline(target)
    if json_output:
        print_json(outputs)
    else:
        for component, values in outputs.items():
            for name, value in values.items():
                typer.echo(
                    f"{component}.{name}: "
                    f"{json.dumps(to_jsonable(value), ensure_ascii=False)[:2000]}"
                )


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="Pipeline file (YAML).")]) -> None:
    """Check a pipeline file without loading any model."""
    app_file = load_app(config)
    for name, pipeline in app_file.pipelines.items():
        typer.echo(f"{name}: {' -> '.join(pipeline.components)}")
    typer.echo(f"{config}: valid ({len(app_file.components)} components)")


@app.command()
def stats(
    config: ConfigOption, json_output: JsonOption = False, quiet: QuietOption = False
) -> None:
    """Chunks, sources and dimension of the store(s) of a pipeline file."""
    configure_quiet(quiet)
    from rag.pipelines.ingest import store_stats

    app_file = load_app(config)
    from rag.core.roles import Role

    stores = [(n, c) for n, c in app_file.components.items() if Role.STORE.played_by(c)]
    if not stores:
        fail(f"{config}: no vector store among the components")
    with errors_to_exit_codes():
        results = [store_stats(store) for _name, store in stores]
    if json_output:
        if len(results) == 1:
            print_json(results[0])  # the shape of DESIGN.md
        else:
            print_json({"stores": [{"name": n, **r} for (n, _), r in zip(stores, results)]})
    else:
        for (name, _), r in zip(stores, results):
            typer.echo(
                f"{name} ({r['store']}): {r['chunks']} chunks from {r['sources']} "
                f"sources, dimension {r['dimension']}"
            )


@app.command()
def ask(
    config: ConfigOption,
    question: Annotated[str | None, typer.Argument(help="The question.")] = None,
    questions: Annotated[
        Path | None,
        typer.Option(
            help="File of questions: JSONL of {_id, question}, CSV/TSV with a header, or .txt "
            "with one per line."
        ),
    ] = None,
    k: Annotated[int | None, typer.Option(min=1, help="Contexts to retrieve.")] = None,
    filter_: Annotated[
        str | None, typer.Option("--filter", help='Metadata filter, e.g. \'{"source": "a.md"}\'.')
    ] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Print the answer at once.")
    ] = False,
    pipeline: Annotated[
        str | None,
        typer.Option(help="Pipeline holding the chain.rag (default: 'ask', else the only chain)."),
    ] = None,
    style: Annotated[
        str | None,
        typer.Option(
            help="Answer style: evidence, extractive, concise or sentences (default: the file's)."
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Answer a question (or every question of a file) with citations."""
    configure_quiet(quiet)
    from rag.chains.cli_ask import ask_command

    if (question is None) == (questions is None):
        fail("give either a QUESTION or --questions FILE")
    filters = parse_filter_option(filter_)
    rows = read_questions(questions, text_fields=("text", "question")) if questions else None
    app_file = load_app(config)
    with errors_to_exit_codes():
        code = ask_command(
            app_file,
            config=config,
            question=question,
            rows=rows,
            pipeline=pipeline,
            k=k,
            filters=filters,
            json_output=json_output,
            stream=not no_stream,
            quiet=quiet,
            style=style,
        )
    if code:
        raise typer.Exit(code)


@app.command("eval")
def eval_(
    config: Annotated[Path, typer.Argument(help="Eval file (YAML): dataset, pipeline, grid.")],
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default .rag/eval/<eval file stem>).")
    ] = None,
    fail_under: Annotated[
        list[str] | None,
        typer.Option("--fail-under", help="Gate metric=value, e.g. ndcg@10=0.30 (repeatable)."),
    ] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow", help="Log runs to MLflow.")] = False,
    wandb: Annotated[
        bool,
        typer.Option("--wandb", help="Log runs to Weights & Biases (WANDB_MODE=offline: locally)."),
    ] = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Evaluate pipeline variants on a dataset; write tables, per-query results and a report."""
    configure_quiet(quiet)
    from rag.eval.cli_eval import eval_command

    code = eval_command(
        config,
        out=out,
        fail_under=fail_under or [],
        mlflow=mlflow,
        wandb=wandb,
        json_output=json_output,
        quiet=quiet,
    )
    if code:
        raise typer.Exit(code)


@app.command("serve")
def serve(
    config: ConfigOption,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without API keys (loopback only; dev).")
    ] = False,
    allow_root: Annotated[
        list[Path] | None,
        typer.Option("--allow-root", help="Directory whose files may be ingested by path."),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body in bytes (default 8 MiB).")
    ] = 8_388_608,
    grpc_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Also serve the gRPC API on this port (same keys)."),
    ] = None,
    mcp: Annotated[
        bool, typer.Option("--mcp", help="Also serve MCP tools (search, ask) at /mcp.")
    ] = False,
    stdio: Annotated[
        bool, typer.Option("--stdio", help="With --mcp: speak MCP over stdin/stdout, no HTTP.")
    ] = False,
    ui: Annotated[
        bool, typer.Option("--ui", help="Also serve the browser playground at / (keys needed).")
    ] = False,
    reports: Annotated[
        Path | None,
        typer.Option("--reports", help="With --ui: list the eval reports under this folder."),
    ] = None,
    keys_file: Annotated[
        Path | None,
        typer.Option(
            "--keys-file",
            help="YAML/JSON file of scoped API keys (tenants); default $RAGLINE_API_KEYS_FILE.",
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Serve the HTTP API. API keys come from RAGLINE_API_KEYS (comma-separated, 16+ chars)."""
    configure_quiet(quiet)
    from rag.serve.cli_serve import serve as serve_app

    if stdio and not mcp:
        fail("--stdio serves MCP over stdin/stdout; use it together with --mcp")
    if reports is not None and not ui:
        fail("--reports lists evaluation reports in the playground; use it together with --ui")
    app_file = load_app(config)
    if stdio:
        from rag.serve.cli_serve import serve_mcp_stdio

        with errors_to_exit_codes():
            serve_mcp_stdio(app_file)
        return
    with errors_to_exit_codes():
        serve_app(
            app_file,
            host=host,
            port=port,
            no_auth=no_auth,
            allowed_roots=allow_root or [],
            max_body_bytes=max_body_bytes,
            log_level="warning" if quiet else "info",
            grpc_port=grpc_port,
            mcp=mcp,
            ui=ui,
            reports_dir=reports,
            keys_file=keys_file,
        )


def _redacting_records() -> None:
    """Mask URL credentials in every log record of the process (any logger, any handler)."""
    make_record = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a record whose args do not fit its format: leave it to logging
            return record
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record

    logging.setLogRecordFactory(factory)


def main() -> None:
    """Entry point of the ``rag`` console script."""
    _redacting_records()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
