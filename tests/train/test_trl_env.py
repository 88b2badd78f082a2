"""The TRL environment objects and reward functions, driven the way GRPOTrainer drives them: one object
per rollout, `reset(**row)`, tools called by name from the bound public methods, then every reward
function called with `environments=`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import trl_tools

from envfactory.runtime import load_env
from envfactory.spec import Task
from envfactory.train.data import gold_tasks, grpo_rows, load_tasks, offered_tools, split_of
from envfactory.train.sessions import LocalSessions
from envfactory.train.trl_env import COMPONENTS, RolloutRecorder, environment_class, reward_functions
from envfactory.train.trl_runner import task_tool_specs


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return gold_tasks(load_env("tracker"))


def _rollout(cls: type, row: dict[str, object], calls: list[tuple[str, dict[str, object]]]) -> object:
    environment = cls()
    assert environment.reset(**row) is None
    tools = trl_tools(environment)
    for name, arguments in calls:
        tools[name](**arguments)
    return environment


def test_gold_tasks_are_grounded_and_split(tasks: list[Task]) -> None:
    assert len(tasks) >= 30
    kinds = {t.origin.source_id for t in tasks}
    assert kinds == {"train-demo:set_task_status", "train-demo:assign_task", "train-demo:add_comment"}
    splits = [split_of(t, 0.25, 0) for t in tasks]
    assert 0 < splits.count("heldout") < len(tasks)
    assert splits == [split_of(t, 0.25, 0) for t in tasks]  # seeded, stable


def test_rewards_come_from_the_session_final_state_and_calls(tasks: list[Task]) -> None:
    task = next(t for t in tasks if t.origin.source_id == "train-demo:assign_task")
    envs = {"tracker": load_env("tracker")}
    specs = task_tool_specs([task], lambda name: envs[name])
    assert [s.name for s in specs] == offered_tools([task], envs)
    cls = environment_class(specs, LocalSessions())
    row = grpo_rows([task])[0]
    gold = task.gold_calls()[0]
    wrong_user = "usr_001" if gold.arguments["assignee_id"] != "usr_001" else "usr_002"
    rollouts = [
        _rollout(cls, row, [(gold.tool, dict(gold.arguments))]),                       # does the task
        _rollout(cls, row, [(gold.tool, {**gold.arguments, "assignee_id": wrong_user})]),  # a wrong write
        _rollout(cls, row, [("tracker__get_task", {"id": gold.arguments["id"]})]),       # reads only
        _rollout(cls, row, [(gold.tool, {"id": "tsk_9999", "assignee_id": wrong_user})]),  # a refused call
    ]
    recorder = RolloutRecorder(step=1)
    funcs, weights = reward_functions(recorder)
    assert weights == [1.0] + [0.0] * len(COMPONENTS)
    completions = [[{"role": "assistant", "content": "Done."}]] * len(rollouts)
    columns = {k: [row[k]] * len(rollouts) for k in row}
    results = [f(prompts=[row["prompt"]] * len(rollouts), completions=completions, environments=rollouts, **columns)
               for f in funcs]
    totals = results[0]
    assert totals[0] == pytest.approx(1.0)
    assert 0.0 <= totals[1] < 0.5  # the wrong assignee changed state but not the expected way
    assert totals[2] == 0.0 and totals[3] == 0.0  # computed zeros: the episode changed nothing
    by_name = dict(zip(COMPONENTS, results[1:], strict=True))
    assert by_name["final_state"][0] == 1.0 and by_name["gold_calls"][0] == 1.0
    assert by_name["changed_state"][2] == 0.0
    assert by_name["malformed_calls"][3] == 1.0  # not_found is the agent's error, not a malformed call
    assert len(recorder.records) == 4 and all(r.failure is None and r.reward is not None for r in recorder.records)
    assert [r.reward.total for r in recorder.records if r.reward] == totals


def test_rollouts_are_isolated_and_reset_opens_a_fresh_session(tasks: list[Task]) -> None:
    task = next(t for t in tasks if t.origin.source_id == "train-demo:set_task_status")
    envs = {"tracker": load_env("tracker")}
    cls = environment_class(task_tool_specs([task], lambda n: envs[n]), LocalSessions())
    row = grpo_rows([task])[0]
    gold = task.gold_calls()[0]
    first = _rollout(cls, row, [(gold.tool, dict(gold.arguments))])
    second = _rollout(cls, row, [])
    funcs, _ = reward_functions()
    completions = [[], []]
    assert funcs[0](completions=completions, environments=[first, second]) == [1.0, 0.0]
    text = trl_tools(first)["tracker__get_task"](id=gold.arguments["id"])
    assert json.loads(text)["status"] == gold.arguments["status"]
    first.reset(**row)  # TRL reuses objects across batches: the state starts over
    assert json.loads(trl_tools(first)["tracker__get_task"](id=gold.arguments["id"]))["status"] != gold.arguments["status"]


def test_a_row_without_a_task_is_refused(tasks: list[Task]) -> None:
    envs = {"tracker": load_env("tracker")}
    cls = environment_class(task_tool_specs(tasks[:1], lambda n: envs[n]), LocalSessions())
    with pytest.raises(ValueError, match="`task` column"):
        cls().reset(prompt=[{"role": "user", "content": "hi"}])


def test_task_files_round_trip(tmp_path: Path, tasks: list[Task]) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(t.model_dump_json() + "\n" for t in tasks[:3]))
    assert load_tasks(path) == tasks[:3]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(Exception, match="not a Task file"):
        load_tasks(tmp_path / "bad.json")
