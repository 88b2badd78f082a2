"""Record the cassette the trajectory-stage tests replay: the stage over `traj_fixtures.shop_tasks()`
with the bundled local model (Qwen2.5-Coder-0.5B) as writer, solver and user.

    python tests/synth/record_trajectories.py

Re-record when the prompts or the preset logic change (the replay tests then miss and say so).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from traj_fixtures import shop_tasks, write_task_stage

from envfactory.llm import LLMSettings, make_client
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig
from envfactory.store import Workspace
from envfactory.synth.trajectories import TrajectoryDeps, run_synth_trajectories

CASSETTE = Path(__file__).resolve().parent / "fixtures" / "trajectories-cassette.jsonl"
CONFIGS = (
    SynthTrajectoriesConfig(from_run="ci", preset="sft-single", seed=5, max_steps_per_turn=3),
    SynthTrajectoriesConfig(from_run="ci", preset="sft-conv", seed=5, max_tasks=1, max_steps_per_turn=3,
                            order="as-written"),  # the two-call task: a conversation
)


def run(workspace: Workspace, client: object, config: SynthTrajectoriesConfig, verbose: bool = False) -> None:
    """The stage as the tests run it: the same client in every role."""
    def say(done: int, total: int, status: str) -> None:
        if verbose:
            print(f"{config.preset}: {done}/{total} {status}", file=sys.stderr, flush=True)

    run_synth_trajectories(config, workspace, TrajectoryDeps(writer=client, solver=client,  # type: ignore[arg-type]
                                                             progress=say))


if __name__ == "__main__":
    CASSETTE.parent.mkdir(parents=True, exist_ok=True)
    CASSETTE.unlink(missing_ok=True)
    client = make_client(LLMSettings(provider="local", cassette=CASSETTE))
    for config in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            workspace = Workspace(Path(tmp))
            write_task_stage(workspace, "ci", shop_tasks())
            run(workspace, client, config, verbose=True)
            print(config.preset, (Path(tmp) / "runs/ci/synth-trajectories/funnel.json").read_text(), file=sys.stderr,
                  flush=True)
    print(f"wrote {CASSETTE}")
