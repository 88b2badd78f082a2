"""The server-side session registry: one `ServedSession` record per live session, a cap, idle
bookkeeping and the memory of recently closed ids.

Contract:
- Everything about one session lives in its `ServedSession` (group, lock, timestamps, task, initial
  snapshots); the registry maps ids to records and nothing else.
- The registry is touched only from the server's event loop; it has no locks of its own. Each record
  has an `anyio.Lock` that every operation on the session holds, so calls on one session run one at a
  time while different sessions proceed independently.
- A removed id is remembered (up to `remember_closed` ids, oldest forgotten first) with the reason, so
  a late request is told "closed: <reason>" rather than "unknown".
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import anyio

from envfactory.runtime import SessionGroup
from envfactory.serve.errors import SessionCapError, SessionGoneError, UnknownSessionError
from envfactory.serve.models import Naming, Origin, SessionInfo
from envfactory.spec import Snapshot, Task


@dataclass(slots=True, eq=False)
class ServedSession:
    """One live session group and what the server knows about it."""

    id: str
    group: SessionGroup
    env_refs: tuple[str, ...]
    seed: int
    naming: Naming
    origin: Origin
    initial: dict[str, Snapshot]
    task: Task | None = None
    restart: dict[str, Snapshot] | None = None
    """The state of the last restore: the episode's start for rewards from then on (None: `initial`)."""
    parent: str | None = None
    in_process: bool = True
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    last_used: float = 0.0
    closed_reason: str | None = None

    def info(self) -> SessionInfo:
        """The session as the API describes it."""
        return SessionInfo(
            id=self.id, envs=list(self.env_refs), seed=self.seed, naming=self.naming, origin=self.origin,
            task_id=self.task.id if self.task is not None else None, parent=self.parent,
            tools=[tool.name for tool in self.group.tools], steps=len(self.group.log),
        )


class SessionRegistry:
    """The live sessions by id, and the reasons the last `remember_closed` closed ones were closed (so a
    late request hears 410 and why, not 404). Not thread-safe: the service uses it from its event loop."""
    def __init__(self, max_sessions: int, remember_closed: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """An empty registry holding at most `max_sessions` live sessions; `clock` stamps `last_used`."""
        self.max_sessions = max_sessions
        self._remember = remember_closed
        self._clock = clock
        self._live: dict[str, ServedSession] = {}
        self._closed: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[ServedSession]:
        return iter(list(self._live.values()))

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._live

    def ids(self) -> list[str]:
        """The live session ids, in opening order."""
        return list(self._live)

    def has_room(self) -> bool:
        """True while fewer than `max_sessions` sessions are live."""
        return len(self._live) < self.max_sessions

    def check_room(self) -> None:
        """Raise `SessionCapError` (503, naming the fix) when the registry is full."""
        if not self.has_room():
            raise SessionCapError(
                f"the server holds its maximum of {self.max_sessions} sessions; close one (DELETE "
                "/v1/sessions/{id}) or retry after idle sessions are reaped"
            )

    def add(self, session: ServedSession) -> None:
        """Register a live session (stamped as used now); `SessionCapError` when full, `ValueError` for an
        id used before."""
        if session.id in self._live or session.id in self._closed:
            raise ValueError(f"session id {session.id} was already used")
        self.check_room()
        session.last_used = self._clock()
        self._live[session.id] = session

    def get(self, session_id: str) -> ServedSession:
        """The live session `session_id`; `SessionGoneError` (410, with the reason) for a closed one,
        `UnknownSessionError` (404) for an id never opened."""
        session = self._live.get(session_id)
        if session is not None:
            return session
        reason = self._closed.get(session_id)
        if reason is not None:
            raise SessionGoneError(f"session {session_id} is closed ({reason}); open a new one")
        raise UnknownSessionError(f"unknown session {session_id!r}: no such session was opened on this server")

    def closed_reason(self, session_id: str) -> str | None:
        """Why the session was closed, or None (live, unknown, or forgotten)."""
        return self._closed.get(session_id)

    def remove(self, session_id: str, reason: str) -> ServedSession | None:
        """Forget a live session (the caller closes its group) and remember why."""
        session = self._live.pop(session_id, None)
        if session is None:
            return None
        session.closed_reason = reason
        if self._remember:
            self._closed[session_id] = reason
            while len(self._closed) > self._remember:
                self._closed.popitem(last=False)
        return session

    def touch(self, session: ServedSession) -> None:
        """Mark the session as used now (the idle reaper's clock)."""
        session.last_used = self._clock()

    def idle(self, timeout_s: float) -> list[ServedSession]:
        """Sessions with no request for `timeout_s` and none in progress."""
        cutoff = self._clock() - timeout_s
        return [s for s in self._live.values() if s.last_used <= cutoff and not s.lock.locked()]
