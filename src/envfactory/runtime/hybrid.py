"""Hybrid environments: a declarative model plus authored python tools over the same state.

Contract:
- The declarative part (collections, CRUD tools) runs in this process on the trusted engine. The
  authored tools (`AuthoredCode`, written by an LLM for operations that are not CRUD) run only in a
  sandbox worker: loading a hybrid environment without a `SandboxPool` raises `SandboxRequiredError`,
  whatever the caller's trust.
- One state: the declarative state JSON (`{"collections": {name: {key: record}}, "counters": {...}}`).
  An authored call gets that JSON in the worker, as the preamble's `State` model; the state it leaves
  is revalidated by the declarative engine (record schemas, references, unique fields) before the call
  may commit. A state that breaks the model is a `ToolCrash` (`execution_error`), and the session's
  state is untouched, as for every failed call.
- Parity, checked at load: every authored tool exists in the worker's derived toolkit with the same
  effect; every argument the public (API) schema requires is a method parameter, and every method
  parameter is an API argument. Optional API arguments the method lacks are declared in
  `AuthoredCode.unsupported_arguments` (a load error if the declaration is wrong); a call passing one
  is refused with `invalid_arguments` naming it, so an agent is never answered as if it had been used.
- `authored_module(model, class_name, body)` writes the module: a fixed preamble (the state model
  and helpers: `records`, `record`, `put`, `remove`, `new_key`, `now`) followed by the authored
  class. Collection names and id prefixes enter the preamble only as a JSON literal of values the
  declarative format already restricts to `[A-Za-z0-9_-]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envfactory.errors import SandboxRequiredError, SpecError, ToolCrash, ToolError
from envfactory.runtime.backend import PreparedCall
from envfactory.runtime.declarative import DeclarativeBackend
from envfactory.runtime.declarative.compile import check_sealed
from envfactory.runtime.declarative.records import RecordStore
from envfactory.runtime.sources import CallContext
from envfactory.spec import (
    DeclarativeImplementation,
    DeclarativeModel,
    EnvSpec,
    HybridImplementation,
    PythonImplementation,
    StateDiff,
)

if TYPE_CHECKING:
    from envfactory.runtime.sandbox import SandboxBackend, SandboxPool

__all__ = ["AUTHORED_BASE", "HybridBackend", "HybridState", "authored_module", "declarative_part"]

AUTHORED_BASE = "AuthoredBase"

_PREAMBLE = '''"""Authored tools (untrusted: run only in an envfactory sandbox worker).

The preamble up to the authored class is written by envfactory; the class after it by the author."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envfactory.runtime.toolkit import Toolkit, tool

_KEYS: dict[str, list[Any]] = __KEYS__


class State(BaseModel):
    """The declarative state: records per collection (by key) and the id counters."""

    model_config = ConfigDict(extra="forbid")
    collections: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    counters: dict[str, int] = Field(default_factory=dict)


class AuthoredBase(Toolkit[State]):
    """Helpers over the shared state; a record is a JSON object holding its own key field."""

    def records(self, collection: str) -> dict[str, dict[str, Any]]:
        """The records of `collection` by key (a live mapping: write through `put`/`remove`)."""
        if collection not in _KEYS:
            raise KeyError(f"unknown collection {collection!r}")
        return self.state.collections.setdefault(collection, {})

    def record(self, collection: str, key: str) -> dict[str, Any] | None:
        """A copy of one record, or None."""
        found = self.records(collection).get(key)
        return None if found is None else dict(found)

    def put(self, collection: str, record: dict[str, Any]) -> None:
        """Store `record` under the key it holds."""
        key_field = _KEYS[collection][0]
        self.records(collection)[str(record[key_field])] = record

    def remove(self, collection: str, key: str) -> None:
        self.records(collection).pop(key, None)

    def new_key(self, collection: str) -> str:
        """The next generated key of `collection` (the same sequence the declarative tools use)."""
        _, prefix, width = _KEYS[collection]
        counter = self.state.counters.get(collection, 0)
        existing = self.records(collection)
        while True:
            counter += 1
            key = f"{prefix}{counter:0{width}d}"
            if key not in existing:
                self.state.counters[collection] = counter
                return key

    def now(self) -> str:
        """The session clock, ISO-8601 UTC."""
        return self.ctx.now_iso()


# ---- authored ----
'''


def authored_module(model: DeclarativeModel, body: str) -> str:
    """The full module of a hybrid environment's authored tools: preamble + the authored class."""
    keys = {name: [decl.key, decl.id_prefix, decl.id_width] for name, decl in sorted(model.collections.items())}
    # json.dumps of pattern-restricted names and prefixes: a valid python literal, never spec prose.
    return _PREAMBLE.replace("__KEYS__", json.dumps(keys, sort_keys=True)) + body.strip() + "\n"


def declarative_part(spec: EnvSpec) -> EnvSpec:
    """The sealed declarative environment inside a hybrid one (its CRUD tools only)."""
    impl = spec.implementation
    if not isinstance(impl, HybridImplementation):
        raise SpecError(f"{spec.meta.name} is not a hybrid environment")
    authored = set(impl.authored.tools)
    return EnvSpec(
        meta=spec.meta, state_schema=spec.state_schema,
        tools=[t for t in spec.tools if t.name not in authored],
        implementation=DeclarativeImplementation(model=impl.model),
    ).seal()


class HybridState:
    """A hybrid session's state handle: the declarative record store (replaced on authored commits)."""

    __slots__ = ("store",)

    def __init__(self, store: RecordStore) -> None:
        """The hybrid state is the declarative part's store; authored tools see it as JSON."""
        self.store = store

    def fork(self) -> HybridState:
        """A copy-on-write fork of the store."""
        return HybridState(self.store.fork())

    def to_json(self) -> Any:
        """The store's state JSON (a fresh copy)."""
        return self.store.to_json()

    def state_hash(self) -> str:
        """The store's state hash."""
        return self.store.state_hash()


class HybridBackend:
    """Runs a hybrid environment: declarative tools here, authored tools in a sandbox worker."""

    def __init__(self, spec: EnvSpec, sandbox: SandboxPool | None, directory: Path) -> None:
        """Compile the declarative part and start the authored module in a worker of `sandbox`. Raises
        `SpecError` for a non-hybrid spec or a parity mismatch between authored code and spec, and
        `SandboxRequiredError` when `sandbox` is None (authored code never runs in this process)."""
        impl = spec.implementation
        if not isinstance(impl, HybridImplementation):
            raise SpecError(f"{spec.meta.name} is not a hybrid environment")
        if sandbox is None:
            raise SandboxRequiredError(
                f"{spec.meta.name}: its authored tools ({', '.join(impl.authored.tools)}) are untrusted code and "
                "run only in sandbox workers: pass a SandboxPool (load_env(..., sandbox=SandboxPool()))"
            )
        inner = declarative_part(spec)
        if spec.content_hash:
            check_sealed(inner)
        self._spec = spec
        self._declarative = DeclarativeBackend(inner)
        authored = impl.authored
        self._authored_tools = frozenset(authored.tools)
        self._authored: SandboxBackend = sandbox.load_source_backend(
            spec.meta, PythonImplementation(module=authored.module, class_name=authored.class_name),
            authored.source.encode(), directory,
        )
        self._parameters = _check_parity(spec, impl, self._authored.spec)

    @property
    def spec(self) -> EnvSpec:
        """The hybrid environment's spec."""
        return self._spec

    @property
    def authored(self) -> SandboxBackend:
        """The sandboxed backend of the authored tools (its spec is what the authored class derives)."""
        return self._authored

    def load_state(self, state: Any) -> HybridState:
        """A handle over state JSON, validated by the declarative part (see `DeclarativeBackend.load_state`)."""
        return HybridState(self._declarative.load_state(state))

    def diff(self, before: Any, after: Any) -> StateDiff:
        """Record-level diff, as the declarative part computes it."""
        return self._declarative.diff(before.store, after.store)

    def execute(self, state: Any, tool: str, arguments: dict[str, Any], ctx: CallContext) -> PreparedCall:
        """Declarative tools run here; an authored tool runs in the sandbox on the state as JSON, and what it
        leaves must load back into the declarative model (`ToolCrash` otherwise). Arguments the authored code does
        not take are refused with `ToolError("invalid_arguments")`."""
        handle: HybridState = state
        if tool not in self._authored_tools:
            return self._declarative.execute(handle.store, tool, arguments, ctx)
        unsupported = sorted(name for name in arguments if name not in self._parameters[tool])
        if unsupported:
            raise ToolError("invalid_arguments", f"{tool}: this environment does not support the argument(s) "
                            f"{', '.join(unsupported)}; call it without them")
        worker_state = self._authored.load_state(handle.store.to_json())
        prepared = self._authored.execute(worker_state, tool, arguments, ctx)
        if prepared.commit is None:
            return PreparedCall(prepared.output)
        prepared.commit()
        after = worker_state.to_json()
        try:
            store = self._declarative.load_state(after)
        except SpecError as exc:
            raise ToolCrash(f"{tool} (authored) left a state that breaks the environment's model: {exc}") from exc

        def commit() -> None:
            handle.store = store

        return PreparedCall(prepared.output, commit)


def _check_parity(spec: EnvSpec, impl: HybridImplementation, derived: EnvSpec) -> dict[str, frozenset[str]]:
    problems: list[str] = []
    parameters: dict[str, frozenset[str]] = {}
    for name in impl.authored.tools:
        public = spec.tool(name)
        ours = derived.tool(name)
        if public is None or ours is None:
            problems.append(f"{name}: the authored class defines no such tool")
            continue
        if public.effect != ours.effect:
            problems.append(f"{name}: declared {public.effect} but the authored method is {ours.effect}")
        api, required = _argument_names(public.input_schema)
        method, method_required = _argument_names(ours.input_schema)
        if required - method:
            problems.append(f"{name}: the method lacks required API arguments {sorted(required - method)}")
        if method - api:
            problems.append(f"{name}: the method takes arguments the API does not have {sorted(method - api)}")
        if method_required - required:
            problems.append(f"{name}: the method requires arguments the API leaves optional {sorted(method_required - required)}")
        ignored = sorted(api - method)
        if ignored != sorted(impl.authored.unsupported_arguments.get(name, [])):
            problems.append(f"{name}: unsupported_arguments must list {ignored}")
        parameters[name] = frozenset(method)
    extra = sorted({t.name for t in derived.tools} - set(impl.authored.tools))
    if extra:
        problems.append(f"the authored class defines tools that are not declared: {extra}")
    if problems:
        raise SpecError(f"{spec.meta.name}: authored tools disagree with the spec:\n  - " + "\n  - ".join(problems))
    return parameters



def _argument_names(schema: Any) -> tuple[set[str], set[str]]:
    """(argument names, required names) of an object input schema."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    required = schema.get("required") if isinstance(schema, dict) else None
    return (
        {str(n) for n in props} if isinstance(props, dict) else set(),
        {str(n) for n in required} if isinstance(required, list) else set(),
    )
