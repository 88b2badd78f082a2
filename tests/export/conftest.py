"""Fixtures of the export tests: the recorded tasks and gold trajectories (made by running the runtime,
see fixtures/make_fixtures.py) and one export of them through the real stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.cli._export_stage import EXPORT_MANIFEST, ExportDeps, run_export
from envfactory.spec import StageManifest, Task, Trajectory
from envfactory.spec.dataset import ExportConfig, ExportManifest, ExportStageConfig, SplitConfig
from envfactory.store import Workspace

FIXTURES = Path(__file__).parent / "fixtures"
TASKS = FIXTURES / "tasks.jsonl"
TRAJECTORIES = FIXTURES / "trajectories.jsonl"


def load_tasks() -> list[Task]:
    return [Task.model_validate_json(line) for line in TASKS.read_bytes().splitlines() if line.strip()]


def load_trajectories() -> list[Trajectory]:
    return [Trajectory.model_validate_json(line) for line in TRAJECTORIES.read_bytes().splitlines() if line.strip()]


def stage_config(run_id: str = "fixture-run", **export: object) -> ExportStageConfig:
    settings = {"splits": SplitConfig(seed=3, validation_fraction=0.2, test_fraction=0.2,
                                      heldout_envs=["tracker"]), **export}
    return ExportStageConfig(run_id=run_id, tasks_path=str(TASKS), trajectories_path=str(TRAJECTORIES),
                             export=ExportConfig(**settings))  # type: ignore[arg-type]


class Exported:
    def __init__(self, root: Path, stage: StageManifest) -> None:
        self.root = root
        self.stage = stage
        self.manifest = ExportManifest.model_validate_json((root / EXPORT_MANIFEST).read_bytes())


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The fixture run exported in every format, without rendering checks (see test_export_render.py)."""
    workspace = Workspace(tmp_path_factory.mktemp("ws"))
    stage = run_export(stage_config(), workspace, ExportDeps())
    return Exported(workspace.runs_dir / "fixture-run" / "export", stage)
