"""The MCP front door: ``search`` and ``ask`` as Model Context Protocol tools.

Built with the official ``mcp`` SDK (``pip install 'ragline[mcp]'``) over the same
:class:`~rag.serve._backend.Backend` as the REST API, so search and ask behave exactly as
``POST /v1/search`` and ``POST /v1/ask`` do (same limits, same errors, same model lock).

Two transports:

- **Streamable HTTP** (``rag serve --mcp``): the MCP endpoint is ``/mcp`` on the REST server,
  behind the same ``Authorization: Bearer KEY`` check (``RAGLINE_API_KEYS``) as every REST path;
  a scoped key (a tenant) searches and asks over its own chunks only, as on every front door.
- **stdio** (``rag serve --mcp --stdio``): for clients that launch the server themselves
  (desktop assistants, IDEs); stdout carries only protocol messages, logs go to stderr. No
  keys: whoever can start the process can already read the index.

Example:
    >>> # Needs a service backend; serves until stopped.
    >>> from rag.serve.mcp import create_mcp_server  # doctest: +SKIP
    >>> server = create_mcp_server(backend)  # doctest: +SKIP
    >>> server.run("stdio")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from rag.core.deps import require
from rag.core.errors import ConfigError, FilterError, GenerationError, InvalidInputError
from rag.core.limits import check_finite
from rag.serve._backend import Backend, Forbidden, NotConfigured
from rag.serve._guard import SCOPE_KEY
from rag.serve._json import json_safe
from rag.serve._keys import FULL_ACCESS, KeyScope
from rag.serve._schemas import MAX_K, MAX_QUERY_CHARS, NOT_BLANK

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MCP_PATH = "/mcp"
"""Where ``rag serve --mcp`` answers MCP over streamable HTTP."""

INSTRUCTIONS = (
    "Search a document collection with `search`, or get an answer with numbered citations "
    "from its documents with `ask`."
)


def _jsonable(value: Any) -> Any:
    # a stored NaN or infinity goes out as null, as in the REST answers
    return json_safe(json.loads(json.dumps(value, default=str)))


def _scope_of(ctx: Any) -> KeyScope:
    """The caller's key scope: the one the REST Guard found for the HTTP request that carried
    the call; over stdio (no request, no keys) the whole index."""
    from starlette.requests import Request

    try:
        request = ctx.request_context.request
    except ValueError:  # the SDK's answer outside a request
        request = None
    if request is None:  # stdio: no HTTP request carried the call
        return FULL_ACCESS
    scope = request.scope.get(SCOPE_KEY) if isinstance(request, Request) else None
    if not isinstance(scope, KeyScope):  # served over HTTP without the Guard: refuse
        raise Forbidden("the MCP request carries no key scope; serve MCP with mount_mcp")
    return scope


def _check_arguments(k: Any, filters: Any) -> None:
    # MCP clients send JSON; a NaN or infinity (or a float where k wants an integer) is refused
    if isinstance(k, float) and not math.isfinite(k):
        raise InvalidInputError("k must be a finite integer", where="k")
    if filters is not None:
        check_finite(filters, where="filters")


def create_mcp_server(backend: Backend, *, name: str = "ragline") -> MCPServer:
    """An MCP server with the ``search`` and ``ask`` tools of ``backend``.

    Args:
        backend: The service layer the REST API uses.
        name: The server name clients show.

    Raises:
        MissingDependencyError: the ``mcp`` package is not installed.
    """
    require("mcp", package="mcp", extra="mcp", purpose="rag serve --mcp")
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    import rag

    # WARNING: the SDK logs every session at INFO on stderr otherwise.
    server: MCPServer = MCPServer(
        name, version=rag.__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    def search(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK)],
        k: Annotated[int, Field(ge=1, le=MAX_K, strict=True)] = 10,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Search the document collection: the chunks nearest to the query, best first, each
        with its id, score, text and metadata (metadata.source names the document).

        Args:
            query: What to search for.
            k: How many chunks to return.
            filters: Metadata filter, MongoDB style, e.g. {"source": "a.md"}.
        """
        try:
            _check_arguments(k, filters)
            hits = backend.search(query, k=k, filters=filters, scope=_scope_of(ctx))
        except (FilterError, InvalidInputError, Forbidden, NotConfigured, ConfigError) as err:
            raise ToolError(str(err)) from err
        return {"query": query, "hits": [_jsonable(hit.to_dict()) for hit in hits]}

    def ask(
        ctx: Context,
        question: Annotated[
            str, Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK)
        ],
        k: Annotated[int | None, Field(ge=1, le=MAX_K, strict=True)] = None,
        filters: dict[str, Any] | None = None,
        answer_style: Annotated[str | None, Field(max_length=64)] = None,
    ) -> dict[str, Any]:
        """Answer a question from the document collection, with numbered citations of the
        chunks used, the retrieved contexts and the prompt sent to the model.

        Args:
            question: The question.
            k: How many contexts to retrieve (default: the server's).
            filters: Metadata filter for retrieval, MongoDB style.
            answer_style: evidence (a sentence copied from the documents), extractive,
                concise or sentences (default: the server's).
        """
        try:
            _check_arguments(k, filters)
            scope = _scope_of(ctx)
            problem = backend.check_question(question, answer_style)
            if problem:
                raise ToolError(problem)
            answer = backend.ask(
                question, k=k, filters=filters, scope=scope, answer_style=answer_style
            )
        except (FilterError, InvalidInputError, Forbidden, NotConfigured, ConfigError) as err:
            raise ToolError(str(err)) from err
        except GenerationError as err:
            raise ToolError(f"the model failed: {err}") from err
        return _jsonable(answer.to_dict())

    # the SDK finds the Context parameter through the annotations, resolved in this module's
    # globals, where the optional mcp package is not imported: give it the class itself
    search.__annotations__["ctx"] = Context
    ask.__annotations__["ctx"] = Context
    server.add_tool(search, name="search")
    if backend.chain is not None:
        server.add_tool(ask, name="ask")
    return server


def mount_mcp(app: Any, *, host: str = "127.0.0.1") -> MCPServer:
    """Serve MCP over streamable HTTP at :data:`MCP_PATH` of the REST ``app``.

    The route joins the REST app, so its outer middleware (API keys, body limit) guards it too;
    the MCP session manager runs inside the app's lifespan.

    Args:
        app: An app from :func:`rag.serve.create_app` (its ``state.backend`` is served).
        host: The address the server binds; a loopback host turns on the SDK's DNS-rebinding
            protection (allowed ``Host`` headers are then the loopback names).
    """
    server = create_mcp_server(app.state.backend)
    mcp_app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    app.router.routes.extend(mcp_app.routes)
    rest_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with rest_lifespan(application) as state, server.session_manager.run():
            yield state

    app.router.lifespan_context = lifespan
    return server
