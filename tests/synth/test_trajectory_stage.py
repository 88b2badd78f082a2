"""The trajectory stage end to end over three gated `shop` tasks, replaying a cassette recorded with the
bundled Qwen2.5-Coder-0.5B model (`tests/synth/record_trajectories.py`): artifacts, funnel, verification
from live state, byte-identical reruns, resume after a kill, and clear errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from record_trajectories import CASSETTE, CONFIGS, run
from traj_fixtures import shop_tasks, write_task_stage

from envfactory.errors import StoreError
from envfactory.llm import LLMSettings, make_client
from envfactory.llm.scripted import ScriptedClient
from envfactory.runtime import load_env, open_group
from envfactory.spec import Task, Trajectory
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig, TrajectoryFunnel, TrajectoryItem
from envfactory.store import Workspace
from envfactory.synth.trajectories import TrajectoryDeps, run_synth_trajectories
from envfactory.verify.rewards import task_reward


def _replay() -> object:
    return make_client(LLMSettings(provider="replay", cassette=CASSETTE))


def _stage(root: Path, config: SynthTrajectoriesConfig) -> Path:
    workspace = Workspace(root)
    write_task_stage(workspace, "ci", shop_tasks())
    run(workspace, _replay(), config)
    return root / "runs" / "ci" / "synth-trajectories"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.preset)
def test_replayed_stage_writes_its_artifacts_and_repeats_byte_for_byte(tmp_path: Path,
                                                                      config: SynthTrajectoriesConfig) -> None:
    first = _stage(tmp_path / "a", config)
    second = _stage(tmp_path / "b", config)
    names = ["tasks.jsonl", "trajectories.jsonl", "funnel.json"]
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)
    funnel = TrajectoryFunnel.model_validate_json((first / "funnel.json").read_bytes())
    assert funnel.stages["tasks"] == 3 and funnel.model_calls > 0
    items = [TrajectoryItem.model_validate_json(p.read_bytes()) for p in sorted((first / "items").iterdir())]
    assert len(items) == 3
    for item in items:
        assert item.status in ("verified", "unsolved", "dropped", "failed")
        if item.status == "dropped":
            assert item.reason.startswith("query:") and item.task is None
        if item.query is not None and item.query.explicit:
            assert "create_order" not in item.query.explicit and "ord_00002" not in item.query.explicit


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.preset)
def test_every_kept_trajectory_replays_to_its_hashes_and_verifies(tmp_path: Path,
                                                                  config: SynthTrajectoriesConfig) -> None:
    stage = _stage(tmp_path, config)
    tasks = {t.id: t for t in (Task.model_validate_json(x) for x in (stage / "tasks.jsonl").read_bytes().splitlines())}
    shop = load_env("shop")
    for line in (stage / "trajectories.jsonl").read_bytes().splitlines():
        trajectory = Trajectory.model_validate_json(line)
        task = tasks[trajectory.task_id]
        group = open_group([shop], task.initial_state, seed=task.seed, naming=task.tool_naming)
        hashes = []
        for call in trajectory.tool_calls():
            group.call(call.tool, call.arguments)
            hashes.append(group.hash())
        assert hashes == trajectory.state_hashes
        assert group.hashes() == trajectory.final_state_hashes
        assert task_reward(task, group, messages=trajectory.messages).total == pytest.approx(1.0)
        assert task.queries.source == "model" and task.queries.explicit


def test_a_killed_run_resumes_without_loss_or_duplication(tmp_path: Path) -> None:
    config = CONFIGS[0]
    whole = _stage(tmp_path / "whole", config)
    workspace = Workspace(tmp_path / "killed")
    write_task_stage(workspace, "ci", shop_tasks())
    calls = {"n": 0}

    def dying(done: int, total: int, status: str) -> None:
        calls["n"] += 1
        if done == 2:
            raise KeyboardInterrupt  # killed after the second item was written

    with pytest.raises(KeyboardInterrupt):
        run_synth_trajectories(config, workspace, TrajectoryDeps(writer=_replay(), solver=_replay(),  # type: ignore[arg-type]
                                                                 progress=dying))
    stage = tmp_path / "killed" / "runs" / "ci" / "synth-trajectories"
    assert len(list((stage / "items").iterdir())) == 2 and not (stage / "manifest.json").exists()
    untouchable = ScriptedClient([])  # a resumed run must not ask for the finished items again
    with pytest.raises(AssertionError):
        run_synth_trajectories(config, workspace, TrajectoryDeps(writer=untouchable, solver=untouchable))
    run_synth_trajectories(config, workspace, TrajectoryDeps(writer=_replay(), solver=_replay()))  # type: ignore[arg-type]
    for name in ("tasks.jsonl", "trajectories.jsonl", "funnel.json"):
        assert (stage / name).read_bytes() == (whole / name).read_bytes()


def test_an_unfinished_task_stage_is_refused_before_any_model_call(tmp_path: Path) -> None:
    client = ScriptedClient([])
    with pytest.raises(StoreError, match="no finished synth-tasks stage"):
        run_synth_trajectories(SynthTrajectoriesConfig(from_run="nope"), Workspace(tmp_path),
                               TrajectoryDeps(writer=client, solver=client))
    assert client.requests == []


def test_model_answers_that_break_the_schema_drop_the_task_with_a_reason(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    write_task_stage(workspace, "ci", shop_tasks()[1:2])
    client = ScriptedClient(["not json", '{"persona": 1}'])
    run_synth_trajectories(SynthTrajectoriesConfig(from_run="ci", query_attempts=2), workspace,
                           TrajectoryDeps(writer=client, solver=client))
    funnel = TrajectoryFunnel.model_validate_json((tmp_path / "runs/ci/synth-trajectories/funnel.json").read_bytes())
    assert funnel.stages["queries"] == 0 and funnel.drops == {"queries": {"query:not_json": 1}}
