"""One run config on the serial path, the local process pool and a local Ray cluster (2 CPUs): every
artifact of every stage is byte-identical. The per-environment tool graphs are built as work items on the
executor's workers, and task synthesis samples its chains from those graphs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from envfactory.cli._run_stages import stage_function
from envfactory.cli.run import execute
from envfactory.spec import RunConfig, RunManifest
from envfactory.store import Workspace

CONFIG = {
    "name": "spread", "seed": 11,
    "stages": {"library": {"source": "shipped", "envs": ["books", "blogger_posts", "drive", "braket_jobs", "vault"]},
               "synth_tasks": {"tasks": 8, "batch_size": 8},
               "synth_trajectories": {"enabled": False}, "export": {"enabled": False}},
}
# Ray is an optional extra (in the test extras, so CI runs all three)
OTHERS = ["pool", *(["ray"] if importlib.util.find_spec("ray") is not None else [])]


def _artifacts(tmp_path: Path, kind: str) -> tuple[RunManifest, dict[str, bytes]]:
    config = RunConfig.model_validate({**CONFIG, "executor": {"kind": kind, "workers": 2}})
    summary = execute(config, Workspace(tmp_path / kind))
    assert summary.status == "complete", summary.stages
    run_dir = tmp_path / kind / "runs" / summary.run_id
    manifest = RunManifest.model_validate_json((run_dir / "manifest.json").read_bytes())
    return manifest, {path: (run_dir / path).read_bytes() for path in manifest.artifacts}


@pytest.mark.slow
@pytest.mark.skipif(stage_function("synth-tasks") is None, reason="synth tasks has not landed")
def test_serial_pool_and_ray_runs_write_the_same_bytes(tmp_path: Path) -> None:
    baseline, baseline_files = _artifacts(tmp_path, "serial")
    assert "synth-tasks/tasks.jsonl" in baseline.artifacts and "graph/graphs.jsonl" in baseline.artifacts
    assert baseline_files["synth-tasks/tasks.jsonl"].count(b"\n") == 8
    for kind in OTHERS:
        manifest, files = _artifacts(tmp_path, kind)
        assert manifest.artifacts == baseline.artifacts, kind
        assert files == baseline_files, kind
        assert manifest.config["executor"]["kind"] == kind
