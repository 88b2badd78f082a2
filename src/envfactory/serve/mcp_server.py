"""MCP server over environment sessions, built on the official SDK's low-level `Server`.

Contract:
- The agent's tool list is exactly the session group's tools (`<env>__<tool>` names unless plain
  naming was asked for), with annotations derived from each tool's effect (`tools.py`). Control
  operations (loading state, snapshots, hashes, rewards) are not MCP tools: they belong to the HTTP
  API, which can reach MCP sessions by id (`mcp_<MCP session id>`) when both share one server.
- One isolated session group per MCP client session, opened from a `SessionTemplate` on the first
  `tools/list` or `tools/call`:
  - over stdio (and in-process) one server process serves one client, so the bridge holds one group;
  - over streamable HTTP the group is keyed by the `Mcp-Session-Id` the SDK assigned at `initialize`,
    closed when the client ends the MCP session (`DELETE`) or by the idle reaper. The HTTP endpoint
    advertises only the handshake protocol versions in `server/discover`, so SDK clients in `auto`
    mode open a stateful session; a stateless (2026-07-28) request has no session to hold an episode
    and is refused with a JSON-RPC error that says so.
- Tool failures are results with `isError: true` whose text is `<kind>: <message>` (the agent can
  correct itself); an unknown tool name is a JSON-RPC invalid-params error naming the tools offered.
- Over stdio, a line that is not JSON-RPC is answered with a JSON-RPC error (`id: null`) naming the
  problem, and the server keeps reading.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import anyio
import mcp_types as types
import orjson
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

import envfactory
from envfactory.serve.config import ServeLimits, is_loopback
from envfactory.serve.errors import ServeError, SessionCapError
from envfactory.serve.registry import ServedSession
from envfactory.serve.service import EnvService, SessionTemplate
from envfactory.serve.tools import has_object_output, mcp_tool
from envfactory.spec import ToolResult, ToolSpec

logger = logging.getLogger(__name__)

MCP_SESSION_HEADER = "mcp-session-id"
SERVER_ERROR = -32000  # JSON-RPC's range for implementation-defined server errors
LOCAL_KEY = "local"


def _no_schema(_name: str) -> None:
    return None


def _rpc_error(exc: ServeError) -> MCPError:
    code = SERVER_ERROR if isinstance(exc, SessionCapError) else types.INVALID_REQUEST
    return MCPError(code=code, message=exc.message)


def call_tool_result(result: ToolResult, structured: bool) -> types.CallToolResult:
    """A runtime result as an MCP tool result (`structured`: the tool announced an object output schema)."""
    if result.error is not None:
        error = result.error
        where = f" (at {error.path})" if error.path else ""
        # No structuredContent: it would have to match the tool's output schema, which an error does not.
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"{error.kind}: {error.message}{where}")],
            is_error=True,
        )
    text = orjson.dumps(result.output).decode("utf-8")
    output = result.output
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=output if structured and isinstance(output, dict) else None,
    )


class McpBridge:
    """The MCP face of an `EnvService`: `tools/list` and `tools/call` on per-client session groups."""

    def __init__(self, service: EnvService, template: SessionTemplate, *, http: bool = False,
                 name: str = "envfactory") -> None:
        """An MCP server named `name` whose sessions open from `template` on `service`; its instructions are
        the served environments' descriptions and policies. `http` adds the `server/discover` handler of the
        streamable-HTTP transport (no transport is started here)."""
        self.service = service
        self.template = template
        self.http = http
        self.server: Server[Any] = Server(
            name, version=envfactory.__version__, instructions=self._instructions(),
            on_list_tools=self._list_tools, on_call_tool=self._call_tool,
            # Stateless requests are refused before any tool runs, so their Mcp-Param headers need no
            # validation (without this the SDK would list tools for them, outside any session).
            get_tool_input_schema=_no_schema,
        )
        if http:
            self.server.add_request_handler("server/discover", types.RequestParams, self._discover)

    def _instructions(self) -> str:
        parts = []
        for name in self.template.envs:
            meta = self.service.catalog.get(name).env.spec.meta
            text = f"{meta.name}: {meta.description}".strip()
            if meta.policy:
                text += f"\nPolicy: {meta.policy}"
            parts.append(text)
        return "\n\n".join(parts)

    def _key(self, ctx: Any) -> str:
        request = getattr(ctx, "request", None)
        if not isinstance(request, Request):
            return LOCAL_KEY
        session = request.headers.get(MCP_SESSION_HEADER)
        if not session:
            raise MCPError(
                code=types.INVALID_REQUEST,
                message="this server keeps one environment session per MCP session, and this request has none "
                        "(stateless 2026-07-28 requests carry no session): connect with the initialize "
                        f"handshake (protocol {HANDSHAKE_PROTOCOL_VERSIONS[-1]}, e.g. Client(url, mode='legacy'))",
            )
        return session

    async def _session_id(self, ctx: Any) -> str:
        try:
            return (await self.service.implicit_session(self._key(ctx), self.template)).id
        except ServeError as exc:
            raise _rpc_error(exc) from None

    async def _discover(self, ctx: Any, params: types.RequestParams) -> types.DiscoverResult:
        # Only handshake versions: an episode needs a stateful MCP session (see the module docstring).
        return types.DiscoverResult(
            supported_versions=list(HANDSHAKE_PROTOCOL_VERSIONS),
            capabilities=self.server.get_capabilities(),
            instructions=self.server.instructions,
        )

    # Sessions are read only through `EnvService.run`, under the session's lock: a tool list or a call
    # never sees a group that a concurrent restore, close or call is changing.
    async def _list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        session_id = await self._session_id(ctx)
        try:
            tools = await self.service.run(session_id, lambda entry: [mcp_tool(spec) for spec in entry.group.tools])
        except ServeError as exc:
            raise _rpc_error(exc) from None
        return types.ListToolsResult(
            tools=[types.Tool.model_validate(tool.model_dump(by_alias=True, exclude_none=True)) for tool in tools]
        )

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        session_id = await self._session_id(ctx)
        name, arguments = params.name, params.arguments or {}

        def call(entry: ServedSession) -> tuple[ToolResult, ToolSpec]:
            route = entry.group.route(name)
            if route is None:
                offered = ", ".join(tool.name for tool in entry.group.tools)
                raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {name!r}; this server offers: {offered}")
            env_name, tool_name = route
            return entry.group.call(name, arguments), entry.group.sessions[env_name].env.tools[tool_name].spec

        try:
            result, spec = await self.service.run(session_id, call)
        except ServeError as exc:
            raise _rpc_error(exc) from None
        return call_tool_result(result, has_object_output(spec))


# -- stdio ------------------------------------------------------------------------------------------------------


class ReportingReadStream:
    """The server's read stream, minus lines that are not JSON-RPC: each is answered on the write stream
    with a JSON-RPC error (`id: null`) naming the problem, instead of being dropped in silence."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], replies: WriteStream[SessionMessage]) -> None:
        """Wrap `inner`; parse errors are answered on `replies`."""
        self._inner = inner
        self._replies = replies

    @property
    def last_context(self) -> Any:
        """The wrapped stream's `last_context` (None when it has none)."""
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        """The next JSON-RPC message; each unparseable line is answered with a JSON-RPC error and skipped."""
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            await self._replies.send(SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=None, error=_parse_error(item))))

    async def aclose(self) -> None:
        """Close the wrapped stream."""
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                        exc_tb: TracebackType | None) -> bool | None:
        await self.aclose()
        return None


def _parse_error(exc: Exception) -> types.ErrorData:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0] if exc.error_count() else None
        if first is not None and first["type"] == "json_invalid":
            return types.ErrorData(code=types.PARSE_ERROR, message=f"Parse error: the line is not valid JSON ({first['msg']})")
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()[:3])
        return types.ErrorData(code=types.INVALID_REQUEST,
                               message=f"Invalid Request: the line is not a JSON-RPC 2.0 message ({detail})")
    return types.ErrorData(code=types.PARSE_ERROR, message=f"Parse error: {exc}")


async def serve_stdio(bridge: McpBridge) -> None:
    """Serve one MCP client over this process's stdin/stdout until it disconnects; then close its session."""
    try:
        async with stdio_server() as (read_stream, write_stream):
            await bridge.server.run(ReportingReadStream(read_stream, write_stream), write_stream,
                                    bridge.server.create_initialization_options())
    finally:
        await bridge.service.close_all("the MCP client disconnected")


# -- streamable HTTP ------------------------------------------------------------------------------------------


class McpHttpEndpoint:
    """The streamable-HTTP MCP endpoint (an ASGI app), mounted by the HTTP server at `/mcp`.

    SDK sessions live as long as our sessions (same idle timeout and cap); a `DELETE` that ends an MCP
    session closes its environment session at once.
    """

    def __init__(self, bridge: McpBridge, limits: ServeLimits, *, host: str) -> None:
        """An endpoint over `bridge` whose SDK sessions share `limits` (cap, idle timeout, body size); on a
        loopback `host` the SDK's DNS-rebinding protection is on. Serves only inside `run()`."""
        self.bridge = bridge
        security = None
        if is_loopback(host):  # the SDK's DNS-rebinding protection for local servers
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            )
        self.manager = StreamableHTTPSessionManager(
            app=bridge.server, json_response=True, security_settings=security,
            max_request_body_size=limits.max_body_bytes, session_idle_timeout=limits.idle_timeout_s,
            max_sessions=limits.max_sessions,
        )

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run the SDK's session manager for the duration of the context (the app's lifespan)."""
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request to the SDK, marking the session used; a successful `DELETE` also closes the MCP
        session's environment session."""
        session = Request(scope).headers.get(MCP_SESSION_HEADER)
        service = self.bridge.service
        if session and f"mcp_{session}" in service.registry:
            service.registry.touch(service.registry.get(f"mcp_{session}"))
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.manager.handle_request(scope, receive, watch)
        if session and scope.get("method") == "DELETE" and 200 <= status < 300:
            await service.discard(f"mcp_{session}", "its MCP session was ended by the client")
