"""Chains: ordered tool calls sampled from the tool graph, each required argument bound to a source.

Contract:
- A `Chain` lists `ChainStep`s in call order. Each step binds its inputs: `UserValue` (the user states
  it), `StepOutput` (a named output field of a specific earlier step), or `NoSource` (nothing can supply
  it: the chain is invalid, and `check_chain` says so). Every required input of a step has exactly one
  binding; optional inputs appear only when the sampler chose to feed them.
- Chains are frozen pydantic models with a `schema_version` (they go to disk and to task synthesis);
  field paths and tool ids are the graph's (`graph.model`). They live in `spec` because they cross disk
  and layer boundaries (DESIGN §11); `envfactory.graph` re-exports them.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from envfactory.spec.base import SpecModel


class UserValue(SpecModel):
    """An input the user provides (no tool produces it in the chain)."""
    kind: Literal["user"] = "user"


class StepOutput(SpecModel):
    """An input filled from an output field of an earlier step of the chain."""
    kind: Literal["step"] = "step"
    step: int = Field(ge=0, description="index of the earlier step in this chain")
    tool: str = Field(description="that step's tool id (redundant, for readers)")
    output: str = Field(description="the output field path of that step")


class NoSource(SpecModel):
    """An input with no source in the chain (an optional one left out, or one to be made up)."""
    kind: Literal["none"] = "none"


Source = Annotated[Union[UserValue, StepOutput, NoSource], Field(discriminator="kind")]  # noqa: UP007


class Binding(SpecModel):
    """Where one input of a chain step gets its value, and whether the tool requires it."""
    input: str = Field(description="the input field path")
    required: bool
    source: Source


class ChainStep(SpecModel):
    """One call of a chain: the tool, its server, and how its inputs are bound."""
    tool: str
    server: str
    bindings: list[Binding] = Field(default_factory=list)


class Chain(SpecModel):
    """One sampled chain: its sampler, seed and position in the sampler's sequence, and its steps."""

    schema_version: Literal[1] = 1
    sampler: str
    seed: int
    number: int = Field(ge=0, description="position in the sampler's sequence (seed, number) → this chain")
    steps: list[ChainStep]

    @property
    def tools(self) -> list[str]:
        """The chain's tool ids, in step order (repeats kept)."""
        return [s.tool for s in self.steps]

    @property
    def servers(self) -> list[str]:
        """The distinct servers of the chain's steps, sorted."""
        return sorted({s.server for s in self.steps})

    @property
    def data_flow(self) -> int:
        """How many bindings take an earlier step's output."""
        return sum(1 for s in self.steps for b in s.bindings if isinstance(b.source, StepOutput))
