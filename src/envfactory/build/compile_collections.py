"""Collections of the compiler (part of `compile.py`): each resource group becomes a `CollectionPlan`
(key, record fields, parents, status actions with their initial values, counters), planned from the
group's operations before any tool is made.

Deterministic: groups, fields and enum values are visited in sorted or declared order; never runs
spec text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envfactory.build.naming import field_name, words
from envfactory.build.shapes import STATUS_VERBS, OperationShape, ResourceGroup
from envfactory.spec import Operation
from envfactory.spec.inflection import plural, singular
from envfactory.spec.schema_tools import (
    SchemaTooLarge,
    definitions,
    flatten,
    json_type,
    object_properties,
    unwrap_record,
)

LOCATION_KEYS = ("x-in", "x-google-location")


SKIPPED_LOCATIONS = frozenset({"header", "cookie"})


_EXISTS_ERROR = re.compile(r"(already ?exists|exists|duplicate|conflict)", re.IGNORECASE)


_STATUS_WORDS = frozenset({"status", "state"})


# first match wins: the value a record starts with when its create does not say
_INITIAL_VALUES = (
    "pending", "creating", "created", "new", "draft", "initialized", "queued", "scheduled", "not_started",
    "active", "enabled", "open", "available", "ready",
)


@dataclass(slots=True)
class CollectionPlan:
    """A collection being planned from one resource group: key, fields (sanitised name -> schema),
    parents, status actions, initial values and counters; becomes a `CollectionDecl` at assembly."""

    group: ResourceGroup
    name: str
    key: str
    fields: dict[str, Any] = field(default_factory=dict)  # sanitised name -> schema
    originals: dict[str, str] = field(default_factory=dict)  # sanitised name -> original name
    read_only: set[str] = field(default_factory=set)
    parents: list[tuple[str, str, str]] = field(default_factory=list)  # (parent collection, field, source arg)
    generated: bool = True
    unique: list[list[str]] = field(default_factory=list)
    unusable: dict[str, str] = field(default_factory=dict)  # operation id -> why its schema cannot be used
    actions: dict[str, tuple[str, str]] = field(default_factory=dict)  # operation id -> (status field, value)
    refused: dict[str, str] = field(default_factory=dict)  # action operation id -> why it is no transition
    initial: dict[str, str] = field(default_factory=dict)  # status field -> value creates assign
    counters: dict[str, str] = field(default_factory=dict)  # counter field -> child collection
    counted_by: tuple[str, str, str] | None = None  # (parent collection, its counter field, our reference field)
    scopes: list[tuple[str, str]] = field(default_factory=list)  # generation 2: (field, source arg) scoping records
    generation2: bool = False  # compiled at generation 2: `create_key_arg` reads the response's record and nested keys
    respelled: dict[str, str] = field(default_factory=dict)  # generation 2, path style: request member -> field
    parent_keys: dict[str, str] = field(default_factory=dict)  # generation 2: parent collection -> its key field


def argument_location(schema: Any) -> str:
    """Where an argument goes in the request (`x-in` / `x-google-location`; `body` when unsaid)."""
    if isinstance(schema, dict):
        for key in LOCATION_KEYS:
            value = schema.get(key)
            if isinstance(value, str):
                return value
    return ""


def body_schema(op: Operation) -> dict[str, Any] | None:
    """The request body of a path/Google operation (the `body` argument), flattened; for AWS-style
    operations the whole input is the body."""
    defs = definitions(op.input_schema)
    props = object_properties(op.input_schema)
    bodies = [s for n, s in props.items() if argument_location(s) in ("body", "formData") or n == "body"]
    if any(argument_location(s) for s in props.values()) or bodies:
        if not bodies:
            return None
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for body in bodies:
            flat = flatten(body, defs)
            if flat is not None and object_properties(flat):
                merged["properties"].update(object_properties(flat))
                merged.setdefault("required", [])
                merged["required"] += [r for r in flat.get("required", []) if r not in merged["required"]]
        form = {n: s for n, s in props.items() if argument_location(s) == "formData"}
        for name, schema in form.items():
            flat = flatten(schema, defs)
            if flat is not None:
                merged["properties"][name] = flat
        return merged
    return flatten(op.input_schema, defs)


def _output_record(op: Operation) -> dict[str, Any] | None:
    flat = flatten(op.output_schema, definitions(op.output_schema))
    record = unwrap_record(flat)
    return record if object_properties(record) else None


def _is_read_only(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    text = str(schema.get("description", ""))
    return schema.get("readOnly") is True or text.startswith(("Output only", "[Output Only]", "Read-only", "Read only"))


def plan_collection(group: ResourceGroup, existing: Mapping[str, CollectionPlan], *,
                    generation2: bool = False) -> CollectionPlan | None:
    """The collection a resource group becomes (named apart from `existing`), or None when it has none.
    `generation2`: the key of a create is read as `create_key_arg` reads it at generation 2."""
    name = group.collection
    if name in existing:  # two resources with the same last noun (`a/items`, `b/items`)
        name = f"{name}_{len(existing)}"[:48]
    by_role: dict[str, list[OperationShape]] = {}
    for shape in group.shapes:
        by_role.setdefault(shape.role, []).append(shape)
    coll = CollectionPlan(group=group, name=name, key="id", generation2=generation2)
    sources: list[tuple[dict[str, Any] | None, bool]] = []
    for shape, reader, from_output in (
        *((s, body_schema, False) for s in by_role.get("create", []) + by_role.get("update", [])),
        *((s, _output_record, True) for s in by_role.get("read", []) + by_role.get("create", [])),
    ):
        try:
            sources.append((reader(shape.operation), from_output))
        except SchemaTooLarge as exc:
            coll.unusable[shape.operation.id] = str(exc)
    answered = _answered_spellings(group, sources) if generation2 else {}
    for schema, from_output in sources:
        for original, sub in object_properties(schema).items():
            if not isinstance(sub, dict) or argument_location(sub) in ("path", "query", *SKIPPED_LOCATIONS):
                continue
            if group.style == "aws" and from_output and original in coll.originals.values():
                continue
            safe = field_name(original)
            spelled = answered.get(_squashed(original)) if not from_output else None
            if spelled is not None and spelled != original:  # the response's spelling names the field
                safe = field_name(spelled)
                coll.respelled[original] = safe
            if safe in coll.fields:
                if from_output and _is_read_only(sub) and coll.originals.get(safe) == original:
                    coll.read_only.add(safe)
                continue
            sub = {k: v for k, v in sub.items() if k not in LOCATION_KEYS}
            coll.fields[safe] = sub
            coll.originals[safe] = original
            if _is_read_only(sub):
                coll.read_only.add(safe)
    key = _choose_key(group, coll)
    if key is not None and answered.get(_squashed(key)) not in (None, key):  # a path key `Sid` answered as `sid`
        key = field_name(answered[_squashed(key)])
    if key is None:
        return None
    coll.key = key
    described = coll.fields.get(key, {})
    coll.fields[key] = {"type": "string", **({"description": described["description"]} if "description" in described else {})}
    coll.originals.setdefault(key, key)
    coll.generated = not _create_takes_key(group, coll)
    creates = by_role.get("create", [])
    if coll.generated and any(_EXISTS_ERROR.search(e.code) for s in creates for e in s.operation.errors):
        noun_name = next((f for f in coll.fields if f.lower() in {"name", f"{_last_word(group)}name"}), None)
        if noun_name is not None and noun_name != key and json_type(coll.fields[noun_name]) == "string":
            coll.unique.append([noun_name])
    return coll


def _squashed(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _answered_spellings(group: ResourceGroup, sources: list[tuple[dict[str, Any] | None, bool]]) -> dict[str, str]:
    """Generation 2, path-style sources: the responses' record properties by their squashed name, where the
    request spells them otherwise (Twilio's form members `FriendlyName`, `Sid` answered as `friendly_name`,
    `sid`): the record takes the response's spelling. Empty for AWS and name styles (one spelling)."""
    if group.style in ("aws", "name"):
        return {}
    out: dict[str, str] = {}
    for schema, from_output in sources:
        if from_output:
            for name in object_properties(schema):
                out.setdefault(_squashed(name), name)
    return out


def _last_word(group: ResourceGroup) -> str:
    parts = words(group.noun.rsplit("/", 1)[-1].rsplit(".", 1)[-1])
    return singular(parts[-1]) if parts else ""


def _choose_key(group: ResourceGroup, coll: CollectionPlan) -> str | None:
    if group.style in ("aws", "name"):
        if group.key_member is not None:
            return field_name(group.key_member)
        if any(s.role in ("read", "update", "delete") for s in group.shapes):
            return None  # they name records somehow, but not by one string argument
        # create and list only (an SQS message): key the records by the id the create returns
        return next((f for f in sorted(coll.fields) if f.endswith(("Id", "Arn", "Url"))), None)
    for candidate in ("id", "_id", "uuid"):
        if candidate in coll.fields and json_type(coll.fields[candidate]) in ("string", "integer", None):
            return candidate
    if group.key_member is not None:
        return field_name(group.key_member)
    return "id"


def _create_takes_key(group: ResourceGroup, coll: CollectionPlan) -> bool:
    """Whether every create names the new record's key itself (AWS `CreateTable(TableName)`, or one
    required identifying member like SES `VerifyEmailIdentity(EmailAddress)`)."""
    creates = [s for s in group.shapes if s.role == "create"]
    if not creates:
        return False
    return all(create_key_arg(s, coll) is not None for s in creates)


def create_key_arg(shape: OperationShape, coll: CollectionPlan) -> str | None:
    """The argument of a create that carries the new record's key, when the create takes one. At
    generation 2 (`coll.generation2`), for AWS-style sources: a create whose response's record
    (`{"Service": {"Id": ...}}`) holds the key by its name or its `Id`/`Arn` last word takes none (it
    generates the key, as a create answering it at the top level does: Cloud Map `CreateService`, whose
    one required string `Name` is no key); a key spelled as a required object member and its property
    (`RuleName` as `Rule.Name`, SES `CreateReceiptRule`) is that path (`member.property`)."""
    body = body_schema(shape.operation) or {}
    props = object_properties(body)
    required = set(body.get("required", []))
    originals = {v: k for k, v in coll.originals.items()}
    key_original = coll.originals.get(coll.key, coll.key)
    if key_original in props and (key_original in required or shape.style in ("aws", "name")):
        return field_name(key_original) if originals.get(key_original) == coll.key or key_original == coll.key else None
    answered = set(object_properties(shape.operation.output_schema))
    if coll.generation2 and shape.style in ("aws", "name"):
        nested = _nested_key(props, required, key_original)
        if nested is not None:
            return nested
        try:
            record = set(object_properties(_output_record(shape.operation)))
        except SchemaTooLarge:
            record = set()
        # the record answers its key by the key's own name or by its id-like last word (`Id` for `ServiceId`)
        answered |= {key_original} & record
        answered |= {key_original for suffix in ("Id", "Arn") if key_original.endswith(suffix) and suffix in record}
    if shape.style in ("aws", "name") and key_original not in answered:
        parent_args = {arg for _, arg in coll.group.parents}
        strings = [n for n in sorted(required - parent_args) if json_type(props.get(n, {})) in ("string", None)]
        if len(strings) == 1:
            return field_name(strings[0])
    return None


def _nested_key(props: Mapping[str, Any], required: set[str], key: str) -> str | None:
    """`member.property` when `key` is a required object member's name followed by one of its required
    string properties (`RuleName` -> `Rule.Name`), else None."""
    for member in sorted(required):
        schema = props.get(member)
        if not key.startswith(member) or not isinstance(schema, dict) or json_type(schema) != "object":
            continue
        inner = object_properties(schema)
        rest = key[len(member):]
        if rest in inner and rest in schema.get("required", []) and json_type(inner[rest]) in ("string", None):
            return f"{member}.{rest}"
    return None


_KEY_SUFFIXES = frozenset({"id", "ids", "name", "arn", "url", "key", "identifier"})


def key_names_noun(arg: str, noun: str) -> bool:
    """False when key argument `arg` names an entity that `noun` is a record *about*: its words without an
    id-like suffix (`WorkerId` → worker) stand in the noun but are not its last words (`WorkerBlock`: a
    block is about a worker, `WorkerId` names the worker). True otherwise: the arg's words end the noun
    (`RuleSetName` → `ReceiptRuleSet`, `ServiceId` → `Service`), nothing is left (`Id`), or the noun
    does not mention them at all (`Catalog` keying `SellingSystemSettings`: no evidence either way)."""
    left = [singular(w) for w in words(arg)]
    while left and left[-1] in _KEY_SUFFIXES:
        left.pop()
    nouns = [singular(w) for w in words(noun)]
    return not left or nouns[-len(left):] == left or left[0] not in nouns


def link_parents(coll: CollectionPlan, by_noun: Mapping[str, CollectionPlan], *, named: bool = False) -> None:
    """Record `coll`'s parent collections (reference field and source argument) from its resource path.
    With `named` (compiler generation 2), an AWS-style parent whose key argument names another noun
    (`key_names_noun`: a bonus's `WorkerId` is not the key of a worker block) is no parent."""
    for parent_noun, arg in coll.group.parents:
        parent = by_noun.get(parent_noun)
        if parent is None or parent is coll:
            continue
        if named and coll.group.style == "aws" and not key_names_noun(arg, parent_noun):
            continue
        safe = field_name(arg)
        generic = arg.lower() in ("id", "_id", "key", "uuid", "name")
        if generic or safe == coll.key or (safe in coll.fields and coll.originals.get(safe) != arg):
            safe = field_name(f"{singular(parent.name)}_id")
        if safe == coll.key:
            continue
        coll.fields[safe] = {"type": "string", "description": f"key of the {singular(parent.name)} it belongs to"}
        coll.originals[safe] = arg
        coll.read_only.discard(safe)
        coll.parents.append((parent.name, safe, arg))
        if named:
            coll.parent_keys[parent.name] = parent.key


def plan_counters(collections: Mapping[str, CollectionPlan], *, described: bool = False) -> None:
    """Find parent fields that count a child collection (see the module doc) and make them read-only.
    With `described` (compiler generation 2), an integer field whose description says it is the number
    of the child's records (`size`: "The number of items in the list") counts them too."""
    claims: dict[tuple[str, str], list[str]] = {}
    for child in collections.values():
        if len(child.parents) != 1:
            continue  # a child cascaded away through another parent would leave the count stale
        parent_name, _, _ = child.parents[0]
        parent = collections[parent_name]
        fields = [f for f in sorted(parent.fields) if f != parent.key and (
            _counts(f, parent.fields[f], child.name) or (described and _described_count(parent.fields[f], child.name)))]
        if len(fields) == 1:
            claims.setdefault((parent_name, fields[0]), []).append(child.name)
    for (parent_name, counter), children in sorted(claims.items()):
        parent = collections[parent_name]
        if len(children) != 1:
            continue  # two children named alike: which one it counts is not clear
        child = collections[children[0]]
        parent.counters[counter] = child.name
        parent.read_only.add(counter)
        child.counted_by = (parent_name, counter, child.parents[0][1])


def _counts(name: str, schema: Any, child: str) -> bool:
    """Whether field `name` of a parent reads as the number of `child` records (`ProgramCount`)."""
    if json_type(schema) != "integer":
        return False
    flat = name.replace("_", "").lower()
    if flat.startswith("approximate"):
        return False
    child_words = words(child)
    ones = {singular(child_words[-1]), "".join(child_words[:-1]) + singular(child_words[-1])} if child_words else set()
    many = {plural(w) for w in ones}
    names = {f"{w}count" for w in ones | many} | {f"{p}{w}" for p in ("numberof", "num", "total", "count") for w in many}
    return flat in names


_NOT_A_COUNT = re.compile(r"\b(approximate|estimated|max|maximum|min|minimum|limit|return|returned|page|allowed|"
                          r"at most|up to|per)\b", re.IGNORECASE)


def _described_count(schema: Any, child: str) -> bool:
    """Whether an integer field's description says it is the number of `child` records ("The number of
    programs in the multiplex", "total count of items"); never a limit, a page size or an estimate."""
    if not isinstance(schema, dict) or json_type(schema) != "integer":
        return False
    text = str(schema.get("description", ""))
    child_words = words(child)
    if not child_words or _NOT_A_COUNT.search(text):
        return False
    many = {plural(singular(child_words[-1])), " ".join([*child_words[:-1], plural(singular(child_words[-1]))])}
    nouns = "|".join(re.escape(m) for m in sorted(many) if m)
    return re.search(rf"\b(number|count) of (\w+ ){{0,2}}({nouns})\b|\bhow many ({nouns})\b", text, re.IGNORECASE) is not None


def plan_actions(coll: CollectionPlan) -> None:
    """Map each status action of `coll` to the status field and value it sets, and pick the value
    creates start the field with (see the module doc)."""
    statuses = status_fields(coll)
    for shape in coll.group.shapes:
        if shape.role != "action":
            continue
        op_id = shape.operation.id
        targets = STATUS_VERBS.get(shape.verb)
        if targets is None:
            coll.refused[op_id] = f"not CRUD ({shape.note or 'action'}); verb {shape.verb or '?'!r} sets no known status"
            continue
        found = _status_target(statuses, shape.verb, targets, coll)
        if found is None:
            enums = "; ".join(f"{f}: {', '.join(v[:6])}" for f, v in statuses.items()) or "none with an enum"
            coll.refused[op_id] = (f"not CRUD ({shape.note or 'action'}); no status value of {singular(coll.name)} "
                                   f"fits {shape.verb!r} (status fields: {enums})")[:400]
            continue
        coll.actions[op_id] = found
    for status in sorted({f for f, _ in coll.actions.values()}):
        if any(_create_writes(s, coll, status) for s in coll.group.shapes if s.role == "create"):
            continue
        value = _example_initial(coll, status) or _preferred_initial(statuses[status])
        if value is not None:
            coll.initial[status] = value


def status_fields(coll: CollectionPlan) -> dict[str, tuple[str, ...]]:
    """Status-like string fields of `coll` with their enum values."""
    out: dict[str, tuple[str, ...]] = {}
    for name, schema in sorted(coll.fields.items()):
        if name == coll.key or not isinstance(schema, dict) or json_type(schema) not in ("string", None):
            continue
        enum = schema.get("enum")
        parts = words(name)
        if not isinstance(enum, list) or not parts:
            continue
        values = tuple(v for v in enum if isinstance(v, str) and v)
        if values and (parts[-1] in _STATUS_WORDS or parts[0] == "lifecycle"):
            out[name] = values
    return out


def _status_target(
    statuses: Mapping[str, tuple[str, ...]], verb: str, targets: tuple[str, ...], coll: CollectionPlan
) -> tuple[str, str] | None:
    """The (field, enum value) an action with `verb` sets: a plain `status`/`state` first, then one
    qualified by the resource's own noun (`TableStatus`), then one qualified by the verb
    (`ActivationStatus` for `activate`); within a field, the verb's most specific value first."""
    noun_words = set(words(coll.group.noun)) | set(words(coll.name)) | {singular(w) for w in words(coll.name)}
    bare = verb[3:] if verb.startswith("dis") else verb[2:] if verb.startswith(("de", "un", "re")) else verb
    stems = {w[:-1] if w.endswith("e") else w for w in (verb, bare) if len(w) >= 4}
    ranked: list[tuple[int, str]] = []
    for name in statuses:
        qualifiers = [w for w in words(name) if w not in _STATUS_WORDS and w != "lifecycle"]
        if not qualifiers:
            ranked.append((0, name))
        elif set(qualifiers) <= noun_words:
            ranked.append((1, name))
        elif any(q.startswith(stem) for q in qualifiers for stem in stems):
            ranked.append((2, name))
    for _, name in sorted(ranked):
        value = _enum_match(statuses[name], name, targets)
        if value is not None:
            return name, value
    return None


def normalised_value(value: str, field: str) -> str:
    """`STATE_CANCELLED` → `cancelled`, `InProgress` → `in_progress` (field-name and status prefixes go)."""
    parts = words(value)
    prefix = words(field)
    if parts[: len(prefix)] == prefix and len(parts) > len(prefix):
        parts = parts[len(prefix):]
    while len(parts) > 1 and parts[0] in _STATUS_WORDS:
        parts = parts[1:]
    return "_".join(parts)


def _enum_match(values: tuple[str, ...], field: str, wanted: tuple[str, ...]) -> str | None:
    for target in wanted:
        for value in values:
            if normalised_value(value, field) == target:
                return value
    return None


def _create_writes(shape: OperationShape, coll: CollectionPlan, field_safe: str) -> bool:
    original = coll.originals.get(field_safe, field_safe)
    return original in object_properties(body_schema(shape.operation) or {}) and field_safe not in coll.read_only


def _example_initial(coll: CollectionPlan, status: str) -> str | None:
    """The status a create's own example output shows (the spec's word for a new record's state)."""
    original = coll.originals.get(status, status)
    allowed = status_fields(coll).get(status, ())
    for shape in coll.group.shapes:
        if shape.role != "create":
            continue
        for example in shape.operation.examples:
            output = example.output
            if isinstance(output, dict) and len(output) == 1 and isinstance(next(iter(output.values())), dict):
                output = next(iter(output.values()))
            value = output.get(original) if isinstance(output, dict) else None
            if isinstance(value, str) and value in allowed:
                return value
    return None


def _preferred_initial(values: tuple[str, ...]) -> str | None:
    for wanted in _INITIAL_VALUES:
        for value in values:
            if words(value) and normalised_value(value, "") == wanted:
                return value
    return None
