"""JSON-Schema helpers every layer shares: find definitions, resolve `$ref`s, walk, merge, flatten.

Schemas here are plain JSON values (`Mapping`s, lists, scalars) as tool specs, API operations and state
schemas carry them; nothing here validates values against a schema (the runtime's validator does that)
and nothing does I/O. Every function is pure and deterministic: the same schema gives the same result,
in the same order.

Contract:
- References: only local `$ref`s are followed (`#`, `#/$defs/X`, `#/definitions/X`,
  `#/components/schemas/X`, or any JSON pointer into the same document, with `~0`/`~1` escapes and list
  indexes). `pointer_target` raises `ValueError` on anything else; `deref` and `definition_name` say
  "not found" with `None`. Reference cycles end: every follower counts hops or remembers names.
- `definitions(schema)` is the one table of named definitions (`$defs`, then `definitions`, then
  `components.schemas`; a later table wins on a shared name).
- `map_subschemas(schema, fn)` (from `spec.schema_nodes`, which imports nothing so that the spec models
  can use it) is a copy of one schema node with each direct sub-schema replaced by `fn`'s answer.
- `walk(schema)` yields every sub-schema reached through the keywords it is told to look through,
  depth first in document order, bounded by `max_depth`; `property_names` is its projection on names.
- `merge(base, extra)` is a shallow merge: `properties` and `required` are combined, any other keyword
  of `extra` overrides.
- `flatten(schema)` inlines references and keeps only the keywords the declarative engine holds (see its
  docstring); it raises `SchemaTooLarge` past `MAX_NODES` nodes.
- Sampling values from a schema lives beside this module, in `envfactory.spec.schema_sample`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from envfactory.errors import EnvFactoryError
from envfactory.spec.schema_nodes import LIST_KEYWORDS, MAP_KEYWORDS, SUBSCHEMA_KEYWORDS, map_subschemas

__all__ = [
    "DEFINITION_ROOTS",
    "MAX_DEPTH",
    "MAX_DESCRIPTION",
    "MAX_ENUM",
    "MAX_NODES",
    "SUBSCHEMA_KEYWORDS",
    "SchemaTooLarge",
    "definition_name",
    "definitions",
    "deref",
    "flatten",
    "json_type",
    "local_definition",
    "map_subschemas",
    "merge",
    "object_properties",
    "pointer_target",
    "property_names",
    "ref_name",
    "unwrap_record",
    "walk",
]

DEFINITION_ROOTS = ("#/$defs/", "#/definitions/", "#/components/schemas/")
"""Prefixes of a `$ref` that names a definition of the schema's own definition tables."""

MAX_DEPTH = 6
"""`flatten`: references deeper than this many properties become open objects."""
MAX_NODES = 4000
"""`flatten`: more nodes than this raise `SchemaTooLarge`."""
MAX_DESCRIPTION = 400
"""`flatten`: descriptions are cut to this many characters."""
MAX_ENUM = 200
"""`flatten`: longer enums are dropped."""

_TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})
_KEPT_FORMATS = frozenset({"date-time", "date", "email", "uri", "uuid", "int32", "int64", "float", "double"})
_NUMERIC_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_LENGTH_BOUNDS = ("minLength", "maxLength", "minItems", "maxItems")


class SchemaTooLarge(EnvFactoryError):
    """A schema flattens to more nodes than an environment should carry."""


# -- definitions and references ---------------------------------------------------------------------------

def definitions(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Every named definition a schema carries: `$defs`, `definitions`, `components.schemas` merged
    in that order (a later table wins on a shared name)."""
    found: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        block = schema.get(key)
        if isinstance(block, Mapping):
            found.update(block)
    components = schema.get("components")
    if isinstance(components, Mapping) and isinstance(components.get("schemas"), Mapping):
        found.update(components["schemas"])
    return found


def ref_name(ref: str) -> str:
    """The last segment of a `$ref` (`#/$defs/Queue` → `Queue`; a bare `Queue` stays `Queue`)."""
    return ref.rsplit("/", 1)[-1]


def definition_name(ref: str, roots: tuple[str, ...] = DEFINITION_ROOTS) -> str | None:
    """The definition a `$ref` names when it starts with one of `roots` (escapes not undone), else None."""
    return next((ref[len(root):] for root in roots if ref.startswith(root)), None)


def pointer_target(root: Any, ref: str) -> Any:
    """The node of `root` that the local `$ref` `ref` points at (RFC 6901 pointer after `#`).

    Raises:
        ValueError: `ref` is not local (does not start with `#`) or points at nothing.
    """
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    node: Any = root
    for token in ref[1:].lstrip("/").split("/") if ref != "#" else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ValueError(f"cannot resolve $ref {ref!r}")
    return node


def local_definition(root: Any, ref: str, roots: tuple[str, ...] = DEFINITION_ROOTS) -> Any:
    """The definition of `root` that `ref` names when it starts with one of `roots` (`#/$defs/X`, ...),
    resolved as a JSON pointer; None when it names none (or the definition is JSON null)."""
    if definition_name(ref, roots) is None:
        return None
    try:
        return pointer_target(root, ref)
    except ValueError:
        return None


def deref(schema: Any, root: Mapping[str, Any], max_hops: int = 32) -> Any:
    """`schema` with its local `$ref`s (those starting `#/`) followed until a node has none.

    A node whose `$ref` is not local is returned as it is; a reference that points at nothing gives
    None; after `max_hops` references (a cycle) the node reached is returned. Sibling keywords of a
    followed `$ref` are dropped.
    """
    for _ in range(max_hops):
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        if not (isinstance(ref, str) and ref.startswith("#/")):
            return schema
        try:
            schema = pointer_target(root, ref)
        except ValueError:
            return None
    return schema


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow schema merge: `properties` and `required` are combined, other keywords of `extra` win."""
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list) and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    return merged


# -- reading a schema -----------------------------------------------------------------------------------

def json_type(schema: Mapping[str, Any]) -> str | None:
    """The first non-null type a schema names, or None."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


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


def walk(
    schema: Any,
    *,
    root: Mapping[str, Any] | None = None,
    through: tuple[str, ...] = SUBSCHEMA_KEYWORDS,
    max_depth: int = 12,
) -> Iterator[tuple[str, str | None, Any]]:
    """Every sub-schema below `schema`, depth first in document order, as `(keyword, name, sub-schema)`.

    `keyword` is the keyword the sub-schema stands under; `name` is its key when that keyword holds a
    map (`properties`, `$defs`, `definitions`, `patternProperties`), else None. Only the keywords in
    `through` are looked into, in that order. With `root`, local `$ref`s are followed (`deref`) before a
    node is looked into. A node deeper than `max_depth` steps is still yielded but not looked into;
    nodes that are not objects yield nothing.
    """
    if root is not None:
        schema = deref(schema, root)
    if max_depth < 0 or not isinstance(schema, Mapping):
        return
    for keyword in through:
        value = schema.get(keyword)
        if keyword in MAP_KEYWORDS:
            members: list[tuple[str | None, Any]] = (
                [(str(name), sub) for name, sub in value.items()] if isinstance(value, Mapping) else []
            )
        elif keyword in LIST_KEYWORDS:
            members = [(None, sub) for sub in value] if isinstance(value, list) else []
        else:
            members = [(None, value)] if value is not None else []
        for name, sub in members:
            yield keyword, name, sub
            yield from walk(sub, root=root, through=through, max_depth=max_depth - 1)


def property_names(
    schema: Any,
    *,
    root: Mapping[str, Any] | None = None,
    through: tuple[str, ...] = SUBSCHEMA_KEYWORDS,
    max_depth: int = 12,
) -> Iterator[str]:
    """Every property name in a schema, at any depth, in document order (a name may repeat).

    Definition names (keys of `$defs`) are not property names; the definitions' own properties are
    given when `$defs` is in `through`. The other arguments are `walk`'s."""
    for keyword, name, _ in walk(schema, root=root, through=through, max_depth=max_depth):
        if keyword == "properties" and name is not None:
            yield name


# -- flattening for the declarative engine ----------------------------------------------------------------

def flatten(schema: Any, defs: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """`schema` with local references expanded and only the keywords the declarative engine holds kept.

    - References (`#/$defs/X`, `#/definitions/X`, `#/components/schemas/X`) resolve against `defs`
      (default: `definitions(schema)`), with cycle protection: a reference already being expanded
      becomes a plain `{"type": "object"}`, and so does anything deeper than `MAX_DEPTH`. A reference
      that does not resolve makes that sub-schema `None` (the caller drops the field); so does a
      `schema` that is not an object.
    - Only a closed set of keywords survives (types, properties, items, enums, bounds, descriptions, a
      few well-known formats). Regex `pattern`s are dropped: spec dialects differ from the validator's.
      `allOf` merges its members; `anyOf`/`oneOf` keep their first usable alternative.

    Raises:
        SchemaTooLarge: the flattened schema would exceed `MAX_NODES` nodes.
    """
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
        name = definition_name(ref)
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
            merged = _merge_flat(merged, member)
        return merged
    # oneOf/anyOf: the first alternative is the one a record can always hold
    return _merge_flat(dict(base or {}), resolved[0])


def _merge_flat(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
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
