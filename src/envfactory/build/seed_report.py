"""The seed-realism check: how real a library's seed records look.

Contract:
- `env_seed_stats(source, state)` measures one environment's default seed; `summarize(stats)` adds
  environments up into a `SeedsReport`. Both are pure (same input, same numbers).
- A string value is counted when it is free data: not a record's key, not a reference, not under an
  `enum` or `const`, not empty. It is a *placeholder* when it is refusal text, a generic filler
  (`test`, `string`, `foo`, `lorem ipsum`, `This is a test comment.`, `example 2`), a stretch of its own
  field name with or without a number (`kind 1`, `layerid-2`, `resourceowne`), or made only of the
  words of the environment's, the collection's and the field's names plus a number or filler words
  (`Export 1`, `Matters Hold 2`, `MyNamespace`, `Vault Matters`).
- *Duplicate rate*: of the counted top-level values, the share that repeats an earlier record's value of
  the same field in the same collection (an owner account or a type tag shared by every record counts:
  the *named* duplicate rate keeps to name, email, title and prose fields, where a repeat is a defect). *Cross-environment repeats*: of the distinct name, email and
  prose values (fields named like a name, email, title or text), the share found in another
  environment too.
- *Enum coverage*: enum values of top-level fields present in some record / all of them; *state
  coverage*: the same for the states of each transition field. *Dangling references*: plain reference
  fields whose value is not a key of the parent collection. *Inconsistent links*: of a record's pairs of
  references to A and B where A's records refer to B, those whose A record names another B.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from envfactory.build.naming import snake
from envfactory.build.seeds_faker import RECORDS_PER_COLLECTION, machine_states
from envfactory.spec import DeclarativeEnvSource, JSONObject
from envfactory.spec.schema_tools import object_properties

_REFUSAL = re.compile(r"\b(i'?m sorry|i am sorry|as an ai|i cannot|i can'?t (help|assist|provide)|i'?m unable to|"
                      r"language model)\b", re.I)
_FILLER_PHRASE = re.compile(r"(lorem ipsum|placeholder|this is an? (test|sample|example)|test comment|dummy|"
                            r"^(foo|bar|baz|asdf|xxx+|tbd|todo)\W*\d*$)", re.I)
# An id's random part, or an API's type tag (`books#annotation`): machine values, not placeholders.
_OPAQUE = re.compile(r"[0-9a-f]{8,}|\d{6,}|^[a-z]+#[A-Za-z]+$|^#[0-9a-f]{6}$|^([0-9a-f]{2}:){5}[0-9a-f]{2}$", re.I)
_FILLER_WORDS = frozenset({"test", "string", "sample", "example", "value", "item", "my", "the", "a", "an", "new", "first",
                           "second", "third", "default", "data", "text", "name", "one", "two", "demo", "anchor", "n",
                           "s", "id", "of", "for", "and"})
_WORD = re.compile(r"[a-z]+|\d+")
_NAMED = re.compile(r"(name|email|title|subject|description|summary|notes?|comment|body|message|text|content|label)$")


class EnvSeedStats(BaseModel):
    """The seed-realism counts of one environment."""

    name: str
    collections: dict[str, int] = Field(description="records per collection")
    primary: list[str] = Field(default_factory=list, description="collections without references")
    strings: int = 0
    placeholders: int = 0
    placeholder_examples: list[str] = Field(default_factory=list)
    compared: int = 0
    duplicates: int = 0
    named_compared: int = 0
    named_duplicates: int = 0
    enum_values: int = 0
    enum_covered: int = 0
    states: int = 0
    states_covered: int = 0
    references: int = 0
    dangling: int = 0
    links: int = 0
    inconsistent_links: int = 0
    named_values: list[str] = Field(default_factory=list, description="distinct name/email/prose values")


class SeedsReport(BaseModel):
    """A library's seed realism (see the module doc for each figure)."""

    environments: int
    collections: int
    records_min: int
    records_median: float
    records_mean: float
    collections_with_two: int
    primary_collections: int
    primary_with_enough: int = Field(description=f"primary collections with ≥ {RECORDS_PER_COLLECTION} records")
    strings: int
    placeholder_rate: float
    duplicate_rate: float
    named_duplicate_rate: float = Field(description="the duplicate rate over name, email, title and prose fields")
    cross_env_repeat_rate: float
    enum_coverage: float
    state_coverage: float
    dangling_references: int
    links_checked: int = Field(0, description="pairs of references where one parent refers to the other")
    inconsistent_links: int = 0
    placeholder_examples: list[str] = Field(default_factory=list)


def is_placeholder(value: str, field: str, names: Iterable[str]) -> bool:
    """Whether `value` of `field` is placeholder text (see the module doc); `names` are the environment's
    and the collection's names."""
    text = value.strip()
    if _REFUSAL.search(text) or _FILLER_PHRASE.search(text):
        return True
    if _OPAQUE.search(text):
        return False
    words = _WORD.findall(" ".join(snake(text).split("_")).lower()) or _WORD.findall(text.lower())
    if not words:
        return False
    compact = "".join(snake(field).split("_"))
    letters = "".join(w for w in words if not w.isdigit())
    if letters and (letters == compact or (len(letters) >= 4 and compact.startswith(letters))):
        return True
    vocabulary = set(_FILLER_WORDS) | set(snake(field).split("_"))
    for name in names:
        vocabulary |= {w for part in snake(name).split("_") for w in (part, part.rstrip("s"))}
    alpha = [w for w in words if not w.isdigit()]
    return bool(alpha) and all(w in vocabulary or w.rstrip("s") in vocabulary for w in alpha)


def _leaves(value: Any, field: str, schema: Any) -> Iterable[tuple[str, str]]:
    """(field name, string) for every free string under `value` (not under an `enum` or `const` of
    `schema`), named by its nearest object key."""
    schema = schema if isinstance(schema, dict) else {}
    if "enum" in schema or "const" in schema:
        return
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, field, schema.get("items"))
    elif isinstance(value, dict):
        props = object_properties(schema)
        for key, item in value.items():
            yield from _leaves(item, str(key), props.get(key))


def env_seed_stats(source: DeclarativeEnvSource, state: JSONObject) -> EnvSeedStats:  # long: one pass, one tally
    """Measure one environment's seed state (see the module doc)."""
    colls = state.get("collections") if isinstance(state, dict) else None
    colls = colls if isinstance(colls, dict) else {}
    stats = EnvSeedStats(name=source.meta.name, collections={})
    named: set[str] = set()
    for cname, decl in source.collections.items():
        records = colls.get(cname) if isinstance(colls.get(cname), dict) else {}
        assert isinstance(records, dict)
        stats.collections[cname] = len(records)
        if not decl.references:
            stats.primary.append(cname)
        props = object_properties(decl.record_schema)
        refs = {r.field: r.collection for r in decl.references}
        skip = {decl.key, *refs} | {f for f, s in props.items() if isinstance(s, dict) and ("enum" in s or "const" in s)}
        seen: dict[str, set[str]] = {}
        for record in records.values():
            if not isinstance(record, dict):
                continue
            for field, value in record.items():
                if field in skip:
                    continue
                for leaf_field, text in _leaves(value, field, props.get(field)):
                    if not text.strip():
                        continue
                    stats.strings += 1
                    if is_placeholder(text, leaf_field, (source.meta.name, cname)):
                        stats.placeholders += 1
                        if len(stats.placeholder_examples) < 5:
                            stats.placeholder_examples.append(f"{cname}.{leaf_field}={text[:40]!r}")
                    if _NAMED.search(snake(leaf_field)):
                        named.add(text.strip())
                if isinstance(value, str) and value.strip():
                    repeat = value in seen.setdefault(field, set())
                    seen[field].add(value)
                    stats.compared += 1
                    stats.duplicates += repeat
                    if _NAMED.search(snake(field)):
                        stats.named_compared += 1
                        stats.named_duplicates += repeat
            for field, parent in refs.items():
                if field in record and "." not in field and "[" not in field:
                    stats.references += 1
                    parents = colls.get(parent)
                    stats.dangling += not (isinstance(parents, dict) and record[field] in parents)
        _coverage(stats, decl, props, records)
        _consistency(stats, source, cname, colls)
    stats.named_values = sorted(named)
    return stats


def _plain(field: str) -> bool:
    return "." not in field and "[" not in field


def _consistency(stats: EnvSeedStats, source: DeclarativeEnvSource, cname: str, colls: dict[str, Any]) -> None:
    """Count a record's pairs of references (to A and to B, where A's records refer to B) and those whose
    A record names another B than the record does."""
    refs = [r for r in source.collections[cname].references if _plain(r.field)]
    records = colls.get(cname)
    for a in refs:
        parent_decl = source.collections.get(a.collection)
        parents = colls.get(a.collection)
        if parent_decl is None or not isinstance(parents, dict) or not isinstance(records, dict):
            continue
        for b in refs:
            via = next((r.field for r in parent_decl.references if r.collection == b.collection and _plain(r.field)), None)
            if b.collection == a.collection or via is None:
                continue
            for record in records.values():
                parent = parents.get(record.get(a.field)) if isinstance(record, dict) else None
                if isinstance(parent, dict) and via in parent and b.field in record:
                    stats.links += 1
                    stats.inconsistent_links += parent[via] != record[b.field]


def _coverage(stats: EnvSeedStats, decl: Any, props: dict[str, Any], records: dict[str, Any]) -> None:
    machine_fields = {t.field for t in decl.transitions}
    present: dict[str, set[str]] = {}
    for record in records.values():
        if isinstance(record, dict):
            for field, value in record.items():
                if isinstance(value, str | int | bool):
                    present.setdefault(field, set()).add(str(value))
    for field, schema in props.items():
        enum = schema.get("enum") if isinstance(schema, dict) else None
        if field in machine_fields or not isinstance(enum, list):
            continue
        stats.enum_values += len(enum)
        stats.enum_covered += sum(str(v) in present.get(field, set()) for v in enum)
    for field in machine_fields:
        states = machine_states(decl, field)
        stats.states += len(states)
        stats.states_covered += sum(s in present.get(field, set()) for s in states)


def summarize(stats: Sequence[EnvSeedStats]) -> SeedsReport:
    """Add up environments' seed stats into the library's `SeedsReport`."""
    sizes = [n for s in stats for n in s.collections.values()] or [0]
    primary = [s.collections[c] for s in stats for c in s.primary]
    owners: Counter[str] = Counter(v for s in stats for v in s.named_values)
    named_total = sum(len(s.named_values) for s in stats)
    repeated = sum(1 for s in stats for v in s.named_values if owners[v] > 1)

    def rate(part: int, whole: int) -> float:
        return round(part / whole, 4) if whole else 0.0

    strings = sum(s.strings for s in stats)
    return SeedsReport(
        environments=len(stats), collections=sum(len(s.collections) for s in stats),
        records_min=min(sizes), records_median=float(statistics.median(sizes)),
        records_mean=round(statistics.fmean(sizes), 2), collections_with_two=sum(n == 2 for n in sizes),
        primary_collections=len(primary), primary_with_enough=sum(n >= RECORDS_PER_COLLECTION for n in primary),
        strings=strings, placeholder_rate=rate(sum(s.placeholders for s in stats), strings),
        duplicate_rate=rate(sum(s.duplicates for s in stats), sum(s.compared for s in stats)),
        named_duplicate_rate=rate(sum(s.named_duplicates for s in stats), sum(s.named_compared for s in stats)),
        cross_env_repeat_rate=rate(repeated, named_total),
        enum_coverage=rate(sum(s.enum_covered for s in stats), sum(s.enum_values for s in stats)),
        state_coverage=rate(sum(s.states_covered for s in stats), sum(s.states for s in stats)),
        dangling_references=sum(s.dangling for s in stats),
        links_checked=sum(s.links for s in stats), inconsistent_links=sum(s.inconsistent_links for s in stats),
        placeholder_examples=[e for s in stats for e in s.placeholder_examples[:1]][:12],
    )
