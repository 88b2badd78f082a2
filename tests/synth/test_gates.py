"""Task gates (verify.gates): each gate passes a sound task and names itself when a task breaks it."""

from __future__ import annotations

from typing import Any

import pytest

from envfactory.runtime import Environment, load_env, open_group
from envfactory.spec import (
    EnvRef,
    GoldCall,
    OutputContainsCheck,
    RewardSpec,
    ScriptedUser,
    Task,
    TaskOrigin,
    Turn,
)
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.verify.gates import GATES, altered, answer_from_log, contamination_gate, gate_task
from envfactory.verify.rewards import DEFAULT_TERMS

ENV = "zoom_us_roles_members"


@pytest.fixture(scope="module")
def env() -> Environment:
    return load_env(ENV)


def _task(env: Environment, calls: list[tuple[str, dict[str, Any], list[str]]], *, read_only: bool = False,
          text: str = "Please set up the on-call role.", **overrides: Any) -> Task:
    """A task whose gold calls are `calls` (tool, arguments, essential arguments), recorded by running them."""
    group = open_group([env], seed=0, naming="plain")
    initial = group.sessions[ENV].state_json()
    gold = []
    for tool, arguments, essential in calls:
        result = group.call(tool, arguments)
        assert result.error is None, result.error
        gold.append(GoldCall(tool=tool, arguments=arguments, essential_arguments=essential, result=result.output))
    fields: dict[str, Any] = {
        "envs": [EnvRef(name=ENV, version=env.spec.version, content_hash=env.spec.content_hash)],
        "tool_naming": "plain", "initial_state": {ENV: initial},
        "turns": [Turn(user=ScriptedUser(text=text), gold_calls=gold)], "origin": TaskOrigin(source="synth"),
    }
    if read_only:
        fields["reward"] = RewardSpec(final_state="not_scored", calls_weight=0.0, checks_weight=1.0)
    else:
        fields["expected_final_state"] = {ENV: group.sessions[ENV].state_json()}
        fields["expected_final_hash"] = group.hashes()
    fields.update(overrides)
    return Task.create(**fields)


CREATE = ("create_role", {"name": "On-call lead", "description": "Carries the pager"}, ["description", "name"])
UPDATE = ("update_role", {"roleId": "role_0001", "description": "Owns the quarterly report"}, ["description", "roleId"])


def test_a_sound_write_task_passes_every_gate(env: Environment) -> None:
    outcome = gate_task(_task(env, [CREATE, UPDATE]), {ENV: env})
    assert outcome.passed and outcome.gates_run == GATES[:-1]  # contamination runs over many tasks at once
    assert outcome.gold_reward is not None and outcome.gold_reward.total == 1.0


def test_a_tampered_expected_hash_fails_the_gold_replay(env: Environment) -> None:
    task = _task(env, [CREATE], expected_final_hash={ENV: "0" * 64})
    outcome = gate_task(task, {ENV: env})
    assert outcome.failed == "gold_replay" and "hash" in outcome.detail


def test_a_result_that_is_not_reproduced_fails_the_gold_replay(env: Environment) -> None:
    task = _task(env, [CREATE])
    call = task.gold_calls()[0].model_copy(update={"result": {"id": "role_9999"}})
    forged = Task.create(**{**task.model_dump(exclude={"id", "turns"}),
                            "turns": [Turn(user=task.turns[0].user, gold_calls=[call])]})
    outcome = gate_task(forged, {ENV: env})
    assert outcome.failed == "gold_replay" and "recorded" in outcome.detail


def test_a_task_without_an_essential_call_is_refused(env: Environment) -> None:
    outcome = gate_task(_task(env, [(CREATE[0], CREATE[1], [])]), {ENV: env})
    assert outcome.failed == "essential_calls" and "no gold call is essential" in outcome.detail


def test_an_argument_that_changes_nothing_is_not_essential(env: Environment) -> None:
    # role_0005 has one member: its `add_at` is the one fact, with no other member's value beside it
    listing = ("role_members", {"roleId": "role_0005", "page_size": 30}, ["page_size", "roleId"])
    probe = _task(env, [listing], read_only=True)
    result = probe.gold_calls()[0].result
    # the spec's envelope: {"members": [...], "next_page_token": ...}
    assert isinstance(result, dict) and isinstance(result["members"], list) and isinstance(result["members"][0], dict)
    member = result["members"][0]
    # the member's Faker record names 6 other state values; with the default allowance (4) restating them
    # from a read that matches no gold call would lower the reward by itself, so the answer may name them
    # all here and only the argument's effect on what the call returns decides
    roomy = RewardSpec(final_state="not_scored", calls_weight=0.0, checks_weight=1.0, components=[
        t.model_copy(update={"params": {"allowance": 20}}) if t.name == "answered" else t for t in DEFAULT_TERMS])
    task = _task(env, [listing], read_only=True, checks=[OutputContainsCheck(text=str(member["add_at"]))],
                 reward=roomy)
    outcome = gate_task(task, {ENV: env})
    assert outcome.failed == "essential_calls" and "altering page_size" in outcome.detail


def test_a_read_task_scored_on_state_is_refused(env: Environment) -> None:
    """Scored on an unchanged final state, a no-op would look right; the reward refuses to score a read
    task without facts to state (its `answered` factor), so the gold path already fails to score 1."""
    group = open_group([env], seed=0, naming="plain")
    untouched = group.sessions[ENV].state_json()
    task = _task(env, [("get_role_information", {"roleId": "role_0001"}, ["roleId"])],
                 expected_final_state={ENV: untouched}, expected_final_hash=group.hashes())
    outcome = gate_task(task, {ENV: env})
    assert outcome.failed in ("gold_reward", "no_op")


def test_a_read_only_task_needs_the_facts_in_the_answer(env: Environment) -> None:
    task = _task(env, [("get_role_information", {"roleId": "role_0002"}, ["roleId"])], read_only=True,
                 checks=[OutputContainsCheck(text="Stuff apply shake range")])  # its description
    assert gate_task(task, {ENV: env}).passed
    silent = _task(env, [("get_role_information", {"roleId": "role_0002"}, ["roleId"])], read_only=True,
                   checks=[OutputContainsCheck(text="a fact the environment never returns")])
    assert gate_task(silent, {ENV: env}).failed == "gold_reward"


def test_contamination_flags_a_benchmark_text_and_passes_a_template(env: Environment,
                                                                     bench_tasks: list[BenchmarkTask]) -> None:
    copied = next(t for t in bench_tasks if t.benchmark == "bfcl" and len(t.texts[0].split()) > 12)
    ours = _task(env, [CREATE], text="Please do the following, in order: 1. create a roles with name 'On-call lead'.")
    leaked = _task(env, [CREATE], text=copied.texts[0])
    flagged = contamination_gate([ours, leaked], bench_tasks)
    assert list(flagged) == [leaked.id] and copied.id in flagged[leaked.id]
    with pytest.raises(ValueError, match="benchmarks"):
        contamination_gate([ours], [])


def test_alterations_change_the_value_and_answers_restate_results(env: Environment) -> None:
    for value in ("a", 3, 2.5, True, [], [1], {}, {"a": 1}, None):
        assert altered(value) != value
    group = open_group([env], seed=0, naming="plain")
    group.call("get_role_information", {"roleId": "role_0001"})
    group.call("get_role_information", {"roleId": "missing"})
    [message] = answer_from_log(group.log)
    assert "Realigned local product" in message.content  # role_0001's name and "missing" not in message.content
