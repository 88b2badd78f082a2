"""Rollout sessions: one isolated episode per rollout, in-process or on an HTTP env server, that
survives framework failures or says why it could not.

Contract:
- `SessionSource.open(task, seed)` gives a `RolloutSession` whose `call(tool, arguments)` returns the
  `ToolResult` the agent sees and whose `reward(messages)` scores the episode with our one reward
  implementation (`verify.task_reward`, in this process or behind the server's `/reward` endpoint).
- Framework failures are retried, never scored: a call answered with a framework error kind (a sandbox
  worker died or timed out: the runtime has already replaced the worker and rebuilt the session) is
  sent again; an HTTP transport failure (the env server died or restarted) reconnects, recreates the
  session from the task and replays the successful calls, checking the replayed state hash against the
  one the server reported before. After `retries` failed attempts the rollout is *failed*:
  `failure` holds the reason, later calls answer an error without running, and `reward()` raises
  `RolloutFailedError` — a failed rollout has no reward, so nothing trains on a number that was not
  computed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from envfactory.errors import EnvFactoryError
from envfactory.runtime import Environment, SessionGroup, load_env, open_group
from envfactory.serve.client import EnvClient, RemoteSession
from envfactory.serve.errors import RemoteError
from envfactory.spec import (
    FRAMEWORK_ERROR_KINDS,
    ErrorInfo,
    JSONObject,
    Message,
    Reward,
    Task,
    ToolResult,
    ToolSpec,
)
from envfactory.verify import task_reward


class RolloutFailedError(EnvFactoryError):
    """A rollout could not be completed or scored; the message says why (never scored as 0)."""


class SessionRefusedError(EnvFactoryError):
    """The env server refused to open a session; the message names the cause and the fix."""


class RolloutSession(Protocol):
    """One rollout's live session."""

    @property
    def tools(self) -> list[ToolSpec]:
        """The tools the agent may call in this rollout (OpenAI-ready specs)."""

    @property
    def failure(self) -> str | None:
        """Why the rollout was failed, or None while it is live."""

    @property
    def retries(self) -> int:
        """Framework failures retried so far (they are never shown to the agent)."""

    @property
    def calls(self) -> int:
        """Tool calls the agent made (retries not counted)."""

    def call(self, tool: str, arguments: JSONObject) -> ToolResult:
        """Run one call and return what the agent sees. After the rollout failed, an error result
        (`sandbox_failure`) is returned without running anything; never raises for a tool's own error."""

    def reward(self, messages: Sequence[Message] | None = None) -> Reward:
        """Score the episode with `verify.task_reward`; raises `RolloutFailedError` for a failed rollout."""

    def close(self) -> None:
        """Release the session (idempotent)."""


class SessionSource(Protocol):
    """Opens rollout sessions for tasks."""

    def open(self, task: Task, seed: int) -> RolloutSession:
        """A live session on the task's initial state, seeded with `seed`; raises `SessionRefusedError`
        when no session can be opened."""

    def close(self) -> None:
        """Release what the source holds (loaded environments, HTTP clients)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a rollout tries before it is failed."""

    retries: int = 2
    backoff_s: float = 0.5


def _failed_result(tool: str, step: int, reason: str) -> ToolResult:
    return ToolResult(call_id=f"call_{step}", tool=tool, step=step,
                      error=ErrorInfo(kind="sandbox_failure", message=f"rollout failed: {reason}"))


# -- in-process ------------------------------------------------------------------------------------------


@dataclass
class LocalRolloutSession:
    """A session group in this process (sandboxed environments run in the pool's workers). After a
    framework failure the group is reopened and the successful calls replayed, so the episode the
    reward reads holds no call the agent did not cause."""

    task: Task
    group: SessionGroup
    policy: RetryPolicy
    reopen: Callable[[], SessionGroup]
    failure: str | None = None
    retries: int = 0
    calls: int = 0
    _done: list[tuple[str, JSONObject]] = field(default_factory=list)

    @property
    def tools(self) -> list[ToolSpec]:
        """The group's tools (see `RolloutSession.tools`)."""
        return self.group.tools

    def _rebuild(self) -> None:
        try:
            expected = self.group.hash() if not self._done else None
        except EnvFactoryError:  # the old group cannot say: the replay's own checks still apply
            expected = None
        self.group.close()
        group = self.reopen()
        for tool, arguments in self._done:
            result = group.call(tool, arguments)
            if result.error is not None:
                group.close()
                raise RolloutFailedError(f"replaying {tool} after a framework failure failed: {result.error.message}")
        if expected is not None and group.hash() != expected:
            group.close()
            raise RolloutFailedError("the reopened session does not start from the rollout's initial state")
        self.group = group

    def call(self, tool: str, arguments: JSONObject) -> ToolResult:
        """See `RolloutSession.call`. A framework error kind reopens the group, replays the successful calls
        and sends the call again, up to `policy.retries` times with linear backoff; then the rollout fails."""
        if self.failure is not None:
            return _failed_result(tool, self.calls, self.failure)
        self.calls += 1
        attempt = 0
        while True:
            result = self.group.call(tool, arguments)
            if result.error is None or result.error.kind not in FRAMEWORK_ERROR_KINDS:
                if result.error is None:
                    self._done.append((tool, arguments))
                return result
            cause = f"{result.error.kind}: {result.error.message}"
            if attempt < self.policy.retries:
                attempt += 1
                self.retries += 1
                time.sleep(self.policy.backoff_s * attempt)
                try:
                    self._rebuild()
                    continue
                except RolloutFailedError as exc:
                    cause = str(exc)
            self.failure = f"{tool}: {cause} (after {attempt + 1} attempt(s))"
            return _failed_result(tool, self.calls - 1, self.failure)

    def reward(self, messages: Sequence[Message] | None = None) -> Reward:
        """See `RolloutSession.reward`: `task_reward` on this group."""
        if self.failure is not None:
            raise RolloutFailedError(self.failure)
        return task_reward(self.task, self.group, messages=messages)

    def close(self) -> None:
        """Close the session group."""
        self.group.close()


@dataclass
class LocalSessions:
    """Sessions in this process; environments are loaded once per name (`loader(name)`)."""

    loader: Any = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    _envs: dict[str, Environment] = field(default_factory=dict)

    def environment(self, name: str) -> Environment:
        """The environment `name` via `loader` (default `runtime.load_env`), loaded once and kept."""
        if name not in self._envs:
            self._envs[name] = (self.loader or load_env)(name)
        return self._envs[name]

    def open(self, task: Task, seed: int) -> LocalRolloutSession:
        """A `LocalRolloutSession` over a session group of the task's environments, on the task's initial
        state with `seed`."""
        envs = [self.environment(ref.name) for ref in task.envs]

        def reopen() -> SessionGroup:
            return open_group(envs, task.initial_state, seed, naming=task.tool_naming)

        return LocalRolloutSession(task, reopen(), self.policy, reopen)

    def close(self) -> None:
        """Forget the loaded environments."""
        self._envs.clear()


# -- over HTTP -----------------------------------------------------------------------------------------------


_TRANSPORT = (httpx.TransportError,)


@dataclass
class HttpRolloutSession:
    """A session on an env server; recreated and replayed when the server loses it."""

    client: EnvClient
    task: Task
    seed: int
    policy: RetryPolicy
    remote: RemoteSession | None = None
    failure: str | None = None
    retries: int = 0
    calls: int = 0
    _done: list[tuple[str, JSONObject]] = field(default_factory=list)
    _hash: str | None = None
    _tools: list[ToolSpec] = field(default_factory=list)

    @property
    def tools(self) -> list[ToolSpec]:
        """The remote session's tools, as read by `start()` (a copy)."""
        return list(self._tools)

    def start(self) -> None:
        """Create the remote session and read its tools; raises `SessionRefusedError` naming the fix."""
        self.remote = self._create()
        self._tools = self.remote.tools()

    def _create(self) -> RemoteSession:
        try:
            return self.client.create_session(task=self.task, seed=self.seed)
        except RemoteError as exc:
            raise SessionRefusedError(
                f"the env server refused a session for task {self.task.id[:12]} ({exc}); serve the task's "
                f"environments ({', '.join(r.name for r in self.task.envs)}) with `envfactory serve --http --env NAME`, "
                "or raise --max-sessions"
            ) from exc

    def _recover(self, cause: str) -> None:
        """Reopen the session after the server lost it, replaying the successful calls so far."""
        session = self._create()
        last = None
        for tool, arguments in self._done:
            response = session.call_with_hash(tool, arguments)
            if response.result.error is not None:
                raise RolloutFailedError(f"replay after {cause} failed at {tool}: {response.result.error.message}")
            last = response.state_hash
        if last is not None and self._hash is not None and last != self._hash:
            raise RolloutFailedError(f"replay after {cause} reached state {last[:12]}, not {self._hash[:12]}")
        self.remote = session

    def _attempt(self, tool: str, arguments: JSONObject) -> tuple[ToolResult, str | None]:
        assert self.remote is not None
        response = self.remote.call_with_hash(tool, arguments)
        return response.result, response.state_hash

    def call(self, tool: str, arguments: JSONObject) -> ToolResult:
        """See `RolloutSession.call`. A framework error kind, a transport failure or a lost session (404, 410,
        5xx) recreates the session and replays the successful calls (checking the state hash) before the call is
        sent again, up to `policy.retries` times; another `RemoteError` is raised."""
        if self.failure is not None:
            return _failed_result(tool, self.calls, self.failure)
        self.calls += 1
        attempt = 0
        while True:
            cause = None
            try:
                if self.remote is None:
                    self._recover("a lost session")
                result, state_hash = self._attempt(tool, arguments)
                if result.error is None or result.error.kind not in FRAMEWORK_ERROR_KINDS:
                    if result.error is None:
                        self._done.append((tool, arguments))
                    self._hash = state_hash or self._hash
                    return result
                cause = f"{result.error.kind}: {result.error.message}"
            except _TRANSPORT as exc:
                cause = f"env server unreachable ({type(exc).__name__}: {exc})"
                self.remote = None
            except RemoteError as exc:
                if exc.status not in (404, 410, 500, 502, 503):
                    raise
                cause = f"env server answered {exc.status} {exc.code}: {exc}"
                self.remote = None
            except (RolloutFailedError, SessionRefusedError) as exc:
                cause = str(exc)
                self.remote = None
            if attempt >= self.policy.retries:
                self.failure = f"{tool}: {cause} (after {attempt + 1} attempt(s))"
                return _failed_result(tool, self.calls - 1, self.failure)
            attempt += 1
            self.retries += 1
            time.sleep(self.policy.backoff_s * attempt)

    def reward(self, messages: Sequence[Message] | None = None) -> Reward:
        """See `RolloutSession.reward`: the server's `/reward` for this task and `messages`, retried like
        `call`; raises `RolloutFailedError` once the retries are spent."""
        if self.failure is not None:
            raise RolloutFailedError(self.failure)
        attempt = 0
        while True:
            try:
                if self.remote is None:
                    self._recover("a lost session")
                assert self.remote is not None
                return self.remote.reward(self.task, list(messages) if messages else None)
            except (*_TRANSPORT, RemoteError, RolloutFailedError, SessionRefusedError) as exc:
                self.remote = None
                if attempt >= self.policy.retries:
                    cause = (f"env server unreachable ({type(exc).__name__}: {exc})" if isinstance(exc, _TRANSPORT)
                             else f"{type(exc).__name__}: {exc}")
                    self.failure = f"reward: {cause} (after {attempt + 1} attempt(s))"
                    raise RolloutFailedError(self.failure) from exc
                attempt += 1
                self.retries += 1
                time.sleep(self.policy.backoff_s * attempt)

    def close(self) -> None:
        """Close the remote session; a server that is gone or already closed it is not an error."""
        if self.remote is not None:
            try:
                self.remote.close()
            except (*_TRANSPORT, RemoteError):
                pass  # the server is gone or already closed it: nothing is left to release
            self.remote = None


@dataclass
class HttpSessions:
    """Sessions on `envfactory serve --http` at `base_url`."""

    base_url: str
    token: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0
    _client: EnvClient | None = None

    @property
    def client(self) -> EnvClient:
        """The `EnvClient` for `base_url`, created on first use and shared by the sessions."""
        if self._client is None:
            self._client = EnvClient(self.base_url, token=self.token, timeout_s=self.timeout_s)
        return self._client

    def check(self) -> None:
        """Fail early, naming the fix, when the server does not answer."""
        try:
            self.client.health()
        except _TRANSPORT as exc:
            raise SessionRefusedError(f"no env server answers at {self.base_url} ({exc}); start one with "
                                      "`envfactory serve --http --env NAME --port PORT`") from exc

    def open(self, task: Task, seed: int) -> HttpRolloutSession:
        """A started `HttpRolloutSession` (see `HttpRolloutSession.start` for its errors)."""
        session = HttpRolloutSession(self.client, task, seed, self.policy)
        session.start()
        return session

    def close(self) -> None:
        """Close the HTTP client (sessions opened through it can no longer be used)."""
        if self._client is not None:
            self._client.close()
            self._client = None
