"""The environment service: sessions served over the wire, independent of the transport.

`EnvService` is what the HTTP API (`http.py`) and the MCP server (`mcp.py`) both drive. It owns the
catalog of environments and the session registry, and implements each operation once: create (from
environments and states, or from a task), call, tools, state, hash, restore, fork, log, reward, close,
the idle reaper and shutdown.

Contract:
- Every operation on a session holds that session's lock: concurrent requests on one session run one
  at a time, in arrival order; requests on different sessions do not wait for each other.
- Sessions whose environments all run in this process (declarative, trusted python) execute on the
  event loop: a call takes microseconds, far less than a thread hop. Sessions with a sandboxed
  environment execute in a worker thread, so waiting on a worker process never blocks the loop.
- A session that sees no request for `limits.idle_timeout_s` is closed by the reaper; closing releases
  its group (and any sandbox worker sessions) at once.
- Failures the client caused raise `ServeError`s; tool failures are `ToolResult` errors, never
  exceptions.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from envfactory.errors import SpecError
from envfactory.runtime import Environment, SessionGroup, open_group
from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.config import ServeLimits
from envfactory.serve.errors import ConflictError, InvalidRequestError, SessionGoneError
from envfactory.serve.models import (
    CallResponse,
    Closed,
    CreateSessionRequest,
    HashResponse,
    LogEntry,
    LogResponse,
    McpTool,
    Naming,
    OpenAITool,
    Origin,
    RewardRequest,
    RewardResponse,
    StateResponse,
)
from envfactory.serve.registry import ServedSession, SessionRegistry
from envfactory.serve.tools import mcp_tool, openai_tool
from envfactory.spec import JSONObject, Message, Reward, Snapshot, Task, ToolResult, ToolSpec
from envfactory.verify import task_reward

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RewardFn(Protocol):
    """The reward entry point (DESIGN §7); `envfactory.verify.task_reward` by default."""

    def __call__(self, task: Task, group: SessionGroup, *, initial: Mapping[str, Snapshot] | None = None,
                 restart: Mapping[str, Snapshot] | None = None,
                 messages: Sequence[Message] | None = None) -> Reward:
        """Score `task` on `group`'s episode from `initial` (or the last `restart`), with the conversation
        `messages`; deterministic for the same states, calls and messages."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """A create request resolved against the catalog."""

    envs: list[Environment]
    states: dict[str, Any]
    seed: int
    naming: Naming
    task: Task | None
    in_process: bool


@dataclass(frozen=True, slots=True)
class SessionTemplate:
    """How sessions opened implicitly (one per MCP client session) start."""

    envs: tuple[str, ...]
    initial_state: Mapping[str, Any] = field(default_factory=dict)
    snapshots: Mapping[str, Snapshot] = field(default_factory=dict)
    seed: int = 0
    naming: Naming = "qualified"

    def request(self) -> CreateSessionRequest:
        """The create request this template stands for."""
        return CreateSessionRequest(envs=list(self.envs), initial_state=dict(self.initial_state),
                                    snapshots=dict(self.snapshots), seed=self.seed, naming=self.naming)


def new_session_id() -> str:
    """A fresh random session id, `ses_` and 24 hex digits (not derived from any seed)."""
    return f"ses_{secrets.token_hex(12)}"


class EnvService:
    """Sessions over a catalog, for every transport (see the module docstring for the contract)."""
    def __init__(self, catalog: EnvCatalog, limits: ServeLimits | None = None, *,
                 reward_fn: RewardFn = task_reward, clock: Callable[[], float] = time.monotonic) -> None:
        """Serve `catalog` within `limits`; `reward_fn` scores rewards (default `verify.task_reward`) and
        `clock` times idleness. Opens nothing until a session is created."""
        self.catalog = catalog
        self.limits = limits or ServeLimits()
        self.registry = SessionRegistry(self.limits.max_sessions, self.limits.remember_closed, clock)
        self._reward = reward_fn
        self._implicit_open = anyio.Lock()

    # -- opening ---------------------------------------------------------------------------------------
    def _plan(self, request: CreateSessionRequest) -> _Plan:
        task = request.task
        if task is None:
            names = list(request.envs)
            states: dict[str, Any] = {**request.initial_state, **request.snapshots}
            seed = request.seed if request.seed is not None else 0
            naming: Naming = request.naming or "qualified"
        else:
            names = [ref.name for ref in task.envs]
            states = dict(task.initial_state)
            seed = request.seed if request.seed is not None else task.seed
            naming = task.tool_naming
        served = [self.catalog.get(name) for name in names]
        if task is not None:
            for ref, item in zip(task.envs, served, strict=True):
                spec = item.env.spec
                if ref.version != spec.meta.version or not spec.content_hash.startswith(ref.content_hash):
                    raise InvalidRequestError(
                        f"the task was made for {ref}, this server serves {spec.ref}; a task only runs on "
                        "the environment version it was made for"
                    )
        unknown = sorted(set(states) - set(names))
        if unknown:
            raise InvalidRequestError(f"initial states given for environments the session does not open: {unknown}")
        return _Plan([item.env for item in served], states, seed, naming, task,
                     all(item.in_process for item in served))

    def _open_group(self, plan: _Plan) -> tuple[SessionGroup, dict[str, Snapshot]]:
        try:
            group = open_group(plan.envs, plan.states, plan.seed, plan.naming)
        except SpecError as exc:
            raise InvalidRequestError(str(exc)) from exc
        try:
            return group, group.snapshot()
        except BaseException:
            group.close()
            raise

    def check_template(self, template: SessionTemplate) -> None:
        """Open and close one session from `template`, so a bad `--state` fails at start, not at the
        first MCP request. Raises `ServeError`s like `create`."""
        group, _ = self._open_group(self._plan(template.request()))
        group.close()

    async def _execute(self, in_process: bool, fn: Callable[[], T]) -> T:
        if in_process:
            return fn()
        return await anyio.to_thread.run_sync(fn)

    async def create(self, request: CreateSessionRequest, *, origin: Origin = "http",
                     session_id: str | None = None) -> ServedSession:
        """Open a session group and register it; raises `SessionCapError` when the server is full."""
        self.registry.check_room()
        plan = self._plan(request)
        group, initial = await self._execute(plan.in_process, lambda: self._open_group(plan))
        entry = ServedSession(
            id=session_id or new_session_id(), group=group,
            env_refs=tuple(env.spec.ref for env in plan.envs), seed=plan.seed, naming=plan.naming,
            origin=origin, initial=initial, task=plan.task, in_process=plan.in_process,
        )
        try:
            self.registry.add(entry)
        except BaseException:
            await self._execute(plan.in_process, group.close)
            raise
        return entry

    async def implicit_session(self, key: str, template: SessionTemplate) -> ServedSession:
        """The session of an MCP client session, opened from `template` on first use."""
        session_id = f"mcp_{key}"
        if session_id in self.registry:
            return self.registry.get(session_id)
        async with self._implicit_open:  # two first requests of one MCP session must not open two groups
            if session_id in self.registry:
                return self.registry.get(session_id)
            reason = self.registry.closed_reason(session_id)
            if reason is not None:
                raise SessionGoneError(f"the environment session of this MCP session is closed ({reason}); "
                                         "start a new MCP session")
            return await self.create(template.request(), origin="mcp", session_id=session_id)

    # -- running operations -------------------------------------------------------------------------------
    async def run(self, session_id: str, fn: Callable[[ServedSession], T]) -> T:
        """Run `fn` on a live session under its lock (in a worker thread for sandboxed sessions)."""
        entry = self.registry.get(session_id)
        async with entry.lock:
            if entry.closed_reason is not None:
                raise SessionGoneError(f"session {entry.id} is closed ({entry.closed_reason}); open a new one")
            self.registry.touch(entry)
            try:
                return await self._execute(entry.in_process, lambda: fn(entry))
            finally:
                self.registry.touch(entry)

    async def call(self, session_id: str, tool: str, arguments: JSONObject | str | None,
                   *, with_hash: bool = False) -> CallResponse:
        """Call `tool` in the session (see `run` for its errors); a tool's failure is in the result. With
        `with_hash`, the state hash after the call is returned too."""
        def run(entry: ServedSession) -> CallResponse:
            result = entry.group.call(tool, arguments)
            return CallResponse(session_id=entry.id, result=result,
                                state_hash=entry.group.hash() if with_hash else None)

        return await self.run(session_id, run)

    async def call_result(self, session_id: str, tool: str, arguments: JSONObject | str | None) -> ToolResult:
        """`call` without the envelope: the `ToolResult` alone (the MCP path)."""
        return await self.run(session_id, lambda entry: entry.group.call(tool, arguments))

    def tool_specs(self, session_id: str) -> list[ToolSpec]:
        """The session's tools; `UnknownSessionError` or `SessionGoneError` when it is not live."""
        return self.registry.get(session_id).group.tools

    def openai_tools(self, session_id: str) -> list[OpenAITool]:
        """The session's tools in OpenAI function-calling format."""
        return [openai_tool(spec) for spec in self.tool_specs(session_id)]

    def mcp_tools(self, session_id: str) -> list[McpTool]:
        """The session's tools in MCP `tools/list` form."""
        return [mcp_tool(spec) for spec in self.tool_specs(session_id)]

    async def state(self, session_id: str) -> StateResponse:
        """The session's snapshots and combined hash, read under its lock."""
        return await self.run(session_id, lambda entry: StateResponse(
            session_id=entry.id, state_hash=entry.group.hash(), snapshots=entry.group.snapshot()))

    async def hash(self, session_id: str) -> HashResponse:
        """The session's state hashes and step count, read under its lock."""
        return await self.run(session_id, _hash_response)

    async def restore(self, session_id: str, snapshots: dict[str, Snapshot]) -> HashResponse:
        """Load snapshots into the session. The restored state becomes the episode's start for rewards:
        a restore never earns reward, only calls made after it change what is scored (the call log is
        kept, so calls before the restore still count against the trace)."""
        def run(entry: ServedSession) -> HashResponse:
            try:
                entry.group.restore(snapshots)
            except SpecError as exc:
                raise InvalidRequestError(str(exc)) from exc
            entry.restart = entry.group.snapshot()
            return _hash_response(entry)

        return await self.run(session_id, run)

    async def log(self, session_id: str) -> LogResponse:
        """The session's call log, in call order."""
        return await self.run(session_id, lambda entry: LogResponse(
            session_id=entry.id, calls=[LogEntry(call=call, result=result) for call, result in entry.group.log]))

    async def fork(self, session_id: str) -> ServedSession:
        """A new session continuing from this one's state, clock, RNG and call log."""
        self.registry.check_room()
        parent = self.registry.get(session_id)
        group = await self.run(session_id, lambda entry: entry.group.fork())
        child = ServedSession(
            id=new_session_id(), group=group, env_refs=parent.env_refs, seed=parent.seed,
            naming=parent.naming, origin="http", initial=parent.initial, task=parent.task,
            parent=parent.id, in_process=parent.in_process, restart=parent.restart,
        )
        try:
            self.registry.add(child)
        except BaseException:
            await self._execute(child.in_process, group.close)
            raise
        return child

    async def reward(self, session_id: str, request: RewardRequest) -> RewardResponse:
        """Score the session against the task it was opened from. The task is fixed at creation: a
        session opened without one cannot be scored, and a request naming another task is refused
        (409), so an episode cannot be scored against a task its state happens to satisfy."""
        def run(entry: ServedSession) -> RewardResponse:
            task = entry.task
            if task is None:
                raise ConflictError(f"session {entry.id} was not opened from a task; a session is scored only "
                                    "against the task it was opened from (create it with `task`)")
            if request.task is not None and request.task.id != task.id:
                raise ConflictError(f"session {entry.id} was opened from task {task.id[:12]}; a reward request "
                                    f"cannot name another task ({request.task.id[:12]})")
            try:
                reward = self._reward(task, entry.group, initial=entry.initial, restart=entry.restart,
                                      messages=request.messages)
            except ValueError as exc:
                raise InvalidRequestError(f"cannot score session {entry.id} against task {task.id[:12]}: {exc}") from exc
            return RewardResponse(session_id=entry.id, task_id=task.id, reward=reward)

        return await self.run(session_id, run)

    # -- closing ----------------------------------------------------------------------------------------------
    async def close(self, session_id: str, reason: str = "closed by its client") -> Closed:
        """Close a live session (waiting for an operation in progress) and remember `reason`; raises
        `UnknownSessionError` or `SessionGoneError` when it is not live."""
        entry = self.registry.remove(session_id, reason)
        if entry is None:
            self.registry.get(session_id)  # raises: unknown, or already closed (with the reason)
            raise AssertionError("unreachable")
        await self._close_group(entry)
        return Closed(session_id=session_id)

    async def discard(self, session_id: str, reason: str) -> bool:
        """Close a session if it is live; no error otherwise. True when one was closed."""
        entry = self.registry.remove(session_id, reason)
        if entry is None:
            return False
        await self._close_group(entry)
        return True

    async def _close_group(self, entry: ServedSession) -> None:
        # Waits for an operation in progress; operations queued behind it then see `closed_reason`.
        async with entry.lock:
            await self._execute(entry.in_process, entry.group.close)

    async def reap_idle(self) -> int:
        """Close every session idle for longer than the limit; returns how many."""
        timeout = self.limits.idle_timeout_s
        reaped = 0
        for entry in self.registry.idle(timeout):
            if await self.discard(entry.id, f"idle for more than {timeout:g} s"):
                reaped += 1
        if reaped:
            logger.info("reaped %d idle session(s); %d open", reaped, len(self.registry))
        return reaped

    async def run_reaper(self) -> None:
        """Reap idle sessions every `limits.reap_every_s` seconds until cancelled."""
        while True:
            await anyio.sleep(self.limits.reap_every_s)
            try:
                await self.reap_idle()
            except Exception:  # the reaper must outlive one bad close; the failure is logged
                logger.exception("idle reaper failed")

    async def close_all(self, reason: str = "the server shut down") -> int:
        """Close every live session with `reason` (at shutdown); returns how many were closed."""
        closed = 0
        for entry in self.registry:
            if await self.discard(entry.id, reason):
                closed += 1
        return closed


def _hash_response(entry: ServedSession) -> HashResponse:
    return HashResponse(session_id=entry.id, state_hash=entry.group.hash(), hashes=entry.group.hashes(),
                        steps=len(entry.group.log))
