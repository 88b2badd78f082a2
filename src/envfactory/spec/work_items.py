"""Work items that stages hand to an executor (`exec`): what crosses to a worker process or a Ray node.

Contract: an item carries only what its worker needs to rebuild its context — configs, seeds, file paths
readable by every worker, and which model to use (`WorkerModel`, never a live client) — so that the
same item gives the same result in this process, in a process-pool worker and on a Ray node. Paths are
absolute; on a cluster they must lie on storage every node reads (the workspace). Items are versioned
like every other artifact.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import SpecModel
from envfactory.spec.build import Proposal
from envfactory.spec.library import LibraryConfig, ProposalOutcome
from envfactory.spec.synth import SynthTasksConfig
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig
from envfactory.spec.task import Task


class WorkerModel(SpecModel):
    """Which model a worker opens for itself: the provider, model and endpoint, a replay cassette, the
    context size of a local model, and the workspace's answer cache (shared by every worker on a host)."""

    schema_version: Literal[1] = 1
    provider: Literal["local", "openai", "replay"]
    model: str = Field(default="", description="local model key or served model name")
    base_url: str = Field(default="", description="OpenAI-compatible endpoint (provider openai)")
    cassette: str = Field(default="", description="replay cassette (provider replay)")
    models_dir: str = Field(default="", description="where local model files are (empty: the default)")
    n_ctx: int = Field(default=0, ge=0, description="local context size (0: the provider's default)")
    n_threads: int = Field(default=0, ge=0, description="local model threads (0: the provider's default); "
                           "a host's workers share its cores")
    cache_path: str = Field(default="", description="the workspace's answer cache (empty: none)")


class SynthBatchItem(SpecModel):
    """One batch of task-synthesis candidates (`synth.stage.synth_batch`); the benchmark task texts the
    contamination gate needs are read from `benchmark_path` (a JSONL file of `BenchmarkTask`s)."""

    schema_version: Literal[1] = 1
    config: SynthTasksConfig
    number: int = Field(ge=0)
    benchmark_path: str
    graphs_dir: str = Field(default="", description="a finished graph stage whose per-environment graphs "
                            "the planner samples from (empty: the worker builds the same graphs itself)")


class TrajectoryWorkItem(SpecModel):
    """One task of the trajectory stage (`synth.trajectories.synth_trajectory`): write its queries and, when
    `solve`, run the solvers; the roles' models are opened by the worker (`judge` None: no judge)."""

    schema_version: Literal[1] = 1
    config: SynthTrajectoriesConfig
    task: Task
    solve: bool
    writer: WorkerModel
    solver: WorkerModel
    user: WorkerModel | None = None
    judge: WorkerModel | None = None


class BuildHooks(SpecModel):
    """Which of the standard library-build hooks a worker wires for itself (`build.fanout.standard_hooks`):
    the moto differential tests and the benchmark contamination check. Hooks are functions and never travel."""

    schema_version: Literal[1] = 1
    differential: bool = False
    contamination: bool = False


class ProposalBuildItem(SpecModel):
    """One proposal of a library build (`build.fanout.build_proposal_item`): its operations, resolved from the
    catalog by the driver (so a worker needs no catalog), the outcome it starts from (catalog errors already
    recorded), and the staging directory the worker builds into; the driver moves it into place when the
    serial order consumes the proposal, and discards it otherwise."""

    schema_version: Literal[1] = 1
    config: LibraryConfig
    proposal: Proposal
    operations: dict[str, str] = Field(description="operation id -> the `Operation`'s own JSON text, keys in "
                                       "source order: the compiler's output follows that order (a required "
                                       "list, for one), and canonical JSON would sort it away")
    base: ProposalOutcome
    staging: str = Field(description="an absolute directory, readable by the driver, that the worker fills")
    hooks: BuildHooks
    model: WorkerModel | None = Field(default=None, description="the model for seed realism and authoring")
    compiled: str | None = Field(default=None, description="the driver's dry compile of these operations (a "
                                 "`build.compile.CompiledEnv`'s own JSON text, for the same reason as "
                                 "`operations`), which the worker's first round takes instead of compiling "
                                 "again; None: the worker compiles")


class ProposalBuildResult(SpecModel):
    """What a worker hands back for a `ProposalBuildItem`: the verdict and the seconds the build took
    (timings are reported, never compared)."""

    schema_version: Literal[1] = 1
    outcome: ProposalOutcome
    seconds: float = Field(ge=0)
