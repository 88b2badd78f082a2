"""The README's 0.5B baseline, replayed: the cassette recorded from the bundled local model
(qwen2.5-coder-0.5b, seed 0, the default local sample of 3 BFCL base + 3 missing-function + 3 τ² airline
tasks) replays through `envfactory eval run` to the recorded report, byte for byte. This uses recorded
real-model answers, not a scripted client."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app

FIXTURES = Path(__file__).parent / "fixtures"

pytest.importorskip("bfcl")
pytest.importorskip("tau2")


@pytest.mark.slow
def test_the_recorded_baseline_replays_to_the_recorded_report(tmp_path: Path) -> None:
    cassette = tmp_path / "baseline.jsonl"
    cassette.write_bytes(gzip.decompress((FIXTURES / "baseline-qwen0.5b-seed0.jsonl.gz").read_bytes()))
    result = CliRunner().invoke(app, ["eval", "run", "--llm", f"replay:{cassette}", "-w", str(tmp_path / "ws"), "--json"])
    assert result.exit_code == 0, result.output
    expected = (FIXTURES / "baseline-qwen0.5b-seed0.report.json").read_bytes()
    run_dir = tmp_path / "ws" / "runs" / json.loads(expected)["run_id"]
    assert (run_dir / "report.json").read_bytes() == expected
    overall = json.loads(expected)["overall"]
    assert overall["tasks"] == 9 and round(overall["pass_at_1"], 4) == 0.2222


@pytest.mark.slow
def test_the_recorded_baseline_replays_on_a_process_pool_to_the_same_bytes(tmp_path: Path) -> None:
    """Issue 25: `eval run` fans attempts out as work items (`eval.run.eval_attempt`); two pool workers,
    each selecting the tasks and opening the replay cassette itself, write the recorded report and an
    `attempts.jsonl` in the serial order."""
    cassette = tmp_path / "baseline.jsonl"
    cassette.write_bytes(gzip.decompress((FIXTURES / "baseline-qwen0.5b-seed0.jsonl.gz").read_bytes()))
    result = CliRunner().invoke(app, ["eval", "run", "--llm", f"replay:{cassette}", "-w", str(tmp_path / "ws"),
                                      "--json", "--executor", "pool", "--workers", "2"])
    assert result.exit_code == 0, result.output
    expected = (FIXTURES / "baseline-qwen0.5b-seed0.report.json").read_bytes()
    run_dir = tmp_path / "ws" / "runs" / json.loads(expected)["run_id"]
    assert (run_dir / "report.json").read_bytes() == expected
    suites = [json.loads(line)["suite"] for line in (run_dir / "attempts.jsonl").read_bytes().splitlines()]
    assert suites == ["bfcl_base"] * 3 + ["bfcl_miss_func"] * 3 + ["tau2_airline"] * 3  # the serial order
