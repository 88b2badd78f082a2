"""`envfactory eval run` from the command line on our own Task files, with a replayed cassette.

The cassette is recorded from the scripted gold-playing oracle of `run_oracles.py` (`GoldClient`, the
response shapes of the local provider) through `RecordingClient`; replaying it through the CLI must
reproduce the recorded run byte for byte, and `--resume` must then have nothing left to do."""

from __future__ import annotations

import json
from pathlib import Path

from run_oracles import GoldClient
from typer.testing import CliRunner

from envfactory.agent import prompt_hash
from envfactory.cli.app import app
from envfactory.eval.report import EvalReport
from envfactory.eval.run import ATTEMPTS_FILE, EvalConfig, SuiteSelection, run_eval, select_tasks
from envfactory.llm import CassetteWriter, RecordingClient
from envfactory.runtime import load_env
from envfactory.spec import EnvRef, GoldCall, ScriptedUser, Task, Turn
from envfactory.store import RunDir, Workspace


def _write_tasks(path: Path) -> list[Task]:
    env = load_env("tracker")
    ref = EnvRef(name="tracker", version=env.spec.meta.version)
    task_ids = sorted(env.default_state()["collections"]["tasks"])[:2]
    tasks = [
        Task.create(envs=[ref], initial_state={}, turns=[
            Turn(user=ScriptedUser(text=f"Move {task_ids[0]} to review."),
                 gold_calls=[GoldCall(tool="tracker__set_task_status",
                                      arguments={"id": task_ids[0], "status": "in_review"})]),
            Turn(user=ScriptedUser(text=f"And show me {task_ids[1]}."),
                 gold_calls=[GoldCall(tool="tracker__get_task", arguments={"id": task_ids[1]})]),
        ]),
        Task.create(envs=[ref], initial_state={}, turns=[
            # A read-only task is scored by its answer's facts (docs/rewards.md): the oracle states this one.
            Turn(user=ScriptedUser(text="Who are the users?"), gold_calls=[GoldCall(tool="tracker__list_users")],
                 expected_outputs=["Maya Chen"]),
        ]),
    ]
    path.write_text("\n".join(json.dumps(t.model_dump(mode="json")) for t in tasks) + "\n")
    return tasks


def test_cli_replays_a_recorded_run_byte_for_byte(tmp_path: Path) -> None:
    task_file = tmp_path / "tasks.jsonl"
    tasks = _write_tasks(task_file)
    cassette = tmp_path / "cassette.jsonl"
    oracle = RecordingClient(GoldClient(tasks), CassetteWriter(cassette))
    config = EvalConfig(suites=[SuiteSelection(suite="tasks", path=str(task_file))], model=oracle.model_id,
                        agent_prompts=prompt_hash())
    recorded_dir = RunDir.create(Workspace(tmp_path / "recorded").ensure(), config.default_run_id())
    items = select_tasks(config, sandbox=None, workdir=tmp_path / "work")
    recorded = run_eval(config, oracle, recorded_dir, items)
    assert recorded.overall.pass_at_1 == 1.0

    args = ["eval", "run", "--task-file", str(task_file), "--llm", f"replay:{cassette}", "-w", str(tmp_path / "ws"),
            "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = EvalReport.model_validate_json(result.stdout)
    assert report == recorded  # same config => same run id, same metrics
    replayed_dir = tmp_path / "ws" / "runs" / recorded.run_id
    for name in (ATTEMPTS_FILE, "config.json", "report.json", "report.md", "by_suite.svg"):
        assert (replayed_dir / name).read_bytes() == (recorded_dir.path / name).read_bytes(), name

    again = CliRunner().invoke(app, args)  # the run exists: refused without --resume
    assert again.exit_code == 1 and "--resume" in again.output
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0 and EvalReport.model_validate_json(resumed.stdout) == recorded
