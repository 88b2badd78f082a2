"""Compiled operation plans of the declarative engine (`engine.py`): collections with their validators
and references, requirements, effects, operation plans, and the `Transaction` that stages one call's
changes over a `RecordStore`.

Built once per environment by `DeclarativeBackend`; immutable after compilation except a
`Transaction`, which lives for one call. Deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envfactory.runtime.declarative.expressions import CompiledCond, CompiledExpr, compile_cond, compile_expr
from envfactory.runtime.declarative.records import RecordStore
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec.declarative import (
    AdjustEffect,
    CollectionDecl,
    CreateEffect,
    ListDecl,
    OperationDecl,
    SetEffect,
)
from envfactory.spec.tool import AgentErrorKind


@dataclass(frozen=True, slots=True)
class Reference:
    """A compiled reference between collections: where its keys sit in a record (`path`) and its target."""

    path: tuple[tuple[str, bool], ...]  # (field, is_array) steps
    target: str
    on_delete: str
    source: str
    text: str

    def keys(self, record: dict[str, Any]) -> list[Any]:
        """The keys `record` holds at this reference's path (array steps flattened)."""
        values: list[Any] = [record]
        for field, is_array in self.path:
            nxt: list[Any] = []
            for v in values:
                if not isinstance(v, dict) or v.get(field) is None:
                    continue
                got = v[field]
                if is_array:
                    if isinstance(got, list):
                        nxt.extend(got)
                else:
                    nxt.append(got)
            values = nxt
        return values


def parse_reference_path(text: str) -> tuple[tuple[str, bool], ...]:
    """`a.b[].c` as ((field, is_array), ...) steps."""
    steps = []
    for part in text.split("."):
        is_array = part.endswith("[]")
        steps.append((part[:-2] if is_array else part, is_array))
    return tuple(steps)


class CompiledCollection:
    """A collection ready to use: its record validator, fields, transitions, unique fields and references."""

    def __init__(self, name: str, decl: CollectionDecl) -> None:
        """Compile the collection `decl` declares (its record schema validator among the rest); `SpecError`
        when a declaration does not compile."""
        self.name = name
        self.decl = decl
        self.key = decl.key
        self.schema = CompiledSchema(decl.record_schema)
        props = decl.record_schema.get("properties", {})
        self.fields: frozenset[str] = frozenset(props if isinstance(props, dict) else {})
        self.transitions = {t.field: t for t in decl.transitions}
        self.unique = [tuple(u) for u in decl.unique]
        self.capacity = decl.capacity
        self.outgoing: list[Reference] = []
        self.incoming: list[Reference] = []

    def new_key(self, counter: int) -> str:
        """The generated key for `counter` (`id_prefix` + zero-padded number)."""
        return f"{self.decl.id_prefix}{counter:0{self.decl.id_width}d}"


@dataclass(frozen=True, slots=True)
class Requirement:
    """A compiled `requires` clause: the condition and the error it raises when false."""

    condition: CompiledCond
    kind: AgentErrorKind
    message: str


@dataclass(frozen=True, slots=True)
class Effect:
    """A compiled side effect of an operation (adjust, set or create), optionally for each item."""

    op: str
    collection: str
    key: CompiledExpr | None
    field: str
    value: CompiledExpr | None
    values: dict[str, CompiledExpr]
    for_each: CompiledExpr | None


class Plan:
    """A compiled operation."""

    def __init__(self, tool: str, decl: OperationDecl, coll: CompiledCollection, output_schema: Any) -> None:
        """Compile the operation `decl` for `tool` over `coll`; `output_schema` is the tool's declared output."""
        self.tool = tool
        self.kind = decl.kind
        self.coll = coll
        self.key_arg = decl.key_arg or coll.key
        self.fields_from_args = decl.fields_from_args
        self.assign = {f: compile_expr(e) for f, e in decl.assign.items()}
        self.requires = [Requirement(compile_cond(r.condition), r.error, r.message) for r in decl.requires]
        self.effects = [compile_effect(e) for e in decl.effects]
        self.listing = decl.listing or ListDecl()
        self.given_key = decl.kind == "create" and decl.key_arg is not None
        self.envelope = decl.envelope
        self.keep_transitions = decl.keep_transitions
        self.idempotency = decl.idempotency
        self.output_is_record = output_schema == coll.decl.record_schema


def compile_effect(effect: Any) -> Effect:
    """Compile an effect declaration's expressions; an unknown effect type is a `TypeError`."""
    for_each = compile_expr(effect.for_each) if effect.for_each is not None else None
    if isinstance(effect, AdjustEffect):
        return Effect("adjust", effect.collection, compile_expr(effect.key), effect.field, compile_expr(effect.by), {}, for_each)
    if isinstance(effect, SetEffect):
        return Effect("set", effect.collection, compile_expr(effect.key), effect.field, compile_expr(effect.value), {}, for_each)
    if isinstance(effect, CreateEffect):
        values = {f: compile_expr(e) for f, e in effect.values.items()}
        return Effect("create", effect.collection, None, "", None, values, for_each)
    raise TypeError(f"unsupported effect {type(effect).__name__}")


class Transaction:
    """Staged changes of one call over a store; reads see staged values first."""

    __slots__ = ("changes", "counters", "order", "store")

    def __init__(self, store: RecordStore) -> None:
        """An empty transaction over `store`: nothing staged, the store untouched until commit."""
        self.store = store
        self.changes: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.order: list[tuple[str, str]] = []
        self.counters: dict[str, int] = {}

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """The staged record (None when staged for deletion), else the store's."""
        if self.changes:
            ident = (collection, key)
            if ident in self.changes:
                return self.changes[ident]
        return self.store.get(collection, key)

    def put(self, collection: str, key: str, record: dict[str, Any] | None) -> None:
        """Stage `record` (None: a deletion) for `key`."""
        ident = (collection, key)
        if ident not in self.changes:
            self.order.append(ident)
        self.changes[ident] = record

    def next_key(self, coll: CompiledCollection) -> str:
        """The next generated key of `coll` that is free in the store and in this transaction."""
        counter = self.counters.get(coll.name, self.store.counters.get(coll.name, 0))
        while True:
            counter += 1
            key = coll.new_key(counter)
            if self.get(coll.name, key) is None:
                self.counters[coll.name] = counter
                return key

    def commit(self) -> None:
        """Write every staged change to the store, in staging order, and advance its key counters."""
        store = self.store
        for collection, key in self.order:
            record = self.changes[(collection, key)]
            if record is None:
                if store.get(collection, key) is not None:
                    store.delete(collection, key)
            else:
                store.put(collection, key, record)
        store.counters.update(self.counters)
