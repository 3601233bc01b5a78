"""A bounded schemathesis run against the published OpenAPI schema finds nothing: no server
error, and every check on (``--checks all``): responses conform to the schema (status codes,
content types, bodies, server-sent events), schema-valid requests are accepted and
schema-invalid ones refused, so the schema says exactly what the server enforces.

It runs on its own server and store (fuzzed DELETEs may empty a store) with the real embedder
and local model, through schemathesis' command line so its own event loop and threads stay out
of the test process. The one allowance is in ``tests/serve/schemathesis.toml``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.pipelines.ingest import run_ingest
from tests.serve.conftest import API_KEY, CORPUS, build_app_file, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory, embedder, local_generator, roots):
    from rag.serve import create_app

    corpus = tmp_path_factory.mktemp("fuzz-corpus")
    shutil.copy(CORPUS / "faiss.md", corpus)
    app_file = build_app_file(tmp_path_factory.mktemp("fuzz") / "index", embedder, local_generator)
    run_ingest(app_file.pipeline("ingest"), [str(corpus)], progress=False)
    app = create_app(
        app_file, api_keys=[API_KEY], allowed_roots=[roots["root"]], max_body_bytes=64 * 1024
    )
    with running(app) as url:
        yield url


def test_fuzzing_the_schema_finds_no_server_error(fuzz_url, tmp_path):
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        pytest.skip("the schemathesis command is not installed (pip install schemathesis)")
    command = [
        str(cli),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{fuzz_url}/openapi.json",
        "--checks",
        "all",
        # speed is the benchmarks' business: a shared CPU may take over the default 10 s for
        # one answer, so the limit is the request timeout
        "--max-response-time",
        "60",
        # examples and fuzzing are bounded by --max-examples; the coverage phase (every boundary
        # of every field, thousands of cases) runs by hand: docs/how-to/serving.md has the command
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        "25",
        "--seed",
        "7",
        "--workers",
        "2",
        "--no-shrink",
        "--generation-database",
        "none",
        "--request-timeout",
        "60",
        "--header",
        f"Authorization: Bearer {API_KEY}",
        "--no-color",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert re.search(r"Tested: 10\b", output), output  # every operation was exercised
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated and int(generated[1]) >= 150 and generated[1] == generated[2], output
