"""Compile a proposal to a declarative environment: resources → collections, operations → CRUD tools.

Contract:
- `compile_proposal(proposal, operations)` is deterministic and never runs spec text: names are
  sanitised to the format's patterns, descriptions and enum values stay strings.
- Each resource group (see `shapes`) becomes a collection. Its key is the path parameter that names
  one record (Google/OpenAPI) or the AWS identifier member (`QueueUrl`, `Identity`); the key is
  generated (`id_prefix` + counter) unless the create operation takes it as an argument. The record
  schema is the union of the create input (body), the update input and the read output (unwrapped
  from a one-field envelope), flattened (`spec.schema_tools.flatten`), closed, keyed by sanitised field names;
  `ToolSource.field_names` maps every renamed argument back to the source's name.
- Nested resources (`/customers/{id}/orders`, `lists/{tasklist}/tasks`, an SQS message needing a
  `QueueUrl`) get a reference field to the parent (deleting the parent cascades), an equality
  requirement on get/update/delete (a record under another parent is `not_found`) and a filter on list.
- Create with a declared "already exists" error and a generated key makes the name field unique.
- Status actions become transitions (see docs/envgen.md, "Compiling operations"). An action whose
  verb is in `shapes.STATUS_VERBS` (`StartDBCluster`, `jobs.cancel`, `POST /orders/{id}/cancel`) on
  a collection with a status field (`status`, `state`, `<noun>Status`, `lifecycle…`, or a field
  qualified by the verb itself, `ActivationStatus`) whose string `enum` holds one of the verb's
  values (matched ignoring case and a `STATE_`-like prefix; the enum's spelling is kept) compiles to
  a `patch` of the named record that assigns that value (`fields_from_args` off). The field gets a
  `TransitionDecl`: when no tool writes it from arguments, each enum value may move only to the
  action targets; otherwise to any other value. Either way the explicit self-transition (stopping a
  stopped cluster) is refused with `rule_violation`. When the creates do not take the field, they
  assign an initial value (the one the create's own example output shows, else the first
  pending/creating/new/draft/active-like value) and declare it as `initial`.
- Counters become effects. A parent integer field named for a child collection (`ProgramCount`,
  `program_count`, `number_of_programs`, `total_programs`, `NumPrograms`; never `Approximate…`)
  where the child has exactly one parent (that one) and the parent exactly one such field: the
  child's creates `adjust` it by +1 and its deletes by −1, the parent's creates assign 0, its full
  updates keep it, and no tool writes it from arguments.
- Operations that are not CRUD (and no status action), whose key argument is missing, or whose schema
  cannot be used are dropped with a reason (`DroppedOperation`, stage `compile`); so are tools the
  format's compiler refuses, one at a time, until the rest compiles. A proposal with nothing left
  raises `CompileError`.

Generations (`LibraryConfig.generation`, recorded in the provenance; docs/envgen.md, "Generations"): 1
compiles exactly as the library shipped until 2026-12-07 was built (seeds from `build.seeds`); 2 adds scope fields for
parent path parameters (`compile_gen2.plan_scopes`), final states (`plan_transitions(finals=True)`), and
the pass of `compile_limits.generation2` (envelopes, full updates keeping their state, idempotency
tokens, capacities, cascades), with seeds from `build.seeds_faker` fitted to it (`fit_seed`).

Collections are planned in `compile_collections.py`; tools, assembly and repair are here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from envfactory.build.compile_collections import (
    LOCATION_KEYS,
    SKIPPED_LOCATIONS,
    CollectionPlan,
    argument_location,
    body_schema,
    create_key_arg,
    key_names_noun,
    link_parents,
    plan_actions,
    plan_collection,
    plan_counters,
)
from envfactory.build.compile_gen2 import plan_scopes, plan_transitions
from envfactory.build.compile_limits import fit_seed, generation2
from envfactory.build.compile_repair import repair_source
from envfactory.build.errors import CompileError
from envfactory.build.naming import field_name, id_prefix, tool_name
from envfactory.build.seeds import seed_state
from envfactory.build.seeds_faker import seed_state as faker_seed_state
from envfactory.build.shapes import OperationShape, group_operations
from envfactory.spec import (
    CollectionDecl,
    DeclarativeEnvSource,
    DeclarativeToolDecl,
    EnvMeta,
    JSONObject,
    Operation,
    OperationDecl,
    SpecModel,
    ToolSource,
)
from envfactory.spec.build import DroppedOperation, Proposal
from envfactory.spec.declarative import (
    AdjustEffect,
    ArgExpr,
    CompareCond,
    ConstExpr,
    Effect,
    Expr,
    FieldExpr,
    FilterDecl,
    ListDecl,
    LookupExpr,
    PresenceCond,
    ReferenceDecl,
    RequirementDecl,
)
from envfactory.spec.inflection import singular
from envfactory.spec.library import SHIPPED_GENERATION
from envfactory.spec.schema_tools import (
    SchemaTooLarge,
    definitions,
    flatten,
    json_type,
    object_properties,
)

_AUTH = re.compile(r"(^|_)(api_?key|apikey|access_?token|auth[a-z_]*|token|secret|session_?id|signature)$")
_PAGE_TOKEN = frozenset({"pagetoken", "nexttoken", "marker", "cursor", "starttoken", "after", "continuationtoken"})
_PAGE_SIZE = frozenset({"pagesize", "maxresults", "maxitems", "limit", "perpage", "maxrecords"})
_DESCRIPTION_MAX = 1000


class CompiledEnv(SpecModel):
    """A compiled proposal: the declarative source, its seed states and what was dropped."""

    schema_version: Literal[1] = 1
    proposal_id: str
    source: DeclarativeEnvSource
    seeds: dict[str, JSONObject]
    compiled: list[str]
    dropped: list[DroppedOperation]


def compile_proposal(proposal: Proposal, operations: Mapping[str, Operation], *,
                     generation: int = SHIPPED_GENERATION) -> CompiledEnv:
    """The declarative environment of `proposal` (see the module doc), as compiler `generation` makes it."""
    dropped: list[DroppedOperation] = []
    ops: list[Operation] = []
    for proposed in proposal.operations:
        op = operations.get(proposed.operation_id)
        if op is None:
            dropped.append(_drop(proposed.operation_id, "", "operation is not in the catalog"))
        else:
            ops.append(op)
    groups = group_operations(ops)
    collections: dict[str, CollectionPlan] = {}
    by_noun: dict[str, CollectionPlan] = {}
    for group in groups:
        try:
            coll = plan_collection(group, collections, generation2=generation >= 2)
        except SchemaTooLarge as exc:
            dropped.extend(_drop(s.operation.id, "", f"{group.collection}: {exc}") for s in group.shapes)
            continue
        if coll is None:
            dropped.extend(_drop(s.operation.id, "", f"{group.collection}: no string argument names one record (e.g. keys are attribute maps); needs an authored implementation")
                           for s in group.shapes)
            continue
        collections[coll.name] = coll
        by_noun[group.noun] = coll
    for coll in collections.values():
        link_parents(coll, by_noun, named=generation >= 2)
        if generation >= 2:
            plan_scopes(coll)
    plan_counters(collections, described=generation >= 2)
    for coll in collections.values():
        plan_actions(coll)
    tools: list[DeclarativeToolDecl] = []
    used_names: set[str] = set()
    for coll in collections.values():
        for shape in coll.group.shapes:
            if shape.operation.id in coll.unusable:
                dropped.append(_drop(shape.operation.id, tool_name(shape.operation.name), coll.unusable[shape.operation.id]))
                continue
            try:
                tool, why = _tool(shape, coll, used_names)
            except SchemaTooLarge as exc:
                tool, why = None, str(exc)
            if tool is None:
                dropped.append(_drop(shape.operation.id, tool_name(shape.operation.name), why))
                continue
            used_names.add(tool.name)
            tools.append(tool)
    if not tools:
        reasons = "; ".join(sorted({f"{d.operation_id.rsplit(':', 1)[-1]}: {d.reason}" for d in dropped})[:5])
        raise CompileError(f"{proposal.name}: no operation compiles ({reasons})")
    source = _assemble(proposal, collections, tools, generation=generation)
    if generation >= 2:
        source = generation2(source, proposal, {op.id: op for op in ops})
    source, repaired = repair_source(source)
    dropped.extend(repaired)
    compiled = [t.source.operation_id for t in source.tools if t.source is not None]
    if generation >= 2:
        source, seed, _ = fit_seed(source, faker_seed_state(source, ops))
        seeds = {"default": seed}
    else:
        seeds = {"default": seed_state(source, ops)}
    return CompiledEnv(proposal_id=proposal.id, source=source, seeds=seeds, compiled=compiled, dropped=dropped)


_NOT_FOUND = re.compile(r"NotFound|NoSuch", re.IGNORECASE)


def _drop(operation_id: str, tool: str, reason: str) -> DroppedOperation:
    return DroppedOperation(operation_id=operation_id, tool_name=tool, stage="compile", reason=reason)


# ---------------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------------


def _arguments(op: Operation) -> dict[str, tuple[dict[str, Any], str]]:
    """Non-body arguments of an operation that an agent should pass: original name → (schema,
    location). Auth parameters, headers and cookies are left out."""
    defs = definitions(op.input_schema)
    out: dict[str, tuple[dict[str, Any], str]] = {}
    for name, sub in object_properties(op.input_schema).items():
        where = argument_location(sub)
        if where in ("body", "formData") or (name == "body" and where == ""):
            continue
        if where in SKIPPED_LOCATIONS or (where in ("query", "path") and _AUTH.search(name.lower()) and where != "path"):
            continue
        flat = flatten(sub, defs)
        if flat is None:
            continue
        out[name] = ({k: v for k, v in flat.items() if k not in LOCATION_KEYS}, where)
    return out


def operation_interface(op: Operation) -> tuple[dict[str, Any], dict[str, str], str]:
    """The public interface of an operation outside the CRUD compiler (an authored tool): its input
    schema (arguments with sanitised names: path/query arguments, then the body's members), the map of
    renamed arguments back to the source's names, and its description."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    field_names: dict[str, str] = {}

    def add(original: str, schema: Any, needed: bool) -> None:
        our = field_name(original)
        if our in properties:
            return
        properties[our] = schema if isinstance(schema, dict) else {}
        if our != original:
            field_names[our] = original
        if needed:
            required.append(our)

    path_style = any(argument_location(s) for s in object_properties(op.input_schema).values())
    if path_style:
        for original, (schema, where) in sorted(_arguments(op).items()):
            add(original, schema, where == "path")
    body = body_schema(op)
    body_required = set((body or {}).get("required", []))
    for original, schema in object_properties(body).items():
        add(original, schema, original in body_required)
    input_schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        input_schema["required"] = required
    description = (op.description or op.docs or op.name).strip()[:_DESCRIPTION_MAX]
    return input_schema, field_names, description


def operation_output(op: Operation) -> dict[str, Any]:
    """The output schema of an authored tool: the operation's own output, flattened (any object when
    the source declares none)."""
    flat = flatten(op.output_schema, definitions(op.output_schema)) if op.output_schema else None
    return flat if isinstance(flat, dict) and flat.get("type") == "object" else {"type": "object"}


@dataclass(slots=True)
class _ToolArgs:
    """A tool's arguments as gathered: schemas, required names, source names, the key's argument."""

    properties: dict[str, Any] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    field_names: dict[str, str] = field(default_factory=dict)
    key_arg: str | None = None

    def add(self, our: str, schema: dict[str, Any], original: str, needed: bool) -> None:
        """Take argument `our` (the source's `original`) with `schema`; `needed`: required."""
        self.properties[our] = schema
        if original != our:
            self.field_names[our] = original
        if needed and our not in self.required:
            self.required.append(our)


def _unique_tool_name(op: Operation, used: set[str]) -> str:
    name, suffix = tool_name(op.name), 2
    while name in used:
        name, suffix = f"{tool_name(op.name)[:60]}_{suffix}", suffix + 1
    return name


def _path_arguments(shape: OperationShape, coll: CollectionPlan, args: Mapping[str, tuple[dict[str, Any], str]], parent_by_arg: Mapping[str, tuple[str, str]], acc: _ToolArgs) -> None:
    """Path/query arguments (and AWS members that are not record fields)."""
    for original, (schema, where) in sorted(args.items()):
        if original in parent_by_arg:
            acc.add(parent_by_arg[original][1], {"type": "string"}, original, True)
        elif shape.item_param is not None and original == shape.item_param:
            acc.key_arg = field_name(original) if field_name(original) not in coll.fields or field_name(original) == coll.key else field_name(f"{singular(coll.name)}_key")
            acc.add(acc.key_arg, {"type": "string", **({"description": schema["description"]} if "description" in schema else {})}, original, True)
        else:
            our = field_name(original)
            if our in acc.properties or our == coll.key:
                continue
            # a query parameter that is a record field takes the record's schema (a list filter); generation 2:
            # a write keeps the query parameters its source requires required (Sinao `?organization_name=`)
            needed = where == "path" or (coll.generation2 and shape.role != "list" and original in _required(shape.operation))
            acc.add(our, coll.fields.get(our, schema), original, needed)


def _required(op: Operation) -> set[str]:
    """The source operation's required top-level arguments (path, query, header, body)."""
    required = op.input_schema.get("required")
    return {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()


def _body_arguments(shape: OperationShape, coll: CollectionPlan, body: Any,
                    parent_by_arg: Mapping[str, tuple[str, str]], acc: _ToolArgs) -> None:
    """The body's members: parents' keys, the record's key, writable fields, other AWS/name members."""
    key_original = coll.originals.get(coll.key, coll.key)
    body_required = set((body or {}).get("required", []))
    writes = shape.role in ("create", "update")
    scoped = {arg for _, arg in coll.scopes}  # generation 2 only
    for original, schema in object_properties(body).items():
        our = coll.respelled.get(original) or field_name(original)  # generation 2: the response's spelling
        if original in parent_by_arg:
            acc.add(parent_by_arg[original][1], {"type": "string"}, original, True)
            continue
        if original in scoped and not writes:  # a scope member names where the record lives: always taken
            acc.add(our, coll.fields[our], original, original in body_required)
            continue
        if shape.style in ("aws", "name") and original == key_original and shape.role != "create":
            acc.key_arg = coll.key
            acc.add(coll.key, coll.fields[coll.key], original, True)
            continue
        if our in coll.fields:
            if not writes or our in coll.read_only or (our == coll.key and (coll.generated or shape.role != "create")):
                continue
            acc.add(our, coll.fields[our], original, original in body_required or (shape.role == "create" and our == coll.key))
        elif shape.style in ("aws", "name") and shape.role != "create":
            if our in acc.properties:
                continue
            acc.add(our, schema if isinstance(schema, dict) else {}, original, original in body_required)


def _operation(shape: OperationShape, coll: CollectionPlan, acc: _ToolArgs
               ) -> tuple[str, ListDecl | None, list[RequirementDecl], str | None] | str:
    """The operation's kind, listing, parent requirements and create key, or why there is none."""
    listing: ListDecl | None = None
    requires: list[RequirementDecl] = []
    create_key: str | None = None
    if shape.role == "create":
        op_kind = "create"
        if not coll.generated:
            create_key = create_key_arg(shape, coll)
            if create_key is None:
                return "create does not take the record's key"
            head = create_key.split(".", 1)[0]  # generation 2: a key inside an object member (`Rule.Name`)
            if head != create_key:
                if head not in acc.properties:
                    return f"create does not take {head!r}, which holds the record's key"
                if head not in acc.required:
                    acc.required.append(head)
            elif create_key not in acc.properties:
                acc.add(create_key, {"type": "string"}, create_key, True)
            elif create_key not in acc.required:
                acc.required.append(create_key)
    elif shape.role in ("read", "update", "delete", "action"):
        op_kind = {"read": "get", "delete": "delete", "action": "patch"}.get(shape.role, "patch" if shape.partial else "update")
        if acc.key_arg is None:
            return f"no argument names the {singular(coll.name)} key {coll.originals.get(coll.key, coll.key)!r}"
        requires = [
            RequirementDecl(
                condition=CompareCond(op="eq", left=FieldExpr(path=safe), right=ArgExpr(path=safe)),
                error="not_found", message=f"{{key}} does not belong to {singular(parent)} {{arg.{safe}}}",
            )
            for parent, safe, _ in coll.parents if safe in acc.properties
        ] + [
            RequirementDecl(
                condition=CompareCond(op="eq", left=FieldExpr(path=safe), right=ArgExpr(path=safe)),
                error="not_found", message=f"{{key}} is not under {original} {{arg.{safe}}}",
            )
            for safe, original in coll.scopes if safe in acc.properties  # generation 2 only
        ]
    else:
        op_kind = "list"
        listing, extra_required = _listing(acc.properties, coll)
        acc.required = [r for r in acc.required if r in acc.properties] + [r for r in extra_required if r not in acc.required]
        # generation 2: an AWS list that declares a not-found error refuses a parent it requires that does
        # not exist (ListInstances: ServiceNotFound)
        refuses = shape.style == "aws" and any(_NOT_FOUND.search(e.code) for e in shape.operation.errors)
        requires = [
            RequirementDecl(
                condition=PresenceCond(op="exists", value=LookupExpr(
                    collection=parent, key=ArgExpr(path=safe), path=coll.parent_keys[parent])),
                error="not_found", message=f"{singular(parent)} {{arg.{safe}}} not found",
            )
            for parent, safe, _ in coll.parents if refuses and parent in coll.parent_keys and safe in acc.required
        ]
    return op_kind, listing, requires, create_key


def _tool(shape: OperationShape, coll: CollectionPlan, used: set[str]) -> tuple[DeclarativeToolDecl | None, str]:
    op = shape.operation
    if shape.role == "action" and op.id not in coll.actions:
        return None, f"{coll.refused.get(op.id, f'not CRUD ({shape.note})')}; needs an authored implementation"
    name = _unique_tool_name(op, used)
    style = shape.style
    args = _arguments(op) if style in ("google", "path") else {}
    body = body_schema(op) if style in ("google", "path") else flatten(op.input_schema, definitions(op.input_schema))
    parent_by_arg = {arg: (parent, safe) for parent, safe, arg in coll.parents}
    acc = _ToolArgs()
    _path_arguments(shape, coll, args, parent_by_arg, acc)
    _body_arguments(shape, coll, body, parent_by_arg, acc)
    description = (op.description or op.docs or f"{shape.role} {singular(coll.name)}").strip()
    operation = _operation(shape, coll, acc)
    if isinstance(operation, str):
        return None, operation
    op_kind, listing, requires, create_key = operation
    rules = _rules(shape, coll, acc.properties, acc.required)
    if isinstance(rules, str):
        return None, rules
    assign, effects, note = rules
    if note:
        description = f"{description[: _DESCRIPTION_MAX - len(note) - 2]}\n\n{note}" if description else note
    input_schema: dict[str, Any] = {"type": "object", "properties": acc.properties, "additionalProperties": False}
    if acc.required:
        input_schema["required"] = acc.required
    decl = OperationDecl(
        kind=op_kind,
        collection=coll.name,
        key_arg=(create_key if op_kind == "create" else (acc.key_arg if acc.key_arg != coll.key else None)),
        fields_from_args=shape.role != "action",
        assign=assign, requires=requires, effects=effects, listing=listing,
    )
    description = description[:_DESCRIPTION_MAX]
    source = ToolSource(provider=op.provider, service=op.service, operation_id=op.id, field_names=acc.field_names)
    return DeclarativeToolDecl(name=name, description=description, input_schema=input_schema, operation=decl, source=source), ""


def _rules(
    shape: OperationShape, coll: CollectionPlan, properties: Mapping[str, Any], required: list[str]
) -> tuple[dict[str, Expr], list[Effect], str] | str:
    """The assignments, effects and description note of a tool's status and counter rules, or why
    the tool cannot keep them."""
    assign: dict[str, Expr] = {}
    effects: list[Effect] = []
    notes: list[str] = []
    if shape.role == "action":
        status, value = coll.actions[shape.operation.id]
        assign[status] = ConstExpr(value=value)
        notes.append(f"Sets {status} to {value!r}; refused when it already is.")
    if shape.role == "create":
        for status, value in sorted(coll.initial.items()):
            if status not in properties:
                assign[status] = ConstExpr(value=value)
        for counter in sorted(coll.counters):
            assign[counter] = ConstExpr(value=0)
    if shape.role == "update" and not shape.partial:  # a full replace keeps what it does not own
        for counter in sorted(coll.counters):
            assign[counter] = FieldExpr(path=counter)
    if coll.counted_by is not None and shape.role in ("create", "delete"):
        parent, counter, ref = coll.counted_by
        if shape.role == "create":
            if ref not in required:
                return f"create does not name the {singular(parent)} whose {counter} it must count"
            effects.append(AdjustEffect(collection=parent, key=ArgExpr(path=ref), field=counter, by=ConstExpr(value=1)))
            notes.append(f"Adds 1 to the {singular(parent)}'s {counter}.")
        else:
            effects.append(AdjustEffect(collection=parent, key=FieldExpr(path=ref), field=counter, by=ConstExpr(value=-1)))
            notes.append(f"Subtracts 1 from the {singular(parent)}'s {counter}.")
    return assign, effects, " ".join(notes)


def _listing(properties: dict[str, Any], coll: CollectionPlan) -> tuple[ListDecl, list[str]]:
    filters: list[FilterDecl] = []
    page_token = page_size = None
    for arg, schema in properties.items():
        flat = arg.replace("_", "").lower()
        kind = json_type(schema) if isinstance(schema, dict) else None
        if flat in _PAGE_TOKEN and kind == "string" and page_token is None:
            page_token = arg
        elif flat in _PAGE_SIZE and kind == "integer" and page_size is None:
            page_size = arg
        elif (arg in coll.fields and (arg != coll.key or coll.generation2)) or any(arg == safe for _, safe, _ in coll.parents):
            filters.append(FilterDecl(arg=arg, field=arg, match="eq"))  # generation 2: the key too (GetDetectors)
        elif arg.endswith("Prefix") and arg[: -len("Prefix")] in coll.fields:
            filters.append(FilterDecl(arg=arg, field=arg[: -len("Prefix")], match="prefix"))
        elif coll.generation2 and (one := _one_of(arg, schema, coll)) is not None:
            filters.append(FilterDecl(arg=arg, field=one, match="in"))  # generation 2: `PolicyNames` -> PolicyName
        elif coll.generation2 and flat in ("filters", "filter") and kind == "array" and isinstance(schema, dict) \
                and {"name", "values"} <= set(object_properties(schema.get("items") or {})):
            filters.append(FilterDecl(arg=arg, field=coll.key, match="search"))  # generation 2: Braket SearchJobs
    listing = ListDecl(
        filters=filters, page_token_arg=page_token, page_size_arg=page_size,
        default_page_size=20, max_page_size=1000,
    )
    return listing, []


def _one_of(arg: str, schema: Any, coll: CollectionPlan) -> str | None:
    """The record field an array-of-strings list argument names the plural of (`PolicyNames` ->
    `PolicyName`, `ids` -> `id`): the list keeps the records whose field is one of the values; else None."""
    items = schema.get("items") if isinstance(schema, dict) and json_type(schema) == "array" else None
    if not isinstance(items, dict) or json_type(items) != "string":
        return None
    return next((f for f in (arg[:-1] if arg.endswith("s") else "", arg[:-2] if arg.endswith("es") else "")
                 if f and f in coll.fields), None)


# ---------------------------------------------------------------------------------------------------
# assembly and repair
# ---------------------------------------------------------------------------------------------------


def _assemble(proposal: Proposal, collections: Mapping[str, CollectionPlan], tools: list[DeclarativeToolDecl], *,
              generation: int) -> DeclarativeEnvSource:
    used = {t.operation.collection for t in tools}
    needed = set(used)
    frontier = list(used)
    while frontier:
        current = frontier.pop()
        for parent, _, _ in collections[current].parents:
            if parent not in needed:
                needed.add(parent)
                frontier.append(parent)
    decls: dict[str, CollectionDecl] = {}
    for name, coll in collections.items():
        if name not in needed:
            continue
        references = [ReferenceDecl(field=safe, collection=parent, on_delete="cascade")
                      for parent, safe, _ in coll.parents if parent in needed]
        references += _named_references(coll, {n: collections[n] for n in sorted(needed)}, {r.field for r in references},
                                        noun_checked=generation >= 2)
        properties = dict(sorted(coll.fields.items()))
        for ref in references:  # a reference holds another record's key: any key the engine makes fits
            described = properties.get(ref.field, {})
            properties[ref.field] = {"type": "string", **({"description": described["description"]} if "description" in described else {})}
        record = {
            "type": "object",
            "properties": properties,
            "required": [coll.key],
            "additionalProperties": False,
        }
        decls[name] = CollectionDecl(
            description=f"{coll.group.noun} records",
            key=coll.key,
            id_prefix=id_prefix(coll.group.noun.rsplit("/", 1)[-1].rsplit(".", 1)[-1]) if coll.generated else "",
            id_width=4 if coll.generated else 0,
            record_schema=record,
            unique=coll.unique,
            references=references,
            transitions=plan_transitions(coll, [t for t in tools if t.operation.collection == name], finals=generation >= 2),
        )
    provenance = [
        p.model_copy(update={"operations": [t.source.operation_id for t in tools if t.source is not None]})
        for p in proposal.provenance
    ]
    meta = EnvMeta(
        name=proposal.name, domain=proposal.domain, description=proposal.description or proposal.title,
        provenance=provenance,
    )
    return DeclarativeEnvSource(meta=meta, collections=decls, tools=tools)


def _named_references(coll: CollectionPlan, others: Mapping[str, CollectionPlan], taken: set[str], *,
                      noun_checked: bool = False) -> list[ReferenceDecl]:
    """References from fields named like another collection's key: `customer_id` → customers,
    `TableName` → tables (keyed by `TableName`). Deleting the referenced record is refused while
    such a record refers to it (`restrict`), since the API would leave it dangling otherwise. With
    `noun_checked` (generation 2), a key shared with a collection it does not name (`WorkerId`, the key of
    worker blocks) makes no reference (`key_names_noun`), and `<noun>_sid` (Twilio) names a record as
    `<noun>_id` does."""
    out: list[ReferenceDecl] = []
    for name, schema in sorted(coll.fields.items()):
        if name == coll.key or name in taken or json_type(schema) != "string" or name in coll.read_only:
            continue
        for other_name, other in others.items():
            if other is coll:
                continue
            stem = singular(other_name)
            suffixes = ("id", "sid") if noun_checked else ("id",)  # generation 2: Twilio's `device_sid` too
            named = any(name.lower() in {f"{stem}_{s}", f"{stem}{s}".replace("_", "")}
                        or name.replace("_", "").lower() == f"{stem}{s}".replace("_", "") for s in suffixes)
            keyed = other.key not in ("id", "_id", "name", "uuid") and name == other.key and (
                not noun_checked or key_names_noun(name, other.group.noun))
            if named or keyed:
                out.append(ReferenceDecl(field=name, collection=other_name, on_delete="restrict"))
                break
    return out
