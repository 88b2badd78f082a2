"""Session groups: one episode over several environments with one seed (DESIGN §11).

Tools are exposed as `<env>__<tool>` (`naming="qualified"`, the default) or under their own names
(`naming="plain"`, refused when two environments share a tool name). Names must match
`^[A-Za-z0-9_-]{1,64}$`. The group keeps one ordered call log across environments; its hash is the
canonical hash of the per-environment hashes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any, Literal, cast

from envfactory.errors import SessionClosedError, SpecError
from envfactory.runtime.environment import Environment
from envfactory.runtime.session import Session, _error, _LogEntry, open_session
from envfactory.runtime.sources import ClockConfig
from envfactory.spec import Snapshot, StateDiff, ToolCall, ToolResult, ToolSpec, content_hash
from envfactory.spec.base import trusted_construct

SEPARATOR = "__"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
Naming = Literal["qualified", "plain"]


def qualified_name(env: str, tool: str) -> str:
    """A tool's name within a session group: `<env><SEPARATOR><tool>`."""
    return f"{env}{SEPARATOR}{tool}"


class SessionGroup:
    """Several sessions driven as one episode."""

    def __init__(self, sessions: Mapping[str, Session], naming: Naming = "qualified",
                 log: list[tuple[ToolCall, ToolResult]] | None = None) -> None:
        """A group over `sessions` (environment name → session). With `qualified` naming tools are exposed as
        `<env>__<tool>`; `SpecError` when the group is empty, a name is not a valid tool name or two plain names
        collide. `log`: the group's call log so far (for forks)."""
        if not sessions:
            raise SpecError("a session group needs at least one environment")
        self._sessions = dict(sessions)
        self._naming = naming
        self._routes, self._tools = _routes(self._sessions, naming)
        # Read through `log`, which builds each `_Entry`'s ToolCall: a given list is kept (and appended to) as before.
        self._log: list[tuple[ToolCall, ToolResult] | _Entry] = cast(Any, log) if log is not None else []
        self._closed = False

    @property
    def naming(self) -> Naming:
        """`qualified` or `plain`: how tool names are exposed."""
        return self._naming

    @property
    def sessions(self) -> dict[str, Session]:
        """The sessions by environment name (a copy of the mapping)."""
        return dict(self._sessions)

    @property
    def tools(self) -> list[ToolSpec]:
        """Tool specs under their group names."""
        return list(self._tools)

    @property
    def log(self) -> list[tuple[ToolCall, ToolResult]]:
        """Every call made through the group with its result, in order (a copy)."""
        return [entry.pair() if isinstance(entry, _Entry) else entry for entry in self._log]

    def route(self, name: str) -> tuple[str, str] | None:
        """(environment, tool) behind a group tool name, or None."""
        return self._routes.get(name)

    def call(self, name: str, arguments: Mapping[str, Any] | str | bytes | None = None) -> ToolResult:
        """Run a tool by its group name; never raises for bad input (typed error results instead)."""
        step = len(self._log)
        cid = f"call_{step}"
        route = self._routes.get(name)
        if self._closed or route is None:
            if self._closed:
                result = _error(cid, name, step, "session_closed", "the session group is closed")
            else:
                known = ", ".join(sorted(self._routes))
                result = _error(cid, name, step, "unknown_tool", f"unknown tool {name!r}; available: {known}")
            call = ToolCall.model_construct(schema_version=1, id=cid, tool=name, arguments={}, raw_arguments=None)
        else:
            session = self._sessions[route[0]]
            inner = session.call(route[1], arguments, call_id=cid)
            # The session's result and call under the group's tool name and step: the same fields as a
            # `model_copy(update=...)`, built without pydantic's copy machinery (a hot path: every call
            # of synthesis and evaluation goes through a group).
            result = trusted_construct(ToolResult, {**inner.__dict__, "tool": name, "step": step})
            self._log.append(_Entry(session._last_entry(), name, result))
            return result
        self._log.append((call, result))
        return result

    def plan(self, calls: list[tuple[str, Any]]) -> None:
        """A hint that `calls` ((group tool name, arguments) pairs) will probably be made next, in this order
        (`Session.plan`, per environment); names the group does not have are left out."""
        if self._closed:
            return
        per_session: dict[str, list[tuple[str, Any]]] = {}
        for name, arguments in calls:
            route = self._routes.get(name)
            if route is not None:
                per_session.setdefault(route[0], []).append((route[1], arguments))
        for env_name, planned in per_session.items():
            self._sessions[env_name].plan(planned)

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError("the session group is closed")

    def hash(self) -> str:
        """The content hash of the per-environment hashes; `SessionClosedError` once closed."""
        self._check_open()
        return content_hash({env: s.hash() for env, s in self._sessions.items()})

    def hashes(self) -> dict[str, str]:
        """Each environment's state hash; `SessionClosedError` once closed."""
        self._check_open()
        return {env: s.hash() for env, s in self._sessions.items()}

    def snapshot(self) -> dict[str, Snapshot]:
        """Each environment's `Snapshot`; `SessionClosedError` once closed."""
        self._check_open()
        return {env: s.snapshot() for env, s in self._sessions.items()}

    def restore(self, snapshots: Mapping[str, Snapshot]) -> None:
        """Restore every session from `snapshots`; `SpecError` when an environment of the group has none."""
        self._check_open()
        missing = sorted(set(self._sessions) - set(snapshots))
        if missing:
            raise SpecError(f"no snapshot for environments {missing}")
        for env, session in self._sessions.items():
            session.restore(snapshots[env])

    def fork(self) -> SessionGroup:
        """An independent group continuing from this one's states, clocks, RNGs and call log."""
        self._check_open()
        group = SessionGroup({env: s.fork() for env, s in self._sessions.items()}, self._naming)
        group._log = list(self._log)  # entries are never changed: the fork shares them
        return group

    def diff(self, other: SessionGroup) -> dict[str, StateDiff]:
        """Per environment, the difference from this group's states to `other`'s (a group over the same envs)."""
        self._check_open()
        return {env: s.diff(other._sessions[env]) for env, s in self._sessions.items()}

    def close(self) -> None:
        """Close every session (idempotent); later calls raise `SessionClosedError`."""
        for session in self._sessions.values():
            session.close()
        self._closed = True

    def __enter__(self) -> SessionGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Entry:
    """A call made through the group, recorded as the session's log entry under the group's tool name; the
    `ToolCall` is built (once) when someone reads the log."""

    __slots__ = ("_call", "_entry", "_name", "result")

    def __init__(self, entry: _LogEntry, name: str, result: ToolResult) -> None:
        self._entry = entry
        self._name = name
        self.result = result
        self._call: ToolCall | None = None

    def pair(self) -> tuple[ToolCall, ToolResult]:
        if self._call is None:
            self._call = trusted_construct(ToolCall, {**self._entry.call().__dict__, "tool": self._name})
        return self._call, self.result


_Routes = tuple[dict[str, tuple[str, str]], list[ToolSpec]]
# Routes and tool specs by naming and (environment, spec content hash) pairs: a group over environments
# seen before takes them instead of deriving them again (both are only read). Bounded, oldest dropped.
_ROUTES: dict[tuple[str, tuple[tuple[str, str], ...]], _Routes] = {}
_ROUTES_LIMIT = 256


def _routes(sessions: dict[str, Session], naming: Naming) -> _Routes:
    """Each group tool name's (environment, tool) and the tool specs under group names; `SpecError` for an
    invalid or colliding name."""
    hashes = tuple((env_name, session.env.spec.content_hash) for env_name, session in sessions.items())
    key = (naming, hashes) if all(content for _, content in hashes) else None
    cached = _ROUTES.get(key) if key is not None else None
    if cached is not None:
        return cached
    routes: dict[str, tuple[str, str]] = {}
    tools: list[ToolSpec] = []
    for env_name, session in sessions.items():
        for spec in session.env.spec.tools:
            name = qualified_name(env_name, spec.name) if naming == "qualified" else spec.name
            if not _NAME.match(name):
                raise SpecError(f"tool name {name!r} does not match ^[A-Za-z0-9_-]{{1,64}}$ (shorten the env or tool name)")
            if name in routes:
                other = routes[name][0]
                raise SpecError(f"tool {name!r} exists in both {other} and {env_name}; use qualified naming")
            routes[name] = (env_name, spec.name)
            # Specs are frozen: under its own name (plain naming) the environment's spec is shared.
            tools.append(spec if name == spec.name else spec.model_copy(update={"name": name}))
    if key is not None:
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # a cache: a racing thread is harmless
            while len(_ROUTES) >= _ROUTES_LIMIT:
                _ROUTES.pop(next(iter(_ROUTES)))
        _ROUTES[key] = (routes, tools)
    return routes, tools


def open_group(
    envs: list[Environment],
    initial_states: Mapping[str, Any] | None = None,
    seed: int = 0,
    naming: Naming = "qualified",
    clock: ClockConfig | None = None,
    *,
    defer_loads: bool = False,
) -> SessionGroup:
    """Open one session per environment (same seed) and group them. `defer_loads`: `open_session`'s
    `defer_load` for every session (each sandboxed worker validates its state while the others are sent
    theirs; a state that does not fit raises `StateLoadError` where it is first used)."""
    names = [env.name for env in envs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"environments listed twice: {duplicates}")
    states = dict(initial_states or {})
    unknown = sorted(set(states) - set(names))
    if unknown:
        raise SpecError(f"initial states for environments not in the group: {unknown}")
    return SessionGroup(
        {env.name: open_session(env, states.get(env.name), seed, clock, defer_load=defer_loads) for env in envs},
        naming,
    )
