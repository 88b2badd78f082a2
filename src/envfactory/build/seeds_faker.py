"""The next seed generator (issue 20): realistic seed states from Faker, generated deterministically from
the record schemas, the collections' relations and state machines, and the operations' own examples.

Not yet the build's: the shipped library was built with `build.seeds`, and a build must reproduce it
byte for byte (`library reproduce`). This generator becomes the build's together with the library
rebuild that re-records the seed-realism answers. Until then `envfactory library seeds-report
--regenerate-into DIR` (`build.seed_regen`) applies it to every shipped environment and measures it.

Contract:
- `seed_state(source, operations)` returns a state (`{"collections": ..., "counters": ...}`) that
  fits `source`: every record is checked against its record schema field by field (a value that does
  not fit is replaced by a constrained alternative or left out; only the key is required), parents are
  seeded before children and children refer to seeded parents.
- Sizes: a collection without references (a primary one) holds `RECORDS_PER_COLLECTION` records, a
  child collection `CHILD_RECORDS` (so some parents have several children), and a collection with a
  state machine or a top-level enum at least one record per state or value (at most `MAX_RECORDS`).
- Values come from Faker through `build.fake_values`, chosen by field name, format and description
  (people, companies, emails, addresses, timestamps, URLs, amounts, prose), seeded with the
  environment's name: the same source gives the same state, and two environments do not share names.
  Enum fields rotate through their values; a field under a transition takes every state of its
  machine in turn.
- Related records agree: a record that refers to two collections, one of which refers to the other
  (an account → a hold and a matter, the hold → a matter), gets the matter of its hold; references
  inside arrays and objects (`items[].product_id`) hold seeded parent keys too. A record's update or
  end time is never before its creation or start time.
- Example-aware and consistent with the environment's counters and status enums exactly as `build.seeds`
  is (the same helpers: `example_keys`, the children count, the unique-field fix).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from envfactory.build.fake_values import FakeValues, RecordFaker, slugify
from envfactory.build.naming import snake

# Shared with the generator the shipped library was built with (build.seeds): the same relations logic.
from envfactory.build.seeds import _count_children, _parents_first, _unique_fix, example_keys
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import DeclarativeEnvSource, JSONObject, Operation
from envfactory.spec.declarative import CollectionDecl
from envfactory.spec.schema_tools import json_type, object_properties

RECORDS_PER_COLLECTION = 8
CHILD_RECORDS = 12
MAX_RECORDS = 16  # a state machine or enum with more values than this is covered only in part
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\dZ)?")


def seed_state(source: DeclarativeEnvSource, operations: Sequence[Operation]) -> JSONObject:
    """The default seed state of `source` (see the module doc)."""
    order = _parents_first(source)
    state: dict[str, dict[str, Any]] = {name: {} for name in order}
    counters: dict[str, int] = {}
    wanted = example_keys(source, operations)
    fakes = FakeValues(source.meta.name, slug_names=any(p.provider == "aws" for p in source.meta.provenance))
    for name in order:
        decl = source.collections[name]
        count = record_count(decl)
        keys = [_generated_key(decl, fakes.record(name, i), i) for i in range(1, count + 1)]
        keys = _distinct(keys)
        keys.extend(k for k in wanted.get(name, []) if k not in keys)
        for i, key in enumerate(keys, start=1):
            state[name][key] = _record(source, decl, key, fakes.record(name, i), i, state)
        if decl.id_prefix or decl.id_width:
            counters[name] = count
    _unique_fix(source, state)
    _count_children(source, state)
    out: JSONObject = {"collections": state, "counters": dict(counters)}  # type: ignore[dict-item]
    return out


def record_count(decl: CollectionDecl) -> int:
    """How many generated records a collection gets (example keys come on top): the base size, raised to
    the number of states of a machine or values of a top-level enum, at most `MAX_RECORDS`."""
    base = CHILD_RECORDS if any(r.collection for r in decl.references) else RECORDS_PER_COLLECTION
    states = [len(machine_states(decl, t.field)) for t in decl.transitions]
    enums = [len(s["enum"]) for s in object_properties(decl.record_schema).values()
             if isinstance(s, dict) and isinstance(s.get("enum"), list)]
    return min(MAX_RECORDS, max([base, *states, *enums]))


def machine_states(decl: CollectionDecl, field: str) -> list[str]:
    """Every state of the machine on `field`, in declaration order (sources, targets, initial states),
    kept to the values the field's schema allows."""
    states: list[str] = []
    for transition in decl.transitions:
        if transition.field != field:
            continue
        for old, targets in transition.allowed.items():
            states.extend([old, *targets])
        states.extend(transition.initial or [])
    allowed = object_properties(decl.record_schema).get(field, {})
    enum = allowed.get("enum") if isinstance(allowed, dict) else None
    unique = list(dict.fromkeys(states))
    return [s for s in unique if s in enum] if isinstance(enum, list) else unique


def _distinct(keys: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for n, key in enumerate(keys, start=1):
        out.append(key if key not in seen else f"{key}-{n}")
        seen.add(out[-1])
    return out


def _generated_key(decl: CollectionDecl, fake: RecordFaker, i: int) -> str:
    if decl.id_prefix or decl.id_width:
        return f"{decl.id_prefix}{i:0{decl.id_width}d}"
    schema = object_properties(decl.record_schema).get(decl.key)
    schema = schema if isinstance(schema, dict) and json_type(schema) in ("string", None) else {"type": "string"}
    value = fake.value(decl.key, {k: v for k, v in schema.items() if k != "enum"})
    text = str(value) if value not in (None, "") else fake.token([decl.key])
    if " " in text and "@" not in text and "://" not in text:
        text = slugify(text)
    validator = CompiledSchema(schema)
    if validator.is_valid(text):
        return text
    return next((alt for alt in fake.alternatives(decl.key, schema) if validator.is_valid(alt)), text)


def _record(source: DeclarativeEnvSource, decl: CollectionDecl, key: str, fake: RecordFaker, i: int,
            state: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One record: generated fields, machine states, then references to seeded parents."""
    record: dict[str, Any] = {decl.key: key}
    plain_refs = {ref.field for ref in decl.references}
    machines = {t.field for t in decl.transitions}
    for field, sub in object_properties(decl.record_schema).items():
        if field == decl.key or field in plain_refs or not isinstance(sub, dict):
            continue
        validator = CompiledSchema(sub)
        if field in machines and (states := machine_states(decl, field)):
            value: Any = states[(i - 1) % len(states)]
        elif isinstance(sub.get("enum"), list) and sub["enum"]:
            enum = sub["enum"]
            value = enum[(i - 1 + len(field)) % len(enum)]
        else:
            value = fake.value(field, sub)
        if value is not None and validator.is_valid(value):
            record[field] = value
        elif isinstance(value, str) or json_type(sub) == "string":
            fitting = next((alt for alt in fake.alternatives(field, sub) if validator.is_valid(alt)), None)
            if fitting is not None:
                record[field] = fitting
    _link(source, decl, record, i, state)
    _order_times(record)
    return record


_CREATED = ("create", "created", "creation", "start", "started", "begin", "opened", "issued")
_LATER = ("update", "updated", "modified", "modification", "last", "end", "ended", "closed", "completed", "finished")


def _order_times(record: dict[str, Any]) -> None:
    """A record is not updated or ended before it was created: swap such timestamps (same format only)."""
    stamps = {f: v for f, v in record.items() if isinstance(v, str) and _TIMESTAMP.fullmatch(v)}
    first = [f for f in stamps if snake(f).split("_")[0] in _CREATED]
    later = [f for f in stamps if snake(f).split("_")[0] in _LATER]
    for early in first:
        for late in later:
            if len(stamps[early]) == len(stamps[late]) and record[late] < record[early]:
                record[early], record[late] = record[late], record[early]


def _link(source: DeclarativeEnvSource, decl: CollectionDecl, record: dict[str, Any], i: int,
          state: dict[str, dict[str, Any]]) -> None:
    """Point the record's references at seeded parents, consistently: a parent chosen through one
    reference decides the other references its own record names (see the module doc)."""
    chosen: dict[str, str] = {}

    def refers(parent: str, target: str) -> str | None:
        """The plain field by which records of `parent` refer to `target`, if any."""
        decl_p = source.collections.get(parent)
        refs = decl_p.references if decl_p is not None else []
        return next((r.field for r in refs if r.collection == target and "." not in r.field and "[" not in r.field), None)

    # References to collections that themselves refer to the others go first: they decide the rest.
    order = sorted(decl.references, key=lambda r: -sum(refers(r.collection, o.collection) is not None
                                                        for o in decl.references))
    for ref in order:
        parent_keys = sorted(state.get(ref.collection, {}))
        if not parent_keys:
            _drop_path(record, ref.field)
            continue
        key = chosen.get(ref.collection)
        if key not in state[ref.collection]:
            key = parent_keys[(i - 1) % len(parent_keys)]
        chosen[ref.collection] = key
        parent = state[ref.collection][key]
        for other in decl.references:
            via = refers(ref.collection, other.collection)
            if (other.collection != ref.collection and via is not None and other.collection not in chosen
                    and isinstance(parent.get(via), str)):
                chosen[other.collection] = parent[via]
        _set_path(record, ref.field, key)


def _set_path(record: dict[str, Any], path: str, value: str) -> None:
    """Set `value` at a reference path (`field`, `items[].product_id`, `owner.id`) where the record has it."""
    head, _, rest = path.partition(".")
    if not rest:
        if head.endswith("[]"):
            record[head[:-2]] = [value]
        else:
            record[head] = value
        return
    if head.endswith("[]"):
        items = record.get(head[:-2])
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                _set_path(item, rest, value)
    elif isinstance(record.get(head), dict):
        _set_path(record[head], rest, value)


def _drop_path(record: dict[str, Any], path: str) -> None:
    """No parent to point at: leave out the top-level field that would hold the reference."""
    record.pop(path.split(".")[0].removesuffix("[]"), None)

