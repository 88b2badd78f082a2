"""The trusted engine that executes declarative environments (DESIGN §3).

Contract:
- `DeclarativeBackend(spec)` compiles the environment once (record validators, expressions, operation
  plans); sessions share it. It holds no episode state.
- `execute` stages every change of a call in a `Transaction` over the session's `RecordStore`, checks
  requirements, transitions, record schemas, unique fields and references on the staged records, and
  returns a `PreparedCall` whose `commit` writes the changes. A failed call changes nothing.
- Outputs: a record (create/get/update/patch), a page `{items, next_page_token, total}` (list) or
  `{deleted: key}`; an operation's `envelope` puts the record or page under the source response's
  own names instead (`{"GameServerGroup": record}`, `{"jobs": [...], "nextPageToken": ...}`).
- Declared in the spec only (compiler generation 2; `guards.py`): a full `update` with
  `keep_transitions` keeps the state-machine fields its arguments do not name; a create past the
  collection's `capacity` is a `rule_violation`; an operation's `idempotency` token answers a repeated
  call with the same arguments by the first result, unwritten, and refuses other arguments.
- Error kinds: unknown record → `not_found`; a declared requirement → its declared kind; a broken
  transition, constraint or an effect that would leave a record invalid → `rule_violation`; arguments
  that would make the target record invalid → `invalid_arguments`.

The compiled pieces (collections, references, requirements, effects, plans) and `Transaction` live in
`plan.py`; `Transaction` is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from envfactory.errors import SpecError, ToolError
from envfactory.runtime.backend import PreparedCall
from envfactory.runtime.declarative.expressions import (
    Scope,
    get_path,
    in_range,
    ordered,
    render_message,
)
from envfactory.runtime.declarative.guards import check_capacity, remember, replayed, search_match
from envfactory.runtime.declarative.plan import (
    CompiledCollection,
    Effect,
    Plan,
    Reference,
    Transaction,
    parse_reference_path,
)
from envfactory.runtime.declarative.records import Collection, RecordStore
from envfactory.runtime.diff import escape_pointer, json_diff
from envfactory.runtime.sources import CallContext
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import EnvSpec, StateChange, StateDiff
from envfactory.spec.declarative import (
    DeclarativeModel,
)
from envfactory.spec.env import DeclarativeImplementation
from envfactory.spec.tool import AgentErrorKind

_Deleted = None  # marker value in a transaction's staged changes


def _copy(value: Any) -> Any:
    """Deep copy of JSON data (containers only; scalars are immutable).

    Records in a store are never mutated in place, so values inside them (argument values, constants
    from the spec) may be shared freely; only what leaves the engine (outputs) must be a private copy.
    The session hands the engine its own copy of the arguments and copies the call log when read.
    """
    if isinstance(value, dict | list):
        return orjson.loads(orjson.dumps(value))
    return value


class DeclarativeBackend:
    """Executes one declarative environment; see the module docstring for the contract."""

    def __init__(self, spec: EnvSpec) -> None:
        """Compile `spec`'s collections and operations once (validators, expressions, plans); `SpecError` when
        it is not a declarative environment or its declarations do not compile."""
        impl = spec.implementation
        if not isinstance(impl, DeclarativeImplementation):
            raise SpecError(f"{spec.meta.name} is not a declarative environment")
        self._spec = spec
        model: DeclarativeModel = impl.model
        self._collections = {name: CompiledCollection(name, decl) for name, decl in model.collections.items()}
        for name, decl in model.collections.items():
            for ref in decl.references:
                if ref.collection not in self._collections:
                    raise SpecError(f"collection {name}: reference {ref.field} names unknown collection {ref.collection}")
                compiled = Reference(parse_reference_path(ref.field), ref.collection, ref.on_delete, name, ref.field)
                self._collections[name].outgoing.append(compiled)
                self._collections[ref.collection].incoming.append(compiled)
        self._plans: dict[str, Plan] = {}
        for tool, op in model.operations.items():
            if op.collection not in self._collections:
                raise SpecError(f"operation {tool} names unknown collection {op.collection}")
            tool_spec = spec.tool(tool)
            if tool_spec is None:
                raise SpecError(f"operation {tool} has no tool spec in {spec.meta.name}")
            self._plans[tool] = Plan(tool, op, self._collections[op.collection], tool_spec.output_schema)
        self._state_schema = CompiledSchema(spec.state_schema)

    @property
    def spec(self) -> EnvSpec:
        """The spec this backend was compiled from."""
        return self._spec

    # -- state ------------------------------------------------------------------------------------------
    def load_state(self, state: Any) -> RecordStore:
        """A `RecordStore` over state JSON (None: empty collections). Raises `SpecError` when the state does not
        fit the state schema, a record sits under another key, a reference dangles or a unique field repeats."""
        if state is None:
            state = {}
        violation = self._state_schema.check(state)
        if violation is not None:
            raise SpecError(f"state does not fit {self._spec.meta.name}: {violation.message}")
        raw_collections = state.get("collections", {})
        counters = {name: 0 for name in self._collections}
        counters.update(state.get("counters", {}))
        collections: dict[str, Collection] = {}
        for name, coll in self._collections.items():
            records = _copy(raw_collections.get(name, {}))
            for key, record in records.items():
                if record.get(coll.key) != key:
                    raise SpecError(f"state: {name} record under key {key!r} has {coll.key}={record.get(coll.key)!r}")
            collections[name] = Collection.build(records)
        store = RecordStore(collections, counters)
        for name, coll in self._collections.items():
            seen: dict[tuple[str, ...], dict[tuple[Any, ...], str]] = {fields: {} for fields in coll.unique}
            for key, record in store.records(name).items():
                problem = self._record_problem(store.get, coll, record)
                if problem is not None:
                    raise SpecError(f"state: {name} {key!r} {problem}")
                for fields, index in seen.items():
                    values = tuple(orjson.dumps(record.get(f)) for f in fields)
                    if any(record.get(f) is None for f in fields):
                        continue
                    if values in index:
                        raise SpecError(f"state: {name} {key!r} and {index[values]!r} share {', '.join(fields)} (must be unique)")
                    index[values] = key
        return store

    def diff(self, before: Any, after: Any) -> StateDiff:
        """Per-record changes between two stores of this environment, collection by collection in declaration
        order (collections the stores still share are skipped without comparing records)."""
        changes: list[StateChange] = []
        for name in self._collections:
            old, new = before.records(name), after.records(name)
            if old is new:
                continue
            for key in sorted(set(old) | set(new)):
                path = f"/collections/{escape_pointer(name)}/{escape_pointer(key)}"
                if key not in new:
                    changes.append(StateChange(op="remove", path=path, old=old[key]))
                elif key not in old:
                    changes.append(StateChange(op="add", path=path, new=new[key]))
                elif old[key] is not new[key] and before.digest(name, key) != after.digest(name, key):
                    changes.extend(json_diff(old[key], new[key], path))
        changes.extend(json_diff(before.counters, after.counters, "/counters"))
        return StateDiff(changes=changes)

    # -- execution ----------------------------------------------------------------------------------------
    def execute(self, state: Any, tool: str, arguments: dict[str, Any], ctx: CallContext) -> PreparedCall:
        """Run the operation `tool` declares on a transaction over the store. Raises `ToolError`:
        `unknown_tool`, `invalid_arguments` for a malformed key, `not_found` for a missing record, and the
        kinds the declaration's requirements name. Writes are applied by `commit()`."""
        plan = self._plans.get(tool)
        if plan is None:
            raise ToolError("unknown_tool", f"{tool} has no operation in {self._spec.meta.name}")
        store: RecordStore = state
        if plan.kind == "get":
            return self._get(plan, store, arguments, ctx)
        if plan.kind == "list":
            return self._list(plan, store, arguments, ctx)
        txn = Transaction(store)
        if plan.idempotency is not None:
            first = replayed(plan, txn, arguments)
            if first is not None:  # the same token and arguments again: the first result, nothing written
                return PreparedCall(output=first)
        if plan.kind == "create":
            output = self._create(plan, txn, arguments, ctx)
        elif plan.kind == "delete":
            output = self._delete(plan, txn, arguments, ctx)
        else:
            output = self._update(plan, txn, arguments, ctx)
        # create/update/patch return the target record, validated by `_validate` against the record
        # schema that `compile_source` made the tool's output schema; delete returns a fixed shape.
        validated = plan.kind != "delete" and plan.output_is_record
        if plan.kind != "delete":
            output = _wrap(plan, output)
        if plan.idempotency is not None:
            remember(plan, txn, arguments, output)
        return PreparedCall(output=output, commit=txn.commit, output_validated=validated)

    def _scope(self, reader: Callable[[str, str], dict[str, Any] | None], args: dict[str, Any],
               target: dict[str, Any] | None, key: str | None, ctx: CallContext) -> Scope:
        return Scope(args, target, key, ctx.now_iso, reader)

    def _target(self, plan: Plan, reader: Callable[[str, str], dict[str, Any] | None], args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        key = args.get(plan.key_arg)
        if not isinstance(key, str):
            raise ToolError("invalid_arguments", f"{plan.key_arg} must be a string key of {plan.coll.name}", f"/{plan.key_arg}")
        record = reader(plan.coll.name, key)
        if record is None:
            raise ToolError("not_found", f"{plan.coll.name} {key!r} not found", f"/{plan.key_arg}")
        return key, record

    def _check_requirements(self, plan: Plan, scope: Scope) -> None:
        for req in plan.requires:
            if not req.condition(scope):
                raise ToolError(req.kind, render_message(req.message, scope))

    def _get(self, plan: Plan, store: RecordStore, args: dict[str, Any], ctx: CallContext) -> PreparedCall:
        key, record = self._target(plan, store.get, args)
        if plan.requires:
            self._check_requirements(plan, self._scope(store.get, args, record, key, ctx))
        return PreparedCall(output=_wrap(plan, _copy(record)))

    def _list(self, plan: Plan, store: RecordStore, args: dict[str, Any], ctx: CallContext) -> PreparedCall:
        listing = plan.listing
        if plan.requires:
            self._check_requirements(plan, self._scope(store.get, args, None, None, ctx))
        records = list(store.records(plan.coll.name).values())
        for flt in listing.filters:
            if flt.arg not in args or args[flt.arg] is None:
                continue
            wanted, match, fpath = args[flt.arg], flt.match, flt.field
            if match == "search":  # AWS-style `filters: [{name, operator, values}]` over the whole record
                records = [r for r in records if search_match(r, wanted, plan.coll.fields)]
                continue
            records = [r for r in records if _filter_match(match, get_path(r, fpath), wanted)]
        sort_field = listing.sort_by or plan.coll.key
        if listing.sort_arg and isinstance(args.get(listing.sort_arg), str):
            sort_field = args[listing.sort_arg]
            if sort_field not in plan.coll.fields:
                raise ToolError("invalid_arguments", f"cannot sort {plan.coll.name} by unknown field {sort_field!r}", f"/{listing.sort_arg}")
        descending = bool(listing.descending_arg and args.get(listing.descending_arg))
        key_field = plan.coll.key
        records.sort(key=lambda r: (_sort_key(get_path(r, sort_field)), r[key_field]), reverse=descending)
        size = listing.default_page_size
        if listing.page_size_arg and args.get(listing.page_size_arg) is not None:
            size = args[listing.page_size_arg]
            if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= listing.max_page_size:
                raise ToolError("invalid_arguments", f"{listing.page_size_arg} must be an integer from 1 to {listing.max_page_size}", f"/{listing.page_size_arg}")
        offset = 0
        if listing.page_token_arg and args.get(listing.page_token_arg):
            token = args[listing.page_token_arg]
            # isascii: str.isdigit also accepts digits int() refuses (e.g. '²'); the length cap keeps
            # int() clear of its limit on very long digit strings.
            if not (
                isinstance(token, str) and token.isascii() and token.isdigit() and len(token) <= 18
                and int(token) <= len(records)
            ):
                raise ToolError("invalid_arguments", f"{listing.page_token_arg} {token!r} is not a token this tool returned", f"/{listing.page_token_arg}")
            offset = int(token)
        page = records[offset : offset + size]
        nxt = str(offset + size) if offset + size < len(records) else None
        envelope = plan.envelope
        if envelope is None:
            return PreparedCall(output={"items": _copy(page), "next_page_token": nxt, "total": len(records)})
        if envelope.records is None:  # the source's response is a bare array
            return PreparedCall(output=_copy(page))
        output: dict[str, Any] = {envelope.records: _copy(page)}
        if envelope.next_token is not None and nxt is not None:  # the last page leaves the token out
            output[envelope.next_token] = nxt
        if envelope.total is not None:
            output[envelope.total] = len(records)
        return PreparedCall(output=output)

    def _create(self, plan: Plan, txn: Transaction, args: dict[str, Any], ctx: CallContext) -> Any:
        coll = plan.coll
        given = _at_path(args, plan.key_arg) if plan.given_key else None
        if given is not None:
            key, where = given, "/" + plan.key_arg.replace(".", "/")
            if not isinstance(key, str):
                raise ToolError("invalid_arguments", f"{plan.key_arg} must be a string", where)
            if txn.get(coll.name, key) is not None:
                raise ToolError("rule_violation", f"{coll.name} {key!r} already exists", where)
        else:
            key = txn.next_key(coll)
        record: dict[str, Any] = {}
        if plan.fields_from_args:
            for name, value in args.items():
                if name in coll.fields and name != coll.key:
                    record[name] = value
        record[coll.key] = key
        scope = self._scope(txn.get, args, record, key, ctx)
        for name, fn in plan.assign.items():
            record[name] = fn(scope)
        self._check_requirements(plan, scope)
        for fieldname, transition in coll.transitions.items():
            value = record.get(fieldname)
            if transition.initial is not None and value is not None and value not in transition.initial:
                raise ToolError("rule_violation", f"a new {coll.name} record cannot start with {fieldname}={value!r} (allowed: {', '.join(transition.initial)})")
        if coll.capacity is not None:
            check_capacity(coll, record, (r for _, r in self._merged_items(coll.name, txn)))
        txn.put(coll.name, key, record)
        self._apply_effects(plan, txn, scope)
        self._validate(plan, txn)
        # the record as written: effects may have changed the target after it was staged
        return _copy(txn.get(coll.name, key))

    def _update(self, plan: Plan, txn: Transaction, args: dict[str, Any], ctx: CallContext) -> Any:
        coll = plan.coll
        key, old = self._target(plan, txn.get, args)
        # update replaces every non-key field; patch changes only what it is given
        record = {coll.key: key} if plan.kind == "update" else dict(old)
        if plan.keep_transitions and plan.kind == "update":  # a state moves by a transition of its own
            record.update({f: old[f] for f in coll.transitions if f in old and f not in args})
        if plan.fields_from_args:
            for name, value in args.items():
                if name in coll.fields and name != coll.key and name != plan.key_arg:
                    record[name] = value
        scope = self._scope(txn.get, args, old, key, ctx)
        for name, fn in plan.assign.items():
            record[name] = fn(scope)
        self._check_requirements(plan, scope)  # declared cases first: their messages are the specific ones
        for name in plan.assign:
            if name in coll.transitions and record[name] == old.get(name):
                _check_repeat(coll, key, name, record[name], coll.transitions[name].allowed)
        txn.put(coll.name, key, record)
        self._apply_effects(plan, txn, scope)
        self._validate(plan, txn)
        # the record as written: effects may have changed the target after it was staged
        return _copy(txn.get(coll.name, key))

    def _delete(self, plan: Plan, txn: Transaction, args: dict[str, Any], ctx: CallContext) -> Any:
        key, old = self._target(plan, txn.get, args)
        scope = self._scope(txn.get, args, old, key, ctx)
        self._check_requirements(plan, scope)
        self._apply_effects(plan, txn, scope)
        self._cascade_delete(plan.coll, key, txn, depth=0)
        self._validate(plan, txn)
        return {"deleted": key}

    def _cascade_delete(self, coll: CompiledCollection, key: str, txn: Transaction, depth: int) -> None:
        if depth > 16:
            raise ToolError("rule_violation", "cascading delete is nested too deeply")
        txn.put(coll.name, key, _Deleted)
        for ref in coll.incoming:
            source = self._collections[ref.source]
            for other_key in list(self._keys_with_staged(source.name, txn)):
                record = txn.get(source.name, other_key)
                if record is None or key not in ref.keys(record):
                    continue
                if ref.on_delete == "cascade":
                    self._cascade_delete(source, other_key, txn, depth + 1)
                else:
                    raise ToolError("rule_violation", f"cannot delete {coll.name} {key!r}: {source.name} {other_key!r} refers to it ({ref.text})")

    def _keys_with_staged(self, collection: str, txn: Transaction) -> list[str]:
        keys = list(txn.store.records(collection))
        keys.extend(k for (c, k) in txn.order if c == collection and txn.store.get(c, k) is None)
        return keys

    def _apply_effects(self, plan: Plan, txn: Transaction, scope: Scope) -> None:
        for effect in plan.effects:
            if effect.for_each is None:
                self._apply_effect(effect, txn, scope)
                continue
            items = effect.for_each(scope)
            if items is None:
                continue
            if not isinstance(items, list):
                raise ToolError("invalid_arguments", f"expected an array to apply {effect.op} to each element, got {items!r}")
            for item in items:
                self._apply_effect(effect, txn, scope.with_item(item))

    def _apply_effect(self, effect: Effect, txn: Transaction, scope: Scope) -> None:
        coll = self._collections[effect.collection]
        if effect.op == "create":
            key = txn.next_key(coll)
            record = {name: fn(scope) for name, fn in effect.values.items()}
            record[coll.key] = key
            txn.put(coll.name, key, record)
            return
        assert effect.key is not None and effect.value is not None
        key = effect.key(scope)
        target = txn.get(coll.name, key) if isinstance(key, str) else None
        if target is None:
            raise ToolError("not_found", f"{coll.name} {key!r} not found")
        value = effect.value(scope)
        if effect.op == "adjust":
            current = target.get(effect.field, 0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ToolError("invalid_arguments", f"cannot adjust {coll.name}.{effect.field} by non-number {value!r}")
            if isinstance(current, bool) or not isinstance(current, int | float):
                raise ToolError("rule_violation", f"{coll.name} {key!r}: {effect.field} is not a number")
            new_value: Any = in_range(current + value, f"{coll.name}.{effect.field} after adjusting by {value!r}")
        else:
            new_value = value
        transition = coll.transitions.get(effect.field)
        old_value = target.get(effect.field)
        if transition is not None and old_value != new_value:
            _check_transition(coll, key, effect.field, old_value, new_value, transition.allowed)
        elif transition is not None and effect.op == "set":
            _check_repeat(coll, key, effect.field, new_value, transition.allowed)
        txn.put(coll.name, key, {**target, effect.field: new_value})

    def _validate(self, plan: Plan, txn: Transaction) -> None:
        target_coll = plan.coll.name
        for ident in txn.order:
            record = txn.changes[ident]
            if record is None:
                continue
            collection, key = ident
            coll = self._collections[collection]
            before = txn.store.get(collection, key) if coll.transitions else None
            if before is not None:
                for fieldname, transition in coll.transitions.items():
                    old_value, new_value = before.get(fieldname), record.get(fieldname)
                    if old_value != new_value:
                        _check_transition(coll, key, fieldname, old_value, new_value, transition.allowed)
            violation = coll.schema.check(record)
            if violation is not None:
                if collection == target_coll and plan.kind in ("create", "update", "patch") and ident == txn.order[0]:
                    raise ToolError("invalid_arguments", f"the {collection} record would be invalid: {violation.message}", violation.path)
                raise ToolError("rule_violation", f"{plan.tool} would leave {collection} {key!r} invalid: {violation.message}")
            problem = self._reference_problem(txn.get, coll, record) or self._unique_problem(coll, key, record, txn)
            if problem is not None:
                kind: AgentErrorKind = "not_found" if problem.startswith("refers to") else "rule_violation"
                raise ToolError(kind, f"{collection} {key!r} {problem}")

    def _record_problem(
        self, reader: Callable[[str, str], dict[str, Any] | None], coll: CompiledCollection, record: dict[str, Any]
    ) -> str | None:
        violation = coll.schema.check(record)
        if violation is not None:
            return f"violates the record schema: {violation.message}"
        return self._reference_problem(reader, coll, record)

    def _reference_problem(
        self, reader: Callable[[str, str], dict[str, Any] | None], coll: CompiledCollection, record: dict[str, Any]
    ) -> str | None:
        for ref in coll.outgoing:
            for ref_key in ref.keys(record):
                if not isinstance(ref_key, str) or reader(ref.target, ref_key) is None:
                    return f"refers to missing {ref.target} {ref_key!r} ({ref.text})"
        return None

    def _unique_problem(self, coll: CompiledCollection, key: str, record: dict[str, Any], txn: Transaction) -> str | None:
        for fields in coll.unique:
            values = tuple(record.get(f) for f in fields)
            if any(v is None for v in values):
                continue
            for other_key, other in self._merged_items(coll.name, txn):
                if other_key != key and tuple(other.get(f) for f in fields) == values:
                    shown = ", ".join(f"{f}={v!r}" for f, v in zip(fields, values, strict=True))
                    return f"duplicates {shown} of {coll.name} {other_key!r} (must be unique)"
        return None

    def _merged_items(self, collection: str, txn: Transaction) -> Any:
        """Records of a collection as the transaction would leave them (without copying the collection)."""
        changes = txn.changes
        for key, record in txn.store.records(collection).items():
            staged = changes.get((collection, key), record)
            if staged is not None:
                yield key, staged
        for (c, k), staged in changes.items():
            if c == collection and staged is not None and txn.store.get(c, k) is None:
                yield k, staged


def _at_path(args: dict[str, Any], path: str) -> Any:
    """The argument at `path` (`Rule.Name`: the `Name` of argument `Rule`), or None where it is absent."""
    value: Any = args
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _wrap(plan: Plan, record: Any) -> Any:
    """`record` under the operation's envelope (`{"GameServerGroup": record}`), or as it is without one."""
    return record if plan.envelope is None or plan.envelope.records is None else {plan.envelope.records: record}


def _check_transition(coll: CompiledCollection, key: str, field: str, old: Any, new: Any, allowed: dict[str, list[str]]) -> None:
    options = allowed.get(str(old), []) if old is not None else None
    if options is None:
        return
    if new not in options:
        shown = ", ".join(options) if options else "none: it is final"
        raise ToolError("rule_violation", f"{coll.name} {key!r}: {field} cannot change from {old!r} to {new!r} (allowed: {shown})")


def _check_repeat(coll: CompiledCollection, key: str, field: str, value: Any, allowed: dict[str, list[str]]) -> None:
    """An operation that explicitly sets a transition field to the value it already has is a
    self-transition: refused unless `allowed[value]` lists `value` (re-shipping a shipped order must not
    silently re-stamp it). Fields merely copied from arguments are not explicit and pass unchanged."""
    if value is None or str(value) not in allowed:
        return
    if value not in allowed[str(value)]:
        raise ToolError("rule_violation", f"{coll.name} {key!r}: {field} is already {value!r}")


def _filter_match(match: str, value: Any, wanted: Any) -> bool:
    if match == "eq":
        return bool(value == wanted)
    if match == "ne":
        return bool(value != wanted)
    if match == "contains":
        if isinstance(value, str) and isinstance(wanted, str):
            return wanted.lower() in value.lower()
        return isinstance(value, list) and wanted in value
    if match == "prefix":
        return isinstance(value, str) and isinstance(wanted, str) and value.startswith(wanted)
    if match == "in":
        return isinstance(wanted, list) and value in wanted
    return ordered(match, value, wanted)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Total order over JSON scalars: nulls first, then numbers, then strings, then the rest as JSON."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
