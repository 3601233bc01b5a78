"""The browser playground of ``rag serve --ui``: one static page that calls the API.

:func:`mount_ui` adds these routes to the FastAPI app of :func:`rag.serve.create_app`:

===================================  ==========================================================
``GET /``                            the page (public: it holds no data)
``GET /ui/app.js``, ``/ui/style.css`` its script and style sheet (public)
``GET /v1/reports``                  the evaluation reports under ``--reports DIR`` (key needed)
``GET /v1/reports/{dir}/report.html`` one report (key needed)
===================================  ==========================================================

A report shows passages of the whole store, so a tenant's key (a key scoped by a filter) gets a
403 on the two report routes; the full-access keys of ``RAGLINE_API_KEYS`` read them.

The page is plain HTML, CSS and JavaScript shipped in this package: no build step, no CDN, it
works offline. Every API call it makes sends the key the user typed (kept in the tab's
``sessionStorage``) as ``Authorization: Bearer``, so the page adds no way around the keys: the
static files are public, the data is not. Server text is put in the page as text nodes, never as
HTML, and a report is shown in a sandboxed frame (no scripts, no access to the page's key).
"""

# No "from __future__ import annotations": FastAPI reads the annotations of the routes and
# dependencies defined inside mount_ui, whose names (Request) are local to it.
import json
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError

__all__ = ["MAX_REPORTS", "REPORT_FILE", "STATIC_FILES", "list_reports", "mount_ui"]

REPORT_FILE = "report.html"
"""The file name ``rag eval`` writes its HTML report to."""

MAX_REPORTS = 500
"""At most this many reports are listed (the newest first)."""

MAX_REPORT_DEPTH = 8
"""Folders deeper than this below ``--reports DIR`` are not searched."""

STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""The files of the page and their content types."""

# The page runs only its own script; a report (inline styles, data: images) is shown in a
# sandboxed srcdoc frame, which inherits this policy.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def check_reports_dir(reports_dir: str | Path) -> Path:
    """The resolved reports folder, or a :class:`ConfigError` that names it and the fix.

    Example:
        >>> check_reports_dir("no/such/dir")
        Traceback (most recent call last):
        ...
        rag.core.errors.ConfigError: ...: --reports no/such/dir is not a folder; ...
    """
    path = Path(reports_dir).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"--reports {reports_dir} is not a folder; give the folder that `rag eval --out` "
            "wrote (its report.html files are listed, at any depth)",
            field="reports",
        )
    return path.resolve()


def _summary(folder: Path) -> dict[str, Any]:
    """Dataset, primary metric and the primary metric per variant, from ``summary.json``."""
    try:
        data = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    primary = data.get("primary_metric")
    variants = []
    for variant in data.get("variants") or []:
        if not isinstance(variant, dict):
            continue
        metrics = variant.get("metrics") if isinstance(variant.get("metrics"), dict) else {}
        value = metrics.get(primary) if primary else None
        variants.append(
            {
                "name": str(variant.get("name", "")),
                "value": value if isinstance(value, (int, float)) else None,
            }
        )
    return {
        "dataset": str(data["dataset"]) if data.get("dataset") is not None else None,
        "primary_metric": str(primary) if primary is not None else None,
        "variants": variants,
    }


def list_reports(reports_dir: str | Path) -> list[dict[str, Any]]:
    """The ``report.html`` files under ``reports_dir``, newest first.

    Symbolic links are not followed (a link cannot lead the listing out of the folder).

    Args:
        reports_dir: The folder given to ``rag serve --reports``.

    Returns:
        One dict per report: ``path`` (its folder, relative, ``/``-separated; ``""`` for the
        top folder), ``url``, ``modified`` (ISO 8601, UTC), ``bytes``, and from the
        ``summary.json`` beside it ``dataset``, ``primary_metric`` and ``variants``
        (``[{"name", "value"}]``, the primary metric's value).

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "cranfield").mkdir(); _ = (root / "cranfield" / "report.html").write_text("<p>")
        >>> [r["url"] for r in list_reports(root)]
        ['/v1/reports/cranfield/report.html']
    """
    root = Path(reports_dir)
    found: list[tuple[float, dict[str, Any]]] = []  # (mtime to the nanosecond, report)
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        relative = here.relative_to(root)
        if len(relative.parts) >= MAX_REPORT_DEPTH:
            dirs[:] = []
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        report = here / REPORT_FILE
        if REPORT_FILE not in files or report.is_symlink():
            continue
        stat = report.stat()
        path = relative.as_posix() if relative.parts else ""
        found.append(
            (
                stat.st_mtime,
                {
                    "path": path,
                    "url": "/v1/reports/" + (f"{path}/" if path else "") + REPORT_FILE,
                    "modified": datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(
                        timespec="seconds"
                    ),
                    "bytes": stat.st_size,
                    **_summary(here),
                },
            )
        )
    # by the file's own mtime: "modified" is shown to the second, and two reports written in
    # the same second must still come newest first
    found.sort(key=lambda item: (item[0], item[1]["path"]), reverse=True)
    return [report for _, report in found[:MAX_REPORTS]]


def _report_file(root: Path, path: str) -> Path | None:
    """The report at ``path`` (relative to ``root``) when it is a plain file inside ``root``."""
    parts = path.split("/")
    if parts[-1] != REPORT_FILE or any(p in ("", ".", "..") or "\\" in p for p in parts):
        return None
    candidate = root.joinpath(*parts)
    if candidate.is_symlink() or not candidate.is_file():
        return None
    if not candidate.resolve().is_relative_to(root):
        return None
    return candidate


def mount_ui(app: Any, *, reports_dir: str | Path | None = None) -> tuple[str, ...]:
    """Add the playground's routes to ``app``; return the paths that need no key.

    Args:
        app: The FastAPI application of :func:`rag.serve.create_app`.
        reports_dir: The folder whose evaluation reports the page lists (``--reports DIR``);
            ``None`` lists none.

    Returns:
        The public paths (the page and its two static files), for the key guard.

    Raises:
        ConfigError: ``reports_dir`` is not a folder.

    Example:
        >>> from fastapi import FastAPI
        >>> mount_ui(FastAPI())
        ('/', '/ui/app.js', '/ui/style.css')
    """
    from fastapi import Depends, HTTPException, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from rag.serve._guard import key_scope_of

    def whole_store_key(request: Request) -> None:
        # A report shows passages of the whole store (its worst queries): a tenant's key, whose
        # reads are limited by a filter, must not see it.
        scope = key_scope_of(request.scope)
        if scope.filter or not scope.allows("read"):
            raise HTTPException(
                403,
                f"key '{scope.name}' may not read evaluation reports: they show passages of the "
                "whole store, so they need a key with read access and no filter (a key of "
                "RAGLINE_API_KEYS)",
            )

    root = check_reports_dir(reports_dir) if reports_dir is not None else None
    files = {name: _static(name) for name in STATIC_FILES}
    headers = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(
            files["index.html"],
            media_type=STATIC_FILES["index.html"],
            headers={**headers, "content-security-policy": PAGE_POLICY},
        )

    @app.get("/ui/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES or name == "index.html":
            raise HTTPException(404, f"no file {name!r} in the playground")
        return Response(files[name], media_type=STATIC_FILES[name], headers=headers)

    @app.get("/v1/reports", tags=["playground"], dependencies=[Depends(whole_store_key)])
    def reports() -> JSONResponse:
        """The evaluation reports under ``rag serve --reports DIR``, newest first."""
        if root is None:
            return JSONResponse({"configured": False, "reports": []})
        return JSONResponse({"configured": True, "reports": list_reports(root)})

    @app.get(
        "/v1/reports/{path:path}",
        tags=["playground"],
        response_class=HTMLResponse,
        dependencies=[Depends(whole_store_key)],
    )
    def report(path: str) -> Response:
        """One ``report.html`` (self-contained: styles inline, plots as data URIs)."""
        found = _report_file(root, path) if root is not None else None
        if found is None:
            where = "--reports DIR" if root is not None else "no --reports DIR was given"
            raise HTTPException(
                404,
                f"no report at {path!r} ({where}); GET /v1/reports lists the reports",
            )
        return Response(
            found.read_bytes(),
            media_type="text/html; charset=utf-8",
            headers={**headers, "content-security-policy": REPORT_POLICY},
        )

    return ("/", "/ui/app.js", "/ui/style.css")
