"""The MCP bridge reads sessions only through the session API, under the session's lock (issue #17):
a tool list or call waits while another operation holds the session, and sees its result after."""

from __future__ import annotations

import anyio
import mcp_types as types

from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.mcp_server import LOCAL_KEY, McpBridge
from envfactory.serve.service import EnvService, SessionTemplate


def test_bridge_operations_wait_for_the_session_lock() -> None:
    service = EnvService(EnvCatalog.load(["shop"]))
    template = SessionTemplate(envs=("shop",))
    bridge = McpBridge(service, template)

    async def scenario() -> None:
        entry = await service.implicit_session(LOCAL_KEY, template)
        finished: list[str] = []

        async def call() -> None:
            result = await bridge._call_tool(None, types.CallToolRequestParams(
                name="shop__top_up_wallet", arguments={"id": "cus_0001", "amount": 5}))
            assert not result.is_error
            finished.append("call")

        async def listing() -> None:
            listed = await bridge._list_tools(None, None)
            assert "shop__top_up_wallet" in {tool.name for tool in listed.tools}
            finished.append("list")

        async with anyio.create_task_group() as tasks, entry.lock:  # another operation holds the session
            tasks.start_soon(call)
            tasks.start_soon(listing)
            await anyio.sleep(0.2)
            assert finished == [] and entry.group.log == []
        assert sorted(finished) == ["call", "list"] and len(entry.group.log) == 1
        await service.close_all()

    anyio.run(scenario)
