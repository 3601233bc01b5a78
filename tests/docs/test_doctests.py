"""The ``>>>`` examples in rag/'s docstrings run, from the repository root (so they can read
``examples/``), one test per module; a module whose optional dependency is missing skips naming it.

An example that cannot run here (it needs a model, a server, a key) carries ``# doctest: +SKIP``
and says why in the same paragraph of the docstring: an inline comment before the directive
(``>>> store.warm_up()  # needs a Weaviate server  # doctest: +SKIP``) or a comment line
(``>>> # Needs the embedding model.``). ``test_every_skip_says_why`` enforces it.
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

from tests.docs._blocks import ROOT

pytestmark = pytest.mark.unit

PACKAGE = ROOT / "rag"
GENERATED = re.compile(r"_pb2(_grpc)?\.py$")
SKIP = re.compile(r"#\s*doctest:.*\+SKIP")
REASON_INLINE = re.compile(r">>>.*#(?!\s*doctest:)\s*\S.*#\s*doctest:")
REASON_LINE = re.compile(r"^\s*>>>\s*#\s*\S")


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if GENERATED.search(path.name):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _source(module: str) -> Path:
    relative = Path(*module.split("."))
    package = ROOT / relative / "__init__.py"
    return package if package.is_file() else ROOT / relative.with_suffix(".py")


MODULES = [m for m in _modules() if ">>>" in _source(m).read_text(encoding="utf-8")]


@pytest.mark.parametrize("module_name", MODULES)
def test_doctests(module_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        if (err.name or "rag").split(".")[0] == "rag":
            raise  # a broken module of ours, not a missing optional dependency
        pytest.skip(f"{module_name} needs {err.name}: pip install 'ragline[all]'")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    failures = []
    for test in finder.find(module, module_name):
        output: list[str] = []
        result = runner.run(test, out=output.append, clear_globs=True)
        if result.failed:
            failures.append("".join(output))
    assert not failures, "\n".join(failures)


def skipped_examples() -> list[tuple[str, int, str]]:
    """Every docstring paragraph holding skipped examples: file, line, and the reason it gives."""
    found = []
    for module in _modules():
        path = _source(module)
        lines = path.read_text(encoding="utf-8").splitlines()
        paragraph: list[tuple[int, str]] = []
        for number, line in enumerate([*lines, ""], start=1):
            if line.strip() and '"""' not in line:
                paragraph.append((number, line))
                continue
            skipped = [n for n, text in paragraph if SKIP.search(text)]
            if skipped:
                reasons = [
                    text.split("#", 1)[1].split("# doctest:")[0].strip()
                    for _, text in paragraph
                    if REASON_LINE.match(text) or REASON_INLINE.search(text)
                ]
                found.append((str(path.relative_to(ROOT)), skipped[0], "; ".join(reasons)))
            paragraph = []
    return found


def test_every_skip_says_why() -> None:
    """Each paragraph of a docstring holding ``+SKIP`` says why it cannot run here."""
    missing = [f"{file}:{line}" for file, line, reason in skipped_examples() if not reason]
    assert not missing, (
        f"{len(missing)} skipped doctest examples do not say why; add a comment line "
        "`>>> # Needs ...` to the example (or make it run):\n" + "\n".join(missing)
    )


if __name__ == "__main__":  # python -m tests.docs.test_doctests: the skips and their reasons
    for file, line, reason in skipped_examples():
        print(f"{file}:{line}: {reason or '(no reason given)'}")
