"""In-process BFCL backends that keep each session's backend instance alive between calls (trusted only).

Contract:
- `live_environment(toolkit, meta)` is the in-process environment of one BFCL adapter toolkit
  (`eval.bfcl_toolkit`): the same spec (derived from the toolkit by `PythonBackend`), the same tools,
  arguments checked and converted the same way, and the same state JSON and hashes as
  `runtime.toolkit.python_environment(toolkit, meta)`, byte for byte (tests compare them on every gold
  trajectory). What differs is the cost: a session's state is held as its scenario, its calls and the
  live backend instance, so a call runs one method on that instance (no state copy, no replay, no
  revalidation), and the state JSON (whose `attributes` are the instance's public attributes) and its
  hash are computed only when someone reads them, then kept until the next call.
- Calls stay atomic: a call runs on a working copy that takes the handle's instance; the copy replaces
  the handle's state on commit. A call that is never committed leaves the handle without an instance,
  and the handle rebuilds it from its scenario and calls when next used (the backends are deterministic
  given both). A fork shares the calls and the JSON read so far and rebuilds its own instance.
- BFCL's backends evaluate model-provided values in the calling process: `eval.bfcl.bfcl_environments`
  builds these only for `trusted=True` (benchmark data: gold replay, agreement runs, speed measurements).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson

from envfactory.errors import SpecError, ToolError
from envfactory.eval.bfcl_toolkit import (
    BfclState,
    BfclToolkit,
    new_instance,
    parse_scenario,
    public_attributes,
    run_call,
)
from envfactory.runtime import Environment
from envfactory.runtime.backend import PreparedCall, StateHandle
from envfactory.runtime.sources import CallContext
from envfactory.runtime.toolkit import PythonBackend
from envfactory.spec import EnvMeta, content_hash

__all__ = ["LiveBfclBackend", "LiveBfclState", "live_environment"]


class LiveBfclState:
    """A session's BFCL state: scenario, calls so far, and (lazily) the live instance, its JSON and hash."""

    __slots__ = ("_hash", "_instance", "_json", "backend", "calls", "long_context", "scenario")

    def __init__(self, backend: str, scenario: str, long_context: bool, calls: tuple[tuple[str, dict[str, Any]], ...],
                 instance: Any = None, state_json: Any = None, state_hash: str | None = None) -> None:
        """A state of `backend` loaded with `scenario` (JSON text) after `calls` ((method, arguments) pairs);
        `instance` is the live backend instance at that point, if one is at hand; `state_json` and
        `state_hash` are the state's JSON and hash when already known."""
        self.backend = backend
        self.scenario = scenario
        self.long_context = long_context
        self.calls = calls
        self._instance = instance
        self._json = state_json
        self._hash = state_hash

    def _live(self) -> Any:
        if self._instance is None:
            instance = new_instance(self.backend, parse_scenario(self.scenario), self.long_context, owned=True)
            for name, arguments in self.calls:
                run_call(instance, name, arguments)
            self._instance = instance
        return self._instance

    def _state_json(self) -> Any:
        if self._json is None:
            self._json = {
                "backend": self.backend, "scenario": self.scenario, "long_context": self.long_context,
                "calls": [{"name": name, "arguments": arguments} for name, arguments in self.calls],
                "attributes": public_attributes(self._live()),
            }
        return self._json

    def take(self) -> LiveBfclState:
        """A working copy for one call: it takes this handle's instance (rebuilt later if never given back)."""
        instance = self._live()
        self._instance = None
        return LiveBfclState(self.backend, self.scenario, self.long_context, self.calls, instance)

    def run(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one backend method on the live instance and record the call (what `BfclToolkit.invoke` asks of
        a working copy); the state's JSON and hash are recomputed when next read."""
        output = run_call(self._live(), name, arguments)
        self.calls = (*self.calls, (name, arguments))
        self._json = self._hash = None
        return output

    def give_back(self, work: LiveBfclState) -> None:
        """Take the instance back from a working copy whose call failed before running anything on it."""
        if work.calls is self.calls and self._instance is None:
            self._instance = work._instance

    def install(self, work: LiveBfclState) -> None:
        """Adopt a committed working copy's calls and instance."""
        self.calls, self._instance, self._json, self._hash = work.calls, work._instance, None, None

    def fork(self) -> LiveBfclState:
        """An independent state with the same calls; it rebuilds its own instance when it needs one."""
        return LiveBfclState(self.backend, self.scenario, self.long_context, self.calls, None, self._json, self._hash)

    def to_json(self) -> Any:
        """The state as `BfclState` JSON (a fresh copy). Unless it is at hand already, it is built afresh and
        not kept: `public_attributes` gives new objects, so no copy of them is needed."""
        if self._json is not None:
            return orjson.loads(orjson.dumps(self._json))
        calls = orjson.loads(orjson.dumps([{"name": name, "arguments": arguments} for name, arguments in self.calls]))
        return {"backend": self.backend, "scenario": self.scenario, "long_context": self.long_context,
                "calls": calls, "attributes": public_attributes(self._live())}

    def state_hash(self) -> str:
        """The content hash of the state JSON (computed once per state)."""
        if self._hash is None:
            self._hash = content_hash(self._state_json())
        return self._hash


class LiveBfclBackend(PythonBackend[BfclState]):
    """`PythonBackend` of a BFCL adapter toolkit whose states are `LiveBfclState`s (module docstring)."""

    # A state hashes only when read: `eval.bfcl.execute` leaves per-call hashes to a replay on first use.
    lazy_hashes = True

    # The runtime takes any `StateHandle` from `Backend.load_state`; `PythonBackend` narrows it to its own.
    def load_state(self, state: Any) -> LiveBfclState:  # type: ignore[override]
        """Validate state JSON against `BfclState` (as `PythonBackend` does) and hold it as a live state."""
        model = super().load_state(state).model
        return LiveBfclState(
            model.backend, model.scenario, model.long_context,
            tuple((call.name, call.arguments) for call in model.calls), None,
            model.model_dump(mode="json", by_alias=True),
        )

    def execute(self, state: StateHandle, tool: str, arguments: dict[str, Any], ctx: CallContext) -> PreparedCall:
        """Run `tool` on a working copy of `state` (the tool methods of the toolkit, converted arguments as in
        `PythonBackend`); `commit()` installs the copy. `ToolError` for an unknown tool or refused arguments."""
        compiled = self._tools.get(tool)
        if compiled is None:
            raise ToolError("unknown_tool", f"{tool} is not a tool of {self.spec.meta.name}")
        if not isinstance(state, LiveBfclState):
            raise TypeError(f"{self.spec.meta.name} cannot run on a {type(state).__name__}")
        kwargs = compiled.convert(arguments)
        work = state.take()
        toolkit: Any = self.toolkit.bind(work, ctx)  # type: ignore[arg-type]  # BfclToolkit.invoke runs it
        try:
            output = compiled.run(toolkit, kwargs)
        except BaseException:
            state.give_back(work)
            raise
        return PreparedCall(output=output, commit=partial(state.install, work))


def live_environment(toolkit: type[BfclToolkit], meta: EnvMeta) -> Environment:
    """The in-process environment of a BFCL adapter toolkit with live states (trusted: benchmark data only)."""
    if not issubclass(toolkit, BfclToolkit):
        raise SpecError(f"{meta.name}: {toolkit.__qualname__} is not a BFCL adapter toolkit")
    return Environment.create(LiveBfclBackend(toolkit, meta))
