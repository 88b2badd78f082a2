"""Rewards: named components in [0, 1] (or not scored) with weights, and their weighted total."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from envfactory.spec.base import SpecModel


class RewardComponent(SpecModel):
    """One named part of a reward. `score=None` means "not scored" and takes no weight."""

    name: str
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    weight: float = Field(default=1.0, ge=0.0)
    detail: str = ""


class Reward(SpecModel):
    """A reward; `total` is the weighted mean of the scored components (0 when none is scored)."""

    schema_version: Literal[1] = 1
    components: list[RewardComponent]
    total: float = Field(ge=0.0, le=1.0)

    @classmethod
    def combine(cls, components: list[RewardComponent]) -> Reward:
        return cls(components=components, total=weighted_total(components))

    @model_validator(mode="after")
    def _total_matches(self) -> Reward:
        expected = weighted_total(self.components)
        if abs(expected - self.total) > 1e-9:
            raise ValueError(f"total {self.total} does not equal the weighted components ({expected})")
        return self

    def component(self, name: str) -> RewardComponent | None:
        return next((c for c in self.components if c.name == name), None)


def weighted_total(components: list[RewardComponent]) -> float:
    scored = [c for c in components if c.score is not None and c.weight > 0]
    weight = sum(c.weight for c in scored)
    if weight == 0:
        return 0.0
    return sum(c.weight * (c.score or 0.0) for c in scored) / weight
