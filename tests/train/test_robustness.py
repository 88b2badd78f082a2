"""Killing a sandbox worker or the HTTP env server in the middle of rollouts: the rollout is retried, or
it fails with a reason and no reward — never a silent zero."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from train_helpers import KillableServer, trl_tools

from envfactory.runtime import Environment, load_env, open_group, qualified_name
from envfactory.runtime.loader import bundled_envs_root
from envfactory.runtime.sandbox import SandboxBackend, SandboxPool
from envfactory.spec import EnvRef, GoldCall, ScriptedUser, Task, Turn
from envfactory.train.data import gold_tasks, grpo_rows
from envfactory.train.sessions import HttpSessions, LocalSessions, RetryPolicy, SessionRefusedError
from envfactory.train.trl_env import RolloutRecorder, environment_class, reward_functions
from envfactory.train.trl_runner import task_tool_specs

FAST = RetryPolicy(retries=2, backoff_s=0.05)


# -- the HTTP env server dies ------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KillableServer]:
    srv = KillableServer(["tracker"], tmp_path).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def assign_task() -> Task:
    return next(t for t in gold_tasks(load_env("tracker")) if t.origin.source_id == "train-demo:assign_task")


def _env_class(task: Task, sessions: object) -> type:
    env = load_env("tracker")
    return environment_class(task_tool_specs([task], lambda _: env), sessions)  # type: ignore[arg-type]


def test_server_killed_and_restarted_mid_rollout_is_recovered_by_replay(server: KillableServer, assign_task: Task) -> None:
    sessions = HttpSessions(server.url, policy=RetryPolicy(retries=6, backoff_s=0.3))
    cls = _env_class(assign_task, sessions)
    row = grpo_rows([assign_task])[0]
    environment = cls()
    environment.reset(**row)
    tools = trl_tools(environment)
    gold = assign_task.gold_calls()[0]
    tools["tracker__get_task"](id=gold.arguments["id"])
    server.kill()
    server.start()  # a fresh server: the session is gone; the rollout recreates and replays it
    tools[gold.tool](**gold.arguments)
    recorder = RolloutRecorder(step=3)
    funcs, _ = reward_functions(recorder)
    assert funcs[0](completions=[[]], environments=[environment]) == [pytest.approx(1.0)]
    record = recorder.records[0]
    assert record.failure is None and record.retries >= 1 and record.calls == 2
    sessions.close()


def test_server_killed_for_good_fails_the_rollout_with_a_reason_and_no_reward(server: KillableServer,
                                                                            assign_task: Task) -> None:
    sessions = HttpSessions(server.url, policy=FAST)
    cls = _env_class(assign_task, sessions)
    row = grpo_rows([assign_task])[0]
    alive, doomed = cls(), cls()
    alive.reset(**row)
    doomed.reset(**row)
    gold = assign_task.gold_calls()[0]
    trl_tools(alive)[gold.tool](**gold.arguments)
    scored = reward_functions()[0][0](completions=[[]], environments=[alive])
    assert scored == [pytest.approx(1.0)]
    server.kill()
    text = trl_tools(doomed)[gold.tool](**gold.arguments)
    assert "rollout failed" in text and "unreachable" in text
    recorder = RolloutRecorder(step=5)
    funcs, _ = reward_functions(recorder)
    results = [f(completions=[[], []], environments=[alive, doomed]) for f in funcs]
    assert all(column[1] is None for column in results)  # every reward function: not scored
    assert results[0][0] == pytest.approx(1.0)  # the finished rollout keeps its computed reward
    failed = [r for r in recorder.records if r.failure]
    assert len(failed) == 1 and failed[0].reward is None and "unreachable" in failed[0].failure
    sessions.close()


def test_a_server_that_refuses_sessions_names_the_fix(tmp_path: Path, assign_task: Task) -> None:
    with pytest.raises(SessionRefusedError, match="envfactory serve --http"):
        HttpSessions("http://127.0.0.1:9", policy=FAST).check()
    srv = KillableServer(["shop"], tmp_path).start()  # serves shop only: a tracker task is refused
    try:
        with pytest.raises(SessionRefusedError, match="refused a session"):
            HttpSessions(srv.url, policy=FAST).open(assign_task, 0)
    finally:
        srv.stop()


# -- a sandbox worker dies ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    target = tmp_path_factory.mktemp("envs") / "calendar"
    shutil.copytree(bundled_envs_root() / "calendar", target)  # a copy is untrusted: it runs in a worker
    with SandboxPool(max_workers=1) as pool:
        yield load_env(target, sandbox=pool)


def _cancel_task(env: Environment) -> Task:
    events = env.default_state()["events"]
    event_id = sorted(events)[0]
    name = qualified_name(env.name, "cancel_event")
    with open_group([env], seed=0) as group:
        assert group.call(name, {"event_id": event_id}).error is None
        final = group.sessions[env.name].state_json()
    return Task.create(envs=[EnvRef(name=env.name, version=env.spec.meta.version)], initial_state={}, turns=[
        Turn(user=ScriptedUser(text=f"Cancel event {event_id}."), available_tools=[name],
             gold_calls=[GoldCall(tool=name, arguments={"event_id": event_id})])],
        expected_final_state={env.name: final})


def _kill_worker(env: Environment) -> None:
    backend = env.backend
    assert isinstance(backend, SandboxBackend) and backend.worker_pid is not None
    os.kill(backend.worker_pid, signal.SIGKILL)


@pytest.mark.parametrize("retries", [2, 0])
def test_sandbox_worker_killed_mid_rollout(sandboxed: Environment, retries: int) -> None:
    task = _cancel_task(sandboxed)
    sessions = LocalSessions(loader=lambda _: sandboxed, policy=RetryPolicy(retries=retries, backoff_s=0.05))
    cls = environment_class(task_tool_specs([task], lambda _: sandboxed), sessions)
    environment = cls()
    environment.reset(**grpo_rows([task])[0])
    event_id = task.gold_calls()[0].arguments["event_id"]
    _kill_worker(sandboxed)
    text = trl_tools(environment)["calendar__cancel_event"](event_id=event_id)
    recorder = RolloutRecorder(step=1)
    funcs, _ = reward_functions(recorder)
    totals = funcs[0](completions=[[]], environments=[environment])
    record = recorder.records[0]
    if retries:  # the worker was replaced, the session rebuilt, the call sent again
        assert '"cancelled"' in text and totals == [pytest.approx(1.0)]
        assert record.retries == 1 and record.failure is None
    else:  # no retry allowed: failed with the sandbox's reason, and not scored
        assert totals == [None] and record.reward is None
        assert record.failure is not None and "sandbox_failure" in record.failure
