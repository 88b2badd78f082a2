"""Grounding: the initial state of one environment for one task (DESIGN §6).

Contract:
- `ground_state(senv, collections, rng, per_collection, shared)` starts from the environment's `default`
  seed state (else its first seed, else the empty state) and adds `per_collection` records to every
  collection the chain touches, parents first (a collection whose records reference another is grounded
  after it). Records are generated from the collection's record schema (`spec.schema_sample`) with every
  declared field present (a later step may read any of them), with the
  key the engine would give the next record, references to existing keys, transition fields at an
  allowed starting value and unique fields made unique. `shared` (entity kind → value) puts the same
  user-level value into matching fields of every environment of a task, so the environments agree.
- Everything comes from `rng`: the same seed gives the same state. The state is *not* validated here;
  the caller loads it in a session, which rejects a state that does not fit (the reason is recorded).
- Environments without a declarative model keep their seed state unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from envfactory.spec.declarative import CollectionDecl, DeclarativeModel
from envfactory.spec.schema_sample import generate_value
from envfactory.synth.envs import SynthEnv, entity_kind, shared_for


class GroundingError(ValueError):
    """No initial state could be made (a required reference has nothing to point at)."""


def base_state(senv: SynthEnv) -> Any:
    """A private copy of the environment's default seed state (or first seed, or the empty state)."""
    seeds = senv.env.seeds
    state = seeds.get("default")
    if state is None and seeds:
        state = seeds[sorted(seeds)[0]]
    if state is None:
        return {"collections": {}, "counters": {}} if senv.model is not None else None
    return orjson.loads(orjson.dumps(state))


def _parents_first(model: DeclarativeModel, wanted: Iterable[str]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting or name not in model.collections:
            return
        visiting.add(name)
        for ref in model.collections[name].references:
            if ref.collection != name:
                visit(ref.collection)
        visiting.discard(name)
        order.append(name)

    for name in sorted(set(wanted)):
        visit(name)
    return order


def _next_key(decl: CollectionDecl, name: str, state: dict[str, Any]) -> str:
    counters: dict[str, int] = state.setdefault("counters", {})
    records: dict[str, Any] = state["collections"].setdefault(name, {})
    counter = int(counters.get(name, 0))
    while True:
        counter += 1
        key = f"{decl.id_prefix}{counter:0{decl.id_width}d}"
        if key not in records:
            counters[name] = counter
            return key


def _set_reference(record: Any, parts: list[str], keys: list[str], rng: random.Random) -> bool:
    """Point every value at `parts` (a reference path, `[]` crossing arrays) to an existing key."""
    if not parts or not isinstance(record, dict):
        return True
    head, rest = parts[0], parts[1:]
    name, crosses = head.removesuffix("[]"), head.endswith("[]")
    if name not in record:
        return True
    if crosses:
        items = record[name]
        if not isinstance(items, list):
            return False
        if not rest:
            record[name] = [rng.choice(keys) for _ in items]
            return True
        return all(_set_reference(item, rest, keys, rng) for item in items)
    if not rest:
        record[name] = rng.choice(keys)
        return True
    return _set_reference(record[name], rest, keys, rng)


def generate_record(model: DeclarativeModel, name: str, state: dict[str, Any], rng: random.Random,
                    shared: Mapping[str, Any]) -> str:
    """Add one generated record to collection `name` of `state`; returns its key."""
    decl = model.collections[name]
    record = generate_value(decl.record_schema, rng, name=name)
    if not isinstance(record, dict):
        raise GroundingError(f"{name}: the record schema does not describe an object")
    properties = decl.record_schema.get("properties")
    props: dict[str, Any] = properties if isinstance(properties, dict) else {}
    listed = decl.record_schema.get("required")
    required = {name for name in listed if isinstance(name, str)} if isinstance(listed, list) else set()
    for field, schema in sorted(props.items()):  # full records: a chain may read any field of them
        if field not in record and isinstance(schema, dict):
            record[field] = generate_value(schema, rng, name=field)
        items = schema.get("items") if isinstance(schema, dict) else None
        if record.get(field) == [] and isinstance(items, dict) and schema.get("maxItems") != 0:
            record[field] = [generate_value(items, rng, name=field)]  # an element a later step can take
    for ref in decl.references:
        keys = sorted(state["collections"].get(ref.collection, {}))
        top = ref.field.split(".", 1)[0].removesuffix("[]")
        if not keys:
            if top in required:
                raise GroundingError(f"{name}.{ref.field} must reference {ref.collection}, which has no records")
            record.pop(top, None)
            continue
        if top not in record and top in required:
            continue  # the state check will name the missing field
        if not _set_reference(record, ref.field.split("."), keys, rng):
            record.pop(top, None)
    for transition in decl.transitions:
        starts = transition.initial or sorted(transition.allowed)
        if starts:
            record[transition.field] = rng.choice(starts)
    references = {ref.field.split(".", 1)[0].removesuffix("[]") for ref in decl.references}
    for field, schema in sorted(props.items()):
        value = shared_for(field, entity_kind(field, schema) if isinstance(schema, dict) else None, shared)
        if value is not None and field != decl.key and field not in references:
            record[field] = value
    existing = state["collections"].setdefault(name, {})
    for fields in decl.unique:
        for field in fields:
            value = record.get(field)
            if isinstance(value, str) and any(other.get(field) == value for other in existing.values()):
                record[field] = f"{value} {len(existing) + 1}"
    key = _next_key(decl, name, state)
    record[decl.key] = key
    existing[key] = record
    return key


def ground_state(senv: SynthEnv, collections: Iterable[str], rng: random.Random, per_collection: int,
                 shared: Mapping[str, Any]) -> tuple[Any, dict[str, list[str]]]:
    """The initial state and, per collection, the keys of the records added for this task."""
    state = base_state(senv)
    model = senv.model
    added: dict[str, list[str]] = {}
    if model is None or not isinstance(state, dict):
        return state, added
    state.setdefault("collections", {})
    for name in _parents_first(model, collections):
        for _ in range(per_collection):
            added.setdefault(name, []).append(generate_record(model, name, state, rng, shared))
    return state, added


def touched_collections(senv: SynthEnv, tools: Iterable[str]) -> list[str]:
    """Collections the given tools (environment tool names) read or write, and those they reference."""
    names: set[str] = set()
    for tool in tools:
        facts = senv.facts.get(tool)
        if facts is None or facts.collection is None:
            continue
        names.add(facts.collection)
        names.update(facts.references.values())
    return sorted(names)
