"""Compile a hand-written or generated `DeclarativeEnvSource` into a sealed `EnvSpec`.

Derives what must not be written twice: the state JSON Schema (from the record schemas), each tool's
output schema, `effect` (from the operation kind) and `idempotent` (from the kind and what the
operation reads and writes). Checks every cross-reference and reports *all* problems at once in one
`SpecError`, each naming where it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from envfactory.errors import SpecError
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import EnvSpec, ToolSpec
from envfactory.spec.declarative import (
    COLLECTION_NAME_PATTERN,
    AdjustEffect,
    AllCond,
    AnyCond,
    ArithExpr,
    CollectionDecl,
    CompareCond,
    CreateEffect,
    DeclarativeEnvSource,
    DeclarativeModel,
    DeclarativeToolDecl,
    FieldExpr,
    LookupExpr,
    NotCond,
    NowExpr,
    OperationDecl,
    PresenceCond,
    SetEffect,
    SumExpr,
)
from envfactory.spec.env import DeclarativeImplementation

_READ_KINDS = frozenset({"get", "list"})
_COLLECTION_NAME = re.compile(COLLECTION_NAME_PATTERN)


def _expr_nodes(expr: Any) -> Iterator[Any]:
    """Every expression node inside `expr`, itself included."""
    yield expr
    if isinstance(expr, LookupExpr):
        yield from _expr_nodes(expr.key)
    elif isinstance(expr, ArithExpr):
        for arg in expr.args:
            yield from _expr_nodes(arg)
    elif isinstance(expr, SumExpr):
        yield from _expr_nodes(expr.over)
        yield from _expr_nodes(expr.expr)


def _cond_exprs(cond: Any) -> Iterator[Any]:
    """The top-level expressions of a condition."""
    if isinstance(cond, CompareCond):
        yield cond.left
        yield cond.right
    elif isinstance(cond, PresenceCond):
        yield cond.value
    elif isinstance(cond, AllCond | AnyCond):
        for part in cond.conditions:
            yield from _cond_exprs(part)
    elif isinstance(cond, NotCond):
        yield from _cond_exprs(cond.condition)


def _op_exprs(op: OperationDecl) -> Iterator[tuple[str, Any]]:
    """(where, expression) for every expression of an operation."""
    for field, expr in op.assign.items():
        yield f"assign.{field}", expr
    for i, req in enumerate(op.requires):
        for expr in _cond_exprs(req.condition):
            yield f"requires[{i}]", expr
    for i, effect in enumerate(op.effects):
        parts: list[Any] = [effect.for_each]
        if isinstance(effect, AdjustEffect):
            parts += [effect.key, effect.by]
        elif isinstance(effect, SetEffect):
            parts += [effect.key, effect.value]
        else:
            parts += list(effect.values.values())
        for expr in parts:
            if expr is not None:
                yield f"effects[{i}]", expr


def idempotent(op: OperationDecl) -> bool:
    """Whether repeating a successful call with the same arguments leaves the state as the first call
    left it. Reads always; a delete (the repeat finds nothing to delete); an update or patch only
    when its new values depend on the arguments alone (no `field`, `now` or `lookup` in its assigns or
    effects) and its effects only `set`; never a create."""
    if op.kind in ("get", "list", "delete"):
        return True
    if op.kind == "create" or any(not isinstance(e, SetEffect) for e in op.effects):
        return False
    for where, expr in _op_exprs(op):
        if where.startswith("requires"):
            continue
        if any(isinstance(node, FieldExpr | NowExpr | LookupExpr) for node in _expr_nodes(expr)):
            return False
    return True


def state_schema(collections: dict[str, CollectionDecl]) -> dict[str, Any]:
    """JSON Schema of a declarative state: `{"collections": {name: {key: record}}, "counters": {...}}`."""
    return {
        "type": "object",
        "properties": {
            "collections": {
                "type": "object",
                "properties": {
                    name: {"type": "object", "additionalProperties": decl.record_schema}
                    for name, decl in collections.items()
                },
                "additionalProperties": False,
            },
            "counters": {
                "type": "object",
                "properties": {name: {"type": "integer", "minimum": 0} for name in collections},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }


def output_schema(op: OperationDecl, collections: dict[str, CollectionDecl]) -> dict[str, Any]:
    """The JSON Schema of an operation's result: the collection's record, a page of records for `list`, or
    the deleted key for `delete`; with an `envelope`, the record or page under the response's own names."""
    record = collections[op.collection].record_schema
    envelope = op.envelope
    if op.kind == "list":
        if envelope is None:
            return {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": record},
                    "next_page_token": {"type": ["string", "null"]},
                    "total": {"type": "integer", "minimum": 0},
                },
                "required": ["items", "next_page_token", "total"],
                "additionalProperties": False,
            }
        if envelope.records is None:  # the source answers a bare array
            return {"type": "array", "items": record}
        props: dict[str, Any] = {envelope.records: {"type": "array", "items": record}}
        if envelope.next_token is not None:  # absent on the last page, as the sources leave it out
            props[envelope.next_token] = {"type": "string"}
        if envelope.total is not None:
            props[envelope.total] = {"type": "integer", "minimum": 0}
        return {"type": "object", "properties": props, "additionalProperties": False,
                "required": [name for name in props if name != envelope.next_token]}
    if op.kind == "delete":
        return {
            "type": "object",
            "properties": {"deleted": {"type": "string"}},
            "required": ["deleted"],
            "additionalProperties": False,
        }
    if envelope is not None and envelope.records is not None:
        return {"type": "object", "properties": {envelope.records: record}, "required": [envelope.records],
                "additionalProperties": False}
    return record


def _nested_arg(input_schema: dict[str, Any], path: str) -> bool:
    """Whether `path` names an argument, or a property of object arguments (`Rule.Name`, a create's key)."""
    schema: Any = input_schema
    for part in path.split("."):
        props = _properties(schema) if isinstance(schema, dict) else {}
        if part not in props:
            return False
        schema = props[part]
    return True


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties", {})
    return props if isinstance(props, dict) else {}


def check_model(collections: dict[str, CollectionDecl], tools: dict[str, tuple[dict[str, Any], OperationDecl]]) -> list[str]:
    """Every problem of a declarative model, as human-readable lines: the collections' in declaration order,
    then each tool's operation's (deterministic; never raises)."""
    problems: list[str] = []
    for name, coll in collections.items():
        problems += _collection_problems(name, coll, collections)
    for tool, (input_schema, op) in tools.items():
        problems += _operation_problems(tool, input_schema, op, collections)
    return problems


def _collection_problems(name: str, coll: CollectionDecl, collections: dict[str, CollectionDecl]) -> list[str]:
    problems: list[str] = []
    where = f"collections.{name}"
    if not _COLLECTION_NAME.match(name):
        problems.append(f"{where}: collection names must match {COLLECTION_NAME_PATTERN}")
    if coll.record_schema.get("type") != "object":
        problems.append(f"{where}.record_schema: must have type 'object'")
    try:
        CompiledSchema(coll.record_schema)
    except SpecError as exc:
        problems.append(f"{where}.record_schema: {exc}")
    props = _properties(coll.record_schema)
    key_schema = props.get(coll.key)
    if not isinstance(key_schema, dict) or key_schema.get("type") != "string":
        problems.append(f"{where}: key field {coll.key!r} must be a record property of type 'string'")
    for ref in coll.references:
        if ref.collection not in collections:
            problems.append(f"{where}.references: {ref.field} points to unknown collection {ref.collection!r}")
        top = ref.field.split(".")[0].removesuffix("[]")
        if top not in props:
            problems.append(f"{where}.references: {ref.field} is not a record field")
    for group in coll.unique:
        for field in group:
            if field not in props:
                problems.append(f"{where}.unique: {field!r} is not a record field")
    if coll.capacity is not None and coll.capacity.per is not None and coll.capacity.per not in props:
        problems.append(f"{where}.capacity: per {coll.capacity.per!r} is not a record field")
    for transition in coll.transitions:
        if transition.field not in props:
            problems.append(f"{where}.transitions: {transition.field!r} is not a record field")
        for old, news in transition.allowed.items():
            unknown = [n for n in news if n not in transition.allowed]
            if unknown:
                problems.append(
                    f"{where}.transitions.{transition.field}: {old!r} -> {unknown} reach states with no entry in 'allowed'"
                )
    return problems


def _operation_problems(tool: str, input_schema: dict[str, Any], op: OperationDecl,
                        collections: dict[str, CollectionDecl]) -> list[str]:
    problems: list[str] = []
    where = f"tools.{tool}.operation"
    if op.collection not in collections:
        problems.append(f"{where}: unknown collection {op.collection!r}")
        return problems
    coll = collections[op.collection]
    record_props = _properties(coll.record_schema)
    args = _properties(input_schema)
    if input_schema.get("type") != "object":
        problems.append(f"tools.{tool}.input_schema: must have type 'object'")
    try:
        CompiledSchema(input_schema)
    except SpecError as exc:
        problems.append(f"tools.{tool}.input_schema: {exc}")
    key_arg = op.key_arg or coll.key
    envelope = op.envelope
    if envelope is not None:
        names = [n for n in (envelope.records, envelope.next_token, envelope.total) if n is not None]
        if op.kind == "delete" or (op.kind != "list" and len(names) > 1) or len(set(names)) != len(names):
            problems.append(f"{where}.envelope: a {op.kind} takes {'no envelope' if op.kind == 'delete' else 'distinct names' if op.kind == 'list' else 'only records'}")
        elif envelope.records is None and (op.kind != "list" or names):
            problems.append(f"{where}.envelope: only a list answers a bare array (records null), with no token or total")
    problems.extend(_token_problems(where, op, args, collections))
    if op.kind in ("get", "update", "patch", "delete"):
        if key_arg not in args:
            problems.append(f"{where}: {op.kind} needs argument {key_arg!r} (the key) in the input schema")
        elif key_arg not in input_schema.get("required", []):
            problems.append(f"{where}: key argument {key_arg!r} must be required")
    if op.kind == "create" and op.key_arg is not None and not _nested_arg(input_schema, op.key_arg):
        problems.append(f"{where}: key_arg {op.key_arg!r} is not an argument")
    for field in op.assign:
        if field not in record_props:
            problems.append(f"{where}.assign: {field!r} is not a field of {op.collection}")
        elif field == coll.key:
            # a record is stored under its key: changing the key field would leave it under the old one
            problems.append(f"{where}.assign: {field!r} is the key of {op.collection} (use key_arg to choose keys)")
    if op.listing is not None:
        if op.kind != "list":
            problems.append(f"{where}: 'listing' only applies to list operations")
        for flt in op.listing.filters:
            if flt.arg not in args:
                problems.append(f"{where}.listing.filters: argument {flt.arg!r} is not in the input schema")
        for attr in ("sort_arg", "descending_arg", "page_size_arg", "page_token_arg"):
            arg = getattr(op.listing, attr)
            if arg is not None and arg not in args:
                problems.append(f"{where}.listing.{attr}: argument {arg!r} is not in the input schema")
        if op.listing.sort_by is not None and op.listing.sort_by not in record_props:
            problems.append(f"{where}.listing.sort_by: {op.listing.sort_by!r} is not a field of {op.collection}")
    for place, expr in _op_exprs(op):
        for node in _expr_nodes(expr):
            if isinstance(node, LookupExpr) and node.collection not in collections:
                problems.append(f"{where}.{place}: lookup in unknown collection {node.collection!r}")
    for i, effect in enumerate(op.effects):
        if effect.collection not in collections:
            problems.append(f"{where}.effects[{i}]: unknown collection {effect.collection!r}")
            continue
        target_props = _properties(collections[effect.collection].record_schema)
        if isinstance(effect, AdjustEffect | SetEffect) and effect.field not in target_props:
            problems.append(f"{where}.effects[{i}]: {effect.field!r} is not a field of {effect.collection}")
        elif isinstance(effect, AdjustEffect | SetEffect) and effect.field == collections[effect.collection].key:
            problems.append(f"{where}.effects[{i}]: {effect.field!r} is the key of {effect.collection} and cannot change")
        if isinstance(effect, CreateEffect):
            for field in effect.values:
                if field not in target_props:
                    problems.append(f"{where}.effects[{i}].values: {field!r} is not a field of {effect.collection}")
    return problems


def _token_problems(where: str, op: OperationDecl, args: dict[str, Any],
                    collections: dict[str, CollectionDecl]) -> list[str]:
    """What is wrong with an operation's `keep_transitions` and `idempotency` declarations."""
    problems: list[str] = []
    if op.keep_transitions and op.kind != "update":
        problems.append(f"{where}.keep_transitions: only an update replaces the fields it is not given")
    token = op.idempotency
    if token is None:
        return problems
    if op.kind in ("get", "list"):
        problems.append(f"{where}.idempotency: a {op.kind} writes nothing to repeat")
    if token.arg not in args:
        problems.append(f"{where}.idempotency: argument {token.arg!r} is not in the input schema")
    store = collections.get(token.collection)
    if store is None:
        problems.append(f"{where}.idempotency: unknown collection {token.collection!r}")
    elif store.key != "token" or not {"tool", "arguments_digest", "result"} <= set(_properties(store.record_schema)):
        problems.append(f"{where}.idempotency: {token.collection} must be keyed by 'token' with fields tool, "
                        "arguments_digest and result")
    return problems


def source_of(spec: EnvSpec) -> DeclarativeEnvSource:
    """The declarative source a sealed declarative `EnvSpec` was compiled from."""
    impl = spec.implementation
    if not isinstance(impl, DeclarativeImplementation):
        raise SpecError(f"{spec.meta.name} is not a declarative environment")
    tools = [
        DeclarativeToolDecl(
            name=t.name,
            description=t.description,
            input_schema=t.input_schema,
            operation=impl.model.operations[t.name],
            source=t.source,
        )
        for t in spec.tools
        if t.name in impl.model.operations
    ]
    missing = sorted(set(impl.model.operations) ^ {t.name for t in spec.tools})
    if missing:
        raise SpecError(f"{spec.meta.name}: tools and operations disagree on {missing}")
    return DeclarativeEnvSource(meta=spec.meta, collections=impl.model.collections, tools=tools)


def check_sealed(spec: EnvSpec) -> EnvSpec:
    """Refuse a declarative `spec.json` whose derived parts (output schemas, effects, state schema)
    were edited: recompiling its source must give the same content hash."""
    derived = compile_source(source_of(spec))
    if derived.content_hash != spec.content_hash:
        raise SpecError(
            f"{spec.meta.name}: spec.json does not match what its declarative model derives "
            f"({spec.content_hash[:12]} vs {derived.content_hash[:12]}); edit the model, not the derived parts"
        )
    return spec


def compile_source(source: DeclarativeEnvSource) -> EnvSpec:
    """Derive and seal the `EnvSpec` of a declarative source; raises `SpecError` listing every problem."""
    tools = {t.name: (t.input_schema, t.operation) for t in source.tools}
    problems = check_model(source.collections, tools)
    names = [t.name for t in source.tools]
    problems.extend(f"tools: {n!r} is defined twice" for n in sorted({n for n in names if names.count(n) > 1}))
    if not source.tools:
        problems.append("tools: an environment needs at least one tool")
    if problems:
        raise SpecError(f"{source.meta.name}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
    specs = [
        ToolSpec(
            name=t.name,
            description=t.description,
            input_schema=t.input_schema,
            output_schema=output_schema(t.operation, source.collections),
            effect="read" if t.operation.kind in _READ_KINDS else "write",
            idempotent=idempotent(t.operation),
            source=t.source,
        )
        for t in source.tools
    ]
    model = DeclarativeModel(collections=source.collections, operations={t.name: t.operation for t in source.tools})
    spec = EnvSpec(
        meta=source.meta,
        state_schema=state_schema(source.collections),
        tools=specs,
        implementation=DeclarativeImplementation(model=model),
    )
    return spec.seal()
