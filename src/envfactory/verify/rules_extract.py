"""Prose rules of a spec (issue 19): read by the pattern set, each tested by a violating scenario.

Contract:
- `extract_rules(proposal, operations)` reads every proposed operation's description and the
  descriptions of its input fields (nested ones included), cuts them into sentences
  (`rules_patterns.split_sentences`) and keeps each rule `rules_patterns.match_sentence` decides, as a
  `ProseRule` quoting its sentence, naming the pattern, the operation and where in it (`description`
  or `field <name>`), the proposal's collection and, for a field's sentence, that field. The same
  (kind, collection, field, sentence) is kept once. Deterministic, in the proposal's order.
- `rule_scenarios(rules, tools, proposal, operations, *, pool, seed)` writes, per rule, one scenario of
  kind `rule` (id = the rule's id) whose violating call must fail with one of the rule's error kinds and
  leave the state hash unchanged, then a call showing the record as it was:
  - `unique`: create a record (setup), create another with the same value of the field → refused;
  - `max_length` / `min_length`: create (setup), then the create (or, when only the update takes the
    field, the update) with a value one character over / under the limit → refused;
  - `immutable`: create (setup), update the field to a new value → refused, the record unchanged;
  - `delete_requires_empty`: create a record and a child record under it (setup), delete the record →
    refused, the record still there.
  A rule without a scenario (no field named, the field is not an argument, `max_count` and
  `requires_state`, which need state the spec does not let us drive) gets a sentence saying why.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from envfactory.spec import Operation, ToolSpec
from envfactory.spec.behaviour import BehaviourScenario, StepExpect
from envfactory.spec.build import Proposal
from envfactory.spec.rules import ProseRule
from envfactory.spec.schema_tools import json_type
from envfactory.verify.behaviour import Draft, key_fields, spec_ref
from envfactory.verify.behaviour_facts import CollectionFacts, OpFacts, spec_facts
from envfactory.verify.rules_patterns import match_sentence, split_sentences

__all__ = ["MAX_SENT_LENGTH", "extract_rules", "rule_scenarios"]

MAX_SENT_LENGTH = 5000
"""The longest value a length scenario sends (a longer limit is not tested)."""


def _field_texts(schema: Any, depth: int = 0) -> Iterator[tuple[str, str]]:
    if not isinstance(schema, dict) or depth > 4:
        return
    properties = schema.get("properties")
    for name, sub in (properties if isinstance(properties, dict) else {}).items():
        if not isinstance(sub, dict):
            continue
        if isinstance(sub.get("description"), str):
            yield name, sub["description"]
        yield from _field_texts(sub, depth + 1)
        yield from _field_texts(sub.get("items"), depth + 1)


def extract_rules(proposal: Proposal, operations: Mapping[str, Operation]) -> list[ProseRule]:
    """The rules the pattern set reads from the operations' prose (module contract)."""
    rules: list[ProseRule] = []
    seen: set[tuple[str, str, str | None, str]] = set()
    for proposed in proposal.operations:
        op = operations.get(proposed.operation_id)
        if op is None:
            continue
        texts: list[tuple[str | None, str]] = [(None, op.description), *_field_texts(op.input_schema)]
        for field, text in texts:
            for sentence in split_sentences(text):
                for kind, pattern, limit in match_sentence(sentence) if len(sentence) <= 400 else ():
                    if (kind, proposed.collection, field, sentence) in seen:
                        continue
                    seen.add((kind, proposed.collection, field, sentence))
                    prefix = f"rule:{kind}:{proposed.collection}:{field or '-'}"
                    number = sum(r.id.startswith(prefix + ":") for r in rules)
                    rules.append(ProseRule(
                        id=f"{prefix}:{number}", kind=kind, quote=sentence, pattern=pattern,
                        source=f"{proposed.operation_id} " + (f"field {field}" if field else "description"),
                        collection=proposed.collection, field=field, limit=limit))
    return rules


def _arg(op: OpFacts | None, field: str | None) -> str | None:
    if op is None or field is None:
        return None
    return next((a for a in op.args if a == field or op.source_of(a) == field), None)


def _because(rule: ProseRule) -> str:
    return f'the spec says "{rule.quote}" ({rule.source}; pattern {rule.pattern})'


def _refused(rule: ProseRule) -> StepExpect:
    return StepExpect(outcome="error", error_kinds=list(rule.error_kinds), state_unchanged=True)


def _confirm(draft: Draft, coll: CollectionFacts, key: Any, parents: Mapping[str, Any], fields: dict[str, Any]) -> bool:
    """Append a read showing the record as created (or a list including it); False when the spec has neither."""
    read, listing = coll.first("read"), coll.first("list")
    if read is not None:
        draft.add(read, draft.address(read, coll, key, parents), StepExpect(fields=fields),
                  f"{spec_ref(read)}: the refused call changed nothing")
        return True
    if listing is not None:
        draft.add(listing, draft.address(listing, coll, key, parents),
                  StepExpect(includes=[key], key_fields=key_fields(coll)), f"{spec_ref(listing)} still lists it")
        return True
    return False


def _another(draft: Draft, coll: CollectionFacts, create: OpFacts, args: dict[str, Any], keep: str) -> dict[str, Any]:
    """The create's arguments for a second record: fresh free-text values and key, `keep` and parents as sent."""
    second = dict(args)
    for name, schema in create.args.items():
        if name in second and name != keep and name not in coll.parent_args and isinstance(second[name], str) \
                and isinstance(schema, dict) and not ({"enum", "pattern", "format"} & set(schema)):
            second[name] = draft.fresh(schema)
    if coll.key_in_create and coll.key_arg and coll.key_arg != keep:
        second[coll.key_arg] = draft.fresh(create.args[coll.key_arg])
    return second


def _unique(draft: Draft, coll: CollectionFacts, rule: ProseRule) -> str | None:
    create = coll.first("create")
    arg = _arg(create, rule.field)
    if create is None or arg is None:
        return f"{rule.field} is not an argument of a create of {coll.name}"
    made = draft.create(coll, setup=True)
    if made is None or arg not in made[1]:
        return f"a {coll.name} record cannot be created with {arg}"
    key, args, fields = made
    draft.add(create, _another(draft, coll, create, args, arg), _refused(rule), _because(rule))
    return None if _confirm(draft, coll, key, coll.parent_values(args), fields) \
        else "no read or list to confirm the state"


def _length(draft: Draft, coll: CollectionFacts, rule: ProseRule) -> str | None:
    limit = rule.limit
    size = (limit + 1 if rule.kind == "max_length" else limit - 1) if limit is not None else -1
    if size < 1 or size > MAX_SENT_LENGTH:
        return f"limit {limit}: no value of a testable length"
    create, update = coll.first("create"), coll.first("update")
    arg = _arg(create, rule.field) or _arg(update, rule.field)
    op = create if _arg(create, rule.field) else update
    if op is None or arg is None or json_type(op.args.get(arg, {})) != "string":
        return f"{rule.field} is not a string argument of a create or update of {coll.name}"
    if arg == coll.key_arg and op is not create:
        return f"{rule.field} is the record key: an update naming another value addresses another record"
    made = draft.create(coll, setup=True)
    if made is None:
        return f"a {coll.name} record cannot be created"
    key, args, fields = made
    parents = coll.parent_values(args)
    value = "x" * size
    if op is create:
        draft.add(op, {**_another(draft, coll, op, args, ""), arg: value}, _refused(rule), _because(rule))
    else:
        draft.add(op, draft.address(op, coll, key, parents, {arg: value}), _refused(rule), _because(rule))
    return None if _confirm(draft, coll, key, parents, fields) else "no read or list to confirm the state"


def _immutable(draft: Draft, coll: CollectionFacts, rule: ProseRule) -> str | None:
    update = coll.first("update")
    arg = _arg(update, rule.field)
    if update is None or arg is None:
        return f"{rule.field} is not an argument of an update of {coll.name}: nothing to violate"
    if arg == coll.key_arg:
        return f"{rule.field} is the record key: an update naming another value addresses another record"
    made = draft.create(coll, setup=True)
    if made is None:
        return f"a {coll.name} record cannot be created"
    key, args, fields = made
    parents = coll.parent_values(args)
    new = draft.fresh(update.args[arg])
    draft.add(update, draft.address(update, coll, key, parents, {arg: new}), _refused(rule), _because(rule))
    return None if _confirm(draft, coll, key, parents, fields) else "no read or list to confirm the state"


def _delete_requires_empty(draft: Draft, coll: CollectionFacts, rule: ProseRule) -> str | None:
    delete = coll.first("delete")
    child = next((c for c in draft.facts.values() if c.name != coll.name and coll.key_arg
                  and coll.key_arg in c.parent_args and c.first("create") is not None), None)
    if delete is None or child is None:
        return f"no delete of {coll.name}, or no collection created under it"
    made = draft.create(coll, setup=True)
    if made is None:
        return f"a {coll.name} record cannot be created"
    key, args, fields = made
    parents = coll.parent_values(args)
    under = {**child.parent_values(args), str(coll.key_arg): key}
    if set(child.parent_args) - set(under) or draft.create(child, setup=True, parents=under) is None:
        return f"a {child.name} record cannot be created under it"
    draft.add(delete, draft.address(delete, coll, key, parents), _refused(rule), _because(rule))
    return None if _confirm(draft, coll, key, parents, fields) else "no read or list to confirm the state"


_WRITERS = {"unique": _unique, "max_length": _length, "min_length": _length, "immutable": _immutable,
            "delete_requires_empty": _delete_requires_empty}


def rule_scenarios(rules: Sequence[ProseRule], tools: Sequence[ToolSpec], proposal: Proposal,
                   operations: Mapping[str, Operation], *, pool: Mapping[str, Sequence[str]], seed: int,
                   tokens: Mapping[str, str] | None = None) -> tuple[list[BehaviourScenario], list[str]]:
    """One violating scenario per rule, and why a rule has none (module contract); `tokens` as
    `behaviour.generate_scenarios` takes them."""
    facts = spec_facts(tools, proposal, operations)
    scenarios: list[BehaviourScenario] = []
    skipped: list[str] = []
    for rule in rules:
        coll = facts.get(rule.collection)
        writer = _WRITERS.get(rule.kind)
        draft = Draft(rule.id, seed, facts, pool, tokens)
        if coll is None or writer is None:
            skipped.append(f"{rule.id}: {rule.kind} needs state the spec does not let us drive" if coll
                           else f"{rule.id}: no collection {rule.collection}")
            continue
        reason = writer(draft, coll, rule) if rule.field is not None or rule.kind == "delete_requires_empty" \
            else "the sentence names no field"
        written = draft.scenario("rule", coll, f"{rule.kind} {rule.field or ''}: {rule.quote[:80]}") \
            if reason is None else None
        if written is None:
            skipped.append(f"{rule.id}: {reason or 'fewer than three calls'}")
        else:
            scenarios.append(written)
    return scenarios, skipped
