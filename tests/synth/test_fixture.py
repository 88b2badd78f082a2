"""A small seeded synth-tasks run, checked byte for byte against the committed fixture.

The fixture (`tests/synth/fixtures/ci-run/`) holds the artifacts of `SMALL_ENVS`, 12 tasks, seed 11,
against the installed BFCL and τ² task texts. A change that alters any artifact (the library, grounding,
binding, the task format, rewards) shows here; when the change is intended, regenerate the fixture with
`python tests/synth/test_fixture.py --write` and review the diff.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from synth_helpers import SMALL_ENVS

from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.synth import SynthTasksConfig
from envfactory.store import Workspace
from envfactory.synth import SynthDeps, run_synth_tasks

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ci-run"
ARTIFACTS = ("tasks.jsonl", "trajectories.jsonl", "gates.jsonl", "drops.jsonl", "funnel.json")
CONFIG = SynthTasksConfig(envs=list(SMALL_ENVS), tasks=12, seed=11, batch_size=16)


def _run(root: Path, benchmark: list[BenchmarkTask]) -> Path:
    run_synth_tasks(CONFIG, Workspace(root), SynthDeps(run_id="ci", benchmark_tasks=benchmark))
    return root / "runs" / "ci" / "synth-tasks"


def test_the_seeded_ci_run_matches_the_committed_fixture(tmp_path: Path, bench_tasks: list[BenchmarkTask]) -> None:
    stage = _run(tmp_path, bench_tasks)
    for name in ARTIFACTS:
        made, committed = (stage / name).read_bytes(), (FIXTURE / name).read_bytes()
        assert made == committed, f"{name} differs from the fixture; regenerate with " \
                                  "`python tests/synth/test_fixture.py --write` if the change is intended"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    from envfactory.resources.benchmarks import benchmark_tasks

    with tempfile.TemporaryDirectory() as tmp:
        made = _run(Path(tmp), benchmark_tasks())
        FIXTURE.mkdir(parents=True, exist_ok=True)
        for artifact in ARTIFACTS:
            (FIXTURE / artifact).write_bytes((made / artifact).read_bytes())
    print(f"wrote {FIXTURE}")
