"""Snapshots: the complete state of one session at one step, as JSON with its canonical hash."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import JSONValue, SpecModel


class Snapshot(SpecModel):
    """Immutable serialised state. Two snapshots are the same state exactly when `state_hash` is equal."""

    schema_version: Literal[1] = 1
    env: str = Field(description="environment reference name@version#hash12")
    state: JSONValue
    state_hash: str
    step: int = Field(ge=0, description="number of calls in the session's call log")
    clock_step: int = Field(default=0, ge=0, description="committed writes (the clock position)")
    seed: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return self.env == other.env and self.state_hash == other.state_hash

    def __hash__(self) -> int:
        return hash((self.env, self.state_hash))
