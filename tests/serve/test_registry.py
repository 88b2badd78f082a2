"""The session registry and the service without a transport: cap, idle bookkeeping, closed ids."""

from __future__ import annotations

import anyio
import pytest

from envfactory.runtime import load_env, open_group
from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.config import ServeLimits
from envfactory.serve.errors import SessionCapError, SessionGoneError, UnknownSessionError
from envfactory.serve.models import CreateSessionRequest
from envfactory.serve.registry import ServedSession, SessionRegistry
from envfactory.serve.service import EnvService, SessionTemplate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def served(session_id: str) -> ServedSession:
    group = open_group([load_env("shop")])
    return ServedSession(id=session_id, group=group, env_refs=("shop",), seed=0, naming="qualified",
                         origin="http", initial={})


def test_cap_and_closed_memory() -> None:
    registry = SessionRegistry(max_sessions=2, remember_closed=2)
    registry.add(served("a"))
    registry.add(served("b"))
    with pytest.raises(SessionCapError, match="maximum of 2 sessions"):
        registry.add(served("c"))
    for name in ("a", "b"):
        assert registry.remove(name, f"closed {name}") is not None
    registry.add(served("c"))
    assert registry.remove("c", "closed c") is not None
    with pytest.raises(SessionGoneError, match=r"session c is closed \(closed c\)"):
        registry.get("c")
    with pytest.raises(UnknownSessionError):  # forgotten: only the last two closed ids are remembered
        registry.get("a")
    with pytest.raises(ValueError, match="already used"):
        registry.add(served("b"))


def test_idle_skips_sessions_in_use() -> None:
    clock = FakeClock()
    registry = SessionRegistry(max_sessions=4, clock=clock)
    quiet, busy = served("quiet"), served("busy")
    registry.add(quiet)
    registry.add(busy)
    clock.now = 10.0

    async def check() -> None:
        async with busy.lock:
            assert registry.idle(5.0) == [quiet]
        assert {s.id for s in registry.idle(5.0)} == {"quiet", "busy"}
        registry.touch(busy)
        assert registry.idle(5.0) == [quiet]

    anyio.run(check)


def test_service_reaps_and_names_the_reason() -> None:
    clock = FakeClock()
    service = EnvService(EnvCatalog.load(["shop"]), ServeLimits(idle_timeout_s=60), clock=clock)

    async def run() -> None:
        entry = await service.create(CreateSessionRequest(envs=["shop"]))
        mcp = await service.implicit_session("abc", SessionTemplate(envs=("shop",)))
        assert mcp.id == "mcp_abc" and mcp.origin == "mcp"
        assert await service.implicit_session("abc", SessionTemplate(envs=("shop",))) is mcp
        clock.now = 61.0
        assert await service.reap_idle() == 2
        with pytest.raises(SessionGoneError, match="idle for more than 60 s"):
            await service.call(entry.id, "shop__get_customer", {"id": "cus_0001"})
        with pytest.raises(SessionGoneError, match="start a new MCP session"):
            await service.implicit_session("abc", SessionTemplate(envs=("shop",)))
        assert len(service.registry) == 0

    anyio.run(run)
