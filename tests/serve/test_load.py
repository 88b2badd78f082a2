"""Load: 256 concurrent sessions over HTTP (32 of them sandboxed), zero cross-session state bleed.

Every session writes its own marker into state and checks, after each of its writes, that it reads
back only its own marker, although every session allocates the very same ids (`cus_0004`,
`ord_00002`, `evt_0008`, ...): 224 sessions of the declarative `shop` (a customer named after the
marker, orders noted with it) and 32 of an untrusted copy of the python `calendar`, whose calls run in
a sandbox worker process (events titled with the marker). At the end each session's hash and every
call result must equal an in-process replay of its calls with the same seed.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import ADDRESS, ServerProcess, child_pids

from envfactory.runtime import load_env, open_group
from envfactory.runtime.loader import bundled_envs_root
from envfactory.serve.client import AsyncEnvClient, AsyncRemoteSession
from envfactory.spec import ToolResult

SESSIONS = 256
SANDBOXED_EVERY = 8  # sessions 0, 8, 16, ... use the sandboxed calendar: 32 of 256
ROUNDS = 4

Calls = list[tuple[str, dict[str, Any], ToolResult]]


async def shop_episode(session: AsyncRemoteSession, marker: str, index: int) -> Calls:
    calls: Calls = []

    async def call(tool: str, arguments: dict[str, Any]) -> Any:
        result = await session.call(f"shop__{tool}", arguments)
        assert result.ok, (marker, tool, result.error)
        calls.append((f"shop__{tool}", arguments, result))
        await asyncio.sleep(0)  # let other sessions interleave
        return result.output

    customer = await call("create_customer", {"name": marker, "email": f"{marker}@load.test", "wallet_balance": 1000})
    assert customer["id"] == "cus_0004"  # every session allocates the same id: bleed would show
    wallet = 1000.0
    for round_ in range(ROUNDS):
        wallet += index + round_ + 1
        await call("top_up_wallet", {"id": customer["id"], "amount": index + round_ + 1})
        order = await call("create_order", {"customer_id": customer["id"], "shipping_address": ADDRESS,
                                            "items": [{"product_id": "EL-100", "quantity": 1}],
                                            "note": f"{marker}/{round_}"})
        await call("pay_order", {"id": order["id"]})
        wallet -= order["total"]
        orders = await call("list_orders", {"customer_id": customer["id"]})
        notes = sorted(order["note"] for order in orders["items"])
        assert notes == [f"{marker}/{r}" for r in range(round_ + 1)], (marker, notes)
        seen = await call("get_customer", {"id": customer["id"]})
        assert seen["name"] == marker
        assert seen["wallet_balance"] == pytest.approx(wallet)
    return calls


async def calendar_episode(session: AsyncRemoteSession, marker: str) -> Calls:
    calls: Calls = []

    async def call(tool: str, arguments: dict[str, Any]) -> Any:
        result = await session.call(f"calendar__{tool}", arguments)
        assert result.ok, (marker, tool, result.error)
        calls.append((f"calendar__{tool}", arguments, result))
        await asyncio.sleep(0)
        return result.output

    window = {"user_id": "usr_001", "start": "2026-02-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
    for round_ in range(ROUNDS):
        day = f"2026-02-{round_ + 1:02d}"
        event = await call("create_event", {"calendar_id": "cal_001", "title": f"{marker}/{round_}",
                                            "start": f"{day}T10:00:00Z", "end": f"{day}T11:00:00Z"})
        assert event["id"] == f"evt_{8 + round_:04d}"  # the same ids in every session
        titles = sorted(item["title"] for item in await call("list_events", window))
        assert titles == [f"{marker}/{r}" for r in range(round_ + 1)], (marker, titles)
        assert (await call("get_event", {"event_id": event["id"]}))["title"] == f"{marker}/{round_}"
    return calls


def replay_hash(env: str, seed: int, calls: Calls) -> str:
    """The same calls in this process (the bundled, trusted calendar stands in for the sandboxed copy)."""
    group = open_group([load_env(env)], seed=seed)
    for tool, arguments, result in calls:
        again = group.call(tool, arguments)
        assert again.output == result.output and again.error == result.error
    return group.hash()


async def open_sessions(url: str) -> int:
    async with AsyncEnvClient(url) as client:
        return (await client.health()).sessions


async def run_load(url: str) -> None:
    created = asyncio.Barrier(SESSIONS + 1)

    async def one(index: int) -> tuple[str, int, Calls, str]:
        env = "calendar" if index % SANDBOXED_EVERY == 0 else "shop"
        # One client (one connection) per session, like independent rollout workers.
        async with AsyncEnvClient(url, max_connections=1) as client:
            try:
                session = await client.create_session(envs=[env], seed=index)
            except BaseException:
                await created.abort()  # fail the test instead of waiting for the others forever
                raise
            await created.wait()  # all sessions are open at the same time
            marker = f"marker-{index:03d}"
            if env == "shop":
                calls = await shop_episode(session, marker, index)
            else:
                calls = await calendar_episode(session, marker)
            final = await session.hash()
            await session.close()
            return env, index, calls, final

    episodes = [asyncio.create_task(one(i)) for i in range(SESSIONS)]
    await created.wait()
    assert await open_sessions(url) == SESSIONS
    results = await asyncio.gather(*episodes)
    assert sum(env == "calendar" for env, *_ in results) >= 32
    for env, index, calls, final in results:
        assert final == replay_hash(env, index, calls), (env, index)
    assert await open_sessions(url) == 0


@pytest.mark.slow
def test_256_concurrent_sessions_without_bleed(tmp_path: Path) -> None:
    untrusted = shutil.copytree(bundled_envs_root() / "calendar", tmp_path / "calendar")  # not bundled: sandboxed
    with ServerProcess("--http", "--env", "shop", "--env", str(untrusted), log_dir=tmp_path) as server:
        asyncio.run(asyncio.wait_for(run_load(server.url), 300))
        workers = child_pids(server.pid)
        assert len(workers) == 1  # the calendar's sandbox worker; shop runs in the server process
        assert server.stop() != -9
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # the worker left with the server
    assert "sandbox_failure" not in server.log.read_text(encoding="utf-8")
