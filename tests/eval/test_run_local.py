"""`envfactory eval run` end to end with the real bundled local model (qwen2.5-coder-0.5b, CPU) on two of
our own tracker tasks: the command runs, never crashes on what the model writes, and leaves a complete
run directory. Slow: a few minutes of CPU on a loaded machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.eval.report import EvalReport
from envfactory.eval.run import ATTEMPTS_FILE, read_attempts
from envfactory.runtime import load_env
from envfactory.spec import EnvRef, GoldCall, ScriptedUser, Task, Turn


def _tasks(path: Path) -> None:
    env = load_env("tracker")
    ref = EnvRef(name="tracker", version=env.spec.meta.version)
    task_id = sorted(env.default_state()["collections"]["tasks"])[0]
    tasks = [
        Task.create(envs=[ref], initial_state={}, turns=[Turn(
            user=ScriptedUser(text=f"Move task {task_id} to review (status in_review)."),
            gold_calls=[GoldCall(tool="tracker__set_task_status", arguments={"id": task_id, "status": "in_review"})],
        )]),
        Task.create(envs=[ref], initial_state={}, turns=[Turn(
            user=ScriptedUser(text="Show me the details of user usr_002."),
            gold_calls=[GoldCall(tool="tracker__list_users", arguments={})],
        )]),
    ]
    path.write_text("\n".join(json.dumps(t.model_dump(mode="json")) for t in tasks) + "\n")


@pytest.mark.slow
def test_eval_run_with_the_local_model(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    _tasks(tasks)
    result = CliRunner().invoke(app, [
        "eval", "run", "--task-file", str(tasks), "--llm", "local", "--max-steps", "2",
        "-w", str(tmp_path / "ws"), "--run-id", "local", "--no-cache", "--json",
    ])
    assert result.exit_code == 0, result.output
    report = EvalReport.model_validate_json(result.stdout)
    assert report.overall.tasks == 2 and report.overall.attempts == 2
    assert report.model.startswith("local/qwen2.5-coder-0.5b")
    run_dir = tmp_path / "ws" / "runs" / "local"
    records = read_attempts(run_dir / ATTEMPTS_FILE)
    assert len(records) == 2
    for record in records:
        assert 0.0 <= record.reward.total <= 1.0
        assert record.passed == (record.reward.total >= 1.0 - 1e-9)
        messages = record.trajectory.messages
        assert messages[0].role == "user" and len(messages) >= 2
        # every step either produced a message or is accounted for as a failure with its reason
        assert record.llm_calls >= 1 and all(f.reason for f in record.failures)
    assert (run_dir / "report.md").is_file() and (run_dir / "manifest.json").is_file()
