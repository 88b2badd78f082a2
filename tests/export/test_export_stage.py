"""The export stage over the recorded fixtures: funnel, drops with reasons, hashes, determinism, the
dataset card, the CLI and `dataset validate` (schema checks and replay)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.export.conftest import TASKS, TRAJECTORIES, Exported, load_tasks, load_trajectories, stage_config
from typer.testing import CliRunner

from envfactory.cli._dataset_validate import validate_path
from envfactory.cli._export_stage import ExportDeps, run_export
from envfactory.cli.app import app
from envfactory.export import heldout_unseen, leakage
from envfactory.export.card import card_licences
from envfactory.spec import sha256_hex
from envfactory.store import StageDir, Workspace


def test_funnel_and_drop_reasons(exported: Exported) -> None:
    manifest = exported.manifest
    counts = manifest.counts
    assert counts["tasks_read"] == 11 and counts["trajectories_read"] == 11
    reasons = manifest.drop_reasons
    assert reasons == {
        "breaks_alternation": 1,      # the conversation that opens with the assistant's greeting (LlamaFactory)
        "exact_duplicate_query": 1,   # shop-topup-dup: same refined query
        "near_duplicate_query": 1,    # tracker-comment-near
        "no_usable_trajectory": 2,    # the tasks of the two trajectories below
        "replay_mismatch": 1,         # shop-cancel: tampered hash
        "truncated_trajectory": 1,    # tracker-archive: max_steps
    }
    assert counts["tasks_with_trajectory"] == 9 and counts["tasks_after_hygiene"] == 7
    assert counts["sft_rows"] == 7 and counts["rl_rows"] == 8  # shop-two-turns gives two RL rows
    assert sum(v for k, v in counts.items() if k.startswith("openai.")) == 7
    assert sum(v for k, v in counts.items() if k.startswith("llamafactory.")) == 6
    assert sum(v for k, v in counts.items() if k.startswith("verl.")) == 8
    mismatch = next(d for d in manifest.drops if d.reason == "replay_mismatch")
    assert mismatch.item == "traj-shop-cancel" and "after call 1" in mismatch.detail


def test_manifest_hashes_match_the_files_and_the_stage_is_complete(exported: Exported) -> None:
    for entry in exported.manifest.files:
        assert sha256_hex((exported.root / entry.path).read_bytes()) == entry.sha256
    assert StageDir.open(Workspace(exported.root.parents[2]), "fixture-run", "export").is_complete()
    assert exported.stage.counts["sft_rows"] == 7 and exported.stage.drops["replay_mismatch"] == 1
    assert set(exported.manifest.inputs) == {"tasks", "trajectories"}


def test_splits_hold_out_tracker_and_leak_nothing(exported: Exported) -> None:
    splits = exported.manifest.splits
    assert leakage(splits) == [] and heldout_unseen(splits, ["tracker"]) == []
    assert {a.split for a in splits if "tracker" in a.envs} == {"heldout"}
    assert {a.split for a in splits if "shop" in a.envs} <= {"train", "validation", "test"}
    assert (exported.root / "openai/heldout.jsonl").is_file()


def test_same_inputs_give_byte_identical_exports(exported: Exported, tmp_path: Path) -> None:
    again = run_export(stage_config(), Workspace(tmp_path), ExportDeps())
    assert again.content_digest() == exported.stage.content_digest()


def test_dataset_card_names_sources_licences_splits_funnel_and_diversity(exported: Exported) -> None:
    card = (exported.root / "hf/README.md").read_text()
    assert card.startswith("---\nlicense:\n- apache-2.0\npretty_name: envfactory\n")
    for needle in ("config_name: sft", "config_name: rl", "split: heldout", "manual:shop", "Apache-2.0",
                   "## Funnel", "tasks_after_hygiene", "near_duplicate_query", "## Diversity", "chain shapes",
                   "Held-out environments (only in `heldout`): tracker"):
        assert needle in card, needle


def test_card_licence_ids_from_the_names_sources_give() -> None:
    names = ["Apache 2.0", "Apache License 2.0", "MIT License", "The MIT License (MIT)",
             "Creative Commons Attribution 3.0 Australia", "Some Custom Terms"]
    assert card_licences(names) == ["apache-2.0", "cc-by-3.0", "mit", "other"]


def test_think_switch_reaches_every_format(tmp_path: Path) -> None:
    run_export(stage_config(think="keep"), Workspace(tmp_path), ExportDeps())
    root = tmp_path / "runs/fixture-run/export"
    texts = [p.read_text() for p in root.glob("openai/*.jsonl")] + [p.read_text() for p in root.glob("llamafactory/*.jsonl")]
    assert any("<think>" in t for t in texts)
    for path in root.glob("openai/*[!x].jsonl"):
        for line in path.read_text().splitlines():
            for message in json.loads(line)["messages"]:
                for call in message.get("tool_calls", []):
                    assert "<think>" not in call["function"]["arguments"]


def test_bad_input_lines_are_dropped_with_the_validation_message(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_bytes(TASKS.read_bytes() + b'{"schema_version": 2, "envs": []}\n')
    config = stage_config().model_copy(update={"tasks_path": str(tasks)})
    run_export(config, Workspace(tmp_path / "ws"), ExportDeps())
    manifest = json.loads((tmp_path / "ws/runs/fixture-run/export/export-manifest.json").read_text())
    invalid = [d for d in manifest["drops"] if d["reason"] == "invalid_task"]
    assert len(invalid) == 1 and invalid[0]["item"] == "tasks.jsonl:12"


def test_validate_accepts_the_export_and_replays_trajectories(exported: Exported) -> None:
    report = validate_path(exported.root)
    assert report.ok, [p for part in report.parts for p in part.problems]
    assert {part.kind for part in report.parts} >= {"openai", "llamafactory", "verl", "rl (trl/hf)", "sft (hf)"}
    trajectories = validate_path(TRAJECTORIES, sample=11)
    assert trajectories.replayed == 11
    assert trajectories.problems == ["traj-shop-cancel: replay: group hash differs after call 1 (shop__cancel_order)"]
    assert validate_path(TASKS).ok


def test_validate_finds_a_tampered_file_and_a_skipped_llamafactory_row(exported: Exported, tmp_path: Path) -> None:
    path = next(exported.root.glob("llamafactory/*.jsonl"))
    row = json.loads(path.read_text().splitlines()[0])
    row["conversations"].insert(0, {"from": "gpt", "value": "Hello!"})
    broken = tmp_path / "lf.jsonl"
    broken.write_text(json.dumps(row) + "\n")
    report = validate_path(broken)
    assert report.kind == "llamafactory" and not report.ok
    assert "LlamaFactory would skip the row" in report.problems[0]


@pytest.mark.parametrize("fmt", ["openai", "verl"])
def test_cli_export_and_validate(tmp_path: Path, fmt: str) -> None:
    runner = CliRunner()
    source = tmp_path / "source"
    source.mkdir()
    (source / "tasks.jsonl").write_bytes(TASKS.read_bytes())
    (source / "trajectories.jsonl").write_bytes(TRAJECTORIES.read_bytes())
    out = tmp_path / "out"
    result = runner.invoke(app, ["dataset", "export", "--from", str(source), "--format", fmt, "--to", str(out),
                                 "--workspace", str(tmp_path / "ws"), "--heldout-env", "tracker"])
    assert result.exit_code == 0, result.output
    assert "funnel: tasks_read 11" in result.output and "replay_mismatch 1" in result.output
    assert (out / "export-manifest.json").is_file() and {p.parent.name for p in out.glob("*/*")} == {fmt}
    checked = runner.invoke(app, ["dataset", "validate", str(out)])
    assert checked.exit_code == 0, checked.output
    failed = runner.invoke(app, ["dataset", "validate", str(TRAJECTORIES), "--sample", "11"])
    assert failed.exit_code == 1 and "replay: group hash differs" in failed.output


def test_cli_names_a_missing_source() -> None:
    result = CliRunner().invoke(app, ["dataset", "export", "--from", "no-such-run", "--workspace", "/nonexistent/ws"])
    assert result.exit_code == 1 and "synthesis stage" in result.output


def test_tasks_fixture_is_task_v2() -> None:
    assert all(t.schema_version == 2 and t.queries.explicit and t.provenance for t in load_tasks())


def test_a_missing_parquet_library_is_a_clear_error_naming_the_install_command(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from envfactory.errors import EnvFactoryError

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.delitem(sys.modules, "envfactory.export.parquet", raising=False)
    with pytest.raises(EnvFactoryError, match=r"pip install 'envfactory\[dataset\]'"):
        run_export(stage_config(formats=["hf"]), Workspace(tmp_path), ExportDeps())
    run_export(stage_config(formats=["openai", "llamafactory"]), Workspace(tmp_path / "json"), ExportDeps())
    assert (tmp_path / "json/runs/fixture-run/export/openai/heldout.jsonl").is_file()


def test_replayed_rl_rows_start_each_turn_from_the_state_the_earlier_turns_left(exported: Exported) -> None:
    trajectory = next(t for t in load_trajectories() if t.id == "traj-shop-two-turns")
    rows = [r for path in exported.root.glob("trl/*.parquet") for r in pq.read_table(path).to_pylist()
            if r["task_id"] == trajectory.task_id]
    episodes = {r["turn"]: json.loads(r["episode"]) for r in rows}
    assert sorted(episodes) == [0, 1]
    stock = [episodes[t]["state"]["shop"]["collections"]["products"]["BK-002"]["stock"] for t in (0, 1)]
    assert stock == [1, 6]  # the first turn restocked 5
    assert episodes[1]["state_hash"] == trajectory.state_hashes[0]  # the group hash after turn 0's call
    truths = {r["turn"]: json.loads(r["ground_truth"]) for r in rows}
    assert truths[1]["expected_state_hashes"] == trajectory.final_state_hashes


def test_cli_reads_a_run_of_the_workspace_and_writes_into_it(tmp_path: Path) -> None:
    source = tmp_path / "ws/runs/r1/synth-tasks"
    source.mkdir(parents=True)
    (source / "tasks.jsonl").write_bytes(TASKS.read_bytes())
    (source / "trajectories.jsonl").write_bytes(TRAJECTORIES.read_bytes())
    result = CliRunner().invoke(app, ["dataset", "export", "--from", "r1", "--workspace", str(tmp_path / "ws"),
                                      "--format", "trl", "--think", "keep", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["config"]["think"] == "keep" and manifest["config"]["formats"] == ["trl"]
    assert StageDir.open(Workspace(tmp_path / "ws"), "r1", "export").is_complete()
