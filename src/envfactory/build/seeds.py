"""Seed states for compiled environments, generated deterministically from the record schemas and the
operations' own examples.

Contract:
- `seed_state(source, operations)` returns a state (`{"collections": ..., "counters": ...}`) that
  fits `source`: every record is checked against its record schema field by field (a value that does
  not fit is left out; only the key is required), parents are seeded before children and children
  refer to seeded parents.
- Values look real by field name and format: emails, RFC 3339 timestamps, currencies, names, titles,
  URLs, amounts. No randomness: the n-th record of a collection is always the same.
- Example-aware: when an example of a get/update/delete tool (or of a create under a parent) names a
  key, a record under that key is seeded, so scenarios built from the examples find it. Keys a create
  example would make itself are never seeded (the create would then fail as a duplicate).
- Consistent with the environment's rules: a field that a child's create `adjust`s by one through a
  reference (a counter, `ProgramCount`) holds the number of seeded children of each record; status
  fields take values of their `enum` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import DeclarativeEnvSource, JSONObject, Operation
from envfactory.spec.declarative import AdjustEffect, ArgExpr, ConstExpr
from envfactory.spec.schema_tools import json_type, object_properties

RECORDS_PER_COLLECTION = 2
_FIRST = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Riley")
_LAST = ("Morgan", "Lee", "Garcia", "Nguyen", "Patel", "Kim")
_WORDS = ("Quarterly report", "Team offsite", "Invoice follow-up", "Product launch", "Weekly sync", "Budget review")


def seed_state(source: DeclarativeEnvSource, operations: Sequence[Operation]) -> JSONObject:
    """The default seed state of `source` (see the module doc)."""
    order = _parents_first(source)
    state: dict[str, dict[str, Any]] = {name: {} for name in order}
    counters: dict[str, int] = {}
    wanted = example_keys(source, operations)
    for name in order:
        decl = source.collections[name]
        schema = decl.record_schema
        validators = {f: CompiledSchema(s) for f, s in object_properties(schema).items() if isinstance(s, dict)}
        parents = {ref.field: ref.collection for ref in decl.references}
        keys: list[str] = []
        for i in range(1, RECORDS_PER_COLLECTION + 1):
            keys.append(f"{decl.id_prefix}{i:0{decl.id_width}d}" if decl.id_prefix or decl.id_width else _key_value(decl.key, i))
        keys.extend(k for k in wanted.get(name, []) if k not in keys)
        for i, key in enumerate(keys, start=1):
            record: dict[str, Any] = {decl.key: key}
            for field, sub in object_properties(schema).items():
                if field == decl.key:
                    continue
                if field in parents:
                    parent_keys = sorted(state.get(parents[field], {}))
                    if parent_keys:
                        record[field] = parent_keys[(i - 1) % len(parent_keys)]
                    continue
                value = sample_value(field, sub, i)
                if value is not None and validators[field].is_valid(value):
                    record[field] = value
            state[name][key] = record
        if decl.id_prefix or decl.id_width:
            counters[name] = RECORDS_PER_COLLECTION
    _unique_fix(source, state)
    _count_children(source, state)
    out: JSONObject = {"collections": state, "counters": dict(counters)}  # type: ignore[dict-item]
    return out


def _count_children(source: DeclarativeEnvSource, state: dict[str, dict[str, Any]]) -> None:
    """Set every counter field to the number of seeded children that refer to its record."""
    for tool in source.tools:
        if tool.operation.kind != "create":
            continue
        child = tool.operation.collection
        for effect in tool.operation.effects:
            if not (isinstance(effect, AdjustEffect) and isinstance(effect.key, ArgExpr)
                    and isinstance(effect.by, ConstExpr) and effect.by.value == 1):
                continue
            via = effect.key.path
            for parent_key, parent in state.get(effect.collection, {}).items():
                parent[effect.field] = sum(1 for r in state.get(child, {}).values() if r.get(via) == parent_key)


def _parents_first(source: DeclarativeEnvSource) -> list[str]:
    done: list[str] = []
    pending = list(source.collections)
    while pending:
        progressed = False
        for name in list(pending):
            refs = {r.collection for r in source.collections[name].references} - {name}
            if refs <= set(done):
                done.append(name)
                pending.remove(name)
                progressed = True
        if not progressed:  # a reference cycle: seed the rest in declaration order
            done.extend(pending)
            break
    return done


def _unique_fix(source: DeclarativeEnvSource, state: dict[str, dict[str, Any]]) -> None:
    """Generated values repeat across records only by accident; make unique fields differ by key."""
    for name, decl in source.collections.items():
        for group in decl.unique:
            for field in group:
                if field == decl.key:
                    continue
                seen: set[str] = set()
                for key, record in state[name].items():
                    value = record.get(field)
                    if isinstance(value, str) and value in seen:
                        record[field] = f"{value}-{key}"
                    seen.add(record.get(field))


def example_keys(source: DeclarativeEnvSource, operations: Sequence[Operation]) -> dict[str, list[str]]:
    """Per collection, the keys the operations' examples name (records that must exist for them)."""
    by_id = {op.id: op for op in operations}
    wanted: dict[str, list[str]] = {}
    for tool in source.tools:
        if tool.source is None or tool.source.operation_id not in by_id:
            continue
        op = by_id[tool.source.operation_id]
        decl = source.collections[tool.operation.collection]
        ours = {orig: our for our, orig in tool.source.field_names.items()}
        for example in op.examples:
            args = example.input if isinstance(example.input, dict) else {}
            for original, value in args.items():
                if not isinstance(value, str) or not value:
                    continue
                our = ours.get(original, original)
                key_arg = tool.operation.key_arg or decl.key
                if tool.operation.kind in ("get", "update", "patch", "delete") and our == key_arg:
                    wanted.setdefault(tool.operation.collection, []).append(value)
                for ref in decl.references:
                    if our == ref.field:
                        wanted.setdefault(ref.collection, []).append(value)
    return {name: list(dict.fromkeys(keys)) for name, keys in wanted.items()}


def _key_value(key: str, i: int) -> str:
    lower = key.lower()
    if "url" in lower:
        return f"https://example.com/{key.lower()}/{i}"
    if "arn" in lower:
        return f"arn:aws:service:us-east-1:123456789012:resource/{i}"
    if "email" in lower or "identity" in lower or "address" in lower:
        return f"{_FIRST[i % len(_FIRST)].lower()}.{_LAST[i % len(_LAST)].lower()}@example.com"
    return f"{key.lower()}-{i}"


def sample_value(field: str, schema: Any, i: int, depth: int = 0) -> Any:
    """A realistic value for `field` under `schema`, the same for the same (field, schema, i)."""
    if not isinstance(schema, dict) or depth > 3:
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[(i - 1) % len(enum)]
    kind = json_type(schema)
    lower = field.lower()
    if kind == "string" or (kind is None and not object_properties(schema)):
        return _string_value(lower, schema.get("format"), i, schema)
    if kind == "integer":
        low = schema.get("minimum", 0)
        high = schema.get("maximum")
        start = int(low) + i if isinstance(low, int | float) else i
        return min(start, int(high)) if isinstance(high, int | float) else start
    if kind == "number":
        low = schema.get("minimum", 0)
        value = round(float(low) + 10.5 * i, 2) if isinstance(low, int | float) else 10.5 * i
        high = schema.get("maximum")
        return min(value, float(high)) if isinstance(high, int | float) else value
    if kind == "boolean":
        return i % 2 == 0
    if kind == "array":
        return []
    if kind == "object":
        out: dict[str, Any] = {}
        for name in schema.get("required", []):
            value = sample_value(name, object_properties(schema).get(name), i, depth + 1)
            if value is not None:
                out[name] = value
        return out
    return None


def _string_value(lower: str, fmt: Any, i: int, schema: dict[str, Any]) -> str:
    first, last = _FIRST[(i - 1) % len(_FIRST)], _LAST[(i - 1) % len(_LAST)]
    if fmt == "date-time" or lower.endswith(("_at", "time", "timestamp", "date", "updated", "created", "due", "completed")):
        value = f"2026-01-{i:02d}T09:00:00Z" if fmt != "date" else f"2026-01-{i:02d}"
    elif fmt == "date":
        value = f"2026-01-{i:02d}"
    elif fmt == "email" or "email" in lower:
        value = f"{first.lower()}.{last.lower()}@example.com"
    elif fmt == "uri" or lower.endswith(("url", "uri", "link", "href")):
        value = f"https://example.com/{lower}/{i}"
    elif fmt == "uuid":
        value = f"00000000-0000-4000-8000-{i:012d}"
    elif "currency" in lower:
        value = ("USD", "EUR", "GBP")[(i - 1) % 3]
    elif lower in ("firstname", "first_name", "given_name", "givenname"):
        value = first
    elif lower in ("lastname", "last_name", "family_name", "familyname", "surname"):
        value = last
    elif lower.endswith("name") and lower not in ("name", "fullname", "full_name", "displayname", "display_name"):
        value = f"{lower[:-4].strip('_') or 'item'}-{i}"
    elif lower.endswith("name") or lower in ("title", "subject", "label"):
        value = f"{_WORDS[(i - 1) % len(_WORDS)]}" if lower in ("title", "subject", "label") else f"{first} {last}"
    elif "phone" in lower:
        value = f"+1-555-010{i % 10}"
    elif lower in ("description", "notes", "note", "body", "content", "message", "comment"):
        value = f"{_WORDS[(i - 1) % len(_WORDS)]} notes"
    elif lower.endswith(("id", "arn", "key")):
        value = f"{lower}-{i}"
    else:
        value = f"{lower.replace('_', ' ')} {i}".strip()
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and len(value) > max_length:
        value = value[:max_length]
    return value
