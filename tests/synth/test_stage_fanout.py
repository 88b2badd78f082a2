"""Synthesis on an executor (issue 25, deliverable 1): `synth tasks` batches and `synth trajectories` tasks
run as `exec` work items give the same artifacts, byte for byte, as the stage in its own process — on the
serial executor (the items' JSON round trip) and on a process pool of two workers; trajectories on a pool
and on a local Ray cluster of two workers (when the `ray` extra is installed, as in CI), with the
answers of a replay cassette recorded from the in-process run. A worker that cannot open its model fails
the stage with the reason, leaving finished items for a resumed run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from synth_helpers import QUIET_BENCHMARK, SMALL_ENVS
from traj_fixtures import OracleClient, shop_tasks, write_task_stage

from envfactory.errors import StoreError
from envfactory.exec import PoolExecutor, RayExecutor, SerialExecutor
from envfactory.llm import CassetteWriter, ManagedClient
from envfactory.llm.factory import LLMSettings
from envfactory.llm.workers import worker_client, worker_model
from envfactory.spec.synth import SynthTasksConfig
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig
from envfactory.spec.work_items import WorkerModel
from envfactory.store import Workspace
from envfactory.synth import SynthDeps, run_synth_tasks
from envfactory.synth.trajectories import RoleModels, TrajectoryDeps, run_synth_trajectories

TASK_ARTIFACTS = ("tasks.jsonl", "trajectories.jsonl", "gates.jsonl", "drops.jsonl", "funnel.json")


def _synth_tasks(root: Path, executor: object | None) -> Path:
    config = SynthTasksConfig(envs=list(SMALL_ENVS), tasks=8, seed=5, batch_size=4)
    deps = SynthDeps(run_id="r", benchmark_tasks=list(QUIET_BENCHMARK), executor=executor)  # type: ignore[arg-type]
    manifest = run_synth_tasks(config, Workspace(root), deps)
    assert manifest.status == "complete"
    return root / "runs" / "r" / "synth-tasks"


def _files(stage: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {name: (stage / name).read_bytes() for name in names}


@pytest.mark.slow
def test_task_batches_on_serial_and_pool_executors_give_the_in_process_bytes(tmp_path: Path) -> None:
    here = _synth_tasks(tmp_path / "here", None)
    expected = _files(here, TASK_ARTIFACTS)
    batches = sorted(p.name for p in (here / "parts").iterdir())
    pool = PoolExecutor(workers=2, max_attempts=2)
    try:
        for name, executor in (("serial", SerialExecutor(max_attempts=1)), ("pool", pool)):
            stage = _synth_tasks(tmp_path / name, executor)
            assert _files(stage, TASK_ARTIFACTS) == expected, name
            # a wave computes batches ahead; only those the serial order consumes are written
            assert sorted(p.name for p in (stage / "parts").iterdir()) == batches, name
    finally:
        pool.close()
    assert len(list((tmp_path / "pool" / "inputs").iterdir())) == 1  # the benchmark texts, shared by content hash


def _trajectories(root: Path, deps: TrajectoryDeps) -> Path:
    workspace = Workspace(root)
    write_task_stage(workspace, "ci", shop_tasks())
    config = SynthTrajectoriesConfig(from_run="ci", preset="sft-single", k=1, seed=3)
    run_synth_trajectories(config, workspace, deps)
    return root / "runs" / "ci" / "synth-trajectories"


@pytest.mark.parametrize("kind", ["pool", *(["ray"] if importlib.util.find_spec("ray") is not None else [])])
def test_trajectory_tasks_on_workers_replay_to_the_in_process_bytes(tmp_path: Path, kind: str) -> None:
    cassette = tmp_path / "answers.jsonl"
    recorded = ManagedClient(OracleClient(shop_tasks()), recorder=CassetteWriter(cassette))
    here = _trajectories(tmp_path / "here", TrajectoryDeps(writer=recorded, solver=recorded))
    names = ("tasks.jsonl", "trajectories.jsonl", "funnel.json", *sorted(
        f"items/{p.name}" for p in (here / "items").iterdir()))
    replay = worker_model(LLMSettings(provider="replay", cassette=cassette))
    client = worker_client(replay)
    executor = PoolExecutor(workers=2, max_attempts=1) if kind == "pool" else RayExecutor(workers=2, max_attempts=1)
    try:
        there = _trajectories(tmp_path / kind, TrajectoryDeps(
            writer=client, solver=client, executor=executor, models=RoleModels(writer=replay, solver=replay)))
    finally:
        executor.close()
    assert _files(there, names) == _files(here, names)
    assert b'"status":"verified"' in (there / names[-1]).read_bytes()


def test_a_worker_without_its_model_fails_the_stage_with_the_reason(tmp_path: Path) -> None:
    missing = WorkerModel(provider="replay", cassette=str(tmp_path / "no-such-cassette.jsonl"))
    oracle = OracleClient(shop_tasks())
    deps = TrajectoryDeps(writer=oracle, solver=oracle, executor=SerialExecutor(max_attempts=1),
                          models=RoleModels(writer=missing, solver=missing))
    with pytest.raises(StoreError, match=r"3 task\(s\) failed on the serial executor.*no-such-cassette"):
        _trajectories(tmp_path, deps)
    assert not list((tmp_path / "runs" / "ci" / "synth-trajectories").glob("items/*.json"))


def test_a_transformers_checkpoint_does_not_travel_to_workers() -> None:
    from envfactory.errors import ProviderError
    from envfactory.llm.hf import HFConfig

    with pytest.raises(ProviderError, match="serial executor"):
        worker_model(LLMSettings(provider="hf", hf=HFConfig(path=Path("/nowhere"))))
