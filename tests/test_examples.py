"""examples/python_api.py, the Python API page's script, runs as documented: it ingests the
example corpus, searches, answers with a citation and writes a pipeline file that loads."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from rag import PipelineFile
from rag.chains import RagChain

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def test_the_python_api_example_runs_and_writes_a_file_that_loads(tmp_path, capsys):
    script = runpy.run_path(str(ROOT / "examples" / "python_api.py"))  # not as __main__
    script["main"](tmp_path)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("ingested 7 files: ") and printed[0].endswith(" chunks written")
    assert printed[1].endswith("hnsw.html")  # the best hit for "How do I tune an HNSW index?"
    assert "links each node keeps" in printed[3]  # what M controls, copied from the corpus
    assert printed[4].endswith("hnsw.html") and "grounded: True" in printed[5]
    app = PipelineFile.load(tmp_path / "app.yaml")
    chain = app.pipelines["ask"].get_component("chain")
    assert isinstance(chain, RagChain) and chain.answer_style == "evidence"
    assert chain.retriever.store is app.components["writer"].store  # still one shared store
    page = (ROOT / "docs" / "how-to" / "python-api.md").read_text()
    assert '--8<-- "examples/python_api.py"' in page  # the page shows this very script
