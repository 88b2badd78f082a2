"""The trajectory stage's bookkeeping with a scripted oracle model (`traj_fixtures.OracleClient`): every
task gets a query and a refinement, every attempt verifies from live state, kept trajectories replay to
their hashes, conversations go through the user simulator, reruns are byte-identical and a killed run
resumes without asking the model again for finished tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
from traj_fixtures import OracleClient, shop_tasks, write_task_stage

from envfactory.llm.scripted import ScriptedClient
from envfactory.runtime import load_env, open_group
from envfactory.spec import Task, Trajectory
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig, TrajectoryFunnel, TrajectoryItem
from envfactory.store import Workspace
from envfactory.synth.trajectories import TrajectoryDeps, run_synth_trajectories
from envfactory.verify.rewards import task_reward

STAGE = Path("runs/ci/synth-trajectories")
ARTIFACTS = ("tasks.jsonl", "trajectories.jsonl", "funnel.json")


def _run(root: Path, config: SynthTrajectoriesConfig, client: object | None = None) -> Path:
    workspace = Workspace(root)
    tasks = shop_tasks()
    if not (root / "runs/ci/synth-tasks/manifest.json").exists():
        write_task_stage(workspace, "ci", tasks)
    oracle = client or OracleClient(tasks)
    run_synth_trajectories(config, workspace, TrajectoryDeps(writer=oracle, solver=oracle))  # type: ignore[arg-type]
    return root / STAGE


@pytest.mark.parametrize("preset", ["sft-single", "sft-conv", "rl"])
def test_a_perfect_solver_verifies_every_task_and_trajectories_replay(tmp_path: Path, preset: str) -> None:
    stage = _run(tmp_path, SynthTrajectoriesConfig(from_run="ci", preset=preset, seed=3))
    funnel = TrajectoryFunnel.model_validate_json((stage / "funnel.json").read_bytes())
    refined = 0 if preset == "rl" else 3
    assert funnel.stages == {"tasks": 3, "queries": 3, "refined": refined, "solved": 3, "verified": 3}
    assert funnel.drops == {}
    if preset == "sft-conv":
        assert funnel.conversational >= 1
    assert funnel.explicit_overspec > 0.0
    tasks = {t.id: t for t in map(Task.model_validate_json, (stage / "tasks.jsonl").read_bytes().splitlines())}
    shop = load_env("shop")
    trajectories = [Trajectory.model_validate_json(x) for x in (stage / "trajectories.jsonl").read_bytes().splitlines()]
    assert len(trajectories) == 3
    for trajectory in trajectories:
        task = tasks[trajectory.task_id]
        assert task.queries.source == "model" and task.persona == "A regular customer."
        assert (task.queries.refined != "") == (preset != "rl")
        assert task.queries.refinement_strength == len(task.queries.refinement_operators)
        group = open_group([shop], task.initial_state, seed=task.seed, naming=task.tool_naming)
        hashes = []
        for call in trajectory.tool_calls():
            group.call(call.tool, call.arguments)
            hashes.append(group.hash())
        assert hashes == trajectory.state_hashes and group.hashes() == trajectory.final_state_hashes
        assert task_reward(task, group, messages=trajectory.messages).total == pytest.approx(1.0)


@pytest.mark.parametrize(("order", "tasks", "wanted"), [
    ("simplest-first", 2, [(1, False), (1, True)]), ("shortest-first", 2, [(1, False), (1, True)]),
    ("shortest-first", 1, [(1, False)]), ("writes-first", 2, [(1, False), (2, False)]),
])
def test_the_order_decides_which_tasks_get_queries_first(tmp_path: Path, order: str, tasks: int,
                                                         wanted: list[tuple[int, bool]]) -> None:
    # shop_tasks(): a one-call write, a one-call read-only lookup and a two-call write. simplest-first gives
    # queries to the two one-call tasks, shortest-first too but the write first, writes-first to the two writes.
    by_id = {t.id: t for t in shop_tasks()}
    assert sorted((len(t.gold_calls()), t.read_only) for t in by_id.values()) == [(1, False), (1, True), (2, False)]
    stage = _run(tmp_path, SynthTrajectoriesConfig(from_run="ci", seed=3, max_tasks=tasks, order=order))
    items = [TrajectoryItem.model_validate_json(p.read_bytes()) for p in (stage / "items").iterdir()]
    got = sorted((len(by_id[item.task_id].gold_calls()), by_id[item.task_id].read_only) for item in items)
    assert got == wanted


def test_same_config_and_answers_give_identical_bytes(tmp_path: Path) -> None:
    config = SynthTrajectoriesConfig(from_run="ci", preset="sft-conv", seed=3)
    first, second = _run(tmp_path / "a", config), _run(tmp_path / "b", config)
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in ARTIFACTS)


def test_a_killed_run_resumes_without_asking_again_for_finished_tasks(tmp_path: Path) -> None:
    config = SynthTrajectoriesConfig(from_run="ci", seed=3)
    whole = _run(tmp_path / "whole", config)
    workspace = Workspace(tmp_path / "killed")
    tasks = shop_tasks()
    write_task_stage(workspace, "ci", tasks)

    def killed_after_two(done: int, total: int, status: str) -> None:
        if done == 2:
            raise KeyboardInterrupt

    oracle = OracleClient(tasks)
    with pytest.raises(KeyboardInterrupt):
        run_synth_trajectories(config, workspace, TrajectoryDeps(writer=oracle, solver=oracle,
                                                                 progress=killed_after_two))
    stage = tmp_path / "killed" / STAGE
    assert len(list((stage / "items").iterdir())) == 2 and not (stage / "manifest.json").exists()
    resumed = OracleClient(tasks)
    run_synth_trajectories(config, workspace, TrajectoryDeps(writer=resumed, solver=resumed))
    fresh = OracleClient(tasks)
    _run(tmp_path / "count", config, fresh)
    assert 0 < resumed.requests < fresh.requests  # only the third task was asked for
    assert all((stage / n).read_bytes() == (whole / n).read_bytes() for n in ARTIFACTS)


def test_an_unfinished_task_stage_is_refused_before_any_model_call(tmp_path: Path) -> None:
    from envfactory.errors import StoreError

    client = ScriptedClient([])
    with pytest.raises(StoreError, match="no finished synth-tasks stage"):
        run_synth_trajectories(SynthTrajectoriesConfig(from_run="nope"), Workspace(tmp_path),
                               TrajectoryDeps(writer=client, solver=client))
    assert client.requests == []


def test_answers_that_break_the_schema_drop_the_task_with_a_reason(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    write_task_stage(workspace, "ci", shop_tasks()[1:2])
    client = ScriptedClient(["not json", '{"persona": 1}'])
    run_synth_trajectories(SynthTrajectoriesConfig(from_run="ci", query_attempts=2), workspace,
                           TrajectoryDeps(writer=client, solver=client))
    stage = tmp_path / STAGE
    funnel = TrajectoryFunnel.model_validate_json((stage / "funnel.json").read_bytes())
    assert funnel.stages["queries"] == 0 and funnel.drops == {"queries": {"query:not_json": 1}}
    item = TrajectoryItem.model_validate_json(next((stage / "items").iterdir()).read_bytes())
    assert item.status == "dropped" and item.task is None and item.query is not None and item.query.problems
    assert (stage / "tasks.jsonl").read_bytes() == b"" and (stage / "trajectories.jsonl").read_bytes() == b""
