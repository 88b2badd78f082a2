"""`envfactory synth tasks`: flags map to the stage's config, the funnel is printed, --resume continues."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from synth_helpers import QUIET_BENCHMARK
from typer.testing import CliRunner

from envfactory.cli import synth as synth_cli
from envfactory.cli.app import app


@pytest.fixture(autouse=True)
def quiet_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads BFCL and τ² from their packages (tests/synth/test_fixture.py runs with them)."""
    monkeypatch.setattr(synth_cli, "_benchmark_tasks", lambda: list(QUIET_BENCHMARK))


def test_synth_tasks_writes_the_stage_and_prints_the_funnel(tmp_path: Path) -> None:
    args = ["synth", "tasks", "--env", "zoom_us_roles_members", "--tasks", "3", "--seed", "2", "--batch-size", "8",
            "--workspace", str(tmp_path), "--run-id", "cli"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "synth tasks funnel" in result.output and "complete: 3 tasks" in result.output
    stage = tmp_path / "runs" / "cli" / "synth-tasks"
    assert len((stage / "tasks.jsonl").read_bytes().splitlines()) == 3
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "--resume" in again.output
    resumed = CliRunner().invoke(app, [*args, "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    shown = orjson.loads(resumed.stdout)
    assert shown["funnel"]["kept"]["tasks"] == 3 and shown["manifest"]["timings"]["batches_reused"] >= 1


def test_synth_tasks_needs_environments() -> None:
    result = CliRunner().invoke(app, ["synth", "tasks", "--tasks", "2"])
    assert result.exit_code == 1 and "--library or --env" in result.output
