"""Synthesis work functions for `exec`: one batch of task candidates, one task's trajectories.

Contract: `synth_batch(SynthBatchItem) -> SynthBatch` and `synth_trajectory(TrajectoryWorkItem) ->
TrajectoryItem` are module-level work functions (executors import them by name in any worker). Each
rebuilds what it needs from its item — environments, tool graphs and the planner for a task config; the
role models for a trajectory config — once per worker process, and computes exactly what the stage
computes in its own process (`synth.stage._batch`, `synth.trajectories.run_item`), so the serial path, a
process pool and Ray give byte-identical artifacts. Errors follow the stage's: a model's set-up failure
is raised (the executor records it as the item's failure), a task's own failure is a `failed` item.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from envfactory.graph.stage import read_stage_graphs
from envfactory.llm.workers import worker_client
from envfactory.runtime import Environment
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.synth import SynthBatch, SynthTasksConfig
from envfactory.spec.synth_trajectories import TrajectoryItem
from envfactory.spec.work_items import SynthBatchItem, TrajectoryWorkItem, WorkerModel
from envfactory.synth.plans import Planner
from envfactory.synth.stage import _batch, load_synth_envs
from envfactory.synth.trajectories import TrajectoryDeps, run_item


@dataclass(frozen=True, slots=True)
class _TaskContext:
    planner: Planner
    envs: dict[str, Environment]
    benchmark_tasks: list[BenchmarkTask]


def synth_batch(item: SynthBatchItem) -> SynthBatch:
    """The `SynthBatch` of candidate batch `item.number` under `item.config` (see the module contract)."""
    context = _task_context(item.config.to_json_bytes(), item.benchmark_path, item.graphs_dir)
    return _batch(context.planner, context.envs, item.config, item.number, context.benchmark_tasks)


def synth_trajectory(item: TrajectoryWorkItem) -> TrajectoryItem:
    """The `TrajectoryItem` of `item.task` (see the module contract)."""
    deps = _trajectory_deps(item.writer, item.solver, item.user)
    return run_item(item.config, deps, item.task, solve=item.solve)


# Per-process memos of a worker's context (environments, graphs, planner, opened models): results never
# depend on them, only the cost of the first item a worker runs does.
@functools.lru_cache(maxsize=2)
def _task_context(config_bytes: bytes, benchmark_path: str, graphs_dir: str) -> _TaskContext:
    config = SynthTasksConfig.model_validate_json(config_bytes)
    loaded = load_synth_envs(config, read_stage_graphs(Path(graphs_dir)) if graphs_dir else None)
    lines = Path(benchmark_path).read_bytes().splitlines()
    return _TaskContext(planner=Planner(loaded.envs, config), envs={s.name: s.env for s in loaded.envs},
                        benchmark_tasks=[BenchmarkTask.model_validate_json(line) for line in lines if line.strip()])


@functools.lru_cache(maxsize=2)
def _trajectory_deps(writer: WorkerModel, solver: WorkerModel, user: WorkerModel | None) -> TrajectoryDeps:
    return TrajectoryDeps(writer=worker_client(writer), solver=worker_client(solver),
                          user=worker_client(user) if user is not None else None)
