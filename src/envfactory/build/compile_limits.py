"""Compiler generation 2, the pass over an assembled source (part of `compile.py`; issue 19 deliverable 3):
envelopes, full updates that keep their state, idempotency tokens, capacities and cascades the spec
states, and the generation in the provenance. Generation 1 (the shipped library) never runs it.

Contract (`generation2(source, proposal, operations)` returns a new source; pure and deterministic):
- Envelopes: each tool answers under the source response's own names (`compile_gen2.response_envelope`).
- A full `update` of a collection with transitions declares `keep_transitions`.
- Idempotency tokens: a write whose source operation names a token (an AWS member marked
  `x-aws-idempotency-token`, or an argument named `clientToken`, `ClientRequestToken`, `idempotencyKey`,
  `IdempotencyToken`; an `Idempotency-Key` header becomes the argument `Idempotency_Key`) declares
  `IdempotencyDecl`; used tokens live in a collection `idempotency_tokens` the pass adds (no tool).
- Capacities: a `max_count` prose rule (`verify.rules_extract`, pattern `count.max_of`: "at most 50
  tags") whose counted noun names a collection gives it a `CapacityDecl` (per parent when the collection
  has a cascading parent reference), quoting the sentence; one naming an array field of the rule's
  collection gives the field `maxItems` (the smaller limit wins). A limit of 0 is ignored, and so is a
  sentence about one request's payload (`_PER_REQUEST`: bulk, batch, request, `data`).
- Cascades: a sentence of a collection's delete operation that says the delete removes its children
  (`_CASCADE`: "Deletes the queue and all messages in it", "deleting a project also deletes its
  tasks") makes the references of the named child collections `cascade`; a `delete_requires_empty`
  rule ("can only be deleted when empty") makes every reference to the collection `restrict` instead
  (it wins over a cascade sentence).
- Answered fields: a create's response requires fields a call may leave out: an optional argument
  left out takes the empty value of its type or its first enum value (`assign` with an argument
  default), a date-time no argument gives takes the clock, other server-made values are not invented;
  keys, references, scopes, unique and state-machine fields are left alone (`_answered_defaults`).
- References to records no tool manages: a required `<Noun>Id` member of an AWS create whose operation
  can fail with a not-found error (`ResourceNotFoundException`), stored on the record, naming no
  collection of the environment and no parent, names a record the service holds that the environment has
  no tool for (Managed Blockchain `CreateMember(InvitationId)`: an invitation sent by a vote). It becomes
  a reference to a collection `<nouns>` (key the member, no tool; seeded like any other collection), so a
  create naming one that does not exist is `not_found` as the API answers.
- Lengths: a `max_length`/`min_length` prose rule ("up to 256 characters") on a field of a collection
  gives the string argument naming that field (under the request's or the response's spelling) of each
  create, update and patch of the collection `maxLength`/`minLength`, so a longer value is refused as
  `invalid_arguments` (the tighter of two bounds wins).
- Reasons: a required string argument of an action named like a reason (`cancellationReason`,
  `rejectionReason`) that is no field of the record becomes one, which the action sets (`_kept_reasons`).
- Required members: a required scalar argument of a create that is no field of its record (a query
  parameter) becomes one, so the create stores what its source requires (`_kept_required`); a
  `requestId` whose description says it makes the request idempotent (Google Drive) is an idempotency
  token.
- Provenance: every entry records `generation=2`.
`fit_seed(source, state)` makes a seed state fit what the pass declared: no used tokens; a record's scope
fields (`/repos/{owner}/{repo}/...`: the fields its tools require to match) equal its parent's where the
parent record has them (an asset lives under its release's owner and repo), parents first; and a
collection over its capacity trimmed (key order) to one record under the limit per group when nothing
refers to it, otherwise the capacity is taken out (returned with the reason). Counters are recounted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from envfactory.build.compile_gen2 import response_envelope
from envfactory.build.naming import collection_name, field_name, id_prefix, snake
from envfactory.build.seeds import _count_children, _parents_first
from envfactory.spec import DeclarativeEnvSource, DeclarativeToolDecl, JSONObject, Operation
from envfactory.spec.build import Proposal
from envfactory.spec.declarative import (
    ArgExpr,
    CapacityDecl,
    CollectionDecl,
    CompareCond,
    FieldExpr,
    IdempotencyDecl,
    NowExpr,
    ReferenceDecl,
)
from envfactory.spec.inflection import singular
from envfactory.spec.rules import ProseRule
from envfactory.spec.schema_tools import (
    SchemaTooLarge,
    definitions,
    flatten,
    json_type,
    object_properties,
    unwrap_record,
)
from envfactory.verify.rules_extract import extract_rules
from envfactory.verify.rules_patterns import PATTERNS, split_sentences

__all__ = ["TOKENS_COLLECTION", "fit_seed", "generation2"]

TOKENS_COLLECTION = "idempotency_tokens"
_TOKEN_NAMES = frozenset({"clienttoken", "clientrequesttoken", "idempotencykey", "idempotencytoken"})
_WRITES = frozenset({"create", "update", "patch", "delete"})
_COUNT_PATTERN = next(p for p in PATTERNS if p.id == "count.max_of")
_CASCADE = re.compile(
    r"\b(delet|remov)\w*\b.{0,100}?\b(and all|along with|together with|including|as well as|also (delete|remove)s?|"
    r"all (of )?(its|their|the|associated)|any (of )?(its|their|associated))\b", re.IGNORECASE)
# a limit on one request's payload ("an array of up to 10 child nodes" in a bulk create), not on records held
_PER_REQUEST = re.compile(r"\b(request|requests|bulk|batch|at a time|per call|payload)\b|`data`", re.IGNORECASE)
_NOT_CASCADE = re.compile(r"\b(cannot|can't|must|only|before|first|fails?|not)\b", re.IGNORECASE)


def generation2(source: DeclarativeEnvSource, proposal: Proposal, operations: Mapping[str, Operation]) -> DeclarativeEnvSource:
    """The source with generation 2's declarations (module contract)."""
    tools = [_tool2(t, source, operations) for t in source.tools]
    collections = dict(source.collections)
    if any(t.operation.idempotency is not None for t in tools):
        collections[TOKENS_COLLECTION] = _tokens_collection()
    rules = extract_rules(proposal, operations)
    tools = _length_limits(tools, rules)
    tools, collections = _kept_reasons(tools, collections)
    collections = _kept_required(tools, collections)
    collections = _capacities(collections, rules)
    collections = _cascades(collections, tools, rules, operations)
    collections = _held_elsewhere(collections, tools, operations)
    provenance = [p.model_copy(update={"generation": 2}) for p in source.meta.provenance]
    meta = source.meta.model_copy(update={"provenance": provenance})
    return source.model_copy(update={"meta": meta, "tools": tools, "collections": collections})


def _tool2(tool: DeclarativeToolDecl, source: DeclarativeEnvSource, operations: Mapping[str, Operation]) -> DeclarativeToolDecl:
    op = operations.get(tool.source.operation_id) if tool.source is not None else None
    decl = tool.operation
    update: dict[str, Any] = {}
    if op is not None:
        envelope = response_envelope(op, decl.kind, decl.listing.page_token_arg if decl.listing is not None else None)
        if envelope is not None:
            update["envelope"] = envelope
    if decl.kind == "update" and source.collections[decl.collection].transitions:
        update["keep_transitions"] = True
    if decl.kind == "create" and op is not None:
        defaults = _answered_defaults(tool, source, op)
        if defaults:
            update["assign"] = {**decl.assign, **defaults}
    input_schema = tool.input_schema
    token = _token_argument(tool, op) if op is not None and decl.kind in _WRITES else None
    if token is not None:
        arg, header = token
        if header:
            known = input_schema.get("properties")
            props: dict[str, Any] = {**(known if isinstance(known, dict) else {}),
                                     arg: {"type": "string", "description": "idempotency key (header)"}}
            input_schema = {**input_schema, "properties": props}
        update["idempotency"] = IdempotencyDecl(arg=arg, collection=TOKENS_COLLECTION)
    if not update and input_schema is tool.input_schema:
        return tool
    return tool.model_copy(update={"operation": decl.model_copy(update=update), "input_schema": input_schema})


def _token_argument(tool: DeclarativeToolDecl, op: Operation) -> tuple[str, bool] | None:
    """The argument holding the operation's idempotency token and whether it comes from a header."""
    props = tool.input_schema.get("properties")
    taken = props if isinstance(props, dict) else {}
    for original, schema in sorted(_all_members(op.input_schema).items()):
        flat = original.replace("_", "").replace("-", "").lower()
        marked = isinstance(schema, dict) and (schema.get("x-aws-idempotency-token") is True or (
            flat == "requestid" and "idempoten" in str(schema.get("description", "")).lower()))  # Google Drive
        if not (marked or flat in _TOKEN_NAMES):
            continue
        ours = field_name(original)
        if ours in taken:
            return ours, False
        if isinstance(schema, dict) and schema.get("x-in") == "header" and flat == "idempotencykey":
            return ours, True
    return None


def _all_members(schema: Any) -> dict[str, Any]:
    """Top-level arguments and the members of a `body` argument (OpenAPI), by source name."""
    members = dict(object_properties(schema))
    body = members.get("body")
    if isinstance(body, dict):
        members.update(object_properties(body))
    return members


def _tokens_collection() -> CollectionDecl:
    record = {"type": "object", "additionalProperties": False, "required": ["token", "tool", "arguments_digest"],
              "properties": {"token": {"type": "string"}, "tool": {"type": "string"},
                             "arguments_digest": {"type": "string"}, "result": {}}}
    return CollectionDecl(description="idempotency tokens already used (tool:token) and the first result",
                          key="token", record_schema=record)


def _empty_value(schema: Any) -> Any:
    """The value a record holds for a field the response always answers and the caller did not give: the
    first enum value, else the empty value of the field's type where the field's schema accepts it (no
    minimum length, items or value, pattern, format or required properties); None: no such value."""
    if not isinstance(schema, dict):
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if {"pattern", "format", "required", "exclusiveMinimum", "const", "oneOf", "anyOf", "allOf"} & set(schema) \
            or any(isinstance(schema.get(k), int | float) and schema[k] > 0 for k in ("minLength", "minItems", "minimum", "minProperties")):
        return None
    return {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}.get(json_type(schema) or "")


def _answered_defaults(tool: DeclarativeToolDecl, source: DeclarativeEnvSource, op: Operation) -> dict[str, Any]:
    """`assign` entries for the fields a create's response requires that a call may leave out: an optional
    argument takes the empty value of its type (its first enum value) when left out; a date-time the caller
    cannot give (`createdOn`) takes the clock; other values the server makes (tokens) are not invented. Keys, references, scopes, unique fields, state-machine
    fields and fields already assigned are left alone."""
    name = tool.operation.collection
    coll = source.collections.get(name)
    try:
        record = unwrap_record(flatten(op.output_schema, definitions(op.output_schema))) if op.output_schema else None
    except SchemaTooLarge:
        return {}
    required = record.get("required") if isinstance(record, dict) else None
    if coll is None or not isinstance(required, list):
        return {}
    fields = object_properties(coll.record_schema)
    args = tool.input_schema.get("properties")
    given = set(args) if isinstance(args, dict) else set()
    needed = tool.input_schema.get("required")
    left_alone = {coll.key, *(r.field for r in coll.references), *(f for u in coll.unique for f in u),
                  *(t.field for t in coll.transitions),
                  *tool.operation.assign, *_scope_fields(source, name), *(needed if isinstance(needed, list) else [])}
    out: dict[str, Any] = {}
    for member in required:
        our = field_name(member) if isinstance(member, str) else None
        if our is None or our in left_alone or our not in fields:
            continue
        schema = fields[our]
        if isinstance(schema, dict) and schema.get("format") == "date-time":
            if our not in given:
                out[our] = NowExpr()
            continue
        value = _empty_value(schema) if our in given else None  # a value the server makes is never invented
        if value is not None:
            out[our] = ArgExpr(path=our, default=value)
    return out


_NOT_FOUND = re.compile(r"NotFound|NoSuch", re.IGNORECASE)
_AWS_ID_MEMBER = re.compile(r"^((?:[A-Z][a-z0-9]+)+)Id$")


def _held_elsewhere(collections: dict[str, CollectionDecl], tools: list[DeclarativeToolDecl],
                    operations: Mapping[str, Operation]) -> dict[str, CollectionDecl]:
    """Collections (no tool) for the records AWS creates name by a required `<Noun>Id` member that no
    collection holds (module contract, "References to records no tool manages")."""
    out = dict(collections)
    for tool in tools:
        op = operations.get(tool.source.operation_id) if tool.source is not None else None
        if tool.operation.kind != "create" or op is None or op.provider != "aws" \
                or not any(_NOT_FOUND.search(e.code) for e in op.errors):
            continue
        coll = out[tool.operation.collection]
        props = object_properties(coll.record_schema)
        taken = {r.field for r in coll.references} | {coll.key, tool.operation.key_arg}
        if tool.operation.idempotency is not None:
            taken.add(tool.operation.idempotency.arg)
        required = tool.input_schema.get("required", [])
        for arg in sorted(a for a in (required if isinstance(required, list) else []) if isinstance(a, str)):
            match = _AWS_ID_MEMBER.match(arg)
            if match is None or arg in taken or not isinstance(props.get(arg), dict) or json_type(props[arg]) != "string":
                continue
            noun = match.group(1)
            if any(_noun_matches(snake(noun), name) for name in out):
                continue
            name = collection_name(noun)
            out[name] = CollectionDecl(
                description=f"{name} the service holds and no tool of this environment manages ({op.name} names one by {arg})",
                key=arg, id_prefix=id_prefix(noun),
                record_schema={"type": "object", "additionalProperties": False, "required": [arg],
                               "properties": {arg: {"type": "string"}}})
            coll = coll.model_copy(update={"references": [*coll.references, ReferenceDecl(field=arg, collection=name)]})
            out[tool.operation.collection] = coll
    return out


def _length_limits(tools: list[DeclarativeToolDecl], rules: list[ProseRule]) -> list[DeclarativeToolDecl]:
    """Tools whose string arguments carry the `maxLength`/`minLength` of the prose length rules (module
    contract, "Lengths"): a create, update or patch of the rule's collection, the argument the rule's field
    names under any spelling (`FriendlyName` answered as `friendly_name`); the tighter bound wins."""
    bounds: dict[tuple[str, str, str], int] = {}  # (collection, squashed field, schema keyword) -> limit
    for rule in rules:
        if rule.kind in ("max_length", "min_length") and rule.field and rule.limit is not None and rule.limit >= 0:
            word = "maxLength" if rule.kind == "max_length" else "minLength"
            slot = (rule.collection, _squashed(rule.field), word)
            known = bounds.get(slot)
            bounds[slot] = rule.limit if known is None else (min if word == "maxLength" else max)(known, rule.limit)
    if not bounds:
        return tools
    out: list[DeclarativeToolDecl] = []
    for tool in tools:
        props = tool.input_schema.get("properties")
        if tool.operation.kind not in ("create", "update", "patch") or not isinstance(props, dict):
            out.append(tool)
            continue
        names = tool.source.field_names if tool.source is not None else {}
        changed: dict[str, Any] = dict(props)
        for arg, schema in props.items():
            if not isinstance(schema, dict) or json_type(schema) != "string":
                continue
            bounded = dict(schema)
            for word in ("maxLength", "minLength"):
                limit = bounds.get((tool.operation.collection, _squashed(names.get(arg, arg)), word))
                have = bounded.get(word)
                if limit is not None and not (isinstance(have, int) and (have <= limit if word == "maxLength" else have >= limit)):
                    bounded[word] = limit
            if bounded != schema:
                changed[arg] = bounded
        out.append(tool if changed == props else tool.model_copy(
            update={"input_schema": {**tool.input_schema, "properties": changed}}))
    return out


_REASON = re.compile(r"(reason|comment|note)$", re.IGNORECASE)


def _kept_reasons(tools: list[DeclarativeToolDecl], collections: dict[str, CollectionDecl]
                  ) -> tuple[list[DeclarativeToolDecl], dict[str, CollectionDecl]]:
    """Actions keep the reason they are given (module contract, "Reasons"): a required string argument of
    an action (`patch` without `fields_from_args`) named like a reason (`cancellationReason`,
    `rejectionReason`, `comment`) that is no field of the record becomes one, the action assigning it."""
    out: list[DeclarativeToolDecl] = []
    colls = dict(collections)
    for tool in tools:
        decl = tool.operation
        props = tool.input_schema.get("properties")
        required = tool.input_schema.get("required")
        coll = colls.get(decl.collection)
        if decl.kind != "patch" or decl.fields_from_args or coll is None or not isinstance(props, dict) \
                or not isinstance(required, list):
            out.append(tool)
            continue
        fields = dict(object_properties(coll.record_schema))
        kept = [a for a in required if isinstance(a, str) and _REASON.search(a) and a not in fields and a not in decl.assign
                and _is_string(props.get(a))]
        for arg in kept:
            fields[arg] = {"type": "string", "description": f"the {arg} given to {tool.name}"}
        if not kept:
            out.append(tool)
            continue
        colls[decl.collection] = coll.model_copy(update={"record_schema": {**coll.record_schema, "properties": fields}})
        assign = {**decl.assign, **{arg: ArgExpr(path=arg) for arg in kept}}
        out.append(tool.model_copy(update={"operation": decl.model_copy(update={"assign": assign})}))
    return out, colls


def _kept_required(tools: list[DeclarativeToolDecl], collections: dict[str, CollectionDecl]) -> dict[str, CollectionDecl]:
    """A create keeps what its source requires (module contract, "Required members"): a required scalar
    argument of a create that is no field of its record (a query parameter such as Sinao
    `?organization_name=`) becomes one, so the create stores it; the idempotency token excepted."""
    colls = dict(collections)
    for tool in tools:
        decl = tool.operation
        props, required = tool.input_schema.get("properties"), tool.input_schema.get("required")
        coll = colls.get(decl.collection)
        if decl.kind != "create" or not decl.fields_from_args or coll is None or not isinstance(props, dict) \
                or not isinstance(required, list):
            continue
        fields = dict(object_properties(coll.record_schema))
        token = decl.idempotency.arg if decl.idempotency is not None else None
        kept = [a for a in required if isinstance(a, str) and a not in fields and a != token and a not in decl.assign
                and _is_scalar(props.get(a))]
        if kept:
            fields.update({a: props[a] for a in kept})
            colls[decl.collection] = coll.model_copy(update={"record_schema": {**coll.record_schema, "properties": fields}})
    return colls


def _is_scalar(schema: Any) -> bool:
    return isinstance(schema, dict) and json_type(schema) in ("string", "integer", "number", "boolean")


def _is_string(schema: Any) -> bool:
    return isinstance(schema, dict) and json_type(schema) in ("string", None)


def _squashed(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _noun_matches(noun: str, name: str) -> bool:
    wanted = singular(noun.lower().replace("-", "_"))
    return wanted in {singular(name), singular(name.rsplit("_", 1)[-1])}


def _capacities(collections: dict[str, CollectionDecl], rules: list[ProseRule]) -> dict[str, CollectionDecl]:
    out = dict(collections)
    for rule in rules:
        if rule.kind != "max_count" or not rule.limit:
            continue
        hit = _COUNT_PATTERN.regex.search(rule.quote)
        if hit is None or _PER_REQUEST.search(rule.quote):
            continue
        noun = hit.group(3)
        named = [n for n in sorted(out) if n != TOKENS_COLLECTION and _noun_matches(noun, n)]
        if named:
            decl = out[named[0]]
            if decl.capacity is not None and decl.capacity.max_records <= rule.limit:
                continue
            per = next((r.field for r in decl.references if r.on_delete == "cascade"), None)
            out[named[0]] = decl.model_copy(update={"capacity": CapacityDecl(max_records=rule.limit, per=per, quote=rule.quote)})
            continue
        decl_or_none = out.get(rule.collection)
        if decl_or_none is not None:
            out[rule.collection] = _max_items(decl_or_none, noun, rule.limit)
    return out


def _max_items(decl: CollectionDecl, noun: str, limit: int) -> CollectionDecl:
    props = dict(object_properties(decl.record_schema))
    for name, schema in sorted(props.items()):
        if isinstance(schema, dict) and json_type(schema) == "array" and _noun_matches(noun, field_name(name).lower()):
            if isinstance(schema.get("maxItems"), int) and schema["maxItems"] <= limit:
                return decl
            props[name] = {**schema, "maxItems": limit}
            return decl.model_copy(update={"record_schema": {**decl.record_schema, "properties": props}})
    return decl


def _cascades(collections: dict[str, CollectionDecl], tools: list[DeclarativeToolDecl], rules: list[ProseRule],
              operations: Mapping[str, Operation]) -> dict[str, CollectionDecl]:
    cascading: dict[str, set[str]] = {}  # parent collection -> child collections its deletes remove
    for tool in tools:
        op = operations.get(tool.source.operation_id) if tool.source is not None else None
        if op is None or tool.operation.kind != "delete":
            continue
        for sentence in split_sentences(op.description or ""):
            hit = _CASCADE.search(sentence)
            if hit is None or _NOT_CASCADE.search(sentence):
                continue
            tail = sentence[hit.start():]
            words = set(re.findall(r"[A-Za-z]+", tail))
            cascading.setdefault(tool.operation.collection, set()).update(
                n for n in collections if n != tool.operation.collection and any(_noun_matches(w, n) for w in words))
    emptied = {r.collection for r in rules if r.kind == "delete_requires_empty"}
    out: dict[str, CollectionDecl] = {}
    for name, decl in collections.items():
        refs = [_on_delete(r, name, cascading, emptied) for r in decl.references]
        out[name] = decl if refs == decl.references else decl.model_copy(update={"references": refs})
    return out


def _on_delete(ref: ReferenceDecl, child: str, cascading: Mapping[str, set[str]], emptied: set[str]) -> ReferenceDecl:
    if ref.collection in emptied:
        wanted = "restrict"
    elif child in cascading.get(ref.collection, set()):
        wanted = "cascade"
    else:
        return ref
    return ref if ref.on_delete == wanted else ref.model_copy(update={"on_delete": wanted})


def fit_seed(source: DeclarativeEnvSource, state: JSONObject) -> tuple[DeclarativeEnvSource, JSONObject, list[str]]:
    """The source and seed state made to agree (module contract), with a line per capacity taken out."""
    raw: Any = state["collections"]
    colls: dict[str, dict[str, Any]] = {n: dict(v) for n, v in raw.items()}
    if TOKENS_COLLECTION in colls:
        colls[TOKENS_COLLECTION] = {}
    notes: list[str] = []
    decls = dict(source.collections)
    referred = {r.collection for d in decls.values() for r in d.references}
    for name, decl in sorted(decls.items()):
        cap = decl.capacity
        if cap is None:
            continue
        groups: dict[Any, list[str]] = {}
        for key in sorted(colls.get(name, {})):
            groups.setdefault(colls[name][key].get(cap.per) if cap.per else None, []).append(key)
        over = [k for keys in groups.values() for k in keys[max(cap.max_records - 1, 0):]]
        if not over:
            continue
        if name in referred or cap.max_records == 0:
            decls[name] = decl.model_copy(update={"capacity": None})
            notes.append(f"{name}: capacity {cap.max_records} not declared: the seed holds more and other records refer to them")
            continue
        for key in over:
            del colls[name][key]
    source = source.model_copy(update={"collections": decls})
    _inherit_scopes(source, colls)
    fitted: JSONObject = {**state, "collections": colls}  # type: ignore[dict-item]
    _count_children(source, fitted["collections"])  # type: ignore[arg-type]
    return source, fitted, notes


def _scope_fields(source: DeclarativeEnvSource, collection: str) -> set[str]:
    """The fields that say where a record of `collection` lives: those its tools require to equal an
    argument of the same name (`... is not under owner ...`) and those `plan_scopes` added to the record
    (described "the <arg> it was created under")."""
    decl = source.collections[collection]
    props = object_properties(decl.record_schema)
    scoped = {req.condition.left.path for tool in source.tools if tool.operation.collection == collection
              for req in tool.operation.requires
              if isinstance(req.condition, CompareCond) and isinstance(req.condition.left, FieldExpr)
              and " is not under " in req.message}
    added = {name for name, schema in props.items() if isinstance(schema, dict)
             and str(schema.get("description", "")).endswith(" it was created under")}
    return (scoped | added) - {decl.key}


def _inherit_scopes(source: DeclarativeEnvSource, colls: dict[str, dict[str, Any]]) -> None:
    """Give each seeded record its parent's values of its scope fields (module contract), in place."""
    for name in _parents_first(source):
        scopes = sorted(_scope_fields(source, name))
        parents = [r for r in source.collections[name].references if r.on_delete == "cascade" and "[]" not in r.field]
        if not scopes or not parents:
            continue
        for key, record in list(colls.get(name, {}).items()):
            parent = colls.get(parents[0].collection, {}).get(record.get(parents[0].field))
            if not isinstance(parent, dict):
                continue
            inherited = {f: parent[f] for f in scopes if f in parent and f in record and record[f] != parent[f]}
            if inherited:
                colls[name][key] = {**record, **inherited}
