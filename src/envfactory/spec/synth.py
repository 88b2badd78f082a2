"""Artifacts of the task-synthesis stage (`synth tasks`): its config, per-batch parts and the funnel.

Contract:
- `SynthTasksConfig` is the stage's resolved config; it is written into the stage manifest and, with the
  seed, decides every artifact byte for byte.
- The stage works in batches of candidates (`batch_size` candidate numbers each, in order). A finished
  batch is written once, atomically, as a `SynthBatch` (`parts/batch-<n>.json`); a resumed run reuses
  every batch it finds and computes only the others, so nothing is lost or done twice.
- `CandidateDrop` records why one candidate did not become a task: the funnel stage it stopped at and a
  short reason (no ids, so reasons aggregate), with `detail` for the specific message.
- `TaskGates` (`gates.jsonl`, one line per kept task, in the order of `tasks.jsonl`) records every gate
  a kept task passed (`GateRecord`: gate name, passed, what the gate measured), so the evidence a task
  shipped on is kept beside it; a dropped candidate's failed gate is its `CandidateDrop`.
- `SynthFunnel` (`funnel.json`) counts candidates through the stages `chains → valid → grounded →
  executed → gated → kept` with the drop reasons of each stage, and describes what was kept. It holds
  no timings (timings live in the stage manifest, which never hashes them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from envfactory.spec.base import SpecModel
from envfactory.spec.task import Task
from envfactory.spec.trajectory import Trajectory

SamplerName = Literal["topology", "random-walk"]
FUNNEL_STAGES: tuple[str, ...] = ("chains", "valid", "grounded", "executed", "gated", "kept")
"""Funnel stages in order: a candidate that reaches a stage has passed every earlier one."""
DropStage = Literal["valid", "grounded", "executed", "gated", "kept"]


class SynthTasksConfig(SpecModel):
    """What `run_synth_tasks` makes. `envs` names environments (bundled, library or paths); `library`
    adds every environment of the shipped library; `domain` keeps only environments of one domain.
    Shares are fractions of candidates: `multi_env_share` pair two environments over a shared entity,
    `read_only_share` keep only the chain's reads."""

    schema_version: Literal[1] = 1
    envs: list[str] = Field(default_factory=list)
    library: bool = False
    domain: str | None = None
    sampler: SamplerName = "topology"
    tasks: int = Field(ge=1, description="stop when this many tasks are kept")
    seed: int = 0
    batch_size: int = Field(default=32, ge=1, le=4096)
    max_candidates: int | None = Field(default=None, ge=1, description="None: 40 candidates per task asked")
    multi_env_share: float = Field(default=0.4, ge=0.0, le=1.0)
    read_only_share: float = Field(default=0.3, ge=0.0, le=1.0)
    rebind_attempts: int = Field(default=3, ge=1, le=20)
    grounded_records: int = Field(default=2, ge=0, le=20, description="records added per touched collection")
    max_chain_length: int = Field(default=5, ge=1, le=12)

    @model_validator(mode="after")
    def _some_envs(self) -> SynthTasksConfig:
        if not self.envs and not self.library:
            raise ValueError("name environments (envs) or use the whole library (library=true)")
        return self

    @property
    def candidate_limit(self) -> int:
        """How many candidates may be tried: `max_candidates`, else 40 per task asked for."""
        return self.max_candidates if self.max_candidates is not None else 40 * self.tasks


class CandidateDrop(SpecModel):
    """One candidate that did not become a task, and why."""

    schema_version: Literal[1] = 1
    candidate: int = Field(ge=0)
    stage: DropStage
    reason: str = Field(description="short, id-free reason that aggregates in the funnel")
    detail: str = ""
    envs: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)


class GateRecord(SpecModel):
    """One gate run on a task (`verify.gates.GATES` names them): whether it passed, and what it measured
    or why it failed."""

    gate: str
    passed: bool
    detail: str = ""


class TaskGates(SpecModel):
    """The gates one kept task passed, in the order they ran (`gates.jsonl`)."""

    schema_version: Literal[1] = 1
    task_id: str
    gates: list[GateRecord] = Field(min_length=1)


def _no_gates(value: list[TaskGates]) -> bool:
    return not value


class SynthBatch(SpecModel):
    """One finished batch of candidates: the tasks kept (with their gold-path trajectories and their gate
    records, same order) and every drop. `reached` counts, per funnel stage, the candidates of the batch
    that reached it. `gates` is left out of the JSON when empty: a batch written before gate records
    existed still loads, and its tasks have none."""

    schema_version: Literal[1] = 1
    batch: int = Field(ge=0)
    first_candidate: int = Field(ge=0)
    candidates: int = Field(ge=0)
    tasks: list[Task] = Field(default_factory=list)
    trajectories: list[Trajectory] = Field(default_factory=list)
    drops: list[CandidateDrop] = Field(default_factory=list)
    reached: dict[str, int] = Field(default_factory=dict)
    gates: list[TaskGates] = Field(default_factory=list, exclude_if=_no_gates)

    @model_validator(mode="after")
    def _paired(self) -> SynthBatch:
        ids = [t.id for t in self.tasks]
        if ids != [t.task_id for t in self.trajectories]:
            raise ValueError("every kept task has exactly one gold-path trajectory, in the same order")
        if self.gates and ids != [g.task_id for g in self.gates]:
            raise ValueError("gate records, when present, follow the kept tasks one for one, in the same order")
        return self


class KeptProfile(SpecModel):
    """What the kept tasks are: how many span several environments, only read, per domain and env."""

    tasks: int = 0
    multi_env: int = 0
    read_only: int = 0
    gold_calls: int = 0
    envs: int = 0
    domains: dict[str, int] = Field(default_factory=dict)
    per_env: dict[str, int] = Field(default_factory=dict)


class SynthFunnel(SpecModel):
    """`funnel.json`: candidates through the stages, drop reasons per stage, and the kept tasks' profile."""

    schema_version: Literal[1] = 1
    sampler: SamplerName
    seed: int
    candidates: int
    stages: dict[str, int] = Field(description="funnel stage -> candidates that reached it")
    drops: dict[str, dict[str, int]] = Field(default_factory=dict, description="stage -> reason -> count")
    duplicates: int = Field(default=0, description="kept candidates whose task equalled an earlier one")
    kept: KeptProfile = Field(default_factory=KeptProfile)
    skipped_envs: dict[str, str] = Field(default_factory=dict, description="environment -> why not used")
