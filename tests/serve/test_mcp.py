"""MCP through the SDK's real client: in process, over stdio (the `envfactory serve` command) and over
streamable HTTP (the uvicorn server); isolation per client session, annotations, the control channel,
and bad input answered with JSON-RPC errors while the server keeps serving."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from serve_helpers import TOKEN, Running, running

from envfactory.runtime import load_env, open_group
from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.client import EnvClient
from envfactory.serve.mcp_server import McpBridge
from envfactory.serve.service import EnvService, SessionTemplate
from envfactory.serve.tools import mcp_tool

SERVE_SHOP = [sys.executable, "-m", "envfactory", "serve", "--env", "shop", "--mcp", "stdio", "--log-level", "warning"]
CONTROL_WORDS = ("snapshot", "restore", "load", "state", "reward", "hash", "reset", "fork", "close")


def expected_tools(*envs: str) -> list[dict[str, Any]]:
    group = open_group([load_env(name) for name in envs])
    return [mcp_tool(spec).model_dump(by_alias=True, exclude_none=True) for spec in group.tools]


def check_tool_list(result: types.ListToolsResult, *envs: str) -> None:
    listed = [tool.model_dump(by_alias=True, exclude_none=True, exclude={"meta"}) for tool in result.tools]
    assert listed == expected_tools(*envs)
    for tool in result.tools:  # only the environments' own tools: no control operation
        env, _, name = tool.name.partition("__")
        assert env in envs and not any(name.startswith(word) for word in CONTROL_WORDS)


def mcp_errors(exc: BaseException) -> list[MCPError]:
    if isinstance(exc, MCPError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [found for inner in exc.exceptions for found in mcp_errors(inner)]
    return mcp_errors(exc.__cause__) if exc.__cause__ is not None else []


async def exercise_shop(client: Client, marker: str) -> dict[str, Any]:
    """A short episode; returns the created customer."""
    created = await client.call_tool("shop__create_customer", {"name": marker, "email": f"{marker}@example.com"})
    assert not created.is_error and created.structured_content is not None
    customer = created.structured_content
    got = await client.call_tool("shop__get_customer", {"id": customer["id"]})
    assert got.structured_content == customer and json.loads(got.content[0].text) == customer  # type: ignore[union-attr]
    missing = await client.call_tool("shop__get_customer", {"id": "cus_9999"})
    assert missing.is_error and missing.content[0].text.startswith("not_found: ")  # type: ignore[union-attr]
    invalid = await client.call_tool("shop__top_up_wallet", {"id": customer["id"], "amount": "ten"})
    assert invalid.is_error and invalid.content[0].text.startswith("invalid_arguments: ")  # type: ignore[union-attr]
    with pytest.raises(MCPError) as excinfo:
        await client.call_tool("shop__launch_rocket", {})
    assert excinfo.value.code == types.INVALID_PARAMS
    assert "unknown tool 'shop__launch_rocket'; this server offers: shop__create_customer" in excinfo.value.message
    return dict(customer)


# -- in process --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_in_process(catalog: EnvCatalog, mode: str) -> None:
    service = EnvService(catalog)
    bridge = McpBridge(service, SessionTemplate(envs=("shop", "calendar")))

    async def run() -> None:
        async with Client(bridge.server, mode=mode) as client:
            check_tool_list(await client.list_tools(), "shop", "calendar")
            await exercise_shop(client, "InProcess")
            events = await client.call_tool("calendar__list_calendars", {"user_id": "usr_001"})
            assert not events.is_error and events.structured_content is None  # array output: text only
        assert service.registry.ids() == ["mcp_local"]
        await service.close_all()

    anyio.run(run)


# -- stdio ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_stdio_with_the_sdk_client(mode: str) -> None:
    async def run() -> None:
        params = StdioServerParameters(command=SERVE_SHOP[0], args=SERVE_SHOP[1:])
        async with Client(params, mode=mode) as client:
            check_tool_list(await client.list_tools(), "shop")
            customer = await exercise_shop(client, "Stdio")
            assert customer["id"] == "cus_0004"
        async with Client(params, mode=mode) as fresh:  # a new process is a new session
            again = await fresh.call_tool("shop__create_customer", {"name": "Again", "email": "again@example.com"})
            assert again.structured_content["id"] == "cus_0004"  # type: ignore[index]

    anyio.run(run)


class RawStdio:
    """Speak JSON-RPC by hand to `envfactory serve --mcp stdio`."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def send(self, line: bytes | dict[str, Any]) -> None:
        data = line if isinstance(line, bytes) else json.dumps(line).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read().decode() if self.proc.stderr else "server closed stdout"
        return dict(json.loads(line))

    def request(self, id_: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": id_, "method": method, **({"params": params} if params else {})})
        return self.receive()


@pytest.fixture()
def raw_stdio() -> Iterator[RawStdio]:
    raw = RawStdio(SERVE_SHOP)
    yield raw
    if raw.proc.poll() is None:
        raw.proc.kill()
    raw.proc.wait(10)


def test_stdio_malformed_json_rpc(raw_stdio: RawStdio) -> None:
    init = raw_stdio.request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                               "clientInfo": {"name": "raw", "version": "0"}})
    assert init["result"]["serverInfo"]["name"] == "envfactory"
    raw_stdio.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    raw_stdio.send(b'{"jsonrpc": "2.0", "id": 2, "method": ')
    parse_error = raw_stdio.receive()
    assert parse_error["id"] is None and parse_error["error"]["code"] == types.PARSE_ERROR
    assert parse_error["error"]["message"].startswith("Parse error: the line is not valid JSON")
    raw_stdio.send({"jsonrpc": "2.0", "id": 3, "method": 42})
    invalid = raw_stdio.receive()
    assert invalid["id"] is None and invalid["error"]["code"] == types.INVALID_REQUEST
    assert "not a JSON-RPC 2.0 message" in invalid["error"]["message"]
    unknown_method = raw_stdio.request(4, "tools/explode")
    assert unknown_method["error"]["code"] == types.METHOD_NOT_FOUND
    bad_params = raw_stdio.request(5, "tools/call", {"arguments": {}})
    assert bad_params["error"]["code"] == types.INVALID_PARAMS
    listed = raw_stdio.request(6, "tools/list")  # still serving
    assert len(listed["result"]["tools"]) == len(load_env("shop").spec.tools)
    called = raw_stdio.request(7, "tools/call", {"name": "shop__get_customer", "arguments": {"id": "cus_0001"}})
    assert called["result"]["structuredContent"]["name"] == "Ada Byron"


def test_stdio_client_disconnect_ends_the_server(raw_stdio: RawStdio) -> None:
    raw_stdio.request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                        "clientInfo": {"name": "raw", "version": "0"}})
    raw_stdio.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    raw_stdio.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "shop__get_customer", "arguments": {"id": "cus_0001"}}})
    assert raw_stdio.proc.stdin is not None
    raw_stdio.proc.stdin.close()  # abrupt: no reply read, no shutdown
    assert raw_stdio.proc.wait(15) == 0


# -- streamable HTTP ------------------------------------------------------------------------------------------


def mcp_ids(service: EnvService) -> set[str]:
    return {entry.id for entry in service.registry if entry.origin == "mcp"}


def test_http_sessions_are_isolated_and_controllable(server: Running) -> None:
    async def run() -> None:
        before = mcp_ids(server.service)
        async with Client(f"{server.url}/mcp") as first, Client(f"{server.url}/mcp") as second:
            assert first.session.protocol_version == "2025-11-25"  # discover advertises handshake versions
            check_tool_list(await first.list_tools(), "shop")
            a = await exercise_shop(first, "First")
            b = await exercise_shop(second, "Second")
            assert a["id"] == b["id"] == "cus_0004" and a["name"] != b["name"]
            ours = mcp_ids(server.service) - before
            assert len(ours) == 2
            # the HTTP API is the control channel: state, hash and snapshots of each MCP session
            with EnvClient(server.url) as control:
                names = {}
                for session_id in ours:
                    handle = control.session(session_id)
                    assert handle.info.origin == "mcp"
                    customers = handle.state().snapshots["shop"].state["collections"]["customers"]  # type: ignore[index, call-overload]
                    names[session_id] = customers["cus_0004"]["name"]
                assert sorted(names.values()) == ["First", "Second"]
        assert mcp_ids(server.service) == before  # the client's DELETE closed both environment sessions
        with EnvClient(server.url) as control:
            for session_id in ours:
                with pytest.raises(Exception, match="ended by the client"):
                    control.session(session_id)

    anyio.run(run)


def test_http_abrupt_disconnect_is_reaped(catalog: EnvCatalog) -> None:
    from envfactory.serve.config import ServeLimits

    # The idle timeout must outlast opening three sessions on a loaded 2-core machine (0.5 s did not:
    # the first session was reaped before the count), yet keep the test short.
    limits = ServeLimits(idle_timeout_s=3.0, reap_interval_s=0.1)
    with running(catalog, limits=limits, mcp=SessionTemplate(envs=("shop",))) as srv:
        async def run() -> None:
            for _ in range(3):
                async with Client(streamable_http_client(f"{srv.url}/mcp", terminate_on_close=False)) as client:
                    await client.call_tool("shop__get_customer", {"id": "cus_0001"})
            assert len(mcp_ids(srv.service)) == 3  # no DELETE was sent
            with anyio.fail_after(20):
                while mcp_ids(srv.service):
                    await anyio.sleep(0.1)

        anyio.run(run)


def test_http_with_token(catalog: EnvCatalog) -> None:
    with running(catalog, token=TOKEN, mcp=SessionTemplate(envs=("shop",))) as srv:
        async def run() -> None:
            headers = {"authorization": f"Bearer {TOKEN}"}
            async with httpx2.AsyncClient(headers=headers) as http, \
                    Client(streamable_http_client(f"{srv.url}/mcp", http_client=http)) as client:
                await exercise_shop(client, "Token")

        anyio.run(run)


@asynccontextmanager
async def raw_mcp(url: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as http:
        init = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
        assert init.status_code == 200, init.text
        session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        yield http, session
        await http.delete("/mcp", headers=session)


def test_http_malformed_json_rpc(server: Running) -> None:
    async def run() -> None:
        async with raw_mcp(server.url) as (http, session):
            garbage = await http.post("/mcp", content=b'{"jsonrpc": "2.0", "id": 2, "method": ', headers=session)
            assert garbage.status_code == 400
            assert garbage.json()["error"]["code"] == types.PARSE_ERROR
            assert garbage.json()["error"]["message"].startswith("Parse error")
            not_rpc = await http.post("/mcp", json={"hello": "world"}, headers=session)
            assert not_rpc.status_code == 400 and not_rpc.json()["error"]["code"] == types.INVALID_PARAMS
            unknown = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                                    "params": {"name": "shop__nope", "arguments": {}}}, headers=session)
            assert "unknown tool 'shop__nope'" in unknown.json()["error"]["message"]
            good = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
                "name": "shop__get_customer", "arguments": {"id": "cus_0001"}}}, headers=session)
            assert good.json()["result"]["structuredContent"]["id"] == "cus_0001"
            gone = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 5, "method": "tools/list"},
                                   headers={**session, "mcp-session-id": "0" * 32})
            assert gone.status_code == 404 and gone.json()["error"]["message"] == "Session not found"

    anyio.run(run)


def test_http_stateless_requests_are_refused_with_a_reason(server: Running) -> None:
    async def run() -> None:
        with pytest.raises(BaseException) as excinfo:  # the SDK wraps the MCPError in an exception group
            async with Client(f"{server.url}/mcp", mode="2026-07-28") as client:
                await client.call_tool("shop__get_customer", {"id": "cus_0001"})
        messages = [error.message for error in mcp_errors(excinfo.value)]
        assert any("keeps one environment session per MCP session" in m and "initialize handshake" in m
                   for m in messages), messages
        async with Client(f"{server.url}/mcp") as client:  # still serving
            assert not (await client.call_tool("shop__get_customer", {"id": "cus_0001"})).is_error

    anyio.run(run)
