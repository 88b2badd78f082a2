"""Further scenario kinds written from the SOURCE spec (issue 19, deliverable 1; generator version 3).

Contract: `more_scenarios(tools, proposal, operations, *, pool, seed, tokens)` returns `(scenarios,
not_generated)` as `behaviour.generate_scenarios` does, for these kinds (each writer takes a
`behaviour.Draft` and a collection's `CollectionFacts`, appends its calls and returns None, or returns why
the spec does not allow the scenario); `behaviour_suite.generate_suite` and `behaviour_run.behaviour_report`
add them after the kinds of `behaviour.py`:
- `distinct` (kind `lifecycle`, id `lifecycle:<collection>:distinct`): two records created under the
  same parent → the read of each shows its own values (a create makes a new record; a read returns the
  record its key names, not the last one written). Needs a create and a read.
- `listed_values` (kind `lifecycle`, `lifecycle:<collection>:listed_values`): a record created → the list
  shows it with the values sent, for the fields the spec's list response declares for its items (a
  summary that leaves a field out is not expected to show it). Needs a create, a list, and at least one
  such field sent.
- `missing_required` (kind `validation`, `validation:<collection>:<create>:<argument>`): with one record
  created (setup), a create leaving out an argument the SOURCE operation requires (its `required`
  list, or its body's) is refused with `invalid_arguments` and the state is unchanged → the record
  created is still there. One scenario per required argument that is no parent, key or idempotency
  token.
- `outside_enum` (kind `validation`, `validation:<collection>:<create>:<argument>:enum`): the same with
  a value outside the argument's `enum` in the spec, for the create's first such argument.
Expectations come from the spec (required lists, enums, response schemas); the tools' interfaces only
phrase the calls. Deterministic as `behaviour.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from envfactory.spec import Operation, ToolSpec
from envfactory.spec.behaviour import BehaviourKind, BehaviourScenario, StepExpect
from envfactory.spec.build import Proposal
from envfactory.spec.schema_tools import flatten, json_type, object_properties
from envfactory.verify.behaviour import Draft, key_fields, spec_ref
from envfactory.verify.behaviour_facts import CollectionFacts, OpFacts, flat_name, spec_facts, write_jobs

__all__ = ["INVALID", "distinct", "listed_values", "missing_required", "more_scenarios", "outside_enum", "spec_required"]

INVALID: StepExpect = StepExpect(outcome="error", error_kinds=["invalid_arguments"], state_unchanged=True)
"""A call the spec's input rules forbid: refused as invalid, nothing written."""
_TOKEN_WORDS = ("token", "idempoten", "clientrequest", "requestid")


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _parents(draft: Draft, coll: CollectionFacts) -> dict[str, Any] | None:
    return draft.parents(coll) if coll.parent_args else {}


def distinct(draft: Draft, coll: CollectionFacts) -> str | None:
    """Two records created under one parent: each read shows its own values (module contract)."""
    read = coll.first("read")
    if read is None:
        return f"{coll.name}: no read"
    parents = _parents(draft, coll)
    if parents is None:
        return f"{coll.name}: a parent cannot be established"
    first = draft.create(coll, parents=parents)
    if first is None:
        return f"{coll.name}: no create or no record key"
    shared = {k: v for k, v in first[1].items() if k in read.required and k != coll.key_arg and _scalar(v)}
    second = draft.create(coll, parents=parents, extra=shared)  # what the read needs besides the key: the same
    if second is None:
        return f"{coll.name}: no create or no record key"
    for (key, _, fields), which in ((first, "first"), (second, "second")):
        draft.add(read, draft.address(read, coll, key, parents), StepExpect(fields=fields),
                  f"{spec_ref(read)} returns the record its key names: the {which} one created, with its own values")
    return None


def _item_fields(listing: OpFacts) -> set[str]:
    """The fields the spec's list response declares for its items (the one array of objects it holds)."""
    if listing.operation is None or not listing.operation.output_schema:
        return set()
    try:
        flat = flatten(listing.operation.output_schema) or {}
    except Exception:  # a schema too large to flatten says nothing usable here
        return set()
    if json_type(flat) == "array":
        return set(object_properties(flat.get("items") or {}))
    arrays = [s for s in object_properties(flat).values() if isinstance(s, dict) and json_type(s) == "array"
              and object_properties(s.get("items") or {})]
    return set(object_properties(arrays[0]["items"])) if len(arrays) == 1 else set()


def listed_values(draft: Draft, coll: CollectionFacts) -> str | None:
    """A record created is listed with the values sent, where the list's items declare them (module contract)."""
    listing, create = coll.first("list"), coll.first("create")
    if listing is None or create is None:
        return f"{coll.name}: no list or no create"
    declared = _item_fields(listing)
    if not declared:
        return f"{coll.name}: the spec's list response declares no item fields"
    made = draft.create(coll, setup=True)
    if made is None:
        return f"{coll.name}: no create, no record key or a parent that cannot be established"
    key, args, fields = made
    shown = {create.source_of(k): v for k, v in args.items() if k not in coll.parent_values(args) and k != coll.key_arg
             and _scalar(v) and create.source_of(k) in declared - coll.read_only}
    if not shown:
        return f"{coll.name}: no value sent is a field of the list's items"
    parents = coll.parent_values(args)
    draft.add(listing, draft.address(listing, coll, key, parents),
              StepExpect(includes=[key], key_fields=key_fields(coll), fields=shown),
              f"{spec_ref(listing)} lists the record with the fields its items declare ({', '.join(sorted(shown))})")
    read = coll.first("read")
    if read is not None:
        draft.add(read, draft.address(read, coll, key, parents), StepExpect(fields=fields),
                  f"{spec_ref(read)} returns the record listed")
    return None


def spec_required(op: OpFacts) -> list[str]:
    """Our names of the arguments the SOURCE operation requires (its `required` list and, for a body
    parameter, the body's), in the spec's order; those the tool does not take are left out."""
    if op.operation is None:
        return []
    try:
        schema = flatten(op.operation.input_schema) or {}
    except Exception:  # see _item_fields
        return []
    props, raw = object_properties(schema), object_properties(op.operation.input_schema)
    names: list[str] = []
    for name in schema.get("required") or []:
        inner, where = props.get(name), raw.get(name)
        if isinstance(where, dict) and where.get("x-in") == "body" and isinstance(inner, dict):
            names += [n for n in (inner.get("required") or []) if isinstance(n, str)]  # the body's members
        else:
            names.append(name)
    ours = {original: mine for mine, original in (op.tool.source.field_names.items() if op.tool.source else ())}
    return [ours.get(n, n) for n in dict.fromkeys(names) if ours.get(n, n) in op.args]


def _frame(draft: Draft, coll: CollectionFacts) -> tuple[OpFacts, dict[str, Any], Any, dict[str, Any]] | str:
    """A record created (setup) before a call that must be refused: (create, its arguments, key, parents)."""
    create = coll.first("create")
    if create is None:
        return f"{coll.name}: no create"
    made = draft.create(coll, setup=True)
    if made is None:
        return f"{coll.name}: no create, no record key or a parent that cannot be established"
    key, args, _ = made
    return create, args, key, coll.parent_values(args)


def _after(draft: Draft, coll: CollectionFacts, key: Any, parents: dict[str, Any], why: str) -> None:
    """The record created before a refused call is still there (read, else the list)."""
    read, listing = coll.first("read"), coll.first("list")
    if read is not None:
        draft.add(read, draft.address(read, coll, key, parents), StepExpect(), f"{spec_ref(read)}: {why}")
    elif listing is not None:
        draft.add(listing, draft.address(listing, coll, key, parents),
                  StepExpect(includes=[key], key_fields=key_fields(coll)), f"{spec_ref(listing)}: {why}")


def _bad_create(draft: Draft, coll: CollectionFacts, create: OpFacts, args: dict[str, Any]) -> dict[str, Any]:
    """Another create's arguments: the setup's, with a fresh key where the client names it."""
    bad = dict(args)
    if coll.key_in_create and coll.key_arg:
        bad[coll.key_arg] = draft.fresh(create.args[coll.key_arg])
    return bad


def missing_required(draft: Draft, coll: CollectionFacts, arg: str) -> str | None:
    """A create without an argument the spec requires is refused, nothing written (module contract)."""
    framed = _frame(draft, coll)
    if isinstance(framed, str):
        return framed
    create, args, key, parents = framed
    bad = _bad_create(draft, coll, create, args)
    bad.pop(arg, None)
    draft.add(create, bad, INVALID, f"{spec_ref(create)} requires {create.source_of(arg)} (the spec's required list)")
    _after(draft, coll, key, parents, "the record created before the refused create is still there")
    return None


def required_targets(coll: CollectionFacts, tokens: set[str]) -> list[str]:
    """The create's spec-required arguments a `missing_required` scenario leaves out: no parent, key or token."""
    create = coll.first("create")
    if create is None:
        return []
    return [a for a in spec_required(create) if a not in coll.parent_args and a != coll.key_arg and a not in tokens
            and not any(w in flat_name(a) for w in _TOKEN_WORDS)]


def enum_target(coll: CollectionFacts) -> str | None:
    """The create's first argument whose spec schema is a string enum (not a parent or the key)."""
    create = coll.first("create")
    if create is None or create.operation is None:
        return None
    for arg, schema in create.args.items():
        if arg in coll.parent_args or arg == coll.key_arg or not isinstance(schema, dict):
            continue
        values = schema.get("enum")
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            return arg
    return None


def outside_enum(draft: Draft, coll: CollectionFacts, arg: str) -> str | None:
    """A create with a value outside the argument's enum is refused, nothing written (module contract)."""
    framed = _frame(draft, coll)
    if isinstance(framed, str):
        return framed
    create, args, key, parents = framed
    bad = _bad_create(draft, coll, create, args)
    bad[arg] = "zz-not-in-enum"
    draft.add(create, bad, INVALID, f"{spec_ref(create)}: {create.source_of(arg)} is one of the spec's enum values")
    _after(draft, coll, key, parents, "the record created before the refused create is still there")
    return None


def more_scenarios(tools: Sequence[ToolSpec], proposal: Proposal, operations: Mapping[str, Operation], *,
                   pool: Mapping[str, Sequence[str]] | None = None, seed: int = 0,
                   tokens: Mapping[str, str] | None = None) -> tuple[list[BehaviourScenario], list[str]]:
    """This module's scenarios and the reasons others were not written (module contract)."""
    facts = spec_facts(tools, proposal, operations)
    scenarios: list[BehaviourScenario] = []
    skipped: list[str] = []
    for coll in facts.values():
        create = coll.first("create")
        jobs: list[tuple[BehaviourKind, str, Callable[[Draft], str | None]]] = [
            ("lifecycle", f"lifecycle:{coll.name}:distinct", partial(distinct, coll=coll)),
            ("lifecycle", f"lifecycle:{coll.name}:listed_values", partial(listed_values, coll=coll))]
        if create is not None:
            jobs += [("validation", f"validation:{coll.name}:{create.name}:{arg}", partial(missing_required, coll=coll, arg=arg))
                     for arg in required_targets(coll, {a for t, a in (tokens or {}).items() if t == create.name})]
            enum = enum_target(coll)
            if enum is not None:
                jobs.append(("validation", f"validation:{coll.name}:{create.name}:{enum}:enum",
                             partial(outside_enum, coll=coll, arg=enum)))
        write_jobs(jobs, coll, partial(Draft, seed=seed, facts=facts, pool=pool or {}, tokens=tokens),
                   scenarios, skipped)
    return scenarios, skipped
