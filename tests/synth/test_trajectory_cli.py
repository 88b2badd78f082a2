"""`envfactory synth trajectories` through the CLI: bad options and a missing task stage are clear errors
before any model is loaded; an empty replay cassette is refused with a clear error, not a traceback."""

from __future__ import annotations

from pathlib import Path

from traj_fixtures import shop_tasks, write_task_stage
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.store import Workspace


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["synth", "trajectories", *args])
    return result.exit_code, result.output


def test_k_above_one_at_temperature_zero_is_refused(tmp_path: Path) -> None:
    code, output = _invoke("--from", "r", "--k", "2", "-w", str(tmp_path))
    assert code != 0 and "temperature" in output


def test_a_run_without_a_task_stage_is_a_clear_error(tmp_path: Path) -> None:
    cassette = tmp_path / "empty.jsonl"
    cassette.write_text("")
    code, output = _invoke("--from", "nothing", "--llm", f"replay:{cassette}", "-w", str(tmp_path))
    assert code != 0 and "no finished synth-tasks stage" in output and "Traceback" not in output


def test_an_empty_cassette_is_a_clear_error(tmp_path: Path) -> None:
    write_task_stage(Workspace(tmp_path), "ci", shop_tasks()[1:2])
    cassette = tmp_path / "empty.jsonl"
    cassette.write_text("")
    code, output = _invoke("--from", "ci", "--llm", f"replay:{cassette}", "-w", str(tmp_path))
    assert code != 0 and "is empty" in output and "Traceback" not in output
