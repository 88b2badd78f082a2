"""The ignored-argument probe (issue 19, deliverable 2): does each tool argument have an observable effect?

Contract:
- `probe_arguments(env, *, seed)` returns one `ArgumentProbe` per (tool, argument) of the tools'
  input schemas. For each tool a base call that succeeds is looked for (arguments generated with
  `CallPlanner` from a session on the default seed warmed up with a few writes; failing that, arguments
  taken together from one live record: its fields and its key); each argument is then
  varied — left out when optional, set to another value of its schema (another enum value, the other
  boolean, another number, a value present in the state, a value nothing holds) — and the base and each
  variant are called on forks of the same session (same state, clock and RNG), so any difference is the
  argument's doing. The effect is `error` (a variant fails where the base succeeded, or fails
  differently: validates or addresses), `output` (the result differs: filters, scopes, echoes),
  `state` (the state after the call differs: writes), `none` (no variant changed anything: silently
  ignored) or `unprobed` (no base call succeeded, or no variant other than a schema rejection could
  be made). A variant the session's input-schema check rejects (`invalid_arguments` "invalid arguments
  for <tool>: ...") shows nothing about the implementation and is not counted as an effect.
- Deterministic: every value comes from `random.Random(f"{seed}:probe:{tool}")` and live state.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Mapping
from typing import Any

import orjson

from envfactory.runtime import Environment, Session, open_session
from envfactory.spec.behaviour import ArgumentProbe, ProbeEffect
from envfactory.spec.schema_tools import json_type, object_properties
from envfactory.verify.argsgen import generate_arguments
from envfactory.verify.envchecks_planner import CallPlanner, remember_outputs

__all__ = ["BASE_TRIES", "open_initial", "probe_arguments"]

BASE_TRIES = 16
WARMUP_ROUNDS = 4
_NOTHING = "zz-probe-nothing"
_CREATING = re.compile(r"(^|_)(create|add|put|insert|post|register|new)(_|$)", re.IGNORECASE)
_DELETING = re.compile(r"(^|_)(delete|remove|destroy|purge|cancel)(_|$)", re.IGNORECASE)


def _outcome(session: Session, tool: str, args: dict[str, Any]) -> tuple[str, str, str]:
    result = session.call(tool, args)
    kind: str = result.error.kind if result.error is not None else "ok"
    if result.error is not None and result.error.message.startswith(f"invalid arguments for {tool}"):
        kind = "schema"  # the session's input-schema check, before the implementation runs
    output = orjson.dumps(result.output, option=orjson.OPT_SORT_KEYS, default=str).decode() if result.ok else ""
    return kind, output, session.hash()


def _alternatives(schema: Any, current: Any, present: bool, required: bool, pool: list[str],
                  rng: random.Random) -> list[tuple[str, Any]]:
    """(label, value) variants of one argument; the value `_OMIT` leaves it out."""
    out: list[tuple[str, Any]] = []
    if present and not required:
        out.append(("left out", _OMIT))
    schema = schema if isinstance(schema, dict) else {}
    kind = json_type(schema)
    if isinstance(schema.get("enum"), list):
        out += [(f"enum {v!r}", v) for v in schema["enum"] if v != current][:2]
    elif kind == "boolean":
        out.append(("flipped", not current if isinstance(current, bool) else True))
    elif kind in ("integer", "number"):
        low = schema.get("minimum", 1)
        base = current if isinstance(current, int | float) and not isinstance(current, bool) else low
        out += [(f"= {v}", v) for v in dict.fromkeys([low, base + 1, base + 2]) if v != current][:2]
    elif kind == "string":
        others = [v for v in pool if v != current][:1]
        out += [("another value in the state", v) for v in others]
        if not ({"pattern", "format"} & set(schema)):
            out.append(("a value nothing holds", _NOTHING))
    try:
        generated = generate_arguments({"type": "object", "properties": {"v": schema}, "required": ["v"]}, rng, {})["v"]
        if generated != current and all(generated != v for _, v in out):
            out.append(("another generated value", generated))
    except (ValueError, RecursionError):
        pass
    return out


def open_initial(env: Environment, initial: str, seed: int) -> Session:
    """A fresh session on the `default` seed (or the empty state when there is none, or when `initial` is "empty")."""
    state = env.seeds.get("default") if initial == "default" else None
    if state is None:
        state = env.backend.load_state(None).to_json()
    return open_session(env, state, seed=seed)



class _Omit:
    """Marker: the variant leaves the argument out."""


_OMIT = _Omit()


def _base(env: Environment, planner: CallPlanner, session: Session, seen: dict[str, list[str]], tool: str,
          rng: random.Random) -> dict[str, Any] | None:
    """Arguments of `tool` that succeed on `session` (tried on forks), optional arguments filled in when they
    can be. For a read, the successful call with the largest output is kept (a filter shows its effect
    only on a result it can narrow), the arguments taken together from live records included (a list
    scoped by several parent arguments shows a record only when they all match); for a write, the first
    success."""
    schema = env.tools[tool].spec.input_schema
    best: tuple[int, dict[str, Any]] | None = None
    for attempt in range(BASE_TRIES):
        args = planner.arguments(tool, session, seen, rng)
        if attempt % 2 == 0:  # every other try asks for every optional argument too
            full = {**schema, "required": list(object_properties(schema))}
            with contextlib.suppress(ValueError, RecursionError):
                args = {**generate_arguments(full, rng, planner.pool(session, seen)), **args}
        result = session.fork().call(tool, args)
        if not result.ok:
            continue
        if env.tools[tool].writes:
            return args
        size = len(orjson.dumps(result.output, default=str))
        if best is None or size > best[0]:
            best = (size, args)
    if best is None or not env.tools[tool].writes:  # arguments that belong together, from live records
        for args in _record_arguments(planner, session, tool, rng):
            result = session.fork().call(tool, args)
            if not result.ok:
                continue
            if best is None and env.tools[tool].writes:
                return args
            size = len(orjson.dumps(result.output, default=str))
            if best is None or size > best[0]:
                best = (size, args)
    return best[1] if best is not None else None


def _record_arguments(planner: CallPlanner, session: Session, tool: str, rng: random.Random,
                      per_collection: int = 4) -> list[dict[str, Any]]:
    """Setup only: for the first records of each collection of the live state, generated arguments with
    every argument the record has a field for set to that field, an array argument named as the plural
    of a field (`PolicyNames`) to that one value, a search argument to an EQUAL filter on the record's
    first string field, and key arguments of that collection set to the
    record's key."""
    state = session.state_json()
    collections = state.get("collections") if isinstance(state, dict) else None
    if not isinstance(collections, dict):
        return []
    props = object_properties(planner.env.tools[tool].spec.input_schema)
    names = set(props)
    out: list[dict[str, Any]] = []
    for collection, records in sorted(collections.items()):
        if not isinstance(records, dict):
            continue
        for key, record in list(sorted(records.items()))[:per_collection]:
            if not isinstance(record, dict):
                continue
            args = planner.arguments(tool, session, {}, rng)
            args.update({n: record[n] for n in names if isinstance(record.get(n), str | int | float | bool)})
            args.update({n: key for n in names if planner.key_args.get(n) == collection})
            args.update({n: [record[n[:-1]]] for n in names if n.endswith("s") and n not in record  # PolicyNames
                         and isinstance(record.get(n[:-1]), str) and json_type(props.get(n) or {}) == "array"})
            args.update({n: [{"name": f, "operator": "EQUAL", "values": [record[f]]}] for n in names  # search filters
                         if _is_search(props.get(n)) for f in [f for f in sorted(record) if isinstance(record[f], str)][:1]})
            out.append(args)
    return out


def _is_search(schema: Any) -> bool:
    """An AWS-style search argument: an array of `{name, operator, values}` objects."""
    items = schema.get("items") if isinstance(schema, dict) and json_type(schema) == "array" else None
    return isinstance(items, dict) and {"name", "values"} <= set(object_properties(items))


def _names(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _probe_one(session: Session, tool: str, base: dict[str, Any], arg: str, schema: Any, required: bool,
               pool: Mapping[str, list[str]], rng: random.Random) -> tuple[ProbeEffect, str]:
    reference = _outcome(session.fork(), tool, base)
    variants = _alternatives(schema, base.get(arg), arg in base, required, list(pool.get(arg, ())), rng)
    tried = []
    for label, value in variants:
        args = {k: v for k, v in base.items() if k != arg}
        if not isinstance(value, _Omit):
            args[arg] = value
        kind, output, state = _outcome(session.fork(), tool, args)
        if kind == "schema":
            continue  # the schema validator's answer says nothing about the implementation
        tried.append(label)
        if kind != reference[0]:
            return "error", f"{label}: {kind} where the base call gave {reference[0]}"
        if output != reference[1]:
            return "output", f"{label}: the result differs"
        if state != reference[2]:
            return "state", f"{label}: the state after the call differs"
    if not tried:
        return "unprobed", "no variant the schema accepts"
    return "none", "no change from: " + ", ".join(tried)


def probe_arguments(env: Environment, *, seed: int = 0) -> list[ArgumentProbe]:
    """One probe per tool argument (module contract)."""
    planner = CallPlanner(env)
    session = open_initial(env, "default", seed)
    seen: dict[str, list[str]] = {}
    warm = random.Random(f"{seed}:probe:warmup")
    # Setup only: creating tools first, deleting ones never, so that reads and writes find records.
    writes = sorted((t for t in planner.writes if not _DELETING.search(t)), key=lambda t: not _CREATING.search(t))
    for _ in range(WARMUP_ROUNDS):
        for tool in writes:
            remember_outputs(session.call(tool, planner.arguments(tool, session, seen, warm)), seen)
    probes: list[ArgumentProbe] = []
    for tool in planner.tools:
        rng = random.Random(f"{seed}:probe:{tool}")
        schema = env.tools[tool].spec.input_schema
        required = set(_names(schema.get("required")))
        base = _base(env, planner, session, seen, tool, rng)
        pool = planner.pool(session, seen)
        for arg, sub in sorted(object_properties(schema).items()):
            effect: ProbeEffect
            if base is None:
                effect, evidence = "unprobed", "no call of the tool succeeded"
            else:
                effect, evidence = _probe_one(session, tool, base, arg, sub, arg in required, pool, rng)
            probes.append(ArgumentProbe(tool=tool, argument=arg, required=arg in required,
                                        effect=effect, evidence=evidence))
    return probes
