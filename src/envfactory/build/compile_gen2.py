"""Compiler generation 2, planning (part of `compile.py`; issue 19 deliverable 3): scope fields for parent
path parameters, final states from the spec's status enums, transitions and the responses' envelopes.

Generation 1 is how the shipped library was compiled; `compile_proposal(..., generation=1)` never calls
what is here except `plan_transitions(..., finals=False)`, which is generation 1's transition rule.

Contract:
- `plan_scopes(coll)` (generation 2): the arguments that scope a collection's records without a parent
  collection in the environment become record fields (`CollectionPlan.scopes`); see its docstring.
- `final_values(coll)`: per status field, the enum values naming a final state (`FINAL_WORDS`).
- `plan_transitions(coll, tools, finals=...)`: one `TransitionDecl` per status field an action sets and,
  with `finals`, per status field whose enum names final states; a final value moves nowhere.
- `response_envelope(op, kind, page_token_arg)`: the `EnvelopeDecl` the source's response defines.
Deterministic: fields, values and names are visited in sorted or declared order; never runs spec text.
"""

from __future__ import annotations

import re

from envfactory.build.compile_collections import CollectionPlan, normalised_value, status_fields
from envfactory.build.naming import field_name
from envfactory.spec import DeclarativeToolDecl, Operation
from envfactory.spec.declarative import EnvelopeDecl, TransitionDecl
from envfactory.spec.schema_tools import (
    SchemaTooLarge,
    definitions,
    flatten,
    json_type,
    object_properties,
    unwrap_record,
)

__all__ = ["FINAL_WORDS", "final_values", "plan_scopes", "plan_transitions", "response_envelope", "takes_argument"]

# a status value that names a state no record leaves (compared as `normalised_value` words, `_` removed)
FINAL_WORDS = frozenset({
    "completed", "complete", "cancelled", "canceled", "terminated", "succeeded", "finished", "voided",
    "refunded", "revoked", "expired", "done", "rejected", "declined", "failed",
})
# verbs of actions that take a record out of a final state: the field then has none
_UNDO_VERBS = frozenset({"reopen", "retry", "rerun", "restart", "restore", "undelete", "reactivate", "resubmit"})

_TOKEN_LIKE = re.compile(r"(token|idempoten|clientrequest|requestid)", re.IGNORECASE)


def plan_scopes(coll: CollectionPlan) -> None:
    """Record the arguments that scope `coll`'s records without a parent collection in the environment
    (`/repos/{owner}/{repo}/releases`, `blogs/{blogId}/posts`, `parent`, AWS `CollectionName`): each
    becomes a record field the creates store, the lists filter on and the reads, updates, deletes and
    actions require to match (`not_found` otherwise). Path/Google: a path parameter of every create that
    is not the record's key nor a linked parent's. AWS/names: a required string member of every create
    that is a record field, not the key nor a token, and required by a list too. Nothing is
    scoped when the group has no create (its records would carry no value to match)."""
    creates = [s for s in coll.group.shapes if s.role == "create"]
    if not creates:
        return
    parent_args = {arg for _, _, arg in coll.parents}
    items = {s.item_param for s in coll.group.shapes if s.item_param and s.role != "action"} | {coll.group.key_member}
    if coll.group.style in ("google", "path"):
        shared = set.intersection(*(set(s.path_params) for s in creates))
    else:
        listed = [set(_required_strings(s.operation)) for s in coll.group.shapes if s.role == "list"]
        shared = set.intersection(*(set(_required_strings(s.operation)) for s in creates)) & set().union(*listed)
        shared = {m for m in shared if field_name(m) in coll.fields and coll.originals.get(field_name(m)) == m
                  and not _TOKEN_LIKE.search(m)}
    for arg in sorted(shared - parent_args - items):
        safe = field_name(arg)
        if safe == coll.key or (safe in coll.fields and coll.originals.get(safe) != arg):
            continue
        if safe not in coll.fields:
            coll.fields[safe] = {"type": "string", "description": f"the {arg} it was created under"}
            coll.originals[safe] = arg
        coll.read_only.discard(safe)
        coll.scopes.append((safe, arg))


def _required_strings(op: Operation) -> list[str]:
    schema = flatten(op.input_schema, definitions(op.input_schema)) or {}
    props = object_properties(schema)
    return [m for m in schema.get("required", []) if isinstance(props.get(m), dict) and json_type(props[m]) in ("string", None)]


def final_values(coll: CollectionPlan) -> dict[str, tuple[str, ...]]:
    """Per status field of `coll`, the enum values that name a final state (`FINAL_WORDS`: COMPLETED,
    STATE_CANCELLED, Expired...): a record there refuses every move out of it. A value is not final
    when an action of the collection undoes it: a verb in `_UNDO_VERBS`, or `un`/`re` + the value's
    verb (`uncancel`)."""
    verbs = {s.verb for s in coll.group.shapes if s.role == "action" and s.verb}
    out: dict[str, tuple[str, ...]] = {}
    for name, values in status_fields(coll).items():
        finals = []
        for value in values:
            flat = normalised_value(value, name).replace("_", "")
            if flat not in FINAL_WORDS or verbs & _UNDO_VERBS:
                continue
            stem = flat[:4]
            if any(v.startswith(("un", "re")) and v[2:].startswith(stem) for v in verbs):
                continue
            finals.append(value)
        if finals:
            out[name] = tuple(finals)
    return out


def plan_transitions(coll: CollectionPlan, tools: list[DeclarativeToolDecl], *, finals: bool) -> list[TransitionDecl]:
    """One `TransitionDecl` per status field of `coll` that a compiled action of `tools` sets or, with
    `finals` (generation 2), whose enum names final states (`final_values`): a final value moves nowhere;
    when no tool writes the field from arguments, other values move only to the action targets (if
    any), else to any value. Without `finals` this is generation 1's rule exactly."""
    targets: dict[str, set[str]] = {}
    for tool in tools:
        op_id = tool.source.operation_id if tool.source is not None else ""
        if op_id in coll.actions:
            status, value = coll.actions[op_id]
            targets.setdefault(status, set()).add(value)
    out: list[TransitionDecl] = []
    statuses = status_fields(coll)
    ends_of = final_values(coll) if finals else {}
    for status in sorted(set(targets) | set(ends_of)):
        values = list(dict.fromkeys(statuses[status]))
        reached = targets.get(status, set())
        written = any(takes_argument(t, status) for t in tools if t.operation.fields_from_args and t.operation.kind in ("create", "update", "patch"))
        pool = values if written or not reached else sorted(reached, key=values.index)
        ends = set(ends_of.get(status, ()))
        allowed = {v: [] if v in ends else [t for t in pool if t != v] for v in values}
        initial = [coll.initial[status]] if status in coll.initial else None
        out.append(TransitionDecl(field=status, allowed=allowed, initial=initial))
    return out


def takes_argument(tool: DeclarativeToolDecl, argument: str) -> bool:
    """Whether `tool`'s input schema has an argument named `argument`."""
    properties = tool.input_schema.get("properties")
    return isinstance(properties, dict) and argument in properties


_TOKEN_FIELDS = frozenset({"nextpagetoken", "nexttoken", "nextmarker", "marker", "nextcursor", "cursor",
                           "continuationtoken", "nextcontinuationtoken", "pagetoken"})
_TOTAL_FIELDS = frozenset({"total", "totalcount", "totalsize", "totalitems", "totalresults", "count", "resultcount"})
_ENVELOPE_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.-]{0,63}$")


def response_envelope(op: Operation, kind: str, page_token_arg: str | None) -> EnvelopeDecl | None:
    """The envelope the source's response puts the result in (`spec.declarative.EnvelopeDecl`), or None
    when it is the engine's own shape or the response does not say. A list: the response object's one
    array of objects holds the page; its string property named like a next-page token (else
    `next_page_token` when the list pages) and its integer property named like a total come along.
    A create/get/update/patch: a response with exactly one property, an object with properties (the
    record inside, `{"GameServerGroup": {...}}`). A list whose response is an array of objects: the bare
    array (`records` None). Another bare array or an undeclared response: None."""
    if kind == "delete" or not op.output_schema:
        return None
    try:
        flat = flatten(op.output_schema, definitions(op.output_schema))
    except SchemaTooLarge:
        return None
    if kind == "list" and flat is not None and json_type(flat) == "array":  # a bare array of records: answered as one
        items = flat.get("items")
        return EnvelopeDecl(records=None) if isinstance(items, dict) and json_type(items) in ("object", None) \
            and object_properties(items) else None
    props = object_properties(flat)
    if kind != "list":
        if unwrap_record(flat) is flat or len(props) != 1:
            return None
        (name,) = props
        return EnvelopeDecl(records=name) if _ENVELOPE_NAME.match(name) else None
    arrays = [n for n, s in props.items() if isinstance(s, dict) and json_type(s) == "array"
              and isinstance(s.get("items"), dict) and json_type(s["items"]) in ("object", None)]
    if len(arrays) != 1 or not _ENVELOPE_NAME.match(arrays[0]):
        return None
    flat_names = {n.replace("_", "").lower(): n for n in props if _ENVELOPE_NAME.match(n)}
    token = next((flat_names[f] for f in sorted(flat_names) if f in _TOKEN_FIELDS
                  and json_type(props[flat_names[f]]) in ("string", None)), None)
    if token is None and page_token_arg is not None:
        token = "next_page_token" if arrays[0] != "next_page_token" else None
    total = next((flat_names[f] for f in sorted(flat_names) if f in _TOTAL_FIELDS
                  and json_type(props[flat_names[f]]) == "integer"), None)
    if (arrays[0], token, total) == ("items", "next_page_token", "total"):
        return None  # the engine's own shape
    return EnvelopeDecl(records=arrays[0], next_token=token, total=total if total not in (arrays[0], token) else None)
