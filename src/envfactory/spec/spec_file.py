"""The file form of an `EnvSpec` (`spec.json`, version 2): schemas an environment repeats are written
once, under a top-level `$defs`, and referenced where they stood.

A compiled environment repeats its record schemas many times over: in each collection, in the state
schema and in the output schema of every tool that returns a record or a list of them. Version 2 of
`spec.json` stores each such schema once. The in-memory `EnvSpec` is always the full form: the file
form is expanded as it is read (`EnvSpec`'s validator calls `expand_spec`), so every schema that is
served (MCP `tools/list`, the HTTP API, an LLM's tool list, a local model's grammar) or validated
holds no reference at all, exactly as before.

Contract:
- Schema slots: each tool's `input_schema` and `output_schema`, the `state_schema`, and the
  `record_schema` of each collection of a declarative or hybrid implementation; within a slot, the
  sub-schemas `schema_nodes.map_subschemas` reaches. Nothing outside these slots is read or changed.
- `pack_spec(document)` takes a full-form dump and returns the file form: every sub-schema whose
  canonical JSON is at least `MIN_SHARED_BYTES` long and that occurs at least twice in the slots is
  replaced by `{"$ref": "#/$defs/NAME"}`; a definition left with one reference is written in place.
  NAME says where the schema was first met (a collection's name, `TOOL.output`, `PARENT.property`,
  `PARENT[]` for items...), in canonical order (sorted keys): equal documents give the same result,
  whatever the key order of their dicts.
  A document whose slots already hold a `$ref` (a toolkit's own local references) is returned as it
  is, without `$defs`: its references could not be told apart from shared ones.
- `expand_spec(document)` is the inverse: each reference is replaced by its definition (expanded in
  turn) and `$defs` is dropped, so `expand_spec(pack_spec(d)) == d`. A document without `$defs` is
  returned as it is. A reference to a missing definition or a reference cycle raises `ValueError`
  (which the model's validation reports).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from envfactory.spec.base import canonical_json
from envfactory.spec.schema_nodes import map_subschemas

__all__ = ["DEFS_KEY", "MIN_SHARED_BYTES", "expand_spec", "pack_spec"]

DEFS_KEY = "$defs"
"""The top-level key of a version-2 `spec.json` that holds the shared schemas."""
MIN_SHARED_BYTES = 96
"""A repeated sub-schema shorter than this (canonical JSON) stays in place: a reference would save little."""

_REF_ROOT = "#/$defs/"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]{}-]")

Slot = tuple[dict[str, Any], str, str]
"""A schema slot: the dict holding it, the key it stands under, and the name its schemas are named from."""


def _slots(document: dict[str, Any]) -> Iterator[Slot]:
    """The schema slots of a spec document, in a fixed order: collections, state, then tools."""
    implementation = document.get("implementation")
    model = implementation.get("model") if isinstance(implementation, dict) else None
    collections = model.get("collections") if isinstance(model, dict) else None
    if isinstance(collections, dict):
        for name, collection in collections.items():
            if isinstance(collection, dict) and isinstance(collection.get("record_schema"), dict):
                yield collection, "record_schema", str(name)
    if isinstance(document.get("state_schema"), dict):
        yield document, "state_schema", "state"
    tools = document.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        for key, suffix in (("input_schema", "input"), ("output_schema", "output")):
            if isinstance(tool.get(key), dict):
                yield tool, key, f"{tool.get('name', 'tool')}.{suffix}"


def _child_name(parent: str, keyword: str, key: str | int | None) -> str:
    if keyword in ("properties", "patternProperties", "$defs", "definitions"):
        return f"{parent}.{key}"
    if keyword == "items":
        return f"{parent}[]"
    if keyword == "additionalProperties":
        return f"{parent}{{}}"
    return f"{parent}.{keyword}{key}"


def _copy_document(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the containers on the way to every slot (the caller's document is never changed)."""
    copy = dict(document)
    implementation = copy.get("implementation")
    if isinstance(implementation, dict) and isinstance(implementation.get("model"), dict):
        model = dict(implementation["model"])
        if isinstance(model.get("collections"), dict):
            model["collections"] = {k: dict(v) if isinstance(v, dict) else v for k, v in model["collections"].items()}
        copy["implementation"] = {**implementation, "model": model}
    if isinstance(copy.get("tools"), list):
        copy["tools"] = [dict(t) if isinstance(t, dict) else t for t in copy["tools"]]
    return copy


class _Packer:
    """One document's sharing: counts every sub-schema, then rewrites the slots with references."""

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}
        self.first_name: dict[bytes, str] = {}
        self.names: dict[bytes, str] = {}
        self.defs: dict[str, Any] = {}

    def count(self, node: Any, name: str) -> None:
        if not isinstance(node, dict):
            return
        key = canonical_json(node)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.first_name.setdefault(key, name)
        map_subschemas(node, lambda kw, k, sub: self.count(sub, _child_name(name, kw, k)))

    def pack(self, node: Any, name: str) -> Any:
        if not isinstance(node, dict):
            return node
        key = canonical_json(node)
        if self.counts.get(key, 0) >= 2 and len(key) >= MIN_SHARED_BYTES:
            return {"$ref": _REF_ROOT + self._define(key, node)}
        return map_subschemas(node, lambda kw, k, sub: self.pack(sub, _child_name(name, kw, k)))

    def _define(self, key: bytes, node: dict[str, Any]) -> str:
        if key in self.names:
            return self.names[key]
        base = _UNSAFE.sub("_", self.first_name[key])[:120] or "schema"
        name, n = base, 1
        while name in self.defs:
            n += 1
            name = f"{base}_{n}"
        self.names[key] = name
        self.defs[name] = None  # reserved before the body is packed
        self.defs[name] = map_subschemas(node, lambda kw, k, sub: self.pack(sub, _child_name(name, kw, k)))
        return name


def _ref_name(node: Any) -> str | None:
    """The definition a bare shared reference `{"$ref": "#/$defs/NAME"}` names, else None."""
    if isinstance(node, dict) and len(node) == 1:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_ROOT):
            return ref[len(_REF_ROOT):]
    return None


def _rewrite(node: Any, fn: Callable[[str, Any], Any]) -> Any:
    """`node` with each shared reference replaced by `fn(name, reference)`, at any depth."""
    name = _ref_name(node)
    if name is not None:
        return fn(name, node)
    if not isinstance(node, dict):
        return node
    return map_subschemas(node, lambda _kw, _k, sub: _rewrite(sub, fn))


def _references(node: Any, counts: dict[str, int]) -> None:
    def tally(name: str, ref: Any) -> Any:
        counts[name] = counts.get(name, 0) + 1
        return ref

    _rewrite(node, tally)


def pack_spec(document: dict[str, Any]) -> dict[str, Any]:
    """The file form (version 2) of a full-form spec dump: repeated schemas shared under `$defs`.
    See the module docstring; the argument is not changed."""
    if any(b'"$ref"' in canonical_json(holder[key]) for holder, key, _ in _slots(document)):
        return document
    document = orjson.loads(canonical_json(document))  # names follow the content, not the dicts' key order
    packer = _Packer()
    for holder, key, name in _slots(document):
        packer.count(holder[key], name)
    packed = _copy_document(document)
    for holder, key, name in _slots(packed):
        holder[key] = packer.pack(holder[key], name)
    uses: dict[str, int] = {}
    for holder, key, _ in _slots(packed):
        _references(holder[key], uses)
    for body in packer.defs.values():
        _references(body, uses)
    kept = {name for name, n in uses.items() if n >= 2}

    def settle(name: str, ref: Any) -> Any:  # a definition used once goes back in place
        return ref if name in kept else _rewrite(packer.defs[name], settle)

    for holder, key, _ in _slots(packed):
        holder[key] = _rewrite(holder[key], settle)
    if kept:
        packed[DEFS_KEY] = {name: _rewrite(packer.defs[name], settle) for name in sorted(kept)}
    return packed


def expand_spec(document: dict[str, Any]) -> dict[str, Any]:
    """The full form of a spec document: every shared reference replaced by its definition, `$defs`
    dropped. Raises `ValueError` for a missing definition or a cycle. The argument is not changed; the
    result shares each expanded definition among its references (the model validation copies them)."""
    defs = document.get(DEFS_KEY)
    if defs is None:
        return document
    if not isinstance(defs, dict):
        raise ValueError(f"{DEFS_KEY} must be an object of schemas")
    expanded: dict[str, Any] = {}
    expanding: list[str] = []

    def resolve(name: str, ref: Any) -> Any:
        if name in expanded:
            return expanded[name]
        if name in expanding:
            raise ValueError(f"{DEFS_KEY}: the reference cycle {' -> '.join([*expanding, name])}")
        if name not in defs:
            raise ValueError(f"{ref['$ref']}: no such shared schema in {DEFS_KEY}")
        body = defs[name]
        expanding.append(name)
        expanded[name] = _rewrite(body, resolve)
        expanding.pop()
        return expanded[name]

    full = _copy_document({k: v for k, v in document.items() if k != DEFS_KEY})
    for holder, key, _ in _slots(full):
        holder[key] = _rewrite(holder[key], resolve)
    return full
