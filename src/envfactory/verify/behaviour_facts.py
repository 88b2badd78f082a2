"""What an environment's SOURCE spec says about its collections, read before the environment runs.

Contract:
- `spec_facts(tools, proposal, operations)` reads, for each collection the proposal names, the tools
  playing each role (create/read/list/update/delete/action, from the proposal), the argument that
  addresses a record (the last path parameter of the read/update/delete operation's HTTP path, or, for
  sources without path parameters, the read's required argument the list does not require), the parent
  arguments (the create/list operation's path parameters), the status field and its final values (a
  property of the operation's record schema named like a status, with an `enum`, whose values name a
  terminal state), and the pagination arguments (a page-size and a page-token argument of the list
  operation, and the next-token field of its response schema).
- Everything comes from the catalog `Operation`s, the proposal and the tools' interfaces (names,
  input schemas, `source.field_names`); the environment's implementation is never read.
- `list_selection(listing, coll, made)`: values for a list's required arguments that select records
  (names, AWS search filters) naming every record a scenario created (see its docstring).
- Tools are matched to operations by `source.operation_id`, else by name. A collection whose tools or
  operations cannot be matched keeps what was found; the generator says what it could not write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from envfactory.spec import Operation, ToolSpec
from envfactory.spec.behaviour import BehaviourKind, BehaviourScenario
from envfactory.spec.build import Proposal
from envfactory.spec.schema_tools import flatten, json_type, object_properties, unwrap_record

__all__ = ["FINAL_WORDS", "TOKEN_FIELDS", "CollectionFacts", "OpFacts", "flat_name", "list_selection", "spec_facts",
           "write_jobs"]

FINAL_WORDS = frozenset({
    "completed", "complete", "cancelled", "canceled", "terminated", "succeeded", "finished", "voided",
    "refunded", "revoked", "expired", "done", "rejected", "declined", "failed",
})
"""Status values that name a terminal state (compared lower-cased, with `_`/`-` removed), unless an action
of the collection undoes it (`undelete`, `uncancel`, `reopen`, `restore`, `reactivate`)."""
_UNDO = ("un", "re")
_SIZE_ARGS = frozenset({"pagesize", "maxresults", "maxitems", "limit", "perpage", "maxrecords", "pagelimit"})
_TOKEN_ARGS = frozenset({"pagetoken", "nexttoken", "marker", "cursor", "startingafter", "after",
                         "continuationtoken", "starttoken", "nextpagetoken"})
TOKEN_FIELDS = frozenset({"nextpagetoken", "nexttoken", "nextmarker", "marker", "nextcursor", "cursor",
                           "nextcontinuationtoken", "continuationtoken", "next"})
_PATH_PARAM = re.compile(r"\{\+?([^}]+)\}")


def flat_name(name: str) -> str:
    """`name` lower-cased with everything but letters and digits removed (`next_page_token` -> `nextpagetoken`)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class OpFacts:
    """One proposed operation with the tool that implements it."""
    role: str
    collection: str
    tool: ToolSpec
    operation: Operation | None
    path_params: tuple[str, ...]  # our argument names, in path order

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.tool.name

    @property
    def args(self) -> dict[str, Any]:
        """The tool's argument schemas by name."""
        return object_properties(self.tool.input_schema)

    @property
    def required(self) -> tuple[str, ...]:
        """The tool's required arguments."""
        required = self.tool.input_schema.get("required")
        return tuple(r for r in required if isinstance(r, str)) if isinstance(required, list) else ()

    def response(self) -> tuple[str, tuple[str, ...]]:
        """The spec's response shape: ("object", its top-level property names), ("array", ()), or ("", ())
        when the spec gives no usable response schema."""
        if self.operation is None or not self.operation.output_schema:
            return "", ()
        try:
            flat = flatten(self.operation.output_schema) or {}
        except Exception:  # see _record_schema
            return "", ()
        kind = flat.get("type")
        if kind == "array":
            return "array", ()
        names = tuple(object_properties(flat))
        return ("object", names) if names else ("", ())

    def source_of(self, arg: str) -> str:
        """The source's original name of argument `arg`."""
        return (self.tool.source.field_names.get(arg, arg) if self.tool.source else arg)


@dataclass
class CollectionFacts:
    """What the spec says about one collection (module contract)."""
    name: str
    ops: dict[str, list[OpFacts]] = field(default_factory=dict)
    key_arg: str | None = None
    parent_args: tuple[str, ...] = ()
    record_fields: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset()
    status_field: str | None = None
    status_values: tuple[str, ...] = ()
    final_values: tuple[str, ...] = ()
    size_arg: str | None = None
    token_arg: str | None = None
    token_field: str | None = None
    source: list[str] = field(default_factory=list)

    def first(self, role: str) -> OpFacts | None:
        """The first operation playing `role`, or None."""
        found = self.ops.get(role) or []
        return found[0] if found else None

    def parent_values(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The parent path arguments among `args` (what addresses a record under its parents)."""
        return {name: args[name] for name in self.parent_args if name in args}

    @property
    def key_in_create(self) -> bool:
        """Whether the client names the key when creating (the create tool takes the key argument)."""
        create = self.first("create")
        return bool(create and self.key_arg and self.key_arg in create.args)


def spec_facts(tools: Sequence[ToolSpec], proposal: Proposal,
               operations: Mapping[str, Operation]) -> dict[str, CollectionFacts]:
    """Facts per collection (module contract), in the proposal's order."""
    by_op = {t.source.operation_id: t for t in tools if t.source and t.source.operation_id}
    by_name = {t.name: t for t in tools}
    facts: dict[str, CollectionFacts] = {}
    for proposed in proposal.operations:
        tool = by_op.get(proposed.operation_id) or by_name.get(proposed.name)
        if tool is None:
            continue
        op = operations.get(proposed.operation_id)
        entry = facts.setdefault(proposed.collection, CollectionFacts(name=proposed.collection))
        entry.ops.setdefault(proposed.role, []).append(
            OpFacts(proposed.role, proposed.collection, tool, op, _path_params(op, tool)))
        entry.source.append(proposed.operation_id)
    for entry in facts.values():
        _key_and_parents(entry)
    taken = {e.key_arg: e.name for e in facts.values() if e.key_arg}
    for entry in facts.values():  # a key another collection owns is this one's parent, not its key
        if entry.key_arg and taken.get(entry.key_arg) != entry.name:
            _key_and_parents(entry, {k for k, owner in taken.items() if owner != entry.name})
    for entry in facts.values():
        _record_facts(entry)
        _pagination(entry)
    return facts


def _path_params(op: Operation | None, tool: ToolSpec) -> tuple[str, ...]:
    if op is None or not op.http_path:
        return ()
    ours = {orig: mine for mine, orig in (tool.source.field_names.items() if tool.source else ())}
    props = object_properties(tool.input_schema)
    names = [ours.get(raw, raw) for raw in _PATH_PARAM.findall(op.http_path)]
    return tuple(n for n in names if n in props)


def _key_and_parents(entry: CollectionFacts, others: set[str] | frozenset[str] = frozenset()) -> None:
    """Set `entry.key_arg` and `entry.parent_args` (module contract); `others`: keys of other collections."""
    addressed = [op for role in ("read", "update", "delete") for op in entry.ops.get(role, [])]
    create, listing = entry.first("create"), entry.first("list")
    outer = create or listing
    entry.parent_args = tuple(p for p in (outer.path_params if outer else ()) if outer and p in outer.required)
    for op in addressed:
        extra = [p for p in op.path_params if p not in entry.parent_args]
        if extra:
            entry.key_arg = extra[-1]
            return
    for op in addressed:  # no path parameters (RPC-style sources): what the read needs and the list does not
        common = (set(listing.required) if listing else set(entry.parent_args)) | (set(op.required) & others)
        candidates = [a for a in op.required if a not in common]
        if len(candidates) > 1:
            candidates = [a for a in candidates if re.search(r"(id|name|url|arn|key)$", a, re.I)] or candidates
        if candidates:
            entry.key_arg = candidates[0]
            if not (outer and outer.path_params):
                entry.parent_args = tuple(a for a in op.required if a in common)
            return


def _record_schema(entry: CollectionFacts) -> dict[str, Any]:
    for role in ("read", "create", "update"):
        for op in entry.ops.get(role, []):
            if op.operation is not None and op.operation.output_schema:
                try:
                    flat = flatten(op.operation.output_schema)
                except Exception:  # a schema too large to flatten says nothing usable here
                    flat = None
                record = unwrap_record(flat) if flat else None
                if record and object_properties(record):
                    return record
    return {}


def _record_facts(entry: CollectionFacts) -> None:
    props = object_properties(_record_schema(entry))
    entry.record_fields = frozenset(props)
    entry.read_only = frozenset(name for name, schema in props.items() if isinstance(schema, dict) and (
        schema.get("readOnly") is True or str(schema.get("description", "")).lower().startswith(("output only", "[output only]"))))
    for name, schema in props.items():
        if not re.search(r"(status|state)$", name, re.I) or not isinstance(schema, dict):
            continue
        values = tuple(str(v) for v in schema.get("enum") or () if isinstance(v, str))
        undo = {flat_name(a.name) for a in entry.ops.get("action", [])}
        finals = tuple(v for v in values if flat_name(v) in FINAL_WORDS and not any(
            f"{prefix}{flat_name(v)[:4]}" in tool for tool in undo for prefix in _UNDO))
        if values and (finals or entry.status_field is None):  # the first status enum; one with terminal values wins
            entry.status_field, entry.status_values, entry.final_values = name, values, finals
        if finals:
            return


def _pagination(entry: CollectionFacts) -> None:
    listing = entry.first("list")
    if listing is None:
        return
    for arg in listing.args:
        flat = flat_name(listing.source_of(arg))
        if flat in _SIZE_ARGS and entry.size_arg is None:
            entry.size_arg = arg
        elif flat in _TOKEN_ARGS and entry.token_arg is None:
            entry.token_arg = arg
    if listing.operation is None:
        return
    try:
        flat_out = flatten(listing.operation.output_schema) or {}
    except Exception:  # see _record_schema
        flat_out = {}
    entry.token_field = next((name for name in object_properties(flat_out) if flat_name(name) in TOKEN_FIELDS), None)


def list_selection(listing: OpFacts, coll: CollectionFacts, made: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Values for the list's required arguments that select records rather than scope them, naming every
    record of `made` (the arguments of the creates a scenario made): an array named as the plural of a
    create argument (SES `PolicyNames` -> each `PolicyName` sent) and an AWS-style search argument, an
    array of `{name, operator, values}` (Braket `SearchJobs(filters)`: one EQUAL filter on the first
    record field every create sent). Empty when nothing was made."""
    out: dict[str, Any] = {}
    for name in listing.required if made else ():
        schema = listing.args.get(name)
        if not isinstance(schema, dict) or json_type(schema) != "array":
            continue
        sent = [a[name[:-1]] for a in made if name.endswith("s") and isinstance(a.get(name[:-1]), str | int)]
        items = object_properties(schema.get("items") or {})
        if sent:
            out[name] = list(dict.fromkeys(sent))
        elif {"name", "values"} <= set(items):
            field = next((f for f in made[0] if f in coll.record_fields and f != coll.key_arg
                          and all(isinstance(a.get(f), str) for a in made)), None)
            operators = items.get("operator", {}).get("enum") if isinstance(items.get("operator"), dict) else None
            operator = "EQUAL" if not operators or "EQUAL" in operators else operators[0]
            if field is not None:
                out[name] = [{"name": field, "operator": operator, "values": list(dict.fromkeys(a[field] for a in made))}]
    return out


class _ScenarioDraft(Protocol):
    def scenario(self, kind: BehaviourKind, coll: CollectionFacts, title: str) -> BehaviourScenario | None: ...


_D = TypeVar("_D", bound=_ScenarioDraft)


def write_jobs(jobs: Sequence[tuple[BehaviourKind, str, Callable[[_D], str | None]]], coll: CollectionFacts,
               new_draft: Callable[[str], _D], scenarios: list[BehaviourScenario], skipped: list[str]) -> None:
    """Run each (kind, scenario id, writer) job on a fresh draft of `new_draft(id)`: the scenario it wrote
    goes to `scenarios`, else the reason it gave (or that it wrote fewer than three calls) to `skipped`."""
    for kind, sid, run in jobs:
        draft = new_draft(sid)
        reason = run(draft)
        written = draft.scenario(kind, coll, sid.replace(":", " ")) if reason is None else None
        if written is not None:
            scenarios.append(written)
        else:
            skipped.append(f"{sid}: {reason or 'fewer than three calls'}")
