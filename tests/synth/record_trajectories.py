"""Record the trajectory stage with the bundled 0.5B model on the three `shop` tasks of `traj_fixtures`
(the replay test `test_trajectory_replay.py` checks the stage against this recording).

Run from the repository root with the local model installed (minutes on 2 cores):

    python tests/synth/record_trajectories.py

Writes `tests/synth/fixtures/traj-qwen0.5b/`: `cassette.jsonl.gz` (every answer, canonical) and the
stage's `funnel.json` and `items/*.json` as the live run wrote them.
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from traj_fixtures import shop_tasks, write_task_stage  # noqa: E402

from envfactory.cli.eval import parse_llm  # noqa: E402
from envfactory.llm import make_client  # noqa: E402
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig  # noqa: E402
from envfactory.store import Workspace  # noqa: E402
from envfactory.synth.trajectories import TrajectoryDeps, run_synth_trajectories  # noqa: E402

TARGET = HERE / "fixtures" / "traj-qwen0.5b"
CONFIG = SynthTrajectoriesConfig(from_run="ci", preset="sft-single", seed=5)


def main() -> None:
    """Record the run into `TARGET` (replacing an earlier recording)."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cassette = root / "cassette.jsonl"
        client = make_client(parse_llm("local", None, None, cassette, None))
        workspace = Workspace(root / "ws")
        write_task_stage(workspace, "ci", shop_tasks())
        run_synth_trajectories(CONFIG, workspace, TrajectoryDeps(writer=client, solver=client))
        stage = root / "ws" / "runs" / "ci" / "synth-trajectories"
        if TARGET.exists():
            shutil.rmtree(TARGET)
        (TARGET / "items").mkdir(parents=True)
        (TARGET / "cassette.jsonl.gz").write_bytes(gzip.compress(cassette.read_bytes(), mtime=0))
        shutil.copy(stage / "funnel.json", TARGET / "funnel.json")
        for item in sorted((stage / "items").iterdir()):
            shutil.copy(item, TARGET / "items" / item.name)
    print(f"recorded into {TARGET}")


if __name__ == "__main__":
    main()
