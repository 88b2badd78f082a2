"""A killed `envfactory run` resumes with nothing lost or duplicated: the run is killed (SIGKILL) in the
middle of task synthesis, resumed with `--resume`, and its artifacts are byte-identical to those of a run
that was never interrupted. Runs only where the synthesis stage has landed (`synth.run_synth_tasks`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.cli._run_stages import stage_function
from envfactory.cli.app import app
from envfactory.spec import RunManifest, StageManifest

CONFIG = {
    "name": "killed", "seed": 5, "executor": {"kind": "serial"},
    "stages": {"library": {"source": "shipped", "envs": ["books", "blogger_posts", "drive", "braket_jobs"]},
               "synth_tasks": {"tasks": 14, "batch_size": 4},
               "synth_trajectories": {"enabled": False}, "export": {"enabled": False}},
}

pytestmark = pytest.mark.skipif(stage_function("synth-tasks") is None, reason="synth tasks has not landed")


def _run(config: Path, workspace: Path, *extra: str) -> None:
    result = CliRunner().invoke(app, ["run", "--config", str(config), "-w", str(workspace), "--json", *extra])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_run_killed_mid_synthesis_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps(CONFIG))
    _run(config, tmp_path / "whole")
    (whole_id,) = os.listdir(tmp_path / "whole" / "runs")
    whole = tmp_path / "whole" / "runs" / whole_id

    killed_ws = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-m", "envfactory", "run", "--config", str(config), "-w", str(killed_ws)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    parts = killed_ws / "runs" / whole_id / "synth-tasks" / "parts"
    deadline = time.monotonic() + 300
    while not (parts.is_dir() and len(list(parts.glob("batch-*.json"))) >= 2):
        assert child.poll() is None, "the run ended before it could be killed mid-synthesis"
        assert time.monotonic() < deadline, "synthesis wrote no batch within 5 minutes"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    stage = killed_ws / "runs" / whole_id / "synth-tasks"
    assert not (stage / "manifest.json").exists(), "killed after synthesis finished: nothing was interrupted"
    batches_before = len(list(parts.glob("batch-*.json")))

    _run(config, killed_ws, "--resume")
    resumed = killed_ws / "runs" / whole_id
    manifest = StageManifest.model_validate_json((resumed / "synth-tasks" / "manifest.json").read_bytes())
    assert manifest.timings["batches_reused"] >= batches_before  # the finished batches were not redone
    for name in ("tasks.jsonl", "trajectories.jsonl", "drops.jsonl", "funnel.json"):
        assert (resumed / "synth-tasks" / name).read_bytes() == (whole / "synth-tasks" / name).read_bytes(), name
    tasks = [json.loads(line)["id"] for line in (resumed / "synth-tasks" / "tasks.jsonl").read_text().splitlines()]
    assert len(tasks) == len(set(tasks)) == 14  # nothing duplicated, nothing lost
    a = RunManifest.model_validate_json((resumed / "manifest.json").read_bytes())
    b = RunManifest.model_validate_json((whole / "manifest.json").read_bytes())
    assert a.artifacts == b.artifacts and a.artifacts
