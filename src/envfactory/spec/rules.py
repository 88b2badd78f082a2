"""Rules stated in a spec's prose (issue 19): typed, each quoting the sentence it was read from.

Contract:
- A `ProseRule` is decided by a documented pattern (`pattern` names it; `verify.rules_patterns` holds
  the set), never by a model: a model may propose a sentence, only a pattern turns it into a rule.
- `quote` is the source sentence verbatim (whitespace collapsed); `source` says where it was found
  (`<operation id> description` or `<operation id> field <name>`); `collection` is the proposal's
  collection the operation belongs to.
- Kinds and what a violation must do (`error_kinds`; the state stays byte-identical):
  - `unique`: a second record with the same `field` value is refused;
  - `delete_requires_empty`: deleting a record that still holds child records is refused;
  - `max_count`: at most `limit` records (of the collection, or values in `field`);
  - `max_length` / `min_length`: `field` holds at most / at least `limit` characters or items;
  - `immutable`: `field` cannot be changed after creation;
  - `requires_state`: the operation is allowed only while `field` has one of `values`.
- `RuleLabel` is one hand-labelled sentence of the recall/precision set: the sentence, where it was
  taken from and the rule kinds a reader finds in it (empty: none).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import SpecModel
from envfactory.spec.tool import ErrorKind

__all__ = ["RULE_KINDS", "ProseRule", "RuleKind", "RuleLabel"]

RuleKind = Literal["unique", "delete_requires_empty", "max_count", "max_length", "min_length", "immutable",
                   "requires_state"]
RULE_KINDS: tuple[str, ...] = ("unique", "delete_requires_empty", "max_count", "max_length", "min_length",
                               "immutable", "requires_state")


def _refused() -> list[ErrorKind]:
    return ["rule_violation", "invalid_arguments"]


class ProseRule(SpecModel):
    """One rule a pattern read from a spec sentence (module contract)."""

    schema_version: Literal[1] = 1
    id: str
    kind: RuleKind
    quote: str = Field(description="the source sentence, verbatim")
    source: str = Field(description="operation id and where in it the sentence is")
    pattern: str = Field(description="the id of the pattern that decided the rule")
    collection: str = ""
    field: str | None = None
    limit: int | None = None
    values: list[str] = Field(default_factory=list)
    error_kinds: list[ErrorKind] = Field(default_factory=_refused)


class RuleLabel(SpecModel):
    """One labelled spec sentence: what a careful reader says it states."""

    schema_version: Literal[1] = 1
    sentence: str
    source: str = Field(description="resource and operation (or field) the sentence was taken from")
    kinds: list[RuleKind] = Field(default_factory=list, description="the rules the sentence states; empty: none")
    split: Literal["tuning", "held_out", "held_out_2"] = Field(
        default="tuning", description="tuning: round 1 was written reading it; held_out: measured on round 1 "
        "unread, then read for round 2; held_out_2: labelled before round 2, never read for a pattern")
