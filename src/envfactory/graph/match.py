"""Schema matching: can this output field feed that input field? Scores from names, types, formats
and declared references (`$ref` definition names), and the indexed candidate search that finds the
pairs worth scoring.

Contract:
- `FieldView` is what the matcher knows about one parameter: type, format, the entity and attribute
  its name and description say it is (outputs: one `Ref`; inputs: every `Ref` the description accepts,
  e.g. "the ARN or name of the secret"), and keys for the index.
- `schema_score(out, inp)` returns a `Match`: a score in [0, 1] with the evidence, or 0 with
  `conflict=True` when the two fields provably disagree (different entities, url vs arn, types), which
  vetoes embedding-only edges too. Levels: 0.95 entity and attribute agree; 0.85 identical specific
  names; 0.75 qualified entity match ("execution role" takes a role's ARN), an e-mail address for an
  e-mail address, or any ARN of the same service for an input that names no entity; 0.45 another
  service's ARN for an input that names no entity and is not about "the resource" (an EventBridge
  target, a subscription destination). Values that are not references (contents, settings, numbers)
  only flow within a service; caller-chosen ids (batch entry ids, client tokens) take no producer.
- `candidate_pairs` (index by entity, name and attribute) returns exactly the pairs `naive_pairs`
  (every pair) would score above 0; the benchmark checks this.
- Identifiers are scoped to the service that issues them: when two services both issue an entity,
  one's generated identifiers (ids, ARNs, URLs, ...) do not feed the other's inputs (tracker user ids
  are not calendar user ids), while a service that only refers to an entity takes the issuer's (IAM
  role ARNs feed Lambda's `Role`, Drive file ids feed Calendar attachments).
- Typed resource ids (REST/OpenAPI): `sid`/`gid`/`uuid` are identifiers; a bare id output is also read
  as an id of its container or its own `$ref` definition (`alternates`); "the X's parent" is an X; an
  integer id fills a string input that takes that id (a path parameter); a numbered resource's `number`
  feeds `<resource>_number` (`issue_number`); an id of another system
  (`external_...`, `remote...`, "an ID ... in another system") is typed `foreign` and feeds nothing; ids
  of different resources conflict; an ARN feeds a name/id input of the same entity whose description
  says it takes ARNs too; a response wrapper (`GetTicketResponse`) says what its tool is about and an id
  wrapper (`UnifiedId`) names no entity; "the ID of the X or Y" takes a Y's id too; `<x>Id` inside a
  container named `...<x>` is that container's id (`developerMetadata.metadataId`); a field named after
  an entity and described as its ID (`patient`: "ID of this appointment's patient") is that entity's id,
  and so is a glued-on id (`listid`) described as an ID; a scalar field named after an entity its service
  issues, with no prose saying otherwise (`district`, `pool`), is that record's key and feeds an input
  taking the entity's id or name; a record's own `version` feeds an input of that name described as the
  record's identifier; the bare inputs of an operation that looks something up "for" an entity
  (`getSectionsForSchool`) take that entity's id; short forms name their word (`config` = configuration).
- Notations: two values of one service whose descriptions name the same notation ("A1 notation") link.
- Cursors: a list call's next-page position (`cursor`, `NextToken`, `meta.cursors.next`) feeds its own
  cursor input (the only self-edge) and nothing else.
- User-level values: an e-mail address or phone number feeds the same kind of value in any service.
- Every match's evidence starts with the kind of value it carries: `[identifier]`, `[user value]`,
  `[cursor]` or `[data]`, then what agreed.
- Pure functions; nothing module-level is mutable.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from envfactory.graph.flatten import Field
from envfactory.graph.names import (
    GENERATED,
    GENERIC_ENTITY,
    PAGINATION,
    QUALIFIERS,
    REFERENCE,
    SERVICE_WORDS,
    Ref,
    alternative_refs,
    caller_chosen,
    compact,
    container_entity,
    cursor_input,
    cursor_output,
    description_refs,
    entities_compatible,
    foreign_reference,
    glued_id,
    mentioned_fields,
    name_ref,
    notations,
    words,
)

# Attributes that make data flow (a status, a count or a timestamp is data, not a reference).
FLOWING = REFERENCE | frozenset({"value", "content", "document", "manifest"})
# Names too generic to match on equality alone.
GENERIC_NAMES = frozenset({
    "id", "name", "arn", "key", "value", "type", "status", "state", "description", "title", "url", "uri", "data",
    "kind", "etag", "version", "label", "tag", "tags", "item", "items", "body", "content", "message", "text",
    "attribute", "attributes", "policy", "summary", "result", "code", "mode", "resource", "resourcearn", "owner",
    "parent", "region", "path", "prefix", "filter", "query", "range", "size", "count", "token",
})

_OWN_RESOURCE = frozenset({"resource", "resourcearn"}) | SERVICE_WORDS

# Attributes that say what a value is by themselves: an e-mail address is one whoever it belongs to.
SELF_DESCRIBING = frozenset({"email", "phone", "region", "algorithm"})

STRONG = 0.95
NAMES = 0.85
QUALIFIED = 0.75
WEAK = 0.45


@dataclass(frozen=True, slots=True)
class FieldView:
    """One parameter as the matcher sees it."""

    index: int
    tool: int
    service: str
    direction: str
    path: str
    name: str
    type: str
    item_type: str | None
    format: str | None
    enumerated: bool
    properties: frozenset[str]
    ref: Ref
    accepts: tuple[Ref, ...]
    name_key: str
    skip: bool
    owned: frozenset[str] = frozenset()
    chosen: bool = False
    alternates: tuple[Ref, ...] = ()  # outputs: what the field's container or definition says it is
    mentions: frozenset[str] = frozenset()  # inputs: field names the description quotes
    cursor: bool = False  # a next-page position (output) or the input that takes one
    takes_arn: bool = False  # inputs: the description says an ARN is accepted too ("name or ARN")
    notations: frozenset[str] = frozenset()  # the notations the description says the value is in ("A1 notation")

    def owns(self, entity: tuple[str, ...]) -> bool:
        """Whether this field's own service issues `entity`s (its identifiers are scoped to it)."""
        return bool(entity) and (compact(entity) in self.owned)

    @property
    def own_resources_only(self) -> bool:
        """A generic input about "the resource" (tagging, policies) takes its own service's resources."""
        return all(not a.entity or set(a.entity) <= _OWN_RESOURCE for a in self.accepts)

    @property
    def generic_input(self) -> bool:
        """An input that names no specific entity (Targets[].Arn, ResourceArn): takes any of its attribute."""
        return all(not a.entity or set(a.entity) <= GENERIC_ENTITY | SERVICE_WORDS for a in self.accepts)


@dataclass(frozen=True, slots=True)
class Match:
    """How well an output field fits an input field: a score, whether their schemas conflict, and the
    evidence."""
    score: float
    conflict: bool
    evidence: str


NO_MATCH = Match(0.0, False, "")


def last_segment(path: str) -> str:
    """The last field name of a dotted path, without `[]` (`a.b[]` -> `b`)."""
    segment = path.rsplit(".", 1)[-1]
    return segment.removesuffix("[]") or path.replace("[]", "").rsplit(".", 1)[-1]


def context_entity(path: str, parent_ref: str | None, tool_entity: tuple[str, ...]) -> tuple[str, ...]:
    """The entity a bare field (`id`, `Arn`) belongs to: its nearest specific container, else the
    definition its object is, else the entity the tool is about."""
    segments = [s.removesuffix("[]") for s in path.split(".")[:-1]]
    for segment in reversed(segments):
        entity = container_entity(segment)
        if entity:
            return entity
    if parent_ref:
        entity = container_entity(parent_ref)
        if entity:
            return entity
    return tool_entity


def _specific(entity: tuple[str, ...]) -> bool:
    return bool(entity) and not set(entity) <= GENERIC_ENTITY | QUALIFIERS


def output_ref(f: Field, tool_entity: tuple[str, ...]) -> Ref:
    """The one thing an output field is (see the module docstring): an identifier another system issued
    is typed `foreign`; "the X's parent" of a hierarchy is an X."""
    ref = _output_ref(f, tool_entity)
    if ref.attribute in GENERATED and foreign_reference(last_segment(f.path), f.description):
        return Ref(ref.entity, "foreign")
    if len(ref.entity) > 1 and ref.entity[-1] == "parent":
        return Ref(ref.entity[:-1], ref.attribute)
    if ref.entity == ("parent",) and ref.attribute in GENERATED:
        return Ref(tool_entity, ref.attribute)
    return ref


def output_alternates(f: Field, ref: Ref, tool_entity: tuple[str, ...]) -> tuple[Ref, ...]:
    """Other readings of a bare identifier output (`id`, `sid`, `gid`) whose prose named an entity: the
    entity of its nearest container and of its `$ref` definition (`customer.id` described as "the ID for
    the customer profile" is also a customer's id; `assets[].id` of an `Attachment` is an attachment's)."""
    own = name_ref(last_segment(f.path))
    if own.entity or ref.attribute not in GENERATED:
        return ()
    found: list[Ref] = []
    # the definition is the field's own parent: a top-level field, or an array item's field (`assets[].id`)
    direct = "." not in f.path.replace("[].", "[]") or "." not in f.path.rsplit("[]", 1)[-1].lstrip(".")
    for entity in (context_entity(f.path, None, ()), definition_entity(f.parent_ref) if f.parent_ref and direct else ()):
        if entity and entity != ref.entity and entity != ("parent",) and Ref(entity, ref.attribute) not in found:
            found.append(Ref(entity, ref.attribute))
    return tuple(found)


# Roles a person plays: a `creatorId` described as "the ID of the user who created ..." is a user's id (the
# role word alone: `owner_document_id` is a document's number, not the owner's id).
PERSON_ROLES = frozenset({"creator", "owner", "author", "reporter", "sender", "recipient", "assignee", "requester",
                          "modifier", "editor", "uploader", "inviter", "organizer", "approver", "reviewer"})

_DEFINITION_NOISE = frozenset({"response", "compact", "request", "result", "output", "data", "object", "model", "dto",
                               "schema", "resource"})


def definition_entity(definition: str) -> tuple[str, ...]:
    """The entity a `$ref` definition name is: its words without wrapper words (`TaskCompact` → task,
    `EmailAlias` → email alias); a collection word stays (`TaskList` is a task list, not a task)."""
    tokens = words(definition)
    while tokens and tokens[-1] in _DEFINITION_NOISE:
        tokens = tokens[:-1]
    if tokens and tokens[-1] in ("id", "identifier"):  # `UnifiedId`: the shape of an id, not a resource
        return ()
    return tuple(t for t in tokens if not t.isdigit())


def own_ref(name: str, description: str) -> Ref:
    """What a field's name says it is (`names.name_ref`), reading a glued-on `id` (`listid`) as an id."""
    return glued_id(name, description) or name_ref(name)


def _output_ref(f: Field, tool_entity: tuple[str, ...]) -> Ref:
    name = last_segment(f.path)
    glued = glued_id(name, f.description)
    if glued is not None:  # the name says whose id it is (`listid`), whatever the prose adds
        return glued
    own = name_ref(name)
    if own.attribute == "value" and _specific(own.entity):  # `patient`: "ID of this appointment's patient"
        for ref in description_refs(f.description) if f.description else ():
            if ref.attribute in GENERATED and entities_compatible(ref.entity, own.entity, same_service=True):
                return Ref(own.entity, ref.attribute)
    if _specific(own.entity):
        if len(own.entity) == 1 and own.entity[0] in PERSON_ROLES and own.attribute in GENERATED:  # creatorId
            for ref in description_refs(f.description) if f.description else ():
                if ref.attribute == own.attribute and _specific(ref.entity) and ref.entity != own.entity:
                    return ref
        return own
    if own.entity and own.attribute != "value":  # `developerMetadata.metadataId`: the container's own id
        container = words(f.path.split(".")[-2].removesuffix("[]")) if "." in f.path else ()
        if len(container) > len(own.entity) and container[-len(own.entity):] == own.entity:
            return Ref(container, own.attribute)
    described = description_refs(f.description) if f.description else ()
    if own.attribute != "value":
        for ref in described:
            if ref.attribute == own.attribute and (_specific(ref.entity) or own.attribute not in GENERATED):
                return Ref(ref.entity, own.attribute)
        if own.entity and own.attribute in GENERATED:  # `entity_id`: "Entity Identifier" of what it sits in
            return Ref(context_entity(f.path, f.parent_ref, tool_entity) or own.entity, own.attribute)
    elif described:
        return described[0]
    if own.entity and own.attribute == "value":
        return own
    return Ref(context_entity(f.path, f.parent_ref, tool_entity), own.attribute)


def input_refs(f: Field, tool_entity: tuple[str, ...]) -> tuple[Ref, ...]:
    """Every (entity, attribute) an input accepts (see the module docstring)."""
    name = last_segment(f.path)
    own = own_ref(name, f.description)
    described = description_refs(f.description) if f.description else ()
    if not own.entity:  # a bare `id`/`identifier`: the prose says whose, else the context does
        own = Ref(context_entity(f.path, f.parent_ref, tool_entity), own.attribute)
        if _specific(own.entity):  # `id`: "entity id" names no entity; the tool's own entity it is
            described = tuple(r for r in described if _specific(r.entity) or r.attribute != own.attribute)
        if described:
            same = tuple(r for r in described if r.attribute == own.attribute)
            return (*same, *(r for r in described if r not in same)) if same else (*described, own)
    if not described:
        return (own,)
    if not _specific(own.entity):
        if own.attribute == "value":
            return described
        same = tuple(r for r in described if r.attribute == own.attribute)
        return same + tuple(r for r in described if r not in same) if same else (*described, own)
    agreeing = tuple(r for r in described if entities_compatible(r.entity, own.entity, same_service=True))
    if agreeing:  # "fileId: the ID of the file or shared drive" takes a shared drive's id too
        agreeing += tuple(r for r in alternative_refs(f.description) if r in described and r not in agreeing)
        if own.attribute == "value" or any(r.attribute == own.attribute for r in agreeing):
            return agreeing
        return (*agreeing, own)
    if set(own.entity) & (GENERIC_ENTITY | QUALIFIERS):  # "EventSourceArn: The ARN of the event bus ..."
        return (*described, own)
    return (own,)


# Words by which a field names the record it sits in (`entity_id`, `object_id`), never another resource.
_SELF_WORDS = frozenset({"entity", "object", "resource", "item", "record", "element", "entry"})
_ARN_WORD = re.compile(r"\bARNs?\b|Amazon Resource Name", re.IGNORECASE)


def make_view(index: int, tool: int, service: str, f: Field, direction: str, tool_entity: tuple[str, ...],
              owned: frozenset[str] = frozenset()) -> FieldView:
    """The matching view of one input or output field: its reference, accepted references, name key and
    whether matching skips it (pagination, caller-chosen, booleans, empty containers)."""
    name = last_segment(f.path)
    ref = output_ref(f, tool_entity) if direction == "output" else own_ref(name, f.description)
    named = name_ref(name)
    if (direction == "output" and named.entity and named.attribute in GENERATED and not _specific(named.entity)
            and not set(named.entity) <= _SELF_WORDS and compact(named.entity) in owned):
        ref = Ref(named.entity, named.attribute)  # `source_id` where the service has Sources: a source's id
    accepts = input_refs(f, tool_entity) if direction == "input" else ()
    name_key = compact(words(name))
    chosen = direction == "input" and caller_chosen(name, f.description)
    cursor = f.type == "string" and (cursor_output(f.path) if direction == "output" else cursor_input(name))
    skip = (
        name_key in PAGINATION
        or chosen
        or f.type in ("boolean", "null")
        or (direction == "output" and f.container and f.type == "object" and not f.properties)
    )
    return FieldView(
        index=index, tool=tool, service=service, direction=direction, path=f.path, name=name, type=f.type,
        item_type=f.item_type, format=f.format, enumerated=f.enum is not None, properties=frozenset(f.properties),
        ref=ref, accepts=accepts, name_key=name_key, skip=skip, owned=owned, chosen=chosen,
        alternates=output_alternates(f, ref, tool_entity) if direction == "output" else (),
        mentions=mentioned_fields(f.description) if direction == "input" else frozenset(), cursor=cursor,
        takes_arn=direction == "input" and bool(_ARN_WORD.search(f.description[:700])),
        notations=notations(f.description) if f.type == "string" else frozenset(),
    )


# -- types ---------------------------------------------------------------------------------------------


def _scalar_ok(a: str, b: str) -> bool:
    if a == "any" or b == "any":
        return True
    if a == b:
        return True
    return a == "integer" and b == "number"


def types_compatible(out: FieldView, inp: FieldView) -> bool:
    """Whether an output field's values can fill an input field (formats, arrays and their items, scalar
    types)."""
    if out.format and inp.format and out.format != inp.format:
        return False
    if inp.type == "array":
        if out.type == "array":
            if out.item_type == "object" and inp.item_type == "object":
                return _objects_overlap(out, inp)
            return _scalar_ok(out.item_type or "any", inp.item_type or "any")
        return out.type != "object" and _scalar_ok(out.type, inp.item_type or "any")
    if out.type == "array":
        return inp.type == "any"
    if out.type == "object" or inp.type == "object":
        if out.type != inp.type and "any" not in (out.type, inp.type):
            return False
        return _objects_overlap(out, inp)
    return _scalar_ok(out.type, inp.type)


def _objects_overlap(out: FieldView, inp: FieldView) -> bool:
    if not out.properties or not inp.properties:
        return not out.properties and not inp.properties  # two free-form maps
    shared = len(out.properties & inp.properties)
    return shared >= max(1, (len(inp.properties) + 1) // 2)


# -- scoring ---------------------------------------------------------------------------------------------


def schema_score(out: FieldView, inp: FieldView) -> Match:
    """How strongly the schemas say `out` can feed `inp` (see the module docstring). The evidence starts
    with the kind of value that flows: `[identifier]`, `[user value]`, `[cursor]` or `[data]`."""
    if out.tool == inp.tool:
        if out.cursor and inp.cursor:
            return Match(STRONG, False, f"[cursor] {out.path} = next-page position of this list call")
        return NO_MATCH
    if out.skip or inp.skip or out.cursor or inp.cursor:
        return NO_MATCH
    if not types_compatible(out, inp) and not _numeric_id(out, inp):
        return Match(0.0, True, "types differ")
    same_service = out.service == inp.service
    attr = out.ref.attribute
    best = 0.0
    evidence = ""
    entity_seen = False
    attr_seen = False
    if attr in FLOWING and (same_service or attr in REFERENCE):
        for ref in (out.ref, *out.alternates):
            for acc in inp.accepts:
                if not same_service and attr in GENERATED and inp.owns(acc.entity) and out.owns(acc.entity):
                    continue  # both services issue their own: one's ids mean nothing to the other
                ent = entities_compatible(ref.entity, acc.entity, same_service=same_service)
                same_attr = acc.attribute == attr
                entity_seen |= ent > 0
                attr_seen |= same_attr
                if ent and same_attr:
                    level = STRONG if ent == 1.0 else QUALIFIED
                    if level > best:
                        best = level
                        evidence = f"{' '.join(ref.entity)} {attr} = {' '.join(acc.entity)} {acc.attribute}"
        if best == 0.0 and attr in SELF_DESCRIBING and attr_seen and (same_service or attr in USER_VALUES):
            best, evidence = QUALIFIED, f"an {attr} for an {attr}"
        if best == 0.0 and attr == "arn" and inp.generic_input and attr_seen:
            if same_service:
                best, evidence = QUALIFIED, "any ARN of this service"
            elif not inp.own_resources_only:
                best, evidence = WEAK, "any ARN"
    if best == 0.0 and same_service and out.notations & inp.notations:
        shared = sorted(out.notations & inp.notations)[0]
        best, evidence = QUALIFIED, f"a value in {shared} notation for one in {shared} notation"
    if best == 0.0 and attr == "number" and same_service and _numbered(out, inp):
        best, evidence = STRONG, f"{' '.join(out.ref.entity)} number = {' '.join(out.ref.entity)} number"
    if best == 0.0 and attr == "arn" and inp.takes_arn and not attr_seen:
        for acc in inp.accepts:
            if acc.attribute in ("name", "id") and entities_compatible(out.ref.entity, acc.entity,
                                                                      same_service=same_service) == 1.0:
                best, evidence = QUALIFIED, f"{' '.join(acc.entity)} arn for a {acc.attribute} that also takes the ARN"
                break
    if best == 0.0 and same_service and out.name in inp.mentions and _mentioned_entity(out, inp):
        best, evidence = QUALIFIED, f"the input's description names `{out.name}`"
    if best == 0.0 and same_service:
        best, attr, evidence = _service_key(out, inp) or (best, attr, evidence)
    equal_names = (
        out.name_key == inp.name_key and out.name_key not in GENERIC_NAMES
        and (same_service or _specific(out.ref.entity))
    )
    conflict = False
    if best == 0.0:
        referenceish = attr in REFERENCE and any(a.attribute in REFERENCE for a in inp.accepts)
        conflict = referenceish and (not attr_seen or not entity_seen) and not inp.generic_input
    if equal_names and best < NAMES and not conflict:
        best, evidence = NAMES, f"same name {out.name}"
    if best == 0.0:
        return Match(0.0, conflict, "")
    return Match(best, False, f"[{value_kind(attr)}] {evidence}")


# User-level values: what a person knows and says (an e-mail address), which link records across services.
USER_VALUES = frozenset({"email", "phone"})


def value_kind(attribute: str) -> str:
    """What kind of value an edge carries: `identifier` (generated handles, a resource's number), `user
    value` (e-mail addresses, phone numbers, names, titles, times, amounts) or `data`."""
    if attribute in GENERATED or attribute == "number":  # `number`: a numbered resource's own number
        return "identifier"
    if attribute in USER_VALUES | {"name", "title", "label", "time", "value"}:
        return "user value"
    return "data"


def _numeric_id(out: FieldView, inp: FieldView) -> bool:
    """An integer identifier passed where the input takes it as a string (a path parameter: `/keys/{id}`)."""
    return (out.type == "integer" and inp.type == "string" and not inp.format and out.ref.attribute == "id"
            and any(a.attribute == "id" for a in inp.accepts))


_NOT_NUMBERED = frozenset({"page", "total", "result", "record", "phone", "version", "count", "item", "element"})


def _numbered(out: FieldView, inp: FieldView) -> bool:
    """A resource's own integer number (`number` of an issue) into `<resource>_number` (`issue_number`):
    numbered resources are addressed by that number, not by their id."""
    entity = out.ref.entity
    return (out.type == "integer" and inp.type in ("integer", "string") and _specific(entity)
            and not set(entity) & _NOT_NUMBERED and inp.name_key.endswith("number")
            and any(a.attribute == "number" and entities_compatible(entity, a.entity, same_service=True) == 1.0
                    for a in inp.accepts))


def _service_key(out: FieldView, inp: FieldView) -> tuple[float, str, str] | None:
    """Keys of one service's records that no name or description types (REST/OpenAPI), as (score, the
    attribute that flows, evidence): a scalar field named after an entity the service issues, with no
    prose saying otherwise (Clever's `district`, Airflow's `pool`), is that record's key and feeds an input
    taking its id or name; a record's own `version` feeds an input of the same name described as that
    record's identifier."""
    entity = out.ref.entity
    if (out.ref.attribute == "value" and out.type in ("string", "integer") and not out.properties
            and name_ref(out.name).entity == entity and out.owns(entity)):
        for acc in inp.accepts:
            if acc.attribute in ("id", "name") and entities_compatible(entity, acc.entity, same_service=True) == 1.0:
                return QUALIFIED, acc.attribute, f"`{out.name}` names a {' '.join(entity)} of this service = {acc.attribute}"
    if out.name_key == inp.name_key and out.ref.attribute in REFERENCE - GENERATED:
        for acc in inp.accepts:
            if acc.attribute in GENERATED and entities_compatible(entity, acc.entity, same_service=True) == 1.0:
                return QUALIFIED, acc.attribute, f"a {' '.join(entity)}'s own {out.name} = its {acc.attribute}"
    return None


def _mentioned_entity(out: FieldView, inp: FieldView) -> bool:
    """The output's entity is (compatible with) one the input accepts, or the input names none."""
    specific = [a for a in inp.accepts if _specific(a.entity)]
    return not specific or any(entities_compatible(r.entity, a.entity, same_service=True)
                               for r in (out.ref, *out.alternates) for a in specific)


# -- candidate search --------------------------------------------------------------------------------------


def _entity_keys(entity: tuple[str, ...]) -> Iterable[tuple[str, str]]:
    if entity:
        yield ("c", compact(entity))
        yield ("t", entity[-1])


def output_keys(out: FieldView) -> set[tuple[str, str]]:
    """The index keys an output field is found under: its entity words, name key and attribute."""
    keys = set(_entity_keys(out.ref.entity))
    for ref in out.alternates:
        keys.update(_entity_keys(ref.entity))
    keys.add(("n", out.name_key))
    keys.add(("a", out.ref.attribute))
    keys.add(("m", out.name))
    keys.update(("notation", n) for n in out.notations)
    if out.cursor:
        keys.add(("cursor", str(out.tool)))
    return keys


def input_keys(inp: FieldView) -> set[tuple[str, str]]:
    """The index keys an input field looks up: its name key and the entities (and attributes) it accepts."""
    keys: set[tuple[str, str]] = {("n", inp.name_key)}
    for acc in inp.accepts:
        keys.update(_entity_keys(acc.entity))
    for acc in inp.accepts:
        if inp.generic_input or acc.attribute in SELF_DESCRIBING:
            keys.add(("a", acc.attribute))
    keys.update(("m", name) for name in inp.mentions)
    keys.update(("notation", n) for n in inp.notations)
    if inp.cursor:
        keys.add(("cursor", str(inp.tool)))
    return keys


@dataclass(slots=True)
class PairScores:
    """Schema scores of the pairs that have one (above 0), and how many pairs were scored."""

    scores: dict[tuple[int, int], Match] = field(default_factory=dict)
    scored: int = 0


def candidate_pairs(outputs: Sequence[FieldView], inputs: Sequence[FieldView]) -> PairScores:
    """Score only the pairs that share an index key (entity words, name or attribute)."""
    index: dict[tuple[str, str], list[int]] = defaultdict(list)
    live_outputs = [o for o in outputs if not o.skip or o.cursor]
    for pos, out in enumerate(live_outputs):
        for key in output_keys(out):
            index[key].append(pos)
    result = PairScores()
    for inp in inputs:
        if inp.skip and not inp.cursor:
            continue
        seen: set[int] = set()
        for key in input_keys(inp):
            seen.update(index.get(key, ()))
        for pos in sorted(seen):
            out = live_outputs[pos]
            result.scored += 1
            match = schema_score(out, inp)
            if match.score > 0:
                result.scores[(out.index, inp.index)] = match
    return result


def naive_pairs(outputs: Sequence[FieldView], inputs: Sequence[FieldView]) -> PairScores:
    """Score every output against every input (the baseline the index is measured against)."""
    result = PairScores()
    for inp in inputs:
        for out in outputs:
            result.scored += 1
            match = schema_score(out, inp)
            if match.score > 0:
                result.scores[(out.index, inp.index)] = match
    return result


def is_generated(inp: FieldView) -> bool:
    """An input whose value is an identifier some system generated (never user-providable)."""
    return not inp.chosen and bool(inp.accepts) and all(acc.attribute in GENERATED for acc in inp.accepts)
