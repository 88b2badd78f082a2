"""JSON Schemas from specs, made into schemas the declarative engine can hold.

Contract:
- `flatten(schema)` resolves local `$ref`s (`#/$defs/X`, `#/definitions/X`, `#/components/schemas/X`)
  against the schema's own definitions, with cycle protection: a reference already being expanded
  becomes a plain `{"type": "object"}`, and so does anything deeper than `MAX_DEPTH`. A reference that
  does not resolve makes that sub-schema `None` (the caller drops the field).
- Only a closed set of keywords survives (types, properties, items, enums, bounds, descriptions, a few
  well-known formats). Regex `pattern`s are dropped: spec dialects differ from the validator's.
- `SchemaTooLarge` is raised when a flattened schema would exceed `MAX_NODES` nodes, so one huge spec
  cannot make an environment unusable; the caller records the reason and moves on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envfactory.errors import EnvFactoryError

MAX_DEPTH = 6
MAX_NODES = 4000
MAX_DESCRIPTION = 400
MAX_ENUM = 200

_TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})
_KEPT_FORMATS = frozenset({"date-time", "date", "email", "uri", "uuid", "int32", "int64", "float", "double"})
_NUMERIC_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_LENGTH_BOUNDS = ("minLength", "maxLength", "minItems", "maxItems")
_REF_ROOTS = ("#/$defs/", "#/definitions/", "#/components/schemas/")


class SchemaTooLarge(EnvFactoryError):
    """A schema flattens to more nodes than an environment should carry."""


def definitions(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Every named definition a schema carries (`$defs`, `definitions`, `components.schemas`)."""
    found: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        block = schema.get(key)
        if isinstance(block, dict):
            found.update(block)
    components = schema.get("components")
    if isinstance(components, dict) and isinstance(components.get("schemas"), dict):
        found.update(components["schemas"])
    return found


def flatten(schema: Any, defs: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """`schema` with references expanded and only engine-safe keywords kept (see the module doc)."""
    if not isinstance(schema, dict):
        return None
    budget = [MAX_NODES]
    return _flatten(schema, dict(defs) if defs is not None else definitions(schema), (), 0, budget)


def _flatten(
    schema: Any, defs: dict[str, Any], expanding: tuple[str, ...], depth: int, budget: list[int]
) -> dict[str, Any] | None:
    budget[0] -= 1
    if budget[0] < 0:
        raise SchemaTooLarge(f"schema has more than {MAX_NODES} nodes")
    if schema is True or schema == {}:
        return {}
    if not isinstance(schema, dict):
        return None
    if depth > MAX_DEPTH:
        return {"type": "object"}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = next((ref[len(root):] for root in _REF_ROOTS if ref.startswith(root)), None)
        if name is None or name not in defs:
            return None
        if name in expanding:  # a cycle: stop here with an open object
            return {"type": "object"}
        target = _flatten(defs[name], defs, (*expanding, name), depth, budget)
        if target is not None and isinstance(schema.get("description"), str) and "description" not in target:
            target = {**target, "description": schema["description"][:MAX_DESCRIPTION]}
        return target
    for combinator in ("allOf", "oneOf", "anyOf"):
        members = schema.get(combinator)
        if isinstance(members, list) and members:
            return _combine(schema, combinator, members, defs, expanding, depth, budget)
    return _keep(schema, defs, expanding, depth, budget)


def _combine(
    schema: dict[str, Any], combinator: str, members: list[Any], defs: dict[str, Any],
    expanding: tuple[str, ...], depth: int, budget: list[int],
) -> dict[str, Any] | None:
    resolved = [m for m in (_flatten(m, defs, expanding, depth, budget) for m in members) if m is not None]
    rest = {k: v for k, v in schema.items() if k != combinator}
    base = _keep(rest, defs, expanding, depth, budget) if rest else {}
    if not resolved:
        return base if base else None
    if combinator == "allOf":
        merged: dict[str, Any] = dict(base or {})
        for member in resolved:
            merged = _merge(merged, member)
        return merged
    # oneOf/anyOf: the first alternative is the one a record can always hold
    return _merge(dict(base or {}), resolved[0])


def _merge(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for key, value in other.items():
        if key == "properties" and isinstance(out.get("properties"), dict):
            out["properties"] = {**out["properties"], **value}
        elif key == "required" and isinstance(out.get("required"), list):
            out["required"] = sorted(set(out["required"]) | set(value))
        else:
            out.setdefault(key, value)
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    return out


def _keep(
    schema: dict[str, Any], defs: dict[str, Any], expanding: tuple[str, ...], depth: int, budget: list[int]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if kind == "file":  # Swagger 2 uploads: bytes travel as text in a record
        kind = "string"
    if isinstance(kind, str) and kind in _TYPES:
        out["type"] = kind
    elif isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str) and k in _TYPES]
        if kinds:
            out["type"] = kinds if len(kinds) > 1 else kinds[0]
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    description = schema.get("description")
    if isinstance(description, str) and description:
        out["description"] = description[:MAX_DESCRIPTION]
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _KEPT_FORMATS:
        out["format"] = fmt
    enum = schema.get("enum")
    if isinstance(enum, list) and 0 < len(enum) <= MAX_ENUM and all(
        isinstance(v, str | int | float | bool) for v in enum
    ):
        out["enum"] = list(dict.fromkeys(enum))
    for bound in _NUMERIC_BOUNDS:
        value = schema.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[bound] = value
    for bound in _LENGTH_BOUNDS:
        value = schema.get(bound)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[bound] = value
    if schema.get("readOnly") is True:
        out["readOnly"] = True
    properties = schema.get("properties")
    if isinstance(properties, dict):
        kept: dict[str, Any] = {}
        for name, sub in properties.items():
            if not isinstance(name, str):
                continue
            flat = _flatten(sub, defs, expanding, depth + 1, budget)
            if flat is not None:
                kept[name] = flat
        out["properties"] = kept
        out.setdefault("type", "object")
        required = schema.get("required")
        if isinstance(required, list):
            req = [r for r in required if isinstance(r, str) and r in kept]
            if req:
                out["required"] = list(dict.fromkeys(req))
    additional = schema.get("additionalProperties")
    if isinstance(additional, bool):
        out["additionalProperties"] = additional
    elif isinstance(additional, dict):
        flat_additional = _flatten(additional, defs, expanding, depth + 1, budget)
        if flat_additional is not None:
            out["additionalProperties"] = flat_additional
    items = schema.get("items")
    if isinstance(items, dict):
        flat_items = _flatten(items, defs, expanding, depth + 1, budget)
        out["items"] = flat_items if flat_items is not None else {}
        out.setdefault("type", "array")
    return out


def object_properties(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `properties` of an object schema (empty for anything else)."""
    if not isinstance(schema, Mapping):
        return {}
    props = schema.get("properties")
    return dict(props) if isinstance(props, dict) else {}


def unwrap_record(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record inside a response envelope: `{"member": {...}}` or `{"Table": {...}}` → the inner
    object; anything else is returned as it is."""
    props = object_properties(schema)
    if len(props) == 1:
        (inner,) = props.values()
        if isinstance(inner, dict) and object_properties(inner):
            return inner
    return schema


def json_type(schema: Mapping[str, Any]) -> str | None:
    """The first non-null type a schema names, or None."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None
