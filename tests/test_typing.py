"""``mypy --strict`` passes on ``rag/core`` (the ``[tool.mypy]`` settings of pyproject.toml).

The core holds the contracts every other part builds on, so its types are checked in the suite:
a new function without annotations, an ``Any`` leaking out of a typed function or an unused
``# type: ignore`` in ``rag/core`` fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def mypy(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"]
    command += ["--cache-dir", str(cache), "--no-error-summary", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_core_passes_mypy_strict(tmp_path: Path) -> None:
    done = mypy(cache=tmp_path)  # the files of [tool.mypy]: rag/core
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_configuration_is_strict(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def untyped(value):\n    return value\n")
    done = mypy(str(probe), cache=tmp_path / "cache")
    assert done.returncode == 1
    assert "Function is missing a type annotation" in done.stdout
