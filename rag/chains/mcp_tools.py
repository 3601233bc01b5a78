"""Tools from MCP servers for ``chain.rag`` (``mcp_servers:`` in YAML).

Each entry names one Model Context Protocol server, reached with the official ``mcp`` SDK
(``pip install 'ragline[mcp]'``):

.. code-block:: yaml

    mcp_servers:
      - command: [python, -m, my_tools.server]     # stdio: the chain starts the process
        env: {LOG_LEVEL: warning}
      - url: http://127.0.0.1:8000/mcp            # streamable HTTP
        api_key_env: DOCS_MCP_KEY                  # sent as "Authorization: Bearer $DOCS_MCP_KEY"
        prefix: docs_                              # tool names become docs_search, docs_ask
        tools: [search]                            # only these (default: every tool listed)

The chain connects when it warms up, lists the tools, and offers them to the model next to its
own; a call goes over the open session (one background event loop per server, so the chain
stays synchronous). A tool that reports an error becomes an error message for the model, as
with local tools. Keys are read from the environment when connecting, never stored in YAML.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import weakref
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from rag.chains.tools import Tool
from rag.core.deps import require
from rag.core.errors import ConfigError, did_you_mean

FIELDS = ("command", "url", "env", "headers", "api_key_env", "prefix", "tools", "timeout")
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class MCPServerSpec:
    """Where one MCP server is and which of its tools to use (one ``mcp_servers`` entry)."""

    command: tuple[str, ...] = ()
    url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    api_key_env: str | None = None
    prefix: str = ""
    tools: tuple[str, ...] | None = None
    timeout: float = 120.0
    index: int = 0

    @property
    def label(self) -> str:
        where = self.url or " ".join(self.command)
        return f"mcp_servers[{self.index}] ({where})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"command": list(self.command)} if self.command else {}
        if self.url:
            data["url"] = self.url
        if self.env:
            data["env"] = dict(self.env)
        if self.headers:
            data["headers"] = dict(self.headers)
        if self.api_key_env:
            data["api_key_env"] = self.api_key_env
        if self.prefix:
            data["prefix"] = self.prefix
        if self.tools is not None:
            data["tools"] = list(self.tools)
        if self.timeout != 120.0:
            data["timeout"] = self.timeout
        return data


def parse_mcp_servers(specs: Sequence[Mapping[str, Any]] | None) -> list[MCPServerSpec]:
    """Check ``mcp_servers`` entries (no connection is made here).

    Raises:
        ConfigError: naming the entry and field: an unknown key, neither or both of
            ``command`` and ``url``, or a value of the wrong type.

    Example:
        >>> parse_mcp_servers([{"url": "http://127.0.0.1:8000/mcp", "prefix": "docs_"}])[0].prefix
        'docs_'
    """
    parsed: list[MCPServerSpec] = []
    for index, spec in enumerate(specs or []):
        where = f"mcp_servers[{index}]"
        if isinstance(spec, MCPServerSpec):
            parsed.append(spec)
            continue
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"{where} must be a mapping with 'command' or 'url', got {spec!r}", field=where
            )
        for key in spec:
            if key not in FIELDS:
                raise ConfigError(
                    f"unknown key '{key}' in {where}.{did_you_mean(str(key), FIELDS)} "
                    f"Valid: {', '.join(FIELDS)}",
                    field=f"{where}.{key}",
                )
        command, url = spec.get("command"), spec.get("url")
        if (command is None) == (url is None):
            raise ConfigError(
                f"{where} needs exactly one of 'command' (a stdio server to start, e.g. "
                "[python, -m, my_server]) or 'url' (a streamable HTTP endpoint)",
                field=where,
            )
        if isinstance(command, str):
            command = command.split()
        if command is not None and (
            not command or not all(isinstance(part, str) for part in command)
        ):
            raise ConfigError(
                f"{where}.command must be a non-empty list of strings", field=f"{where}.command"
            )
        if url is not None and not (isinstance(url, str) and re.match(r"https?://", url)):
            raise ConfigError(
                f"{where}.url must be an http:// or https:// URL, got {url!r}",
                field=f"{where}.url",
            )
        for name in ("env", "headers"):
            value = spec.get(name) or {}
            if not isinstance(value, Mapping) or not all(
                isinstance(v, str) for v in value.values()
            ):
                raise ConfigError(
                    f"{where}.{name} must map names to strings", field=f"{where}.{name}"
                )
        tools = spec.get("tools")
        if tools is not None and (
            not isinstance(tools, list) or not all(isinstance(t, str) for t in tools)
        ):
            raise ConfigError(f"{where}.tools must be a list of tool names", field=f"{where}.tools")
        prefix = str(spec.get("prefix") or "")
        if _INVALID_NAME_CHARS.search(prefix):
            raise ConfigError(
                f"{where}.prefix may use only letters, digits, '_' and '-', got {prefix!r}",
                field=f"{where}.prefix",
            )
        timeout = float(spec.get("timeout", 120.0))
        if timeout <= 0:
            raise ConfigError(f"{where}.timeout must be positive", field=f"{where}.timeout")
        parsed.append(
            MCPServerSpec(
                command=tuple(command or ()),
                url=url,
                env=dict(spec.get("env") or {}),
                headers=dict(spec.get("headers") or {}),
                api_key_env=spec.get("api_key_env"),
                prefix=prefix,
                tools=None if tools is None else tuple(tools),
                timeout=timeout,
                index=index,
            )
        )
    return parsed


def _root_cause(err: BaseException) -> BaseException:
    """The first leaf of (nested) exception groups: the SDK wraps errors in task groups."""
    if sys.version_info >= (3, 11):
        group: type[BaseException] = BaseExceptionGroup  # noqa: F821 (a builtin on 3.11)
    else:  # anyio's backport on Python 3.10 (installed with it there)
        from exceptiongroup import BaseExceptionGroup as group
    while isinstance(err, group) and err.exceptions:
        err = err.exceptions[0]
    return err


class MCPConnection:
    """One open MCP client session, driven by its own event loop in a daemon thread, with
    blocking :meth:`list_tools` and :meth:`call_tool` for synchronous callers.

    Args:
        spec: The server to connect to.

    Example:
        >>> # Needs a running MCP server at url.
        >>> connection = MCPConnection(parse_mcp_servers([{"url": url}])[0])  # doctest: +SKIP
        >>> connection.open(); [t.name for t in connection.list_tools()]  # doctest: +SKIP
        ['search', 'ask']
    """

    def __init__(self, spec: MCPServerSpec) -> None:
        self.spec = spec
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def _transport(self) -> Any:
        from mcp import StdioServerParameters

        # The SDK passes a safe subset of this process's environment (PATH, HOME, ...), not
        # its secrets; ``env`` adds what the server needs.
        command, *args = self.spec.command
        return StdioServerParameters(command=command, args=args, env=dict(self.spec.env) or None)

    async def _main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        from mcp import Client

        self._stop = asyncio.Event()
        try:
            async with AsyncExitStack() as stack:
                if self.spec.url:
                    from mcp.client.streamable_http import streamable_http_client
                    from mcp.shared._httpx_utils import create_mcp_http_client

                    headers = dict(self.spec.headers)
                    if self.spec.api_key_env:
                        key = os.environ.get(self.spec.api_key_env)
                        if not key:
                            raise ConfigError(
                                f"environment variable {self.spec.api_key_env} is not set; "
                                f"{self.spec.label} sends it as the bearer key",
                                field=f"mcp_servers[{self.spec.index}].api_key_env",
                            )
                        headers["Authorization"] = f"Bearer {key}"
                    http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
                    server: Any = streamable_http_client(self.spec.url, http_client=http)
                else:
                    server = self._transport()
                client = Client(server, read_timeout_seconds=self.spec.timeout)
                self._client = await stack.enter_async_context(client)
                ready.set()
                await self._stop.wait()
        except BaseException as err:
            failure.append(err)
            ready.set()

    def open(self) -> None:
        """Connect (start the process or reach the URL) and complete the MCP handshake.

        Raises:
            ConfigError: the server cannot be started or reached, naming it and why.
        """
        require("mcp", package="mcp", extra="mcp", purpose="MCP tools in chain.rag")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._main(ready, failure))
            finally:
                loop.close()

        thread = threading.Thread(target=run, name=f"mcp-{self.spec.index}", daemon=True)
        thread.start()
        if not ready.wait(self.spec.timeout):
            failure.append(TimeoutError(f"no answer within {self.spec.timeout:g} s"))
        if failure:
            cause = _root_cause(failure[0])
            if isinstance(cause, ConfigError):
                raise cause
            raise ConfigError(
                f"cannot connect to MCP server {self.spec.label}: {type(cause).__name__}: "
                f"{cause}. Check the command or URL, and that the server runs",
                field=f"mcp_servers[{self.spec.index}]",
            ) from cause
        self._loop, self._thread = loop, thread
        # Close the session (and stop a stdio server) when this object goes away or at exit.
        weakref.finalize(self, _shutdown, loop, self._stop, thread)

    def _run(self, coroutine: Any) -> Any:
        if self._loop is None:
            raise RuntimeError(f"{self.spec.label} is not connected; call open() first")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(self.spec.timeout)

    def list_tools(self) -> list[Any]:
        """The server's tools (``mcp.types.Tool``), every page."""
        tools: list[Any] = []
        cursor = None
        while True:
            page = self._run(self._client.list_tools(cursor=cursor))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    def call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        """Call ``name`` and return its result as text for the model.

        Raises:
            RuntimeError: the server reports the call failed (the message is the server's).
        """
        result = self._run(self._client.call_tool(name, arguments))
        from mcp.types import TextContent

        texts = [b.text for b in result.content if isinstance(b, TextContent) and b.text]
        text = "\n".join(texts)
        if not text and result.structured_content is not None:
            text = json.dumps(result.structured_content)
        if result.is_error:
            raise RuntimeError(text or f"MCP tool '{name}' failed")
        return text

    def close(self) -> None:
        """End the session (a stdio server process exits)."""
        if self._loop is not None and self._thread is not None:
            _shutdown(self._loop, self._stop, self._thread)
            self._loop = None


def _shutdown(loop: asyncio.AbstractEventLoop, stop: Any, thread: threading.Thread) -> None:
    if not loop.is_closed() and stop is not None:
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop closed in between
            return
        thread.join(timeout=10)


def _tool_name(prefix: str, name: str) -> str:
    return _INVALID_NAME_CHARS.sub("_", prefix + name)[:64]


def connect_tools(
    specs: Sequence[MCPServerSpec], *, taken: Mapping[str, Any] | None = None
) -> dict[str, Tool]:
    """Connect to every server and wrap its tools as :class:`~rag.chains.tools.Tool` objects.

    Args:
        specs: The servers (from :func:`parse_mcp_servers`).
        taken: Tool names already used by the chain; a clash is an error (use ``prefix``).

    Raises:
        ConfigError: a server cannot be reached, an allow-listed tool does not exist, or two
            tools end up with one name.
    """
    tools: dict[str, Tool] = {}
    for spec in specs:
        connection = MCPConnection(spec)
        connection.open()
        listed = {tool.name: tool for tool in connection.list_tools()}
        wanted = list(spec.tools) if spec.tools is not None else list(listed)
        for name in wanted:
            if name not in listed:
                raise ConfigError(
                    f"{spec.label} has no tool '{name}'.{did_you_mean(name, listed)} "
                    f"Its tools: {', '.join(listed) or '(none)'}",
                    field=f"mcp_servers[{spec.index}].tools",
                )
            tool_name = _tool_name(spec.prefix, name)
            if tool_name in tools or tool_name in (taken or {}):
                raise ConfigError(
                    f"two tools are named '{tool_name}' ({spec.label} and another); give the "
                    "server a 'prefix'",
                    field=f"mcp_servers[{spec.index}].prefix",
                )
            listing = listed[name]
            schema = dict(listing.input_schema or {})
            schema.setdefault("type", "object")
            schema.setdefault("properties", {})

            def call(_remote: str = name, _connection: MCPConnection = connection, **arguments):
                return _connection.call_tool(_remote, arguments)

            tools[tool_name] = Tool(
                name=tool_name,
                description=listing.description or name,
                parameters=schema,
                function=call,
            )
    return tools
