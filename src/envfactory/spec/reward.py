"""Rewards: named components in [0, 1] (or not scored) and their total.

Two roles: `score` components are averaged with their weights; `factor` components (penalties and
gates) multiply that average. So a penalty can only lower a reward, and a gate at 0 (e.g. "the episode
changed nothing although the task requires writes") forces the total to 0 whatever else scored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from envfactory.spec.base import SpecModel


class RewardTerm(SpecModel):
    """One entry of a reward's component list: the component function to run (by its registered name,
    see `envfactory.verify.reward_components`), its weight (used by `score` components; a `factor`
    multiplies the total whatever its weight) and its numeric parameters (e.g. a penalty per call).
    Parameters a component does not receive keep that component's documented defaults."""

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0.0)
    params: dict[str, float] = Field(default_factory=dict)


class RewardComponent(SpecModel):
    """One named part of a reward. `score=None` means "not scored": it takes no weight (a score) or
    multiplies by 1 (a factor)."""

    name: str
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    weight: float = Field(default=1.0, ge=0.0)
    role: Literal["score", "factor"] = "score"
    detail: str = ""


class Reward(SpecModel):
    """A reward; `total` = weighted mean of the scored `score` components (0 when none is scored)
    times every scored `factor` component."""

    schema_version: Literal[1] = 1
    components: list[RewardComponent]
    total: float = Field(ge=0.0, le=1.0)

    @classmethod
    def combine(cls, components: list[RewardComponent]) -> Reward:
        """The reward of `components`, its total computed by `weighted_total`."""
        return cls(components=components, total=weighted_total(components))

    @model_validator(mode="after")
    def _total_matches(self) -> Reward:
        expected = weighted_total(self.components)
        if abs(expected - self.total) > 1e-9:
            raise ValueError(f"total {self.total} does not equal the weighted components ({expected})")
        return self

    def component(self, name: str) -> RewardComponent | None:
        """The component called `name` (None when the reward has none)."""
        return next((c for c in self.components if c.name == name), None)


def weighted_total(components: list[RewardComponent]) -> float:
    """Weighted mean of the scored `score` components (0 when none is scored) times every scored factor."""
    scored = [c for c in components if c.role == "score" and c.score is not None and c.weight > 0]
    weight = sum(c.weight for c in scored)
    if weight == 0:
        return 0.0
    total = sum(c.weight * (c.score or 0.0) for c in scored) / weight
    for factor in components:
        if factor.role == "factor" and factor.score is not None:
            total *= factor.score
    return total
