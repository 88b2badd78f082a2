"""How stateful a proposal looks from its spec, and whether a spec is a template copy (issue 20, deliverable 3).

Contract:
- `statefulness(operations, domain)` scores a proposal before anything is built, from its operations as the
  spec gives them (each with the proposer's role and collection): collections and the links between them
  (`build.shapes.group_operations`: path nesting or a create naming another collection's key), status
  fields (a property named status/state/phase/stage/lifecycle with an enum of ≥ 2 values, or prose listing
  its values), limits stated in prose ("at most", "up to 10", "cannot exceed", "quota"; sentences about
  pages or returned results do not count), state-changing actions (non-CRUD verbs: cancel, approve, ...),
  operations per collection, and reads against writes. In travel and commerce a transactional collection
  (bookings, reservations, orders, payments, ...; read from the collection names, never from a list of
  services) weighs in. The result is a `StatefulnessScore` in [0, 1] with every count it came from; the
  same operations always give the same score.
- `template_reason(resource)` names why a spec is a template or placeholder copy, or returns "": its
  operations copy a well-known template (the Swagger Petstore, the OpenAPI minimal and expanded petstores)
  for at least half of them, its title or description is a template's ("Swagger Petstore", "Sample API",
  "This is a sample server"), its source file is named as a template, or it has few operations whose
  descriptions are placeholders ("TODO", "string", "lorem ipsum").
- Pure functions over the spec's data; nothing is read, written or asked of a model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field

from envfactory.build.shapes import group_operations
from envfactory.resources.model import Resource
from envfactory.spec import Operation
from envfactory.spec.base import SpecModel
from envfactory.spec.build import OperationRole

TRANSACTIONAL_DOMAINS = ("travel", "commerce")
"""Domains whose environments should model transactions (bookings, orders), not only catalogues."""

_TRANSACTIONAL = re.compile(  # matched against each word of a collection's name
    r"^(booking|reservation|order|purchase|payment|checkout|cart|invoice|ticket|itinerar(y|ies)|trip|shipment|"
    r"fulfil+ment|refund|subscription|transaction|charge|rental)s?$")
_STATUS_NAME = re.compile(r"(^|_)(status|state|phase|stage|lifecycle)$")
_VALUES_PROSE = re.compile(r"\b(one of|possible values|valid values|allowed values|can be)\b", re.I)
_LIMIT_PROSE = re.compile(
    r"\b(at most|up to \d|maximum (of|number)|no more than|cannot exceed|must not exceed|may not exceed|"
    r"limit(ed)? (of|to) \d|quota|capacity|only one|at least \d)\b", re.I)
_PAGINATION_PROSE = re.compile(r"\b(page|pages|results|returned|return|response|per request|to list)\b", re.I)
_WRITES: frozenset[str] = frozenset({"create", "update", "delete", "action"})


class StatefulnessScore(SpecModel):
    """The statefulness of a proposal as its spec states it, with the counts the score came from."""

    schema_version: int = 1
    score: float = Field(ge=0.0, le=1.0)
    tools: int = Field(ge=0, description="operations proposed")
    collections: int = Field(ge=0)
    linked: int = Field(ge=0, description="collections nested under or naming another of the proposal's")
    status_fields: int = Field(ge=0, description="collections with a status-like field whose values are stated")
    limits: int = Field(ge=0, description="operations whose prose states a limit (not a page size)")
    actions: int = Field(ge=0, description="state-changing operations that are not CRUD (cancel, approve, ...)")
    reads: int = Field(ge=0)
    writes: int = Field(ge=0)
    transactional: list[str] = Field(default_factory=list,
                                     description="collections that model transactions (bookings, orders, ...)")

    @property
    def has_state_rule(self) -> bool:
        """Whether the spec states a state machine or a rule: a status field, a limit or an action."""
        return bool(self.status_fields or self.limits or self.actions)


def statefulness(
    operations: Sequence[tuple[Operation, OperationRole, str]], domain: str,
) -> StatefulnessScore:
    """The `StatefulnessScore` of a proposal's `(operation, role, collection)` rows in `domain`."""
    collections = sorted({c for _, _, c in operations})
    by_collection: dict[str, list[Operation]] = {c: [] for c in collections}
    for op, _, collection in operations:
        by_collection[collection].append(op)
    status = sum(1 for ops in by_collection.values() if any(_has_status_field(op) for op in ops))
    limits = sum(1 for op, _, _ in operations if _states_limit(op))
    actions = sum(1 for _, role, _ in operations if role == "action")
    writes = sum(1 for _, role, _ in operations if role in _WRITES)
    reads = len(operations) - writes
    linked = _linked(operations)
    transactional = [c for c in collections if any(_TRANSACTIONAL.match(w) for w in c.split("_"))] if domain in TRANSACTIONAL_DOMAINS else []
    n, tools = len(collections), len(operations)
    balance = min(reads, writes) / max(reads, writes) if reads and writes else 0.0
    base = (0.20 * min(1.0, (n - 1) / 3) + 0.10 * min(1.0, linked / 2) + 0.20 * min(1.0, status / 2)
            + 0.10 * min(1.0, limits / 2) + 0.10 * min(1.0, actions / 3) + 0.20 * min(1.0, tools / 15)
            + 0.05 * min(1.0, tools / max(n, 1) / 4) + 0.05 * balance)
    score = 0.85 * base + 0.15 * bool(transactional) if domain in TRANSACTIONAL_DOMAINS else base
    return StatefulnessScore(
        score=round(min(1.0, score), 4), tools=tools, collections=n, linked=linked, status_fields=status,
        limits=limits, actions=actions, reads=reads, writes=writes, transactional=transactional)


def _linked(operations: Sequence[tuple[Operation, OperationRole, str]]) -> int:
    """How many of the proposal's resource groups nest under or name another of them."""
    groups = group_operations([op for op, _, _ in operations])
    nouns = {g.noun for g in groups}
    return sum(1 for g in groups if any(p in nouns for p, _ in g.parents) or any(r in nouns for r in g.related))


def _properties(schema: Any, depth: int = 0) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every (name, property schema) of an object schema, nested objects and array items included (5 deep)."""
    if not isinstance(schema, Mapping) or depth > 5:
        return
    for key in ("items", "additionalProperties"):
        yield from _properties(schema.get(key), depth + 1)
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key) or []:
            yield from _properties(part, depth + 1)
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for name, prop in props.items():
            if isinstance(prop, Mapping):
                yield str(name), prop
                yield from _properties(prop, depth + 1)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _has_status_field(op: Operation) -> bool:
    """Whether the operation's input or output has a status-like field whose values the spec states."""
    for schema in (op.output_schema, op.input_schema):
        for name, prop in _properties(schema):
            if not _STATUS_NAME.search(_snake(name)):
                continue
            enum = prop.get("enum") or (prop.get("items") or {}).get("enum")
            if isinstance(enum, list) and len(enum) >= 2:
                return True
            if _VALUES_PROSE.search(str(prop.get("description", ""))):
                return True
    return False


def _states_limit(op: Operation) -> bool:
    """Whether a sentence of the operation's prose states a limit that is not about pages or results."""
    text = f"{op.description} {op.docs}"
    return any(_LIMIT_PROSE.search(s) and not _PAGINATION_PROSE.search(s) for s in re.split(r"(?<=[.;])\s+", text))


# Well-known templates, by their operations' names (lower case, separators removed).
_TEMPLATES: dict[str, frozenset[str]] = {
    "Swagger Petstore": frozenset({
        "addpet", "updatepet", "findpetsbystatus", "findpetsbytags", "getpetbyid", "updatepetwithform",
        "deletepet", "uploadfile", "getinventory", "placeorder", "getorderbyid", "deleteorder", "createuser",
        "createuserswitharrayinput", "createuserswithlistinput", "loginuser", "logoutuser", "getuserbyname",
        "updateuser", "deleteuser"}),
    "OpenAPI petstore": frozenset({"listpets", "createpets", "showpetbyid"}),
    "OpenAPI petstore-expanded": frozenset({"findpets", "addpet", "findpetbyid", "deletepet"}),
}
_TEMPLATE_TEXT = re.compile(r"\b(pet ?store|this is a sample server|lorem ipsum)\b", re.I)
_GENERIC_TITLE = re.compile(  # the whole title
    r"^\s*(an? |the |my )?(sample|example|test|demo|untitled|simple|minimal|hello world)( rest| openapi)?"
    r"( api| service| server| app)?\s*$|^\s*(api title|title|api|openapi|swagger)\s*$", re.I)
_TEMPLATE_FILE = re.compile(r"(^|[_-])(template|petstore)s?([_-]|$)", re.I)  # the file's name, its extension left out
_PLACEHOLDER = re.compile(
    r"^\s*(todo|tbd|fixme|description|summary|string|test|testing|example|sample|n/?a|none|-+|\.+|"
    r"lorem ipsum.*|some description|operation description|add description here)\s*\.?\s*$", re.I)
TEMPLATE_REASON_PREFIX = "template or placeholder spec: "
"""How a selection words the skip of a template spec (`build.propose`; the selection report lists them)."""
PLACEHOLDER_MAX_OPERATIONS = 6
"""A spec with at most this many operations, half of them described by placeholders, is a placeholder."""


def template_reason(resource: Resource) -> str:
    """Why `resource` is a template or placeholder copy (the reason a selection report records), or ""."""
    names = {re.sub(r"[^a-z0-9]", "", op.name.lower()) for op in resource.operations}
    for template, ops in _TEMPLATES.items():
        copied = sorted(names & ops)
        if len(copied) >= min(3, len(ops)) and 2 * len(copied) >= len(names):
            return f"operations copy the {template} template ({len(copied)} of {len(names)}: {', '.join(copied[:5])})"
    if _GENERIC_TITLE.match(resource.title or ""):
        return f"its title is a template's ({resource.title!r})"
    for label, text in (("title", resource.title), ("description", resource.description[:400])):
        found = _TEMPLATE_TEXT.search(text or "")
        if found:
            return f"its {label} is a template's ({found.group(0)!r})"
    if _TEMPLATE_FILE.search(PurePosixPath(resource.source.file or "").stem):
        return f"its source file is named as a template ({resource.source.file})"
    placeholders = [op.name for op in resource.operations if _PLACEHOLDER.match(op.description or "")]
    if resource.operations and len(resource.operations) <= PLACEHOLDER_MAX_OPERATIONS \
            and 2 * len(placeholders) >= len(resource.operations):
        return (f"{len(placeholders)} of its {len(resource.operations)} operations are described by placeholders "
                f"({', '.join(placeholders[:3])})")
    return ""
