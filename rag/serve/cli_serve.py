"""``rag serve``: check the configuration, load the models, then serve the API with uvicorn.

Security defaults:

- API keys come from ``RAGLINE_API_KEYS`` (comma-separated, each at least 16 characters, full
  access) and from a keys file of scoped keys (``--keys-file`` or ``RAGLINE_API_KEYS_FILE``:
  each key's name, enforced filter such as ``{tenant: acme}`` and operations). When there is
  no key at all the server **refuses to start**; ``--no-auth`` serves without keys, and
  only on a loopback address, for local development.
- Only ``/v1/health`` and the OpenAPI schema (``/openapi.json``, ``/docs``) answer without a key.
- Ingestion by server-side path is off unless ``--allow-root DIR`` names the directories it may
  read.
- ``--mcp`` also answers the Model Context Protocol at ``/mcp``, behind the same keys;
  ``--mcp --stdio`` speaks MCP over stdin/stdout instead of HTTP (see :mod:`rag.serve.mcp`).
- ``--ui`` serves the browser playground at ``/``: the page is public, every API call it makes
  sends the key the user typed; ``--reports DIR`` lists the evaluation reports under ``DIR``
  in it (see :mod:`rag.serve.ui`).

Everything that can be wrong with the configuration is found before the port is opened: a
pipeline file that fails validation exits 2 with the file, line and field, and a model that
cannot load exits 1, so a supervisor never sees a server that is up but cannot answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from rag.core.deps import require
from rag.core.errors import ConfigError
from rag.core.pipeline import PipelineFile
from rag.serve._keys import API_KEYS_ENV, ApiKey, keys_from_env

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1 or ``localhost``).

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
        (True, False)
    """
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_app(
    config: str | Path | PipelineFile,
    *,
    host: str = "127.0.0.1",
    api_keys: Sequence[str | ApiKey] | None = None,
    no_auth: bool = False,
    allowed_roots: Sequence[str | Path] = (),
    max_body_bytes: int | None = None,
    mcp: bool = False,
    ui: bool = False,
    reports_dir: str | Path | None = None,
    keys_file: str | Path | None = None,
    close_on_shutdown: bool = False,
) -> Any:
    """Validate everything, warm the models up and return the app, ready to serve.

    Args:
        config: Pipeline file (path or loaded).
        host: Address the server will bind (``no_auth`` needs a loopback one).
        api_keys: Accepted keys (default: ``RAGLINE_API_KEYS`` and the keys file's).
        no_auth: Serve without keys (local development, loopback only).
        allowed_roots: Directories whose files may be ingested by path.
        max_body_bytes: Largest request body (default 8 MiB).
        mcp: Also serve MCP (streamable HTTP) at ``/mcp``, behind the same keys.
        ui: Also serve the browser playground at ``/`` (its API calls need a key).
        reports_dir: With ``ui``, the folder of evaluation reports the playground lists.
        keys_file: A keys file of scoped keys (default: ``RAGLINE_API_KEYS_FILE``), read when
            ``api_keys`` is not given.
        close_on_shutdown: Close the file's components when the server stops
            (:func:`rag.serve.create_app`).

    Raises:
        ConfigError: an invalid pipeline file, missing keys, or ``no_auth`` on a public address.
        RagError: a model or store could not be loaded.
    """
    require("fastapi", package="fastapi", extra="serve", purpose="rag serve")
    from rag.serve._app import DEFAULT_MAX_BODY_BYTES, create_app

    keys = list(api_keys) if api_keys is not None else keys_from_env(keys_file)
    if no_auth:
        if keys:
            raise ConfigError(
                f"--no-auth was given but {API_KEYS_ENV} is set; unset it or drop --no-auth"
            )
        if not is_loopback(host):
            raise ConfigError(
                f"--no-auth serves only on a loopback address (127.0.0.1, ::1, localhost), not "
                f"{host}; set {API_KEYS_ENV} to serve on {host}"
            )
    app_file = config if isinstance(config, PipelineFile) else PipelineFile.load(config)
    app = create_app(
        app_file,
        api_keys=keys,
        no_auth=no_auth,
        allowed_roots=allowed_roots,
        max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        warm_up=False,
        ui=ui,
        reports_dir=reports_dir,
        close_on_shutdown=close_on_shutdown,
    )
    if mcp:
        from rag.serve.mcp import mount_mcp

        mount_mcp(app, host=host)
    app.state.backend.warm_up()
    return app


def serve_mcp_stdio(config: str | Path | PipelineFile) -> None:
    """Serve ``search`` and ``ask`` as MCP tools over stdin/stdout until the client closes.

    Example:
        >>> # Serves MCP on stdin/stdout until stopped.
        >>> serve_mcp_stdio("examples/qa.yaml")  # doctest: +SKIP
    """
    from rag.serve._backend import Backend
    from rag.serve.mcp import create_mcp_server

    app_file = config if isinstance(config, PipelineFile) else PipelineFile.load(config)
    backend = Backend(app_file)
    server = create_mcp_server(backend)
    backend.warm_up()  # models load before the client's first call, not during it
    try:
        server.run("stdio")
    finally:
        app_file.close()  # stores write what the next open reads (store.faiss: its open cache)


def serve(
    config: str | Path | PipelineFile,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_keys: Sequence[str | ApiKey] | None = None,
    no_auth: bool = False,
    allowed_roots: Sequence[str | Path] = (),
    max_body_bytes: int | None = None,
    log_level: str = "info",
    grpc_port: int | None = None,
    mcp: bool = False,
    ui: bool = False,
    reports_dir: str | Path | None = None,
    keys_file: str | Path | None = None,
) -> None:
    """Serve a pipeline file over HTTP until interrupted (see :func:`build_app`), then close
    its components (a store's connection and files; ``store.faiss`` writes its open cache).

    With ``grpc_port`` the gRPC API (:class:`rag.serve._grpc.GrpcServer`) serves the same
    backend, keys and limits on that port of ``host``, beside REST.

    Example:
        >>> from rag.serve import serve
        >>> serve("examples/qa.yaml", port=8000)  # RAGLINE_API_KEYS must be set  # doctest: +SKIP
    """
    keys = list(api_keys) if api_keys is not None else keys_from_env(keys_file)
    if grpc_port is not None:  # a missing grpc extra is reported before any model loads
        from rag.serve._grpc import GrpcServer
    app = build_app(
        config,
        host=host,
        api_keys=keys,
        no_auth=no_auth,
        allowed_roots=allowed_roots,
        max_body_bytes=max_body_bytes,
        mcp=mcp,
        ui=ui,
        reports_dir=reports_dir,
        close_on_shutdown=True,
    )
    uvicorn = require("uvicorn", package="uvicorn", extra="serve", purpose="rag serve")
    if no_auth:
        print(
            "warning: serving WITHOUT authentication (--no-auth); local development only",
            file=sys.stderr,
        )
    grpc_server = None
    if grpc_port is not None:
        from rag.serve._app import DEFAULT_MAX_BODY_BYTES

        grpc_server = GrpcServer(
            app.state.backend,
            api_keys=None if no_auth else keys,
            host=host,
            port=grpc_port,
            max_message_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        )
        bound = grpc_server.start()
        _stop_before_closing(app, grpc_server.stop)
        print(f"gRPC API (ragline.v1.Ragline) on {host}:{bound}", file=sys.stderr)
    _note_an_empty_index(app.state.backend, config)
    if ui:
        shown = f"[{host}]" if ":" in host else host
        print(f"playground on http://{shown}:{port}/ (enter an API key)", file=sys.stderr)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:  # uvicorn did not start (its shutdown has stopped the server already otherwise)
        if grpc_server is not None:
            grpc_server.stop()


def _note_an_empty_index(backend: Any, config: str | Path | PipelineFile) -> None:
    """Say on stderr when the served stores hold no chunks: every search would find nothing."""
    from rag.cli_search import empty_stores

    shown = (config.source or "FILE.yaml") if isinstance(config, PipelineFile) else config
    empty = empty_stores(backend.app_file.components, config=shown)
    if empty:
        print(f"note: {empty} (or POST /v1/documents)", file=sys.stderr)


def _stop_before_closing(app: Any, stop: Callable[[], None]) -> None:
    """Run ``stop`` when ``app`` shuts down, before its lifespan closes the components.

    On SIGTERM uvicorn shuts the app down and then raises the signal again, which ends the
    process: a server beside the app (gRPC) must let its running calls finish inside the
    shutdown, while the store is still open, or they are cut off.
    """
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with inner(app):
            try:
                yield
            finally:
                await asyncio.to_thread(stop)

    app.router.lifespan_context = lifespan
