"""Structured state differences (what a call, an episode or a corruption changed)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import JSONValue, SpecModel


class StateChange(SpecModel):
    """One change at a JSON pointer: `add` (new value), `remove` (old value) or `replace` (both)."""

    op: Literal["add", "remove", "replace"]
    path: str = Field(description="RFC 6901 JSON pointer into the state")
    old: JSONValue = None
    new: JSONValue = None


class StateDiff(SpecModel):
    """The changes that turn one state into another, as JSON-pointer changes (empty when the states are
    equal)."""
    schema_version: Literal[1] = 1
    changes: list[StateChange] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the states are equal (no changes)."""
        return not self.changes
