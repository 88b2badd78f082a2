"""Task v1 (DESIGN §6, §11): a grounded, checkable unit of work for an agent.

Contract:
- A task names its environments (`EnvRef`), gives an initial state per environment, ordered turns
  (a scripted user message or instructions for a simulated user, the tools available in that turn, the
  gold calls), the expected final state per environment and declarative checks.
- Gold calls and turn tool lists use session-group names (`<env>__<tool>`) unless `tool_naming` is
  `plain` (single environment, or benchmarks whose tool names are globally unique, like BFCL).
- `id` is the sha256 of the canonical JSON of every other field: `Task.create(...)` fills it and
  validation refuses a task whose id does not match its content.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from envfactory.spec.base import JSONObject, JSONValue, SpecModel, content_hash


class EnvRef(SpecModel):
    name: str
    version: str
    content_hash: str = ""

    def __str__(self) -> str:
        suffix = f"#{self.content_hash[:12]}" if self.content_hash else ""
        return f"{self.name}@{self.version}{suffix}"


class GoldCall(SpecModel):
    """A reference call. Arguments named in `ignored_arguments` are not compared by rewards."""

    tool: str
    arguments: JSONObject = Field(default_factory=dict)
    ignored_arguments: list[str] = Field(default_factory=list)


class ScriptedUser(SpecModel):
    kind: Literal["scripted"] = "scripted"
    text: str


class SimulatedUser(SpecModel):
    """Instructions for a user simulator: what the user wants and what they know but do not volunteer."""

    kind: Literal["simulated"] = "simulated"
    instructions: str
    known_info: str = ""
    persona: str = ""


UserTurn = Annotated[Union[ScriptedUser, SimulatedUser], Field(discriminator="kind")]  # noqa: UP007


class Turn(SpecModel):
    user: UserTurn
    available_tools: list[str] | None = Field(
        default=None, description="tools offered in this turn; None = every tool of the task"
    )
    gold_calls: list[GoldCall] = Field(default_factory=list)
    expected_outputs: list[str] = Field(
        default_factory=list, description="facts the agent must communicate in this turn"
    )


class StateEqualsCheck(SpecModel):
    """The value at JSON pointer `pointer` of environment `env`'s final state equals `expected`."""

    kind: Literal["state_equals"] = "state_equals"
    env: str
    pointer: str
    expected: JSONValue


class CallMadeCheck(SpecModel):
    """Some call to `tool` was made whose arguments include `arguments` (subset match)."""

    kind: Literal["call_made"] = "call_made"
    tool: str
    arguments: JSONObject = Field(default_factory=dict)


class OutputContainsCheck(SpecModel):
    """The agent's messages to the user contain `text` (case-insensitive)."""

    kind: Literal["output_contains"] = "output_contains"
    text: str


class RubricCheck(SpecModel):
    """A judged criterion for what state cannot show; never the only check of a task."""

    kind: Literal["rubric"] = "rubric"
    rubric: str


Check = Annotated[
    Union[StateEqualsCheck, CallMadeCheck, OutputContainsCheck, RubricCheck],  # noqa: UP007
    Field(discriminator="kind"),
]


class TaskOrigin(SpecModel):
    """Where the task came from and how it was phrased before refinement."""

    source: str = Field(description="synth, bfcl, tau2, manual, ...")
    source_id: str = ""
    explicit_query: str = ""
    domain: str = ""


class Task(SpecModel):
    schema_version: Literal[1] = 1
    id: str = ""
    envs: list[EnvRef] = Field(min_length=1)
    tool_naming: Literal["qualified", "plain"] = "qualified"
    initial_state: dict[str, JSONValue] = Field(description="env name -> initial state JSON")
    seed: int = 0
    persona: str = ""
    turns: list[Turn] = Field(min_length=1)
    expected_final_state: dict[str, JSONValue] = Field(default_factory=dict)
    expected_final_hash: dict[str, str] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    origin: TaskOrigin = Field(default_factory=lambda: TaskOrigin(source="manual"))

    @classmethod
    def create(cls, **fields: Any) -> Task:
        """Build a task and fill its content-hash id."""
        draft = cls.model_validate({**fields, "id": ""})
        return draft.model_copy(update={"id": draft.compute_id()})

    def compute_id(self) -> str:
        return content_hash(self.model_dump(mode="json", exclude={"id"}))

    @model_validator(mode="after")
    def _check(self) -> Task:
        names = {ref.name for ref in self.envs}
        if len(names) != len(self.envs):
            raise ValueError("a task lists the same environment twice")
        unknown = sorted(set(self.initial_state) - names)
        if unknown:
            raise ValueError(f"initial_state names environments the task does not use: {unknown}")
        if self.id and self.id != self.compute_id():
            raise ValueError("task id does not match its content hash")
        return self

    def gold_calls(self) -> list[GoldCall]:
        return [call for turn in self.turns for call in turn.gold_calls]
