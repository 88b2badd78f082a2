"""Behavioural scenarios written from an environment's SOURCE spec (issue 19, deliverable 1).

Contract:
- `generate_scenarios(tools, proposal, operations, *, pool, seed)` returns `(scenarios, not_generated)`:
  `BehaviourScenario`s of at least three calls per collection, and a sentence for each scenario kind
  the spec did not allow (no create operation, no record key, a parent that cannot be established).
  Kinds, each expectation quoted from the spec fact in `because`:
  - `lifecycle`: create → get returns what was created → list includes it → update changes the named
    field and nothing else that was created → delete → get is `not_found` → list excludes it; and two
    shorter ones: a deleted record stays gone (the same delete again is `not_found`, state unchanged,
    then the get), and two records created under one parent are both listed;
  - `scoping`: a record created under one parent path parameter is not listed, and is `not_found`,
    under another parent;
  - `reference`: get/update/delete/actions naming a record that does not exist, a create under a
    parent that does not exist, and a write naming another collection's record that does not exist
    fail with `not_found` and leave the state unchanged;
  - `state_machine`: where the record schema documents a status enum with terminal values, a record
    driven into a terminal value (an action whose verb names it, or an update of the status) refuses
    to leave it (`rule_violation` or `invalid_arguments`) and still shows the terminal value;
  - `pagination`: with a page-size and a page-token argument and a next-token field in the response,
    walking the list one record a page returns each created record exactly once.
- Inputs are the tools' interfaces, the proposal and the catalog operations (`behaviour_facts`); `pool`
  holds values present in the initial (seed) state, used only as setup arguments (a parent key when
  the parent cannot be created), never as expectations. Deterministic: every generated value comes
  from `random.Random(f"{seed}:{scenario id}")`.
- `tokens` (tool name -> argument) names the idempotency tokens of a generation-2 environment
  (`OperationDecl.idempotency`): every call of such a tool sends a token no earlier call of the scenario
  sent, so two different creates never share one (which generation 2 refuses as a conflict). Without
  `tokens` (generation 1) the arguments are as before, so stored suites stay byte for byte.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from envfactory.spec import Operation, ToolSpec
from envfactory.spec.behaviour import BehaviourKind, BehaviourScenario, BehaviourStep, StepExpect
from envfactory.spec.build import Proposal
from envfactory.spec.schema_tools import json_type
from envfactory.verify.argsgen import generate_arguments
from envfactory.verify.behaviour_facts import (
    CollectionFacts,
    OpFacts,
    flat_name,
    list_selection,
    spec_facts,
    write_jobs,
)

__all__ = ["MISSING", "REFUSED", "Draft", "generate_scenarios", "key_fields", "owner_of", "spec_ref"]

MISSING = "zz-missing-0000"
"""A key no record has: references to it must fail with `not_found`."""
NOT_FOUND: StepExpect = StepExpect(outcome="error", error_kinds=["not_found"], state_unchanged=True)
REFUSED: StepExpect = StepExpect(outcome="error", error_kinds=["rule_violation", "invalid_arguments"],
                                 state_unchanged=True)


class _Draft:
    """The steps of one scenario being written, with its own seeded RNG and fresh-value counter."""

    def __init__(self, sid: str, seed: int, facts: Mapping[str, CollectionFacts],
                 pool: Mapping[str, Sequence[str]], tokens: Mapping[str, str] | None = None) -> None:
        self.sid = sid
        self.tokens = tokens or {}  # tool -> its idempotency-token argument (generation 2)
        self.sent_tokens: set[tuple[str, Any]] = set()
        self.rng = random.Random(f"{seed}:{sid}")
        self.facts = facts
        self.pool = pool
        self.steps: list[BehaviourStep] = []
        self.counter = 0
        self.known: dict[str, dict[str, Any]] = {}  # collection -> arguments of its last create
        self.made: dict[str, list[dict[str, Any]]] = {}  # collection -> arguments of each of its creates

    def fresh(self, schema: Any) -> Any:
        """A value for `schema` no other call of this scenario uses (plain strings get a unique tag)."""
        self.counter += 1
        if isinstance(schema, dict) and json_type(schema) == "string" and not (
                {"enum", "pattern", "format", "const"} & set(schema)):
            tag = f"bhv{zlib.crc32(self.sid.encode()) % 9973}x{self.counter}"
            low, high = schema.get("minLength", 0), schema.get("maxLength", 256)
            if isinstance(low, int) and isinstance(high, int) and len(tag) <= high:
                return tag.ljust(low, "z")
        return generate_arguments({"type": "object", "properties": {"v": schema}, "required": ["v"]},
                                  self.rng, {})["v"]

    def missing(self, schema: Any) -> Any:
        """A key no record has, shaped to pass the argument's schema (`MISSING`, padded to its minimum
        length; a generated value where the schema fixes a pattern or format)."""
        if isinstance(schema, dict) and ({"pattern", "format"} & set(schema)):
            return self.fresh(schema)
        low = schema.get("minLength", 0) if isinstance(schema, dict) else 0
        return MISSING.ljust(low if isinstance(low, int) else 0, "0")

    def fresh_token(self, op: OpFacts, arguments: dict[str, Any]) -> None:
        """Give `op`'s idempotency-token argument, where `arguments` has one, a value this scenario has not
        sent to `op` yet (in place; `tokens` empty: nothing)."""
        arg = self.tokens.get(op.name)
        if arg is None or arg not in arguments or ((op.name, repr(arguments[arg])) not in self.sent_tokens \
                and arguments[arg] not in self.pool.get(arg, ())):
            return
        arguments[arg] = self.fresh(op.args.get(arg, {"type": "string"}))

    def add(self, op: OpFacts, arguments: dict[str, Any], expect: StepExpect, because: str,
            capture: dict[str, list[str]] | None = None, follow_token: str | None = None) -> None:
        """Append one call (an idempotency token already sent to the tool is drawn afresh)."""
        if self.tokens:
            arguments = dict(arguments)
            self.fresh_token(op, arguments)
            arg = self.tokens.get(op.name)
            if arg is not None and arg in arguments:
                self.sent_tokens.add((op.name, repr(arguments[arg])))
        shape, keys = op.response()
        self.steps.append(BehaviourStep(tool=op.name, arguments=arguments, expect=expect, because=because,
                                        capture=capture or {}, follow_token=follow_token, response=shape,
                                        response_keys=list(keys)))

    def parents(self, coll: CollectionFacts, depth: int = 0, avoid: Mapping[str, Any] | None = None
                ) -> dict[str, Any] | None:
        """Values for `coll`'s parent arguments, creating parents where the spec has a create (setup
        steps), else taken from the seed state; None when one cannot be established. `avoid`: values a
        parent must differ from (scoping's second parent)."""
        values: dict[str, Any] = {}
        for arg in coll.parent_args:
            owner = _owner(self.facts, arg, coll.name)
            taken = [v for v in self.pool.get(arg, ()) if not avoid or v != avoid.get(arg)]
            if owner is not None and owner.first("create") is not None and depth < 3:
                made = self.create(owner, depth + 1, setup=True)
                if made is None:
                    return None
                values[arg] = made[0]
            elif taken:
                values[arg] = taken[0]
            elif owner is None:  # no collection of the spec holds it: a free scope, any value names one
                schema: Any = next((op.args[arg] for ops in coll.ops.values() for op in ops if arg in op.args), {})
                values[arg] = self.fresh(schema)
            else:
                return None
        return values

    def list_scope(self, coll: CollectionFacts, parents: Mapping[str, Any]) -> dict[str, Any]:
        """`parents` plus a value for each other argument the spec's list requires that names a record (a
        parent the list is asked by, not a path parameter: AWS `AddressListId`, `Catalog`), chosen as a
        create's references are: the owning collection's record created first where the spec has a create
        (setup), else a value the seed holds; an argument naming nothing is left to the generator."""
        listing = coll.first("list")
        values = dict(parents)
        for arg in (listing.required if listing else ()):
            owner = _owner(self.facts, arg, coll.name)
            if arg in values or arg == coll.key_arg or (owner is None and not _REFERENCE_NAME.search(arg)):
                continue
            made = self.create(owner, 1, setup=True) if owner is not None and owner.first("create") is not None \
                and owner.key_arg else None
            if made is not None:
                values[arg] = made[0]
            elif self.pool.get(arg):
                values[arg] = self.pool[arg][0]
        return values

    def create(self, coll: CollectionFacts, depth: int = 0, *, setup: bool = False,
               parents: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
               ) -> tuple[Any, dict[str, Any], dict[str, Any]] | None:
        """Append a create of `coll` (parents established first unless given): (the key or its
        `${var}`, the arguments, the fields the record must show), or None."""
        create = coll.first("create")
        if create is None or coll.key_arg is None:
            return None
        if parents is None:
            parents = self.parents(coll, depth)
            if parents is None:
                return None
        try:
            args = generate_arguments(create.tool.input_schema, self.rng, {})
        except (ValueError, RecursionError):
            return None
        args.update(parents)
        capture: dict[str, list[str]] = {}
        if coll.key_in_create:
            key: Any = self.fresh(create.args[coll.key_arg])
            args[coll.key_arg] = key
        else:
            self.counter += 1
            key = f"${{{coll.name}_{self.counter}}}"
            capture[key[2:-1]] = _key_field(coll)
        for name, schema in create.args.items():
            if name in args and name not in parents and name != coll.key_arg and isinstance(args[name], str) \
                    and isinstance(schema, dict) and not ({"enum", "pattern", "format"} & set(schema)):
                args[name] = self.fresh(schema)
        self.references(coll, create, args, parents, depth)
        args.update(extra or {})
        if self.tokens:
            self.fresh_token(create, args)
        fields = {create.source_of(k): v for k, v in args.items() if k not in parents and _scalar(v)
                  and create.source_of(k) in coll.record_fields - coll.read_only}
        expect = StepExpect(outcome="setup" if setup else "ok", fields={} if setup else fields)
        self.add(create, args, expect, f"{_ref(create)} creates a {coll.name} record", capture)
        self.known[coll.name] = args
        self.made.setdefault(coll.name, []).append(args)
        return key, args, fields

    def references(self, coll: CollectionFacts, create: OpFacts, args: dict[str, Any], parents: Mapping[str, Any],
                   depth: int) -> None:
        """Point `args`' references to other records at records that exist: a record of the collection the
        spec names (created first when the spec has a create), else a value the seed state holds."""
        for arg in list(args):
            if arg in parents or arg == coll.key_arg or not isinstance(args[arg], str) or flat_name(arg) in ("id", "name"):
                continue
            owner = _owner(self.facts, arg, coll.name)
            taken = list(self.pool.get(arg, ()))
            if owner is not None and owner.first("create") is not None and owner.key_arg and depth < 3:
                made = self.create(owner, depth + 1, setup=True)
                if made is not None:
                    args[arg] = made[0]
                    continue
            if taken and (owner is not None or _REFERENCE_NAME.search(arg)):
                args[arg] = taken[0]

    def address(self, op: OpFacts, coll: CollectionFacts, key: Any, parents: Mapping[str, Any],
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Arguments naming one record of `coll` for `op`: required arguments generated (or as the last
        create of `coll` in this scenario sent them), parents and key set (a list's key only where the list
        requires it); a list's required names or search filters select every record of `coll` this
        scenario created (`behaviour_facts.list_selection`)."""
        try:
            args = {k: v for k, v in generate_arguments(op.tool.input_schema, self.rng, {}).items() if k in op.required}
        except (ValueError, RecursionError):
            args = {}
        known = self.known.get(coll.name, {})  # what the record was created with, where the call needs it too
        args.update({k: known[k] for k in op.required if k in known and isinstance(known[k], str | int)})
        if op.role == "list":  # asked by names (`PolicyNames`) or search filters: every record this scenario made
            args.update(list_selection(op, coll, self.made.get(coll.name, [])))
        args.update({k: v for k, v in parents.items() if k in op.args})
        if coll.key_arg and coll.key_arg in op.args and (op.role != "list" or coll.key_arg in op.required):
            args[coll.key_arg] = key  # a list's optional key argument narrows it to one record: not sent
        args.update(extra or {})
        return args

    def scenario(self, kind: BehaviourKind, coll: CollectionFacts, title: str) -> BehaviourScenario | None:
        """The scenario written, or None when it has fewer than three calls."""
        if len(self.steps) < 3:
            return None
        return BehaviourScenario(id=self.sid, kind=kind, collection=coll.name, title=title,
                                 source=", ".join(coll.source), steps=self.steps)


_REFERENCE_NAME = re.compile(r"(id|sid|arn|identifier|url|uri|key)$", re.IGNORECASE)


def _owner(facts: Mapping[str, CollectionFacts], arg: str, besides: str) -> CollectionFacts | None:
    """The collection (other than `besides`) whose records `arg` names: its key argument, or `<singular>_id`/`<singular>Id`."""
    flat = flat_name(arg)
    if flat in ("id", "name"):  # every record's own key: names no other collection
        return None
    for coll in facts.values():
        if coll.name != besides and coll.key_arg == arg:
            return coll
    for coll in facts.values():
        singular = flat_name(coll.name).removesuffix("s")
        if coll.name != besides and singular and flat in (f"{singular}id", f"{singular}sid", f"{singular}name"):
            return coll
    return None


def _ref(op: OpFacts) -> str:
    if op.operation is not None and op.operation.http_method and op.operation.http_path:
        return f"{op.operation.http_method} {op.operation.http_path} ({op.role})"
    return f"{op.operation.name if op.operation else op.name} ({op.role})"


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _key_field(coll: CollectionFacts) -> list[str]:
    """The record field(s) holding a created record's key, from the spec's record schema (tried in order)."""
    read = coll.first("read") or coll.first("delete") or coll.first("update")
    source_key = read.source_of(coll.key_arg) if read and coll.key_arg else (coll.key_arg or "id")
    for name in (source_key, coll.key_arg):
        if name and name in coll.record_fields:
            return [name]
    flat = flat_name(source_key)  # task_gid -> gid, accountname -> name: the record's own key field
    tails = sorted((f for f in coll.record_fields if len(f) >= 2 and flat.endswith(flat_name(f))), key=len, reverse=True)
    known = [name for name in (*tails, "id", "name") if name in coll.record_fields]
    if known:
        return known[:1]
    # the spec's response schema names no fields: the key's own name, then the usual key fields
    return list(dict.fromkeys(n for n in (source_key, coll.key_arg, "id", "name") if n))


def _key_fields(coll: CollectionFacts) -> list[str]:
    """Where a listed record shows its key: the spec's key field(s) and the key argument's own name."""
    read = coll.first("read") or coll.first("delete") or coll.first("update")
    own = [read.source_of(coll.key_arg)] if read and coll.key_arg else []
    return list(dict.fromkeys([*_key_field(coll), *own, *([coll.key_arg] if coll.key_arg else [])]))


def _lifecycle(draft: _Draft, coll: CollectionFacts) -> str | None:
    made = draft.create(coll)
    if made is None:
        return f"{coll.name}: no create, no record key or a parent that cannot be established"
    key, args, fields = made
    parents = coll.parent_values(args)
    read, listing, update, delete = (coll.first(r) for r in ("read", "list", "update", "delete"))
    if read:
        draft.add(read, draft.address(read, coll, key, parents), StepExpect(fields=fields),
                  f"{_ref(read)} returns the record created")
    if listing:
        draft.add(listing, draft.address(listing, coll, key, parents), StepExpect(includes=[key], key_fields=_key_fields(coll)),
                  f"{_ref(listing)} lists the record created")
    if update:
        changed = next((a for a in update.args if a not in parents and a != coll.key_arg and a in args
                        and update.source_of(a) in fields and isinstance(args[a], str)), None)
        if changed is not None:
            new = draft.fresh(update.args[changed])
            same = {a: args[a] for a in update.args if a in args and a not in parents and a != coll.key_arg}
            draft.add(update, draft.address(update, coll, key, parents, {**same, changed: new}), StepExpect(),
                      f"{_ref(update)} changes {changed} (every other field it accepts sent as created)")
            if read:
                after = {**fields, update.source_of(changed): new}
                draft.add(read, draft.address(read, coll, key, parents), StepExpect(fields=after),
                          f"{_ref(update)} changes exactly the named field {changed}")
    if delete:
        draft.add(delete, draft.address(delete, coll, key, parents), StepExpect(), f"{_ref(delete)} deletes it")
        if read:
            draft.add(read, draft.address(read, coll, key, parents), NOT_FOUND,
                      f"{_ref(read)} after {_ref(delete)}: the record is gone")
        if listing:
            draft.add(listing, draft.address(listing, coll, key, parents), StepExpect(excludes=[key], key_fields=_key_fields(coll)),
                      f"{_ref(listing)} after {_ref(delete)} no longer lists it")
    return None


def _scoping(draft: _Draft, coll: CollectionFacts) -> str | None:
    if not coll.parent_args:
        return f"{coll.name}: no parent path parameter"
    first = draft.parents(coll)
    if first is None:
        return f"{coll.name}: a parent cannot be established"
    second = draft.parents(coll, avoid=first)
    if second is None or second == first:
        return f"{coll.name}: a second parent cannot be established"
    made = draft.create(coll, parents=first)
    if made is None:
        return f"{coll.name}: no create or no record key"
    key = made[0]
    read, listing = coll.first("read"), coll.first("list")
    where = ", ".join(f"{k}" for k in coll.parent_args)
    if listing:
        draft.add(listing, draft.address(listing, coll, key, second), StepExpect(excludes=[key], key_fields=_key_fields(coll)),
                  f"{_ref(listing)}: records are listed under their own {where} only")
        draft.add(listing, draft.address(listing, coll, key, first), StepExpect(includes=[key], key_fields=_key_fields(coll)),
                  f"{_ref(listing)} lists it under the {where} it was created under")
    if read:
        draft.add(read, draft.address(read, coll, key, second), NOT_FOUND,
                  f"{_ref(read)}: the record does not exist under another {where}")
    return None


def _reference_targets(facts: Mapping[str, CollectionFacts], coll: CollectionFacts) -> list[tuple[OpFacts, str]]:
    """(operation, argument) pairs where the spec's argument names a record: the collection's key in
    reads/updates/deletes/actions, and the create's arguments naming another collection's records."""
    targets = [(op, coll.key_arg) for role in ("read", "update", "delete", "action") for op in coll.ops.get(role, [])
               if coll.key_arg and coll.key_arg in op.args]
    create = coll.first("create")
    targets += [(create, arg) for arg in (create.args if create else ()) if create and _owner(facts, arg, coll.name)]
    return [(op, arg) for op, arg in targets  # a key is a string (or number); an object argument names no record
            if isinstance(op.args[arg], dict) and json_type(op.args[arg]) in ("string", "integer", None)]


def _reference(draft: _Draft, coll: CollectionFacts, op: OpFacts, arg: str) -> str | None:
    """One call naming a record that does not exist, framed by two calls showing the state it must not change."""
    parents = draft.parents(coll) if coll.parent_args else {}
    if parents is None:
        return f"{coll.name}: a parent cannot be established"
    listing, read = coll.first("list"), coll.first("read")
    scope = draft.list_scope(coll, parents)  # the parent the list is asked by, created (or from the seed) first
    key: Any = None
    if listing is not None:
        draft.add(listing, draft.address(listing, coll, MISSING, scope), StepExpect(),
                  f"{_ref(listing)} with an existing parent succeeds")
    else:
        made = draft.create(coll, parents=parents, setup=True)
        key = made[0] if made is not None else None
    if op.role == "create":
        try:
            args = {**generate_arguments(op.tool.input_schema, draft.rng, {}), **parents}
        except (ValueError, RecursionError):
            return f"{coll.name}: no arguments for {op.name}"
        if coll.key_in_create and coll.key_arg:
            args[coll.key_arg] = draft.fresh(op.args[coll.key_arg])
        args[arg] = draft.missing(op.args[arg])
        owner = _owner(draft.facts, arg, coll.name)
        because = f"{_ref(op)} names a {owner.name if owner else arg} record ({arg}) that does not exist"
    else:
        args = draft.address(op, coll, draft.missing(op.args[arg]), parents)
        because = f"{_ref(op)} names a {coll.name} record that does not exist"
    draft.add(op, args, NOT_FOUND, because)
    if listing is not None:
        draft.add(listing, draft.address(listing, coll, MISSING, scope), StepExpect(),
                  f"{_ref(listing)} still succeeds")
    elif read is not None and key is not None:
        draft.add(read, draft.address(read, coll, key, parents), StepExpect(), f"{_ref(read)}: the record created is still there")
    return None


def _state_machine(draft: _Draft, coll: CollectionFacts, into: OpFacts | None = None) -> str | None:
    """Drive a record into a terminal status (`into`, else the first action whose verb names one, else an
    update of the status, or a create that takes it), then try to move it out: refused, and it stays."""
    if not coll.status_field or not coll.final_values:
        return f"{coll.name}: no status enum with terminal values in the spec"
    field, final = coll.status_field, coll.final_values[0]
    actions, update, create = coll.ops.get("action", []), coll.first("update"), coll.first("create")
    into = into or next((a for a in actions if any(_verb_names(a.name, v) for v in coll.final_values)), None)
    if into is not None:
        final = next(v for v in coll.final_values if _verb_names(into.name, v))
    by_create = into is None and not (update and field in update.args) and bool(create and field in create.args)
    if into is None and not by_create and not (update and field in update.args):
        return f"{coll.name}: no action, update or create moves {field} into {final}"
    made = draft.create(coll, setup=by_create, extra={field: final} if by_create else None)
    if made is None:
        return f"{coll.name}: no create, no record key or a parent that cannot be established"
    key, args, _ = made
    parents = coll.parent_values(args)
    if into is not None:
        draft.add(into, draft.address(into, coll, key, parents), StepExpect(outcome="setup"),
                  f"{_ref(into)} moves {field} to {final}")
    elif not by_create and update is not None:
        draft.add(update, draft.address(update, coll, key, parents, {field: final}), StepExpect(outcome="setup"),
                  f"{_ref(update)} sets {field} to {final}")
    leave = next((a for a in actions if a is not into and not any(_verb_names(a.name, v) for v in coll.final_values)),
                 None)
    others = [v for v in coll.status_values if v not in coll.final_values and "unspecified" not in v.lower()]
    if leave is not None:
        draft.add(leave, draft.address(leave, coll, key, parents), REFUSED,
                  f"{field} {final} is terminal in the spec's enum: {_ref(leave)} must be refused")
    elif update is not None and field in update.args and others:
        draft.add(update, draft.address(update, coll, key, parents, {field: others[0]}), REFUSED,
                  f"{field} {final} is terminal in the spec's enum: setting {others[0]} must be refused")
    else:
        return f"{coll.name}: no operation could move {field} out of {final}"
    read = coll.first("read")
    if read is not None:
        draft.add(read, draft.address(read, coll, key, parents), StepExpect(fields={field: final}),
                  f"the record stays {final}")
    return None


def _transition(draft: _Draft, coll: CollectionFacts, op: OpFacts, value: str) -> str | None:
    """A documented transition: the action whose verb names a status value moves a new record there."""
    made = draft.create(coll)
    if made is None or coll.status_field is None:
        return f"{coll.name}: no create, no record key or a parent that cannot be established"
    key, args, _ = made
    parents = coll.parent_values(args)
    draft.add(op, draft.address(op, coll, key, parents), StepExpect(),
              f"{_ref(op)} is documented and {coll.status_field} lists {value}: allowed from a new record")
    read = coll.first("read")
    if read is None:
        return f"{coll.name}: no read to show {coll.status_field}"
    draft.add(read, draft.address(read, coll, key, parents), StepExpect(fields={coll.status_field: value}),
              f"after {_ref(op)} the record is {value}")
    return None


def _terminal_actions(coll: CollectionFacts) -> list[OpFacts]:
    """The collection's actions whose verb names a terminal value of its status enum."""
    return [a for a in coll.ops.get("action", []) if any(_verb_names(a.name, v) for v in coll.final_values)]


def _transition_targets(coll: CollectionFacts) -> list[tuple[OpFacts, str]]:
    """(action, status value it names) for the collection's actions whose verb names a value of its status enum."""
    out = []
    for op in coll.ops.get("action", []):
        named = [v for v in coll.status_values if _verb_names(op.name, v)]
        if len(named) == 1 and op.args.get(coll.key_arg or "") is not None:  # cancel: CANCELLING or CANCELLED? say nothing
            out.append((op, named[0]))
    return out


def _verb_names(tool: str, value: str) -> bool:
    """Whether a tool named like `cancel_job` names the state `CANCELLED` (its verb's stem)."""
    flat = value.lower().replace("_", "")
    for token in tool.lower().split("_"):
        verb = token.rstrip("e")
        if len(verb) >= 4 and flat.startswith(verb) and flat != verb:
            return True
    return False


def _pagination(draft: _Draft, coll: CollectionFacts) -> str | None:
    listing = coll.first("list")
    if listing is None or not (coll.size_arg and coll.token_arg and coll.token_field):
        return f"{coll.name}: the spec's list has no page size, page token and next-token field"
    parents = draft.parents(coll) if coll.parent_args else {}
    if parents is None:
        return f"{coll.name}: a parent cannot be established"
    keys = []
    same: dict[str, Any] = {}  # what the list is asked by (a parent sent as a body field, a catalog): the same for all
    for _ in range(3):
        made = draft.create(coll, parents=parents, extra=same)
        if made is None:
            return f"{coll.name}: no create or no record key"
        keys.append(made[0])
        same = same or {k: v for k, v in made[1].items() if k in listing.required and k != coll.key_arg and _scalar(v)}
    args = draft.address(listing, coll, MISSING, parents, {coll.size_arg: 1})
    args.pop(coll.token_arg, None)
    draft.add(listing, args, StepExpect(includes=keys, distinct=True, key_fields=_key_fields(coll)),
              f"{_ref(listing)} pages by {coll.size_arg}/{coll.token_arg} and returns {coll.token_field}",
              follow_token=coll.token_arg)
    return None


def _gone_for_good(draft: _Draft, coll: CollectionFacts) -> str | None:
    """create → delete → the same delete again is `not_found` with the state unchanged (→ the read too)."""
    delete, read = coll.first("delete"), coll.first("read")
    if delete is None:
        return f"{coll.name}: no delete"
    made = draft.create(coll, setup=True)
    if made is None:
        return f"{coll.name}: no create, no record key or a parent that cannot be established"
    key, args, _ = made
    parents = coll.parent_values(args)
    draft.add(delete, draft.address(delete, coll, key, parents), StepExpect(), f"{_ref(delete)} deletes it")
    draft.add(delete, draft.address(delete, coll, key, parents), NOT_FOUND,
              f"{_ref(delete)} again: the record no longer exists")
    if read:
        draft.add(read, draft.address(read, coll, key, parents), NOT_FOUND, f"{_ref(read)} after {_ref(delete)}")
    return None


def _all_listed(draft: _Draft, coll: CollectionFacts) -> str | None:
    """Two records created under the same parent are both listed, not only the last one."""
    listing = coll.first("list")
    if listing is None:
        return f"{coll.name}: no list"
    parents = draft.parents(coll) if coll.parent_args else {}
    if parents is None:
        return f"{coll.name}: a parent cannot be established"
    keys: list[Any] = []
    same: dict[str, Any] = {}  # what the list is asked by (a parent sent as a body field, a catalog): the same for both
    for _ in range(2):
        made = draft.create(coll, setup=True, parents=parents, extra=same)
        if made is None:
            return f"{coll.name}: no create or no record key"
        keys.append(made[0])
        same = {k: v for k, v in made[1].items() if k in listing.args and k != coll.key_arg and _scalar(v)}
    draft.add(listing, draft.address(listing, coll, keys[0], parents),
              StepExpect(includes=keys, key_fields=_key_fields(coll)), f"{_ref(listing)} lists every record created")
    return None


Draft = _Draft
"""The scenario writer, shared with the prose-rule scenarios (`rules_extract`)."""
spec_ref = _ref
"""How a step's `because` names an operation: `METHOD /path (role)`."""
key_fields = _key_fields
"""Where a listed record shows its key."""
owner_of = _owner
"""The collection whose records an argument names."""

_KINDS: tuple[tuple[BehaviourKind, Callable[..., str | None]], ...] = (("lifecycle", _lifecycle), ("scoping", _scoping),
          ("state_machine", _state_machine), ("pagination", _pagination))


def generate_scenarios(tools: Sequence[ToolSpec], proposal: Proposal, operations: Mapping[str, Operation], *,
                       pool: Mapping[str, Sequence[str]] | None = None, seed: int = 0,
                       tokens: Mapping[str, str] | None = None) -> tuple[list[BehaviourScenario], list[str]]:
    """Scenarios and the reasons others were not written (module contract)."""
    facts = spec_facts(tools, proposal, operations)
    scenarios: list[BehaviourScenario] = []
    skipped: list[str] = []
    for coll in facts.values():
        jobs: list[tuple[BehaviourKind, str, Callable[[_Draft], str | None]]] = []
        for kind, write in _KINDS:
            jobs.append((kind, f"{kind}:{coll.name}", partial(write, coll=coll)))
            if kind == "state_machine":
                jobs += [("state_machine", f"state_machine:{coll.name}:{op.name}", partial(_state_machine, coll=coll, into=op))
                         for op in _terminal_actions(coll)[1:]]  # the first is the collection's own scenario
                jobs += [("state_machine", f"transition:{coll.name}:{op.name}:{value}",
                          partial(_transition, coll=coll, op=op, value=value))
                         for op, value in _transition_targets(coll)]
            if kind == "lifecycle":
                jobs += [("lifecycle", f"lifecycle:{coll.name}:gone_for_good", partial(_gone_for_good, coll=coll)),
                         ("lifecycle", f"lifecycle:{coll.name}:all_listed", partial(_all_listed, coll=coll))]
                jobs += [("reference", f"reference:{coll.name}:{op.name}:{arg}",
                          partial(_reference, coll=coll, op=op, arg=arg))
                         for op, arg in _reference_targets(facts, coll)]
        write_jobs(jobs, coll, partial(_Draft, seed=seed, facts=facts, pool=pool or {}, tokens=tokens),
                   scenarios, skipped)
    return scenarios, skipped
