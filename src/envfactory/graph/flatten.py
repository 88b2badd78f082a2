"""Flatten a tool's input or output JSON Schema into fields.

Contract:
- Paths: object properties join with `.`; an array field `a` yields `a` (the whole array) and `a[]`
  (one item), and the item's properties continue as `a[].b`. A map whose keys are enumerated
  (`additionalProperties` + `propertyNames.enum`, as AWS attribute maps are) yields one field per key
  (`Attributes.QueueArn`), since callers read those keys like properties.
- `$ref`s into the schema's own `$defs`/`definitions` (or `#/components/schemas`) are followed; the
  definition name is kept on the field (`ref`) because it names the entity the value is. A reference
  cycle stops the descent; so does `max_depth`. `allOf` merges, `anyOf`/`oneOf` contribute their
  object branches' properties as optional fields, `["string", "null"]` is a string.
- `required` holds for a field only if it and every enclosing field are required. Input `slot`s are
  the values a call must supply: required leaves, and required containers none of whose fields is
  required (an object such as ECR's `imageId`, or a free-form request body).
- A schema without a usable `type` becomes `any`, and the path is reported in `untyped` so the caller
  can warn; nothing here raises on odd schemas.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envfactory.graph.model import ParamType
from envfactory.spec.schema_tools import definitions, ref_name

MAX_DEPTH = 6
MAX_FIELDS = 400
_TYPES: frozenset[str] = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a flattened schema: its dotted path (ours and the source's), type, format, enum,
    description, whether it is required, a container or an input slot, the `$ref` names it and its parent
    carry, its properties and depth."""
    path: str
    source_path: str
    type: ParamType
    item_type: ParamType | None
    format: str | None
    enum: tuple[str | int | float | bool | None, ...] | None
    description: str
    required: bool
    container: bool
    slot: bool
    ref: str | None
    parent_ref: str | None
    properties: tuple[str, ...]
    depth: int


@dataclass(slots=True)
class Flattened:
    """The fields of one schema, the paths with no usable type, and whether `max_fields` cut the list."""
    fields: list[Field] = field(default_factory=list)
    untyped: list[str] = field(default_factory=list)
    truncated: bool = False


class _Resolver:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.defs = definitions(root)

    def resolve(self, node: Any, seen: frozenset[str]) -> tuple[dict[str, Any] | None, str | None, frozenset[str]]:
        """The node with `$ref`s followed (sibling keys win), the last definition name, the names seen."""
        name: str | None = None
        hops = 0
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and hops < 16:
            name = ref_name(node["$ref"])
            if name in seen:
                return None, name, seen
            seen = seen | {name}
            target = self.defs.get(name)
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **extra} if isinstance(target, Mapping) else extra
            hops += 1
        if not isinstance(node, Mapping):
            return None, name, seen
        return self._merge(dict(node), seen), name, seen

    def _merge(self, node: dict[str, Any], seen: frozenset[str]) -> dict[str, Any]:
        parts = node.get("allOf")
        if isinstance(parts, list):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            props: dict[str, Any] = dict(merged.get("properties") or {})
            required = list(merged.get("required") or [])
            for part in parts:
                resolved, _, _ = self.resolve(part, seen)
                if resolved is None:
                    continue
                props.update(resolved.get("properties") or {})
                required += [r for r in resolved.get("required") or [] if isinstance(r, str)]
                for key in ("type", "description", "items", "format"):
                    merged.setdefault(key, resolved.get(key))
            merged["properties"] = props
            merged["required"] = required
            node = {k: v for k, v in merged.items() if v is not None}
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if isinstance(branches, list) and "properties" not in node and "type" not in node:
                props = {}
                types: list[str] = []
                for branch in branches:
                    resolved, _, _ = self.resolve(branch, seen)
                    if resolved is None:
                        continue
                    kind = _type_of(resolved)
                    if kind != "null":
                        types.append(kind)
                    for pname, pschema in (resolved.get("properties") or {}).items():
                        props.setdefault(pname, pschema)
                node = {k: v for k, v in node.items() if k != key}
                if props:
                    node["type"] = "object"
                    node["properties"] = props
                elif types:
                    node["type"] = types[0]
        return node


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [k for k in kind if isinstance(k, str) and k != "null"]
        kind = named[0] if named else ("null" if "null" in kind else None)
    if isinstance(kind, str) and kind in _TYPES:
        return kind
    if isinstance(schema.get("properties"), Mapping):
        return "object"
    if "items" in schema:
        return "array"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        first = schema["enum"][0]
        return "string" if isinstance(first, str) else "number" if isinstance(first, int | float) else "any"
    if "additionalProperties" in schema:
        return "object"
    return "any"


def _enum(schema: Mapping[str, Any]) -> tuple[str | int | float | bool | None, ...] | None:
    values = schema.get("enum")
    if not isinstance(values, list) or not values:
        return None
    return tuple(v for v in values[:50] if v is None or isinstance(v, str | int | float | bool))


def _text(schema: Mapping[str, Any]) -> str:
    text = schema.get("description")
    if not isinstance(text, str) or not text:
        text = schema.get("title")
    return text.strip() if isinstance(text, str) else ""


def flatten(schema: Mapping[str, Any] | None, *, inputs: bool, field_names: Mapping[str, str] | None = None,
            max_depth: int = MAX_DEPTH, max_fields: int = MAX_FIELDS) -> Flattened:
    """The fields of `schema` (see the module docstring). `field_names` maps our top-level names to the
    source's originals, for `source_path`."""
    out = Flattened()
    if not isinstance(schema, Mapping) or not schema:
        return out
    resolver = _Resolver(schema)
    root, root_ref, seen = resolver.resolve(schema, frozenset())
    if root is None:
        return out
    if _type_of(root) != "object" and not inputs:  # a bare array or scalar result: name it `result`
        defs = {k: schema[k] for k in ("$defs", "definitions") if k in schema}
        wrapped = {"type": "object", "properties": {"result": {k: v for k, v in root.items() if k not in defs}},
                   "required": ["result"], **defs}
        resolver = _Resolver(wrapped)
        root, root_ref, seen = wrapped, None, frozenset()
    names = dict(field_names or {})
    queue: deque[_Visit] = deque([_Visit(root, root_ref, seen, "", "", True, 0, True)])
    while queue:
        visit = queue.popleft()
        _expand(resolver, visit, inputs, names, max_depth, max_fields, out, queue)
    return out


@dataclass(frozen=True, slots=True)
class _Visit:
    """An object (or array item) whose fields are still to be listed."""

    node: dict[str, Any]
    ref: str | None
    seen: frozenset[str]
    path: str
    source_path: str
    required: bool
    depth: int
    top: bool


def _expand(resolver: _Resolver, visit: _Visit, inputs: bool, names: dict[str, str], max_depth: int,
            max_fields: int, out: Flattened, queue: deque[_Visit]) -> None:
    """List the fields of one object, breadth first: shallow fields survive the `max_fields` cut."""
    node = visit.node
    kind = _type_of(node)
    if kind != "object":
        return
    props = node.get("properties")
    if isinstance(props, Mapping) and props:
        needed = {r for r in node.get("required") or [] if isinstance(r, str)}
        for pname in sorted(props):
            if len(out.fields) >= max_fields:
                out.truncated = True
                return
            _add(resolver, props[pname], str(pname), visit, visit.required and pname in needed, inputs, names,
                 max_depth, out, queue)
        return
    extra = node.get("additionalProperties")
    keys = node.get("propertyNames")
    if not inputs and isinstance(extra, Mapping) and isinstance(keys, Mapping) and isinstance(keys.get("enum"), list):
        value, vref, _ = resolver.resolve(extra, visit.seen)
        vtype: Any = _type_of(value) if value is not None else "any"
        for key in keys["enum"][:100]:
            if not isinstance(key, str):
                continue
            if len(out.fields) >= max_fields:
                out.truncated = True
                return
            path = f"{visit.path}.{key}" if visit.path else key
            source = f"{visit.source_path}.{key}" if visit.source_path else key
            out.fields.append(Field(path, source, vtype, None, None, None, f"the {key} entry of {visit.path or 'the map'}",
                                    False, False, False, vref, visit.ref, (), visit.depth + 1))


def _add(resolver: _Resolver, raw: Any, name: str, parent: _Visit, required: bool, inputs: bool,
         names: dict[str, str], max_depth: int, out: Flattened, queue: deque[_Visit]) -> None:
    node, ref, seen = resolver.resolve(raw, parent.seen)
    depth = parent.depth
    child_path = f"{parent.path}.{name}" if parent.path else name
    original = names.get(name, name) if parent.top else name
    child_source = f"{parent.source_path}.{original}" if parent.source_path else original
    if node is None:  # a reference cycle, or a schema that is not an object: a field we cannot look into
        out.fields.append(Field(child_path, child_source, "object" if ref else "any", None, None, None,
                                _text(raw) if isinstance(raw, Mapping) else "", required, False, required and inputs,
                                ref, parent.ref, (), depth + 1))
        if ref is None:
            out.untyped.append(child_path)
        return
    kind: Any = _type_of(node)
    if kind == "any":
        out.untyped.append(child_path)
    description = _text(node) or (_text(raw) if isinstance(raw, Mapping) else "")
    props = node.get("properties") if kind == "object" else None
    has_props = isinstance(props, Mapping) and bool(props)
    prop_names = tuple(sorted(str(p) for p in props)) if has_props and isinstance(props, Mapping) else ()
    item_type: Any = None
    item_node: dict[str, Any] | None = None
    item_ref: str | None = None
    item_seen = seen
    if kind == "array":
        item_node, item_ref, item_seen = resolver.resolve(node.get("items", {}), seen)
        item_type = _type_of(item_node) if item_node is not None else "any"
    item_is_object = kind == "array" and item_node is not None and item_type == "object" and bool(item_node.get("properties"))
    container = has_props or item_is_object
    needed_inside = has_props and bool(set(node.get("required") or []) & set(prop_names))
    slot = inputs and required and (not container or not needed_inside) and not (item_is_object and _has_required(item_node))
    out.fields.append(Field(
        path=child_path, source_path=child_source, type=kind, item_type=item_type,
        format=node.get("format") if isinstance(node.get("format"), str) else None,
        enum=_enum(node), description=description, required=required, container=container, slot=slot,
        ref=ref, parent_ref=parent.ref, properties=prop_names, depth=depth + 1,
    ))
    if depth + 1 >= max_depth:
        return
    if has_props:
        queue.append(_Visit(node, ref or parent.ref, seen, child_path, child_source, required, depth + 1, False))
    elif kind == "array" and item_node is not None:
        item_path, item_source = child_path + "[]", child_source + "[]"
        item_props = item_node.get("properties")
        item_prop_names = tuple(sorted(str(p) for p in item_props)) if isinstance(item_props, Mapping) else ()
        if not inputs or item_is_object:
            out.fields.append(Field(
                path=item_path, source_path=item_source, type=item_type or "any", item_type=None,
                format=item_node.get("format") if isinstance(item_node.get("format"), str) else None,
                enum=_enum(item_node), description=_text(item_node) or description, required=required,
                container=item_is_object, slot=False, ref=item_ref, parent_ref=ref or parent.ref,
                properties=item_prop_names, depth=depth + 2,
            ))
        if item_is_object:
            queue.append(_Visit(item_node, item_ref or ref or parent.ref, item_seen, item_path, item_source, required,
                                depth + 1, False))
    elif kind == "object" and not inputs:  # a map: its enumerated keys, if any
        queue.append(_Visit(node, ref or parent.ref, seen, child_path, child_source, False, depth + 1, False))


def _has_required(node: dict[str, Any] | None) -> bool:
    if node is None:
        return False
    props = node.get("properties")
    return isinstance(props, Mapping) and bool(set(node.get("required") or []) & set(props))
