"""Per-call state diffs of an episode: what each state-changing call did, recorded while it runs.

Contract:
- `WriteDiffs(group)` makes calls through `group` (`call(name, arguments)`, the same as
  `SessionGroup.call`) and, when a call changed its environment's state (the environment's state hash
  moved), returns with the result a `CallStateDiff`: the backend's structured diff (`Session.diff`) from
  the state just before the call to the state after it. A call that changed nothing gives None.
- Cost: a read costs two hash reads of its environment. The state before a call is kept as a fork of the
  session, made at the first call of that environment and again after every change, so a write costs one
  fork and one diff (declarative forks are copy-on-write, and their diff skips untouched collections).
- A state changed outside the recorder (a user-only tool, a restore) is noticed by its hash and forked
  again before the next call, so such a change is never attributed to that call.
- `close()` releases the kept forks; the group itself stays the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envfactory.errors import SessionClosedError
from envfactory.runtime.group import SessionGroup
from envfactory.runtime.session import Session
from envfactory.spec import CallStateDiff, ToolResult


class WriteDiffs:
    """Runs calls through a session group and records the state diff of each call that changed state."""

    def __init__(self, group: SessionGroup) -> None:
        """Record over `group`; nothing is recorded until calls run through `call`."""
        self._group = group
        self._before: dict[str, tuple[str, Session]] = {}

    def call(self, name: str, arguments: Mapping[str, Any] | str | bytes | None = None
             ) -> tuple[ToolResult, CallStateDiff | None]:
        """Run `name` in the group (never raises for bad input); the result and the call's state diff."""
        route = self._group.route(name)
        if route is None:
            return self._group.call(name, arguments), None
        env = route[0]
        session = self._group.sessions[env]
        try:
            start = session.hash()
        except SessionClosedError:
            return self._group.call(name, arguments), None
        kept = self._before.get(env)
        if kept is None or kept[0] != start:
            self._replace(env, start, session)
        result = self._group.call(name, arguments)
        end = session.hash()
        if end == start:
            return result, None
        diff = self._before[env][1].diff(session)
        self._replace(env, end, session)
        if diff.empty:
            return result, None
        return result, CallStateDiff(call_id=result.call_id, env=env, changes=list(diff.changes))

    def _replace(self, env: str, state_hash: str, session: Session) -> None:
        old = self._before.get(env)
        self._before[env] = (state_hash, session.fork())
        if old is not None:
            old[1].close()

    def close(self) -> None:
        """Release the forks kept as the states before the next calls."""
        for _, fork in self._before.values():
            fork.close()
        self._before.clear()
