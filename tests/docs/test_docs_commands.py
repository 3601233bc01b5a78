"""Every fenced ``bash`` block of README.md and docs/ that calls ``rag`` runs, or names what it
needs: docs that cannot rot.

- An unmarked block that calls ``rag`` is executed by bash, in order with its page's other
  blocks, in a temporary directory per page holding a copy of ``examples/`` (and ``.venv``
  linked in). ``rag`` there is a shim to one worker process that runs the real CLI, so the
  models' code is imported once for all pages.
- A block marked ``<!-- docs-check: needs WHAT -->`` is not run; each of its ``rag`` commands is
  parsed by the real CLI, so an unknown command or option still fails.
- ``<!-- docs-check: skip REASON -->``: neither (a reason is required).
- ``<!-- docs-check: run -->`` on a block without ``rag`` (one that writes a dataset the next
  blocks read): run in order with the page's other blocks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tests.docs._blocks import BASH_LANGUAGES, ROOT, Block, all_blocks, rag_commands

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("_rag_worker.py")
ALL_BASH = all_blocks(BASH_LANGUAGES)
BASH = [b for b in ALL_BASH if rag_commands(b.text)]
RUN = [b for b in ALL_BASH if (b.marker is None and rag_commands(b.text)) or b.marker == "run"]
PAGES = sorted({b.path for b in RUN})


def test_every_rag_block_is_run_or_marked() -> None:
    """The blocks that call rag are all either executed below or carry a known marker."""
    assert BASH, "no bash block calls rag: the extractor is broken"
    wrong = [f"{b.where}: '{b.marker}'" for b in ALL_BASH if b.marker in ("fragment", "eval")]
    assert not wrong, (
        "a bash block can be marked 'needs WHAT', 'skip REASON' or 'run' only: " + "; ".join(wrong)
    )
    bare = [b.where for b in BASH if b.marker in ("needs", "skip") and not b.reason]
    assert not bare, f"say what the block needs / why it is skipped: {bare}"


@pytest.mark.parametrize("block", [b for b in BASH if b.marker == "needs"], ids=lambda b: b.where)
def test_needs_service_commands_parse(block: Block) -> None:
    """A block that cannot run here still names real sub-commands and options."""
    from typer.main import get_command

    from rag.cli import app

    group = get_command(app)
    for args in rag_commands(block.text):
        assert args, f"{block.where}: a bare 'rag' call"
        name, rest = args[0], args[1:]
        with click.Context(group, info_name="rag") as parent:
            command = group.get_command(parent, name)
            assert command is not None, f"{block.where}: 'rag {name}' is no rag command"
            try:
                command.make_context(name, list(rest), parent=parent)
            except click.UsageError as err:
                pytest.fail(f"{block.where}: rag {' '.join(args)}: {err.format_message()}")


@pytest.fixture(scope="module")
def rag_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A ``bin/`` folder whose ``rag`` runs commands in one long-lived worker process."""
    folder = tmp_path_factory.mktemp("rag-worker")
    socket_path = folder / "rag.sock"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(socket_path)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=folder,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", "the rag worker did not start"
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "rag"
        shim.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{WORKER}" --client "{socket_path}" "$@"\n'
        )
        shim.chmod(0o755)
        yield bin_dir
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_commands_run(page: Path, rag_worker: Path, tmp_path: Path) -> None:
    """The page's rag blocks, run in order on the example corpus, all exit 0."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    env = {
        **os.environ,
        "PATH": os.pathsep.join(
            [str(rag_worker), str(Path(sys.executable).parent), os.environ["PATH"]]
        ),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for block in [b for b in RUN if b.path == page]:
        # `. .venv/bin/activate` would put the real rag first on PATH: keep the shim first.
        script = block.text.replace(". .venv/bin/activate", ":  # activate (skipped)")
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, (
            f"{block.where}: the block exited {result.returncode} after "
            f"{time.monotonic() - started:.0f} s\n--- block\n{block.text}--- stdout\n"
            f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}\n"
            "Fix the command, or mark the block <!-- docs-check: needs WHAT --> if it needs a service."
        )
