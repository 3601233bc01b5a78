"""The playground's routes (``rag serve --ui``) on a real loopback server, without a browser:
what is public, what needs the key, the reports listing and its path checks, the CLI flags.
tests/serve/test_playground_browser.py drives the page itself in Chromium."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from rag.cli import app as cli
from rag.core.errors import ConfigError
from rag.serve import API_KEYS_ENV
from rag.serve.ui import STATIC_FILES, check_reports_dir, list_reports
from tests.serve.conftest import API_KEY, build_app_file, running

pytestmark = pytest.mark.integration


def write_report(folder: Path, *, dataset: str, values: dict[str, float]) -> Path:
    """A report folder as ``rag eval --out`` leaves it (report.html beside summary.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text(
        f"<!doctype html><title>{dataset}</title><h1>Report of {dataset}</h1>", encoding="utf-8"
    )
    summary = {
        "dataset": dataset,
        "primary_metric": "ndcg@10",
        "variants": [{"name": n, "metrics": {"ndcg@10": v}} for n, v in values.items()],
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder / "report.html"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two reports, a secret beside the folder and a symlink that leads to it."""
    base = tmp_path_factory.mktemp("reports")
    root = base / "reports"
    write_report(root / "cranfield", dataset="cranfield", values={"dense": 0.36, "bm25": 0.35})
    write_report(root / "nested" / "xquad", dataset="xquad_en_dev", values={"hybrid": 0.97})
    (root / "cranfield" / "summary.md").write_text("# not a report\n")
    outside = base / "outside"
    write_report(outside, dataset="secret", values={})
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def ui_app_file(tmp_path_factory, embedder):
    """Search only: the routes need no generator."""
    return build_app_file(tmp_path_factory.mktemp("ui-store") / "index", embedder, None)


@pytest.fixture(scope="module")
def ui_url(ui_app_file, reports) -> Iterator[str]:
    from rag.serve import create_app

    app = create_app(ui_app_file, api_keys=[API_KEY], ui=True, reports_dir=reports)
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def plain_url(ui_app_file) -> Iterator[str]:
    from rag.serve import create_app

    with running(create_app(ui_app_file, api_keys=[API_KEY])) as url:
        yield url


def authorized(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_page_and_its_files_need_no_key(ui_url):
    page = httpx.get(f"{ui_url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/ui/app.js"' in page.text and 'href="/ui/style.css"' in page.text
    for name in ("app.js", "style.css"):
        response = httpx.get(f"{ui_url}/ui/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == STATIC_FILES[name]
        assert response.content == resources.files("rag.serve.ui").joinpath(name).read_bytes()


def test_every_api_call_of_the_page_still_needs_the_key(ui_url):
    for path in ("/v1/stats", "/v1/reports", "/v1/reports/cranfield/report.html"):
        assert httpx.get(f"{ui_url}{path}").status_code == 401
        wrong = httpx.get(f"{ui_url}{path}", headers=authorized("wrong-key-0123456789abcdef"))
        assert wrong.status_code == 401
        assert "missing or invalid API key" in wrong.json()["error"]["message"]
    search = httpx.post(f"{ui_url}/v1/search", json={"query": "FAISS"})
    assert search.status_code == 401
    # Only the page's own files are public, not whatever sits under /ui/.
    assert httpx.get(f"{ui_url}/ui/other.js").status_code == 401
    assert httpx.get(f"{ui_url}/ui/other.js", headers=authorized()).status_code == 404


def test_a_tenant_key_may_not_read_the_reports(ui_app_file, reports):
    from rag.serve import create_app
    from rag.serve._keys import ApiKey, KeyScope

    tenant = ApiKey("acme-key-0123456789abcdef", KeyScope("acme", filter={"tenant": "acme"}))
    app = create_app(ui_app_file, api_keys=[API_KEY, tenant], ui=True, reports_dir=reports)
    with running(app) as url:
        for path in ("/v1/reports", "/v1/reports/cranfield/report.html"):
            refused = httpx.get(f"{url}{path}", headers=authorized(tenant.key))
            assert refused.status_code == 403
            assert (
                "key 'acme' may not read evaluation reports" in refused.json()["error"]["message"]
            )
            assert httpx.get(f"{url}{path}", headers=authorized()).status_code == 200
        assert httpx.get(f"{url}/", headers=authorized(tenant.key)).status_code == 200


def test_without_ui_there_is_no_page(plain_url):
    assert httpx.get(f"{plain_url}/").status_code == 401
    assert httpx.get(f"{plain_url}/", headers=authorized()).status_code == 404
    assert httpx.get(f"{plain_url}/v1/reports", headers=authorized()).status_code == 404


def test_the_reports_are_listed_newest_first_with_their_primary_metric(ui_url, reports):
    second = float(int(time.time()))  # both in one second: "modified" shows them equal
    os.utime(reports / "nested" / "xquad" / "report.html", (second, second))
    os.utime(reports / "cranfield" / "report.html", (second + 0.5, second + 0.5))  # the newest
    body = httpx.get(f"{ui_url}/v1/reports", headers=authorized()).json()
    assert body["configured"] is True
    listed = {r["path"]: r for r in body["reports"]}
    assert sorted(listed) == ["cranfield", "nested/xquad"]  # not the one behind the symlink
    assert body["reports"][0]["path"] == "cranfield"
    cranfield = listed["cranfield"]
    assert cranfield["url"] == "/v1/reports/cranfield/report.html"
    assert cranfield["dataset"] == "cranfield" and cranfield["primary_metric"] == "ndcg@10"
    assert cranfield["variants"] == [
        {"name": "dense", "value": 0.36},
        {"name": "bm25", "value": 0.35},
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", cranfield["modified"])


def test_a_report_is_served_sandboxed(ui_url):
    response = httpx.get(f"{ui_url}/v1/reports/nested/xquad/report.html", headers=authorized())
    assert response.status_code == 200 and "<h1>Report of xquad_en_dev</h1>" in response.text
    assert "sandbox" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        "escape/report.html",  # a symlink out of the folder
        "../outside/report.html",
        "cranfield/../../outside/report.html",
        "cranfield/summary.md",  # only report.html files
        "cranfield",
        "missing/report.html",
    ],
)
def test_nothing_but_a_report_inside_the_folder_is_served(ui_url, path):
    response = httpx.get(f"{ui_url}/v1/reports/{path}", headers=authorized())
    assert response.status_code == 404
    assert "Report of secret" not in response.text


def test_without_a_reports_folder_the_listing_says_how_to_give_one(ui_app_file):
    from rag.serve import create_app

    with running(create_app(ui_app_file, api_keys=[API_KEY], ui=True)) as url:
        body = httpx.get(f"{url}/v1/reports", headers=authorized()).json()
        assert body == {"configured": False, "reports": []}
        missing = httpx.get(f"{url}/v1/reports/a/report.html", headers=authorized())
        assert (
            missing.status_code == 404 and "no --reports DIR" in missing.json()["error"]["message"]
        )


def test_reports_needs_ui_and_an_existing_folder(ui_app_file, tmp_path):
    from rag.serve import create_app

    with pytest.raises(ConfigError, match="add --ui"):
        create_app(ui_app_file, api_keys=[API_KEY], reports_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"--reports .*missing is not a folder"):
        create_app(ui_app_file, api_keys=[API_KEY], ui=True, reports_dir=tmp_path / "missing")
    assert check_reports_dir(tmp_path) == tmp_path.resolve()


def test_the_cli_refuses_reports_without_ui(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["serve", "--config", "examples/ingest.yaml", "--reports", str(tmp_path)],
        env={API_KEYS_ENV: API_KEY},
    )
    assert result.exit_code == 2
    assert "--reports lists evaluation reports in the playground" in result.output


def test_the_cli_passes_ui_and_reports_to_the_server(monkeypatch, tmp_path):
    seen = {}

    def fake_serve(app_file, **options):
        seen.update(options)

    monkeypatch.setattr("rag.serve.cli_serve.serve", fake_serve)
    result = CliRunner().invoke(
        cli,
        ["serve", "--config", "examples/ingest.yaml", "--ui", "--reports", str(tmp_path)],
        env={API_KEYS_ENV: API_KEY},
    )
    assert result.exit_code == 0, result.output
    assert seen["ui"] is True and Path(seen["reports_dir"]) == tmp_path


@pytest.mark.unit
def test_list_reports_skips_hidden_folders_and_reads_no_broken_summary(tmp_path):
    write_report(tmp_path / ".cache", dataset="hidden", values={})
    write_report(tmp_path / "run", dataset="x", values={"a": 1.0})
    (tmp_path / "run" / "summary.json").write_text("{not json")
    (listed,) = list_reports(tmp_path)
    assert listed["path"] == "run" and "dataset" not in listed


@pytest.mark.unit
def test_the_page_is_self_contained_and_puts_server_text_in_as_text():
    files = {n: resources.files("rag.serve.ui").joinpath(n).read_text() for n in STATIC_FILES}
    for name, text in files.items():
        # No CDN, no font or script from elsewhere: it works offline.
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name
        assert "@import" not in text and "url(http" not in text, name
    script = files["app.js"]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "sessionStorage" in script and "localStorage" not in script
    assert "headers.Authorization = `Bearer ${apiKey()}`" in script
