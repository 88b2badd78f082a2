"""Killing the HTTP env server or a sandbox worker in the middle of real GRPO rollouts (TRL's GRPOTrainer,
its tool-calling loop and reward functions, a tiny model whose *generation* is scripted so that every
rollout makes its task's gold call): the rollouts are retried and scored, or failed with a reason and
left unscored (TRL gives them no advantage) — never a silent zero."""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

trl = pytest.importorskip("trl", reason="the train extra is not installed: pip install 'envfactory[train]'")

from train_helpers import KillableServer  # noqa: E402

from envfactory.runtime import Environment, load_env, open_group, qualified_name  # noqa: E402
from envfactory.runtime.loader import bundled_envs_root  # noqa: E402
from envfactory.runtime.sandbox import SandboxBackend, SandboxPool  # noqa: E402
from envfactory.spec import EnvRef, GoldCall, ScriptedUser, Task, Turn  # noqa: E402
from envfactory.spec.training import GRPORunConfig, RolloutRecord, TrainStepRecord  # noqa: E402
from envfactory.store import StageDir, Workspace  # noqa: E402
from envfactory.train.data import load_tasks  # noqa: E402
from envfactory.train.sessions import HttpSessions, LocalSessions, RetryPolicy  # noqa: E402
from envfactory.train.trl_runner import TrainDeps, run_grpo  # noqa: E402

Script = Callable[[str, int], str]


def scripted_trainer(script: Script) -> type:
    """GRPOTrainer whose generation is `script(prompt text, turn)`; everything else is TRL's."""

    class Scripted(trl.GRPOTrainer):  # type: ignore[misc]
        def _generate_single_turn(self, prompt_ids: list[list[int]], *args: Any, **kwargs: Any) -> Any:
            out = []
            for ids in prompt_ids:
                text = self._tokenizer.decode(ids)
                turn = text.count("<tool_response>")
                out.append(self._tokenizer.encode(script(text, turn), add_special_tokens=False))
            return out, None

    return Scripted


def gold_call_script(on_turn: Callable[[int], None]) -> Script:
    """Answer every user request with its gold call (read from the request's words), then 'Done.'."""

    def script(text: str, turn: int) -> str:
        on_turn(turn)
        if turn:
            return "Done.<|im_end|>"
        request = text.rsplit("<|im_start|>user\n", 1)[1]
        if match := re.search(r"Assign task (\S+) .* to user (\S+)\.", request):
            call = f'{{"name": "tracker__assign_task", "arguments": {{"id": "{match[1]}", "assignee_id": "{match[2]}"}}}}'
        elif match := re.search(r"Cancel event (\S+)\.", request):
            call = f'{{"name": "calendar__cancel_event", "arguments": {{"event_id": "{match[1]}"}}}}'
        else:
            raise AssertionError(f"unexpected request {request!r}")
        return f"<tool_call>\n{call}\n</tool_call><|im_end|>"

    return script


def _config(tasks: Path, **extra: Any) -> GRPORunConfig:
    return GRPORunConfig.model_validate({"tasks": str(tasks), "max_steps": 1, "per_device_train_batch_size": 4,
                                         "num_generations": 2, "max_completion_length": 512, "learning_rate": 1e-4,
                                         "max_tool_calling_iterations": 2, **extra})


def _logs(stage: StageDir) -> tuple[list[TrainStepRecord], list[RolloutRecord]]:
    steps = [TrainStepRecord.model_validate_json(x) for x in (stage.path / "logs/steps.jsonl").read_text().splitlines()]
    rollouts = [RolloutRecord.model_validate_json(x) for x in (stage.path / "logs/rollouts.jsonl").read_text().splitlines()]
    return steps, rollouts


@pytest.fixture
def assign_tasks(data: Path, tmp_path: Path) -> Path:
    tasks = [t for t in load_tasks(data / "tasks-train.jsonl") if t.origin.source_id == "train-demo:assign_task"][:2]
    path = tmp_path / "assign.jsonl"
    path.write_text("".join(t.model_dump_json() + "\n" for t in tasks))
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KillableServer]:
    srv = KillableServer(["tracker"], tmp_path).start()
    yield srv
    srv.stop()


def _run(tiny: Path, tmp_path: Path, config: GRPORunConfig, sessions: Any, script: Script,
         loader: Any = load_env) -> StageDir:
    stage = StageDir.open(Workspace(tmp_path / "ws"), "kills", "grpo")
    config = config.model_copy(update={"model": str(tiny)})
    run_grpo(config, stage, TrainDeps(sessions=sessions, trainer_cls=scripted_trainer(script), env_loader=loader))
    return stage


def test_server_killed_and_restarted_between_calls_and_reward_is_retried(tiny: Path, tmp_path: Path,
                                                                         assign_tasks: Path, server: KillableServer) -> None:
    def on_turn(turn: int) -> None:
        if turn == 1 and server.starts == 1:  # tools ran, rewards not yet computed: the server crashes
            server.kill()
            server.start()

    sessions = HttpSessions(server.url, policy=RetryPolicy(retries=4, backoff_s=0.2))
    stage = _run(tiny, tmp_path, _config(assign_tasks), sessions, gold_call_script(on_turn))
    steps, rollouts = _logs(stage)
    assert server.starts == 2 and len(rollouts) == 4
    assert all(r.failure is None and r.reward is not None and r.reward.total == pytest.approx(1.0) for r in rollouts)
    assert all(r.retries >= 1 and r.calls == 1 for r in rollouts)  # each session recreated and replayed
    assert steps[0].reward == pytest.approx(1.0) and steps[0].failed_rollouts == 0


def test_server_killed_for_good_fails_rollouts_with_reasons_and_no_reward(tiny: Path, tmp_path: Path,
                                                                          assign_tasks: Path, server: KillableServer) -> None:
    def on_turn(turn: int) -> None:
        if turn == 1:
            server.kill()

    sessions = HttpSessions(server.url, policy=RetryPolicy(retries=1, backoff_s=0.05))
    stage = _run(tiny, tmp_path, _config(assign_tasks), sessions, gold_call_script(on_turn))
    steps, rollouts = _logs(stage)
    assert len(rollouts) == 4
    for record in rollouts:
        assert record.reward is None and record.failure and "unreachable" in record.failure
    assert steps[0].failed_rollouts == 4
    assert steps[0].reward is None  # TRL's reward of the step is NaN (nothing scored), never 0
    assert "rewards/envfactory_reward/mean" not in steps[0].metrics


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    target = tmp_path_factory.mktemp("envs") / "calendar"
    shutil.copytree(bundled_envs_root() / "calendar", target)
    with SandboxPool(max_workers=1) as pool:
        yield load_env(target, sandbox=pool)


def test_sandbox_worker_killed_before_the_tool_runs_is_retried(tiny: Path, tmp_path: Path,
                                                               sandboxed: Environment) -> None:
    event_ids = sorted(sandboxed.default_state()["events"])[:2]
    name = qualified_name(sandboxed.name, "cancel_event")
    tasks = []
    for event_id in event_ids:
        with open_group([sandboxed], seed=0) as group:
            assert group.call(name, {"event_id": event_id}).error is None
            final = group.sessions[sandboxed.name].state_json()
        tasks.append(Task.create(
            envs=[EnvRef(name=sandboxed.name, version=sandboxed.spec.meta.version)], initial_state={},
            turns=[Turn(user=ScriptedUser(text=f"Cancel event {event_id}."), available_tools=[name],
                        gold_calls=[GoldCall(tool=name, arguments={"event_id": event_id})])],
            expected_final_state={sandboxed.name: final}))
    path = tmp_path / "cancel.jsonl"
    path.write_text("".join(t.model_dump_json() + "\n" for t in tasks))
    kills: list[int] = []

    def on_turn(turn: int) -> None:
        backend = sandboxed.backend
        assert isinstance(backend, SandboxBackend)
        if turn == 0 and not kills and backend.worker_pid is not None:  # sessions open, no call yet
            kills.append(backend.worker_pid)
            os.kill(backend.worker_pid, signal.SIGKILL)

    sessions = LocalSessions(loader=lambda _: sandboxed, policy=RetryPolicy(retries=2, backoff_s=0.05))
    stage = _run(tiny, tmp_path, _config(path), sessions, gold_call_script(on_turn), loader=lambda _: sandboxed)
    steps, rollouts = _logs(stage)
    assert kills and len(rollouts) == 4
    assert all(r.failure is None and r.reward is not None and r.reward.total == pytest.approx(1.0) for r in rollouts)
    assert sum(r.retries for r in rollouts) >= 1  # the call that met the dead worker was sent again
    assert steps[0].failed_rollouts == 0 and steps[0].reward == pytest.approx(1.0)
