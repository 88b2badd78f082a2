"""Task v2 (DESIGN §6, §11): a grounded, checkable unit of work for an agent.

Contract:
- A task names its environments (`EnvRef`), gives an initial state per environment, ordered turns
  (a scripted user message or instructions for a simulated user, the tools available in that turn, the
  gold calls), the expected final state per environment and declarative checks.
- Gold calls and turn tool lists use session-group names (`<env>__<tool>`) unless `tool_naming` is
  `plain` (single environment, or benchmarks whose tool names are globally unique, like BFCL).
- `id` is a content hash: `Task.create(...)` fills it and validation refuses a task whose id does not
  match its content. A task that uses none of the v2 additions hashes exactly as its v1 form did (the
  canonical JSON of its v1 fields with `schema_version` 1), so the ids of recorded v1 tasks, and of
  tasks converted from benchmarks, stay what they were; a task that uses a v2 field hashes its whole
  v2 form.
- v2 adds (all optional, defaults meaning "absent"): `queries` (explicit and refined query, refinement
  strength, where the text came from), `user_tools` (tools only the user may call), per gold call the
  `essential_arguments` (state-changing or identifying; `ignored_arguments` stays the mask of
  non-essential ones) and the recorded `result`, `reward` (how the task is scored), `split_key` (tasks
  sharing it go to the same dataset split) and `provenance` (the chain and sampler it came from).
- Migration: a v1 document (`schema_version: 1`) validates as v2 unchanged except for the version, so
  v1 files load with `Task.model_validate(_json)`; `migrate_task_v1` does the same on a dict.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from envfactory.spec.base import JSONObject, JSONValue, SpecModel, content_hash
from envfactory.spec.reward import RewardTerm


class EnvRef(SpecModel):
    """A pinned environment: name, version and (when known) content hash; prints as `name@version#hash12`."""
    name: str
    version: str
    content_hash: str = ""

    def __str__(self) -> str:
        suffix = f"#{self.content_hash[:12]}" if self.content_hash else ""
        return f"{self.name}@{self.version}{suffix}"


class GoldCall(SpecModel):
    """A reference call. Arguments named in `ignored_arguments` (the mask of non-essential arguments:
    limits, formatting, pagination) are not compared by rewards; `essential_arguments` names those that
    change state or identify a record, which a gate alters to show the reward depends on them.
    `result` is the output the call returned when the task was recorded (None: not recorded)."""

    tool: str
    arguments: JSONObject = Field(default_factory=dict)
    ignored_arguments: list[str] = Field(default_factory=list)
    essential_arguments: list[str] = Field(default_factory=list)
    result: JSONValue = None

    @model_validator(mode="after")
    def _masks_disjoint(self) -> GoldCall:
        both = sorted(set(self.ignored_arguments) & set(self.essential_arguments))
        if both:
            raise ValueError(f"arguments both essential and ignored: {both}")
        return self


class ScriptedUser(SpecModel):
    """A user turn given as fixed text."""
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
    """One user turn of a task: what the user says, the tools offered, the gold calls and the facts the
    agent must communicate."""
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


class TaskQueries(SpecModel):
    """The task's request in words: the explicit query states every value the gold calls need; the
    refined query is the implicit version a user would say. `refinement_strength` is the number of
    refinement operators applied, 0 to 4 (0: kept explicit; None: not refined); `refinement_operators`
    names them. `source` says who wrote the text: `template` marks text filled from the gold trace by a
    template, not a user or a model."""

    explicit: str = ""
    refined: str = ""
    refinement_strength: int | None = Field(default=None, ge=0, le=4)
    refinement_operators: list[str] = Field(default_factory=list)
    source: Literal["none", "template", "model", "human", "benchmark"] = "none"


class RewardSpec(SpecModel):
    """How the task is scored (DESIGN §7). `final_state: not_scored` marks a read-only task: it carries
    no expected final state and is checked through `output_contains` facts and gold calls instead.
    Weights and tolerance left None use the reward functions' defaults. `components`: the named
    component list that scores the task (`verify.reward_components`); None uses the default list."""

    final_state: Literal["scored", "not_scored"] = "scored"
    components: list[RewardTerm] | None = None
    state_weight: float | None = Field(default=None, ge=0.0)
    calls_weight: float | None = Field(default=None, ge=0.0)
    checks_weight: float | None = Field(default=None, ge=0.0)
    relative_tolerance: float | None = Field(default=None, ge=0.0)


class ChainProvenance(SpecModel):
    """Where a synthesised task came from: the sampled chain (its id and tools), the sampler and its
    seed, the tool graph it was sampled from, and the seed that grounded it."""

    chain_id: str
    tools: list[str] = Field(default_factory=list)
    sampler: Literal["topology", "random-walk", "manual"] = "topology"
    sampler_seed: int = 0
    graph_hash: str = ""
    grounding_seed: int = 0


_V2_FIELDS = ("queries", "user_tools", "reward", "split_key", "provenance")
_V2_GOLD_FIELDS = ("essential_arguments", "result")


def migrate_task_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A v1 task document as a v2 one: every v1 field keeps its meaning and every v2 addition is absent,
    so the id (which ignores absent v2 fields) is unchanged. Documents of other versions pass through."""
    if data.get("schema_version") != 1:
        return data
    return {**data, "schema_version": 2}


def _v1_form(dumped: dict[str, Any]) -> dict[str, Any] | None:
    """The v1 document of a dumped v2 task, or None when the task uses a v2 field."""
    defaults = {name: Task.model_fields[name].get_default(call_default_factory=True) for name in _V2_FIELDS}
    for name, default in defaults.items():
        value = dumped.get(name)
        expected = default.model_dump(mode="json") if isinstance(default, SpecModel) else default
        if value != expected:
            return None
    turns = []
    for turn in dumped["turns"]:
        calls = []
        for call in turn["gold_calls"]:
            if call.get("essential_arguments") or call.get("result") is not None:
                return None
            calls.append({k: v for k, v in call.items() if k not in _V2_GOLD_FIELDS})
        turns.append({**turn, "gold_calls": calls})
    v1 = {k: v for k, v in dumped.items() if k not in _V2_FIELDS}
    return {**v1, "turns": turns, "schema_version": 1}


class Task(SpecModel):
    """A task (v2). See the module docstring for the contract, the id and the migration from v1."""

    schema_version: Literal[2] = 2
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
    queries: TaskQueries = Field(default_factory=TaskQueries)
    user_tools: list[str] = Field(
        default_factory=list, description="tools only the (simulated) user may call; never offered to the agent"
    )
    reward: RewardSpec = Field(default_factory=RewardSpec)
    split_key: str = Field(default="", description="tasks with the same key go to the same dataset split")
    provenance: ChainProvenance | None = None

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        return migrate_task_v1(data) if isinstance(data, dict) else data

    @classmethod
    def create(cls, **fields: Any) -> Task:
        """Build a task and fill its content-hash id."""
        draft = cls.model_validate({**fields, "id": ""})
        return draft.model_copy(update={"id": draft.compute_id()})

    def compute_id(self) -> str:
        """The content hash: over the v1 form when the task has one (ids stable across the migration),
        else over every field but `id`."""
        dumped = self.model_dump(mode="json", exclude={"id"})
        v1 = _v1_form(dumped)
        return content_hash(v1 if v1 is not None else dumped)

    @model_validator(mode="after")
    def _check(self) -> Task:
        names = {ref.name for ref in self.envs}
        if len(names) != len(self.envs):
            raise ValueError("a task lists the same environment twice")
        unknown = sorted(set(self.initial_state) - names)
        if unknown:
            raise ValueError(f"initial_state names environments the task does not use: {unknown}")
        if self.reward.final_state == "not_scored" and (self.expected_final_state or self.expected_final_hash):
            raise ValueError("a task whose final state is not scored must not carry an expected final state")
        overlap = sorted(set(self.user_tools) & {c.tool for c in self.gold_calls()})
        if overlap:
            raise ValueError(f"user-only tools appear among the agent's gold calls: {overlap}")
        if self.id and self.id != self.compute_id():
            raise ValueError("task id does not match its content hash")
        return self

    @property
    def explicit_query(self) -> str:
        """The explicit query: the v2 `queries.explicit`, else the v1 `origin.explicit_query`."""
        return self.queries.explicit or self.origin.explicit_query

    @property
    def read_only(self) -> bool:
        """True when the final state is not scored (the gold calls only read)."""
        return self.reward.final_state == "not_scored"

    def gold_calls(self) -> list[GoldCall]:
        """The gold calls of every turn, in turn order."""
        return [call for turn in self.turns for call in turn.gold_calls]
