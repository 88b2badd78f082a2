"""Compile a hand-written or generated `DeclarativeEnvSource` into a sealed `EnvSpec`.

Derives what must not be written twice: the state JSON Schema (from the record schemas), each tool's
output schema, `effect` and `idempotent` (from the operation kind). Checks every cross-reference and
reports *all* problems at once in one `SpecError`, each naming where it is.
"""

from __future__ import annotations

from typing import Any

from envfactory.errors import SpecError
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import EnvSpec, ToolSpec
from envfactory.spec.declarative import (
    AdjustEffect,
    CollectionDecl,
    CreateEffect,
    DeclarativeEnvSource,
    DeclarativeModel,
    OperationDecl,
    SetEffect,
)
from envfactory.spec.env import DeclarativeImplementation

_READ_KINDS = frozenset({"get", "list"})
_IDEMPOTENT_KINDS = frozenset({"get", "list", "update", "patch", "delete"})


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
    record = collections[op.collection].record_schema
    if op.kind == "list":
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
    if op.kind == "delete":
        return {
            "type": "object",
            "properties": {"deleted": {"type": "string"}},
            "required": ["deleted"],
            "additionalProperties": False,
        }
    return record


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties", {})
    return props if isinstance(props, dict) else {}


def check_model(collections: dict[str, CollectionDecl], tools: dict[str, tuple[dict[str, Any], OperationDecl]]) -> list[str]:
    """Every problem of a declarative model, as human-readable lines."""
    problems: list[str] = []
    for name, coll in collections.items():
        where = f"collections.{name}"
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
        for transition in coll.transitions:
            if transition.field not in props:
                problems.append(f"{where}.transitions: {transition.field!r} is not a record field")
            for old, news in transition.allowed.items():
                unknown = [n for n in news if n not in transition.allowed]
                if unknown:
                    problems.append(
                        f"{where}.transitions.{transition.field}: {old!r} -> {unknown} reach states with no entry in 'allowed'"
                    )
    for tool, (input_schema, op) in tools.items():
        where = f"tools.{tool}.operation"
        if op.collection not in collections:
            problems.append(f"{where}: unknown collection {op.collection!r}")
            continue
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
        if op.kind in ("get", "update", "patch", "delete"):
            if key_arg not in args:
                problems.append(f"{where}: {op.kind} needs argument {key_arg!r} (the key) in the input schema")
            elif key_arg not in input_schema.get("required", []):
                problems.append(f"{where}: key argument {key_arg!r} must be required")
        if op.kind == "create" and op.key_arg is not None and op.key_arg not in args:
            problems.append(f"{where}: key_arg {op.key_arg!r} is not an argument")
        for field in op.assign:
            if field not in record_props:
                problems.append(f"{where}.assign: {field!r} is not a field of {op.collection}")
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
        for i, effect in enumerate(op.effects):
            if effect.collection not in collections:
                problems.append(f"{where}.effects[{i}]: unknown collection {effect.collection!r}")
                continue
            target_props = _properties(collections[effect.collection].record_schema)
            if isinstance(effect, AdjustEffect | SetEffect) and effect.field not in target_props:
                problems.append(f"{where}.effects[{i}]: {effect.field!r} is not a field of {effect.collection}")
            if isinstance(effect, CreateEffect):
                for field in effect.values:
                    if field not in target_props:
                        problems.append(f"{where}.effects[{i}].values: {field!r} is not a field of {effect.collection}")
    return problems


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
            idempotent=t.operation.kind in _IDEMPOTENT_KINDS,
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
