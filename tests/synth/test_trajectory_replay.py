"""The trajectory stage replays a recorded run of the bundled 0.5B model (Qwen2.5-Coder-0.5B, live, on the
three `shop` tasks of `traj_fixtures`, seed 5; recorded by `tests/synth/record_trajectories.py`): with the
cassette's answers the stage asks exactly the recorded questions and writes the recorded items and funnel,
byte for byte. Real model answers, not a scripted client: the query validation, the agent loop, the
verification and the selection all run on what the model really said."""

from __future__ import annotations

import gzip
from pathlib import Path

from record_trajectories import CONFIG, TARGET
from traj_fixtures import shop_tasks, write_task_stage

from envfactory.llm import ReplayClient
from envfactory.spec.synth_trajectories import TrajectoryFunnel
from envfactory.store import Workspace
from envfactory.synth.trajectories import TrajectoryDeps, run_synth_trajectories


def test_the_recorded_0_5b_run_replays_to_the_recorded_items(tmp_path: Path) -> None:
    cassette = tmp_path / "cassette.jsonl"
    cassette.write_bytes(gzip.decompress((TARGET / "cassette.jsonl.gz").read_bytes()))
    client = ReplayClient(cassette)
    workspace = Workspace(tmp_path / "ws")
    write_task_stage(workspace, "ci", shop_tasks())
    run_synth_trajectories(CONFIG, workspace, TrajectoryDeps(writer=client, solver=client))
    stage = tmp_path / "ws" / "runs" / "ci" / "synth-trajectories"
    recorded = sorted(p.name for p in (TARGET / "items").iterdir())
    assert sorted(p.name for p in (stage / "items").iterdir()) == recorded and len(recorded) == 3
    for name in recorded:
        assert (stage / "items" / name).read_bytes() == (TARGET / "items" / name).read_bytes(), name
    assert (stage / "funnel.json").read_bytes() == (TARGET / "funnel.json").read_bytes()
    funnel = TrajectoryFunnel.model_validate_json((TARGET / "funnel.json").read_bytes())
    assert funnel.stages["tasks"] == 3 and funnel.model_calls > 0  # the figures docs/trajectories.md quotes
    assert funnel.completed == 2  # the 0.5B left the order's and the look-up's values out of every answer
