"""Tool surfaces: our `ToolSpec`s as typed, flat Python signatures (TRL) and flat properties (veRL).

TRL derives a tool's schema from a Python function through transformers' `get_json_schema`: only
builtin scalar types, lists, dicts, `Literal` and unions; every argument described in a Google-style
docstring; names that are Python identifiers. veRL's tool-schema models keep only `type`, `description`
and `enum` per property. So a tool is *flattened*:

- nested object fields become parameters named `parent__child` (recursively);
- a name that is not a Python identifier (or is a keyword) is mapped (`-` → `_`, a leading digit gets
  `p_`, a keyword gets `_`, clashes get `_2`, ...) and mapped back through `FlatParam.path`;
- arrays keep their item type when it is a scalar; arrays of objects become `list[dict]`;
- what cannot be expressed (bounds, patterns, formats, defaults, item properties, unions) is listed in
  `ToolSurface.losses`, one line per feature and path. `schema_differences` compares the schema TRL
  derives with our `ToolSpec` and must find exactly those losses.

`arguments_from_flat` maps the flat arguments a model produced back to the tool's nested arguments;
`None` for an optional parameter means "not given".
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from envfactory.spec import JSONObject, JSONValue, ToolSpec
from envfactory.spec.training import FlatParam, ScalarType, ToolSurface

SEPARATOR = "__"
_SCALARS: dict[str, ScalarType] = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
# Keywords a flat property carries (veRL keeps these; TRL too): everything else of a leaf is a loss.
_CARRIED = frozenset({"type", "description", "enum", "items", "properties", "required", "title"})
_PY_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict,
                             "array": list, "any": Any}
# Words that would end a docstring's summary or argument block if they started a line.
_SECTION = re.compile(r"\b(Args|Returns|Raises):", re.IGNORECASE)


def identifier(name: str, taken: set[str]) -> str:
    """A Python identifier for `name`, unique among `taken` (which it joins)."""
    base = re.sub(r"\W", "_", name, flags=re.ASCII) or "arg"
    if base[0].isdigit():
        base = "p_" + base
    if keyword.iskeyword(base) or base in {"self", "cls"}:
        base += "_"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


def one_line(text: str) -> str:
    """Text safe inside a Google-style docstring: one line, no section headers, no trailing `(choices:`."""
    flat = " ".join(str(text).split())
    flat = _SECTION.sub(lambda m: m.group(1) + " -", flat)
    return flat.replace("(choices:", "(options:")


def _json_type(schema: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The single JSON type of a schema and whether it is nullable (None when not a single type)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return (rest[0] if len(rest) == 1 else None), "null" in kind
    if isinstance(kind, str):
        return kind, False
    if schema.get("enum"):
        types = {type(v) for v in schema["enum"]}
        if types == {str}:
            return "string", False
    return None, False


class _Flattener:
    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.params: list[FlatParam] = []
        self.losses: list[str] = []
        self.taken: set[str] = set()

    def loss(self, path: list[str], what: str) -> None:
        self.losses.append(f"{self.tool}:{'.'.join(path) or '(arguments)'}: {what}")

    def leaf_losses(self, path: list[str], schema: Mapping[str, Any], extra_carried: Iterable[str] = (),
                    carried_only: frozenset[str] | None = None) -> None:
        carried = (carried_only if carried_only is not None else _CARRIED) | set(extra_carried)
        for key in sorted(schema):
            if key not in carried:
                self.loss(path, f"{key}={_short(schema[key])} dropped")

    def walk(self, schema: Mapping[str, Any], path: list[str], names: list[str], required: bool) -> None:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        needed = set(schema.get("required") or [])
        if path:
            self.leaf_losses(path, schema, ("additionalProperties",) if schema.get("additionalProperties") is False else ())
            if schema.get("description"):
                self.loss(path, "description of the object dropped (its fields are flattened)")
        elif schema.get("additionalProperties") not in (None, False):
            self.loss(path, "additionalProperties dropped")
        for key, sub in properties.items():
            sub = sub if isinstance(sub, dict) else {}
            child_path = [*path, key]
            child_required = required and key in needed
            kind, nullable = _json_type(sub)
            if kind == "object" and isinstance(sub.get("properties"), dict) and sub["properties"]:
                self.walk(sub, child_path, [*names, key], child_required)
                continue
            self.add(sub, child_path, [*names, key], child_required, kind, nullable)

    def add(self, sub: Mapping[str, Any], path: list[str], names: list[str], required: bool, kind: str | None,
            nullable: bool) -> None:
        name = identifier(SEPARATOR.join(names), self.taken)
        item_type: ScalarType | None = None
        json_type: ScalarType
        if kind in _SCALARS:
            json_type = _SCALARS[kind]
        elif kind == "array":
            json_type = "array"
            raw_items = sub.get("items")
            items: Mapping[str, Any] = raw_items if isinstance(raw_items, dict) else {}
            item_kind, _ = _json_type(items)
            if item_kind in _SCALARS:
                item_type = _SCALARS[item_kind]
                self.leaf_losses([*path, "[]"], items, carried_only=frozenset({"type"}))
            elif item_kind == "object":
                item_type = "object"
                if items.get("properties"):
                    self.loss(path, "item properties dropped (items are free objects)")
            else:
                self.loss(path, "item schema dropped (items of any type)")
        elif kind == "object":
            json_type = "object"
        else:
            json_type = "any"
            self.loss(path, "type dropped (not a single JSON type)")
        self.leaf_losses(path, sub)
        enum = sub.get("enum") if isinstance(sub.get("enum"), list) and sub.get("enum") else None
        if enum is not None and not all(isinstance(v, str | int | bool) for v in enum):
            self.loss(path, f"enum={_short(enum)} dropped (values a Literal cannot hold)")
            enum = None
        description = one_line(sub.get("description") or sub.get("title") or "")
        if not description:
            description = "(" + ".".join(path) + ")"
        self.params.append(FlatParam(name=name, path=path, json_type=json_type, item_type=item_type,
                                     nullable=nullable, description=description, required=required, enum=enum))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def tool_surface(spec: ToolSpec, taken_functions: set[str] | None = None) -> ToolSurface:
    """The flat, typed surface of one tool (see the module docstring)."""
    flat = _Flattener(spec.name)
    flat.walk(spec.input_schema, [], [], True)
    function = identifier(spec.name, taken_functions if taken_functions is not None else set())
    if function != spec.name:
        flat.losses.append(f"{spec.name}: name mapped to {function}")
    description = one_line(spec.description) or spec.name
    return ToolSurface(tool=spec.name, function=function, description=description, params=flat.params,
                       losses=flat.losses)


def tool_surfaces(specs: Iterable[ToolSpec]) -> list[ToolSurface]:
    """Surfaces of a tool set, with function names unique across it."""
    taken: set[str] = set()
    return [tool_surface(spec, taken) for spec in specs]


def python_type(param: FlatParam) -> Any:
    """The type hint of a flat parameter (`T | None` when optional or nullable)."""
    hint: Any
    if param.enum is not None:
        hint = Literal.__getitem__(tuple(param.enum))
    elif param.json_type == "array":
        hint = list.__class_getitem__(_PY_TYPES[param.item_type]) if param.item_type is not None else list
    else:
        hint = _PY_TYPES[param.json_type]
    if not param.required or param.nullable:
        hint = hint | None
    return hint


def docstring(surface: ToolSurface) -> str:
    """The Google-style docstring `get_json_schema` reads."""
    lines = [surface.description]
    if surface.params:
        lines += ["", "Args:"]
        lines += [f"    {p.name}: {p.description}" for p in surface.params]
    lines += ["", "Returns:", "    The tool's result as JSON text, or an error object naming the problem."]
    return "\n".join(lines)


def arguments_from_flat(surface: ToolSurface, flat: Mapping[str, Any]) -> tuple[JSONObject, list[str]]:
    """The nested arguments for `flat` (the model's keyword arguments) and the names it used that the
    surface does not know (passed through unchanged so the session can reject them)."""
    known = {p.name: p for p in surface.params}
    out: JSONObject = {}
    unknown: list[str] = []
    for name, value in flat.items():
        param = known.get(name)
        if param is None:
            unknown.append(name)
            out[name] = value
            continue
        if value is None and not param.required:
            continue
        node: dict[str, JSONValue] = out
        for key in param.path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[param.path[-1]] = value
    return out, unknown


def expected_schema(surface: ToolSurface) -> JSONObject:
    """The flat JSON schema a lossless derivation of `surface` gives (what `get_json_schema` should produce,
    up to `nullable` on optional parameters)."""
    properties: JSONObject = {}
    for p in surface.params:
        prop: dict[str, JSONValue] = {"description": p.description}
        if p.enum is not None:
            prop["enum"] = list(p.enum)
        if p.json_type != "any":
            prop["type"] = p.json_type
        if p.json_type == "array" and p.item_type is not None:
            prop["items"] = {"type": p.item_type} if p.item_type != "any" else {}
        properties[p.name] = prop
    required: list[JSONValue] = [p.name for p in surface.params if p.required]
    schema: JSONObject = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _normal(prop: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in prop.items() if k != "nullable"}
    if isinstance(out.get("type"), list):
        rest = [t for t in out["type"] if t != "null"]
        out["type"] = rest[0] if len(rest) == 1 else rest
    return out


def schema_differences(spec: ToolSpec, surface: ToolSurface, derived: Mapping[str, Any]) -> list[str]:
    """Every way `derived` (a `get_json_schema` result, OpenAI function form) differs from what `spec`
    says, as loss lines: the surface's predicted losses when the derivation is faithful to the surface,
    plus one line per unexpected difference (a property missing, a type changed, ...)."""
    function = derived.get("function", derived)
    found: list[str] = list(surface.losses)
    if function.get("name") != surface.function:
        found.append(f"{spec.name}: derived name {function.get('name')!r} is not {surface.function!r}")
    if one_line(function.get("description") or "") != surface.description:
        found.append(f"{spec.name}: description changed to {_short(function.get('description'))}")
    want = expected_schema(surface)
    want_props: dict[str, Any] = dict(want["properties"])  # type: ignore[arg-type]
    want_required = sorted(str(n) for n in want.get("required") or [])  # type: ignore[union-attr]
    got = function.get("parameters") or {}
    got_props = got.get("properties") or {}
    for name, prop in want_props.items():
        if name not in got_props:
            found.append(f"{spec.name}:{name}: missing from the derived schema")
        elif _normal(got_props[name]) != prop:
            found.append(f"{spec.name}:{name}: derived {_short(_normal(got_props[name]))}, expected {_short(prop)}")
    for name in sorted(set(got_props) - set(want_props)):
        found.append(f"{spec.name}:{name}: derived but not in the tool")
    if sorted(got.get("required") or []) != want_required:
        found.append(f"{spec.name}: required {sorted(got.get('required') or [])} != {want_required}")
    return found
