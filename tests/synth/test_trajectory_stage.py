"""The trajectory stage over three gated `shop` tasks, replaying a cassette recorded with the bundled
Qwen2.5-Coder-0.5B model (`tests/synth/record_trajectories.py`): real model answers go through validation,
refinement and solving; reruns are byte-identical; whatever is kept verifies from live state. The stage's
bookkeeping with a perfect solver, resume and bad input are in `test_trajectory_oracle.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
from record_trajectories import CASSETTE, CONFIGS, run
from traj_fixtures import shop_tasks, write_task_stage

from envfactory.llm import LLMSettings, make_client
from envfactory.runtime import load_env, open_group
from envfactory.spec import Task, Trajectory
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig, TrajectoryFunnel, TrajectoryItem
from envfactory.store import Workspace
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
