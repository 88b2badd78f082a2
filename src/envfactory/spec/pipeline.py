"""The main job's config and records: `envfactory run --config FILE` (DESIGN §1, §9, §11).

- `RunConfig`: one file that decides a whole run — the library (shipped, or built from a
  `LibraryConfig`), the tool graph, task synthesis, trajectory synthesis, export and (optionally)
  training, plus the seed, the model and where work runs (`ExecutorConfig`). Unknown keys and bad
  values are validation errors (every model forbids extras), reported all at once with their paths.
  Paths in the file are relative to the file's own directory; the CLI resolves them and checks that
  they exist before any work starts.
- `ExecutorConfig`: serial, a local process pool (the default; sized from the usable cores) or Ray
  (`ray.init()` starts a local cluster; `ray_address` joins an existing one); `max_attempts` bounds the
  retries of an item whose worker died or that failed for a reason other than its own input.
- `WorkFailure`: an item the executor gave up on, with the reason (recorded in stage manifests).
- `PipelineStageRecord` / `RunSummary`: what each stage of a run did (status, counts, drops, tokens,
  seconds) and the run's verdict; `summary.json` in the run directory. Timings live in `timings` and
  are never part of a digest.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from envfactory.spec.base import JSONObject, SpecModel, content_hash

ExecutorKind = Literal["serial", "pool", "ray"]
SamplerName = Literal["topology", "random-walk"]
PipelineStageStatus = Literal["complete", "partial", "failed", "skipped", "not_available", "pending"]

#: The stages of `envfactory run`, in order (the stage directories under `runs/<run-id>/`).
PIPELINE_STAGES: tuple[str, ...] = ("library", "graph", "synth-tasks", "synth-trajectories", "export", "train")


class ExecutorConfig(SpecModel):
    """Where independent work items run. The choice never changes an artifact, only the wall time."""

    schema_version: Literal[1] = 1
    kind: ExecutorKind = "pool"
    workers: int | None = Field(default=None, ge=1, le=1024,
                                description="processes (pool) or CPUs to ask for (local Ray); default: usable cores")
    ray_address: str | None = Field(default=None, min_length=1,
                                    description="an existing Ray cluster (`ray://host:10001` or `auto`); "
                                                "default: a local cluster started by ray.init()")
    max_attempts: int = Field(default=3, ge=1, le=10,
                              description="tries per item when a worker dies or an item fails transiently")


class WorkFailure(SpecModel):
    """One work item the executor gave up on: its position in the batch, its key, tries and why."""

    schema_version: Literal[1] = 1
    index: int = Field(ge=0)
    key: str
    attempts: int = Field(ge=1)
    reason: str


class ShippedLibrary(SpecModel):
    """Take the package's shipped library (read-only) as the run's environments."""

    source: Literal["shipped"] = "shipped"
    domains: list[str] = Field(default_factory=list, description="only these domains; empty: all")
    envs: list[str] = Field(default_factory=list, description="only these environments; empty: all")


class BuiltLibrary(SpecModel):
    """Build a library from a `LibraryConfig` file (discover → propose → compile → verify → accept)."""

    source: Literal["build"]
    config: str = Field(min_length=1, description="path of a LibraryConfig JSON file")
    domains: list[str] = Field(default_factory=list, description="only these of the config's domains")


LibraryStage = Annotated[ShippedLibrary | BuiltLibrary, Field(discriminator="source")]


class GraphStage(SpecModel):
    """The tool graph of the run's environments (deterministic and model-free). `per-environment` (the
    default) builds one graph per environment — the graphs task synthesis samples its chains from;
    `combined` builds one graph over all of them, with the edges between environments (large: over the
    whole shipped library, about 200k data-flow edges and a 125 MB file)."""

    scope: Literal["per-environment", "combined"] = "per-environment"
    embed: bool = Field(default=False, description="add embedding edges (the packaged sentence model)")


class SynthTasksStage(SpecModel):
    """Chains from the graph grounded into gated tasks with gold-path trajectories (`synth tasks`).
    Tuning left out takes the synthesis stage's own defaults."""

    enabled: bool = True
    tasks: int = Field(default=60, ge=1, le=1_000_000, description="gated tasks to keep")
    sampler: SamplerName = "topology"
    max_candidates: int | None = Field(default=None, ge=1, description="None: the stage's default per task")
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    multi_env_share: float | None = Field(default=None, ge=0.0, le=1.0)
    read_only_share: float | None = Field(default=None, ge=0.0, le=1.0)
    max_chain_length: int | None = Field(default=None, ge=1, le=12, description="longest sampled chain")


LLM_SPEC = re.compile(r"(local|(openai|replay):\S+?)(#\S+)?")
"""A role's model: `local`, `openai:URL` or `replay:CASSETTE`, optionally ending in `#NAME` (that role's own
model name, local model key, or for a replay the recorded model id to answer as)."""


def _absent(value: object) -> bool:
    return value is None


def _role_llm(value: str | None) -> str | None:
    if value is None:
        return None
    match = LLM_SPEC.fullmatch(value)
    if match is None or value.endswith("#"):
        raise ValueError("must be local, openai:URL or replay:CASSETTE, optionally ending in #NAME")
    return value


class SynthTrajectoriesStage(SpecModel):
    """Natural queries, refinement and solver-verified trajectories (`synth trajectories`).

    The roles' models: the solver is the run's `llm`; `writer_llm` (queries, refinement), `user_llm` (the
    user simulator) and `judge_llm` (the judge of read-only answers) default to it (the judge: no judge).
    They were added later: left out of the file when unset, so earlier configs keep their digests."""

    enabled: bool = True
    preset: Literal["sft-single", "sft-conv", "rl"] = "sft-single"
    queries: int | None = Field(default=10, ge=1, description="tasks that get queries; None: every task")
    solve: int | None = Field(default=None, ge=0, description="of those, tasks the solver attempts; None: all")
    solver_k: int = Field(default=1, ge=1, le=16, description="solver attempts per task")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    refine: bool | None = Field(default=None, description="refine queries into implicit ones; None: the preset's "
                                "default")
    order: Literal["simplest-first", "shortest-first", "writes-first", "as-written"] = Field(
        default="simplest-first", description="which tasks get queries and solvers first (`synth trajectories`)")
    min_verified: int = Field(default=2, ge=0, description="solver-verified trajectories the run must produce")
    writer_llm: str | None = Field(default=None, exclude_if=_absent,
                                   description="the query writer's model (`LLM_SPEC`); None: the run's `llm`")
    user_llm: str | None = Field(default=None, exclude_if=_absent,
                                 description="the user simulator's model (`LLM_SPEC`); None: the run's `llm`")
    judge_llm: str | None = Field(default=None, exclude_if=_absent,
                                  description="the judge of read-only answers (`LLM_SPEC`); None: no judge")

    @field_validator("writer_llm", "user_llm", "judge_llm")
    @classmethod
    def _roles(cls, value: str | None) -> str | None:
        return _role_llm(value)

    def role_llms(self) -> dict[str, str]:
        """The roles given their own model, by role (`writer`, `user`, `judge`)."""
        roles = {"writer": self.writer_llm, "user": self.user_llm, "judge": self.judge_llm}
        return {role: spec for role, spec in roles.items() if spec is not None}


class ExportStage(SpecModel):
    """The dataset: SFT and RL rows in the named formats (empty: every format the export layer has)."""

    enabled: bool = True
    formats: list[str] = Field(default_factory=list)


class TrainStage(SpecModel):
    """Optional training on the exported dataset (off by default)."""

    enabled: bool = False


class RunStages(SpecModel):
    """Every stage's section; a missing section takes its defaults."""

    library: LibraryStage = Field(default_factory=ShippedLibrary)
    graph: GraphStage = Field(default_factory=GraphStage)
    synth_tasks: SynthTasksStage = Field(default_factory=SynthTasksStage)
    synth_trajectories: SynthTrajectoriesStage = Field(default_factory=SynthTrajectoriesStage)
    export: ExportStage = Field(default_factory=ExportStage)
    train: TrainStage = Field(default_factory=TrainStage)


class RunConfig(SpecModel):
    """The config of `envfactory run`. Its `run_digest()` (everything but the executor) names the run."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$", description="names the run directory")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    llm: str = Field(default="local", description="local (the embedded model), openai:URL or replay:CASSETTE")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    stages: RunStages = Field(default_factory=RunStages)

    @field_validator("llm")
    @classmethod
    def _llm(cls, value: str) -> str:
        if value != "local" and not re.fullmatch(r"(openai|replay):\S+", value):
            raise ValueError("must be local, openai:URL or replay:CASSETTE")
        return value

    def run_digest(self) -> str:
        """Hash of what decides the artifacts: the executor is left out (any executor may resume a run)."""
        return content_hash(self.model_dump(mode="json", exclude={"executor"}))

    def default_run_id(self) -> str:
        """`<name>-<first 12 hex of run_digest()>`: the same config resumes the same run."""
        return f"{self.name}-{self.run_digest()[:12]}"


class PipelineStageRecord(SpecModel):
    """What one stage of a run did; `manifest_digest` is its StageManifest's content digest."""

    schema_version: Literal[1] = 1
    stage: str
    status: PipelineStageStatus
    note: str = ""
    manifest_digest: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    drops: dict[str, int] = Field(default_factory=dict)
    failures: list[WorkFailure] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds; never hashed")


class RunSummary(SpecModel):
    """`summary.json` of a run: each stage's record in order and the run's status."""

    schema_version: Literal[1] = 1
    run_id: str
    status: Literal["complete", "partial", "failed"]
    stages: list[PipelineStageRecord] = Field(default_factory=list)
    config: JSONObject = Field(default_factory=dict)


class SelectedEnv(SpecModel):
    """One environment a run works with. `path` is relative to the run directory for a built library
    and empty for the shipped one (loaded by name), so the artifact does not depend on where it runs."""

    schema_version: Literal[1] = 1
    name: str
    domain: str
    spec_hash: str
    path: str = ""


class LibrarySelection(SpecModel):
    """`library/library.json`: the environments of a run and the digest of the library they came from."""

    schema_version: Literal[1] = 1
    source: Literal["shipped", "build"]
    library_digest: str
    envs: list[SelectedEnv]


class LibraryStageConfig(SpecModel):
    """The `library` stage of run `run_id` (a built library's config path is resolved by the CLI)."""

    schema_version: Literal[1] = 1
    run_id: str
    library: LibraryStage
    seed: int = 0


class GraphStageConfig(SpecModel):
    """The `graph` stage of run `run_id`: the tool graph over the environments of `library.json`."""

    schema_version: Literal[1] = 1
    run_id: str
    scope: Literal["per-environment", "combined"] = "per-environment"
    embed: bool = False


class GraphSummary(SpecModel):
    """`graph/summary.json`: the size of the run's tool graph(s) and, per graph, its canonical hash
    (per environment: the environment's name; combined: `combined`)."""

    schema_version: Literal[1] = 1
    graphs: dict[str, str] = Field(default_factory=dict)
    environments: int
    tools: int
    parameters: int
    accepted_feeds: int


class EnvGraphItem(SpecModel):
    """A work item of the graph stage: build the tool graph of the environment whose `spec.json` is in
    `directory` (so that workers on other machines need only a path they can read)."""

    schema_version: Literal[1] = 1
    name: str
    directory: str
