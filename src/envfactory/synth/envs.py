"""Environments as task synthesis sees them: the loaded environment, its tool graph and what each tool
does to the state.

Contract:
- `prepare_env(env)` builds the environment's own tool graph (schema edges only: deterministic and
  model-free) and indexes it for the samplers. Chains stay inside one environment; tasks that span two
  environments are composed from two chains over a shared user-level entity (`synth.compose`), never
  from id links between unrelated services.
- `ToolFacts` are read from the declarative model when there is one (which argument is the target
  key, which hold keys of other collections, which filter a listing, which only page or sort); for
  other implementations only the effect is known and binding falls back to values seen in the state.
- `entity_kind(name, schema)` classifies an argument as a user-level entity (`email`, `date`, `person`,
  `place`, `amount`) from its name and schema, or None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envfactory.graph import GraphIndex, ToolGraph, build_graph, from_env_spec
from envfactory.runtime import Environment
from envfactory.spec import declarative_model
from envfactory.spec.declarative import DeclarativeModel

_EMAIL = re.compile(r"e_?mail", re.IGNORECASE)
_AMOUNT_WORDS = ("amount", "price", "cost", "total", "budget", "balance", "fee", "salary")
_PLACE_SUFFIXES = ("city", "country", "location", "place", "street_address", "postal_address", "home_address",
                   "town")
_PERSON_SUFFIXES = ("first_name", "last_name", "firstname", "lastname", "full_name", "fullname", "person_name",
                    "contact_name", "display_name", "displayname", "username", "user_name")
_PERSON_NAMES = ("owner", "assignee", "author", "person", "contact")
ENTITY_KINDS: tuple[str, ...] = ("email", "date", "person", "place", "amount")


def entity_kind(name: str, schema: Mapping[str, Any]) -> str | None:
    """The user-level entity an argument holds (see the module docstring), or None."""
    lowered = name.lower()
    if lowered.endswith(("id", "ids", "arn", "key")):
        return None  # an identifier of a record, never a user-level value
    kind = schema.get("type")
    fmt = schema.get("format")
    if kind == "string" and (fmt == "email" or _EMAIL.search(lowered)):
        return "email"
    if kind == "string" and (fmt == "date" or (fmt is None and (lowered.endswith("date") or lowered.endswith("_on")))):
        return "date"
    if kind in ("number", "integer") and any(word in lowered for word in _AMOUNT_WORDS):
        return "amount"
    if kind == "string" and not schema.get("enum") and (lowered.endswith(_PLACE_SUFFIXES) or lowered == "address"):
        return "place"  # not `email_address`, `ip_address`, `address_list_name`: suffixes, not substrings
    if kind == "string" and not schema.get("enum") and (lowered.endswith(_PERSON_SUFFIXES) or lowered in _PERSON_NAMES):
        return "person"
    return None


def shared_for(name: str, kind: str | None, shared: Mapping[str, Any]) -> Any:
    """The shared value an argument or field of entity `kind` takes (None: it takes none). A person's
    first-name and last-name fields take the matching part of the shared full name."""
    if kind is None or kind not in shared:
        return None
    value = shared[kind]
    if kind == "person" and isinstance(value, str) and " " in value:
        lowered = name.lower()
        first, last = value.split(" ", 1)
        if lowered.endswith(("first_name", "firstname")):
            return first
        if lowered.endswith(("last_name", "lastname")):
            return last
    return value


@dataclass(frozen=True, slots=True)
class ToolFacts:
    """What one tool does, as far as binding and masking need to know."""

    name: str
    writes: bool
    kind: str | None = None
    collection: str | None = None
    key_arg: str | None = None
    references: Mapping[str, str] = field(default_factory=dict)
    """top-level argument -> collection whose keys it holds"""
    filters: Mapping[str, str] = field(default_factory=dict)
    """listing argument -> record field it filters on"""
    masked: frozenset[str] = frozenset()
    """arguments that only page or sort a listing (never essential)"""
    record_fields: frozenset[str] = frozenset()
    """arguments copied into the target record (create, update, patch)"""
    entities: Mapping[str, str] = field(default_factory=dict)
    """top-level argument -> user-level entity kind"""
    assigns: bool = False
    """the operation sets fields by itself (a patch like `deactivate` changes state with no field given)"""

    def essential(self, arguments: Mapping[str, Any]) -> list[str]:
        """Arguments of a call that identify a record or change state, in sorted order."""
        names = set()
        for name in arguments:
            if name in self.masked:
                continue
            if name == self.key_arg or name in self.references or name in self.filters or (self.writes and (name in self.record_fields or self.kind is None)):
                names.add(name)
        return sorted(names)


@dataclass(frozen=True, slots=True)
class SynthEnv:
    """One environment ready for synthesis."""

    env: Environment
    index: GraphIndex
    graph_hash: str
    facts: Mapping[str, ToolFacts]
    model: DeclarativeModel | None

    @property
    def name(self) -> str:
        """The environment's name."""
        return self.env.name

    @property
    def domain(self) -> str:
        """The environment's domain (from its spec's meta)."""
        return self.env.spec.meta.domain

    def tool_name(self, graph_id: str) -> str:
        """The environment's own tool name behind a graph tool id `<server>__<tool>`."""
        return self.index.tools[self.index.position[graph_id]].name


def _top(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def _tool_facts(env: Environment, model: DeclarativeModel | None) -> dict[str, ToolFacts]:
    facts: dict[str, ToolFacts] = {}
    for tool in env.spec.tools:
        properties = tool.input_schema.get("properties")
        props: dict[str, Any] = properties if isinstance(properties, dict) else {}
        entities = {name: kind for name, schema in props.items()
                    if isinstance(schema, dict) and (kind := entity_kind(name, schema)) is not None}
        op = model.operations.get(tool.name) if model is not None else None
        if op is None:
            facts[tool.name] = ToolFacts(name=tool.name, writes=tool.effect == "write", entities=entities)
            continue
        coll = model.collections[op.collection] if model is not None else None
        references: dict[str, str] = {}
        record_fields: frozenset[str] = frozenset()
        if coll is not None:
            record_props = coll.record_schema.get("properties")
            fields_of_record = set(record_props) if isinstance(record_props, dict) else set()
            for ref in coll.references:
                top = _top(ref.field)
                if top in props and "[" not in ref.field and "." not in ref.field:
                    references[top] = ref.collection
            if op.kind in ("create", "update", "patch") and op.fields_from_args:
                record_fields = frozenset(name for name in props if name in fields_of_record and name != coll.key)
        filters: dict[str, str] = {}
        masked: set[str] = set()
        if op.listing is not None:
            filters = {flt.arg: flt.field for flt in op.listing.filters}
            masked = {a for a in (op.listing.page_size_arg, op.listing.page_token_arg, op.listing.sort_arg,
                                  op.listing.descending_arg) if a}
            masked |= {name for name in props if name not in filters}  # unknown listing options do nothing
        key_arg = op.key_arg
        if key_arg is None and op.kind in ("get", "update", "patch", "delete") and coll is not None:
            key_arg = coll.key  # the engine targets the record named by the collection's key field
        facts[tool.name] = ToolFacts(
            name=tool.name, writes=tool.effect == "write", kind=op.kind, collection=op.collection,
            key_arg=key_arg, assigns=bool(op.assign) or bool(op.effects), references=references, filters=filters, masked=frozenset(masked),
            record_fields=record_fields, entities=entities,
        )
    return facts


def prepare_env(env: Environment, graph: ToolGraph | None = None) -> SynthEnv:
    """Index the environment's own tool graph and read its tools' facts (see the module docstring).
    `graph`: that graph when it was built already (the run's graph stage builds it on its executor);
    it must be the model-free graph of this environment alone, as built here."""
    graph = graph if graph is not None else build_graph([from_env_spec(env.spec)]).graph
    model = declarative_model(env.spec)
    return SynthEnv(env=env, index=GraphIndex.from_graph(graph), graph_hash=graph.canonical_hash(),
                    facts=_tool_facts(env, model), model=model)
