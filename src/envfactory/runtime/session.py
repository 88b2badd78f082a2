"""Sessions: one isolated, deterministic episode over one environment (DESIGN §3).

Contract:
- `open_session(env, initial_state, seed)` → `Session`. Every call is validated before execution
  (compiled input schema) and after (compiled output schema); violations become typed error results,
  never silent passes. Calls are atomic: a failed call leaves the state untouched.
- The clock advances once per committed write, so replaying the successful calls of a session
  reproduces its state byte for byte.
- `snapshot`/`restore`/`fork` are cheap and independent: a fork never sees its parent's later writes.
- After `close()`, calls return `session_closed` results and state operations raise
  `SessionClosedError`.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from envfactory.errors import SandboxError, SessionClosedError, SpecError, StateLoadError, ToolError
from envfactory.runtime.backend import StateHandle
from envfactory.runtime.environment import Environment
from envfactory.runtime.sources import CallContext, ClockConfig
from envfactory.spec import (
    ErrorInfo,
    ErrorKind,
    Snapshot,
    StateDiff,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from envfactory.spec.base import trusted_construct
from envfactory.spec.tool import agent_error_kind

logger = logging.getLogger(__name__)

def _error(call_id: str, tool: str, step: int, kind: ErrorKind, message: str, path: str | None = None) -> ToolResult:
    info = trusted_construct(ErrorInfo, {"kind": kind, "message": message, "path": path})
    return trusted_construct(
        ToolResult,
        {"schema_version": 1, "call_id": call_id, "tool": tool, "output": None, "error": info, "step": step},
    )


class _LogEntry:
    """One call as recorded; the `ToolCall` model is built only when someone reads the log."""

    __slots__ = ("arguments", "call_id", "raw", "result", "tool")

    def __init__(self, call_id: str, tool: str, arguments: dict[str, Any] | None, raw: str | None, result: ToolResult) -> None:
        self.call_id = call_id
        self.tool = tool
        self.arguments = arguments
        self.raw = raw
        self.result = result

    def call(self) -> ToolCall:
        # The arguments object is shared with records in the state (never mutated there), so readers
        # of the log get a private copy.
        arguments = orjson.loads(orjson.dumps(self.arguments)) if self.arguments is not None else {}
        return trusted_construct(
            ToolCall,
            {
                "schema_version": 1,
                "id": self.call_id,
                "tool": self.tool,
                "arguments": arguments,
                "raw_arguments": self.raw,
            },
        )


class Session:
    """A live episode: state, injected sources and the call log. Use as a context manager."""

    def __init__(
        self,
        env: Environment,
        state: StateHandle,
        seed: int,
        clock: ClockConfig | None = None,
        *,
        ctx: CallContext | None = None,
        log: list[_LogEntry] | None = None,
    ) -> None:
        """A session of `env` on `state`, seeded with `seed` and clocked by `clock` (default: the epoch, one
        second per step). `ctx` and `log` continue another session's sources and call log (forks)."""
        self._env = env
        self._state: StateHandle | None = state
        self._seed = seed
        self._clock = clock or ClockConfig()
        self._ctx = ctx or CallContext(seed, self._clock)
        self._log: list[_LogEntry] = log if log is not None else []

    # -- introspection -----------------------------------------------------------------------------
    @property
    def env(self) -> Environment:
        """The environment this session runs."""
        return self._env

    @property
    def seed(self) -> int:
        """The seed of the session's RNG."""
        return self._seed

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return self._state is None

    @property
    def tools(self) -> list[ToolSpec]:
        """The environment's tool specs (a copy of the list)."""
        return list(self._env.spec.tools)

    @property
    def log(self) -> list[tuple[ToolCall, ToolResult]]:
        """The calls made so far, in order, with their results (a copy)."""
        return [(entry.call(), entry.result) for entry in self._log]

    @property
    def call_count(self) -> int:
        """How many calls the session has made (failed ones included)."""
        return len(self._log)

    def _last_entry(self) -> _LogEntry:
        """The most recent call's log entry (for `SessionGroup`'s log); IndexError when none was made."""
        return self._log[-1]

    def last_call(self) -> ToolCall:
        """The most recent call as recorded (arguments parsed); raises IndexError when none was made."""
        return self._log[-1].call()

    # -- calls ----------------------------------------------------------------------------------------
    def call(self, tool: str, arguments: Mapping[str, Any] | str | bytes | None = None, call_id: str | None = None) -> ToolResult:
        """Run one tool. Never raises for bad input: every problem is a typed error result."""
        step = len(self._log)
        cid = call_id if call_id is not None else f"call_{step}"
        parsed, raw, result = self._call(tool, arguments, cid, step)
        self._log.append(_LogEntry(cid, tool, parsed, raw, result))
        return result

    def _call(
        self, tool: str, arguments: Mapping[str, Any] | str | bytes | None, cid: str, step: int
    ) -> tuple[dict[str, Any] | None, str | None, ToolResult]:
        state = self._state
        if state is None:
            return None, None, _error(cid, tool, step, "session_closed", "the session is closed; open a new one")
        compiled = self._env.tools.get(tool)
        if compiled is None:
            return None, None, _error(cid, tool, step, "unknown_tool", self._unknown_tool_message(tool))
        raw: str | None = None
        try:
            if isinstance(arguments, str | bytes):
                raw = arguments if isinstance(arguments, str) else arguments.decode("utf-8", "replace")
                args: Any = orjson.loads(arguments)
            elif arguments is None:
                args = {}
            else:
                # A JSON round trip both copies the caller's data (so later mutation cannot reach the
                # state) and rejects values that are not JSON.
                args = orjson.loads(orjson.dumps(arguments))
        except orjson.JSONDecodeError as exc:
            return None, raw, _error(cid, tool, step, "invalid_arguments", f"arguments are not valid JSON: {exc}")
        except TypeError as exc:
            return None, raw, _error(cid, tool, step, "invalid_arguments", f"arguments are not JSON data: {exc}")
        if not isinstance(args, dict):
            return None, raw, _error(
                cid, tool, step, "invalid_arguments",
                f"arguments must be a JSON object, got {type(args).__name__}",
            )
        violation = compiled.input.check(args)
        if violation is not None:
            return args, raw, _error(
                cid, tool, step, "invalid_arguments", f"invalid arguments for {tool}: {violation.message}", violation.path
            )
        ctx = self._ctx
        checkpoint = ctx.rng_state()
        try:
            prepared = self._env.backend.execute(state, tool, args, ctx)
        except ToolError as exc:
            ctx.rollback_rng(checkpoint)
            kind = agent_error_kind(exc.kind)
            return args, raw, _error(cid, tool, step, kind, exc.message, exc.path)
        except StateLoadError:  # the session's own deferred initial state did not load (`open_session`)
            raise
        except SandboxError as exc:  # the worker running the tool died or timed out: a framework failure
            ctx.rollback_rng(checkpoint)
            return args, raw, _error(cid, tool, step, exc.kind, str(exc))
        except Exception as exc:  # a crash in an implementation is a bug: logged, reported, state untouched
            ctx.rollback_rng(checkpoint)
            logger.exception("tool %s of %s crashed", tool, self._env.name)
            return args, raw, _error(
                cid, tool, step, "execution_error", f"internal error in {tool}: {type(exc).__name__}: {exc}"
            )
        output = prepared.output
        violation = None if prepared.output_validated else compiled.output.check(output)
        if violation is not None:
            ctx.rollback_rng(checkpoint)
            logger.error("tool %s of %s violated its output schema: %s", tool, self._env.name, violation.message)
            return args, raw, _error(
                cid, tool, step, "execution_error",
                f"{tool} produced output that violates its declared output schema: {violation.message}",
            )
        if prepared.commit is not None:
            prepared.commit()
            ctx.step += 1
        else:
            ctx.rollback_rng(checkpoint)  # only committed writes may move the RNG
        result = trusted_construct(
            ToolResult,
            {"schema_version": 1, "call_id": cid, "tool": tool, "output": output, "error": None, "step": step},
        )
        return args, raw, result

    def plan(self, calls: list[tuple[str, Any]]) -> None:
        """A hint that `calls` ((tool, arguments) pairs) will probably be made next, in this order: a backend
        that can run calls ahead (a sandboxed one: one round trip for all of them) may do so. Results never
        change: a call takes a result run ahead only when it is exactly the call planned next on exactly the
        state and context that result was computed for. The backend's `plan(state, calls, ctx)` gets the
        session's context, so it may send the calls before the first is made (a sandboxed backend posts
        them: several sessions' plans then reach its worker in one write)."""
        plan = getattr(self._env.backend, "plan", None)
        if plan is not None and self._state is not None:
            plan(self._state, calls, self._ctx)

    def _unknown_tool_message(self, tool: str) -> str:
        names = sorted(self._env.tools)
        close = difflib.get_close_matches(tool, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; available: {', '.join(names)}"
        return f"unknown tool {tool!r} in environment {self._env.name}{hint}"

    # -- state ----------------------------------------------------------------------------------------
    def _live_state(self) -> StateHandle:
        if self._state is None:
            raise SessionClosedError(f"session of {self._env.name} is closed")
        return self._state

    def state_json(self) -> Any:
        """The current state as JSON (a fresh copy); `SessionClosedError` once closed."""
        return self._live_state().to_json()

    def hash(self) -> str:
        """The current state hash; `SessionClosedError` once closed."""
        return self._live_state().state_hash()

    def snapshot(self) -> Snapshot:
        """The state, its hash, the call count, clock step and seed as a `Snapshot`; `SessionClosedError` once
        closed."""
        state = self._live_state()
        # The state JSON is produced by the backend from validated state; validating it again as a
        # pydantic JSONValue would cost more than the dump itself.
        return trusted_construct(
            Snapshot,
            {
                "schema_version": 1,
                "env": self._env.spec.ref,
                "state": state.to_json(),
                "state_hash": state.state_hash(),
                "step": len(self._log),
                "clock_step": self._ctx.step,
                "seed": self._seed,
            },
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the state with a snapshot's (the call log is kept; the clock moves to the snapshot's)."""
        self._live_state()
        if snapshot.env != self._env.spec.ref:
            raise SpecError(f"snapshot of {snapshot.env} cannot be restored into {self._env.spec.ref}")
        handle = self._env.backend.load_state(snapshot.state)
        if handle.state_hash() != snapshot.state_hash:
            raise SpecError("snapshot state does not match its recorded hash (edited or corrupt)")
        self._state = handle
        self._ctx.step = snapshot.clock_step

    def fork(self) -> Session:
        """An independent session starting from this one's state, clock, RNG state and call log."""
        state = self._live_state()
        return Session(
            self._env, state.fork(), self._seed, self._clock, ctx=self._ctx.fork(), log=list(self._log)
        )

    def diff(self, other: Session | Snapshot) -> StateDiff:
        """Changes that turn this session's state into `other`'s."""
        mine = self._live_state()
        if isinstance(other, Session):
            theirs = other._live_state()
        else:
            theirs = self._env.backend.load_state(other.state)
        return self._env.backend.diff(mine, theirs)

    def close(self) -> None:
        """Drop the state (idempotent); later state access raises `SessionClosedError`."""
        self._state = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(
    env: Environment, initial_state: Any = None, seed: int = 0, clock: ClockConfig | None = None,
    *, defer_load: bool = False,
) -> Session:
    """Open an isolated session. `initial_state`: state JSON, a `Snapshot`, or `None` for the
    environment's default seed state. Raises `SpecError` when the state does not fit the environment.
    With `defer_load`, a backend that can load without waiting (a sandboxed one: `load_state_later`) sends
    the state and returns at once: the session's first call goes out right behind it (one round trip for
    both), and a state that does not fit raises `StateLoadError` (a `SpecError`) at the first call or state
    read instead of here. Results never change."""
    clock_step = 0
    expected_hash: str | None = None
    if isinstance(initial_state, Snapshot):
        if initial_state.env != env.spec.ref:
            raise SpecError(f"snapshot of {initial_state.env} cannot open a session of {env.spec.ref}")
        clock_step = initial_state.clock_step
        expected_hash = initial_state.state_hash
        initial_state = initial_state.state
    elif initial_state is None:
        initial_state = env.default_state()
    later = getattr(env.backend, "load_state_later", None) if defer_load and expected_hash is None else None
    handle = later(initial_state) if later is not None else env.backend.load_state(initial_state)
    if expected_hash is not None and handle.state_hash() != expected_hash:
        raise SpecError("snapshot state does not match its recorded hash (edited or corrupt)")
    ctx = CallContext(seed, clock or ClockConfig(), clock_step)
    return Session(env, handle, seed, clock, ctx=ctx)
