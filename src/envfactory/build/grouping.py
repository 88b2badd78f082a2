"""Proposal granularity (issue 20, deliverable 3): how much of one service an environment holds.

The proposer's unit is a connected set of stateful resource groups (`build.propose`): groups joined by
path nesting or by a create that requires another group's key. Many services split into one proposal
per resource that way, because their records name each other only by id fields (a Traccar device's
`groupId`, an AWS Location geofence's `CollectionName`), and an environment then has one collection and
four or five tools. `merge_linked` is the coarser granularity: it joins such sets of the same service
when one of them names another by an id reference, up to a bound on the tools of the result.

Contract:
- `references(group)` is the set of field names an operation of the group reads or writes: every
  property of every input and output schema (local `$ref`s followed, nested objects and array items
  included, definitions tables not walked on their own) and path parameter, lower-cased with `_` and
  `-` removed.
- `reference_keys(group)` is the set of names that refer to a record of the group: the group's singular
  noun (its collection's last word, and the whole collection name; stems shorter than 3 letters are
  left out) followed by a key suffix (`id`, `ids`, `gid`, `name`, `arn`, `key`, `uuid`, `code`, ...).
- Two sets of groups are linked when a group of one has a reference that is a reference key of a group
  of the other.
- `merge_linked(components, max_tools)` joins linked sets, smallest combined size first (ties by the
  sets' first nouns), as long as the joined set has at most `max_tools` operations; a set that is
  already larger stays as it is. Every group of the input is in exactly one output set; sets come out
  sorted by noun, in order of their first noun. Pure and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from envfactory.build.naming import words
from envfactory.build.shapes import ResourceGroup
from envfactory.spec.inflection import singular
from envfactory.spec.schema_tools import property_names

Granularity = Literal["component", "linked"]
"""How much of one service a proposal holds: "component" (the shipped library's: one connected set of
resource groups) or "linked" (sets that name each other by id references joined, `merge_linked`)."""

GROUP_MAX_TOOLS = 15
"""The most operations a set joined by `merge_linked` may have (a larger set is never joined). 15 was
measured against 10 and 25 on simulated whole-catalog builds (docs/library.md, "Proposal granularity")."""

_KEY_SUFFIXES = ("id", "ids", "gid", "gids", "name", "names", "arn", "arns", "key", "keys", "uuid", "code", "number")
_WALK = ("properties", "items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems")


def _norm(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def references(group: ResourceGroup) -> frozenset[str]:
    """The normalised field names the group's operations read or write (module contract)."""
    names: set[str] = set()
    for shape in group.shapes:
        names.update(_norm(p) for p in shape.path_params)
        for schema in (shape.operation.input_schema, shape.operation.output_schema):
            if isinstance(schema, dict):
                names.update(_norm(n) for n in property_names(schema, root=schema, through=_WALK, max_depth=6))
    return frozenset(names)


def reference_keys(group: ResourceGroup) -> frozenset[str]:
    """The normalised names that refer to one record of the group (module contract)."""
    parts = words(group.collection)
    stems = {singular(parts[-1]), "".join(parts[:-1]) + singular(parts[-1])} if parts else set()
    return frozenset(stem + suffix for stem in stems if len(stem) >= 3 for suffix in _KEY_SUFFIXES)


def merge_linked(
    components: Sequence[Sequence[ResourceGroup]], max_tools: int = GROUP_MAX_TOOLS,
) -> list[list[ResourceGroup]]:
    """The components with linked ones joined while they fit `max_tools` operations (module contract)."""
    refs = [frozenset().union(*(references(g) for g in c)) for c in components]
    keys = [frozenset().union(*(reference_keys(g) for g in c)) for c in components]
    size = [sum(len(g.shapes) for g in c) for c in components]
    first = [min(g.noun for g in c) for c in components]
    edges = sorted(
        (size[i] + size[j], first[i], first[j], i, j)
        for i in range(len(components)) for j in range(i + 1, len(components))
        if refs[i] & keys[j] or refs[j] & keys[i]
    )
    root = list(range(len(components)))
    total = list(size)

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for _, _, _, i, j in edges:
        a, b = find(i), find(j)
        if a != b and total[a] + total[b] <= max_tools:
            root[b] = a
            total[a] += total[b]
    joined: dict[int, list[ResourceGroup]] = {}
    for i, component in enumerate(components):
        joined.setdefault(find(i), []).extend(component)
    out = [sorted(groups, key=lambda g: g.noun) for groups in joined.values()]
    return sorted(out, key=lambda groups: groups[0].noun)
