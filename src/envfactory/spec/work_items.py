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
    `solve`, run the solvers; the roles' models are opened by the worker."""

    schema_version: Literal[1] = 1
    config: SynthTrajectoriesConfig
    task: Task
    solve: bool
    writer: WorkerModel
    solver: WorkerModel
    user: WorkerModel | None = None
