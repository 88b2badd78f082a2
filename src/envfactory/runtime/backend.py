"""The contract between sessions and environment implementations.

A `Backend` is the executable form of one environment, shared by every session of it and holding no
episode state. Each session owns a `StateHandle`. `execute` must not change the handle: it returns a
`PreparedCall` whose `commit()` applies the change, so the session can refuse a result that violates
its output schema and leave the state untouched (calls are atomic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from envfactory.runtime.sources import CallContext
from envfactory.spec import EnvSpec, StateDiff


class StateHandle(Protocol):
    """One session's state."""

    def fork(self) -> StateHandle:
        """An independent copy; must be cheap (copy-on-write where possible)."""
        ...

    def to_json(self) -> Any:
        """The state as plain JSON data (a fresh structure the caller may keep)."""
        ...

    def state_hash(self) -> str:
        """Canonical hex digest: equal exactly for equal states, independent of key order."""
        ...


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """The outcome of a call, not yet applied. `commit` is `None` for calls that change nothing.

    `output_validated` is set by backends that have already validated `output` against the tool's
    declared output schema with a compiled validator (the declarative engine validates every record it
    writes against the record schema, which is the derived output schema), so the session does not
    validate the same bytes twice. Backends must not set it otherwise.
    """

    output: Any
    commit: Callable[[], None] | None = None
    output_validated: bool = False


class Backend(Protocol):
    """The executable form of one environment (see the module docstring): its spec, state loading, call
    execution and state diffs; shared by sessions, holding no episode state."""
    @property
    def spec(self) -> EnvSpec:
        """The environment's spec (sealed: its content hash is set)."""

    def load_state(self, state: Any) -> StateHandle:
        """Validate state JSON (`None`: the empty state) and build a handle; raises `SpecError`."""
        ...

    def execute(self, state: StateHandle, tool: str, arguments: dict[str, Any], ctx: CallContext) -> PreparedCall:
        """Run one tool on validated arguments; raises `ToolError` for anticipated failures."""
        ...

    def diff(self, before: StateHandle, after: StateHandle) -> StateDiff:
        """Structured difference between two states of this environment."""
        ...
