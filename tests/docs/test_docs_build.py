"""The documentation site builds with ``mkdocs build --strict``: 0 warnings, so a broken link, a
page missing from the nav or an API reference entry that no longer exists fails the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs._blocks import ROOT

pytestmark = pytest.mark.integration


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="pip install 'ragline[docs]' (in dev) builds the site")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output[-6000:]}"
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert not warnings, "\n".join(warnings)
    assert (site / "index.html").is_file()
    assert (site / "reference" / "index.html").is_file(), "the API reference page is missing"
    _assert_public_surface_documented(site)
    # Nothing loaded from the network at view time (scripts, styles, fonts): the site works offline.
    import re

    remote = re.compile(r'<(?:script|link|img)\b[^>]*(?:src|href)="(?:https?:)?//[^"]+"')
    online = sorted(
        {
            f"{p.relative_to(site)}: {m}"
            for p in site.rglob("*.html")
            for m in remote.findall(p.read_text(encoding="utf-8"))
        }
    )
    assert not online, "pages that load from the network:\n" + "\n".join(online[:10])


def test_every_page_is_in_the_nav() -> None:
    """A page left out of mkdocs.yml's nav is one a reader cannot find."""
    import yaml

    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    listed: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, str):
            listed.add(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(config["nav"])
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    missing = sorted(pages - listed)
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"


def test_readme_links_exist() -> None:
    """README.md is read on the code host, outside the site: its relative links must resolve."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert relative, "no relative link found in README.md"
    missing = [t for t in relative if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


PUBLIC_PACKAGES = ("rag", "rag.core", "rag.chains", "rag.eval", "rag.serve", "rag.testing")


def _assert_public_surface_documented(site: Path) -> None:
    """Every class and function a package exports in ``__all__`` has an entry in the reference."""
    import importlib
    import inspect
    import re

    html = "".join(p.read_text(encoding="utf-8") for p in (site / "reference").rglob("*.html"))
    anchors = {anchor.rsplit(".", 1)[-1] for anchor in re.findall(r'id="(rag\.[\w.]+)"', html)}
    missing = []
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if (inspect.isclass(value) or inspect.isfunction(value)) and name not in anchors:
                missing.append(f"{package}.{name}")
    assert not missing, f"public names missing from docs/reference/: {missing}"
