"""Artifacts of the trajectory-synthesis stage (`synth trajectories`): config, per-task items, funnel.

Contract:
- `SynthTrajectoriesConfig` is the stage's resolved config. With the task stage's output, the seed and
  the models' answers (a cache or a replay cassette repeats them), it decides every artifact byte for byte.
- One `TrajectoryItem` per task is written atomically as `items/<task-id>.json` as soon as the task is
  done; a resumed run reuses every item it finds, so nothing is lost or computed twice.
- An item records the query work (`QueryRecord`: persona, explicit and refined text, operators and the
  over-specification of each), every solver attempt with its reward components (`SolverAttempt`) and
  the selected trajectory. `status` is `verified` only when a selected attempt's reward, computed from
  live environment state and calls, reached the config's threshold; a judge never makes a pass.
- `TrajectoryFunnel` (`funnel.json`) continues the task funnel: tasks → queries → refined → solved →
  verified, drop reasons per stage, model calls and tokens, and over-specification and solve rate per
  refinement strength. Timings live in the stage manifest only.
- `CalibrationReport` (`synth.calibration`) restates the per-strength figures of a finished stage with
  95% confidence intervals, per task rather than per attempt.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from envfactory.spec.base import SpecModel
from envfactory.spec.reward import Reward
from envfactory.spec.task import Task
from envfactory.spec.trajectory import Trajectory

Preset = Literal["sft-single", "sft-conv", "rl"]
RefineOperator = Literal["omit_inferable", "compress_steps", "add_ambiguity", "weave_goals"]
REFINE_OPERATORS: tuple[RefineOperator, ...] = ("omit_inferable", "compress_steps", "add_ambiguity", "weave_goals")
ItemStatus = Literal["verified", "unsolved", "dropped", "failed"]
TRAJECTORY_FUNNEL_STAGES: tuple[str, ...] = ("tasks", "queries", "refined", "solved", "verified")


class SynthTrajectoriesConfig(SpecModel):
    """What `run_synth_trajectories` makes from the tasks of run `from_run`.

    Presets: `sft-single` (one scripted turn, no user simulator), `sft-conv` (the gold chain split into
    turns voiced by the user simulator, refinement on), `rl` (queries for every task; solver attempts only
    measure difficulty, so unsolved tasks are kept). `refine=None` takes the preset's default.
    `temperature` 0 allows only k = 1 (every attempt would be the same). `order` decides which tasks a
    `max_tasks`/`solve_tasks` cut keeps: by default the simplest, since a small local solver verifies
    short chains far more often."""

    schema_version: Literal[1] = 1
    from_run: str
    preset: Preset = "sft-single"
    k: int = Field(default=1, ge=1, le=16)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    refine: bool | None = None
    max_tasks: int | None = Field(default=None, ge=1, description="tasks given queries; None: all")
    order: Literal["simplest-first", "shortest-first", "writes-first", "as-written"] = Field(
        default="simplest-first",
        description="which tasks come first when max_tasks or solve_tasks cut the list: fewest gold calls and "
                    "environments first (ties by id); fewest gold calls first with, at equal length, state-changing "
                    "tasks before read-only ones, then fewest argument values to write (shortest-first); every state-changing task before read-only ones "
                    "(a write is verified from the state it leaves, a read-only task from the facts its answer "
                    "states, which small models rarely write out); or the task stage's order")
    solve_tasks: int | None = Field(default=None, ge=0, description="of those, tasks solved; None: all")
    seed: int = 0
    query_attempts: int = Field(default=2, ge=1, le=5)
    max_turn_tools: int = Field(default=5, ge=1, le=10)
    verified_threshold: float = Field(default=1.0, gt=0.0, le=1.0)
    max_steps_per_turn: int = Field(default=6, ge=1, le=30)
    ground_arguments: bool = Field(
        default=True, description="solver calls drop optional arguments whose values nothing in the conversation "
                                  "mentions (agent.grounding): small models fill every optional field with placeholders")

    @model_validator(mode="after")
    def _k_needs_sampling(self) -> SynthTrajectoriesConfig:
        if self.k > 1 and self.temperature == 0.0:
            raise ValueError("k > 1 needs a temperature above 0 (attempts at temperature 0 are identical)")
        return self

    @property
    def refines(self) -> bool:
        """Whether queries are refined: the explicit switch, else on for `sft-conv` and `sft-single`."""
        return self.refine if self.refine is not None else self.preset != "rl"


class OverspecScore(SpecModel):
    """Over-specification of a query (see `synth.overspec`): which candidates the text leaks, and the
    share of candidates leaked (0 when there is none)."""

    tool_names: list[str] = Field(default_factory=list)
    parameter_names: list[str] = Field(default_factory=list)
    values: list[str] = Field(default_factory=list)
    candidates: int = Field(default=0, ge=0)
    score: float = Field(default=0.0, ge=0.0, le=1.0)


class QueryRecord(SpecModel):
    """The words of one task: persona, the explicit query, its refinement and their over-specification."""

    persona: str = ""
    explicit: str = ""
    refined: str = ""
    operators: list[RefineOperator] = Field(default_factory=list)
    explicit_overspec: OverspecScore = Field(default_factory=OverspecScore)
    refined_overspec: OverspecScore | None = None
    problems: list[str] = Field(default_factory=list, description="validation problems met on the way")
    completed: list[str] = Field(default_factory=list, exclude_if=lambda value: not value,
                                 description="values the writer kept leaving out, stated by a template sentence")


JudgeOutcome = Literal["pass", "fail", "error"]


class JudgeVerdict(SpecModel):
    """The LLM judge's component of one attempt of a read-only task (`synth.judge`): whether the final
    answer states the fact asked. Its own component, outside `Reward`: it never makes an attempt verified.
    `verdict` `error` when the judge's answer was not JSON of the schema (`reason` says why)."""

    name: Literal["judge"] = "judge"
    verdict: JudgeOutcome
    model: str
    prompt_hash: str
    reason: str = ""


def _absent(value: object) -> bool:
    return value is None


class SolverAttempt(SpecModel):
    """One solver attempt in a fresh session group opened on the task's initial state. `judge` is set only
    for read-only tasks of a stage run with a judge model (left out of the JSON otherwise)."""

    attempt: int = Field(ge=0)
    seed: int
    query: Literal["refined", "explicit"]
    reward: Reward | None = None
    verified: bool = False
    termination: str = ""
    tool_calls: int = 0
    llm_calls: int = 0
    failure: str = ""
    trajectory: Trajectory | None = None
    judge: JudgeVerdict | None = Field(default=None, exclude_if=_absent)


class TrajectoryItem(SpecModel):
    """What the stage made of one task."""

    schema_version: Literal[1] = 1
    task_id: str
    status: ItemStatus
    reason: str = Field(default="", description="short, id-free reason for a drop or failure")
    detail: str = ""
    task: Task | None = Field(default=None, description="the task with its queries filled in")
    query: QueryRecord | None = None
    attempts: list[SolverAttempt] = Field(default_factory=list)
    selected: int | None = None
    conversational: bool = False
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def pass_at_k(self) -> float:
        """Share of attempts that were verified."""
        return sum(a.verified for a in self.attempts) / len(self.attempts) if self.attempts else 0.0


class StrengthFigures(SpecModel):
    """Per refinement strength: how many queries, their mean over-specification, and solver outcomes."""

    queries: int = 0
    mean_overspec: float = 0.0
    attempts: int = 0
    solved: int = 0


class JudgeFigures(SpecModel):
    """What the judge said over the judged attempts (read-only tasks). `judge_only` counts attempts the
    judge passed that verification did not (never kept as verified); `disagreed` verified attempts the
    judge failed."""

    model: str = ""
    judged: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    judge_only: int = 0
    disagreed: int = 0


class TrajectoryFunnel(SpecModel):
    """`funnel.json` of the trajectory stage (no timings). `judge` only when a judge ran (left out of the
    JSON otherwise); `completed` only when a query needed the template sentence."""

    schema_version: Literal[1] = 1
    preset: Preset
    seed: int
    k: int
    stages: dict[str, int]
    drops: dict[str, dict[str, int]] = Field(default_factory=dict)
    conversational: int = 0
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    explicit_overspec: float = 0.0
    refined_overspec: float = 0.0
    per_strength: dict[str, StrengthFigures] = Field(default_factory=dict)
    judge: JudgeFigures | None = Field(default=None, exclude_if=_absent)
    completed: int = Field(default=0, ge=0, exclude_if=lambda value: not value,
                           description="queries with values a template sentence stated (QueryRecord.completed)")


class Interval(SpecModel):
    """An estimate with its 95% confidence interval (`low` = `high` = `value` when nothing varies; all 0
    when there is no observation)."""

    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    method: Literal["wilson", "t", "none"] = "none"


class StrengthRow(SpecModel):
    """One refinement strength (0: the explicit query) of a `CalibrationReport`.

    `overspec` is the mean over-specification of the queries written at this strength (t interval);
    `solve_rate` the share of `tried` tasks (tasks with at least one solver attempt on this query) that
    some attempt verified (Wilson interval). `attempts` / `verified_attempts` count attempts, which are
    not independent within a task and so get no interval."""

    strength: int | None = Field(default=None, ge=0, le=4, description="None: a pooled row")
    queries: int = 0
    overspec: Interval = Field(default_factory=Interval)
    tried: int = 0
    solved: int = 0
    solve_rate: Interval = Field(default_factory=Interval)
    attempts: int = 0
    verified_attempts: int = 0


class CalibrationReport(SpecModel):
    """Over-specification and solve rate per refinement strength of one trajectory stage (deliverable 2).

    `refined` pools strengths 1–4. `overspec_ratio` = refined mean / explicit mean (None without both);
    `solve_rate_drop` = explicit minus refined solve rate, in points (None without both). When the stage
    refined, explicit attempts ran only on tasks whose refined query no solver verified
    (`explicit_conditional`): the explicit solve rate is then conditional, and the unconditional one is
    the `--no-refine` ablation's (`baseline`). Targets of the issue: ratio ≤ 0.5, drop ≤ 15 points."""

    schema_version: Literal[1] = 1
    run: str
    items: int = 0
    rows: list[StrengthRow] = Field(default_factory=list)
    explicit: StrengthRow
    refined: StrengthRow
    baseline: StrengthRow | None = Field(default=None, description="explicit queries of the ablation run")
    baseline_run: str | None = None
    explicit_conditional: bool = False
    overspec_ratio: float | None = None
    solve_rate_drop: float | None = None
    meets_overspec_target: bool | None = None
    meets_solve_target: bool | None = None
